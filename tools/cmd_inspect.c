/* cmd_inspect.c - `inferctl inspect PATH`: prints what a GGUF file holds:
 * version, alignment, every metadata key with its type and value (arrays as
 * TYPE[count] and their first elements, long strings cut), the tensor table
 * (name, type, dims, bytes, absolute file offset) and totals with a per-type
 * histogram. Output is for people; nothing here is a stable format. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cmds.h"
#include "dtype.h"
#include "gguf.h"

#define INSPECT_STR_MAX 64   /* bytes of a string value shown */
#define INSPECT_ARR_SHOW 8   /* first elements of a top-level array shown */
#define INSPECT_NESTED_SHOW 4 /* elements of a nested array shown */

static void inspect_usage(FILE *fp)
{
    fprintf(fp,
            "usage: inferctl inspect PATH\n"
            "\n"
            "Print a GGUF file's version, alignment, metadata (key, type, value)\n"
            "and tensor table (name, type, dims, bytes, file offset), then totals.\n");
}

/* A string view, quoted, with control and non-ASCII bytes escaped and at
 * most INSPECT_STR_MAX bytes shown. */
static void inspect_print_str(struct gguf_str s)
{
    size_t n = s.len < INSPECT_STR_MAX ? (size_t)s.len : INSPECT_STR_MAX;
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c == '\n')
            fputs("\\n", stdout);
        else if (c == '\t')
            fputs("\\t", stdout);
        else if (c < 0x20 || c == 0x7f)
            printf("\\x%02x", c);
        else
            putchar(c); /* UTF-8 passes through */
    }
    putchar('"');
    if (s.len > n)
        printf("... (%llu bytes)", (unsigned long long)s.len);
}

static void inspect_print_array(const struct gguf_array *a, size_t show);

static void inspect_print_elem(const struct gguf_array *a, uint64_t i)
{
    switch (a->type) {
    case GGUF_VT_STRING:
        inspect_print_str(a->strs[i]);
        break;
    case GGUF_VT_ARRAY:
        inspect_print_array(&a->arrs[i].arr, INSPECT_NESTED_SHOW);
        break;
    case GGUF_VT_FLOAT32:
    case GGUF_VT_FLOAT64:
        printf("%.9g", (double)gguf_arr_f32(a, i));
        break;
    case GGUF_VT_BOOL:
        fputs(gguf_arr_i64(a, i) ? "true" : "false", stdout);
        break;
    case GGUF_VT_UINT64: {
        /* full range: read the raw little-endian value */
        const unsigned char *q = (const unsigned char *)a->data + (size_t)i * 8;
        uint64_t v = 0;
        for (int k = 7; k >= 0; k--)
            v = (v << 8) | q[k];
        printf("%llu", (unsigned long long)v);
        break;
    }
    default:
        printf("%lld", (long long)gguf_arr_i64(a, i));
        break;
    }
}

/* TYPE[count] [e0, e1, ...] */
static void inspect_print_array(const struct gguf_array *a, size_t show)
{
    printf("%s[%llu] [", gguf_vtype_name(a->type), (unsigned long long)a->n);
    for (uint64_t i = 0; i < a->n && i < show; i++) {
        if (i)
            fputs(", ", stdout);
        inspect_print_elem(a, i);
    }
    if (a->n > show)
        fputs(", ...", stdout);
    putchar(']');
}

static void inspect_print_value(const struct gguf_value *v)
{
    switch (v->type) {
    case GGUF_VT_UINT8:
    case GGUF_VT_UINT16:
    case GGUF_VT_UINT32:
    case GGUF_VT_UINT64:
        printf("%llu", (unsigned long long)v->u64);
        break;
    case GGUF_VT_INT8:
    case GGUF_VT_INT16:
    case GGUF_VT_INT32:
    case GGUF_VT_INT64:
        printf("%lld", (long long)v->i64);
        break;
    case GGUF_VT_FLOAT32:
        printf("%.9g", v->f64);
        break;
    case GGUF_VT_FLOAT64:
        printf("%.17g", v->f64);
        break;
    case GGUF_VT_BOOL:
        fputs(v->b ? "true" : "false", stdout);
        break;
    case GGUF_VT_STRING:
        inspect_print_str(v->str);
        break;
    case GGUF_VT_ARRAY:
        inspect_print_array(&v->arr, INSPECT_ARR_SHOW);
        break;
    default:
        fputs("?", stdout);
        break;
    }
}

/* A key or tensor name: printable ASCII as is, other bytes as '?'. */
static void inspect_print_name(struct gguf_str s, int width)
{
    int n = 0;
    for (uint64_t i = 0; i < s.len; i++, n++) {
        unsigned char c = (unsigned char)s.ptr[i];
        putchar(c >= 0x20 && c < 0x7f ? c : '?');
    }
    for (; n < width; n++)
        putchar(' ');
}

struct inspect_hist {
    size_t count;
    uint64_t params;
    uint64_t bytes;
};

static void inspect_print(const char *path, const struct gguf_file *f)
{
    printf("file:        %s\n", path);
    printf("version:     %u\n", gguf_version(f));
    printf("alignment:   %llu\n", (unsigned long long)gguf_alignment(f));
    printf("file size:   %zu bytes\n", gguf_file_size(f));
    printf("data offset: %llu\n", (unsigned long long)gguf_data_offset(f));

    size_t n_kv = gguf_n_kv(f);
    printf("\nmetadata: %zu keys\n", n_kv);
    for (size_t i = 0; i < n_kv; i++) {
        const struct gguf_kv *kv = gguf_kv_at(f, i);
        printf("  %4zu  ", i);
        inspect_print_name(kv->key, 40);
        printf(" %-8s ", gguf_vtype_name(kv->v.type));
        inspect_print_value(&kv->v);
        putchar('\n');
    }

    size_t n_t = gguf_n_tensors(f);
    struct inspect_hist hist[DT_COUNT];
    memset(hist, 0, sizeof hist);
    uint64_t params = 0, bytes = 0;
    printf("\ntensors: %zu\n", n_t);
    if (n_t)
        printf("  %4s  %-32s %-6s %-24s %12s %12s\n", "#", "name", "type", "dims", "bytes",
               "offset");
    for (size_t i = 0; i < n_t; i++) {
        const struct gguf_tensor *t = gguf_tensor_at(f, i);
        char dims[128];
        size_t o = 0;
        uint64_t nel = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            int k = snprintf(dims + o, sizeof dims - o, "%s%llu", d ? ", " : "[",
                             (unsigned long long)t->ne[d]);
            if (k > 0 && (size_t)k < sizeof dims - o)
                o += (size_t)k;
            nel *= t->ne[d]; /* the reader refuses counts over INT64_MAX */
        }
        snprintf(dims + o, sizeof dims - o, "]");
        printf("  %4zu  ", i);
        inspect_print_name(t->name, 32);
        printf(" %-6s %-24s %12llu %12llu\n", dt_name(t->type), dims,
               (unsigned long long)t->nbytes,
               (unsigned long long)(gguf_data_offset(f) + t->offset));
        params += nel;
        bytes += t->nbytes;
        if (t->type < DT_COUNT) {
            hist[t->type].count++;
            hist[t->type].params += nel;
            hist[t->type].bytes += t->nbytes;
        }
    }

    printf("\ntotals: %zu tensors, %llu parameters, %llu bytes", n_t,
           (unsigned long long)params, (unsigned long long)bytes);
    if (params)
        printf(" (%.3f bits per parameter)", 8.0 * (double)bytes / (double)params);
    putchar('\n');
    for (uint32_t t = 0; t < DT_COUNT; t++) {
        if (!hist[t].count)
            continue;
        printf("  %-6s %6zu tensors %14llu parameters %14llu bytes\n", dt_name(t), hist[t].count,
               (unsigned long long)hist[t].params, (unsigned long long)hist[t].bytes);
    }
}

int cmd_inspect(int argc, char **argv)
{
    const char *path = NULL;
    bool options = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (options && !strcmp(a, "--")) {
            options = false;
            continue;
        }
        if (options && (!strcmp(a, "-h") || !strcmp(a, "--help"))) {
            inspect_usage(stdout);
            return 0;
        }
        if (options && a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "inferctl inspect: unknown option '%s'\n", a);
            inspect_usage(stderr);
            return 2;
        }
        if (path) {
            fprintf(stderr, "inferctl inspect: too many arguments\n");
            inspect_usage(stderr);
            return 2;
        }
        path = a;
    }
    if (!path) {
        inspect_usage(stderr);
        return 2;
    }

    struct gguf_file *f = NULL;
    char err[512];
    int rc = gguf_open(path, &f, err, sizeof err);
    if (rc) {
        fprintf(stderr, "inferctl inspect: %s: %s\n", path, err[0] ? err : strerror(-rc));
        return 1;
    }
    inspect_print(path, f);
    gguf_close(f);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "inferctl inspect: write error: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}
