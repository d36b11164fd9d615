/* cli.c - see cli.h. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

int cli_u32(const char *flag, const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < lo || v > hi) {
        fprintf(stderr, "inferctl: %s: expected an integer in [%u, %u], got '%s'\n", flag, lo, hi,
                s);
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

int cli_u64(const char *flag, const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || end == s || *end || s[0] == '-') {
        fprintf(stderr, "inferctl: %s: expected a non-negative integer, got '%s'\n", flag, s);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_f32(const char *flag, const char *s, float lo, float hi, float *out)
{
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi) {
        fprintf(stderr, "inferctl: %s: expected a number in [%g, %g], got '%s'\n", flag, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_mem_size(const char *flag, const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || !(v > 0) || s[0] == '-')
        goto bad;
    if (*end == '%' && end[1] == 0 && v <= 100) {
        long pages = sysconf(_SC_AVPHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
        if (pages <= 0 || psize <= 0)
            goto bad;
        *out = (uint64_t)((double)pages * (double)psize * v / 100.0);
        return 0;
    }
    double mult = 1;
    if (*end == 'K' || *end == 'k')
        mult = 1024.0, end++;
    else if (*end == 'M' || *end == 'm')
        mult = 1024.0 * 1024, end++;
    else if (*end == 'G' || *end == 'g')
        mult = 1024.0 * 1024 * 1024, end++;
    if (*end || v * mult > 1e18)
        goto bad;
    *out = (uint64_t)(v * mult);
    return 0;
bad:
    fprintf(stderr, "inferctl: %s: expected bytes (with an optional K, M or G suffix) or a "
                    "percentage of available memory, got '%s'\n", flag, s);
    return -1;
}

int cli_kv_type(const char *s, enum dt_type *out)
{
    if (!strcasecmp(s, "f32"))
        *out = DT_F32;
    else if (!strcasecmp(s, "f16"))
        *out = DT_F16;
    else if (!strcasecmp(s, "bf16"))
        *out = DT_BF16;
    else {
        fprintf(stderr, "inferctl: --kv-type: expected f32, f16 or bf16, got '%s'\n", s);
        return -1;
    }
    return 0;
}

int cli_ids(const char *s, int32_t **out, size_t *n)
{
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids)
        return -1;
    size_t k = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (errno || end == p || v < 0 || v > INT32_MAX || (*end && *end != ',')) {
            fprintf(stderr, "inferctl: --tokens: expected comma-separated token ids, got '%s'\n", s);
            free(ids);
            return -1;
        }
        ids[k++] = (int32_t)v;
        p = *end ? end + 1 : end;
    }
    if (k == 0) {
        fprintf(stderr, "inferctl: --tokens: no token ids given\n");
        free(ids);
        return -1;
    }
    *out = ids;
    *n = k;
    return 0;
}

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid. */
static size_t cli_utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

char *cli_utf8_sanitize(const char *s, size_t len)
{
    char *out = malloc(len * 3 + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        size_t l = cli_utf8_len(u + i, len - i);
        if (l && u[i] != 0) {
            memcpy(out + o, u + i, l);
            o += l;
            i += l;
        } else { /* invalid, or NUL (which a C string cannot carry) */
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        }
    }
    out[o] = 0;
    return out;
}

int cli_print_json(json_t *o, size_t flags)
{
    char *str = json_dumps(o, flags);
    json_decref(o);
    if (!str)
        return -ENOMEM;
    printf("%s\n", str);
    free(str);
    return 0;
}

static int cli_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

void cli_sort(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cli_cmp);
}

double cli_quantile(double *v, size_t n, double p)
{
    if (!n)
        return 0;
    cli_sort(v, n);
    double pos = p * (double)(n - 1);
    size_t i = (size_t)pos;
    if (i + 1 >= n)
        return v[n - 1];
    double f = pos - (double)i;
    return v[i] * (1 - f) + v[i + 1] * f;
}

double cli_rank(const double *v, size_t n, double p)
{
    if (!n)
        return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

double cli_mean(const double *v, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += v[i];
    return n ? s / (double)n : 0;
}
