/* test_dtype.c - element types: traits table, half-precision conversions,
 * bit-exact dequantization against the ggml goldens (first rows of selected
 * tensors and a sha256 of every tensor of every model), and quantize ->
 * dequantize round trips with stated error bounds.
 */
#include "dtype.h"
#include "testutil.h"

#include <float.h>
#include <jansson.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static_assert(sizeof(dt_fp16) == 2 && sizeof(dt_bf16) == 2, "half types");
static_assert(DT_BF16 == 30 && DT_Q8_K == 15 && DT_Q4_K == 12, "GGUF type ids");

/* ---- helpers ------------------------------------------------------------ */

static uint32_t f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float u2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static void sha256_hex(const void *data, size_t n, char out[65])
{
    unsigned char md[32];
    unsigned int len = 0;
    ck_assert(EVP_Digest(data, n, md, &len, EVP_sha256(), NULL) == 1);
    ck_assert_uint_eq(len, 32);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static json_t *load_json(const char *rel)
{
    json_error_t err;
    json_t *j = json_load_file(tu_path(rel), 0, &err);
    ck_assert_msg(j != NULL, "%s: %s (line %d)", rel, err.text, err.line);
    return j;
}

static void *load_model(const char *name, size_t *size)
{
    char rel[512];
    snprintf(rel, sizeof rel, "models/%s", name);
    void *buf = tu_read_file(tu_path(rel), size);
    ck_assert_msg(buf != NULL, "cannot read %s", rel);
    return buf;
}

static size_t jsz(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    ck_assert_msg(json_is_integer(v), "missing integer %s", key);
    ck_assert(json_integer_value(v) >= 0);
    return (size_t)json_integer_value(v);
}

static const char *jstr(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    ck_assert_msg(s != NULL, "missing string %s", key);
    return s;
}

/* ---- traits ------------------------------------------------------------- */

START_TEST(test_traits)
{
    static const struct {
        enum dt_type t;
        const char *name;
        uint32_t bs, ts;
        enum dt_type vdt;
    } want[] = {
        { DT_F32, "F32", 1, 4, DT_F32 },        { DT_F16, "F16", 1, 2, DT_F32 },
        { DT_BF16, "BF16", 1, 2, DT_BF16 },     { DT_Q4_0, "Q4_0", 32, 18, DT_Q8_0 },
        { DT_Q4_1, "Q4_1", 32, 20, DT_Q8_1 },   { DT_Q5_0, "Q5_0", 32, 22, DT_Q8_0 },
        { DT_Q5_1, "Q5_1", 32, 24, DT_Q8_1 },   { DT_Q8_0, "Q8_0", 32, 34, DT_Q8_0 },
        { DT_Q8_1, "Q8_1", 32, 36, DT_Q8_1 },   { DT_Q2_K, "Q2_K", 256, 84, DT_Q8_K },
        { DT_Q3_K, "Q3_K", 256, 110, DT_Q8_K }, { DT_Q4_K, "Q4_K", 256, 144, DT_Q8_K },
        { DT_Q5_K, "Q5_K", 256, 176, DT_Q8_K }, { DT_Q6_K, "Q6_K", 256, 210, DT_Q8_K },
        { DT_Q8_K, "Q8_K", 256, 292, DT_Q8_K },
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const struct dt_traits *tr = dt_get(want[i].t);
        ck_assert_ptr_nonnull(tr);
        ck_assert_str_eq(tr->name, want[i].name);
        ck_assert_str_eq(dt_name(want[i].t), want[i].name);
        ck_assert_uint_eq(tr->block_size, want[i].bs);
        ck_assert_uint_eq(tr->type_size, want[i].ts);
        ck_assert_int_eq(tr->vec_dot_type, want[i].vdt);
        ck_assert(tr->to_float != NULL);
        ck_assert(tr->from_float != NULL);
        /* activation formats are never tensors in files */
        ck_assert(tr->supported == (want[i].t != DT_Q8_1 && want[i].t != DT_Q8_K));
        ck_assert_uint_eq(dt_row_size(want[i].t, 2 * want[i].bs), 2 * want[i].ts);
        ck_assert_int_eq(dt_from_name(want[i].name), (int)want[i].t);
    }
    /* every named id is self-consistent; unsupported ids cannot be decoded */
    int named = 0;
    for (uint32_t t = 0; t < DT_COUNT; t++) {
        const struct dt_traits *tr = dt_get(t);
        if (!tr) {
            ck_assert_str_eq(dt_name(t), "?");
            continue;
        }
        named++;
        ck_assert_uint_gt(tr->block_size, 0);
        ck_assert_uint_gt(tr->type_size, 0);
        ck_assert_int_eq(dt_from_name(tr->name), (int)t);
        if (tr->supported)
            ck_assert(tr->to_float != NULL);
        if (t >= 16 && t <= 29) {
            ck_assert(!tr->supported);
            ck_assert(tr->to_float == NULL);
        }
    }
    ck_assert_int_ge(named, 30);
    ck_assert_ptr_null(dt_get(4));
    ck_assert_ptr_null(dt_get(5));
    ck_assert_ptr_null(dt_get(DT_COUNT));
    ck_assert_ptr_null(dt_get(UINT32_MAX));
    ck_assert_str_eq(dt_name(4), "?");
    ck_assert_str_eq(dt_name(1000), "?");
    ck_assert_uint_eq(dt_get(20)->block_size, 32); /* IQ4_NL */
    ck_assert_uint_eq(dt_get(20)->type_size, 18);

    ck_assert_int_eq(dt_from_name("q4_k"), DT_Q4_K);
    ck_assert_int_eq(dt_from_name("bf16"), DT_BF16);
    ck_assert_int_eq(dt_from_name("f32"), DT_F32);
    ck_assert_int_eq(dt_from_name("Q4_2"), -1);
    ck_assert_int_eq(dt_from_name(""), -1);
    ck_assert_int_eq(dt_from_name(NULL), -1);

    ck_assert_uint_eq(dt_row_size(DT_Q4_K, 256), 144);
    ck_assert_uint_eq(dt_row_size(DT_Q4_K, 768), 3 * 144);
    ck_assert_uint_eq(dt_row_size(DT_Q4_K, 255), 0);
    ck_assert_uint_eq(dt_row_size(DT_Q4_0, 172), 0);
    ck_assert_uint_eq(dt_row_size(DT_F16, 172), 344);
    ck_assert_uint_eq(dt_row_size(DT_F32, 3), 12);
    ck_assert_uint_eq(dt_row_size(DT_F32, 0), 0);
    ck_assert_uint_eq(dt_row_size((enum dt_type)4, 32), 0);
    ck_assert_uint_eq(dt_row_size(DT_COUNT, 32), 0);
    ck_assert_uint_eq(dt_row_size(DT_F32, SIZE_MAX / 2), 0); /* overflow */
}
END_TEST

/* ---- fp16 / bf16 -------------------------------------------------------- */

/* Value of fp16 bits h in double, computed independently of the library. */
static double half_value(uint16_t h)
{
    const int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    const double s = (h & 0x8000) ? -1.0 : 1.0;
    if (e == 0x1f)
        return m ? NAN : s * INFINITY;
    if (e == 0)
        return s * ldexp(m, -24);
    return s * ldexp(1024 + m, e - 25);
}

START_TEST(test_fp16_exhaustive)
{
    for (uint32_t h = 0; h < 65536; h++) {
        const float f = dt_fp16_to_f32((dt_fp16)h);
        const double want = half_value((uint16_t)h);
        if (isnan(want)) {
            ck_assert_msg(isnan(f), "h=%04x", h);
            ck_assert_int_eq(f2u(f) >> 31, h >> 15);
            /* payload moves to the top of the f32 fraction */
            ck_assert_uint_eq((f2u(f) >> 13) & 0x3ff, h & 0x3ff);
            const dt_fp16 back = dt_f32_to_fp16(f);
            /* quiet NaN, same sign, payload kept (the quiet bit forced) */
            ck_assert_uint_eq(back, h | 0x200);
            continue;
        }
        ck_assert_msg((double)f == want && !signbit(f) == !signbit(want), "h=%04x", h);
        ck_assert_msg(dt_f32_to_fp16(f) == h, "round trip h=%04x", h);
    }
}
END_TEST

/* Whether r (fp16 bits, same sign as x) is the nearest-even fp16 of x. */
static int fp16_is_rne(float x, uint16_t r)
{
    const double ax = fabs((double)x);
    const uint16_t mag = r & 0x7fff;
    if ((r >> 15) != (f2u(x) >> 31))
        return 0;
    /* infinity counts as the value 65536 for rounding */
    const double v = mag == 0x7c00 ? 65536.0 : fabs(half_value(mag));
    if (mag > 0x7c00)
        return 0;
    const double dv = fabs(ax - v);
    if (mag > 0) {
        const double below = fabs(half_value(mag - 1));
        const double db = fabs(ax - below);
        if (db < dv || (db == dv && (mag & 1)))
            return 0;
    }
    if (mag < 0x7c00) {
        const uint16_t up = mag + 1;
        const double above = up == 0x7c00 ? 65536.0 : fabs(half_value(up));
        const double da = fabs(ax - above);
        if (da < dv || (da == dv && (mag & 1)))
            return 0;
    }
    return 1;
}

START_TEST(test_fp16_rounding)
{
    /* every midpoint between adjacent finite magnitudes (exact in f32) and
     * its f32 neighbours */
    for (uint32_t m = 0; m < 0x7c00; m++) {
        const double lo = half_value((uint16_t)m);
        const double hi = m + 1 == 0x7c00 ? 65536.0 : half_value((uint16_t)(m + 1));
        const float mid = (float)((lo + hi) / 2);
        ck_assert((double)mid == (lo + hi) / 2);
        const float cands[3] = { nextafterf(mid, 0.0f), mid, nextafterf(mid, INFINITY) };
        for (int k = 0; k < 3; k++) {
            for (int s = 0; s < 2; s++) {
                const float x = s ? -cands[k] : cands[k];
                const dt_fp16 r = dt_f32_to_fp16(x);
                ck_assert_msg(fp16_is_rne(x, r), "x=%a r=%04x", (double)x, r);
            }
        }
        const uint16_t even = (m & 1) ? (uint16_t)(m + 1) : (uint16_t)m;
        ck_assert_uint_eq(dt_f32_to_fp16(mid), even);
    }
    /* random f32 bit patterns */
    unsigned long long seed = tu_rng_seed(), st = seed;
    for (int i = 0; i < 2000000; i++) {
        const uint32_t u = (uint32_t)(tu_rand_uniform(&st) * 4294967296.0);
        const float x = u2f(u);
        const dt_fp16 r = dt_f32_to_fp16(x);
        if (isnan(x)) {
            ck_assert_uint_eq(r & 0x7e00, 0x7e00);
            ck_assert_uint_eq(r >> 15, u >> 31);
            continue;
        }
        ck_assert_msg(fp16_is_rne(x, r), "seed %llu x=%a r=%04x", seed, (double)x, r);
    }
    /* named cases */
    ck_assert_uint_eq(dt_f32_to_fp16(65504.0f), 0x7bff);
    ck_assert_uint_eq(dt_f32_to_fp16(65519.996f), 0x7bff);
    ck_assert_uint_eq(dt_f32_to_fp16(65520.0f), 0x7c00);
    ck_assert_uint_eq(dt_f32_to_fp16(-1e10f), 0xfc00);
    ck_assert_uint_eq(dt_f32_to_fp16(INFINITY), 0x7c00);
    ck_assert_uint_eq(dt_f32_to_fp16(-INFINITY), 0xfc00);
    ck_assert_uint_eq(dt_f32_to_fp16(FLT_MAX), 0x7c00);
    ck_assert_uint_eq(dt_f32_to_fp16(0x1p-24f), 0x0001);
    ck_assert_uint_eq(dt_f32_to_fp16(0x1p-25f), 0x0000);         /* tie to even: 0 */
    ck_assert_uint_eq(dt_f32_to_fp16(0x1.000002p-25f), 0x0001);
    ck_assert_uint_eq(dt_f32_to_fp16(0x1.8p-24f), 0x0002);       /* 1.5 ulp -> 2 */
    ck_assert_uint_eq(dt_f32_to_fp16(0x1.4p-23f), 0x0002);       /* 2.5 ulp -> 2 */
    ck_assert_uint_eq(dt_f32_to_fp16(0x1.ffcp-15f), 0x0400);     /* carries into normal */
    ck_assert_uint_eq(dt_f32_to_fp16(-0.0f), 0x8000);
    ck_assert_uint_eq(dt_f32_to_fp16(1.0f + 0x1p-11f), 0x3c00);  /* tie -> even */
    ck_assert_uint_eq(dt_f32_to_fp16(1.0f + 0x1.8p-10f), 0x3c02); /* tie -> even (up) */
    ck_assert_uint_eq(dt_f32_to_fp16(FLT_MIN), 0x0000);
    ck_assert_uint_eq(dt_f32_to_fp16(NAN) & 0x7e00, 0x7e00);
    ck_assert_uint_eq(dt_f32_to_fp16(u2f(0xff800001u)), 0xfe00); /* sNaN -> qNaN */
    ck_assert_uint_eq(dt_f32_to_fp16(u2f(0x7fa02000u)), 0x7f01);
}
END_TEST

START_TEST(test_bf16)
{
    for (uint32_t h = 0; h < 65536; h++) {
        const float f = dt_bf16_to_f32((dt_bf16)h);
        ck_assert_uint_eq(f2u(f), h << 16);
        const dt_bf16 back = dt_f32_to_bf16(f);
        if (isnan(f))
            ck_assert_uint_eq(back, h | 0x40); /* quiet, sign and payload kept */
        else
            ck_assert_uint_eq(back, h);
    }
    /* random patterns against a double-precision nearest-even search */
    unsigned long long seed = tu_rng_seed(), st = seed;
    for (int i = 0; i < 2000000; i++) {
        const uint32_t u = (uint32_t)(tu_rand_uniform(&st) * 4294967296.0);
        const float x = u2f(u);
        const dt_bf16 r = dt_f32_to_bf16(x);
        if (isnan(x)) {
            ck_assert_uint_eq(r, (u >> 16) | 0x40);
            continue;
        }
        const uint32_t mag = u & 0x7fffffffu;
        const uint32_t lo = mag & 0xffff0000u, hi = lo + 0x10000u;
        const double dl = fabs((double)u2f(mag)) - (double)u2f(lo);
        const double vhi = hi == 0x7f800000u ? ldexp(1.0, 128) : (double)u2f(hi);
        const double dh = vhi - (double)u2f(mag);
        uint32_t want = (dl < dh || (dl == dh && !(lo & 0x10000u))) ? lo : hi;
        if (mag >= 0x7f800000u) /* infinity */
            want = lo;
        want = (want >> 16) | ((u >> 16) & 0x8000u);
        ck_assert_msg(r == want, "seed %llu x=%08x r=%04x want=%04x", seed, u, r, want);
    }
    ck_assert_uint_eq(dt_f32_to_bf16(1.0f), 0x3f80);
    ck_assert_uint_eq(dt_f32_to_bf16(u2f(0x3f808000u)), 0x3f80); /* tie -> even */
    ck_assert_uint_eq(dt_f32_to_bf16(u2f(0x3f818000u)), 0x3f82); /* tie -> even (up) */
    ck_assert_uint_eq(dt_f32_to_bf16(u2f(0x3f808001u)), 0x3f81);
    ck_assert_uint_eq(dt_f32_to_bf16(FLT_MAX), 0x7f80);           /* overflow to inf */
    ck_assert_uint_eq(dt_f32_to_bf16(-INFINITY), 0xff80);
    ck_assert_uint_eq(dt_f32_to_bf16(u2f(0xff800001u)), 0xffc0);  /* sNaN -> qNaN */
    ck_assert_uint_eq(dt_f32_to_bf16(u2f(0x00008000u)), 0x0000);  /* subnormal tie */
    ck_assert_uint_eq(dt_f32_to_bf16(u2f(0x00018000u)), 0x0002);
}
END_TEST

/* ---- golden dequantization ---------------------------------------------- */

START_TEST(test_golden_rows)
{
    json_t *idx = load_json("golden/dequant/index.json");
    ck_assert(json_is_array(idx));
    ck_assert_uint_ge(json_array_size(idx), 84);
    size_t i;
    json_t *e;
    json_array_foreach(idx, i, e) {
        const uint32_t t = (uint32_t)jsz(e, "ggml_type_id");
        const size_t rows = jsz(e, "rows"), cols = jsz(e, "cols");
        const size_t off = jsz(e, "src_file_offset"), nb = jsz(e, "src_nbytes");
        const struct dt_traits *tr = dt_get(t);
        ck_assert_msg(tr && tr->supported && tr->to_float, "type %u", t);
        ck_assert_str_eq(tr->name, jstr(e, "type"));
        ck_assert_uint_eq(tr->block_size, jsz(e, "block_size"));
        ck_assert_uint_eq(tr->type_size, jsz(e, "block_bytes"));
        ck_assert_uint_eq(dt_row_size(t, cols), jsz(e, "row_bytes"));
        ck_assert_uint_eq(rows * dt_row_size(t, cols), nb);

        size_t msize;
        unsigned char *model = load_model(jstr(e, "model"), &msize);
        ck_assert_uint_le(off + nb, msize);
        char hex[65];
        sha256_hex(model + off, nb, hex);
        ck_assert_str_eq(hex, jstr(e, "src_sha256"));

        char rel[512];
        snprintf(rel, sizeof rel, "golden/dequant/%s", jstr(e, "file"));
        size_t gsize;
        float *gold = tu_read_file(tu_path(rel), &gsize);
        ck_assert_ptr_nonnull(gold);
        ck_assert_uint_eq(gsize, rows * cols * sizeof(float));

        float *out = malloc(gsize);
        ck_assert_ptr_nonnull(out);
        /* a NaN-filled buffer shows values the decoder never wrote */
        memset(out, 0xff, gsize);
        tr->to_float(model + off, out, rows * cols);
        for (size_t k = 0; k < rows * cols; k++)
            ck_assert_msg(f2u(out[k]) == f2u(gold[k]), "%s value %zu: %a != %a", jstr(e, "file"),
                          k, (double)out[k], (double)gold[k]);
        ck_assert(memcmp(out, gold, gsize) == 0);
        free(out);
        free(gold);
        free(model);
    }
    json_decref(idx);
}
END_TEST

START_TEST(test_golden_all_tensors)
{
    json_t *all = load_json("golden/dequant/tensor_sha256.json");
    ck_assert(json_is_object(all));
    const char *model_name;
    json_t *tensors;
    size_t ntensors = 0, nfiles = 0;
    unsigned seen_types[DT_COUNT] = { 0 };
    json_object_foreach(all, model_name, tensors) {
        size_t msize;
        unsigned char *model = load_model(model_name, &msize);
        nfiles++;
        size_t i;
        json_t *e;
        json_array_foreach(tensors, i, e) {
            const char *tname = jstr(e, "tensor");
            const int t = dt_from_name(jstr(e, "type"));
            ck_assert_msg(t >= 0, "%s: type %s", tname, jstr(e, "type"));
            const struct dt_traits *tr = dt_get((uint32_t)t);
            ck_assert(tr->supported && tr->to_float);
            seen_types[t]++;
            const json_t *ne = json_object_get(e, "ne");
            ck_assert(json_is_array(ne) && json_array_size(ne) >= 1);
            size_t nel = 1;
            for (size_t d = 0; d < json_array_size(ne); d++)
                nel *= (size_t)json_integer_value(json_array_get(ne, d));
            const size_t cols = (size_t)json_integer_value(json_array_get(ne, 0));
            const size_t off = jsz(e, "file_offset"), nb = jsz(e, "nbytes");
            ck_assert_uint_eq(dt_row_size((enum dt_type)t, cols) * (nel / cols), nb);
            ck_assert_uint_le(off + nb, msize);
            ck_assert_uint_eq(off % 32, 0);

            float *out = malloc(nel * sizeof(float));
            ck_assert_ptr_nonnull(out);
            tr->to_float(model + off, out, nel);
            char hex[65];
            sha256_hex(out, nel * sizeof(float), hex);
            ck_assert_msg(strcmp(hex, jstr(e, "dequant_f32_sha256")) == 0, "%s %s (%s)",
                          model_name, tname, tr->name);
            free(out);
            ntensors++;
        }
        free(model);
    }
    json_decref(all);
    ck_assert_uint_ge(nfiles, 26);
    ck_assert_uint_ge(ntensors, 1000);
    const enum dt_type must[] = { DT_F32, DT_F16, DT_BF16, DT_Q4_0, DT_Q4_1, DT_Q5_0, DT_Q5_1,
                                  DT_Q8_0, DT_Q2_K, DT_Q3_K, DT_Q4_K, DT_Q5_K, DT_Q6_K };
    for (size_t k = 0; k < sizeof must / sizeof must[0]; k++)
        ck_assert_msg(seen_types[must[k]] > 0, "no %s tensor covered", dt_name(must[k]));
}
END_TEST

/* ---- encoders against llama-quantize ------------------------------------ */

/* Finds tensor `name` of `model` in tensor_sha256.json. */
static const json_t *find_tensor(const json_t *all, const char *model, const char *name)
{
    const json_t *arr = json_object_get(all, model);
    ck_assert_msg(json_is_array(arr), "%s not listed", model);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const json_t *e = json_array_get(arr, i);
        if (strcmp(jstr(e, "tensor"), name) == 0)
            return e;
    }
    ck_abort_msg("%s: no tensor %s", model, name);
    return NULL;
}

static const char *const weight_names[] = {
    "token_embd.weight", "output.weight", "blk.0.attn_q.weight", "blk.1.attn_k.weight",
    "blk.2.ffn_down.weight", "blk.3.ffn_up.weight",
};

/* The legacy encoders are the reference algorithm llama-quantize uses
 * without an importance matrix: bytes must be identical. */
START_TEST(test_encode_legacy_matches_llama_quantize)
{
    static const struct {
        const char *model;
        enum dt_type t;
    } cases[] = {
        { "synth256-q4_0-pure.gguf", DT_Q4_0 }, { "synth256-q4_1-pure.gguf", DT_Q4_1 },
        { "synth256-q5_0-pure.gguf", DT_Q5_0 }, { "synth256-q5_1-pure.gguf", DT_Q5_1 },
        { "synth256-q8_0.gguf", DT_Q8_0 },      { "synth256-f16.gguf", DT_F16 },
        { "synth256-bf16.gguf", DT_BF16 },
    };
    json_t *all = load_json("golden/dequant/tensor_sha256.json");
    size_t fsize;
    unsigned char *f32 = load_model("synth256-f32.gguf", &fsize);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (size_t w = 0; w < sizeof weight_names / sizeof weight_names[0]; w++) {
            const json_t *src = find_tensor(all, "synth256-f32.gguf", weight_names[w]);
            const json_t *dst = find_tensor(all, cases[c].model, weight_names[w]);
            ck_assert_str_eq(jstr(dst, "type"), dt_name(cases[c].t));
            const size_t nel = jsz(src, "nbytes") / sizeof(float);
            const size_t nb = jsz(dst, "nbytes");
            ck_assert_uint_eq(dt_row_size(cases[c].t, nel), nb);
            const float *x = (const float *)(const void *)(f32 + jsz(src, "file_offset"));
            void *q = malloc(nb);
            ck_assert_ptr_nonnull(q);
            dt_get(cases[c].t)->from_float(x, q, nel);
            char hex[65];
            sha256_hex(q, nb, hex);
            ck_assert_msg(strcmp(hex, jstr(dst, "raw_sha256")) == 0, "%s %s", cases[c].model,
                          weight_names[w]);
            free(q);
        }
    }
    free(f32);
    json_decref(all);
}
END_TEST

static double sq_err(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return s;
}

/* K-quant encoders are this project's own search; on the same weights their
 * squared error must be no worse than llama-quantize's reference output
 * (measured ratios: Q2_K 0.83, Q3_K 0.91, Q4_K 0.998, Q5_K 0.987, Q6_K 0.953),
 * tensor by tensor. */
START_TEST(test_encode_kquant_quality)
{
    static const struct {
        const char *model;
        enum dt_type t;
        double margin; /* allowed squared-error ratio, ours / llama-quantize */
    } cases[] = {
        { "synth256-q2_k-pure.gguf", DT_Q2_K, 0.90 }, { "synth256-q3_k-pure.gguf", DT_Q3_K, 0.95 },
        { "synth256-q4_k-pure.gguf", DT_Q4_K, 1.00 }, { "synth256-q5_k-pure.gguf", DT_Q5_K, 1.00 },
        { "synth256-q6_k.gguf", DT_Q6_K, 0.98 },
    };
    json_t *all = load_json("golden/dequant/tensor_sha256.json");
    size_t fsize;
    unsigned char *f32 = load_model("synth256-f32.gguf", &fsize);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t msize;
        unsigned char *ref = load_model(cases[c].model, &msize);
        const struct dt_traits *tr = dt_get(cases[c].t);
        for (size_t w = 0; w < sizeof weight_names / sizeof weight_names[0]; w++) {
            const json_t *src = find_tensor(all, "synth256-f32.gguf", weight_names[w]);
            const json_t *dst = find_tensor(all, cases[c].model, weight_names[w]);
            ck_assert_str_eq(jstr(dst, "type"), tr->name);
            const size_t nel = jsz(src, "nbytes") / sizeof(float);
            const size_t nb = jsz(dst, "nbytes");
            const float *x = (const float *)(const void *)(f32 + jsz(src, "file_offset"));
            void *q = malloc(nb);
            float *ours = malloc(nel * sizeof(float)), *theirs = malloc(nel * sizeof(float));
            ck_assert(q && ours && theirs);
            tr->from_float(x, q, nel);
            tr->to_float(q, ours, nel);
            tr->to_float(ref + jsz(dst, "file_offset"), theirs, nel);
            const double e_ours = sq_err(x, ours, nel), e_ref = sq_err(x, theirs, nel);
            if (getenv("DT_VERBOSE"))
                fprintf(stderr, "%s %s: ours/ref %.4f\n", tr->name, weight_names[w], e_ours / e_ref);
            ck_assert_msg(e_ours <= cases[c].margin * e_ref, "%s %s: error %g vs reference %g",
                          tr->name, weight_names[w], e_ours, e_ref);
            free(q);
            free(ours);
            free(theirs);
        }
        free(ref);
    }
    free(f32);
    json_decref(all);
}
END_TEST

/* ---- round trips on fresh random data ------------------------------------ */

#define RT_N 4096 /* values per trial: 16 super-blocks */

/* Data shapes per trial: Gaussian, uniform, Gaussian with outliers, tiny and
 * huge magnitudes, a zero block and a constant block. */
static void gen_data(unsigned long long *st, int kind, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double v;
        switch (kind) {
        case 0: v = tu_rand_normal(st); break;
        case 1: v = 2 * tu_rand_uniform(st) - 1; break;
        case 2: v = tu_rand_normal(st) * (tu_rand_uniform(st) < 0.02 ? 20 : 1); break;
        case 3: v = tu_rand_normal(st) * 1e-3; break;
        case 4: v = tu_rand_normal(st) * 300; break;
        default: v = tu_rand_uniform(st) + 0.5; break; /* all positive */
        }
        x[i] = (float)v;
    }
    for (size_t i = 0; i < 256; i++)
        x[i] = 0.0f; /* first super-block zero */
    for (size_t i = 256; i < 512; i++)
        x[i] = 0.75f; /* second constant */
}

static float block_amax(const float *x, size_t n)
{
    float a = 0;
    for (size_t i = 0; i < n; i++)
        a = fmaxf(a, fabsf(x[i]));
    return a;
}

START_TEST(test_roundtrip_float_formats)
{
    unsigned long long seed = tu_rng_seed(), st = seed;
    float *x = malloc(RT_N * sizeof(float)), *y = malloc(RT_N * sizeof(float));
    void *q = malloc(RT_N * 4);
    ck_assert(x && y && q);
    for (int kind = 0; kind < 6; kind++) {
        gen_data(&st, kind, x, RT_N);
        dt_get(DT_F32)->from_float(x, q, RT_N);
        dt_get(DT_F32)->to_float(q, y, RT_N);
        ck_assert(memcmp(x, y, RT_N * sizeof(float)) == 0);
        dt_get(DT_F16)->from_float(x, q, RT_N);
        dt_get(DT_F16)->to_float(q, y, RT_N);
        for (size_t i = 0; i < RT_N; i++)
            ck_assert_msg(fabsf(x[i] - y[i]) <= fabsf(x[i]) * 0x1p-11f + 0x1p-25f,
                          "seed %llu f16 %a -> %a", seed, (double)x[i], (double)y[i]);
        dt_get(DT_BF16)->from_float(x, q, RT_N);
        dt_get(DT_BF16)->to_float(q, y, RT_N);
        for (size_t i = 0; i < RT_N; i++)
            ck_assert_msg(fabsf(x[i] - y[i]) <= fabsf(x[i]) * 0x1p-8f,
                          "seed %llu bf16 %a -> %a", seed, (double)x[i], (double)y[i]);
    }
    free(x);
    free(y);
    free(q);
}
END_TEST

/* Legacy blocks of 32. Bounds (d as the encoder computes it, d16 as stored):
 *   Q8_0/Q8_1: |err| <= d/2 + 127|d - d16|, codes = roundf(x * (1/d)) exactly;
 *   Q4_0/Q5_0: d = max/-8 (/-16), |err| <= |d|/2 + 8|d - d16| (16|..|), and
 *              <= |d| for the values beyond the top code (x/d > 7.5 / 15.5);
 *   Q4_1/Q5_1: d = (max-min)/15 (/31), |err| <= d/2 + 15|d-d16| + |m-m16|. */
START_TEST(test_roundtrip_legacy)
{
    unsigned long long seed = tu_rng_seed(), st = seed;
    float *x = malloc(RT_N * sizeof(float)), *y = malloc(RT_N * sizeof(float));
    unsigned char *q = malloc(RT_N * 2);
    ck_assert(x && y && q);
    for (int kind = 0; kind < 6; kind++) {
        gen_data(&st, kind, x, RT_N);
        for (int ti = 0; ti < 6; ti++) {
            static const enum dt_type types[6] = { DT_Q8_0, DT_Q8_1, DT_Q4_0,
                                                   DT_Q5_0, DT_Q4_1, DT_Q5_1 };
            const enum dt_type t = types[ti];
            const struct dt_traits *tr = dt_get(t);
            tr->from_float(x, q, RT_N);
            tr->to_float(q, y, RT_N);
            for (size_t b = 0; b < RT_N / 32; b++) {
                const float *xb = x + 32 * b, *yb = y + 32 * b;
                const unsigned char *blk = q + b * tr->type_size;
                dt_fp16 d16b;
                memcpy(&d16b, blk, 2);
                const float d16 = dt_fp16_to_f32(d16b);
                const float amax = block_amax(xb, 32);
                const float slack = amax * 1e-6f + 1e-30f;
                if (t == DT_Q8_0 || t == DT_Q8_1) {
                    const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
                    const int8_t *qs = (const int8_t *)(blk + (t == DT_Q8_0 ? 2 : 4));
                    int sum = 0;
                    for (int j = 0; j < 32; j++) {
                        ck_assert_int_eq(qs[j], (int)roundf(xb[j] * id));
                        sum += qs[j];
                        ck_assert_msg(fabsf(xb[j] - yb[j]) <=
                                          d / 2 + 127 * fabsf(d - d16) + slack,
                                      "seed %llu %s", seed, tr->name);
                    }
                    if (t == DT_Q8_1) {
                        dt_fp16 s16;
                        memcpy(&s16, blk + 2, 2);
                        ck_assert_uint_eq(s16, dt_f32_to_fp16((float)sum * d));
                    }
                } else if (t == DT_Q4_0 || t == DT_Q5_0) {
                    const int z = t == DT_Q4_0 ? 8 : 16;
                    float max = 0;
                    for (int j = 0; j < 32; j++)
                        if (fabsf(xb[j]) > fabsf(max))
                            max = xb[j];
                    const float d = max / (float)-z;
                    ck_assert_uint_eq(d16b, dt_f32_to_fp16(d));
                    for (int j = 0; j < 32; j++) {
                        const float r = d != 0.0f ? xb[j] / d : 0.0f;
                        const float step = r > (float)z - 0.5f ? fabsf(d) : fabsf(d) / 2;
                        ck_assert_msg(fabsf(xb[j] - yb[j]) <=
                                          step + (float)z * fabsf(d - d16) + slack,
                                      "seed %llu %s x=%g y=%g d=%g", seed, tr->name,
                                      (double)xb[j], (double)yb[j], (double)d);
                    }
                } else {
                    const int top = t == DT_Q4_1 ? 15 : 31;
                    float mn = xb[0], mx = xb[0];
                    for (int j = 1; j < 32; j++) {
                        mn = fminf(mn, xb[j]);
                        mx = fmaxf(mx, xb[j]);
                    }
                    const float d = (mx - mn) / (float)top;
                    dt_fp16 m16b;
                    memcpy(&m16b, blk + 2, 2);
                    const float m16 = dt_fp16_to_f32(m16b);
                    ck_assert_uint_eq(d16b, dt_f32_to_fp16(d));
                    ck_assert_uint_eq(m16b, dt_f32_to_fp16(mn));
                    for (int j = 0; j < 32; j++)
                        ck_assert_msg(fabsf(xb[j] - yb[j]) <= d / 2 + (float)top *
                                          fabsf(d - d16) + fabsf(mn - m16) + slack,
                                      "seed %llu %s x=%g y=%g", seed, tr->name,
                                      (double)xb[j], (double)yb[j]);
                }
            }
        }
    }
    free(x);
    free(y);
    free(q);
}
END_TEST

START_TEST(test_roundtrip_q8_k)
{
    unsigned long long seed = tu_rng_seed(), st = seed;
    float *x = malloc(RT_N * sizeof(float)), *y = malloc(RT_N * sizeof(float));
    struct blk_q8_k *q = malloc(RT_N / QK_K * sizeof *q);
    ck_assert(x && y && q);
    for (int kind = 0; kind < 6; kind++) {
        gen_data(&st, kind, x, RT_N);
        dt_get(DT_Q8_K)->from_float(x, q, RT_N);
        dt_get(DT_Q8_K)->to_float(q, y, RT_N);
        for (size_t b = 0; b < RT_N / QK_K; b++) {
            const float *xb = x + QK_K * b, *yb = y + QK_K * b;
            float max = 0;
            for (int j = 0; j < QK_K; j++)
                if (fabsf(xb[j]) > fabsf(max))
                    max = xb[j];
            if (max == 0.0f) {
                ck_assert(q[b].d == 0.0f);
            } else {
                const float iscale = -127.0f / max;
                ck_assert(q[b].d == 1.0f / iscale);
            }
            for (int j = 0; j < QK_K; j++) {
                ck_assert_int_ge(q[b].qs[j], -127);
                ck_assert_msg(fabsf(xb[j] - yb[j]) <= fabsf(q[b].d) * 0.5f * (1 + 1e-5f) +
                                  fabsf(max) * 1e-6f,
                              "seed %llu", seed);
            }
            for (int g = 0; g < QK_K / 16; g++) {
                int s = 0;
                for (int l = 0; l < 16; l++)
                    s += q[b].qs[16 * g + l];
                ck_assert_int_eq(q[b].bsums[g], s);
            }
        }
    }
    free(x);
    free(y);
    free(q);
}
END_TEST

/* K-quant weights: a zero super-block decodes to zeros; on Gaussian data the
 * relative RMS error stays under a bound a sound b-bit quantizer meets with
 * room to spare (measured: 0.27, 0.144, 0.071, 0.036, 0.017 for b = 2..6);
 * and no value is off by more than 3 code steps of a grid spanning its
 * super-block's largest magnitude, 3 * amax / (2^b - 1) (the MSE-optimal
 * scales clip outliers by up to ~2.2 steps, never more). */
START_TEST(test_roundtrip_kquants)
{
    static const struct {
        enum dt_type t;
        int bits;
        double rel_rms; /* max RMS error / RMS of data, Gaussian data */
    } cases[] = {
        { DT_Q2_K, 2, 0.32 }, { DT_Q3_K, 3, 0.17 }, { DT_Q4_K, 4, 0.085 },
        { DT_Q5_K, 5, 0.043 }, { DT_Q6_K, 6, 0.021 },
    };
    unsigned long long seed = tu_rng_seed(), st = seed;
    float *x = malloc(RT_N * sizeof(float)), *y = malloc(RT_N * sizeof(float));
    unsigned char *q = malloc(RT_N);
    ck_assert(x && y && q);
    for (int kind = 0; kind < 6; kind++) {
        gen_data(&st, kind, x, RT_N);
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            const struct dt_traits *tr = dt_get(cases[c].t);
            tr->from_float(x, q, RT_N);
            tr->to_float(q, y, RT_N);
            for (size_t i = 0; i < 256; i++)
                ck_assert_msg(y[i] == 0.0f, "%s zero block -> %g", tr->name, (double)y[i]);
            double se = 0, ss = 0;
            for (size_t b = 0; b < RT_N / QK_K; b++) {
                const float *xb = x + QK_K * b, *yb = y + QK_K * b;
                const float amax = block_amax(xb, QK_K);
                for (int j = 0; j < QK_K; j++) {
                    ck_assert(isfinite(yb[j]));
                    ck_assert_msg(fabsf(xb[j] - yb[j]) <= 3.0f * amax / (float)((1 << cases[c].bits) - 1),
                                  "seed %llu kind %d %s block %zu: x=%g y=%g amax=%g", seed,
                                  kind, tr->name, b, (double)xb[j], (double)yb[j],
                                  (double)amax);
                }
                if (b >= 2) {
                    se += sq_err(xb, yb, QK_K);
                    for (int j = 0; j < QK_K; j++)
                        ss += (double)xb[j] * xb[j];
                }
            }
            if (getenv("DT_VERBOSE"))
                fprintf(stderr, "kind %d %s rel rms %.4f\n", kind, tr->name, sqrt(se / ss));
            if (kind == 0)
                ck_assert_msg(sqrt(se / ss) <= cases[c].rel_rms, "seed %llu %s: rel rms %g",
                              seed, tr->name, sqrt(se / ss));
        }
    }
    free(x);
    free(y);
    free(q);
}
END_TEST

/* Non-finite input must give some block without crashing or undefined
 * float-to-integer conversions (run under the sanitizer build); finite
 * blocks next to it are unaffected. */
START_TEST(test_nonfinite_inputs)
{
    float x[512], y[512];
    _Alignas(16) unsigned char q[512 * sizeof(float)];
    for (int i = 0; i < 512; i++)
        x[i] = (float)(i % 17) - 8.0f;
    x[3] = NAN;
    x[40] = INFINITY;
    x[77] = -INFINITY;
    for (uint32_t t = 0; t < DT_COUNT; t++) {
        const struct dt_traits *tr = dt_get(t);
        if (!tr || !tr->from_float)
            continue;
        tr->from_float(x, q, 512);
        tr->to_float(q, y, 512);
        if (tr->block_size <= 32) /* the second half is blocks of finite data */
            for (int i = 256; i < 512; i++)
                ck_assert_msg(fabsf(y[i] - x[i]) <= 1.0f, "%s", tr->name);
    }
}
END_TEST

static Suite *dtype_suite(void)
{
    Suite *s = suite_create("dtype");
    TCase *tc = tcase_create("traits");
    tcase_add_test(tc, test_traits);
    suite_add_tcase(s, tc);

    tc = tcase_create("half");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_fp16_exhaustive);
    tcase_add_test(tc, test_fp16_rounding);
    tcase_add_test(tc, test_bf16);
    suite_add_tcase(s, tc);

    tc = tcase_create("golden");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_golden_rows);
    tcase_add_test(tc, test_golden_all_tensors);
    tcase_add_test(tc, test_encode_legacy_matches_llama_quantize);
    tcase_add_test(tc, test_encode_kquant_quality);
    suite_add_tcase(s, tc);

    tc = tcase_create("roundtrip");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_roundtrip_float_formats);
    tcase_add_test(tc, test_roundtrip_legacy);
    tcase_add_test(tc, test_roundtrip_q8_k);
    tcase_add_test(tc, test_roundtrip_kquants);
    tcase_add_test(tc, test_nonfinite_inputs);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    tu_shared();
    return tu_run_suite(dtype_suite());
}
