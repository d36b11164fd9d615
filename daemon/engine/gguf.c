/* gguf.c - GGUF v2/v3 reader: maps a file (or takes a caller's buffer),
 * parses and validates the header, every metadata value and every tensor
 * info before anything is handed out, and indexes keys and tensor names in
 * open-addressing hash tables. The contract and limits are in gguf.h.
 *
 * File layout (all little-endian):
 *   u32 magic "GGUF", u32 version, u64 n_tensors, u64 n_kv,
 *   n_kv x { string key, u32 vtype, value },
 *   n_tensors x { string name, u32 n_dims, u64 ne[n_dims], u32 type, u64 offset },
 *   padding to the alignment, tensor data (offsets relative to its start).
 * A string is u64 length + bytes; an array is u32 element type, u64 count,
 * then the elements back to back.
 */
#include "gguf.h"

#include "dtype.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_MAX_STR_LEN ((uint64_t)1 << 20)   /* lengths must be below this */
#define GGUF_MAX_KV ((uint64_t)1 << 20)        /* at most this many keys */
#define GGUF_MAX_TENSORS ((uint64_t)1 << 20)   /* at most this many tensors */
#define GGUF_MAX_ARR ((uint64_t)1 << 26)       /* at most this many elements */
#define GGUF_MAX_DEPTH 4                       /* array nesting levels */
#define GGUF_HEADER_SIZE 24
/* Smallest encodings, used to refuse counts that cannot fit before any
 * allocation is sized by them. */
#define GGUF_MIN_KV_BYTES 14     /* key len + 1-byte key + vtype + 1-byte value */
#define GGUF_MIN_TENSOR_BYTES 32 /* name len + n_dims + one ne + type + offset */
#define GGUF_MIN_STR_BYTES 8
#define GGUF_MIN_ARR_BYTES 12    /* element type + count */
#define GGUF_NAME_SHOW 64        /* chars of a key/name quoted in messages */
#define GGUF_ARENA_CHUNK ((size_t)64 << 10)

/* Bump allocator for the views of string and nested arrays; freed as one. */
struct gguf_chunk {
    struct gguf_chunk *next;
    size_t used, cap;
    max_align_t data[];
};

struct gguf_file {
    const uint8_t *base;
    size_t size;
    bool mapped; /* base came from mmap (munmap on close) */
    uint32_t version;
    uint64_t alignment;
    uint64_t data_offset;

    struct gguf_kv *kvs;
    size_t n_kv;
    struct gguf_tensor *tensors;
    size_t n_tensors;

    /* Hash tables: power-of-two slot counts, a slot holds index + 1 (0 = empty). */
    uint32_t *kv_slots;
    size_t kv_cap;
    uint32_t *t_slots;
    size_t t_cap;

    struct gguf_chunk *chunks;
};

struct gguf_parser {
    const uint8_t *p;
    size_t size;
    size_t pos;
    struct gguf_file *f;
    char *err;
    size_t errlen;
    char where[GGUF_NAME_SHOW * 4 + 64]; /* message prefix, "" for none */
};

/* ---- small helpers ---- */

static uint16_t gguf_le16(const uint8_t *q)
{
    return (uint16_t)(q[0] | (q[1] << 8));
}

static uint32_t gguf_le32(const uint8_t *q)
{
    return (uint32_t)q[0] | ((uint32_t)q[1] << 8) | ((uint32_t)q[2] << 16) |
           ((uint32_t)q[3] << 24);
}

static uint64_t gguf_le64(const uint8_t *q)
{
    return (uint64_t)gguf_le32(q) | ((uint64_t)gguf_le32(q + 4) << 32);
}

/* Two's complement reinterpretation of the low `bits` bits of u. */
static int64_t gguf_sext(uint64_t u, unsigned bits)
{
    if (bits == 64) {
        int64_t r;
        memcpy(&r, &u, sizeof r);
        return r;
    }
    uint64_t sign = (uint64_t)1 << (bits - 1);
    if (u & sign)
        return -(int64_t)(((uint64_t)1 << bits) - u);
    return (int64_t)u;
}

static bool gguf_is_pow2(uint64_t x)
{
    return x != 0 && (x & (x - 1)) == 0;
}

static bool gguf_mul_ok(uint64_t a, uint64_t b, uint64_t *out)
{
    if (a != 0 && b > UINT64_MAX / a)
        return false;
    *out = a * b;
    return true;
}

static bool gguf_add_ok(uint64_t a, uint64_t b, uint64_t *out)
{
    if (b > UINT64_MAX - a)
        return false;
    *out = a + b;
    return true;
}

size_t gguf_vtype_size(enum gguf_vtype t)
{
    switch (t) {
    case GGUF_VT_UINT8:
    case GGUF_VT_INT8:
    case GGUF_VT_BOOL:
        return 1;
    case GGUF_VT_UINT16:
    case GGUF_VT_INT16:
        return 2;
    case GGUF_VT_UINT32:
    case GGUF_VT_INT32:
    case GGUF_VT_FLOAT32:
        return 4;
    case GGUF_VT_UINT64:
    case GGUF_VT_INT64:
    case GGUF_VT_FLOAT64:
        return 8;
    default:
        return 0;
    }
}

static bool gguf_vtype_is_uint(enum gguf_vtype t)
{
    return t == GGUF_VT_UINT8 || t == GGUF_VT_UINT16 || t == GGUF_VT_UINT32 ||
           t == GGUF_VT_UINT64;
}

static bool gguf_vtype_is_sint(enum gguf_vtype t)
{
    return t == GGUF_VT_INT8 || t == GGUF_VT_INT16 || t == GGUF_VT_INT32 ||
           t == GGUF_VT_INT64;
}

static uint64_t gguf_hash(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 0x100000001b3ull;
    }
    return h ^ (h >> 29);
}

/* Quote a name from the file for a message: at most GGUF_NAME_SHOW bytes,
 * anything outside printable ASCII shown as '?'. */
static void gguf_name_show(char *dst, size_t dstlen, struct gguf_str s)
{
    size_t n = s.len < GGUF_NAME_SHOW ? (size_t)s.len : GGUF_NAME_SHOW;
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < dstlen; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        dst[o++] = (c >= 0x20 && c < 0x7f && c != '\'') ? (char)c : '?';
    }
    if (s.len > n) {
        for (int i = 0; i < 3 && o + 1 < dstlen; i++)
            dst[o++] = '.';
    }
    if (dstlen)
        dst[o < dstlen ? o : dstlen - 1] = '\0';
}

/* Write "where: message" into the caller's buffer; returns rc. */
__attribute__((format(printf, 3, 4)))
static int gguf_fail(struct gguf_parser *ps, int rc, const char *fmt, ...)
{
    if (!ps->err || ps->errlen == 0)
        return rc;
    size_t o = 0;
    if (ps->where[0]) {
        int k = snprintf(ps->err, ps->errlen, "%s: ", ps->where);
        o = k < 0 ? 0 : (size_t)k;
        if (o >= ps->errlen)
            return rc;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ps->err + o, ps->errlen - o, fmt, ap);
    va_end(ap);
    return rc;
}

__attribute__((format(printf, 2, 3)))
static void gguf_where(struct gguf_parser *ps, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ps->where, sizeof ps->where, fmt, ap);
    va_end(ap);
}

static void *gguf_arena_alloc(struct gguf_file *f, size_t size)
{
    size = (size + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    struct gguf_chunk *c = f->chunks;
    if (!c || c->cap - c->used < size) {
        size_t cap = size > GGUF_ARENA_CHUNK ? size : GGUF_ARENA_CHUNK;
        c = malloc(sizeof *c + cap);
        if (!c)
            return NULL;
        c->used = 0;
        c->cap = cap;
        c->next = f->chunks;
        f->chunks = c;
    }
    void *p = (char *)c->data + c->used;
    c->used += size;
    return p;
}

/* ---- hash tables ---- */

static size_t gguf_table_cap(size_t n)
{
    size_t cap = 8;
    while (cap < 2 * n)
        cap *= 2;
    return cap;
}

/* Find name in the table; returns the index or SIZE_MAX. `at(i)` gives the
 * name of entry i. */
static size_t gguf_table_find(const uint32_t *slots, size_t cap, const char *s, size_t n,
                              const struct gguf_str *(*at)(const struct gguf_file *, size_t),
                              const struct gguf_file *f)
{
    if (!slots)
        return SIZE_MAX;
    size_t mask = cap - 1;
    for (size_t i = (size_t)gguf_hash(s, n) & mask;; i = (i + 1) & mask) {
        uint32_t v = slots[i];
        if (v == 0)
            return SIZE_MAX;
        const struct gguf_str *k = at(f, v - 1);
        if (k->len == n && (n == 0 || memcmp(k->ptr, s, n) == 0))
            return v - 1;
    }
}

/* Insert entry idx under name s (not present yet). */
static void gguf_table_put(uint32_t *slots, size_t cap, struct gguf_str s, size_t idx)
{
    size_t mask = cap - 1;
    size_t i = (size_t)gguf_hash(s.ptr, (size_t)s.len) & mask;
    while (slots[i] != 0)
        i = (i + 1) & mask;
    slots[i] = (uint32_t)(idx + 1);
}

static const struct gguf_str *gguf_kv_key_at(const struct gguf_file *f, size_t i)
{
    return &f->kvs[i].key;
}

static const struct gguf_str *gguf_tensor_name_at(const struct gguf_file *f, size_t i)
{
    return &f->tensors[i].name;
}

/* ---- reading primitives ---- */

static size_t gguf_left(const struct gguf_parser *ps)
{
    return ps->size - ps->pos;
}

static int gguf_need(struct gguf_parser *ps, size_t n, const char *what)
{
    if (n <= gguf_left(ps))
        return 0;
    return gguf_fail(ps, -EINVAL, "%s truncated at offset %zu (need %zu bytes, file size %zu)",
                     what, ps->pos, n, ps->size);
}

static int gguf_read_u32(struct gguf_parser *ps, uint32_t *v, const char *what)
{
    int rc = gguf_need(ps, 4, what);
    if (rc)
        return rc;
    *v = gguf_le32(ps->p + ps->pos);
    ps->pos += 4;
    return 0;
}

static int gguf_read_u64(struct gguf_parser *ps, uint64_t *v, const char *what)
{
    int rc = gguf_need(ps, 8, what);
    if (rc)
        return rc;
    *v = gguf_le64(ps->p + ps->pos);
    ps->pos += 8;
    return 0;
}

static int gguf_read_str(struct gguf_parser *ps, struct gguf_str *s, const char *what)
{
    uint64_t len;
    int rc = gguf_read_u64(ps, &len, what);
    if (rc)
        return rc;
    if (len > gguf_left(ps))
        return gguf_fail(ps, -EINVAL, "%s length %llu exceeds file (%zu bytes left at offset %zu)",
                         what, (unsigned long long)len, gguf_left(ps), ps->pos);
    if (len >= GGUF_MAX_STR_LEN)
        return gguf_fail(ps, -EINVAL, "%s length %llu exceeds the limit of %llu", what,
                         (unsigned long long)len, (unsigned long long)GGUF_MAX_STR_LEN - 1);
    s->ptr = (const char *)ps->p + ps->pos;
    s->len = len;
    ps->pos += (size_t)len;
    return 0;
}

static int gguf_read_vtype(struct gguf_parser *ps, enum gguf_vtype *t, const char *what)
{
    uint32_t v;
    int rc = gguf_read_u32(ps, &v, what);
    if (rc)
        return rc;
    if (v >= GGUF_VT_COUNT)
        return gguf_fail(ps, -EINVAL, "unknown %s %u", what, v);
    *t = (enum gguf_vtype)v;
    return 0;
}

/* ---- metadata values ---- */

static int gguf_parse_array(struct gguf_parser *ps, struct gguf_array *a, int depth);

/* One scalar or string (or array) of type t at the cursor. */
static int gguf_parse_value(struct gguf_parser *ps, enum gguf_vtype t, struct gguf_value *v,
                            int depth)
{
    v->type = t;
    if (t == GGUF_VT_STRING)
        return gguf_read_str(ps, &v->str, "string");
    if (t == GGUF_VT_ARRAY)
        return gguf_parse_array(ps, &v->arr, depth + 1);
    size_t sz = gguf_vtype_size(t);
    int rc = gguf_need(ps, sz, gguf_vtype_name(t));
    if (rc)
        return rc;
    const uint8_t *q = ps->p + ps->pos;
    uint64_t u = sz == 1 ? q[0] : sz == 2 ? gguf_le16(q) : sz == 4 ? gguf_le32(q) : gguf_le64(q);
    switch (t) {
    case GGUF_VT_UINT8:
    case GGUF_VT_UINT16:
    case GGUF_VT_UINT32:
    case GGUF_VT_UINT64:
        v->u64 = u;
        break;
    case GGUF_VT_INT8:
    case GGUF_VT_INT16:
    case GGUF_VT_INT32:
    case GGUF_VT_INT64:
        v->i64 = gguf_sext(u, (unsigned)sz * 8);
        break;
    case GGUF_VT_FLOAT32: {
        uint32_t w = (uint32_t)u;
        float x;
        memcpy(&x, &w, sizeof x);
        v->f64 = x;
        break;
    }
    case GGUF_VT_FLOAT64: {
        double x;
        memcpy(&x, &u, sizeof x);
        v->f64 = x;
        break;
    }
    case GGUF_VT_BOOL:
        if (u > 1)
            return gguf_fail(ps, -EINVAL, "bool value %u is not 0 or 1", (unsigned)u);
        v->b = u != 0;
        break;
    default:
        return gguf_fail(ps, -EINVAL, "unknown value type %d", (int)t);
    }
    ps->pos += sz;
    return 0;
}

/* Array body (element type, count, elements) at nesting level depth (1 = an
 * array that is a key's value). */
static int gguf_parse_array(struct gguf_parser *ps, struct gguf_array *a, int depth)
{
    if (depth > GGUF_MAX_DEPTH)
        return gguf_fail(ps, -EINVAL, "arrays nested deeper than %d levels", GGUF_MAX_DEPTH);
    memset(a, 0, sizeof *a);
    int rc = gguf_read_vtype(ps, &a->type, "array element type");
    if (rc)
        return rc;
    uint64_t n;
    rc = gguf_read_u64(ps, &n, "array count");
    if (rc)
        return rc;
    if (n > GGUF_MAX_ARR)
        return gguf_fail(ps, -EINVAL, "array count %llu exceeds the limit of %llu",
                         (unsigned long long)n, (unsigned long long)GGUF_MAX_ARR);
    a->n = n;
    a->data = ps->p + ps->pos;

    size_t esz = gguf_vtype_size(a->type);
    if (esz) {
        size_t bytes = (size_t)n * esz; /* n <= 2^26: no overflow */
        if (bytes > gguf_left(ps))
            return gguf_fail(ps, -EINVAL,
                             "array of %llu %s (%zu bytes) exceeds file (%zu bytes left at offset %zu)",
                             (unsigned long long)n, gguf_vtype_name(a->type), bytes,
                             gguf_left(ps), ps->pos);
        if (a->type == GGUF_VT_BOOL) {
            for (size_t i = 0; i < bytes; i++) {
                if (ps->p[ps->pos + i] > 1)
                    return gguf_fail(ps, -EINVAL, "bool array element %zu has value %u (not 0 or 1)",
                                     i, ps->p[ps->pos + i]);
            }
        }
        ps->pos += bytes;
        return 0;
    }

    size_t min = a->type == GGUF_VT_STRING ? GGUF_MIN_STR_BYTES : GGUF_MIN_ARR_BYTES;
    if ((size_t)n * min > gguf_left(ps))
        return gguf_fail(ps, -EINVAL, "array of %llu %s exceeds file (%zu bytes left at offset %zu)",
                         (unsigned long long)n, gguf_vtype_name(a->type), gguf_left(ps), ps->pos);
    if (n == 0)
        return 0;
    if (a->type == GGUF_VT_STRING) {
        struct gguf_str *strs = gguf_arena_alloc(ps->f, (size_t)n * sizeof *strs);
        if (!strs)
            return gguf_fail(ps, -ENOMEM, "out of memory for %llu strings", (unsigned long long)n);
        a->strs = strs;
        for (size_t i = 0; i < n; i++) {
            rc = gguf_read_str(ps, &strs[i], "array string");
            if (rc)
                return rc;
        }
        return 0;
    }
    struct gguf_value *arrs = gguf_arena_alloc(ps->f, (size_t)n * sizeof *arrs);
    if (!arrs)
        return gguf_fail(ps, -ENOMEM, "out of memory for %llu arrays", (unsigned long long)n);
    memset(arrs, 0, (size_t)n * sizeof *arrs);
    a->arrs = arrs;
    for (size_t i = 0; i < n; i++) {
        arrs[i].type = GGUF_VT_ARRAY;
        rc = gguf_parse_array(ps, &arrs[i].arr, depth + 1);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- sections ---- */

static int gguf_parse_header(struct gguf_parser *ps, uint64_t *n_tensors, uint64_t *n_kv)
{
    if (ps->size < GGUF_HEADER_SIZE)
        return gguf_fail(ps, -EINVAL, "file too small for a GGUF header (%zu bytes, need %d)",
                         ps->size, GGUF_HEADER_SIZE);
    uint32_t magic = gguf_le32(ps->p);
    if (magic != GGUF_MAGIC)
        return gguf_fail(ps, -EINVAL, "bad magic 0x%08x (not a GGUF file)", magic);
    uint32_t ver = gguf_le32(ps->p + 4);
    uint32_t swapped = __builtin_bswap32(ver);
    if (ver == 1)
        return gguf_fail(ps, -EINVAL, "GGUF version 1 is not supported (only versions 2 and 3)");
    if (ver != 2 && ver != 3) {
        if (swapped >= 1 && swapped <= 3)
            return gguf_fail(ps, -EINVAL,
                             "big-endian GGUF file (version field reads 0x%08x) is not supported",
                             ver);
        return gguf_fail(ps, -EINVAL, "unsupported GGUF version %u (only versions 2 and 3)", ver);
    }
    ps->f->version = ver;
    ps->pos = 8;
    int rc = gguf_read_u64(ps, n_tensors, "tensor count");
    if (!rc)
        rc = gguf_read_u64(ps, n_kv, "metadata key count");
    if (rc)
        return rc;
    if (*n_tensors > GGUF_MAX_TENSORS)
        return gguf_fail(ps, -EINVAL, "tensor count %llu exceeds the limit of %llu",
                         (unsigned long long)*n_tensors, (unsigned long long)GGUF_MAX_TENSORS);
    if (*n_kv > GGUF_MAX_KV)
        return gguf_fail(ps, -EINVAL, "metadata key count %llu exceeds the limit of %llu",
                         (unsigned long long)*n_kv, (unsigned long long)GGUF_MAX_KV);
    return 0;
}

static int gguf_parse_kvs(struct gguf_parser *ps, uint64_t n_kv)
{
    struct gguf_file *f = ps->f;
    if (n_kv * GGUF_MIN_KV_BYTES > gguf_left(ps))
        return gguf_fail(ps, -EINVAL, "metadata key count %llu exceeds file (%zu bytes left)",
                         (unsigned long long)n_kv, gguf_left(ps));
    if (n_kv == 0)
        return 0;
    f->kvs = calloc((size_t)n_kv, sizeof *f->kvs);
    f->kv_cap = gguf_table_cap((size_t)n_kv);
    f->kv_slots = calloc(f->kv_cap, sizeof *f->kv_slots);
    if (!f->kvs || !f->kv_slots)
        return gguf_fail(ps, -ENOMEM, "out of memory for %llu metadata keys",
                         (unsigned long long)n_kv);

    char show[GGUF_NAME_SHOW * 4];
    for (size_t i = 0; i < n_kv; i++) {
        struct gguf_kv *kv = &f->kvs[i];
        gguf_where(ps, "metadata key %zu", i);
        int rc = gguf_read_str(ps, &kv->key, "key");
        if (rc)
            return rc;
        if (kv->key.len == 0)
            return gguf_fail(ps, -EINVAL, "empty key");
        gguf_name_show(show, sizeof show, kv->key);
        gguf_where(ps, "metadata key %zu ('%s')", i, show);
        size_t dup = gguf_table_find(f->kv_slots, f->kv_cap, kv->key.ptr, (size_t)kv->key.len,
                                     gguf_kv_key_at, f);
        if (dup != SIZE_MAX)
            return gguf_fail(ps, -EINVAL, "duplicate key (first defined as key %zu)", dup);
        enum gguf_vtype t = GGUF_VT_COUNT;
        rc = gguf_read_vtype(ps, &t, "value type");
        if (rc)
            return rc;
        rc = gguf_parse_value(ps, t, &kv->v, 0);
        if (rc)
            return rc;
        gguf_table_put(f->kv_slots, f->kv_cap, kv->key, i);
        f->n_kv = i + 1;
    }
    ps->where[0] = '\0';

    const struct gguf_kv *al = gguf_find(f, "general.alignment");
    if (al) {
        if (al->v.type != GGUF_VT_UINT32)
            return gguf_fail(ps, -EINVAL, "general.alignment has type %s (must be UINT32)",
                             gguf_vtype_name(al->v.type));
        if (!gguf_is_pow2(al->v.u64))
            return gguf_fail(ps, -EINVAL,
                             "general.alignment %llu is not a nonzero power of two",
                             (unsigned long long)al->v.u64);
        f->alignment = al->v.u64;
    }
    return 0;
}

/* One tensor info at the cursor into t (data range checked later). */
static int gguf_parse_tensor_info(struct gguf_parser *ps, size_t i, struct gguf_tensor *t)
{
    struct gguf_file *f = ps->f;
    char show[GGUF_NAME_SHOW * 4];
    gguf_where(ps, "tensor %zu", i);
    int rc = gguf_read_str(ps, &t->name, "name");
    if (rc)
        return rc;
    gguf_name_show(show, sizeof show, t->name);
    gguf_where(ps, "tensor '%s'", show);
    size_t dup = gguf_table_find(f->t_slots, f->t_cap, t->name.ptr, (size_t)t->name.len,
                                 gguf_tensor_name_at, f);
    if (dup != SIZE_MAX)
        return gguf_fail(ps, -EINVAL, "duplicate tensor name (tensors %zu and %zu)", dup, i);

    rc = gguf_read_u32(ps, &t->n_dims, "n_dims");
    if (rc)
        return rc;
    if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS)
        return gguf_fail(ps, -EINVAL, "n_dims %u out of range 1..%d", t->n_dims, GGUF_MAX_DIMS);
    uint64_t nel = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
        t->ne[d] = 1;
        if (d >= t->n_dims)
            continue;
        rc = gguf_read_u64(ps, &t->ne[d], "dimension");
        if (rc)
            return rc;
        if (t->ne[d] > (uint64_t)INT64_MAX)
            return gguf_fail(ps, -EINVAL, "ne[%u] is negative", d);
        if (!gguf_mul_ok(nel, t->ne[d], &nel) || nel > (uint64_t)INT64_MAX)
            return gguf_fail(ps, -EINVAL, "element count overflows (ne[%u] = %llu)", d,
                             (unsigned long long)t->ne[d]);
    }

    rc = gguf_read_u32(ps, &t->type, "type");
    if (rc)
        return rc;
    const struct dt_traits *tr = dt_get(t->type);
    if (!tr || !tr->name || tr->block_size == 0 || tr->type_size == 0)
        return gguf_fail(ps, -EINVAL, "unknown tensor type id %u", t->type);
    if (!tr->supported)
        return gguf_fail(ps, -EINVAL, "tensor type %s (%u) is not supported", tr->name, t->type);
    if (t->ne[0] % tr->block_size != 0)
        return gguf_fail(ps, -EINVAL, "row length ne[0] = %llu is not a multiple of the %s block size %u",
                         (unsigned long long)t->ne[0], tr->name, tr->block_size);
    /* With no zero dimension, rows <= nel < 2^63; with one, nothing is stored. */
    uint64_t rows = nel == 0 ? 0 : t->ne[1] * t->ne[2] * t->ne[3];
    uint64_t row_bytes;
    if (!gguf_mul_ok(t->ne[0] / tr->block_size, tr->type_size, &row_bytes) ||
        !gguf_mul_ok(row_bytes, rows, &t->nbytes))
        return gguf_fail(ps, -EINVAL, "byte size overflows");

    rc = gguf_read_u64(ps, &t->offset, "offset");
    if (rc)
        return rc;
    if (t->offset % f->alignment != 0)
        return gguf_fail(ps, -EINVAL, "offset %llu is not a multiple of the alignment %llu",
                         (unsigned long long)t->offset, (unsigned long long)f->alignment);
    gguf_table_put(f->t_slots, f->t_cap, t->name, i);
    return 0;
}

static int gguf_parse_tensors(struct gguf_parser *ps, uint64_t n_tensors)
{
    struct gguf_file *f = ps->f;
    if (n_tensors * GGUF_MIN_TENSOR_BYTES > gguf_left(ps))
        return gguf_fail(ps, -EINVAL, "tensor count %llu exceeds file (%zu bytes left at offset %zu)",
                         (unsigned long long)n_tensors, gguf_left(ps), ps->pos);
    if (n_tensors > 0) {
        f->tensors = calloc((size_t)n_tensors, sizeof *f->tensors);
        f->t_cap = gguf_table_cap((size_t)n_tensors);
        f->t_slots = calloc(f->t_cap, sizeof *f->t_slots);
        if (!f->tensors || !f->t_slots)
            return gguf_fail(ps, -ENOMEM, "out of memory for %llu tensors",
                             (unsigned long long)n_tensors);
    }
    for (size_t i = 0; i < n_tensors; i++) {
        int rc = gguf_parse_tensor_info(ps, i, &f->tensors[i]);
        if (rc)
            return rc;
        f->n_tensors = i + 1;
    }
    ps->where[0] = '\0';

    /* The data section starts at the end of the infos rounded up to the
     * alignment. A file without tensors may end before it. */
    uint64_t pad = (f->alignment - ps->pos % f->alignment) % f->alignment;
    if (!gguf_add_ok(ps->pos, pad, &f->data_offset))
        return gguf_fail(ps, -EINVAL, "data section offset overflows");

    char show[GGUF_NAME_SHOW * 4];
    for (size_t i = 0; i < f->n_tensors; i++) {
        struct gguf_tensor *t = &f->tensors[i];
        uint64_t start, end;
        gguf_name_show(show, sizeof show, t->name);
        gguf_where(ps, "tensor '%s'", show);
        if (!gguf_add_ok(f->data_offset, t->offset, &start) ||
            !gguf_add_ok(start, t->nbytes, &end))
            return gguf_fail(ps, -EINVAL, "data offset %llu + %llu bytes overflows",
                             (unsigned long long)t->offset, (unsigned long long)t->nbytes);
        if (end > ps->size)
            return gguf_fail(ps, -EINVAL, "data [%llu, %llu) extends past end of file (size %zu)",
                             (unsigned long long)start, (unsigned long long)end, ps->size);
        t->data = ps->p + start;
    }
    ps->where[0] = '\0';
    return 0;
}

/* ---- open / close ---- */

static int gguf_parse(const uint8_t *buf, size_t size, bool mapped, struct gguf_file **out,
                      char *err, size_t errlen)
{
    struct gguf_parser ps = {.p = buf, .size = size, .err = err, .errlen = errlen};
    if (err && errlen)
        err[0] = '\0';
    struct gguf_file *f = calloc(1, sizeof *f);
    if (!f)
        return gguf_fail(&ps, -ENOMEM, "out of memory");
    f->base = buf;
    f->size = size;
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    ps.f = f;

    uint64_t n_tensors = 0, n_kv = 0;
    int rc = gguf_parse_header(&ps, &n_tensors, &n_kv);
    if (!rc)
        rc = gguf_parse_kvs(&ps, n_kv);
    if (!rc)
        rc = gguf_parse_tensors(&ps, n_tensors);
    if (rc) {
        gguf_close(f); /* not yet marked mapped: the caller unmaps */
        return rc;
    }
    f->mapped = mapped;
    *out = f;
    return 0;
}

int gguf_open_mem(const void *buf, size_t size, struct gguf_file **out, char *err, size_t errlen)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!buf || size == 0) {
        if (err && errlen)
            snprintf(err, errlen, "empty buffer");
        return -EINVAL;
    }
    return gguf_parse(buf, size, false, out, err, errlen);
}

int gguf_open(const char *path, struct gguf_file **out, char *err, size_t errlen)
{
    char eb[128];
    if (!out || !path)
        return -EINVAL;
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (err && errlen)
            snprintf(err, errlen, "cannot open: %s", strerror_r(e, eb, sizeof eb));
        return -e;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        if (err && errlen)
            snprintf(err, errlen, "cannot stat: %s", strerror_r(e, eb, sizeof eb));
        close(fd);
        return -e;
    }
    if (!S_ISREG(st.st_mode)) {
        if (err && errlen)
            snprintf(err, errlen, "not a regular file");
        close(fd);
        return -EINVAL;
    }
    if (st.st_size <= 0) {
        if (err && errlen)
            snprintf(err, errlen, "empty file");
        close(fd);
        return -EINVAL;
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        if (err && errlen)
            snprintf(err, errlen, "file too large to map");
        close(fd);
        return -EFBIG;
    }
    size_t size = (size_t)st.st_size;
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED) {
        if (err && errlen)
            snprintf(err, errlen, "cannot map %zu bytes: %s", size, strerror_r(e, eb, sizeof eb));
        return -e;
    }
    int rc = gguf_parse(map, size, true, out, err, errlen);
    if (rc)
        munmap(map, size);
    return rc;
}

void gguf_close(struct gguf_file *f)
{
    if (!f)
        return;
    struct gguf_chunk *c = f->chunks;
    while (c) {
        struct gguf_chunk *next = c->next;
        free(c);
        c = next;
    }
    free(f->kvs);
    free(f->kv_slots);
    free(f->tensors);
    free(f->t_slots);
    if (f->mapped)
        munmap((void *)f->base, f->size);
    free(f);
}

/* ---- accessors ---- */

uint32_t gguf_version(const struct gguf_file *f)
{
    return f->version;
}

uint64_t gguf_alignment(const struct gguf_file *f)
{
    return f->alignment;
}

size_t gguf_file_size(const struct gguf_file *f)
{
    return f->size;
}

uint64_t gguf_data_offset(const struct gguf_file *f)
{
    return f->data_offset;
}

size_t gguf_n_kv(const struct gguf_file *f)
{
    return f->n_kv;
}

const struct gguf_kv *gguf_kv_at(const struct gguf_file *f, size_t i)
{
    return i < f->n_kv ? &f->kvs[i] : NULL;
}

const struct gguf_kv *gguf_find(const struct gguf_file *f, const char *key)
{
    if (!f || !key)
        return NULL;
    size_t i = gguf_table_find(f->kv_slots, f->kv_cap, key, strlen(key), gguf_kv_key_at, f);
    return i == SIZE_MAX ? NULL : &f->kvs[i];
}

size_t gguf_n_tensors(const struct gguf_file *f)
{
    return f->n_tensors;
}

const struct gguf_tensor *gguf_tensor_at(const struct gguf_file *f, size_t i)
{
    return i < f->n_tensors ? &f->tensors[i] : NULL;
}

const struct gguf_tensor *gguf_find_tensor(const struct gguf_file *f, const char *name)
{
    if (!f || !name)
        return NULL;
    size_t i = gguf_table_find(f->t_slots, f->t_cap, name, strlen(name), gguf_tensor_name_at, f);
    return i == SIZE_MAX ? NULL : &f->tensors[i];
}

/* ---- typed getters ---- */

/* Integer value as sign and magnitude; -EINVAL for non-integer types. */
static int gguf_int_parts(const struct gguf_value *v, bool *neg, uint64_t *mag)
{
    if (gguf_vtype_is_uint(v->type)) {
        *neg = false;
        *mag = v->u64;
        return 0;
    }
    if (gguf_vtype_is_sint(v->type)) {
        *neg = v->i64 < 0;
        *mag = *neg ? (uint64_t)(-(v->i64 + 1)) + 1 : (uint64_t)v->i64;
        return 0;
    }
    return -EINVAL;
}

static int gguf_lookup(const struct gguf_file *f, const char *key, const struct gguf_value **v)
{
    const struct gguf_kv *kv = gguf_find(f, key);
    if (!kv)
        return -ENOENT;
    *v = &kv->v;
    return 0;
}

int gguf_get_u32(const struct gguf_file *f, const char *key, uint32_t *out)
{
    const struct gguf_value *v;
    bool neg;
    uint64_t mag;
    int rc = gguf_lookup(f, key, &v);
    if (rc)
        return rc;
    if (gguf_int_parts(v, &neg, &mag) || neg || mag > UINT32_MAX)
        return -EINVAL;
    *out = (uint32_t)mag;
    return 0;
}

int gguf_get_u64(const struct gguf_file *f, const char *key, uint64_t *out)
{
    const struct gguf_value *v;
    bool neg;
    uint64_t mag;
    int rc = gguf_lookup(f, key, &v);
    if (rc)
        return rc;
    if (gguf_int_parts(v, &neg, &mag) || neg)
        return -EINVAL;
    *out = mag;
    return 0;
}

int gguf_get_i64(const struct gguf_file *f, const char *key, int64_t *out)
{
    const struct gguf_value *v;
    bool neg;
    uint64_t mag;
    int rc = gguf_lookup(f, key, &v);
    if (rc)
        return rc;
    if (gguf_int_parts(v, &neg, &mag))
        return -EINVAL;
    if (neg)
        *out = v->i64; /* only signed types are negative */
    else if (mag > (uint64_t)INT64_MAX)
        return -EINVAL;
    else
        *out = (int64_t)mag;
    return 0;
}

int gguf_get_f32(const struct gguf_file *f, const char *key, float *out)
{
    const struct gguf_value *v;
    int rc = gguf_lookup(f, key, &v);
    if (rc)
        return rc;
    if (v->type != GGUF_VT_FLOAT32 && v->type != GGUF_VT_FLOAT64)
        return -EINVAL;
    if (isfinite(v->f64) && (v->f64 > FLT_MAX || v->f64 < -FLT_MAX))
        return -EINVAL;
    *out = (float)v->f64;
    return 0;
}

int gguf_get_bool(const struct gguf_file *f, const char *key, bool *out)
{
    const struct gguf_value *v;
    int rc = gguf_lookup(f, key, &v);
    if (rc)
        return rc;
    if (v->type != GGUF_VT_BOOL)
        return -EINVAL;
    *out = v->b;
    return 0;
}

int gguf_get_str(const struct gguf_file *f, const char *key, struct gguf_str *out)
{
    const struct gguf_value *v;
    int rc = gguf_lookup(f, key, &v);
    if (rc)
        return rc;
    if (v->type != GGUF_VT_STRING)
        return -EINVAL;
    *out = v->str;
    return 0;
}

int gguf_get_arr(const struct gguf_file *f, const char *key, enum gguf_vtype elem,
                 const struct gguf_array **out)
{
    const struct gguf_value *v;
    int rc = gguf_lookup(f, key, &v);
    if (rc)
        return rc;
    if (v->type != GGUF_VT_ARRAY || (elem != GGUF_VT_COUNT && v->arr.type != elem))
        return -EINVAL;
    *out = &v->arr;
    return 0;
}

/* Raw little-endian bits of element i of a fixed-size array. */
static uint64_t gguf_arr_bits(const struct gguf_array *a, uint64_t i, size_t sz)
{
    const uint8_t *q = (const uint8_t *)a->data + (size_t)i * sz;
    return sz == 1 ? q[0] : sz == 2 ? gguf_le16(q) : sz == 4 ? gguf_le32(q) : gguf_le64(q);
}

/* Any integer or bool element; UINT64 values above INT64_MAX saturate;
 * 0 for a wrong type or index. */
int64_t gguf_arr_i64(const struct gguf_array *a, uint64_t i)
{
    if (!a || i >= a->n || !a->data)
        return 0;
    size_t sz = gguf_vtype_size(a->type);
    if (a->type == GGUF_VT_BOOL)
        return (int64_t)gguf_arr_bits(a, i, 1);
    if (gguf_vtype_is_uint(a->type)) {
        uint64_t u = gguf_arr_bits(a, i, sz);
        return u > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)u;
    }
    if (gguf_vtype_is_sint(a->type))
        return gguf_sext(gguf_arr_bits(a, i, sz), (unsigned)sz * 8);
    return 0;
}

/* Any numeric element as float (FLOAT64 beyond the float range gives
 * +-inf); 0 for a wrong type or index. */
float gguf_arr_f32(const struct gguf_array *a, uint64_t i)
{
    if (!a || i >= a->n || !a->data)
        return 0.0f;
    if (a->type == GGUF_VT_FLOAT32) {
        uint32_t w = (uint32_t)gguf_arr_bits(a, i, 4);
        float x;
        memcpy(&x, &w, sizeof x);
        return x;
    }
    if (a->type == GGUF_VT_FLOAT64) {
        uint64_t w = gguf_arr_bits(a, i, 8);
        double x;
        memcpy(&x, &w, sizeof x);
        if (isfinite(x) && x > FLT_MAX)
            return HUGE_VALF;
        if (isfinite(x) && x < -FLT_MAX)
            return -HUGE_VALF;
        return (float)x;
    }
    if (a->type == GGUF_VT_BOOL || gguf_vtype_is_uint(a->type) || gguf_vtype_is_sint(a->type))
        return (float)gguf_arr_i64(a, i);
    return 0.0f;
}

bool gguf_str_eq(struct gguf_str s, const char *c)
{
    if (!c)
        return false;
    size_t n = strlen(c);
    return s.len == n && (n == 0 || memcmp(s.ptr, c, n) == 0);
}

const char *gguf_vtype_name(enum gguf_vtype t)
{
    static const char *const names[GGUF_VT_COUNT] = {
        [GGUF_VT_UINT8] = "UINT8",     [GGUF_VT_INT8] = "INT8",
        [GGUF_VT_UINT16] = "UINT16",   [GGUF_VT_INT16] = "INT16",
        [GGUF_VT_UINT32] = "UINT32",   [GGUF_VT_INT32] = "INT32",
        [GGUF_VT_FLOAT32] = "FLOAT32", [GGUF_VT_BOOL] = "BOOL",
        [GGUF_VT_STRING] = "STRING",   [GGUF_VT_ARRAY] = "ARRAY",
        [GGUF_VT_UINT64] = "UINT64",   [GGUF_VT_INT64] = "INT64",
        [GGUF_VT_FLOAT64] = "FLOAT64",
    };
    if ((unsigned)t >= GGUF_VT_COUNT)
        return "?";
    return names[t];
}
