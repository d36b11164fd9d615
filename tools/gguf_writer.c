/* gguf_writer.c - streaming GGUF v3 writer (see gguf_writer.h).
 *
 * Layout written (all little-endian):
 *   "GGUF" u32 version, u64 n_tensors, u64 n_kv,
 *   n_kv x (string key, u32 type, value),
 *   n_tensors x (string name, u32 n_dims, u64 ne[n_dims], u32 type, u64 offset),
 *   zero padding to the alignment, then the tensor data, each tensor padded.
 * A string is u64 length + bytes; an array is u32 element type + u64 count +
 * elements (nested arrays repeat that without a type tag of their own).
 */
#include "gguf_writer.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dtype.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gguf_writer.c assumes a little-endian host"
#endif

#define GGUF_W_MAX_BYTES (UINT64_C(1) << 60) /* sanity cap on any size */

enum gguf_w_state { GW_META, GW_DATA, GW_DONE, GW_ERROR };

struct gw_buf {
    unsigned char *p;
    size_t len, cap;
};

struct gw_key {
    size_t off, len; /* key bytes inside the kv buffer */
    uint64_t hash;
};

struct gw_tensor {
    char name[GGUF_W_MAX_NAME + 1];
    size_t name_len;
    uint64_t hash;
    uint32_t type, n_dims;
    uint64_t ne[GGUF_MAX_DIMS];
    uint64_t nbytes, offset; /* offset relative to the data section */
};

struct gguf_w {
    int fd;
    enum gguf_w_state state;
    int err; /* sticky error once state is GW_ERROR */
    struct gw_buf kv;
    struct gw_key *keys;
    size_t n_kv, cap_kv;
    struct gw_tensor *tensors;
    size_t n_tensors, cap_tensors;
    uint64_t alignment;
    uint64_t data_end;  /* padded size of the data section so far */
    size_t cur;         /* tensor being streamed */
    uint64_t cur_done;  /* its bytes written so far */
};

static uint64_t gw_hash(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

static uint64_t gw_align(uint64_t x, uint64_t a)
{
    return (x + a - 1) & ~(a - 1);
}

/* ---- growable byte buffer ---- */

static int gw_reserve(struct gw_buf *b, size_t extra)
{
    if (extra > SIZE_MAX / 2 - b->len)
        return -EOVERFLOW;
    size_t need = b->len + extra;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < need)
        cap *= 2;
    unsigned char *p = realloc(b->p, cap);
    if (!p)
        return -ENOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

static int gw_put(struct gw_buf *b, const void *src, size_t n)
{
    if (n == 0)
        return 0;
    int rc = gw_reserve(b, n);
    if (rc)
        return rc;
    memcpy(b->p + b->len, src, n);
    b->len += n;
    return 0;
}

static int gw_put_u32(struct gw_buf *b, uint32_t v)
{
    return gw_put(b, &v, sizeof v);
}

static int gw_put_u64(struct gw_buf *b, uint64_t v)
{
    return gw_put(b, &v, sizeof v);
}

static int gw_put_str(struct gw_buf *b, const char *s, uint64_t len)
{
    if (len > GGUF_W_MAX_BYTES || (len && !s))
        return -EINVAL;
    int rc = gw_put_u64(b, len);
    return rc ? rc : gw_put(b, s, (size_t)len);
}

/* ---- file output ---- */

static int gw_write_all(int fd, const void *buf, size_t n)
{
    const unsigned char *p = buf;
    while (n > 0) {
        size_t chunk = n > (size_t)1 << 30 ? (size_t)1 << 30 : n;
        ssize_t w = write(fd, p, chunk);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (w == 0)
            return -EIO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int gw_write_zeros(int fd, uint64_t n)
{
    static const unsigned char zeros[4096];
    while (n > 0) {
        size_t chunk = n > sizeof zeros ? sizeof zeros : (size_t)n;
        int rc = gw_write_all(fd, zeros, chunk);
        if (rc)
            return rc;
        n -= chunk;
    }
    return 0;
}

static int gw_fail(struct gguf_w *w, int err)
{
    w->state = GW_ERROR;
    w->err = err;
    return err;
}

/* ---- lifecycle ---- */

int gguf_w_open(const char *path, struct gguf_w **out)
{
    if (!path || !out)
        return -EINVAL;
    struct gguf_w *w = calloc(1, sizeof *w);
    if (!w)
        return -ENOMEM;
    w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        int err = -errno;
        free(w);
        return err;
    }
    w->alignment = GGUF_DEFAULT_ALIGNMENT;
    *out = w;
    return 0;
}

void gguf_w_free(struct gguf_w *w)
{
    if (!w)
        return;
    if (w->fd >= 0)
        close(w->fd);
    free(w->kv.p);
    free(w->keys);
    free(w->tensors);
    free(w);
}

/* ---- metadata ---- */

/* Scalar value of type t (not STRING/ARRAY) from v's union, range-checked. */
static int gw_put_scalar(struct gw_buf *b, const struct gguf_value *v)
{
    switch (v->type) {
    case GGUF_VT_UINT8:
    case GGUF_VT_UINT16:
    case GGUF_VT_UINT32:
    case GGUF_VT_UINT64: {
        size_t sz = gguf_vtype_size(v->type);
        if (sz < 8 && v->u64 >> (8 * sz))
            return -ERANGE;
        uint64_t u = v->u64;
        return gw_put(b, &u, sz); /* little-endian: the low bytes come first */
    }
    case GGUF_VT_INT8:
    case GGUF_VT_INT16:
    case GGUF_VT_INT32:
    case GGUF_VT_INT64: {
        size_t sz = gguf_vtype_size(v->type);
        if (sz < 8) {
            int64_t lim = INT64_C(1) << (8 * sz - 1);
            if (v->i64 < -lim || v->i64 >= lim)
                return -ERANGE;
        }
        uint64_t u = (uint64_t)v->i64; /* two's complement bytes */
        return gw_put(b, &u, sz);
    }
    case GGUF_VT_FLOAT32: {
        float f = (float)v->f64;
        return gw_put(b, &f, sizeof f);
    }
    case GGUF_VT_FLOAT64:
        return gw_put(b, &v->f64, sizeof v->f64);
    case GGUF_VT_BOOL: {
        unsigned char c = v->b ? 1 : 0;
        return gw_put(b, &c, 1);
    }
    default:
        return -EINVAL;
    }
}

/* Array payload: element type, count, elements. depth counts array levels. */
static int gw_put_array(struct gw_buf *b, const struct gguf_array *a, unsigned depth)
{
    if (depth > GGUF_W_MAX_DEPTH || (unsigned)a->type >= GGUF_VT_COUNT)
        return -EINVAL;
    if (a->n > GGUF_W_MAX_BYTES)
        return -EINVAL;
    int rc = gw_put_u32(b, (uint32_t)a->type);
    if (!rc)
        rc = gw_put_u64(b, a->n);
    if (rc || a->n == 0)
        return rc;
    if (a->type == GGUF_VT_STRING) {
        if (!a->strs)
            return -EINVAL;
        for (uint64_t i = 0; i < a->n && !rc; i++)
            rc = gw_put_str(b, a->strs[i].ptr, a->strs[i].len);
        return rc;
    }
    if (a->type == GGUF_VT_ARRAY) {
        if (!a->arrs)
            return -EINVAL;
        for (uint64_t i = 0; i < a->n && !rc; i++) {
            if (a->arrs[i].type != GGUF_VT_ARRAY)
                return -EINVAL;
            rc = gw_put_array(b, &a->arrs[i].arr, depth + 1);
        }
        return rc;
    }
    size_t sz = gguf_vtype_size(a->type);
    if (!a->data || a->n > SIZE_MAX / sz)
        return -EINVAL;
    if (a->type == GGUF_VT_BOOL) {
        const unsigned char *p = a->data;
        for (uint64_t i = 0; i < a->n; i++)
            if (p[i] > 1)
                return -EINVAL;
    }
    return gw_put(b, a->data, (size_t)a->n * sz);
}

static int gw_put_value(struct gw_buf *b, const struct gguf_value *v)
{
    int rc = gw_put_u32(b, (uint32_t)v->type);
    if (rc)
        return rc;
    if (v->type == GGUF_VT_STRING)
        return gw_put_str(b, v->str.ptr, v->str.len);
    if (v->type == GGUF_VT_ARRAY)
        return gw_put_array(b, &v->arr, 1);
    return gw_put_scalar(b, v);
}

static int gw_writable(const struct gguf_w *w)
{
    if (w->state == GW_ERROR)
        return w->err;
    return w->state == GW_META ? 0 : -EBUSY;
}

int gguf_w_add_value(struct gguf_w *w, const char *key, const struct gguf_value *v)
{
    if (!w || !key || !v)
        return -EINVAL;
    int rc = gw_writable(w);
    if (rc)
        return rc;
    size_t klen = strlen(key);
    if (klen == 0 || klen > GGUF_W_MAX_KEY || (unsigned)v->type >= GGUF_VT_COUNT)
        return -EINVAL;
    uint64_t h = gw_hash(key, klen);
    for (size_t i = 0; i < w->n_kv; i++)
        if (w->keys[i].hash == h && w->keys[i].len == klen &&
            memcmp(w->kv.p + w->keys[i].off, key, klen) == 0)
            return -EEXIST;

    uint64_t align = 0;
    if (strcmp(key, "general.alignment") == 0) {
        if (v->type != GGUF_VT_UINT32 || v->u64 == 0 || v->u64 > UINT32_MAX ||
            (v->u64 & (v->u64 - 1)))
            return -EINVAL;
        align = v->u64;
    }
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? w->cap_kv * 2 : 32;
        struct gw_key *k = realloc(w->keys, cap * sizeof *k);
        if (!k)
            return -ENOMEM;
        w->keys = k;
        w->cap_kv = cap;
    }
    size_t start = w->kv.len;
    rc = gw_put_str(&w->kv, key, klen);
    if (!rc)
        rc = gw_put_value(&w->kv, v);
    if (rc) {
        w->kv.len = start; /* drop the partial key: the writer stays usable */
        return rc;
    }
    w->keys[w->n_kv++] = (struct gw_key){.off = start + 8, .len = klen, .hash = h};
    if (align) {
        /* Tensors declared before the key move to the new alignment. */
        w->alignment = align;
        w->data_end = 0;
        for (size_t i = 0; i < w->n_tensors; i++) {
            w->tensors[i].offset = w->data_end;
            w->data_end += gw_align(w->tensors[i].nbytes, align);
        }
    }
    return 0;
}

int gguf_w_add_str(struct gguf_w *w, const char *key, const char *s)
{
    if (!s)
        return -EINVAL;
    struct gguf_value x = {.type = GGUF_VT_STRING, .str = {.ptr = s, .len = strlen(s)}};
    return gguf_w_add_value(w, key, &x);
}

int gguf_w_add_arr(struct gguf_w *w, const char *key, enum gguf_vtype elem, const void *data,
                   size_t n)
{
    if (gguf_vtype_size(elem) == 0)
        return -EINVAL;
    struct gguf_value x = {.type = GGUF_VT_ARRAY,
                           .arr = {.type = elem, .n = n, .data = data}};
    return gguf_w_add_value(w, key, &x);
}

int gguf_w_add_arr_str(struct gguf_w *w, const char *key, const char *const *strs, size_t n)
{
    if (!w || (n && !strs))
        return -EINVAL;
    struct gguf_str *v = calloc(n ? n : 1, sizeof *v);
    if (!v)
        return -ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        if (!strs[i])
            rc = -EINVAL;
        else
            v[i] = (struct gguf_str){.ptr = strs[i], .len = strlen(strs[i])};
    }
    if (!rc) {
        struct gguf_value x = {.type = GGUF_VT_ARRAY,
                               .arr = {.type = GGUF_VT_STRING, .n = n, .strs = v}};
        rc = gguf_w_add_value(w, key, &x);
    }
    free(v);
    return rc;
}

/* ---- tensor infos ---- */

int gguf_w_add_tensor(struct gguf_w *w, const char *name, uint32_t type, uint32_t n_dims,
                      const uint64_t *ne)
{
    if (!w || !name || !ne)
        return -EINVAL;
    int rc = gw_writable(w);
    if (rc)
        return rc;
    size_t nlen = strlen(name);
    if (nlen == 0 || nlen > GGUF_W_MAX_NAME || n_dims == 0 || n_dims > GGUF_MAX_DIMS)
        return -EINVAL;
    for (uint32_t d = 0; d < n_dims; d++)
        if (ne[d] == 0 || ne[d] > GGUF_W_MAX_BYTES)
            return -EINVAL;
    if (!dt_get(type) || ne[0] > SIZE_MAX)
        return -EINVAL;
    uint64_t nbytes = dt_row_size((enum dt_type)type, (size_t)ne[0]);
    if (nbytes == 0)
        return -EINVAL;
    for (uint32_t d = 1; d < n_dims; d++) {
        if (nbytes > GGUF_W_MAX_BYTES / ne[d])
            return -EOVERFLOW;
        nbytes *= ne[d];
    }
    if (w->data_end > GGUF_W_MAX_BYTES - gw_align(nbytes, w->alignment))
        return -EOVERFLOW;
    uint64_t h = gw_hash(name, nlen);
    for (size_t i = 0; i < w->n_tensors; i++)
        if (w->tensors[i].hash == h && w->tensors[i].name_len == nlen &&
            memcmp(w->tensors[i].name, name, nlen) == 0)
            return -EEXIST;
    if (w->n_tensors == w->cap_tensors) {
        size_t cap = w->cap_tensors ? w->cap_tensors * 2 : 64;
        struct gw_tensor *t = realloc(w->tensors, cap * sizeof *t);
        if (!t)
            return -ENOMEM;
        w->tensors = t;
        w->cap_tensors = cap;
    }
    struct gw_tensor *t = &w->tensors[w->n_tensors++];
    memset(t, 0, sizeof *t);
    memcpy(t->name, name, nlen);
    t->name_len = nlen;
    t->hash = h;
    t->type = type;
    t->n_dims = n_dims;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++)
        t->ne[d] = d < n_dims ? ne[d] : 1;
    t->nbytes = nbytes;
    t->offset = w->data_end;
    w->data_end += gw_align(nbytes, w->alignment);
    return 0;
}

/* ---- header and data ---- */

static uint64_t gw_header_size(const struct gguf_w *w)
{
    uint64_t n = 4 + 4 + 8 + 8 + w->kv.len;
    for (size_t i = 0; i < w->n_tensors; i++)
        n += 8 + w->tensors[i].name_len + 4 + 8 * (uint64_t)w->tensors[i].n_dims + 4 + 8;
    return n;
}

/* Skip padding and tensors that are complete (none are empty, but the cursor
 * logic does not rely on it). */
static int gw_advance(struct gguf_w *w)
{
    while (w->cur < w->n_tensors && w->cur_done == w->tensors[w->cur].nbytes) {
        const struct gw_tensor *t = &w->tensors[w->cur];
        int rc = gw_write_zeros(w->fd, gw_align(t->nbytes, w->alignment) - t->nbytes);
        if (rc)
            return gw_fail(w, rc);
        w->cur++;
        w->cur_done = 0;
    }
    return 0;
}

int gguf_w_write_header(struct gguf_w *w)
{
    if (!w)
        return -EINVAL;
    int rc = gw_writable(w);
    if (rc)
        return rc;
    struct gw_buf info = {0};
    rc = gw_put_u32(&info, GGUF_MAGIC);
    if (!rc)
        rc = gw_put_u32(&info, GGUF_W_VERSION);
    if (!rc)
        rc = gw_put_u64(&info, w->n_tensors);
    if (!rc)
        rc = gw_put_u64(&info, w->n_kv);
    if (!rc)
        rc = gw_put(&info, w->kv.p, w->kv.len);
    for (size_t i = 0; i < w->n_tensors && !rc; i++) {
        const struct gw_tensor *t = &w->tensors[i];
        rc = gw_put_str(&info, t->name, t->name_len);
        if (!rc)
            rc = gw_put_u32(&info, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims && !rc; d++)
            rc = gw_put_u64(&info, t->ne[d]);
        if (!rc)
            rc = gw_put_u32(&info, t->type);
        if (!rc)
            rc = gw_put_u64(&info, t->offset);
    }
    if (!rc)
        rc = gw_write_all(w->fd, info.p, info.len);
    if (!rc)
        rc = gw_write_zeros(w->fd, gw_align(info.len, w->alignment) - info.len);
    free(info.p);
    if (rc)
        return gw_fail(w, rc);
    w->state = GW_DATA;
    w->cur = 0;
    w->cur_done = 0;
    return 0;
}

int gguf_w_write_data(struct gguf_w *w, const void *buf, size_t n)
{
    if (!w || (n && !buf))
        return -EINVAL;
    if (w->state == GW_ERROR)
        return w->err;
    if (w->state != GW_DATA)
        return -EINVAL;
    if (n == 0)
        return 0;
    if (w->cur >= w->n_tensors || n > w->tensors[w->cur].nbytes - w->cur_done)
        return -EINVAL;
    int rc = gw_write_all(w->fd, buf, n);
    if (rc)
        return gw_fail(w, rc);
    w->cur_done += n;
    return gw_advance(w);
}

int gguf_w_finish(struct gguf_w *w)
{
    if (!w)
        return -EINVAL;
    int rc;
    if (w->state == GW_META && (rc = gguf_w_write_header(w)) != 0)
        return rc;
    if (w->state == GW_ERROR)
        return w->err;
    if (w->state != GW_DATA || w->cur != w->n_tensors)
        return -EINVAL;
    int fd = w->fd;
    w->fd = -1;
    if (close(fd) != 0)
        return gw_fail(w, -errno);
    w->state = GW_DONE;
    return 0;
}

/* ---- facts ---- */

size_t gguf_w_n_kv(const struct gguf_w *w)
{
    return w->n_kv;
}

size_t gguf_w_n_tensors(const struct gguf_w *w)
{
    return w->n_tensors;
}

uint64_t gguf_w_alignment(const struct gguf_w *w)
{
    return w->alignment;
}

uint64_t gguf_w_tensor_nbytes(const struct gguf_w *w, size_t i)
{
    return i < w->n_tensors ? w->tensors[i].nbytes : 0;
}

uint64_t gguf_w_tensor_offset(const struct gguf_w *w, size_t i)
{
    return i < w->n_tensors ? w->tensors[i].offset : 0;
}

uint64_t gguf_w_data_offset(const struct gguf_w *w)
{
    return gw_align(gw_header_size(w), w->alignment);
}

uint64_t gguf_w_file_size(const struct gguf_w *w)
{
    return gguf_w_data_offset(w) + w->data_end;
}
