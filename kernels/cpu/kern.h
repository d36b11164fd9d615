/* kern.h - CPU compute kernels: dot products per weight type, matrix
 * products over a batch of activation rows, and run-time ISA dispatch.
 *
 * Every kernel has a scalar reference (KERN_ISA_SCALAR). SIMD versions for
 * AVX2, AVX-512 and AVX-512 VNNI/BF16 are compiled in their own translation
 * units with their own -m flags and chosen at run time from CPUID; a path that
 * has no kernel for a type falls back to the next lower one, down to scalar.
 *
 * Shapes follow ggml: a weight matrix W has `rows` rows of `cols` values
 * (ne = [cols, rows]); x has n rows of `cols` floats; y = x W^T has n rows of
 * `rows` floats.
 */
#ifndef INFERD_KERN_H
#define INFERD_KERN_H

#include "dtype.h"
#include "threadpool.h"

enum kern_isa {
    KERN_ISA_SCALAR = 0,
    KERN_ISA_AVX2 = 1,       /* AVX2 + FMA + F16C */
    KERN_ISA_AVX512 = 2,     /* F, BW, VL, DQ */
    KERN_ISA_AVX512VNNI = 3, /* AVX512 + VNNI + BF16 */
    KERN_ISA_COUNT,
};

const char *kern_isa_name(enum kern_isa isa);
/* Whether this CPU (and OS, for AVX-512 state) can run isa. */
bool kern_isa_supported(enum kern_isa isa);
/* Best supported ISA, or the one named by INFERD_ISA (scalar, avx2, avx512,
 * avx512vnni) if set and supported. */
enum kern_isa kern_isa_best(void);

/* s = sum_i w[i] * x[i] over n values (n a multiple of the block size of
 * wtype): w is a row of weights of wtype, x the activations already
 * converted to dt_get(wtype)->vec_dot_type. */
typedef void (*kern_vec_dot_fn)(size_t n, float *s, const void *w, const void *x);

/* The dot kernel for wtype on isa, falling back to lower ISAs; NULL if wtype
 * is not supported at all. `got` (may be NULL) receives the ISA actually
 * used. */
kern_vec_dot_fn kern_vec_dot(enum kern_isa isa, enum dt_type wtype, enum kern_isa *got);

/* Convert n floats to the activation format `act` (a vec_dot_type: F32,
 * BF16, Q8_0, Q8_1, Q8_K). n must be a multiple of its block size. */
void kern_quantize_act(enum kern_isa isa, enum dt_type act, const float *x, void *dst, size_t n);

/* A weight matrix viewed in place (usually inside the mmapped model). */
struct kern_mat {
    enum dt_type type;
    size_t rows, cols;
    size_t row_bytes; /* dt_row_size(type, cols) */
    const void *data;
};

/* Context for matrix products: ISA, pool and a growable work buffer for the
 * converted activations. */
struct kern_ctx {
    enum kern_isa isa;
    struct tp_pool *pool;
    void *work;
    size_t work_size;
};

int kern_ctx_init(struct kern_ctx *ctx, enum kern_isa isa, struct tp_pool *pool);
void kern_ctx_free(struct kern_ctx *ctx);

/* y[t][r] = dot(W row r, x[t]) for t < n, r < w->rows.
 * x: n rows with stride x_stride floats; y: n rows with stride y_stride.
 * Parallel over the pool. Returns 0 or -ENOMEM / -EINVAL. */
int kern_matmul(struct kern_ctx *ctx, const struct kern_mat *w, size_t n, const float *x,
                size_t x_stride, float *y, size_t y_stride);

/* Read-bandwidth probe: streams `bytes` of memory on all pool threads `reps`
 * times and returns the best GB/s (1e9 bytes per second). */
double kern_membw_read(struct tp_pool *pool, size_t bytes, int reps);

/* Attention of one query head over n cached positions:
 *   out (hd,) = sum_p softmax_p(scale * dot(q, k_p)) * v_p
 * q (hd,); k, v: n rows of hd floats, ld floats apart; scores: scratch of n
 * floats. The result for a given (q, k, v) depends only on isa, never on
 * what else is computed around it. */
void kern_attn_head(enum kern_isa isa, size_t hd, size_t n, const float *q, const float *k,
                    const float *v, size_t ld, float scale, float *scores, float *out);
/* n values of a KV cache row (DT_F32, DT_F16 or DT_BF16) to floats
 * (exact). */
void kern_kv_to_f32(enum kern_isa isa, enum dt_type t, const void *src, float *dst, size_t n);

/* Element-wise helpers (scalar, auto-vectorizable). */
/* out[i] = x[i] / sqrt(mean(x^2) + eps) * w[i], i < n */
void kern_rmsnorm(float *out, const float *x, const float *w, size_t n, float eps);
/* In-place softmax over n values. */
void kern_softmax(float *x, size_t n);
/* gate[i] = silu(gate[i]) * up[i] */
void kern_swiglu(float *gate, const float *up, size_t n);

#endif
