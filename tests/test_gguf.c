/* test_gguf.c - tests of the GGUF reader (daemon/engine/gguf.c).
 *
 * Real files: every model in ../shared/models is checked against
 * MANIFEST.json (version, size, metadata values, every tensor's name, type,
 * shape, absolute data offset and byte size); the vocab-only files must load
 * with consistent token arrays. Hostile files are built in memory with a
 * small writer below: truncation at every byte, each kind of malformed field
 * the reader must refuse (with a message naming it), and random byte flips of
 * a real model that must load or fail cleanly.
 */
#include "gguf.h"

#include "dtype.h"
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- in-memory GGUF writer ---- */

struct gb {
    uint8_t *p;
    size_t n, cap;
};

static void gb_bytes(struct gb *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n)
            cap *= 2;
        uint8_t *np = realloc(b->p, cap);
        ck_assert_ptr_nonnull(np);
        b->p = np;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void gb_le(struct gb *b, uint64_t v, size_t n)
{
    uint8_t q[8];
    for (size_t i = 0; i < n; i++)
        q[i] = (uint8_t)(v >> (8 * i));
    gb_bytes(b, q, n);
}

static void gb_u8(struct gb *b, uint8_t v) { gb_le(b, v, 1); }
static void gb_u32(struct gb *b, uint32_t v) { gb_le(b, v, 4); }
static void gb_u64(struct gb *b, uint64_t v) { gb_le(b, v, 8); }

static void gb_f32(struct gb *b, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    gb_u32(b, u);
}

static void gb_f64(struct gb *b, double f)
{
    uint64_t u;
    memcpy(&u, &f, 8);
    gb_u64(b, u);
}

static void gb_str(struct gb *b, const char *s)
{
    size_t n = strlen(s);
    gb_u64(b, n);
    gb_bytes(b, s, n);
}

static void gb_header(struct gb *b, uint32_t ver, uint64_t n_tensors, uint64_t n_kv)
{
    gb_u32(b, GGUF_MAGIC);
    gb_u32(b, ver);
    gb_u64(b, n_tensors);
    gb_u64(b, n_kv);
}

static void gb_key(struct gb *b, const char *key, enum gguf_vtype t)
{
    gb_str(b, key);
    gb_u32(b, t);
}

static void gb_arr_head(struct gb *b, enum gguf_vtype elem, uint64_t n)
{
    gb_u32(b, elem);
    gb_u64(b, n);
}

static void gb_tensor(struct gb *b, const char *name, uint32_t n_dims, const uint64_t *ne,
                      uint32_t type, uint64_t offset)
{
    gb_str(b, name);
    gb_u32(b, n_dims);
    for (uint32_t i = 0; i < n_dims; i++)
        gb_u64(b, ne[i]);
    gb_u32(b, type);
    gb_u64(b, offset);
}

static void gb_pad(struct gb *b, size_t align)
{
    while (b->n % align)
        gb_u8(b, 0);
}

static void gb_fill(struct gb *b, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        gb_u8(b, (uint8_t)(seed + i * 7));
}

static void gb_free(struct gb *b)
{
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

/* Small valid file: every value type, nested arrays down to depth 4,
 * alignment 64 and three tensors of different types. The data section ends
 * exactly at the last tensor's last byte. */
#define SMALL_ALIGN 64
static void make_small(struct gb *b, uint32_t version)
{
    gb_header(b, version, 3, 20);
    gb_key(b, "general.architecture", GGUF_VT_STRING);
    gb_str(b, "llama");
    gb_key(b, "t.u8", GGUF_VT_UINT8);
    gb_u8(b, 200);
    gb_key(b, "t.i8", GGUF_VT_INT8);
    gb_u8(b, (uint8_t)0x9c); /* -100 */
    gb_key(b, "t.u16", GGUF_VT_UINT16);
    gb_le(b, 60000, 2);
    gb_key(b, "t.i16", GGUF_VT_INT16);
    gb_le(b, 0x8AD0, 2); /* -30000 */
    gb_key(b, "t.u32", GGUF_VT_UINT32);
    gb_u32(b, 4000000000u);
    gb_key(b, "t.i32", GGUF_VT_INT32);
    gb_u32(b, 0x88CA6C00u); /* -2000000000 */
    gb_key(b, "t.f32", GGUF_VT_FLOAT32);
    gb_f32(b, 1.5f);
    gb_key(b, "t.bool", GGUF_VT_BOOL);
    gb_u8(b, 1);
    gb_key(b, "t.u64", GGUF_VT_UINT64);
    gb_u64(b, ((uint64_t)1 << 63) + 5);
    gb_key(b, "t.i64", GGUF_VT_INT64);
    gb_u64(b, (uint64_t)0 - ((uint64_t)1 << 62)); /* -2^62 */
    gb_key(b, "t.f64", GGUF_VT_FLOAT64);
    gb_f64(b, -2.25);
    gb_key(b, "t.arr.i32", GGUF_VT_ARRAY);
    gb_arr_head(b, GGUF_VT_INT32, 3);
    gb_u32(b, 1);
    gb_u32(b, 0xFFFFFFFEu);
    gb_u32(b, 3);
    gb_key(b, "t.arr.str", GGUF_VT_ARRAY);
    gb_arr_head(b, GGUF_VT_STRING, 3);
    gb_str(b, "a");
    gb_str(b, "");
    gb_str(b, "h\xc3\xa9llo");
    /* [[1, 2] (UINT8), ["x"], [[[0.5]]]]: the float array is at depth 4 */
    gb_key(b, "t.arr.nested", GGUF_VT_ARRAY);
    gb_arr_head(b, GGUF_VT_ARRAY, 3);
    gb_arr_head(b, GGUF_VT_UINT8, 2);
    gb_u8(b, 1);
    gb_u8(b, 2);
    gb_arr_head(b, GGUF_VT_STRING, 1);
    gb_str(b, "x");
    gb_arr_head(b, GGUF_VT_ARRAY, 1);
    gb_arr_head(b, GGUF_VT_ARRAY, 1);
    gb_arr_head(b, GGUF_VT_FLOAT32, 1);
    gb_f32(b, 0.5f);
    gb_key(b, "t.arr.bool", GGUF_VT_ARRAY);
    gb_arr_head(b, GGUF_VT_BOOL, 3);
    gb_u8(b, 0);
    gb_u8(b, 1);
    gb_u8(b, 1);
    gb_key(b, "t.arr.f64", GGUF_VT_ARRAY);
    gb_arr_head(b, GGUF_VT_FLOAT64, 2);
    gb_f64(b, 0.25);
    gb_f64(b, -1e300);
    gb_key(b, "t.arr.empty", GGUF_VT_ARRAY);
    gb_arr_head(b, GGUF_VT_UINT64, 0);
    gb_key(b, "t.arr.u64", GGUF_VT_ARRAY);
    gb_arr_head(b, GGUF_VT_UINT64, 2);
    gb_u64(b, 7);
    gb_u64(b, UINT64_MAX);
    gb_key(b, "general.alignment", GGUF_VT_UINT32);
    gb_u32(b, SMALL_ALIGN);

    gb_tensor(b, "a", 2, (const uint64_t[]){4, 2}, DT_F32, 0);       /* 32 bytes */
    gb_tensor(b, "b", 3, (const uint64_t[]){32, 1, 1}, DT_Q8_0, 64); /* 34 bytes */
    gb_tensor(b, "c", 1, (const uint64_t[]){8}, DT_F16, 128);        /* 16 bytes */
    gb_pad(b, SMALL_ALIGN);
    gb_fill(b, 144, 1);
}

/* Header + one tensor info + its data; for tensor-info tests. */
static void make_one_tensor(struct gb *b, uint32_t n_dims, const uint64_t *ne, uint32_t type,
                            uint64_t offset, size_t data_bytes)
{
    gb_header(b, 3, 1, 0);
    gb_tensor(b, "blk.0.attn_q.weight", n_dims, ne, type, offset);
    gb_pad(b, GGUF_DEFAULT_ALIGNMENT);
    gb_fill(b, data_bytes, 3);
}

/* Parse an exact-size copy of buf[0..n) (so that ASan sees any overread);
 * a file that loads is closed again. Returns gguf_open_mem's result. */
static int open_copy(const void *buf, size_t n, char *err, size_t errlen)
{
    void *copy = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(copy);
    if (n)
        memcpy(copy, buf, n);
    struct gguf_file *f = (struct gguf_file *)0x1;
    int rc = gguf_open_mem(copy, n, &f, err, errlen);
    ck_assert(rc == 0 ? f != NULL : f == NULL);
    gguf_close(f);
    free(copy);
    return rc;
}

/* Expect b to be refused with -EINVAL and a message containing each of the
 * NULL-terminated fragments. */
static void expect_fail(struct gb *b, ...)
{
    struct gguf_file *f = (struct gguf_file *)0x1;
    char err[512];
    memset(err, 'Z', sizeof err);
    int rc = gguf_open_mem(b->p, b->n, &f, err, sizeof err);
    ck_assert_msg(rc == -EINVAL, "expected -EINVAL, got %d (%s)", rc, rc ? err : "loaded");
    ck_assert_ptr_null(f);
    ck_assert_msg(memchr(err, 0, sizeof err) != NULL, "message not terminated");
    va_list ap;
    va_start(ap, b);
    for (const char *frag; (frag = va_arg(ap, const char *)) != NULL;)
        ck_assert_msg(strstr(err, frag), "message '%s' lacks '%s'", err, frag);
    va_end(ap);
    gb_free(b);
}

/* Visit every value of a loaded file (like the fuzz harness), so accessors
 * run over whatever a corrupted file yields. Returns a checksum. */
static uint64_t walk_array(const struct gguf_array *a)
{
    uint64_t h = a->n;
    for (uint64_t i = 0; i < a->n; i++) {
        if (a->type == GGUF_VT_STRING)
            h += a->strs[i].len ? (uint8_t)a->strs[i].ptr[a->strs[i].len - 1] : 1;
        else if (a->type == GGUF_VT_ARRAY)
            h += walk_array(&a->arrs[i].arr);
        else
            h += (uint64_t)gguf_arr_i64(a, i) + (uint64_t)(gguf_arr_f32(a, i) != 0.0f);
    }
    return h;
}

static uint64_t walk_file(const struct gguf_file *f)
{
    uint64_t h = 0;
    for (size_t i = 0; i < gguf_n_kv(f); i++) {
        const struct gguf_kv *kv = gguf_kv_at(f, i);
        char key[256];
        size_t n = kv->key.len < sizeof key - 1 ? (size_t)kv->key.len : sizeof key - 1;
        memcpy(key, kv->key.ptr, n);
        key[n] = 0;
        if (memchr(kv->key.ptr, 0, (size_t)kv->key.len) == NULL && n == kv->key.len)
            ck_assert_ptr_eq(gguf_find(f, key), kv);
        if (kv->v.type == GGUF_VT_ARRAY)
            h += walk_array(&kv->v.arr);
    }
    for (size_t i = 0; i < gguf_n_tensors(f); i++) {
        const struct gguf_tensor *t = gguf_tensor_at(f, i);
        ck_assert(t->offset + gguf_data_offset(f) + t->nbytes <= gguf_file_size(f));
        if (t->nbytes)
            h += ((const uint8_t *)t->data)[0] + ((const uint8_t *)t->data)[t->nbytes - 1];
    }
    return h;
}

/* ---- the small valid file ---- */

START_TEST(test_small_valid)
{
    struct gb b = {0};
    make_small(&b, (uint32_t)_i);
    struct gguf_file *f;
    char err[256];
    int rc = gguf_open_mem(b.p, b.n, &f, err, sizeof err);
    ck_assert_msg(rc == 0, "open: %s", err);
    ck_assert_uint_eq(gguf_version(f), (unsigned)_i);
    ck_assert_uint_eq(gguf_alignment(f), SMALL_ALIGN);
    ck_assert_uint_eq(gguf_file_size(f), b.n);
    ck_assert_uint_eq(gguf_data_offset(f) % SMALL_ALIGN, 0);
    ck_assert_uint_eq(gguf_data_offset(f) + 144, b.n);
    ck_assert_uint_eq(gguf_n_kv(f), 20);
    ck_assert_uint_eq(gguf_n_tensors(f), 3);
    ck_assert_ptr_null(gguf_kv_at(f, 20));
    ck_assert_ptr_null(gguf_tensor_at(f, 3));

    struct gguf_str s;
    ck_assert_int_eq(gguf_get_str(f, "general.architecture", &s), 0);
    ck_assert(gguf_str_eq(s, "llama"));
    ck_assert(!gguf_str_eq(s, "llam"));
    ck_assert(!gguf_str_eq(s, "llamas"));

    const struct gguf_kv *kv = gguf_find(f, "t.i8");
    ck_assert_ptr_nonnull(kv);
    ck_assert_int_eq(kv->v.type, GGUF_VT_INT8);
    ck_assert_int_eq(kv->v.i64, -100);
    ck_assert_int_eq(gguf_find(f, "t.i16")->v.i64, -30000);
    ck_assert_int_eq(gguf_find(f, "t.i32")->v.i64, -2000000000);
    ck_assert_uint_eq(gguf_find(f, "t.u16")->v.u64, 60000);
    ck_assert(gguf_find(f, "t.bool")->v.b);
    ck_assert_double_eq(gguf_find(f, "t.f64")->v.f64, -2.25);
    ck_assert_ptr_null(gguf_find(f, "t."));
    ck_assert_ptr_null(gguf_find(f, "t.i8x"));
    ck_assert_ptr_null(gguf_find(f, ""));

    /* integer getters: conversion when the value fits, *out untouched else */
    uint32_t u32 = 77;
    uint64_t u64 = 77;
    int64_t i64 = 77;
    ck_assert_int_eq(gguf_get_u32(f, "t.u8", &u32), 0);
    ck_assert_uint_eq(u32, 200);
    ck_assert_int_eq(gguf_get_u32(f, "t.u32", &u32), 0);
    ck_assert_uint_eq(u32, 4000000000u);
    u32 = 77;
    ck_assert_int_eq(gguf_get_u32(f, "t.i8", &u32), -EINVAL);
    ck_assert_int_eq(gguf_get_u32(f, "t.u64", &u32), -EINVAL);
    ck_assert_int_eq(gguf_get_u32(f, "t.f32", &u32), -EINVAL);
    ck_assert_int_eq(gguf_get_u32(f, "t.bool", &u32), -EINVAL);
    ck_assert_int_eq(gguf_get_u32(f, "missing", &u32), -ENOENT);
    ck_assert_uint_eq(u32, 77);
    ck_assert_int_eq(gguf_get_u64(f, "t.u64", &u64), 0);
    ck_assert_uint_eq(u64, ((uint64_t)1 << 63) + 5);
    u64 = 77;
    ck_assert_int_eq(gguf_get_u64(f, "t.i64", &u64), -EINVAL);
    ck_assert_uint_eq(u64, 77);
    ck_assert_int_eq(gguf_get_i64(f, "t.i64", &i64), 0);
    ck_assert_int_eq(i64, -((int64_t)1 << 62));
    ck_assert_int_eq(gguf_get_i64(f, "t.i32", &i64), 0);
    ck_assert_int_eq(i64, -2000000000);
    ck_assert_int_eq(gguf_get_i64(f, "t.u32", &i64), 0);
    ck_assert_int_eq(i64, 4000000000);
    i64 = 77;
    ck_assert_int_eq(gguf_get_i64(f, "t.u64", &i64), -EINVAL);
    ck_assert_int_eq(gguf_get_i64(f, "general.architecture", &i64), -EINVAL);
    ck_assert_int_eq(i64, 77);

    float f32 = 77.0f;
    ck_assert_int_eq(gguf_get_f32(f, "t.f32", &f32), 0);
    ck_assert_float_eq(f32, 1.5f);
    ck_assert_int_eq(gguf_get_f32(f, "t.f64", &f32), 0);
    ck_assert_float_eq(f32, -2.25f);
    ck_assert_int_eq(gguf_get_f32(f, "t.u8", &f32), -EINVAL);
    bool bv = false;
    ck_assert_int_eq(gguf_get_bool(f, "t.bool", &bv), 0);
    ck_assert(bv);
    ck_assert_int_eq(gguf_get_bool(f, "t.u8", &bv), -EINVAL);
    ck_assert_int_eq(gguf_get_str(f, "t.u8", &s), -EINVAL);

    const struct gguf_array *a = NULL;
    ck_assert_int_eq(gguf_get_arr(f, "t.arr.i32", GGUF_VT_INT32, &a), 0);
    ck_assert_uint_eq(a->n, 3);
    ck_assert_int_eq(gguf_arr_i64(a, 0), 1);
    ck_assert_int_eq(gguf_arr_i64(a, 1), -2);
    ck_assert_int_eq(gguf_arr_i64(a, 2), 3);
    ck_assert_int_eq(gguf_arr_i64(a, 3), 0); /* out of range: 0, no read */
    ck_assert_float_eq(gguf_arr_f32(a, 1), -2.0f);
    ck_assert_int_eq(gguf_get_arr(f, "t.arr.i32", GGUF_VT_FLOAT32, &a), -EINVAL);
    ck_assert_int_eq(gguf_get_arr(f, "t.u8", GGUF_VT_COUNT, &a), -EINVAL);
    ck_assert_int_eq(gguf_get_arr(f, "t.arr.str", GGUF_VT_COUNT, &a), 0);
    ck_assert_int_eq(a->type, GGUF_VT_STRING);
    ck_assert_uint_eq(a->n, 3);
    ck_assert(gguf_str_eq(a->strs[0], "a"));
    ck_assert(gguf_str_eq(a->strs[1], ""));
    ck_assert(gguf_str_eq(a->strs[2], "h\xc3\xa9llo"));
    ck_assert_int_eq(gguf_get_arr(f, "t.arr.bool", GGUF_VT_BOOL, &a), 0);
    ck_assert_int_eq(gguf_arr_i64(a, 0), 0);
    ck_assert_int_eq(gguf_arr_i64(a, 2), 1);
    ck_assert_int_eq(gguf_get_arr(f, "t.arr.f64", GGUF_VT_FLOAT64, &a), 0);
    ck_assert_float_eq(gguf_arr_f32(a, 0), 0.25f);
    ck_assert(isinf(gguf_arr_f32(a, 1)) && gguf_arr_f32(a, 1) < 0);
    ck_assert_int_eq(gguf_get_arr(f, "t.arr.empty", GGUF_VT_UINT64, &a), 0);
    ck_assert_uint_eq(a->n, 0);
    ck_assert_int_eq(gguf_get_arr(f, "t.arr.u64", GGUF_VT_UINT64, &a), 0);
    ck_assert_int_eq(gguf_arr_i64(a, 0), 7);
    ck_assert_int_eq(gguf_arr_i64(a, 1), INT64_MAX); /* saturates */

    ck_assert_int_eq(gguf_get_arr(f, "t.arr.nested", GGUF_VT_ARRAY, &a), 0);
    ck_assert_uint_eq(a->n, 3);
    ck_assert_int_eq(a->arrs[0].type, GGUF_VT_ARRAY);
    ck_assert_int_eq(a->arrs[0].arr.type, GGUF_VT_UINT8);
    ck_assert_int_eq(gguf_arr_i64(&a->arrs[0].arr, 1), 2);
    ck_assert(gguf_str_eq(a->arrs[1].arr.strs[0], "x"));
    const struct gguf_array *d4 = &a->arrs[2].arr.arrs[0].arr.arrs[0].arr;
    ck_assert_int_eq(d4->type, GGUF_VT_FLOAT32);
    ck_assert_uint_eq(d4->n, 1);
    ck_assert_float_eq(gguf_arr_f32(d4, 0), 0.5f);

    const char *names[] = {"a", "b", "c"};
    const uint32_t types[] = {DT_F32, DT_Q8_0, DT_F16};
    const uint64_t nbytes[] = {32, 34, 16}, offs[] = {0, 64, 128};
    for (size_t i = 0; i < 3; i++) {
        const struct gguf_tensor *t = gguf_find_tensor(f, names[i]);
        ck_assert_ptr_eq(t, gguf_tensor_at(f, i));
        ck_assert_uint_eq(t->type, types[i]);
        ck_assert_uint_eq(t->nbytes, nbytes[i]);
        ck_assert_uint_eq(t->offset, offs[i]);
        ck_assert_ptr_eq(t->data, b.p + gguf_data_offset(f) + offs[i]);
        ck_assert_uint_eq(t->ne[GGUF_MAX_DIMS - 1], 1);
    }
    ck_assert_uint_eq(gguf_tensor_at(f, 0)->n_dims, 2);
    ck_assert_uint_eq(gguf_tensor_at(f, 0)->ne[1], 2);
    ck_assert_ptr_null(gguf_find_tensor(f, "d"));
    ck_assert_ptr_null(gguf_find_tensor(f, "aa"));
    gguf_close(f);
    gb_free(&b);
}
END_TEST

START_TEST(test_truncate_every_byte)
{
    struct gb b = {0};
    make_small(&b, 3);
    char err[256];
    for (size_t len = 0; len < b.n; len++) {
        err[0] = 0;
        int rc = open_copy(b.p, len, err, sizeof err);
        ck_assert_msg(rc == -EINVAL, "length %zu: rc %d", len, rc);
        ck_assert_msg(err[0] != 0, "length %zu: no message", len);
    }
    struct gguf_file *f = NULL;
    ck_assert_int_eq(gguf_open_mem(b.p, b.n, &f, err, sizeof err), 0);
    gguf_close(f);
    gb_free(&b);
}
END_TEST

/* ---- header ---- */

START_TEST(test_bad_header)
{
    struct gb b = {0};
    gb_u32(&b, 0x46554746u); /* "FGUF" */
    gb_u32(&b, 3);
    gb_u64(&b, 0);
    gb_u64(&b, 0);
    expect_fail(&b, "bad magic", NULL);

    gb_header(&b, 1, 0, 0);
    expect_fail(&b, "version 1", NULL);
    gb_header(&b, 0x03000000u, 0, 0);
    expect_fail(&b, "big-endian", NULL);
    gb_header(&b, 0x02000000u, 0, 0);
    expect_fail(&b, "big-endian", NULL);
    gb_header(&b, 4, 0, 0);
    expect_fail(&b, "version 4", NULL);
    gb_header(&b, 3, (uint64_t)1 << 21, 0);
    expect_fail(&b, "tensor count", "limit", NULL);
    gb_header(&b, 3, 0, (uint64_t)1 << 21);
    expect_fail(&b, "key count", "limit", NULL);
    gb_header(&b, 3, 0, 1000);
    expect_fail(&b, "key count 1000 exceeds file", NULL);
    gb_header(&b, 3, 1000, 0);
    expect_fail(&b, "tensor count 1000 exceeds file", NULL);
    gb_header(&b, 3, 0, 0);
    b.n = 20;
    expect_fail(&b, "too small", NULL);

    struct gguf_file *f = NULL;
    char err[128];
    ck_assert_int_eq(gguf_open_mem(NULL, 0, &f, err, sizeof err), -EINVAL);
    ck_assert_ptr_null(f);
    /* no message buffer at all */
    gb_header(&b, 1, 0, 0);
    ck_assert_int_eq(gguf_open_mem(b.p, b.n, &f, NULL, 0), -EINVAL);
    gb_free(&b);

    /* an empty file with no tensors and no keys is valid */
    gb_header(&b, 3, 0, 0);
    ck_assert_int_eq(gguf_open_mem(b.p, b.n, &f, err, sizeof err), 0);
    ck_assert_uint_eq(gguf_n_kv(f), 0);
    ck_assert_uint_eq(gguf_n_tensors(f), 0);
    ck_assert_ptr_null(gguf_find(f, "x"));
    ck_assert_ptr_null(gguf_find_tensor(f, "x"));
    ck_assert_uint_eq(gguf_alignment(f), GGUF_DEFAULT_ALIGNMENT);
    ck_assert_uint_eq(gguf_data_offset(f), 32); /* 24 rounded up */
    gguf_close(f);
    gb_free(&b);
}
END_TEST

/* ---- metadata ---- */

START_TEST(test_bad_metadata)
{
    struct gb b = {0};
    gb_header(&b, 3, 0, 1);
    gb_key(&b, "general.name", GGUF_VT_STRING);
    gb_u64(&b, 99999999);
    gb_str(&b, "abc");
    expect_fail(&b, "metadata key 0 ('general.name')", "string length 99999999 exceeds file",
                NULL);

    /* a string over the 1 MiB limit inside a file large enough to hold it */
    gb_header(&b, 3, 0, 1);
    gb_key(&b, "big", GGUF_VT_STRING);
    gb_u64(&b, (uint64_t)1 << 20);
    gb_fill(&b, ((size_t)1 << 20) + 16, 0);
    expect_fail(&b, "'big'", "exceeds the limit", NULL);

    gb_header(&b, 3, 0, 1);
    gb_u64(&b, (uint64_t)1 << 40);
    gb_fill(&b, 64, 0);
    expect_fail(&b, "metadata key 0: key length 1099511627776 exceeds file", NULL);

    gb_header(&b, 3, 0, 1);
    gb_key(&b, "", GGUF_VT_UINT8);
    gb_u8(&b, 0);
    gb_fill(&b, 16, 0);
    expect_fail(&b, "empty key", NULL);

    gb_header(&b, 3, 0, 1);
    gb_key(&b, "k", 13);
    gb_fill(&b, 16, 0);
    expect_fail(&b, "'k'", "unknown value type 13", NULL);

    gb_header(&b, 3, 0, 1);
    gb_key(&b, "flag", GGUF_VT_BOOL);
    gb_u8(&b, 2);
    gb_fill(&b, 16, 0);
    expect_fail(&b, "'flag'", "bool", NULL);

    gb_header(&b, 3, 0, 1);
    gb_key(&b, "flags", GGUF_VT_ARRAY);
    gb_arr_head(&b, GGUF_VT_BOOL, 3);
    gb_u8(&b, 1);
    gb_u8(&b, 0);
    gb_u8(&b, 255);
    expect_fail(&b, "'flags'", "element 2", NULL);

    gb_header(&b, 3, 0, 1);
    gb_key(&b, "arr", GGUF_VT_ARRAY);
    gb_arr_head(&b, 99, 1);
    gb_fill(&b, 16, 0);
    expect_fail(&b, "'arr'", "array element type 99", NULL);

    /* huge array counts: over the limit, and within it but past the file */
    gb_header(&b, 3, 0, 1);
    gb_key(&b, "arr", GGUF_VT_ARRAY);
    gb_arr_head(&b, GGUF_VT_UINT8, (uint64_t)1 << 40);
    gb_fill(&b, 64, 0);
    expect_fail(&b, "'arr'", "array count 1099511627776 exceeds the limit", NULL);
    gb_header(&b, 3, 0, 1);
    gb_key(&b, "arr", GGUF_VT_ARRAY);
    gb_arr_head(&b, GGUF_VT_UINT64, (uint64_t)1 << 26);
    gb_fill(&b, 64, 0);
    expect_fail(&b, "'arr'", "exceeds file", NULL);
    gb_header(&b, 3, 0, 1);
    gb_key(&b, "tokens", GGUF_VT_ARRAY);
    gb_arr_head(&b, GGUF_VT_STRING, (uint64_t)1 << 26);
    gb_fill(&b, 64, 0);
    expect_fail(&b, "'tokens'", "exceeds file", NULL);
    gb_header(&b, 3, 0, 1);
    gb_key(&b, "tokens", GGUF_VT_ARRAY);
    gb_arr_head(&b, GGUF_VT_STRING, 2);
    gb_str(&b, "ok");
    gb_u64(&b, 1000);
    gb_fill(&b, 64, 0);
    expect_fail(&b, "'tokens'", "length 1000 exceeds file", NULL);
    gb_header(&b, 3, 0, 1);
    gb_key(&b, "nest", GGUF_VT_ARRAY);
    gb_arr_head(&b, GGUF_VT_ARRAY, (uint64_t)1 << 25);
    gb_fill(&b, 64, 0);
    expect_fail(&b, "'nest'", "exceeds file", NULL);

    /* nesting depth 5 is refused (depth 4 loads in test_small_valid) */
    gb_header(&b, 3, 0, 1);
    gb_key(&b, "deep", GGUF_VT_ARRAY);
    for (int d = 0; d < 4; d++)
        gb_arr_head(&b, GGUF_VT_ARRAY, 1);
    gb_arr_head(&b, GGUF_VT_UINT8, 1);
    gb_u8(&b, 1);
    expect_fail(&b, "'deep'", "nested deeper than 4", NULL);

    gb_header(&b, 3, 0, 2);
    gb_key(&b, "dup", GGUF_VT_UINT8);
    gb_u8(&b, 1);
    gb_key(&b, "dup", GGUF_VT_UINT8);
    gb_u8(&b, 2);
    expect_fail(&b, "metadata key 1 ('dup')", "duplicate key", NULL);

    /* hostile key bytes are not echoed raw into messages */
    gb_header(&b, 3, 0, 1);
    gb_key(&b, "bad\n\x01key", GGUF_VT_BOOL);
    gb_u8(&b, 7);
    gb_fill(&b, 16, 0);
    expect_fail(&b, "'bad??key'", NULL);
}
END_TEST

START_TEST(test_bad_alignment)
{
    const uint32_t bad[] = {0, 3, 48, 0x80000001u};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct gb b = {0};
        gb_header(&b, 3, 0, 1);
        gb_key(&b, "general.alignment", GGUF_VT_UINT32);
        gb_u32(&b, bad[i]);
        expect_fail(&b, "general.alignment", "power of two", NULL);
    }
    struct gb b = {0};
    gb_header(&b, 3, 0, 1);
    gb_key(&b, "general.alignment", GGUF_VT_UINT64);
    gb_u64(&b, 32);
    expect_fail(&b, "general.alignment", "UINT32", NULL);

    /* alignment 16 honoured: offset 16 is fine, the data starts at 16k */
    gb_header(&b, 3, 2, 1);
    gb_key(&b, "general.alignment", GGUF_VT_UINT32);
    gb_u32(&b, 16);
    gb_tensor(&b, "x", 1, (const uint64_t[]){4}, DT_F32, 0);
    gb_tensor(&b, "y", 1, (const uint64_t[]){4}, DT_F32, 16);
    size_t hdr = b.n;
    gb_pad(&b, 16);
    gb_fill(&b, 32, 5);
    struct gguf_file *f;
    char err[256];
    ck_assert_msg(gguf_open_mem(b.p, b.n, &f, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(gguf_alignment(f), 16);
    ck_assert_uint_eq(gguf_data_offset(f), (hdr + 15) / 16 * 16);
    ck_assert_ptr_eq(gguf_find_tensor(f, "y")->data, b.p + gguf_data_offset(f) + 16);
    gguf_close(f);
    gb_free(&b);
}
END_TEST

/* ---- tensor infos ---- */

START_TEST(test_bad_tensors)
{
    struct gb b = {0};
    const uint64_t ne1[] = {64};
    make_one_tensor(&b, 1, ne1, 77, 0, 256);
    expect_fail(&b, "tensor 'blk.0.attn_q.weight'", "unknown tensor type id 77", NULL);
    make_one_tensor(&b, 1, ne1, 4, 0, 256); /* removed Q4_2 */
    expect_fail(&b, "unknown tensor type id 4", NULL);
    make_one_tensor(&b, 1, (const uint64_t[]){256}, 16, 0, 256); /* IQ2_XXS */
    expect_fail(&b, "not supported", NULL);
    make_one_tensor(&b, 1, ne1, 0xFFFFFFFFu, 0, 256);
    expect_fail(&b, "unknown tensor type", NULL);

    make_one_tensor(&b, 1, ne1, DT_F32, 16, 512);
    expect_fail(&b, "offset 16 is not a multiple of the alignment 32", NULL);

    make_one_tensor(&b, 1, ne1, DT_F32, 0, 100);
    expect_fail(&b, "tensor 'blk.0.attn_q.weight': data [", "extends past end of file", NULL);
    make_one_tensor(&b, 1, ne1, DT_F32, (uint64_t)1 << 62, 256);
    expect_fail(&b, "extends past end of file", NULL);
    make_one_tensor(&b, 1, ne1, DT_F32, UINT64_MAX - 31, 256);
    expect_fail(&b, "overflows", NULL);

    make_one_tensor(&b, 2, (const uint64_t[]){(uint64_t)1 << 32, (uint64_t)1 << 32}, DT_F32, 0, 64);
    expect_fail(&b, "element count overflows", NULL);
    make_one_tensor(&b, 1, (const uint64_t[]){(uint64_t)1 << 63}, DT_F32, 0, 64);
    expect_fail(&b, "ne[0] is negative", NULL);
    make_one_tensor(&b, 2, (const uint64_t[]){4, UINT64_MAX}, DT_F32, 0, 64);
    expect_fail(&b, "ne[1] is negative", NULL);
    make_one_tensor(&b, 1, (const uint64_t[]){(uint64_t)1 << 62}, DT_F32, 0, 64);
    expect_fail(&b, "byte size overflows", NULL);
    make_one_tensor(&b, 4, (const uint64_t[]){(uint64_t)1 << 20, 1 << 20, 1 << 20, 4}, DT_F16, 0, 64);
    expect_fail(&b, "extends past end of file", NULL);

    make_one_tensor(&b, 1, (const uint64_t[]){16}, DT_Q8_0, 0, 64);
    expect_fail(&b, "ne[0] = 16 is not a multiple of the Q8_0 block size 32", NULL);
    make_one_tensor(&b, 1, (const uint64_t[]){128}, DT_Q4_K, 0, 512);
    expect_fail(&b, "block size 256", NULL);

    make_one_tensor(&b, 0, ne1, DT_F32, 0, 256);
    expect_fail(&b, "n_dims 0 out of range", NULL);
    make_one_tensor(&b, 5, (const uint64_t[]){1, 1, 1, 1, 1}, DT_F32, 0, 256);
    expect_fail(&b, "n_dims 5 out of range", NULL);

    gb_header(&b, 3, 2, 0);
    gb_tensor(&b, "w", 1, ne1, DT_F32, 0);
    gb_tensor(&b, "w", 1, ne1, DT_F32, 256);
    gb_pad(&b, 32);
    gb_fill(&b, 512, 0);
    expect_fail(&b, "tensor 'w'", "duplicate tensor name", NULL);

    gb_header(&b, 3, 1, 0);
    gb_u64(&b, 5000);
    gb_fill(&b, 64, 0);
    expect_fail(&b, "tensor 0", "name length 5000 exceeds file", NULL);

    /* zero-sized dimensions are allowed: no data */
    make_one_tensor(&b, 2, (const uint64_t[]){0, 4}, DT_Q4_0, 0, 0);
    struct gguf_file *f;
    char err[256];
    ck_assert_msg(gguf_open_mem(b.p, b.n, &f, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(gguf_tensor_at(f, 0)->nbytes, 0);
    gguf_close(f);
    gb_free(&b);
    make_one_tensor(&b, 4, (const uint64_t[]){32, 0, (uint64_t)1 << 40, (uint64_t)1 << 40},
                    DT_Q8_0, 0, 0);
    ck_assert_msg(gguf_open_mem(b.p, b.n, &f, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(gguf_tensor_at(f, 0)->nbytes, 0);
    ck_assert_uint_eq(gguf_tensor_at(f, 0)->ne[3], (uint64_t)1 << 40);
    gguf_close(f);
    gb_free(&b);

    /* every supported type's byte size: rows x (ne0 / block) x block bytes */
    for (uint32_t t = 0; t < DT_COUNT; t++) {
        const struct dt_traits *tr = dt_get(t);
        if (!tr || !tr->supported)
            continue;
        uint64_t ne[3] = {(uint64_t)tr->block_size * 2, 3, 2};
        size_t bytes = (size_t)tr->type_size * 2 * 6;
        make_one_tensor(&b, 3, ne, t, 0, bytes);
        ck_assert_msg(gguf_open_mem(b.p, b.n, &f, err, sizeof err) == 0, "%s: %s", tr->name, err);
        ck_assert_uint_eq(gguf_tensor_at(f, 0)->nbytes, bytes);
        ck_assert_uint_eq(gguf_tensor_at(f, 0)->nbytes, dt_row_size(t, ne[0]) * 6);
        gguf_close(f);
        b.n--; /* one byte short */
        expect_fail(&b, "extends past end of file", NULL);
    }
}
END_TEST

/* ---- files on disk ---- */

START_TEST(test_open_errors)
{
    struct gguf_file *f = NULL;
    char err[256];
    ck_assert_int_eq(gguf_open("/nonexistent/x.gguf", &f, err, sizeof err), -ENOENT);
    ck_assert_ptr_null(f);
    ck_assert(err[0] != 0);
    ck_assert_int_eq(gguf_open("/", &f, err, sizeof err), -EINVAL);

    char path[] = "/tmp/test_gguf_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(gguf_open(path, &f, err, sizeof err), -EINVAL);
    ck_assert_msg(strstr(err, "empty"), "%s", err);

    struct gb b = {0};
    make_small(&b, 3);
    ck_assert_int_eq(write(fd, b.p, b.n), (ssize_t)b.n);
    ck_assert_int_eq(gguf_open(path, &f, err, sizeof err), 0);
    ck_assert_uint_eq(gguf_n_tensors(f), 3);
    ck_assert_int_eq(memcmp(gguf_find_tensor(f, "c")->data, b.p + b.n - 16, 16), 0);
    gguf_close(f);
    ck_assert_int_eq(ftruncate(fd, (off_t)b.n - 1), 0);
    f = NULL;
    ck_assert_int_eq(gguf_open(path, &f, err, sizeof err), -EINVAL);
    ck_assert_ptr_null(f);
    ck_assert_msg(strstr(err, "tensor 'c'"), "%s", err);
    close(fd);
    unlink(path);
    gb_free(&b);
    gguf_close(NULL);
}
END_TEST

/* Compare one model file with its MANIFEST.json entry. */
static void check_manifest_entry(const char *name, json_t *ent)
{
    char err[512];
    struct gguf_file *f;
    char rel[512];
    snprintf(rel, sizeof rel, "models/%s", name);
    int rc = gguf_open(tu_path(rel), &f, err, sizeof err);
    ck_assert_msg(rc == 0, "%s: %s", name, err);

    ck_assert_uint_eq(gguf_file_size(f), json_integer_value(json_object_get(ent, "bytes")));
    ck_assert_uint_eq(gguf_version(f), json_integer_value(json_object_get(ent, "gguf_version")));

    json_t *md = json_object_get(ent, "metadata");
    ck_assert_ptr_nonnull(md);
    ck_assert_msg(gguf_n_kv(f) == json_object_size(md), "%s: %zu keys, manifest has %zu", name,
                  gguf_n_kv(f), json_object_size(md));
    const char *key;
    json_t *val;
    json_object_foreach(md, key, val) {
        const struct gguf_kv *kv = gguf_find(f, key);
        ck_assert_msg(kv != NULL, "%s: key %s missing", name, key);
        if (json_is_integer(val)) {
            int64_t v;
            ck_assert_msg(gguf_get_i64(f, key, &v) == 0, "%s: %s not an integer", name, key);
            ck_assert_msg(v == json_integer_value(val), "%s: %s = %lld, manifest %lld", name, key,
                          (long long)v, (long long)json_integer_value(val));
        } else if (json_is_real(val)) {
            float v;
            ck_assert_msg(gguf_get_f32(f, key, &v) == 0, "%s: %s not a float", name, key);
            double ref = json_real_value(val);
            ck_assert_msg(fabs(v - ref) <= 1e-6 * fabs(ref), "%s: %s = %.9g, manifest %.9g", name,
                          key, (double)v, ref);
        } else if (json_is_boolean(val)) {
            bool v;
            ck_assert_int_eq(gguf_get_bool(f, key, &v), 0);
            ck_assert(v == json_is_true(val));
        } else if (json_is_string(val)) {
            const char *s = json_string_value(val);
            unsigned long long n;
            char tname[32];
            if (sscanf(s, "<array of %llu %31[A-Z0-9]>", &n, tname) == 2) {
                const struct gguf_array *a;
                ck_assert_int_eq(gguf_get_arr(f, key, GGUF_VT_COUNT, &a), 0);
                ck_assert_uint_eq(a->n, n);
                ck_assert_str_eq(gguf_vtype_name(a->type), tname);
            } else {
                struct gguf_str v;
                ck_assert_msg(gguf_get_str(f, key, &v) == 0, "%s: %s not a string", name, key);
                ck_assert_msg(gguf_str_eq(v, s), "%s: %s differs", name, key);
            }
        } else {
            ck_abort_msg("%s: unexpected manifest value for %s", name, key);
        }
    }

    json_t *ts = json_object_get(ent, "tensors");
    ck_assert_uint_eq(gguf_n_tensors(f), json_array_size(ts));
    size_t counts[DT_COUNT] = {0};
    for (size_t i = 0; i < json_array_size(ts); i++) {
        json_t *tj = json_array_get(ts, i);
        const char *tn = json_string_value(json_object_get(tj, "name"));
        const struct gguf_tensor *t = gguf_find_tensor(f, tn);
        ck_assert_msg(t != NULL, "%s: tensor %s missing", name, tn);
        ck_assert_ptr_eq(t, gguf_tensor_at(f, i)); /* same order */
        ck_assert_str_eq(dt_name(t->type), json_string_value(json_object_get(tj, "type")));
        json_t *ne = json_object_get(tj, "ne");
        ck_assert_uint_eq(t->n_dims, json_array_size(ne));
        for (size_t d = 0; d < GGUF_MAX_DIMS; d++) {
            uint64_t want = d < json_array_size(ne) ? (uint64_t)json_integer_value(json_array_get(ne, d)) : 1;
            ck_assert_uint_eq(t->ne[d], want);
        }
        uint64_t abs_off = (uint64_t)json_integer_value(json_object_get(tj, "offset"));
        ck_assert_uint_eq(gguf_data_offset(f) + t->offset, abs_off);
        ck_assert_uint_eq(t->nbytes, json_integer_value(json_object_get(tj, "nbytes")));
        ck_assert_uint_eq(t->offset % gguf_alignment(f), 0);
        counts[t->type]++;
    }
    json_t *tc = json_object_get(ent, "tensor_type_counts");
    size_t total = 0;
    json_object_foreach(tc, key, val) {
        int t = dt_from_name(key);
        ck_assert_int_ge(t, 0);
        ck_assert_uint_eq(counts[t], json_integer_value(val));
        total += counts[t];
    }
    ck_assert_uint_eq(total, gguf_n_tensors(f));

    /* the same bytes through gguf_open_mem give the same index */
    size_t size;
    void *buf = tu_read_file(tu_path(rel), &size);
    ck_assert_ptr_nonnull(buf);
    struct gguf_file *g;
    ck_assert_int_eq(gguf_open_mem(buf, size, &g, err, sizeof err), 0);
    ck_assert_uint_eq(gguf_data_offset(g), gguf_data_offset(f));
    ck_assert_uint_eq(gguf_n_kv(g), gguf_n_kv(f));
    for (size_t i = 0; i < gguf_n_tensors(f); i++) {
        const struct gguf_tensor *a = gguf_tensor_at(f, i), *b = gguf_tensor_at(g, i);
        ck_assert_int_eq(memcmp(a->data, b->data, (size_t)a->nbytes), 0);
    }
    walk_file(g);
    gguf_close(g);
    free(buf);
    gguf_close(f);
}

START_TEST(test_manifest)
{
    json_error_t jerr;
    json_t *m = json_load_file(tu_path("models/MANIFEST.json"), 0, &jerr);
    ck_assert_msg(m != NULL, "MANIFEST.json: %s", jerr.text);
    const char *name;
    json_t *ent;
    size_t n = 0;
    json_object_foreach(m, name, ent) {
        if (!json_object_get(ent, "gguf_version"))
            continue; /* llama2.c binaries */
        check_manifest_entry(name, ent);
        n++;
    }
    json_decref(m);
    ck_assert_uint_ge(n, 20);

    /* every .gguf in models/ is in the manifest */
    DIR *d = opendir(tu_path("models"));
    ck_assert_ptr_nonnull(d);
    m = json_load_file(tu_path("models/MANIFEST.json"), 0, &jerr);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l > 5 && strcmp(e->d_name + l - 5, ".gguf") == 0)
            ck_assert_msg(json_object_get(m, e->d_name), "%s not in manifest", e->d_name);
    }
    closedir(d);
    json_decref(m);
}
END_TEST

/* Vocab-only files: no tensors, token arrays of one length. */
static void check_vocab_file(const char *path, size_t *n_tokens)
{
    struct gguf_file *f;
    char err[512];
    int rc = gguf_open(path, &f, err, sizeof err);
    ck_assert_msg(rc == 0, "%s: %s", path, err);
    ck_assert_uint_eq(gguf_n_tensors(f), 0);
    ck_assert_uint_eq(gguf_version(f), 3);
    const struct gguf_array *tok, *a;
    ck_assert_int_eq(gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_VT_STRING, &tok), 0);
    ck_assert_uint_gt(tok->n, 100);
    size_t bytes = 0;
    for (uint64_t i = 0; i < tok->n; i++)
        bytes += (size_t)tok->strs[i].len + 8;
    ck_assert_uint_lt(bytes, gguf_file_size(f));
    if (gguf_get_arr(f, "tokenizer.ggml.scores", GGUF_VT_FLOAT32, &a) == 0)
        ck_assert_uint_eq(a->n, tok->n);
    if (gguf_get_arr(f, "tokenizer.ggml.token_type", GGUF_VT_INT32, &a) == 0)
        ck_assert_uint_eq(a->n, tok->n);
    struct gguf_str model;
    ck_assert_int_eq(gguf_get_str(f, "tokenizer.ggml.model", &model), 0);
    *n_tokens = (size_t)tok->n;
    walk_file(f);
    gguf_close(f);
}

START_TEST(test_vocab_files)
{
    DIR *d = opendir(tu_path("vocab"));
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    size_t n = 0, toks;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l <= 5 || strcmp(e->d_name + l - 5, ".gguf") != 0)
            continue;
        char rel[512];
        snprintf(rel, sizeof rel, "vocab/%s", e->d_name);
        check_vocab_file(tu_path(rel), &toks);
        n++;
    }
    closedir(d);
    ck_assert_uint_ge(n, 10);
    check_vocab_file(tu_path("golden/tokenize/ggml-vocab-llama-spm.gguf"), &toks);
    ck_assert_uint_eq(toks, 32000); /* README: the Llama-2 SPM vocab */
}
END_TEST

/* ---- corruption of real files ---- */

START_TEST(test_truncate_real_header)
{
    size_t size;
    uint8_t *buf = tu_read_file(tu_path("models/stories260K-q4_0-mixed.gguf"), &size);
    ck_assert_ptr_nonnull(buf);
    struct gguf_file *f;
    char err[256];
    ck_assert_int_eq(gguf_open_mem(buf, size, &f, err, sizeof err), 0);
    size_t data = (size_t)gguf_data_offset(f);
    gguf_close(f);
    /* every cut inside the header, then a few inside the data */
    for (size_t len = 0; len < size; len += len < data + 64 ? 1 : 4099) {
        int rc = open_copy(buf, len, err, sizeof err);
        ck_assert_msg(rc == -EINVAL, "length %zu: rc %d (%s)", len, rc, err);
    }
    free(buf);
}
END_TEST

static void flip_run(unsigned long long seed, int iters)
{
    size_t size;
    uint8_t *rd = tu_read_file(tu_path("models/stories260K-q4_0-mixed.gguf"), &size);
    ck_assert_ptr_nonnull(rd);
    uint8_t *buf = malloc(size); /* exact size for ASan */
    ck_assert_ptr_nonnull(buf);
    memcpy(buf, rd, size);
    struct gguf_file *f;
    char err[256];
    ck_assert_int_eq(gguf_open_mem(buf, size, &f, err, sizeof err), 0);
    size_t hdr = (size_t)gguf_data_offset(f);
    gguf_close(f);

    unsigned long long st = seed;
    size_t loaded = 0, refused = 0;
    for (int it = 0; it < iters; it++) {
        enum { MAXF = 8 };
        size_t pos[MAXF];
        uint8_t old[MAXF];
        int nf = 1 + (int)(tu_rand_uniform(&st) * MAXF);
        for (int k = 0; k < nf; k++) {
            /* mostly the header; the first 64 bytes (counts) more often */
            double r = tu_rand_uniform(&st);
            size_t span = r < 0.2 ? 64 : r < 0.95 ? hdr : size;
            pos[k] = (size_t)(tu_rand_uniform(&st) * (double)span);
            old[k] = buf[pos[k]];
            double kind = tu_rand_uniform(&st);
            if (kind < 0.4)
                buf[pos[k]] ^= (uint8_t)(1u << (int)(tu_rand_uniform(&st) * 8));
            else if (kind < 0.7)
                buf[pos[k]] = (uint8_t)(tu_rand_uniform(&st) * 256);
            else
                buf[pos[k]] = kind < 0.85 ? 0xff : 0x00;
        }
        err[0] = 0;
        f = NULL;
        int rc = gguf_open_mem(buf, size, &f, err, sizeof err);
        if (rc == 0) {
            walk_file(f);
            gguf_close(f);
            loaded++;
        } else {
            ck_assert_msg(rc == -EINVAL && f == NULL && err[0],
                          "seed %llu iteration %d: rc %d, no message", seed, it, rc);
            refused++;
        }
        for (int k = nf - 1; k >= 0; k--)
            buf[pos[k]] = old[k];
    }
    ck_assert_msg(refused > 0 && loaded > 0, "seed %llu: %zu loaded, %zu refused", seed, loaded,
                  refused);
    free(buf);
    free(rd);
}

START_TEST(test_flips_fixed)
{
    flip_run(0x5eed1234ull, 4000);
}
END_TEST

START_TEST(test_flips_fresh)
{
    unsigned long long seed = tu_rng_seed();
    fprintf(stderr, "test_flips_fresh: seed %llu (INFERD_TEST_SEED to replay)\n", seed);
    flip_run(seed, 2000);
}
END_TEST

static Suite *gguf_suite(void)
{
    Suite *s = suite_create("gguf");
    TCase *tc = tcase_create("synthetic");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_small_valid, 2, 4);
    tcase_add_test(tc, test_truncate_every_byte);
    tcase_add_test(tc, test_bad_header);
    tcase_add_test(tc, test_bad_metadata);
    tcase_add_test(tc, test_bad_alignment);
    tcase_add_test(tc, test_bad_tensors);
    tcase_add_test(tc, test_open_errors);
    suite_add_tcase(s, tc);

    TCase *tr = tcase_create("real");
    tcase_set_timeout(tr, 300);
    tcase_add_test(tr, test_manifest);
    tcase_add_test(tr, test_vocab_files);
    tcase_add_test(tr, test_truncate_real_header);
    tcase_add_test(tr, test_flips_fixed);
    tcase_add_test(tr, test_flips_fresh);
    suite_add_tcase(s, tr);
    return s;
}

int main(void)
{
    tu_shared();
    return tu_run_suite(gguf_suite());
}
