/* vecdot.c - scalar reference dot products, one per weight type against its
 * activation format (dt_get(type)->vec_dot_type), the scalar activation
 * conversion, and the run-time dispatch tables over all ISAs.
 *
 * The references follow ggml's: quantized types form an exact integer dot
 * product per block and scale it in float (sum += isum * dw * dx); float
 * types accumulate in double. The SIMD kernels in vecdot_*.c are tested
 * against these.
 */
#include "kern_impl.h"

#include <string.h>

/* ---- float formats: w (n,) . x (n,) ------------------------------------ */

static void vd_f32_ref(size_t n, float *s, const void *w, const void *x)
{
    const float *a = w, *b = x;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += (double)(a[i] * b[i]);
    *s = (float)sum;
}

/* F16 weights . F32 activations */
static void vd_f16_ref(size_t n, float *s, const void *w, const void *x)
{
    const dt_fp16 *a = w;
    const float *b = x;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += (double)(dt_fp16_to_f32(a[i]) * b[i]);
    *s = (float)sum;
}

/* BF16 weights . BF16 activations */
static void vd_bf16_ref(size_t n, float *s, const void *w, const void *x)
{
    const dt_bf16 *a = w, *b = x;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += (double)(dt_bf16_to_f32(a[i]) * dt_bf16_to_f32(b[i]));
    *s = (float)sum;
}

/* ---- legacy 32-value blocks --------------------------------------------- */

static inline uint32_t vd_load_u32le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Q4_0 (q - 8) * d  .  Q8_0 */
static void vd_q4_0_ref(size_t n, float *s, const void *w, const void *x)
{
    const struct blk_q4_0 *a = w;
    const struct blk_q8_0 *b = x;
    float sum = 0.0f;
    for (size_t i = 0; i < n / QK4_0; i++) {
        int isum = 0;
        for (int j = 0; j < QK4_0 / 2; j++) {
            const int v0 = (a[i].qs[j] & 0x0f) - 8;
            const int v1 = (a[i].qs[j] >> 4) - 8;
            isum += v0 * b[i].qs[j] + v1 * b[i].qs[j + QK4_0 / 2];
        }
        sum += (float)isum * dt_fp16_to_f32(a[i].d) * dt_fp16_to_f32(b[i].d);
    }
    *s = sum;
}

/* Q4_1 q * d + m  .  Q8_1 (the m term uses the activation's s = d * sum q) */
static void vd_q4_1_ref(size_t n, float *s, const void *w, const void *x)
{
    const struct blk_q4_1 *a = w;
    const struct blk_q8_1 *b = x;
    float sum = 0.0f;
    for (size_t i = 0; i < n / QK4_1; i++) {
        int isum = 0;
        for (int j = 0; j < QK4_1 / 2; j++) {
            isum += (a[i].qs[j] & 0x0f) * b[i].qs[j] + (a[i].qs[j] >> 4) * b[i].qs[j + QK4_1 / 2];
        }
        sum += (float)isum * dt_fp16_to_f32(a[i].d) * dt_fp16_to_f32(b[i].d) +
               dt_fp16_to_f32(a[i].m) * dt_fp16_to_f32(b[i].s);
    }
    *s = sum;
}

/* Q5_0 (q - 16) * d  .  Q8_0 */
static void vd_q5_0_ref(size_t n, float *s, const void *w, const void *x)
{
    const struct blk_q5_0 *a = w;
    const struct blk_q8_0 *b = x;
    float sum = 0.0f;
    for (size_t i = 0; i < n / QK5_0; i++) {
        const uint32_t qh = vd_load_u32le(a[i].qh);
        int isum = 0;
        for (int j = 0; j < QK5_0 / 2; j++) {
            const int v0 = ((a[i].qs[j] & 0x0f) | (int)(((qh >> j) & 1u) << 4)) - 16;
            const int v1 = ((a[i].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1u) << 4)) - 16;
            isum += v0 * b[i].qs[j] + v1 * b[i].qs[j + QK5_0 / 2];
        }
        sum += (float)isum * dt_fp16_to_f32(a[i].d) * dt_fp16_to_f32(b[i].d);
    }
    *s = sum;
}

/* Q5_1 q * d + m  .  Q8_1 */
static void vd_q5_1_ref(size_t n, float *s, const void *w, const void *x)
{
    const struct blk_q5_1 *a = w;
    const struct blk_q8_1 *b = x;
    float sum = 0.0f;
    for (size_t i = 0; i < n / QK5_1; i++) {
        const uint32_t qh = vd_load_u32le(a[i].qh);
        int isum = 0;
        for (int j = 0; j < QK5_1 / 2; j++) {
            const int v0 = (a[i].qs[j] & 0x0f) | (int)(((qh >> j) & 1u) << 4);
            const int v1 = (a[i].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1u) << 4);
            isum += v0 * b[i].qs[j] + v1 * b[i].qs[j + QK5_1 / 2];
        }
        sum += (float)isum * dt_fp16_to_f32(a[i].d) * dt_fp16_to_f32(b[i].d) +
               dt_fp16_to_f32(a[i].m) * dt_fp16_to_f32(b[i].s);
    }
    *s = sum;
}

/* Q8_0 q * d  .  Q8_0 */
static void vd_q8_0_ref(size_t n, float *s, const void *w, const void *x)
{
    const struct blk_q8_0 *a = w;
    const struct blk_q8_0 *b = x;
    float sum = 0.0f;
    for (size_t i = 0; i < n / QK8_0; i++) {
        int isum = 0;
        for (int j = 0; j < QK8_0; j++)
            isum += a[i].qs[j] * b[i].qs[j];
        sum += (float)isum * dt_fp16_to_f32(a[i].d) * dt_fp16_to_f32(b[i].d);
    }
    *s = sum;
}

/* ---- k-quants (256-value super-blocks) . Q8_K ---------------------------- */

/* Q2_K: 16 groups of 16, x = d * (sc & 15) * q - dmin * (sc >> 4), q in 0..3;
 * each 32 bytes of qs hold 128 values, 2 bits per value, shift 0,2,4,6. */
static void vd_q2_k_ref(size_t n, float *s, const void *w, const void *x)
{
    const struct blk_q2_k *a = w;
    const struct blk_q8_k *b = x;
    float sum = 0.0f;
    for (size_t i = 0; i < n / QK_K; i++) {
        const int8_t *q8 = b[i].qs;
        int isum = 0, msum = 0;
        for (int g = 0; g < 16; g++)
            msum += b[i].bsums[g] * (a[i].scales[g] >> 4);
        for (int v = 0; v < QK_K; v += 16) {
            const uint8_t *q2 = a[i].qs + 32 * (v / 128) + (v % 32);
            const int shift = 2 * ((v % 128) / 32);
            int gsum = 0;
            for (int l = 0; l < 16; l++)
                gsum += q8[v + l] * ((q2[l] >> shift) & 3);
            isum += (a[i].scales[v / 16] & 0x0f) * gsum;
        }
        sum += b[i].d * dt_fp16_to_f32(a[i].d) * (float)isum -
               b[i].d * dt_fp16_to_f32(a[i].dmin) * (float)msum;
    }
    *s = sum;
}

/* Q3_K 6-bit scale of group g (0..15), unbiased (-32..31). */
static inline int vd_q3k_scale(const uint8_t *sc, int g)
{
    const int lo = g < 8 ? sc[g] & 0x0f : sc[g - 8] >> 4;
    const int hi = (sc[8 + (g & 3)] >> (2 * (g >> 2))) & 3;
    return (lo | hi << 4) - 32;
}

/* Q3_K: x = d * scale * (q - 4 * !hbit), q in 0..3 laid out like Q2_K, the
 * high bit of value v in hmask[v % 32] bit v / 32. */
static void vd_q3_k_ref(size_t n, float *s, const void *w, const void *x)
{
    const struct blk_q3_k *a = w;
    const struct blk_q8_k *b = x;
    float sum = 0.0f;
    for (size_t i = 0; i < n / QK_K; i++) {
        const int8_t *q8 = b[i].qs;
        int isum = 0;
        for (int v = 0; v < QK_K; v += 16) {
            const uint8_t *q3 = a[i].qs + 32 * (v / 128) + (v % 32);
            const uint8_t *hm = a[i].hmask + (v % 32);
            const int shift = 2 * ((v % 128) / 32);
            const unsigned m = 1u << (v / 32);
            int gsum = 0;
            for (int l = 0; l < 16; l++) {
                const int q = ((q3[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4);
                gsum += q8[v + l] * q;
            }
            isum += vd_q3k_scale(a[i].scales, v / 16) * gsum;
        }
        sum += dt_fp16_to_f32(a[i].d) * b[i].d * (float)isum;
    }
    *s = sum;
}

/* Q4_K/Q5_K 6-bit scale and min of sub-block j (0..7). */
static inline void vd_k4_scale_min(int j, const uint8_t *q, int *sc, int *m)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* Q4_K: 8 sub-blocks of 32, x = d * sc * q - dmin * m, q in 0..15; each 32
 * bytes of qs hold 64 values, low nibbles first. */
static void vd_q4_k_ref(size_t n, float *s, const void *w, const void *x)
{
    const struct blk_q4_k *a = w;
    const struct blk_q8_k *b = x;
    float sum = 0.0f;
    for (size_t i = 0; i < n / QK_K; i++) {
        const int8_t *q8 = b[i].qs;
        int isum = 0, msum = 0;
        for (int j = 0; j < 8; j++) {
            int sc, m;
            vd_k4_scale_min(j, a[i].scales, &sc, &m);
            const uint8_t *q4 = a[i].qs + 32 * (j / 2);
            const int shift = 4 * (j & 1);
            int gsum = 0;
            for (int l = 0; l < 32; l++)
                gsum += q8[32 * j + l] * ((q4[l] >> shift) & 0x0f);
            isum += sc * gsum;
            msum += m * (b[i].bsums[2 * j] + b[i].bsums[2 * j + 1]);
        }
        sum += dt_fp16_to_f32(a[i].d) * b[i].d * (float)isum -
               dt_fp16_to_f32(a[i].dmin) * b[i].d * (float)msum;
    }
    *s = sum;
}

/* Q5_K: Q4_K plus a fifth bit: value 32 * j + l has it in qh[l] bit j. */
static void vd_q5_k_ref(size_t n, float *s, const void *w, const void *x)
{
    const struct blk_q5_k *a = w;
    const struct blk_q8_k *b = x;
    float sum = 0.0f;
    for (size_t i = 0; i < n / QK_K; i++) {
        const int8_t *q8 = b[i].qs;
        int isum = 0, msum = 0;
        for (int j = 0; j < 8; j++) {
            int sc, m;
            vd_k4_scale_min(j, a[i].scales, &sc, &m);
            const uint8_t *q4 = a[i].qs + 32 * (j / 2);
            const int shift = 4 * (j & 1);
            int gsum = 0;
            for (int l = 0; l < 32; l++) {
                const int q = ((q4[l] >> shift) & 0x0f) | (((a[i].qh[l] >> j) & 1) << 4);
                gsum += q8[32 * j + l] * q;
            }
            isum += sc * gsum;
            msum += m * (b[i].bsums[2 * j] + b[i].bsums[2 * j + 1]);
        }
        sum += dt_fp16_to_f32(a[i].d) * b[i].d * (float)isum -
               dt_fp16_to_f32(a[i].dmin) * b[i].d * (float)msum;
    }
    *s = sum;
}

/* Q6_K: 16 groups of 16, x = d * sc * (q - 32), q in 0..63: per 128 values
 * (half h), value 32 * p + l has its low 4 bits in ql[64h + l + 32 (p & 1)]
 * (nibble p >> 1) and its top 2 bits in qh[32h + l] bits 2p..2p+1. */
static void vd_q6_k_ref(size_t n, float *s, const void *w, const void *x)
{
    const struct blk_q6_k *a = w;
    const struct blk_q8_k *b = x;
    float sum = 0.0f;
    for (size_t i = 0; i < n / QK_K; i++) {
        const int8_t *q8 = b[i].qs;
        int isum = 0;
        for (int v = 0; v < QK_K; v += 16) {
            const int h = v / 128, p = (v % 128) / 32, l0 = v % 32;
            const uint8_t *ql = a[i].ql + 64 * h + 32 * (p & 1) + l0;
            const uint8_t *qh = a[i].qh + 32 * h + l0;
            int gsum = 0;
            for (int l = 0; l < 16; l++) {
                const int q = (((ql[l] >> (4 * (p >> 1))) & 0x0f) | (((qh[l] >> (2 * p)) & 3) << 4)) - 32;
                gsum += q8[v + l] * q;
            }
            isum += a[i].scales[v / 16] * gsum;
        }
        sum += dt_fp16_to_f32(a[i].d) * b[i].d * (float)isum;
    }
    *s = sum;
}

const struct kern_isa_ops kern_ops_scalar = {
    .vec_dot = {
        [DT_F32] = vd_f32_ref,
        [DT_F16] = vd_f16_ref,
        [DT_BF16] = vd_bf16_ref,
        [DT_Q4_0] = vd_q4_0_ref,
        [DT_Q4_1] = vd_q4_1_ref,
        [DT_Q5_0] = vd_q5_0_ref,
        [DT_Q5_1] = vd_q5_1_ref,
        [DT_Q8_0] = vd_q8_0_ref,
        [DT_Q2_K] = vd_q2_k_ref,
        [DT_Q3_K] = vd_q3_k_ref,
        [DT_Q4_K] = vd_q4_k_ref,
        [DT_Q5_K] = vd_q5_k_ref,
        [DT_Q6_K] = vd_q6_k_ref,
    },
};

/* ---- dispatch ------------------------------------------------------------ */

static const struct kern_isa_ops *const vd_isa_ops[KERN_ISA_COUNT] = {
    [KERN_ISA_SCALAR] = &kern_ops_scalar,
    [KERN_ISA_AVX2] = &kern_ops_avx2,
    [KERN_ISA_AVX512] = &kern_ops_avx512,
    [KERN_ISA_AVX512VNNI] = &kern_ops_avx512vnni,
};

static inline bool vd_type_ok(enum dt_type t)
{
    return (unsigned)t < DT_COUNT;
}

kern_vec_dot_fn kern_vec_dot(enum kern_isa isa, enum dt_type wtype, enum kern_isa *got)
{
    if (!vd_type_ok(wtype) || (unsigned)isa >= KERN_ISA_COUNT)
        return NULL;
    for (int i = (int)isa; i >= 0; i--) {
        if (i != KERN_ISA_SCALAR && !kern_isa_supported((enum kern_isa)i))
            continue;
        kern_vec_dot_fn fn = vd_isa_ops[i]->vec_dot[wtype];
        if (fn) {
            if (got)
                *got = (enum kern_isa)i;
            return fn;
        }
    }
    return NULL;
}

const struct kern_tile_ops *kern_tile(enum kern_isa isa, enum dt_type wtype)
{
    if (!vd_type_ok(wtype) || (unsigned)isa >= KERN_ISA_COUNT)
        return NULL;
    /* The tiles are the fast matmul path: a lower ISA's tile beats a loop over
     * a higher ISA's vec_dot (e.g. AVX2 Q4_0 tiles on AVX-512 without VNNI). */
    for (int i = (int)isa; i > KERN_ISA_SCALAR; i--) {
        if (!kern_isa_supported((enum kern_isa)i))
            continue;
        const struct kern_tile_ops *t = &vd_isa_ops[i]->tile[wtype];
        if (t->fn)
            return t;
    }
    return NULL;
}

void kern_quantize_act(enum kern_isa isa, enum dt_type act, const float *x, void *dst, size_t n)
{
    if (!vd_type_ok(act))
        return;
    if ((unsigned)isa >= KERN_ISA_COUNT)
        isa = KERN_ISA_SCALAR;
    for (int i = (int)isa; i > KERN_ISA_SCALAR; i--) {
        if (!kern_isa_supported((enum kern_isa)i))
            continue;
        kern_quant_fn fn = vd_isa_ops[i]->quant[act];
        if (fn) {
            fn(x, dst, n);
            return;
        }
    }
    if (act == DT_F32) {
        memcpy(dst, x, n * sizeof(float));
        return;
    }
    const struct dt_traits *tr = dt_get((uint32_t)act);
    if (tr && tr->from_float)
        tr->from_float(x, dst, n);
}
