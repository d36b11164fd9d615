/* quant.c - row converters for the float formats (F32, F16, BF16) and the
 * legacy 32-value block quantizations (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1).
 *
 * Decoders reproduce the public ggml reference decoders bit for bit: every
 * value is a single float expression evaluated in the same order ((q - z) * d,
 * or q * d + m). The encoders are the deterministic scalar reference
 * quantizers; the Q8_0/Q8_1 activation rounding (d = amax/127, q = roundf(x/d))
 * is the one the dot-product kernels are validated against.
 * K-quant super-blocks live in quant_k.c.
 */
#include "quant.h"

#include <float.h>
#include <math.h>
#include <string.h>

int dt_nearest_int(float x)
{
    /* Adding 1.5 * 2^23 puts the integer part in the low mantissa bits,
     * rounded by the FPU (ties to even). */
    float v = x + 12582912.0f;
    int32_t i;
    memcpy(&i, &v, sizeof i);
    return (int)((i & 0x007fffff) - 0x00400000);
}

/* ---- float formats ---------------------------------------------------- */

void dt_to_float_f32(const void *src, float *dst, size_t n)
{
    memcpy(dst, src, n * sizeof(float));
}

void dt_from_float_f32(const float *src, void *dst, size_t n)
{
    memcpy(dst, src, n * sizeof(float));
}

void dt_to_float_f16(const void *src, float *dst, size_t n)
{
    const dt_fp16 *h = src;
    for (size_t i = 0; i < n; i++)
        dst[i] = dt_fp16_to_f32(h[i]);
}

void dt_from_float_f16(const float *src, void *dst, size_t n)
{
    dt_fp16 *h = dst;
    for (size_t i = 0; i < n; i++)
        h[i] = dt_f32_to_fp16(src[i]);
}

void dt_to_float_bf16(const void *src, float *dst, size_t n)
{
    const dt_bf16 *h = src;
    for (size_t i = 0; i < n; i++)
        dst[i] = dt_bf16_to_f32(h[i]);
}

void dt_from_float_bf16(const float *src, void *dst, size_t n)
{
    dt_bf16 *h = dst;
    for (size_t i = 0; i < n; i++)
        h[i] = dt_f32_to_bf16(src[i]);
}

/* ---- decoders ----------------------------------------------------------- */

/* Q4_0: x = (q - 8) * d; low nibbles hold values 0..15, high 16..31. */
void dt_to_float_q4_0(const void *src, float *dst, size_t n)
{
    const struct blk_q4_0 *b = src;
    for (size_t i = 0; i < n / QK4_0; i++, dst += QK4_0) {
        const float d = dt_fp16_to_f32(b[i].d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            const int lo = (b[i].qs[j] & 0x0f) - 8;
            const int hi = (b[i].qs[j] >> 4) - 8;
            dst[j] = (float)lo * d;
            dst[j + QK4_0 / 2] = (float)hi * d;
        }
    }
}

/* Q4_1: x = q * d + m. */
void dt_to_float_q4_1(const void *src, float *dst, size_t n)
{
    const struct blk_q4_1 *b = src;
    for (size_t i = 0; i < n / QK4_1; i++, dst += QK4_1) {
        const float d = dt_fp16_to_f32(b[i].d);
        const float m = dt_fp16_to_f32(b[i].m);
        for (int j = 0; j < QK4_1 / 2; j++) {
            const int lo = b[i].qs[j] & 0x0f;
            const int hi = b[i].qs[j] >> 4;
            dst[j] = (float)lo * d + m;
            dst[j + QK4_1 / 2] = (float)hi * d + m;
        }
    }
}

static inline uint32_t dt_load_u32le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void dt_store_u32le(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* Q5_0: x = (q - 16) * d; bit j of qh is the fifth bit of value j. */
void dt_to_float_q5_0(const void *src, float *dst, size_t n)
{
    const struct blk_q5_0 *b = src;
    for (size_t i = 0; i < n / QK5_0; i++, dst += QK5_0) {
        const float d = dt_fp16_to_f32(b[i].d);
        const uint32_t qh = dt_load_u32le(b[i].qh);
        for (int j = 0; j < QK5_0 / 2; j++) {
            const int h0 = (int)((qh >> j) & 1u) << 4;
            const int h1 = (int)((qh >> (j + QK5_0 / 2)) & 1u) << 4;
            const int lo = ((b[i].qs[j] & 0x0f) | h0) - 16;
            const int hi = ((b[i].qs[j] >> 4) | h1) - 16;
            dst[j] = (float)lo * d;
            dst[j + QK5_0 / 2] = (float)hi * d;
        }
    }
}

/* Q5_1: x = q * d + m. */
void dt_to_float_q5_1(const void *src, float *dst, size_t n)
{
    const struct blk_q5_1 *b = src;
    for (size_t i = 0; i < n / QK5_1; i++, dst += QK5_1) {
        const float d = dt_fp16_to_f32(b[i].d);
        const float m = dt_fp16_to_f32(b[i].m);
        const uint32_t qh = dt_load_u32le(b[i].qh);
        for (int j = 0; j < QK5_1 / 2; j++) {
            const int h0 = (int)((qh >> j) & 1u) << 4;
            const int h1 = (int)((qh >> (j + QK5_1 / 2)) & 1u) << 4;
            const int lo = (b[i].qs[j] & 0x0f) | h0;
            const int hi = (b[i].qs[j] >> 4) | h1;
            dst[j] = (float)lo * d + m;
            dst[j + QK5_1 / 2] = (float)hi * d + m;
        }
    }
}

/* Q8_0: x = q * d. */
void dt_to_float_q8_0(const void *src, float *dst, size_t n)
{
    const struct blk_q8_0 *b = src;
    for (size_t i = 0; i < n / QK8_0; i++, dst += QK8_0) {
        const float d = dt_fp16_to_f32(b[i].d);
        for (int j = 0; j < QK8_0; j++)
            dst[j] = (float)b[i].qs[j] * d;
    }
}

/* Q8_1: x = q * d (s is only a dot-product helper). */
void dt_to_float_q8_1(const void *src, float *dst, size_t n)
{
    const struct blk_q8_1 *b = src;
    for (size_t i = 0; i < n / QK8_1; i++, dst += QK8_1) {
        const float d = dt_fp16_to_f32(b[i].d);
        for (int j = 0; j < QK8_1; j++)
            dst[j] = (float)b[i].qs[j] * d;
    }
}

/* ---- encoders ----------------------------------------------------------- */

/* trunc(v) clamped to [0, top]; NaN gives 0 (no undefined conversion). */
static inline int dt_trunc_code(float v, int top)
{
    if (!(v >= 0.0f))
        return 0;
    if (v >= (float)top)
        return top;
    return (int)v;
}

/* Symmetric 4/5-bit: d = (value of largest magnitude) / -2^(bits-1), so that
 * that value maps exactly onto the extreme code 0; q = trunc(x/d + z + 0.5)
 * clamped to the top code. */
static void dt_sym_block(const float *x, int nbits, float *d_out, int *q)
{
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < 32; j++) {
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    const int zero = 1 << (nbits - 1);
    const int top = (1 << nbits) - 1;
    const float d = max / (float)-zero;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < 32; j++)
        q[j] = dt_trunc_code(x[j] * id + ((float)zero + 0.5f), top);
    *d_out = d;
}

/* Asymmetric 4/5-bit: d = (max - min) / (2^bits - 1), m = min,
 * q = trunc((x - min)/d + 0.5). */
static void dt_asym_block(const float *x, int nbits, float *d_out, float *m_out, int *q)
{
    float min = FLT_MAX, max = -FLT_MAX;
    for (int j = 0; j < 32; j++) {
        if (x[j] < min)
            min = x[j];
        if (x[j] > max)
            max = x[j];
    }
    const int top = (1 << nbits) - 1;
    const float d = (max - min) / (float)top;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < 32; j++)
        q[j] = dt_trunc_code((x[j] - min) * id + 0.5f, top);
    *d_out = d;
    *m_out = min;
}

void dt_from_float_q4_0(const float *src, void *dst, size_t n)
{
    struct blk_q4_0 *b = dst;
    int q[32];
    float d;
    for (size_t i = 0; i < n / QK4_0; i++, src += QK4_0) {
        dt_sym_block(src, 4, &d, q);
        b[i].d = dt_f32_to_fp16(d);
        for (int j = 0; j < QK4_0 / 2; j++)
            b[i].qs[j] = (uint8_t)(q[j] | q[j + QK4_0 / 2] << 4);
    }
}

void dt_from_float_q4_1(const float *src, void *dst, size_t n)
{
    struct blk_q4_1 *b = dst;
    int q[32];
    float d, m;
    for (size_t i = 0; i < n / QK4_1; i++, src += QK4_1) {
        dt_asym_block(src, 4, &d, &m, q);
        b[i].d = dt_f32_to_fp16(d);
        b[i].m = dt_f32_to_fp16(m);
        for (int j = 0; j < QK4_1 / 2; j++)
            b[i].qs[j] = (uint8_t)(q[j] | q[j + QK4_1 / 2] << 4);
    }
}

static void dt_pack5(const int *q, uint8_t *qs, uint8_t *qh_bytes)
{
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((q[j] & 0x0f) | (q[j + 16] & 0x0f) << 4);
        qh |= (uint32_t)(q[j] >> 4 & 1) << j;
        qh |= (uint32_t)(q[j + 16] >> 4 & 1) << (j + 16);
    }
    dt_store_u32le(qh_bytes, qh);
}

void dt_from_float_q5_0(const float *src, void *dst, size_t n)
{
    struct blk_q5_0 *b = dst;
    int q[32];
    float d;
    for (size_t i = 0; i < n / QK5_0; i++, src += QK5_0) {
        dt_sym_block(src, 5, &d, q);
        b[i].d = dt_f32_to_fp16(d);
        dt_pack5(q, b[i].qs, b[i].qh);
    }
}

void dt_from_float_q5_1(const float *src, void *dst, size_t n)
{
    struct blk_q5_1 *b = dst;
    int q[32];
    float d, m;
    for (size_t i = 0; i < n / QK5_1; i++, src += QK5_1) {
        dt_asym_block(src, 5, &d, &m, q);
        b[i].d = dt_f32_to_fp16(d);
        b[i].m = dt_f32_to_fp16(m);
        dt_pack5(q, b[i].qs, b[i].qh);
    }
}

/* 8-bit symmetric: d = amax / 127, q = roundf(x / d) (half away from zero).
 * Returns d; *sum receives the sum of the codes. */
static float dt_q8_block(const float *x, int8_t *qs, int *sum)
{
    float amax = 0.0f;
    for (int j = 0; j < 32; j++) {
        const float a = fabsf(x[j]);
        if (a > amax)
            amax = a;
    }
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    int s = 0;
    for (int j = 0; j < 32; j++) {
        const float v = roundf(x[j] * id);
        /* |v| <= 127 for finite input; NaN/inf inputs give 0 / +-127 */
        qs[j] = (int8_t)(v >= 127.0f ? 127 : (v <= -127.0f ? -127 : (v == v ? (int)v : 0)));
        s += qs[j];
    }
    *sum = s;
    return d;
}

void dt_from_float_q8_0(const float *src, void *dst, size_t n)
{
    struct blk_q8_0 *b = dst;
    int sum;
    for (size_t i = 0; i < n / QK8_0; i++, src += QK8_0)
        b[i].d = dt_f32_to_fp16(dt_q8_block(src, b[i].qs, &sum));
}

void dt_from_float_q8_1(const float *src, void *dst, size_t n)
{
    struct blk_q8_1 *b = dst;
    int sum;
    for (size_t i = 0; i < n / QK8_1; i++, src += QK8_1) {
        const float d = dt_q8_block(src, b[i].qs, &sum);
        b[i].d = dt_f32_to_fp16(d);
        b[i].s = dt_f32_to_fp16((float)sum * d);
    }
}
