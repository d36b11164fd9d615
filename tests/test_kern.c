/* test_kern.c - CPU kernels: ISA detection and override, the scalar dot
 * references against float64 dots of the dequantized operands, every SIMD
 * dot kernel and activation converter against the scalar ones, kern_matmul
 * against naive loops (tokens, odd shapes, strides, threads), and the
 * element-wise ops against double-precision references.
 *
 * Tolerances (S = sum_i |w_i * x_i| over the dequantized operands):
 *   SIMD dot vs scalar dot (same quantized inputs): 1e-5 * S + 1e-6 (only
 *     the float accumulation order differs; block integer sums are exact);
 *   scalar dot vs float64 dot of dequantized operands: 1e-5 * S + 1e-6, plus
 *     2^-10 * sum_b |m_b * s_b| for Q4_1/Q5_1, whose Q8_1 activation carries
 *     s = d * sum(q) rounded to fp16;
 *   activation converters: bit-identical bytes.
 */
#include "kern.h"
#include "testutil.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static const enum dt_type wtypes[] = {
    DT_F32, DT_F16, DT_BF16, DT_Q4_0, DT_Q4_1, DT_Q5_0, DT_Q5_1, DT_Q8_0,
    DT_Q2_K, DT_Q3_K, DT_Q4_K, DT_Q5_K, DT_Q6_K,
};
#define N_WTYPES (sizeof wtypes / sizeof wtypes[0])

/* The activation format each dot kernel is written for. */
static enum dt_type expected_act(enum dt_type t)
{
    switch (t) {
    case DT_F32:
    case DT_F16: return DT_F32;
    case DT_BF16: return DT_BF16;
    case DT_Q4_0:
    case DT_Q5_0:
    case DT_Q8_0: return DT_Q8_0;
    case DT_Q4_1:
    case DT_Q5_1: return DT_Q8_1;
    default: return DT_Q8_K;
    }
}

static void fill_normal(float *v, size_t n, unsigned long long *rng, double scale)
{
    for (size_t i = 0; i < n; i++)
        v[i] = (float)(tu_rand_normal(rng) * scale);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(p);
    return p;
}

/* Memory that ends exactly at an inaccessible page: a kernel reading past the
 * end of its operands faults here (sanitizers do not see SIMD over-reads). */
struct guarded {
    void *map;
    size_t map_size;
    void *p;
};

static void *guarded_alloc(struct guarded *g, size_t size)
{
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const size_t data_pages = (size + page - 1) / page;
    g->map_size = (data_pages + 1) * page;
    g->map = mmap(NULL, g->map_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert(g->map != MAP_FAILED);
    uint8_t *end = (uint8_t *)g->map + data_pages * page;
    ck_assert_int_eq(mprotect(end, page, PROT_NONE), 0);
    g->p = end - size; /* every row size here is a multiple of its block's alignment */
    return g->p;
}

static void guarded_free(struct guarded *g)
{
    munmap(g->map, g->map_size);
}

/* Weights of type t from random floats; *deq receives the dequantized row. */
static void *make_row(enum dt_type t, size_t n, unsigned long long *rng, float **deq)
{
    const struct dt_traits *tr = dt_get(t);
    ck_assert_ptr_nonnull(tr);
    float *f = xmalloc(n * sizeof(float));
    fill_normal(f, n, rng, 0.5);
    void *q = xmalloc(dt_row_size(t, n));
    tr->from_float(f, q, n);
    if (deq) {
        *deq = xmalloc(n * sizeof(float));
        tr->to_float(q, *deq, n);
    }
    free(f);
    return q;
}

/* Activations in format act (via the scalar reference converter). */
static void *make_act(enum dt_type act, const float *x, size_t n, float **deq)
{
    void *q = xmalloc(dt_row_size(act, n));
    kern_quantize_act(KERN_ISA_SCALAR, act, x, q, n);
    if (deq) {
        *deq = xmalloc(n * sizeof(float));
        dt_get(act)->to_float(q, *deq, n);
    }
    return q;
}

static double abs_dot(const float *a, const float *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += fabs((double)a[i] * (double)b[i]);
    return s;
}

static size_t block_of(enum dt_type t)
{
    return dt_get(t)->block_size;
}

/* Lengths to try for a type: one block, a few, odd counts, model sizes. */
static size_t test_lengths(enum dt_type t, size_t *out)
{
    size_t k = 0;
    if (block_of(t) == 1) {
        const size_t l[] = { 1, 7, 16, 31, 33, 100, 256, 2048, 5632 };
        for (size_t i = 0; i < sizeof l / sizeof l[0]; i++)
            out[k++] = l[i];
    } else if (block_of(t) == 32) {
        const size_t l[] = { 32, 64, 96, 128, 160, 256, 32 * 37, 2048, 5632 };
        for (size_t i = 0; i < sizeof l / sizeof l[0]; i++)
            out[k++] = l[i];
    } else {
        const size_t l[] = { 256, 512, 768, 2048, 5632 };
        for (size_t i = 0; i < sizeof l / sizeof l[0]; i++)
            out[k++] = l[i];
    }
    return k;
}

/* Extra reference tolerance of Q8_1 activations: s is d * sum(q) in fp16. */
static double q8_1_slack(enum dt_type t, const void *w, const void *act, size_t n)
{
    double slack = 0.0;
    const struct blk_q8_1 *b = act;
    for (size_t i = 0; i < n / 32; i++) {
        float m;
        if (t == DT_Q4_1)
            m = dt_fp16_to_f32(((const struct blk_q4_1 *)w)[i].m);
        else if (t == DT_Q5_1)
            m = dt_fp16_to_f32(((const struct blk_q5_1 *)w)[i].m);
        else
            return 0.0;
        slack += fabs((double)m * dt_fp16_to_f32(b[i].s)) * 0x1p-10;
    }
    return slack;
}

START_TEST(test_isa_detect)
{
    ck_assert(kern_isa_supported(KERN_ISA_SCALAR));
    ck_assert(!kern_isa_supported(KERN_ISA_COUNT));
    unsetenv("INFERD_ISA");
    const enum kern_isa best = kern_isa_best();
    ck_assert(kern_isa_supported(best));
    for (int i = best + 1; i < KERN_ISA_COUNT; i++)
        ck_assert(!kern_isa_supported((enum kern_isa)i));
    /* the ISAs nest: each one implies the ones below it */
    for (int i = 1; i < KERN_ISA_COUNT; i++)
        if (kern_isa_supported((enum kern_isa)i))
            ck_assert(kern_isa_supported((enum kern_isa)(i - 1)));
    ck_assert_str_eq(kern_isa_name(KERN_ISA_SCALAR), "scalar");
    ck_assert_str_eq(kern_isa_name(KERN_ISA_AVX2), "avx2");
    ck_assert_str_eq(kern_isa_name(KERN_ISA_AVX512), "avx512");
    ck_assert_str_eq(kern_isa_name(KERN_ISA_AVX512VNNI), "avx512vnni");
    ck_assert_str_eq(kern_isa_name(KERN_ISA_COUNT), "?");
    fprintf(stderr, "best ISA: %s\n", kern_isa_name(best));
}
END_TEST

START_TEST(test_isa_override)
{
    const enum kern_isa best = (unsetenv("INFERD_ISA"), kern_isa_best());
    for (int i = 0; i < KERN_ISA_COUNT; i++) {
        setenv("INFERD_ISA", kern_isa_name((enum kern_isa)i), 1);
        const enum kern_isa got = kern_isa_best();
        ck_assert_int_eq(got, kern_isa_supported((enum kern_isa)i) ? i : (int)best);
    }
    setenv("INFERD_ISA", "SCALAR", 1); /* case-insensitive */
    ck_assert_int_eq(kern_isa_best(), KERN_ISA_SCALAR);
    setenv("INFERD_ISA", "no-such-isa", 1);
    ck_assert_int_eq(kern_isa_best(), best);
    unsetenv("INFERD_ISA");
}
END_TEST

START_TEST(test_act_types)
{
    for (size_t i = 0; i < N_WTYPES; i++) {
        const struct dt_traits *tr = dt_get(wtypes[i]);
        ck_assert_ptr_nonnull(tr);
        ck_assert_msg(tr->vec_dot_type == expected_act(wtypes[i]), "%s: vec_dot_type %s",
                      tr->name, dt_name(tr->vec_dot_type));
        enum kern_isa got = KERN_ISA_COUNT;
        ck_assert(kern_vec_dot(KERN_ISA_SCALAR, wtypes[i], &got) != NULL);
        ck_assert_int_eq(got, KERN_ISA_SCALAR);
    }
    ck_assert(kern_vec_dot(KERN_ISA_SCALAR, DT_Q8_K, NULL) == NULL);
    ck_assert(kern_vec_dot(KERN_ISA_SCALAR, (enum dt_type)20, NULL) == NULL);
    ck_assert(kern_vec_dot(KERN_ISA_SCALAR, DT_COUNT, NULL) == NULL);
}
END_TEST

/* The scalar references against float64 dots of what they multiply. */
START_TEST(test_ref_vs_double)
{
    unsigned long long rng = tu_rng_seed() + 11;
    for (size_t ti = 0; ti < N_WTYPES; ti++) {
        const enum dt_type t = wtypes[ti];
        const enum dt_type act = expected_act(t);
        size_t lens[16];
        const size_t nl = test_lengths(t, lens);
        kern_vec_dot_fn ref = kern_vec_dot(KERN_ISA_SCALAR, t, NULL);
        for (size_t li = 0; li < nl; li++) {
            const size_t n = lens[li];
            float *wd, *xd, *x = xmalloc(n * sizeof(float));
            void *w = make_row(t, n, &rng, &wd);
            fill_normal(x, n, &rng, 1.0);
            void *xa = make_act(act, x, n, &xd);
            double exact = 0.0;
            for (size_t i = 0; i < n; i++)
                exact += (double)wd[i] * (double)xd[i];
            float got;
            ref(n, &got, w, xa);
            const double tol = 1e-5 * abs_dot(wd, xd, n) + 1e-6 + q8_1_slack(t, w, xa, n);
            ck_assert_msg(fabs(got - exact) <= tol, "%s n=%zu: ref %.9g vs f64 %.9g (tol %.3g)",
                          dt_name(t), n, got, exact, tol);
            free(w);
            free(wd);
            free(x);
            free(xa);
            free(xd);
        }
    }
}
END_TEST

/* Every SIMD dot kernel of every supported ISA against the scalar one. */
START_TEST(test_simd_vs_ref)
{
    unsigned long long rng = tu_rng_seed() + 23;
    int checked = 0;
    for (int isa = KERN_ISA_AVX2; isa < KERN_ISA_COUNT; isa++) {
        if (!kern_isa_supported((enum kern_isa)isa))
            continue;
        for (size_t ti = 0; ti < N_WTYPES; ti++) {
            const enum dt_type t = wtypes[ti];
            enum kern_isa got_isa;
            kern_vec_dot_fn fn = kern_vec_dot((enum kern_isa)isa, t, &got_isa);
            kern_vec_dot_fn ref = kern_vec_dot(KERN_ISA_SCALAR, t, NULL);
            ck_assert(fn != NULL);
            ck_assert_int_le(got_isa, isa);
            if ((int)got_isa != isa)
                continue; /* a lower ISA's kernel: checked in its own round */
            size_t lens[16];
            const size_t nl = test_lengths(t, lens);
            for (size_t li = 0; li < nl; li++) {
                const size_t n = lens[li];
                for (int rep = 0; rep < 3; rep++) {
                    float *wd, *xd, *x = xmalloc(n * sizeof(float));
                    void *w = make_row(t, n, &rng, &wd);
                    fill_normal(x, n, &rng, rep == 2 ? 100.0 : 1.0);
                    void *xa = make_act(expected_act(t), x, n, &xd);
                    struct guarded gw, gx;
                    const size_t wsz = dt_row_size(t, n), xsz = dt_row_size(expected_act(t), n);
                    void *wg = memcpy(guarded_alloc(&gw, wsz), w, wsz);
                    void *xg = memcpy(guarded_alloc(&gx, xsz), xa, xsz);
                    float a = NAN, b = NAN;
                    fn(n, &a, wg, xg);
                    ref(n, &b, w, xa);
                    guarded_free(&gw);
                    guarded_free(&gx);
                    const double tol = 1e-5 * abs_dot(wd, xd, n) + 1e-6;
                    ck_assert_msg(fabs((double)a - (double)b) <= tol,
                                  "%s/%s n=%zu: simd %.9g vs ref %.9g (tol %.3g)",
                                  kern_isa_name((enum kern_isa)isa), dt_name(t), n, a, b, tol);
                    checked++;
                    free(w);
                    free(wd);
                    free(x);
                    free(xa);
                    free(xd);
                }
            }
        }
    }
    fprintf(stderr, "SIMD dot checks: %d\n", checked);
}
END_TEST

/* Weight rows of random bytes: every bit pattern of quants and scale fields
 * (Q8_0 -128, Q6_K scales of -128, all 6-bit scale/min packings), with the
 * fp16 scale fields set to small finite values. */
static dt_fp16 rand_scale(unsigned long long *rng)
{
    return dt_f32_to_fp16((float)(0.001 + 0.01 * tu_rand_uniform(rng)));
}

static void random_blocks(enum dt_type t, void *buf, size_t n, unsigned long long *rng)
{
    const size_t sz = dt_row_size(t, n), nb = n / block_of(t);
    uint8_t *b = buf;
    for (size_t i = 0; i < sz; i++)
        b[i] = (uint8_t)(tu_rand_uniform(rng) * 256.0);
    for (size_t i = 0; i < nb; i++) {
        switch (t) {
        case DT_Q4_0: ((struct blk_q4_0 *)buf)[i].d = rand_scale(rng); break;
        case DT_Q5_0: ((struct blk_q5_0 *)buf)[i].d = rand_scale(rng); break;
        case DT_Q8_0: ((struct blk_q8_0 *)buf)[i].d = rand_scale(rng); break;
        case DT_Q4_1:
            ((struct blk_q4_1 *)buf)[i].d = rand_scale(rng);
            ((struct blk_q4_1 *)buf)[i].m = rand_scale(rng);
            break;
        case DT_Q5_1:
            ((struct blk_q5_1 *)buf)[i].d = rand_scale(rng);
            ((struct blk_q5_1 *)buf)[i].m = rand_scale(rng);
            break;
        case DT_Q2_K:
            ((struct blk_q2_k *)buf)[i].d = rand_scale(rng);
            ((struct blk_q2_k *)buf)[i].dmin = rand_scale(rng);
            break;
        case DT_Q3_K: ((struct blk_q3_k *)buf)[i].d = rand_scale(rng); break;
        case DT_Q4_K:
            ((struct blk_q4_k *)buf)[i].d = rand_scale(rng);
            ((struct blk_q4_k *)buf)[i].dmin = rand_scale(rng);
            break;
        case DT_Q5_K:
            ((struct blk_q5_k *)buf)[i].d = rand_scale(rng);
            ((struct blk_q5_k *)buf)[i].dmin = rand_scale(rng);
            break;
        case DT_Q6_K: ((struct blk_q6_k *)buf)[i].d = rand_scale(rng); break;
        default: break;
        }
    }
}

START_TEST(test_random_bits)
{
    unsigned long long rng = tu_rng_seed() + 29;
    const enum dt_type qtypes[] = { DT_Q4_0, DT_Q4_1, DT_Q5_0, DT_Q5_1, DT_Q8_0, DT_Q2_K,
                                    DT_Q3_K, DT_Q4_K, DT_Q5_K, DT_Q6_K };
    const size_t rows = 11, n = 5 * 256, nt = 5;
    for (size_t ti = 0; ti < sizeof qtypes / sizeof qtypes[0]; ti++) {
        const enum dt_type t = qtypes[ti];
        const size_t rb = dt_row_size(t, n);
        uint8_t *w = xmalloc(rows * rb);
        random_blocks(t, w, rows * n, &rng);
        float *wd = xmalloc(rows * n * sizeof(float));
        dt_get(t)->to_float(w, wd, rows * n);
        float *x = xmalloc(nt * n * sizeof(float)), *y = xmalloc(nt * rows * sizeof(float));
        fill_normal(x, nt * n, &rng, 1.0);
        kern_vec_dot_fn ref = kern_vec_dot(KERN_ISA_SCALAR, t, NULL);
        for (int isa = KERN_ISA_AVX2; isa < KERN_ISA_COUNT; isa++) {
            if (!kern_isa_supported((enum kern_isa)isa))
                continue;
            kern_vec_dot_fn fn = kern_vec_dot((enum kern_isa)isa, t, NULL);
            struct kern_ctx ctx;
            ck_assert_int_eq(kern_ctx_init(&ctx, (enum kern_isa)isa, NULL), 0);
            const struct kern_mat m = { .type = t, .rows = rows, .cols = n, .row_bytes = rb, .data = w };
            ck_assert_int_eq(kern_matmul(&ctx, &m, nt, x, n, y, rows), 0);
            kern_ctx_free(&ctx);
            for (size_t k = 0; k < nt; k++) {
                float *xd;
                void *xa = make_act(expected_act(t), x + k * n, n, &xd);
                for (size_t r = 0; r < rows; r++) {
                    float a, b;
                    fn(n, &a, w + r * rb, xa);
                    ref(n, &b, w + r * rb, xa);
                    const double tol = 1e-5 * abs_dot(wd + r * n, xd, n) + 1e-6;
                    ck_assert_msg(fabs((double)a - b) <= tol, "%s %s row %zu: simd %.9g ref %.9g",
                                  kern_isa_name((enum kern_isa)isa), dt_name(t), r, a, b);
                    ck_assert_msg(fabs((double)y[k * rows + r] - b) <= tol,
                                  "%s %s matmul y[%zu][%zu] %.9g ref %.9g",
                                  kern_isa_name((enum kern_isa)isa), dt_name(t), k, r,
                                  y[k * rows + r], b);
                }
                free(xa);
                free(xd);
            }
        }
        free(w);
        free(wd);
        free(x);
        free(y);
    }
}
END_TEST

/* Inputs that probe the converters' corner cases. */
static void fill_tricky(float *x, size_t n, int kind, unsigned long long *rng)
{
    switch (kind) {
    case 0: /* plain normal */
        fill_normal(x, n, rng, 1.0);
        break;
    case 1: /* amax 127 per 32: d = 1, values on .5 ties */
        for (size_t i = 0; i < n; i++)
            x[i] = (i % 32 == 5) ? 127.0f : (float)((long)(tu_rand_uniform(rng) * 200) - 100) + 0.5f;
        break;
    case 2: /* Q8_K with max -127 (iscale 1): ties to even; +127 and -127 both present */
        for (size_t i = 0; i < n; i++)
            x[i] = (i % 256 == 3) ? -127.0f
                   : (i % 256 == 9) ? 127.0f
                                    : (float)((long)(tu_rand_uniform(rng) * 200) - 100) + 0.5f;
        break;
    case 3: /* zeros, tiny values and a few big ones */
        for (size_t i = 0; i < n; i++)
            x[i] = (i / 32) % 3 == 0 ? 0.0f : (float)(tu_rand_normal(rng) * 1e-30);
        if (n > 40)
            x[40] = 3e4f;
        break;
    default: /* bf16 specials: denormals, inf, NaN, round-to-even ties */
        for (size_t i = 0; i < n; i++) {
            uint32_t u = (uint32_t)(tu_rand_uniform(rng) * 4294967295.0);
            switch (i % 6) {
            case 0: u = (u & 0x807fffffu); break;           /* denormal */
            case 1: u = (u & 0xffff0000u) | 0x8000u; break; /* exact tie */
            case 2: u = 0x7f800000u | (u & 0x80000000u); break;
            case 3: u = 0x7fc00001u | (u & 0x803f0000u); break; /* NaN */
            default: break;
            }
            memcpy(&x[i], &u, sizeof u);
        }
        break;
    }
}

START_TEST(test_quant_act_exact)
{
    unsigned long long rng = tu_rng_seed() + 37;
    const enum dt_type acts[] = { DT_F32, DT_BF16, DT_Q8_0, DT_Q8_1, DT_Q8_K };
    const size_t lens[] = { 256, 512, 2048, 5632 };
    for (int isa = KERN_ISA_AVX2; isa < KERN_ISA_COUNT; isa++) {
        if (!kern_isa_supported((enum kern_isa)isa))
            continue;
        for (size_t ai = 0; ai < sizeof acts / sizeof acts[0]; ai++) {
            const enum dt_type act = acts[ai];
            for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
                for (int kind = 0; kind < 5; kind++) {
                    if (kind == 4 && act != DT_BF16 && act != DT_F32)
                        continue; /* NaN/inf inputs: only the float formats define them */
                    const size_t n = lens[li] + (act == DT_BF16 ? 3 : 0);
                    float *x = xmalloc(n * sizeof(float));
                    fill_tricky(x, n, kind, &rng);
                    const size_t sz = dt_row_size(act, n);
                    ck_assert_uint_gt(sz, 0);
                    uint8_t *a = xmalloc(sz), *b = xmalloc(sz);
                    memset(a, 0xa5, sz);
                    memset(b, 0x5a, sz);
                    kern_quantize_act((enum kern_isa)isa, act, x, a, n);
                    kern_quantize_act(KERN_ISA_SCALAR, act, x, b, n);
                    size_t bad = 0;
                    while (bad < sz && a[bad] == b[bad])
                        bad++;
                    ck_assert_msg(bad == sz, "%s %s n=%zu kind %d: byte %zu differs (%02x vs %02x)",
                                  kern_isa_name((enum kern_isa)isa), dt_name(act), n, kind, bad,
                                  bad < sz ? a[bad] : 0, bad < sz ? b[bad] : 0);
                    free(x);
                    free(a);
                    free(b);
                }
            }
        }
    }
}
END_TEST

/* kern_matmul against loops over the scalar reference (same quantized
 * activations) and a float64 loop over dequantized weights. */
static void check_matmul(enum kern_isa isa, struct tp_pool *pool, enum dt_type t, size_t rows,
                         size_t cols, size_t n, unsigned long long *rng)
{
    const enum dt_type act = expected_act(t);
    const size_t rb = dt_row_size(t, cols);
    const size_t row_bytes = rb + (t == DT_F32 ? 8 : 0); /* a padded stride for one type */
    struct guarded gw, gx;
    uint8_t *wdata = guarded_alloc(&gw, rows * row_bytes);
    float *wdeq = xmalloc(rows * cols * sizeof(float));
    for (size_t r = 0; r < rows; r++) {
        float *d;
        void *q = make_row(t, cols, rng, &d);
        memcpy(wdata + r * row_bytes, q, rb);
        memcpy(wdeq + r * cols, d, cols * sizeof(float));
        free(q);
        free(d);
    }
    const size_t xs = cols + 5, ys = rows + 3;
    const size_t xlen = (n - 1) * xs + cols; /* the last row ends at the guard page */
    float *x = guarded_alloc(&gx, xlen * sizeof(float));
    fill_normal(x, xlen, rng, 1.0);
    float *y = xmalloc(n * ys * sizeof(float));
    for (size_t i = 0; i < n * ys; i++)
        y[i] = -12345.0f;

    struct kern_ctx ctx;
    ck_assert_int_eq(kern_ctx_init(&ctx, isa, pool), 0);
    const struct kern_mat w = { .type = t, .rows = rows, .cols = cols, .row_bytes = row_bytes,
                                .data = wdata };
    ck_assert_int_eq(kern_matmul(&ctx, &w, n, x, xs, y, ys), 0);
    /* twice: a grown work buffer is reused */
    ck_assert_int_eq(kern_matmul(&ctx, &w, n, x, xs, y, ys), 0);

    kern_vec_dot_fn ref = kern_vec_dot(KERN_ISA_SCALAR, t, NULL);
    for (size_t tk = 0; tk < n; tk++) {
        float *xd;
        void *xa = make_act(act, x + tk * xs, cols, &xd);
        for (size_t r = 0; r < rows; r++) {
            float want;
            ref(cols, &want, wdata + r * row_bytes, xa);
            const float got = y[tk * ys + r];
            const float *wr = wdeq + r * cols;
            const double tol = 1e-5 * abs_dot(wr, xd, cols) + 1e-6;
            ck_assert_msg(fabs((double)got - (double)want) <= tol,
                          "%s %s %zux%zu n=%zu: y[%zu][%zu] = %.9g, ref %.9g (tol %.3g)",
                          kern_isa_name(isa), dt_name(t), rows, cols, n, tk, r, got, want, tol);
            double exact = 0.0, ax = 0.0;
            for (size_t i = 0; i < cols; i++) {
                exact += (double)wr[i] * (double)x[tk * xs + i];
                ax += fabs((double)wr[i] * (double)x[tk * xs + i]);
            }
            /* activation rounding: 8-bit formats about 1/254 of each |w x| */
            const double qtol = (act == DT_F32 ? 1e-5 : act == DT_BF16 ? 8e-3 : 1e-2) * ax + 1e-5;
            ck_assert_msg(fabs((double)got - exact) <= qtol, "%s %s: y[%zu][%zu] = %.9g, f64 %.9g",
                          kern_isa_name(isa), dt_name(t), tk, r, got, exact);
        }
        for (size_t r = rows; r < ys; r++)
            ck_assert_float_eq(y[tk * ys + r], -12345.0f);
        free(xa);
        free(xd);
    }
    kern_ctx_free(&ctx);
    guarded_free(&gw);
    guarded_free(&gx);
    free(wdeq);
    free(y);
}

START_TEST(test_matmul)
{
    unsigned long long rng = tu_rng_seed() + 41;
    struct tp_pool *pool2 = NULL;
    ck_assert_int_eq(tp_create(2, &pool2), 0);
    const size_t ns[] = { 1, 3, 17 };
    for (int isa = 0; isa < KERN_ISA_COUNT; isa++) {
        if (!kern_isa_supported((enum kern_isa)isa))
            continue;
        for (size_t ti = 0; ti < N_WTYPES; ti++) {
            const enum dt_type t = wtypes[ti];
            const size_t cols = block_of(t) == 256 ? 512 : block_of(t) == 32 ? 160 : 67;
            for (size_t ni = 0; ni < 3; ni++) {
                check_matmul((enum kern_isa)isa, NULL, t, 37, cols, ns[ni], &rng);
                check_matmul((enum kern_isa)isa, pool2, t, 37, cols, ns[ni], &rng);
            }
        }
    }
    tp_free(pool2);
}
END_TEST

/* Shapes that exercise the tile kernels' edges and the thread split. */
START_TEST(test_matmul_shapes)
{
    unsigned long long rng = tu_rng_seed() + 43;
    struct tp_pool *pool2 = NULL;
    ck_assert_int_eq(tp_create(2, &pool2), 0);
    const enum kern_isa isa = kern_isa_best();
    const enum dt_type types[] = { DT_Q4_0, DT_Q8_0, DT_Q6_K, DT_Q4_K, DT_BF16 };
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const enum dt_type t = types[ti];
        const size_t bs = block_of(t) == 1 ? 32 : block_of(t);
        for (size_t nb = 1; nb <= 7; nb++)
            check_matmul(isa, pool2, t, 9, nb * bs, nb % 2 ? 1 : 6, &rng);
        check_matmul(isa, pool2, t, 5, 2 * bs, 9, &rng);    /* fewer rows than threads x grain */
        check_matmul(isa, pool2, t, 9, 2048, 8, &rng);      /* ... with enough work to split tokens */
        check_matmul(isa, pool2, t, 300, 2048, 1, &rng);    /* decode, many rows */
        check_matmul(isa, pool2, t, 70, 1024, 13, &rng);    /* prefill tiles */
    }
    tp_free(pool2);
}
END_TEST

/* Every token count from 1 to 20 (the row-group tile kernels run tokens in
 * passes of up to 16, in parts of 16, 8, 4, 2, 1), a short last group of
 * rows (37 = 2 x 16 + 5) and lengths that end inside a kernel's unit of
 * blocks, on every ISA. */
START_TEST(test_matmul_tokens)
{
    unsigned long long rng = tu_rng_seed() + 47;
    struct tp_pool *pool2 = NULL;
    ck_assert_int_eq(tp_create(2, &pool2), 0);
    const enum dt_type types[] = { DT_Q4_0, DT_Q8_0, DT_Q4_K, DT_Q6_K, DT_BF16, DT_F16, DT_F32 };
    for (int isa = 0; isa < KERN_ISA_COUNT; isa++) {
        if (!kern_isa_supported((enum kern_isa)isa))
            continue;
        for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
            const enum dt_type t = types[ti];
            /* Q4_0 units of 3 blocks, Q8_0 of 8: 224 = 7 blocks, 288 = 9 */
            const size_t cols = block_of(t) == 256 ? 768 : block_of(t) == 32 ? (ti % 2 ? 288 : 224) : 80;
            for (size_t n = 1; n <= 20; n++)
                check_matmul((enum kern_isa)isa, n % 2 ? pool2 : NULL, t, 37, cols, n, &rng);
        }
    }
    tp_free(pool2);
}
END_TEST

/* A window of a batch (any first token, any count) gives the same bits as
 * the whole batch, for 1 and 2 threads and row counts with and without a
 * short last group of 16. */
START_TEST(test_matmul_batch_windows)
{
    unsigned long long rng = tu_rng_seed() + 53;
    const size_t n = 21, cols = 2304;
    const size_t win[][2] = { { 0, 1 },  { 5, 1 },  { 20, 1 }, { 0, 16 }, { 4, 16 },
                              { 16, 5 }, { 3, 7 },  { 1, 20 }, { 2, 18 }, { 0, 21 } };
    const enum dt_type types[] = { DT_Q4_0, DT_Q8_0, DT_Q4_K, DT_Q6_K, DT_BF16, DT_F16, DT_F32 };
    float *x = xmalloc(n * cols * sizeof(float));
    fill_normal(x, n * cols, &rng, 1.0);
    for (unsigned threads = 1; threads <= 2; threads++) {
        struct tp_pool *pool;
        ck_assert_int_eq(tp_create(threads, &pool), 0);
        for (int isa = 0; isa < KERN_ISA_COUNT; isa++) {
            if (!kern_isa_supported((enum kern_isa)isa))
                continue;
            struct kern_ctx ctx;
            ck_assert_int_eq(kern_ctx_init(&ctx, (enum kern_isa)isa, pool), 0);
            for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
                const enum dt_type t = types[ti];
                const size_t rows = ti % 2 ? 48 : 53;
                const size_t rb = dt_row_size(t, cols);
                uint8_t *w = xmalloc(rb * rows);
                for (size_t r = 0; r < rows; r++) {
                    void *row = make_row(t, cols, &rng, NULL);
                    memcpy(w + r * rb, row, rb);
                    free(row);
                }
                const struct kern_mat m = { t, rows, cols, rb, w };
                float *y = xmalloc(n * rows * sizeof(float)), *yw = xmalloc(n * rows * sizeof(float));
                ck_assert_int_eq(kern_matmul(&ctx, &m, n, x, cols, y, rows), 0);
                for (size_t k = 0; k < sizeof win / sizeof win[0]; k++) {
                    const size_t t0 = win[k][0], nt = win[k][1];
                    ck_assert_int_eq(kern_matmul(&ctx, &m, nt, x + t0 * cols, cols, yw, rows), 0);
                    ck_assert_msg(memcmp(yw, y + t0 * rows, nt * rows * sizeof(float)) == 0,
                                  "%s on %s, %u threads: tokens %zu..%zu alone differ from the batch",
                                  dt_name(t), kern_isa_name((enum kern_isa)isa), threads, t0,
                                  t0 + nt - 1);
                }
                free(y);
                free(yw);
                free(w);
            }
            kern_ctx_free(&ctx);
        }
        tp_free(pool);
    }
    free(x);
}
END_TEST

/* Batch invariance: a token's outputs are bit-identical whether it is
 * multiplied alone (decode) or with other tokens (prefill tiles), on every
 * ISA and type, with 1 and 2 threads. Continuous batching relies on it: a
 * request's tokens must not depend on what else shares its step. */
START_TEST(test_matmul_batch_invariant)
{
    unsigned long long rng = tu_rng_seed();
    const size_t rows = 83, cols = 512, n = 19;
    float *x = xmalloc(n * cols * sizeof(float));
    float *y1 = xmalloc(n * rows * sizeof(float)), *y2 = xmalloc(n * rows * sizeof(float));
    fill_normal(x, n * cols, &rng, 1.0);
    for (unsigned threads = 1; threads <= 2; threads++) {
        struct tp_pool *pool;
        ck_assert_int_eq(tp_create(threads, &pool), 0);
        for (int isa = 0; isa < KERN_ISA_COUNT; isa++) {
            if (!kern_isa_supported((enum kern_isa)isa))
                continue;
            struct kern_ctx ctx;
            ck_assert_int_eq(kern_ctx_init(&ctx, (enum kern_isa)isa, pool), 0);
            for (size_t ti = 0; ti < N_WTYPES; ti++) {
                enum dt_type t = wtypes[ti];
                size_t rb = dt_row_size(t, cols);
                uint8_t *w = xmalloc(rb * rows);
                for (size_t r = 0; r < rows; r++) {
                    void *row = make_row(t, cols, &rng, NULL);
                    memcpy(w + r * rb, row, rb);
                    free(row);
                }
                struct kern_mat m = {t, rows, cols, rb, w};
                ck_assert_int_eq(kern_matmul(&ctx, &m, n, x, cols, y1, rows), 0);
                for (size_t k = 0; k < n; k++)
                    ck_assert_int_eq(kern_matmul(&ctx, &m, 1, x + k * cols, cols, y2 + k * rows, rows), 0);
                ck_assert_msg(memcmp(y1, y2, n * rows * sizeof(float)) == 0,
                              "%s on %s, %u threads: batched outputs differ from single-token ones",
                              dt_name(t), kern_isa_name((enum kern_isa)isa), threads);
                free(w);
            }
            kern_ctx_free(&ctx);
        }
        tp_free(pool);
    }
    free(x);
    free(y1);
    free(y2);
}
END_TEST

/* Attention of one head: every ISA against the scalar reference on fresh
 * random data, |simd - ref| <= 1e-5 * max|v| + 1e-6 per output (softmax
 * weights sum to 1, so outputs are bounded by max|v|); KV row conversion
 * exact. */
START_TEST(test_attention)
{
    unsigned long long rng = tu_rng_seed();
    const size_t hds[] = {8, 32, 64, 80, 128};
    const size_t ns[] = {1, 2, 17, 300};
    for (size_t a = 0; a < sizeof hds / sizeof hds[0]; a++)
        for (size_t b = 0; b < sizeof ns / sizeof ns[0]; b++) {
            size_t hd = hds[a], n = ns[b], ld = hd + 3;
            float *q = xmalloc(hd * sizeof(float)), *k = xmalloc(n * ld * sizeof(float));
            float *v = xmalloc(n * ld * sizeof(float)), *sc = xmalloc(n * sizeof(float));
            float *ref = xmalloc(hd * sizeof(float)), *got = xmalloc(hd * sizeof(float));
            fill_normal(q, hd, &rng, 1.0);
            fill_normal(k, n * ld, &rng, 1.0);
            fill_normal(v, n * ld, &rng, 1.0);
            float vmax = 0;
            for (size_t i = 0; i < n * ld; i++)
                vmax = fabsf(v[i]) > vmax ? fabsf(v[i]) : vmax;
            kern_attn_head(KERN_ISA_SCALAR, hd, n, q, k, v, ld, 0.125f, sc, ref);
            for (int isa = 1; isa < KERN_ISA_COUNT; isa++) {
                if (!kern_isa_supported((enum kern_isa)isa))
                    continue;
                kern_attn_head((enum kern_isa)isa, hd, n, q, k, v, ld, 0.125f, sc, got);
                for (size_t i = 0; i < hd; i++)
                    ck_assert_msg(fabsf(got[i] - ref[i]) <= 1e-5f * vmax + 1e-6f,
                                  "%s hd %zu n %zu: out[%zu] %g vs %g",
                                  kern_isa_name((enum kern_isa)isa), hd, n, i, got[i], ref[i]);
            }
            free(q), free(k), free(v), free(sc), free(ref), free(got);
        }
    /* KV rows: every bit pattern of F16 and BF16 converts exactly. */
    uint16_t *h = xmalloc(65536 * sizeof(uint16_t));
    float *r1 = xmalloc(65536 * sizeof(float)), *r2 = xmalloc(65536 * sizeof(float));
    for (uint32_t i = 0; i < 65536; i++)
        h[i] = (uint16_t)i;
    for (int t = 0; t < 2; t++) {
        enum dt_type dt = t ? DT_BF16 : DT_F16;
        kern_kv_to_f32(KERN_ISA_SCALAR, dt, h, r1, 65536);
        for (int isa = 1; isa < KERN_ISA_COUNT; isa++) {
            if (!kern_isa_supported((enum kern_isa)isa))
                continue;
            kern_kv_to_f32((enum kern_isa)isa, dt, h + 1, r2, 65535); /* odd length and offset */
            for (uint32_t i = 0; i < 65535; i++) /* bit-exact; a NaN only needs to stay NaN */
                ck_assert_msg(isnan(r1[i + 1]) ? isnan(r2[i]) : memcmp(&r1[i + 1], &r2[i], 4) == 0,
                              "%s %s conversion of 0x%04x: %g vs %g",
                              kern_isa_name((enum kern_isa)isa), dt_name(dt), i + 1, r2[i], r1[i + 1]);
        }
    }
    free(h), free(r1), free(r2);
}
END_TEST

START_TEST(test_matmul_errors)
{
    struct kern_ctx ctx;
    ck_assert_int_eq(kern_ctx_init(&ctx, KERN_ISA_SCALAR, NULL), 0);
    float x[64] = { 0 }, y[4] = { 0 };
    uint8_t data[4 * 36] = { 0 };
    struct kern_mat w = { .type = DT_Q4_0, .rows = 2, .cols = 33, .row_bytes = 18, .data = data };
    ck_assert_int_eq(kern_matmul(&ctx, &w, 1, x, 64, y, 2), -EINVAL); /* cols not whole blocks */
    w.cols = 32;
    w.row_bytes = 17;
    ck_assert_int_eq(kern_matmul(&ctx, &w, 1, x, 64, y, 2), -EINVAL); /* row too short */
    w.row_bytes = 18;
    w.type = (enum dt_type)20; /* known id, unsupported */
    ck_assert_int_eq(kern_matmul(&ctx, &w, 1, x, 64, y, 2), -EINVAL);
    w.type = DT_Q4_0;
    ck_assert_int_eq(kern_matmul(&ctx, &w, 2, x, 16, y, 2), -EINVAL); /* x stride < cols */
    ck_assert_int_eq(kern_matmul(&ctx, &w, 0, x, 32, y, 2), 0);
    ck_assert_int_eq(kern_matmul(&ctx, &w, 1, x, 32, y, 2), 0);
    ck_assert_float_eq(y[0], 0.0f);
    kern_ctx_free(&ctx);
    kern_ctx_free(&ctx); /* idempotent */
    kern_ctx_free(NULL);
    ck_assert_int_eq(kern_ctx_init(&ctx, KERN_ISA_COUNT, NULL), -EINVAL);
}
END_TEST

START_TEST(test_ops)
{
    unsigned long long rng = tu_rng_seed() + 53;
    const size_t lens[] = { 1, 7, 64, 2048, 5633 };
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        const size_t n = lens[li];
        float *x = xmalloc(n * sizeof(float)), *w = xmalloc(n * sizeof(float));
        float *o = xmalloc(n * sizeof(float)), *u = xmalloc(n * sizeof(float));
        fill_normal(x, n, &rng, 3.0);
        fill_normal(w, n, &rng, 1.0);
        fill_normal(u, n, &rng, 1.0);

        kern_rmsnorm(o, x, w, n, 1e-5f);
        double ss = 0.0;
        for (size_t i = 0; i < n; i++)
            ss += (double)x[i] * x[i];
        const double sc = 1.0 / sqrt(ss / (double)n + 1e-5);
        for (size_t i = 0; i < n; i++)
            ck_assert_double_eq_tol(o[i], x[i] * sc * w[i], 1e-5 * fabs(x[i] * sc * w[i]) + 1e-7);
        memcpy(o, x, n * sizeof(float)); /* in place */
        kern_rmsnorm(o, o, w, n, 1e-5f);
        ck_assert_double_eq_tol(o[0], x[0] * sc * w[0], 1e-5 * fabs(x[0] * sc * w[0]) + 1e-7);

        memcpy(o, x, n * sizeof(float));
        kern_softmax(o, n);
        double mx = x[0], sum = 0.0, tot = 0.0;
        for (size_t i = 1; i < n; i++)
            mx = x[i] > mx ? x[i] : mx;
        for (size_t i = 0; i < n; i++)
            sum += exp((double)x[i] - mx);
        for (size_t i = 0; i < n; i++) {
            const double want = exp((double)x[i] - mx) / sum;
            ck_assert_double_eq_tol(o[i], want, 1e-5 * want + 1e-12);
            tot += o[i];
        }
        ck_assert_double_eq_tol(tot, 1.0, 1e-5);

        memcpy(o, x, n * sizeof(float));
        kern_swiglu(o, u, n);
        for (size_t i = 0; i < n; i++) {
            const double g = x[i], want = g / (1.0 + exp(-g)) * u[i];
            ck_assert_double_eq_tol(o[i], want, 1e-5 * fabs(want) + 1e-7);
        }
        free(x);
        free(w);
        free(o);
        free(u);
    }
    /* softmax of large logits does not overflow */
    float big[3] = { 1000.0f, 1000.0f, -1000.0f };
    kern_softmax(big, 3);
    ck_assert_double_eq_tol(big[0], 0.5, 1e-6);
    ck_assert_double_eq_tol(big[2], 0.0, 1e-6);
}
END_TEST

static Suite *kern_suite(void)
{
    Suite *s = suite_create("kern");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_isa_detect);
    tcase_add_test(tc, test_isa_override);
    tcase_add_test(tc, test_act_types);
    tcase_add_test(tc, test_ref_vs_double);
    tcase_add_test(tc, test_simd_vs_ref);
    tcase_add_test(tc, test_random_bits);
    tcase_add_test(tc, test_quant_act_exact);
    tcase_add_test(tc, test_matmul);
    tcase_add_test(tc, test_matmul_shapes);
    tcase_add_test(tc, test_matmul_tokens);
    tcase_add_test(tc, test_matmul_batch_windows);
    tcase_add_test(tc, test_matmul_batch_invariant);
    tcase_add_test(tc, test_attention);
    tcase_add_test(tc, test_matmul_errors);
    tcase_add_test(tc, test_ops);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(kern_suite());
}
