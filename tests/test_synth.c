/* test_synth.c - tests of the GGUF writer (tools/gguf_writer.c) and the
 * synthetic model generator (tools/synth.c).
 *
 * Writer: every metadata value type (nested arrays included) and tensor data
 * survive a round trip through the reader; offsets honour the alignment; the
 * file size is exact; misuse and I/O failures are refused with -errno.
 * Synth: the `tiny` preset in every writable type is read back and checked
 * (metadata, tensor names/shapes/types incl. the Q6_K output rule and --pure,
 * sizes) and its dequantized tensors are compared with a regeneration of the
 * float weights within per-type error bounds; seeds are deterministic and
 * thread-count independent; --vocab-from copies the tokenizer exactly.
 */
#include "tools/gguf_writer.h"
#include "tools/synth.h"

#include "dtype.h"
#include "gguf.h"
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- helpers ---- */

static void td_make(char *dir, size_t n)
{
    const char *base = getenv("TMPDIR");
    snprintf(dir, n, "%s/test_synth.XXXXXX", base && *base ? base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void td_remove(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        ck_assert_int_eq(unlink(p), 0);
    }
    closedir(d);
    ck_assert_int_eq(rmdir(dir), 0);
}

static size_t file_size(const char *path)
{
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    return (size_t)st.st_size;
}

static struct gguf_file *open_ok(const char *path)
{
    struct gguf_file *f = NULL;
    char err[256] = "";
    int rc = gguf_open(path, &f, err, sizeof err);
    ck_assert_msg(rc == 0, "gguf_open %s: %d %s", path, rc, err);
    return f;
}

static uint32_t get_u32(const struct gguf_file *f, const char *key)
{
    uint32_t v = 0;
    ck_assert_msg(gguf_get_u32(f, key, &v) == 0, "missing key %s", key);
    return v;
}

static float get_f32(const struct gguf_file *f, const char *key)
{
    float v = 0;
    ck_assert_msg(gguf_get_f32(f, key, &v) == 0, "missing key %s", key);
    return v;
}

static void check_str(const struct gguf_file *f, const char *key, const char *want)
{
    struct gguf_str s;
    ck_assert_msg(gguf_get_str(f, key, &s) == 0, "missing key %s", key);
    ck_assert_msg(gguf_str_eq(s, want), "%s: got '%.*s', want '%s'", key, (int)s.len, s.ptr,
                  want);
}

/* ---- writer ---- */

START_TEST(test_writer_roundtrip)
{
    char dir[256], path[300];
    td_make(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/rt.gguf", dir);

    struct gguf_w *w = NULL;
    ck_assert_int_eq(gguf_w_open(path, &w), 0);
    ck_assert_int_eq(gguf_w_add_uint(w, "t.u8", GGUF_VT_UINT8, 250), 0);
    ck_assert_int_eq(gguf_w_add_int(w, "t.i8", GGUF_VT_INT8, -128), 0);
    ck_assert_int_eq(gguf_w_add_uint(w, "t.u16", GGUF_VT_UINT16, 65535), 0);
    ck_assert_int_eq(gguf_w_add_int(w, "t.i16", GGUF_VT_INT16, -30000), 0);
    ck_assert_int_eq(gguf_w_add_u32(w, "t.u32", 4000000000u), 0);
    ck_assert_int_eq(gguf_w_add_i32(w, "t.i32", -2000000000), 0);
    ck_assert_int_eq(gguf_w_add_f32(w, "t.f32", 1.5e-5f), 0);
    ck_assert_int_eq(gguf_w_add_bool(w, "t.bool", true), 0);
    ck_assert_int_eq(gguf_w_add_str(w, "t.str", "h\xc3\xa9llo"), 0);
    ck_assert_int_eq(gguf_w_add_u64(w, "t.u64", UINT64_MAX - 7), 0);
    ck_assert_int_eq(gguf_w_add_int(w, "t.i64", GGUF_VT_INT64, INT64_MIN + 3), 0);
    ck_assert_int_eq(gguf_w_add_f64(w, "t.f64", -3.25e100), 0);
    ck_assert_int_eq(gguf_w_add_str(w, "t.empty", ""), 0);

    const uint8_t a_u8[] = {0, 1, 255};
    const int8_t a_i8[] = {-128, 0, 127};
    const uint16_t a_u16[] = {1, 65535};
    const int16_t a_i16[] = {-32768, 32767};
    const uint32_t a_u32[] = {7, 0xffffffffu, 3};
    const int32_t a_i32[] = {-1, 2, -3, 4};
    const float a_f32[] = {0.5f, -1e30f, 3.0f};
    const uint8_t a_bool[] = {1, 0, 1};
    const uint64_t a_u64[] = {UINT64_MAX, 0};
    const int64_t a_i64[] = {INT64_MIN, INT64_MAX};
    const double a_f64[] = {1e-300, -2.5};
    ck_assert_int_eq(gguf_w_add_arr(w, "a.u8", GGUF_VT_UINT8, a_u8, 3), 0);
    ck_assert_int_eq(gguf_w_add_arr(w, "a.i8", GGUF_VT_INT8, a_i8, 3), 0);
    ck_assert_int_eq(gguf_w_add_arr(w, "a.u16", GGUF_VT_UINT16, a_u16, 2), 0);
    ck_assert_int_eq(gguf_w_add_arr(w, "a.i16", GGUF_VT_INT16, a_i16, 2), 0);
    ck_assert_int_eq(gguf_w_add_arr(w, "a.u32", GGUF_VT_UINT32, a_u32, 3), 0);
    ck_assert_int_eq(gguf_w_add_arr(w, "a.i32", GGUF_VT_INT32, a_i32, 4), 0);
    ck_assert_int_eq(gguf_w_add_arr(w, "a.f32", GGUF_VT_FLOAT32, a_f32, 3), 0);
    ck_assert_int_eq(gguf_w_add_arr(w, "a.bool", GGUF_VT_BOOL, a_bool, 3), 0);
    ck_assert_int_eq(gguf_w_add_arr(w, "a.u64", GGUF_VT_UINT64, a_u64, 2), 0);
    ck_assert_int_eq(gguf_w_add_arr(w, "a.i64", GGUF_VT_INT64, a_i64, 2), 0);
    ck_assert_int_eq(gguf_w_add_arr(w, "a.f64", GGUF_VT_FLOAT64, a_f64, 2), 0);
    ck_assert_int_eq(gguf_w_add_arr(w, "a.empty", GGUF_VT_UINT32, NULL, 0), 0);
    const char *const strs[] = {"one", "", "three \xe2\x96\x81"};
    ck_assert_int_eq(gguf_w_add_arr_str(w, "a.str", strs, 3), 0);

    /* Nested: [[1, 2], [3]], [["x"], []], and a three-level array. */
    const uint32_t n1[] = {1, 2}, n2[] = {3};
    struct gguf_value inner[2] = {
        {.type = GGUF_VT_ARRAY, .arr = {.type = GGUF_VT_UINT32, .n = 2, .data = n1}},
        {.type = GGUF_VT_ARRAY, .arr = {.type = GGUF_VT_UINT32, .n = 1, .data = n2}},
    };
    struct gguf_value nested = {.type = GGUF_VT_ARRAY,
                                .arr = {.type = GGUF_VT_ARRAY, .n = 2, .arrs = inner}};
    ck_assert_int_eq(gguf_w_add_value(w, "n.u32", &nested), 0);
    struct gguf_str xs = {.ptr = "x", .len = 1};
    struct gguf_value sinner[2] = {
        {.type = GGUF_VT_ARRAY, .arr = {.type = GGUF_VT_STRING, .n = 1, .strs = &xs}},
        {.type = GGUF_VT_ARRAY, .arr = {.type = GGUF_VT_STRING, .n = 0}},
    };
    struct gguf_value snested = {.type = GGUF_VT_ARRAY,
                                 .arr = {.type = GGUF_VT_ARRAY, .n = 2, .arrs = sinner}};
    ck_assert_int_eq(gguf_w_add_value(w, "n.str", &snested), 0);
    struct gguf_value deep = {.type = GGUF_VT_ARRAY,
                              .arr = {.type = GGUF_VT_ARRAY, .n = 1, .arrs = &nested}};
    ck_assert_int_eq(gguf_w_add_value(w, "n.deep", &deep), 0);

    /* Tensors: F32 [5, 3], Q8_0 [64, 2], F16 [3]. */
    const uint64_t ne_a[] = {5, 3}, ne_b[] = {64, 2}, ne_c[] = {3};
    ck_assert_int_eq(gguf_w_add_tensor(w, "a", DT_F32, 2, ne_a), 0);
    ck_assert_int_eq(gguf_w_add_tensor(w, "b.weight", DT_Q8_0, 2, ne_b), 0);
    ck_assert_int_eq(gguf_w_add_tensor(w, "c", DT_F16, 1, ne_c), 0);
    ck_assert_uint_eq(gguf_w_tensor_nbytes(w, 0), 60);
    ck_assert_uint_eq(gguf_w_tensor_nbytes(w, 1), 2 * 2 * 34);
    ck_assert_uint_eq(gguf_w_tensor_nbytes(w, 2), 6);
    ck_assert_uint_eq(gguf_w_tensor_offset(w, 1), 64);
    ck_assert_uint_eq(gguf_w_tensor_offset(w, 2), 64 + 160);

    unsigned char data[136 + 60 + 6];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)(i * 37 + 11);
    ck_assert_int_eq(gguf_w_write_header(w), 0);
    ck_assert_int_eq(gguf_w_write_data(w, data, 7), 0);      /* pieces of "a" */
    ck_assert_int_eq(gguf_w_write_data(w, data + 7, 53), 0);
    ck_assert_int_eq(gguf_w_write_data(w, data + 60, 136), 0);
    ck_assert_int_eq(gguf_w_write_data(w, data + 196, 6), 0);
    uint64_t want_size = gguf_w_file_size(w), data_off = gguf_w_data_offset(w);
    ck_assert_int_eq(gguf_w_finish(w), 0);
    gguf_w_free(w);

    ck_assert_uint_eq(file_size(path), want_size);
    ck_assert_uint_eq(data_off % 32, 0);
    ck_assert_uint_eq(want_size, data_off + 64 + 160 + 32);
    struct gguf_file *f = open_ok(path);
    ck_assert_uint_eq(gguf_version(f), 3);
    ck_assert_uint_eq(gguf_data_offset(f), data_off);
    ck_assert_uint_eq(gguf_n_kv(f), 29);

    const struct {
        const char *key;
        enum gguf_vtype t;
        uint64_t u;   /* unsigned and bool */
        int64_t i;    /* signed */
        double f;     /* floats */
    } sc[] = {
        {"t.u8", GGUF_VT_UINT8, 250, 0, 0},
        {"t.i8", GGUF_VT_INT8, 0, -128, 0},
        {"t.u16", GGUF_VT_UINT16, 65535, 0, 0},
        {"t.i16", GGUF_VT_INT16, 0, -30000, 0},
        {"t.u32", GGUF_VT_UINT32, 4000000000u, 0, 0},
        {"t.i32", GGUF_VT_INT32, 0, -2000000000, 0},
        {"t.f32", GGUF_VT_FLOAT32, 0, 0, (double)1.5e-5f},
        {"t.bool", GGUF_VT_BOOL, 1, 0, 0},
        {"t.u64", GGUF_VT_UINT64, UINT64_MAX - 7, 0, 0},
        {"t.i64", GGUF_VT_INT64, 0, INT64_MIN + 3, 0},
        {"t.f64", GGUF_VT_FLOAT64, 0, 0, -3.25e100},
    };
    for (size_t i = 0; i < sizeof sc / sizeof sc[0]; i++) {
        const struct gguf_kv *kv = gguf_find(f, sc[i].key);
        ck_assert_ptr_nonnull(kv);
        ck_assert_msg(kv->v.type == sc[i].t, "%s: type %d", sc[i].key, kv->v.type);
        switch (sc[i].t) {
        case GGUF_VT_FLOAT32:
        case GGUF_VT_FLOAT64: ck_assert(kv->v.f64 == sc[i].f); break;
        case GGUF_VT_BOOL: ck_assert(kv->v.b == (sc[i].u != 0)); break;
        case GGUF_VT_INT8:
        case GGUF_VT_INT16:
        case GGUF_VT_INT32:
        case GGUF_VT_INT64: ck_assert(kv->v.i64 == sc[i].i); break;
        default: ck_assert(kv->v.u64 == sc[i].u); break;
        }
    }
    check_str(f, "t.str", "h\xc3\xa9llo");
    check_str(f, "t.empty", "");

    const struct gguf_array *a;
    const struct {
        const char *key;
        enum gguf_vtype t;
        const void *data;
        size_t n, size;
    } arrs[] = {
        {"a.u8", GGUF_VT_UINT8, a_u8, 3, 1},       {"a.i8", GGUF_VT_INT8, a_i8, 3, 1},
        {"a.u16", GGUF_VT_UINT16, a_u16, 2, 2},    {"a.i16", GGUF_VT_INT16, a_i16, 2, 2},
        {"a.u32", GGUF_VT_UINT32, a_u32, 3, 4},    {"a.i32", GGUF_VT_INT32, a_i32, 4, 4},
        {"a.f32", GGUF_VT_FLOAT32, a_f32, 3, 4},   {"a.bool", GGUF_VT_BOOL, a_bool, 3, 1},
        {"a.u64", GGUF_VT_UINT64, a_u64, 2, 8},    {"a.i64", GGUF_VT_INT64, a_i64, 2, 8},
        {"a.f64", GGUF_VT_FLOAT64, a_f64, 2, 8},   {"a.empty", GGUF_VT_UINT32, NULL, 0, 4},
    };
    for (size_t i = 0; i < sizeof arrs / sizeof arrs[0]; i++) {
        ck_assert_msg(gguf_get_arr(f, arrs[i].key, arrs[i].t, &a) == 0, "%s", arrs[i].key);
        ck_assert_uint_eq(a->n, arrs[i].n);
        if (arrs[i].n)
            ck_assert_mem_eq(a->data, arrs[i].data, arrs[i].n * arrs[i].size);
    }
    ck_assert_int_eq(gguf_arr_i64(gguf_get_arr(f, "a.i32", GGUF_VT_INT32, &a) ? NULL : a, 2), -3);
    ck_assert_int_eq(gguf_get_arr(f, "a.str", GGUF_VT_STRING, &a), 0);
    ck_assert_uint_eq(a->n, 3);
    for (size_t i = 0; i < 3; i++)
        ck_assert(gguf_str_eq(a->strs[i], strs[i]));

    ck_assert_int_eq(gguf_get_arr(f, "n.u32", GGUF_VT_ARRAY, &a), 0);
    ck_assert_uint_eq(a->n, 2);
    ck_assert_int_eq(a->arrs[0].arr.type, GGUF_VT_UINT32);
    ck_assert_uint_eq(a->arrs[0].arr.n, 2);
    ck_assert_int_eq(gguf_arr_i64(&a->arrs[0].arr, 1), 2);
    ck_assert_uint_eq(a->arrs[1].arr.n, 1);
    ck_assert_int_eq(gguf_arr_i64(&a->arrs[1].arr, 0), 3);
    ck_assert_int_eq(gguf_get_arr(f, "n.str", GGUF_VT_ARRAY, &a), 0);
    ck_assert_uint_eq(a->n, 2);
    ck_assert_int_eq(a->arrs[0].arr.type, GGUF_VT_STRING);
    ck_assert(gguf_str_eq(a->arrs[0].arr.strs[0], "x"));
    ck_assert_uint_eq(a->arrs[1].arr.n, 0);
    ck_assert_int_eq(gguf_get_arr(f, "n.deep", GGUF_VT_ARRAY, &a), 0);
    ck_assert_uint_eq(a->n, 1);
    ck_assert_int_eq(a->arrs[0].arr.type, GGUF_VT_ARRAY);
    ck_assert_int_eq(gguf_arr_i64(&a->arrs[0].arr.arrs[1].arr, 0), 3);

    ck_assert_uint_eq(gguf_n_tensors(f), 3);
    const struct gguf_tensor *t = gguf_find_tensor(f, "b.weight");
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(t->type, DT_Q8_0);
    ck_assert_uint_eq(t->n_dims, 2);
    ck_assert_uint_eq(t->ne[0], 64);
    ck_assert_uint_eq(t->ne[1], 2);
    ck_assert_uint_eq(t->offset, 64);
    ck_assert_mem_eq(gguf_tensor_at(f, 0)->data, data, 60);
    ck_assert_mem_eq(t->data, data + 60, 136);
    t = gguf_tensor_at(f, 2);
    ck_assert(gguf_str_eq(t->name, "c"));
    ck_assert_uint_eq(t->n_dims, 1);
    ck_assert_mem_eq(t->data, data + 196, 6);
    gguf_close(f);
    td_remove(dir);
}
END_TEST

START_TEST(test_writer_alignment)
{
    char dir[256], path[300];
    td_make(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/al.gguf", dir);
    struct gguf_w *w = NULL;
    ck_assert_int_eq(gguf_w_open(path, &w), 0);
    const uint64_t ne[] = {10};
    ck_assert_int_eq(gguf_w_add_tensor(w, "x", DT_F32, 1, ne), 0);
    ck_assert_int_eq(gguf_w_add_u32(w, "general.alignment", 256), 0); /* after a tensor */
    ck_assert_int_eq(gguf_w_add_tensor(w, "y", DT_F32, 1, ne), 0);
    ck_assert_uint_eq(gguf_w_alignment(w), 256);
    ck_assert_uint_eq(gguf_w_tensor_offset(w, 1), 256);
    float v[20];
    for (int i = 0; i < 20; i++)
        v[i] = (float)i;
    ck_assert_int_eq(gguf_w_write_header(w), 0);
    ck_assert_int_eq(gguf_w_write_data(w, v, 40), 0);
    ck_assert_int_eq(gguf_w_write_data(w, v + 10, 40), 0);
    uint64_t size = gguf_w_file_size(w);
    ck_assert_int_eq(gguf_w_finish(w), 0);
    gguf_w_free(w);
    ck_assert_uint_eq(file_size(path), size);
    struct gguf_file *f = open_ok(path);
    ck_assert_uint_eq(gguf_alignment(f), 256);
    ck_assert_uint_eq(gguf_data_offset(f) % 256, 0);
    ck_assert_uint_eq(size, gguf_data_offset(f) + 512);
    ck_assert_mem_eq(gguf_find_tensor(f, "y")->data, v + 10, 40);
    gguf_close(f);
    td_remove(dir);
}
END_TEST

START_TEST(test_writer_errors)
{
    struct gguf_w *w = NULL;
    ck_assert_int_eq(gguf_w_open("/nonexistent-dir-for-test/x.gguf", &w), -ENOENT);
    ck_assert_ptr_null(w);

    char dir[256], path[300];
    td_make(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/e.gguf", dir);
    ck_assert_int_eq(gguf_w_open(dir, &w), -EISDIR);
    ck_assert_int_eq(gguf_w_open(path, &w), 0);
    ck_assert_int_eq(gguf_w_add_u32(w, "k", 1), 0);
    ck_assert_int_eq(gguf_w_add_u32(w, "k", 2), -EEXIST);
    ck_assert_int_eq(gguf_w_add_u32(w, "", 2), -EINVAL);
    ck_assert_int_eq(gguf_w_add_uint(w, "r8", GGUF_VT_UINT8, 256), -ERANGE);
    ck_assert_int_eq(gguf_w_add_int(w, "r16", GGUF_VT_INT16, 32768), -ERANGE);
    ck_assert_int_eq(gguf_w_add_int(w, "r32", GGUF_VT_INT32, -2147483649LL), -ERANGE);
    ck_assert_int_eq(gguf_w_add_u64(w, "general.alignment", 64), -EINVAL);  /* not UINT32 */
    ck_assert_int_eq(gguf_w_add_u32(w, "general.alignment", 48), -EINVAL);  /* not 2^k */
    const uint8_t bad_bool[] = {0, 2};
    ck_assert_int_eq(gguf_w_add_arr(w, "bb", GGUF_VT_BOOL, bad_bool, 2), -EINVAL);
    ck_assert_int_eq(gguf_w_add_arr(w, "bs", GGUF_VT_STRING, bad_bool, 2), -EINVAL);
    struct gguf_value bad = {.type = GGUF_VT_COUNT};
    ck_assert_int_eq(gguf_w_add_value(w, "bt", &bad), -EINVAL);
    /* Nesting deeper than GGUF_W_MAX_DEPTH. */
    struct gguf_value lv[GGUF_W_MAX_DEPTH + 1];
    const uint32_t one = 1;
    lv[0] = (struct gguf_value){.type = GGUF_VT_ARRAY,
                                .arr = {.type = GGUF_VT_UINT32, .n = 1, .data = &one}};
    for (int i = 1; i <= GGUF_W_MAX_DEPTH; i++)
        lv[i] = (struct gguf_value){.type = GGUF_VT_ARRAY,
                                    .arr = {.type = GGUF_VT_ARRAY, .n = 1, .arrs = &lv[i - 1]}};
    ck_assert_int_eq(gguf_w_add_value(w, "deep.ok", &lv[GGUF_W_MAX_DEPTH - 1]), 0);
    ck_assert_int_eq(gguf_w_add_value(w, "deep.bad", &lv[GGUF_W_MAX_DEPTH]), -EINVAL);
    ck_assert_uint_eq(gguf_w_n_kv(w), 2); /* refused values left nothing behind */

    const uint64_t ne_bad[] = {33, 2}, ne_ok[] = {32, 2}, ne_zero[] = {0};
    ck_assert_int_eq(gguf_w_add_tensor(w, "t", DT_Q4_0, 2, ne_bad), -EINVAL);
    ck_assert_int_eq(gguf_w_add_tensor(w, "t", DT_F32, 1, ne_zero), -EINVAL);
    ck_assert_int_eq(gguf_w_add_tensor(w, "t", DT_F32, 5, ne_ok), -EINVAL);
    ck_assert_int_eq(gguf_w_add_tensor(w, "t", 4, 2, ne_ok), -EINVAL); /* removed type id */
    ck_assert_int_eq(gguf_w_add_tensor(w, "0123456789012345678901234567890123456789"
                                          "012345678901234567890123", DT_F32, 2, ne_ok),
                     -EINVAL);
    ck_assert_int_eq(gguf_w_add_tensor(w, "t", DT_Q4_0, 2, ne_ok), 0);
    ck_assert_int_eq(gguf_w_add_tensor(w, "t", DT_F32, 2, ne_ok), -EEXIST);
    ck_assert_int_eq(gguf_w_write_data(w, "x", 1), -EINVAL); /* before the header */
    ck_assert_int_eq(gguf_w_write_header(w), 0);
    ck_assert_int_eq(gguf_w_add_u32(w, "late", 1), -EBUSY);
    ck_assert_int_eq(gguf_w_add_tensor(w, "late", DT_F32, 2, ne_ok), -EBUSY);
    unsigned char buf[64] = {0};
    ck_assert_int_eq(gguf_w_write_data(w, buf, 37), -EINVAL); /* tensor is 36 bytes */
    ck_assert_int_eq(gguf_w_write_data(w, buf, 20), 0);
    ck_assert_int_eq(gguf_w_finish(w), -EINVAL); /* incomplete */
    ck_assert_int_eq(gguf_w_write_data(w, buf, 16), 0);
    ck_assert_int_eq(gguf_w_write_data(w, buf, 1), -EINVAL); /* nothing left */
    ck_assert_int_eq(gguf_w_finish(w), 0);
    gguf_w_free(w);
    struct gguf_file *f = open_ok(path);
    ck_assert_uint_eq(gguf_n_tensors(f), 1);
    gguf_close(f);

    /* A full device: the header write fails and the writer stays failed. */
    ck_assert_int_eq(gguf_w_open("/dev/full", &w), 0);
    ck_assert_int_eq(gguf_w_add_u32(w, "k", 1), 0);
    ck_assert_int_eq(gguf_w_write_header(w), -ENOSPC);
    ck_assert_int_eq(gguf_w_add_u32(w, "k2", 1), -ENOSPC);
    ck_assert_int_eq(gguf_w_finish(w), -ENOSPC);
    gguf_w_free(w);
    gguf_w_free(NULL);
    td_remove(dir);
}
END_TEST

/* ---- synth ---- */

static const enum dt_type all_types[] = {
    DT_F32, DT_F16, DT_BF16, DT_Q8_0, DT_Q4_0, DT_Q4_1, DT_Q5_0,
    DT_Q5_1, DT_Q2_K, DT_Q3_K, DT_Q4_K, DT_Q5_K, DT_Q6_K,
};
#define N_TYPES (sizeof all_types / sizeof all_types[0])

/* Relative RMS error bound of a stored type against the float weights. */
static double err_bound(enum dt_type t)
{
    switch (t) {
    case DT_F32: return 0.0;
    case DT_F16: return 3e-4;     /* measured 2.1e-4 */
    case DT_BF16: return 2.5e-3;  /* 1.7e-3 */
    case DT_Q8_0: return 0.008;   /* 0.0051 */
    case DT_Q6_K: return 0.022;   /* 0.0166 */
    case DT_Q5_0: return 0.055;   /* 0.041 */
    case DT_Q5_1: return 0.05;    /* 0.037 */
    case DT_Q5_K: return 0.045;   /* 0.035 */
    case DT_Q4_0: return 0.11;    /* 0.082 */
    case DT_Q4_1: return 0.10;    /* 0.076 */
    case DT_Q4_K: return 0.09;    /* 0.069 */
    case DT_Q3_K: return 0.18;    /* 0.139 */
    case DT_Q2_K: return 0.34;    /* 0.265 */
    default: return 0.0;
    }
}

static int expected_ftype(enum dt_type t)
{
    switch (t) {
    case DT_F32: return 0;
    case DT_F16: return 1;
    case DT_Q4_0: return 2;
    case DT_Q4_1: return 3;
    case DT_Q8_0: return 7;
    case DT_Q5_0: return 8;
    case DT_Q5_1: return 9;
    case DT_Q2_K: return 10;
    case DT_Q3_K: return 12;
    case DT_Q4_K: return 15;
    case DT_Q5_K: return 17;
    case DT_Q6_K: return 18;
    case DT_BF16: return 32;
    default: return -1;
    }
}

static bool low_bit(enum dt_type t)
{
    return t == DT_Q4_0 || t == DT_Q4_1 || t == DT_Q5_0 || t == DT_Q5_1 || t == DT_Q2_K ||
           t == DT_Q3_K || t == DT_Q4_K || t == DT_Q5_K;
}

struct notes {
    int n;
};

static void count_note(void *ctx, const char *msg)
{
    struct notes *nt = ctx;
    ck_assert_ptr_nonnull(strstr(msg, "F16"));
    nt->n++;
}

static void write_ok(const char *path, const struct synth_params *p, struct synth_stats *st)
{
    char err[512] = "";
    int rc = synth_write(path, p, st, err, sizeof err);
    ck_assert_msg(rc == 0, "synth_write %s: %d %s", path, rc, err);
}

/* Every tensor of f against the plan: name, type, shape, aligned offsets,
 * packed sizes; dequantized values against the regenerated floats. */
static void check_tensors(const struct gguf_file *f, const struct synth_params *p,
                          uint32_t n_vocab)
{
    struct synth_tensor *plan;
    size_t n;
    ck_assert_int_eq(synth_plan(p, n_vocab, &plan, &n), 0);
    ck_assert_uint_eq(gguf_n_tensors(f), n);
    uint64_t end = 0;
    for (size_t i = 0; i < n; i++) {
        const struct gguf_tensor *t = gguf_tensor_at(f, i);
        const struct synth_tensor *pt = &plan[i];
        ck_assert_msg(gguf_str_eq(t->name, pt->name), "tensor %zu is not %s", i, pt->name);
        ck_assert_msg(t->type == pt->type, "%s: type %s, want %s", pt->name, dt_name(t->type),
                      dt_name(pt->type));
        ck_assert_uint_eq(t->n_dims, pt->n_dims);
        ck_assert_uint_eq(t->ne[0], pt->ne[0]);
        ck_assert_uint_eq(t->ne[1], pt->ne[1]);
        ck_assert_uint_eq(t->offset % 32, 0);
        ck_assert_uint_eq(t->offset, (end + 31) / 32 * 32);
        ck_assert_uint_eq(t->nbytes, dt_row_size(t->type, t->ne[0]) * t->ne[1]);
        end = t->offset + t->nbytes;

        size_t nv = (size_t)(t->ne[0] * t->ne[1]);
        float *ref = malloc(nv * sizeof *ref), *got = malloc(nv * sizeof *got);
        ck_assert(ref && got);
        synth_tensor_fill(p, pt, 0, t->ne[1], ref);
        dt_get(t->type)->to_float(t->data, got, nv);
        double se = 0, sr = 0;
        for (size_t k = 0; k < nv; k++) {
            double d = (double)got[k] - ref[k];
            se += d * d;
            sr += (double)ref[k] * ref[k];
        }
        double rel = sqrt(se / sr);
        ck_assert_msg(rel <= err_bound(t->type), "%s (%s): relative RMS error %g > %g", pt->name,
                      dt_name(t->type), rel, err_bound(t->type));
        free(ref);
        free(got);
    }
    ck_assert_uint_eq(gguf_file_size(f), gguf_data_offset(f) + (end + 31) / 32 * 32);
    synth_plan_free(plan);
}

START_TEST(test_synth_type)
{
    const enum dt_type type = all_types[_i];
    char dir[256], path[300];
    td_make(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/tiny.gguf", dir);
    struct synth_params p = {.preset = synth_preset_find("tiny"), .type = type, .seed = 1,
                             .n_threads = 2};
    ck_assert_ptr_nonnull(p.preset);
    struct synth_stats st;
    write_ok(path, &p, &st);
    ck_assert_uint_eq(file_size(path), st.bytes);
    ck_assert_int_eq(access(path, F_OK), 0);
    char tmp[310];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    ck_assert_int_ne(access(tmp, F_OK), 0);

    struct gguf_file *f = open_ok(path);
    ck_assert_uint_eq(gguf_version(f), 3);
    ck_assert_uint_eq(gguf_file_size(f), st.bytes);
    check_str(f, "general.architecture", "llama");
    check_str(f, "general.name", "tiny");
    ck_assert_int_eq((int)get_u32(f, "general.file_type"), expected_ftype(type));
    uint32_t qv;
    if (type == DT_F32)
        ck_assert_int_eq(gguf_get_u32(f, "general.quantization_version", &qv), -ENOENT);
    else
        ck_assert_uint_eq(get_u32(f, "general.quantization_version"), 2);
    ck_assert_uint_eq(get_u32(f, "llama.context_length"), 512);
    ck_assert_uint_eq(get_u32(f, "llama.embedding_length"), 256);
    ck_assert_uint_eq(get_u32(f, "llama.block_count"), 2);
    ck_assert_uint_eq(get_u32(f, "llama.feed_forward_length"), 512);
    ck_assert_uint_eq(get_u32(f, "llama.rope.dimension_count"), 64);
    ck_assert_uint_eq(get_u32(f, "llama.attention.head_count"), 4);
    ck_assert_uint_eq(get_u32(f, "llama.attention.head_count_kv"), 2);
    ck_assert_uint_eq(get_u32(f, "llama.vocab_size"), 512);
    ck_assert(get_f32(f, "llama.attention.layer_norm_rms_epsilon") == 1e-5f);
    ck_assert(get_f32(f, "llama.rope.freq_base") == 10000.0f);
    ck_assert_ptr_null(gguf_find(f, "llama.attention.key_length"));
    check_str(f, "tokenizer.ggml.model", "llama");
    ck_assert_uint_eq(get_u32(f, "tokenizer.ggml.bos_token_id"), 1);
    ck_assert_uint_eq(get_u32(f, "tokenizer.ggml.eos_token_id"), 2);
    ck_assert_uint_eq(get_u32(f, "tokenizer.ggml.unknown_token_id"), 0);

    ck_assert_uint_eq(st.n_tensors, 2 + 9 * 2 + 1);
    ck_assert_uint_eq(st.n_fallback, 0);
    ck_assert_uint_eq(st.n_params, 2 * 512 * 256 + 256 +
                                       2 * (2 * 256 + 256 * 256 * 2 + 256 * 128 * 2 +
                                            3 * 256 * 512));
    const struct gguf_tensor *out = gguf_find_tensor(f, "output.weight");
    ck_assert_ptr_nonnull(out);
    ck_assert_uint_eq(out->type, (low_bit(type) ? DT_Q6_K : type));
    ck_assert_uint_eq(gguf_find_tensor(f, "token_embd.weight")->type, type);
    ck_assert_uint_eq(gguf_find_tensor(f, "blk.1.ffn_down.weight")->type, type);
    ck_assert_uint_eq(gguf_find_tensor(f, "blk.1.ffn_norm.weight")->type, DT_F32);
    ck_assert_uint_eq(gguf_find_tensor(f, "output_norm.weight")->type, DT_F32);
    ck_assert_ptr_null(gguf_find_tensor(f, "rope_freqs.weight"));
    check_tensors(f, &p, 512);
    gguf_close(f);

    /* --pure: output.weight in the base type too. */
    if (low_bit(type)) {
        p.pure = true;
        write_ok(path, &p, &st);
        f = open_ok(path);
        ck_assert_uint_eq(gguf_find_tensor(f, "output.weight")->type, type);
        ck_assert_int_eq((int)get_u32(f, "general.file_type"), expected_ftype(type));
        check_tensors(f, &p, 512);
        gguf_close(f);
    }
    td_remove(dir);
}
END_TEST

static bool files_equal(const char *a, const char *b)
{
    size_t na, nb;
    char *pa = tu_read_file(a, &na), *pb = tu_read_file(b, &nb);
    ck_assert(pa && pb);
    bool eq = na == nb && memcmp(pa, pb, na) == 0;
    free(pa);
    free(pb);
    return eq;
}

START_TEST(test_synth_deterministic)
{
    char dir[256], a[300], b[300], c[300];
    td_make(dir, sizeof dir);
    snprintf(a, sizeof a, "%s/a.gguf", dir);
    snprintf(b, sizeof b, "%s/b.gguf", dir);
    snprintf(c, sizeof c, "%s/c.gguf", dir);
    struct synth_params p = {.preset = synth_preset_find("tiny"), .type = DT_Q4_K, .seed = 7,
                             .n_threads = 1};
    write_ok(a, &p, NULL);
    p.n_threads = 2;
    write_ok(b, &p, NULL);
    ck_assert_msg(files_equal(a, b), "same seed, different thread count: files differ");
    p.seed = 8;
    write_ok(c, &p, NULL);
    ck_assert_uint_eq(file_size(a), file_size(c));
    ck_assert_msg(!files_equal(a, c), "different seeds gave the same file");

    /* Default seed 1 is stable across runs of F32 too, and the row range
     * of a fill does not change the values. */
    struct synth_tensor *plan;
    size_t n;
    ck_assert_int_eq(synth_plan(&p, 512, &plan, &n), 0);
    const struct synth_tensor *t = &plan[0];
    ck_assert_str_eq(t->name, "token_embd.weight");
    float *all = malloc(256 * 10 * sizeof(float)), *part = malloc(256 * 3 * sizeof(float));
    synth_tensor_fill(&p, t, 0, 10, all);
    synth_tensor_fill(&p, t, 4, 3, part);
    ck_assert_mem_eq(all + 4 * 256, part, 3 * 256 * sizeof(float));
    p.seed = 9;
    synth_tensor_fill(&p, t, 4, 3, part);
    ck_assert(memcmp(all + 4 * 256, part, 3 * 256 * sizeof(float)) != 0);
    free(all);
    free(part);
    synth_plan_free(plan);
    td_remove(dir);
}
END_TEST

/* Known answers: the generator must not drift (files made by older builds
 * must stay reproducible), whichever ISA clone runs. */
START_TEST(test_synth_known_values)
{
    struct synth_params p = {.preset = synth_preset_find("tiny"), .type = DT_F32, .seed = 1};
    struct synth_tensor *plan;
    size_t n;
    ck_assert_int_eq(synth_plan(&p, 512, &plan, &n), 0);
    float v[256];
    synth_tensor_fill(&p, &plan[0], 0, 1, v); /* token_embd */
    ck_assert(v[0] == 0.758882225f && v[1] == 1.50774789f && v[2] == 0.37391746f &&
              v[3] == -2.11455774f);
    synth_tensor_fill(&p, &plan[1], 0, 1, v); /* blk.0.attn_norm */
    ck_assert(v[0] == 0.963620484f && v[1] == 1.13082886f);
    p.seed = 2;
    synth_tensor_fill(&p, &plan[2], 100, 1, v); /* blk.0.attn_q row 100 */
    ck_assert(v[0] == -2.64289974e-05f && v[1] == -0.0375655144f);
    synth_plan_free(plan);
}
END_TEST

/* The generator's statistics: the std of each kind of tensor. */
START_TEST(test_synth_distribution)
{
    struct synth_params p = {.preset = synth_preset_find("tinyllama-1.1b"), .type = DT_Q4_0,
                             .seed = 1};
    struct synth_tensor *plan;
    size_t n;
    ck_assert_int_eq(synth_plan(&p, 32000, &plan, &n), 0);
    for (size_t i = 0; i < n; i++) {
        const struct synth_tensor *t = &plan[i];
        size_t rows = t->ne[1] < 64 ? (size_t)t->ne[1] : 64, nv = rows * (size_t)t->ne[0];
        float *v = malloc(nv * sizeof *v);
        synth_tensor_fill(&p, t, 0, rows, v);
        double s = 0, s2 = 0, mx = 0;
        for (size_t k = 0; k < nv; k++) {
            s += v[k];
            s2 += (double)v[k] * v[k];
            mx = fmax(mx, fabs(v[k]));
        }
        double mean = s / nv, sd = sqrt(s2 / nv - mean * mean);
        double want_mean = t->init == SYNTH_INIT_NORM ? 1.0 : 0.0;
        double want_sd = t->std;
        if (strcmp(t->name, "token_embd.weight") == 0)
            ck_assert(want_sd == 1.0);
        else if (strcmp(t->name, "output.weight") == 0)
            ck_assert(fabs(want_sd - 0.15) < 1e-7);
        else if (strstr(t->name, "ffn_down"))
            ck_assert(fabs(want_sd - 1.0 / sqrt(5632.0)) < 1e-7);
        else if (strstr(t->name, "attn_q"))
            ck_assert(fabs(want_sd - 1.0 / sqrt(2048.0)) < 1e-7);
        ck_assert_msg(fabs(mean - want_mean) < 0.05 * want_sd + 1e-6, "%s mean %g", t->name, mean);
        ck_assert_msg(fabs(sd / want_sd - 1.0) < 0.05, "%s sd %g want %g", t->name, sd, want_sd);
        ck_assert(mx <= want_mean + 3.47 * want_sd);
        ck_assert(mx >= want_mean + 2.0 * want_sd);
        free(v);
    }
    synth_plan_free(plan);
}
END_TEST

/* Known parameter counts of the real models (rope_freqs excluded). */
START_TEST(test_synth_presets)
{
    static const struct {
        const char *name;
        uint64_t params;
        size_t tensors;
    } want[] = {
        {"tinyllama-1.1b", 1100048384ULL, 2 + 22 * 9 + 1},
        {"llama-3.2-1b", 1235814400ULL, 1 + 1 + 16 * 9 + 1},
        {"llama-3-8b", 8030261248ULL, 2 + 32 * 9 + 1},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        struct synth_params p = {.preset = synth_preset_find(want[i].name), .type = DT_Q4_K};
        ck_assert_ptr_nonnull(p.preset);
        struct synth_tensor *plan;
        size_t n;
        ck_assert_int_eq(synth_plan(&p, p.preset->n_vocab, &plan, &n), 0);
        ck_assert_uint_eq(n, want[i].tensors);
        uint64_t params = 0;
        for (size_t k = 0; k < n; k++)
            if (plan[k].init != SYNTH_INIT_ROPE_FREQS)
                params += plan[k].ne[0] * plan[k].ne[1];
        ck_assert_msg(params == want[i].params, "%s: %llu params", want[i].name,
                      (unsigned long long)params);
        synth_plan_free(plan);
    }
    ck_assert_ptr_nonnull(synth_preset_find("TinyLlama-1.1B"));
    ck_assert_ptr_null(synth_preset_find("llama-9"));
    ck_assert(!synth_type_ok(DT_Q8_1));
    ck_assert_int_eq(synth_ftype(DT_Q8_K), -1);
}
END_TEST

/* llama-3.2-1b rope_freqs: factor 32, low 1, high 4, original context 8192,
 * base 500000, head_dim 64. Pairs 0..14 keep their frequency, 18..31 are
 * divided by 32, 15..17 are interpolated (values computed independently). */
START_TEST(test_synth_rope_freqs)
{
    struct synth_params p = {.preset = synth_preset_find("llama-3.2-1b"), .type = DT_F16};
    struct synth_tensor *plan;
    size_t n;
    ck_assert_int_eq(synth_plan(&p, 128256, &plan, &n), 0);
    ck_assert_str_eq(plan[0].name, "rope_freqs.weight");
    ck_assert_int_eq(plan[0].type, DT_F32);
    ck_assert_uint_eq(plan[0].n_dims, 1);
    ck_assert_uint_eq(plan[0].ne[0], 32);
    for (size_t i = 0; i < n; i++)
        ck_assert_str_ne(plan[i].name, "output.weight");
    float v[32];
    synth_tensor_fill(&p, &plan[0], 0, 1, v);
    static const double mid[3] = {1.6513292, 3.2922621, 9.6667290}; /* pairs 15, 16, 17 */
    for (int i = 0; i < 32; i++) {
        double want = i < 15 ? 1.0 : i > 17 ? 32.0 : mid[i - 15];
        ck_assert_msg(fabs(v[i] - want) < 1e-5 * want, "pair %d: %g want %g", i, v[i], want);
    }
    synth_plan_free(plan);
}
END_TEST

/* tiny-odd: F16 fallbacks, tied output, rope_freqs in a written file. */
START_TEST(test_synth_fallback)
{
    char dir[256], path[300];
    td_make(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/odd.gguf", dir);
    struct notes nt = {0};
    struct synth_params p = {.preset = synth_preset_find("tiny-odd"), .type = DT_Q4_0,
                             .seed = 3, .note = count_note, .note_ctx = &nt};
    struct synth_stats st;
    write_ok(path, &p, &st);
    ck_assert_int_eq(nt.n, 2); /* ffn_down of 2 layers: rows of 176 */
    ck_assert_uint_eq(st.n_fallback, 2);
    struct gguf_file *f = open_ok(path);
    ck_assert_ptr_null(gguf_find_tensor(f, "output.weight"));
    ck_assert_uint_eq(gguf_find_tensor(f, "blk.0.ffn_down.weight")->type, DT_F16);
    ck_assert_uint_eq(gguf_find_tensor(f, "blk.0.ffn_up.weight")->type, DT_Q4_0);
    ck_assert_uint_eq(gguf_find_tensor(f, "token_embd.weight")->type, DT_Q4_0);
    ck_assert_uint_eq(get_u32(f, "llama.rope.dimension_count"), 16);
    const struct gguf_tensor *rf = gguf_find_tensor(f, "rope_freqs.weight");
    ck_assert_ptr_nonnull(rf);
    ck_assert_uint_eq(rf->ne[0], 8);
    /* Wavelengths 2*pi*500000^(i/8) against 64 and 256: pairs 0-1 keep,
     * pair 2 interpolates, 3-7 divide by 8. */
    float rv[8];
    memcpy(rv, rf->data, sizeof rv);
    ck_assert(rv[0] == 1.0f && rv[1] == 1.0f);
    ck_assert(rv[2] > 1.0f && rv[2] < 8.0f);
    for (int i = 3; i < 8; i++)
        ck_assert(rv[i] == 8.0f);
    check_tensors(f, &p, 320);
    gguf_close(f);

    /* Q4_K: every 2-D row length (64, 176) misses the 256 block. */
    nt.n = 0;
    p.type = DT_Q4_K;
    write_ok(path, &p, &st);
    ck_assert_int_eq(nt.n, 1 + 2 * 7);
    f = open_ok(path);
    for (size_t i = 0; i < gguf_n_tensors(f); i++) {
        const struct gguf_tensor *t = gguf_tensor_at(f, i);
        ck_assert_uint_eq(t->type, t->n_dims == 1 ? DT_F32 : DT_F16);
    }
    ck_assert_int_eq((int)get_u32(f, "general.file_type"), 15);
    check_tensors(f, &p, 320);
    gguf_close(f);
    td_remove(dir);
}
END_TEST

/* The generated vocab: specials, byte tokens, unique pieces, scores. */
START_TEST(test_synth_vocab_generated)
{
    char dir[256], path[300];
    td_make(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/v.gguf", dir);
    struct synth_params p = {.preset = synth_preset_find("tiny"), .type = DT_F16, .seed = 1};
    write_ok(path, &p, NULL);
    struct gguf_file *f = open_ok(path);
    const struct gguf_array *toks, *scores, *types;
    ck_assert_int_eq(gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_VT_STRING, &toks), 0);
    ck_assert_int_eq(gguf_get_arr(f, "tokenizer.ggml.scores", GGUF_VT_FLOAT32, &scores), 0);
    ck_assert_int_eq(gguf_get_arr(f, "tokenizer.ggml.token_type", GGUF_VT_INT32, &types), 0);
    ck_assert_uint_eq(toks->n, 512);
    ck_assert_uint_eq(scores->n, 512);
    ck_assert_uint_eq(types->n, 512);
    ck_assert(gguf_str_eq(toks->strs[0], "<unk>"));
    ck_assert(gguf_str_eq(toks->strs[1], "<s>"));
    ck_assert(gguf_str_eq(toks->strs[2], "</s>"));
    ck_assert_int_eq(gguf_arr_i64(types, 0), 2);
    ck_assert_int_eq(gguf_arr_i64(types, 1), 3);
    ck_assert_int_eq(gguf_arr_i64(types, 2), 3);
    for (int b = 0; b < 256; b++) {
        char want[8];
        snprintf(want, sizeof want, "<0x%02X>", b);
        ck_assert(gguf_str_eq(toks->strs[3 + b], want));
        ck_assert_int_eq(gguf_arr_i64(types, 3 + (uint64_t)b), 6);
    }
    ck_assert(gguf_str_eq(toks->strs[259], "\xe2\x96\x81"));
    ck_assert(gguf_str_eq(toks->strs[260], "a"));
    ck_assert(gguf_str_eq(toks->strs[286], "\xe2\x96\x81" "a"));
    ck_assert(gguf_str_eq(toks->strs[312], "\xe2\x96\x81" "aa"));
    for (uint64_t i = 259; i < 512; i++) {
        ck_assert_int_eq(gguf_arr_i64(types, i), 1);
        ck_assert_uint_gt(toks->strs[i].len, 0);
        if (i > 259)
            ck_assert(gguf_arr_f32(scores, i) < gguf_arr_f32(scores, i - 1));
    }
    for (uint64_t i = 0; i < 512; i++)
        for (uint64_t j = i + 1; j < 512; j++)
            ck_assert_msg(toks->strs[i].len != toks->strs[j].len ||
                              memcmp(toks->strs[i].ptr, toks->strs[j].ptr,
                                     (size_t)toks->strs[i].len) != 0,
                          "tokens %llu and %llu are equal", (unsigned long long)i,
                          (unsigned long long)j);
    bool add_bos = false;
    ck_assert_int_eq(gguf_get_bool(f, "tokenizer.ggml.add_bos_token", &add_bos), 0);
    ck_assert(add_bos);
    gguf_close(f);
    td_remove(dir);
}
END_TEST

static bool values_equal(const struct gguf_value *a, const struct gguf_value *b);

static bool arrays_equal(const struct gguf_array *a, const struct gguf_array *b)
{
    static const size_t sizes[GGUF_VT_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if (a->type != b->type || a->n != b->n)
        return false;
    for (uint64_t i = 0; i < a->n; i++) {
        if (a->type == GGUF_VT_STRING) {
            if (a->strs[i].len != b->strs[i].len ||
                memcmp(a->strs[i].ptr, b->strs[i].ptr, (size_t)a->strs[i].len) != 0)
                return false;
        } else if (a->type == GGUF_VT_ARRAY) {
            if (!values_equal(&a->arrs[i], &b->arrs[i]))
                return false;
        }
    }
    if (a->type != GGUF_VT_STRING && a->type != GGUF_VT_ARRAY && a->n)
        return memcmp(a->data, b->data, (size_t)a->n * sizes[a->type]) == 0;
    return true;
}

static bool values_equal(const struct gguf_value *a, const struct gguf_value *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case GGUF_VT_STRING:
        return a->str.len == b->str.len && memcmp(a->str.ptr, b->str.ptr, (size_t)a->str.len) == 0;
    case GGUF_VT_ARRAY:
        return arrays_equal(&a->arr, &b->arr);
    case GGUF_VT_BOOL:
        return a->b == b->b;
    case GGUF_VT_FLOAT32:
    case GGUF_VT_FLOAT64:
        return memcmp(&a->f64, &b->f64, sizeof a->f64) == 0;
    case GGUF_VT_INT8:
    case GGUF_VT_INT16:
    case GGUF_VT_INT32:
    case GGUF_VT_INT64:
        return a->i64 == b->i64;
    default:
        return a->u64 == b->u64;
    }
}

START_TEST(test_synth_vocab_from)
{
    const char *src_path = tu_path("vocab/ggml-vocab-llama-spm.gguf");
    char dir[256], path[300];
    td_make(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/vf.gguf", dir);
    struct synth_params p = {.preset = synth_preset_find("tiny"), .type = DT_Q8_0, .seed = 1,
                             .vocab_from = src_path};
    struct synth_stats st;
    write_ok(path, &p, &st);
    ck_assert_uint_eq(st.n_vocab, 32000);
    struct gguf_file *src = open_ok(src_path), *f = open_ok(path);
    size_t n_tok_keys = 0;
    for (size_t i = 0; i < gguf_n_kv(src); i++) {
        const struct gguf_kv *kv = gguf_kv_at(src, i);
        if (kv->key.len < 10 || memcmp(kv->key.ptr, "tokenizer.", 10) != 0)
            continue;
        n_tok_keys++;
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)kv->key.len, kv->key.ptr);
        const struct gguf_kv *got = gguf_find(f, key);
        ck_assert_msg(got != NULL, "%s not copied", key);
        ck_assert_msg(values_equal(&kv->v, &got->v), "%s differs", key);
    }
    ck_assert_uint_eq(n_tok_keys, 10);
    size_t n_out_tok_keys = 0;
    for (size_t i = 0; i < gguf_n_kv(f); i++) {
        const struct gguf_kv *kv = gguf_kv_at(f, i);
        n_out_tok_keys += kv->key.len >= 10 && memcmp(kv->key.ptr, "tokenizer.", 10) == 0;
    }
    ck_assert_uint_eq(n_out_tok_keys, n_tok_keys);
    ck_assert_uint_eq(get_u32(f, "llama.vocab_size"), 32000);
    ck_assert_uint_eq(gguf_find_tensor(f, "token_embd.weight")->ne[1], 32000);
    ck_assert_uint_eq(gguf_find_tensor(f, "output.weight")->ne[1], 32000);
    ck_assert_uint_eq(gguf_find_tensor(f, "output.weight")->type, DT_Q8_0);
    gguf_close(src);
    gguf_close(f);

    /* Another model's vocab (512 tokens); a missing file is refused and
     * leaves nothing behind. */
    snprintf(path, sizeof path, "%s/other.gguf", dir);
    p.vocab_from = tu_path("models/synth256-q4_0.gguf");
    write_ok(path, &p, &st);
    ck_assert_uint_eq(st.n_vocab, 512);
    ck_assert_int_eq(unlink(path), 0);
    p.vocab_from = "/nonexistent-vocab.gguf";
    char err[512] = "";
    ck_assert_int_lt(synth_write(path, &p, NULL, err, sizeof err), 0);
    ck_assert_ptr_nonnull(strstr(err, "nonexistent-vocab"));
    ck_assert_int_ne(access(path, F_OK), 0);
    td_remove(dir);
}
END_TEST

/* A write that fails half way (file size limit) leaves neither the file nor
 * the temporary behind; an unwritable path fails cleanly. */
START_TEST(test_synth_write_failure)
{
    char dir[256], path[300], tmp[310];
    td_make(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/f.gguf", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    struct synth_params p = {.preset = synth_preset_find("tiny"), .type = DT_F32, .seed = 1};
    char err[512] = "";

    struct rlimit old, lim;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 100000;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int rc = synth_write(path, &p, NULL, err, sizeof err);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, prev);
    ck_assert_int_eq(rc, -EFBIG);
    ck_assert_ptr_nonnull(strstr(err, "writing"));
    ck_assert_int_ne(access(path, F_OK), 0);
    ck_assert_int_ne(access(tmp, F_OK), 0);

    rc = synth_write("/nonexistent-dir-for-test/x.gguf", &p, NULL, err, sizeof err);
    ck_assert_int_eq(rc, -ENOENT);
    ck_assert_ptr_nonnull(strstr(err, "x.gguf.tmp"));

    p.type = DT_Q8_1;
    ck_assert_int_eq(synth_write(path, &p, NULL, err, sizeof err), -ENOTSUP);
    ck_assert_int_ne(access(tmp, F_OK), 0);
    td_remove(dir);
}
END_TEST

/* 1 when the shared data folder is usable, 0 when tu_shared() would skip. */
static bool shared_available(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        (void)tu_shared();
        _exit(0);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return true; /* let the test itself report the problem */
    return !(WIFEXITED(status) && WEXITSTATUS(status) == 77);
}

static Suite *synth_suite(void)
{
    Suite *s = suite_create("synth");
    TCase *tc = tcase_create("writer");
    tcase_add_test(tc, test_writer_roundtrip);
    tcase_add_test(tc, test_writer_alignment);
    tcase_add_test(tc, test_writer_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("synth");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_synth_type, 0, (int)N_TYPES);
    tcase_add_test(tc, test_synth_deterministic);
    tcase_add_test(tc, test_synth_known_values);
    tcase_add_test(tc, test_synth_distribution);
    tcase_add_test(tc, test_synth_presets);
    tcase_add_test(tc, test_synth_rope_freqs);
    tcase_add_test(tc, test_synth_fallback);
    tcase_add_test(tc, test_synth_vocab_generated);
    tcase_add_test(tc, test_synth_write_failure);
    suite_add_tcase(s, tc);

    if (shared_available()) {
        tc = tcase_create("vocab_from");
        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, test_synth_vocab_from);
        suite_add_tcase(s, tc);
    } else {
        fprintf(stderr, "note: shared data missing: vocab_from tests skipped\n");
    }
    return s;
}

int main(void)
{
    return tu_run_suite(synth_suite());
}
