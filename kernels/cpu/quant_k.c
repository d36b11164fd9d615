/* quant_k.c - row converters for the k-quant super-blocks of 256 values:
 * Q2_K, Q3_K, Q4_K, Q5_K, Q6_K (weights) and Q8_K (activations).
 *
 * Decoders follow the public ggml reference decoders operation for
 * operation (the sub-block factor d*scale is formed first, then multiplied
 * by the code, then the min factor subtracted), so results are bit-identical.
 *
 * Encoders are deterministic scalar reference quantizers of this project:
 * for every sub-block a small search over candidate scales, each refined by a
 * least-squares fit of scale (and min) to the codes it produces, keeps the
 * lowest squared error; the sub-block scales are then quantized against the
 * super-block scale(s) and every value is re-coded with the scales exactly as
 * a decoder will see them.
 */
#include "quant.h"

#include <math.h>
#include <string.h>

/* ---- scale packing ------------------------------------------------------ */

/* Q4_K/Q5_K: 8 six-bit scales and 8 six-bit mins in 12 bytes. Sub-blocks 0-3
 * keep scale and min in the low 6 bits of bytes 0-3 and 4-7; sub-blocks 4-7
 * keep their low 4 bits in the nibbles of bytes 8-11 and their top 2 bits in
 * the top 2 bits of bytes 0-3 (scale) and 4-7 (min). */
static inline void dt_k4_scale_min(int j, const uint8_t *s, uint8_t *sc, uint8_t *mn)
{
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (uint8_t)((s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4));
        *mn = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

static void dt_k4_pack(const uint8_t sc[8], const uint8_t mn[8], uint8_t out[K_SCALE_SIZE])
{
    for (int j = 0; j < 4; j++) {
        out[j] = (uint8_t)((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
        out[j + 4] = (uint8_t)((mn[j] & 63) | ((mn[j + 4] >> 4) << 6));
        out[j + 8] = (uint8_t)((sc[j + 4] & 0x0f) | ((mn[j + 4] & 0x0f) << 4));
    }
}

/* Q3_K: 16 six-bit scales (stored +32) in 12 bytes: the low 4 bits of scale k
 * are nibble k/8 of byte k%8, its top 2 bits are bits 2*(k/4) of byte 8+k%4. */
static inline int dt_q3k_scale(const uint8_t *s, int k)
{
    const int lo = (k < 8 ? s[k] : s[k - 8] >> 4) & 0x0f;
    const int hi = (s[8 + k % 4] >> (2 * (k / 4))) & 3;
    return (lo | hi << 4) - 32;
}

static void dt_q3k_pack(const int sc[16], uint8_t out[12])
{
    memset(out, 0, 12);
    for (int k = 0; k < 16; k++) {
        const int v = sc[k] + 32; /* 0..63 */
        if (k < 8)
            out[k] |= (uint8_t)(v & 0x0f);
        else
            out[k - 8] |= (uint8_t)((v & 0x0f) << 4);
        out[8 + k % 4] |= (uint8_t)(((v >> 4) & 3) << (2 * (k / 4)));
    }
}

/* ---- decoders ----------------------------------------------------------- */

/* Q2_K: per 16 values x = (d*sc) * q - (dmin*m). Each 32 bytes of qs hold 128
 * values: bit pair p of byte l is value 32*p + l. */
void dt_to_float_q2_k(const void *src, float *dst, size_t n)
{
    const struct blk_q2_k *b = src;
    for (size_t i = 0; i < n / QK_K; i++) {
        const float d = dt_fp16_to_f32(b[i].d);
        const float dmin = dt_fp16_to_f32(b[i].dmin);
        const uint8_t *q = b[i].qs;
        int is = 0;
        for (int half = 0; half < 2; half++, q += 32) {
            for (int p = 0; p < 4; p++) {
                const int shift = 2 * p;
                for (int g = 0; g < 2; g++) {
                    const uint8_t sc = b[i].scales[is++];
                    const float dl = d * (float)(sc & 0x0f);
                    const float ml = dmin * (float)(sc >> 4);
                    for (int l = 0; l < 16; l++)
                        *dst++ = dl * (float)((q[16 * g + l] >> shift) & 3) - ml;
                }
            }
        }
    }
}

/* Q3_K: x = (d*sc) * (q - (hmask bit ? 0 : 4)), sc signed 6-bit. Layout of
 * qs as Q2_K; hmask bit j (j = 0..7) of byte l is the high bit of the values
 * coded by bit pair j%4 of the qs byte set j/4, at column l. */
void dt_to_float_q3_k(const void *src, float *dst, size_t n)
{
    const struct blk_q3_k *b = src;
    for (size_t i = 0; i < n / QK_K; i++) {
        const float d_all = dt_fp16_to_f32(b[i].d);
        const uint8_t *q = b[i].qs;
        const uint8_t *hm = b[i].hmask;
        int is = 0;
        unsigned m = 1;
        for (int half = 0; half < 2; half++, q += 32) {
            for (int p = 0; p < 4; p++, m <<= 1) {
                const int shift = 2 * p;
                for (int g = 0; g < 2; g++) {
                    const float dl = d_all * (float)dt_q3k_scale(b[i].scales, is++);
                    for (int l = 16 * g; l < 16 * g + 16; l++) {
                        const int v = ((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4);
                        *dst++ = dl * (float)v;
                    }
                }
            }
        }
    }
}

/* Q4_K: per 32 values x = (d*sc) * q - (dmin*m); each 32 bytes of qs hold 64
 * values, low nibbles first. */
void dt_to_float_q4_k(const void *src, float *dst, size_t n)
{
    const struct blk_q4_k *b = src;
    for (size_t i = 0; i < n / QK_K; i++) {
        const float d = dt_fp16_to_f32(b[i].d);
        const float dmin = dt_fp16_to_f32(b[i].dmin);
        const uint8_t *q = b[i].qs;
        for (int j = 0; j < 8; j += 2, q += 32) {
            uint8_t sc, mn;
            dt_k4_scale_min(j, b[i].scales, &sc, &mn);
            const float d1 = d * (float)sc, m1 = dmin * (float)mn;
            dt_k4_scale_min(j + 1, b[i].scales, &sc, &mn);
            const float d2 = d * (float)sc, m2 = dmin * (float)mn;
            for (int l = 0; l < 32; l++)
                *dst++ = d1 * (float)(q[l] & 0x0f) - m1;
            for (int l = 0; l < 32; l++)
                *dst++ = d2 * (float)(q[l] >> 4) - m2;
        }
    }
}

/* Q5_K: as Q4_K plus a fifth bit: bit j of qh[l] belongs to sub-block j. */
void dt_to_float_q5_k(const void *src, float *dst, size_t n)
{
    const struct blk_q5_k *b = src;
    for (size_t i = 0; i < n / QK_K; i++) {
        const float d = dt_fp16_to_f32(b[i].d);
        const float dmin = dt_fp16_to_f32(b[i].dmin);
        const uint8_t *ql = b[i].qs;
        const uint8_t *qh = b[i].qh;
        for (int j = 0; j < 8; j += 2, ql += 32) {
            uint8_t sc, mn;
            dt_k4_scale_min(j, b[i].scales, &sc, &mn);
            const float d1 = d * (float)sc, m1 = dmin * (float)mn;
            dt_k4_scale_min(j + 1, b[i].scales, &sc, &mn);
            const float d2 = d * (float)sc, m2 = dmin * (float)mn;
            for (int l = 0; l < 32; l++) {
                const int v = (ql[l] & 0x0f) + (((qh[l] >> j) & 1) << 4);
                *dst++ = d1 * (float)v - m1;
            }
            for (int l = 0; l < 32; l++) {
                const int v = (ql[l] >> 4) + (((qh[l] >> (j + 1)) & 1) << 4);
                *dst++ = d2 * (float)v - m2;
            }
        }
    }
}

/* Q6_K: x = d * sc * (q - 32) evaluated left to right, sc signed 8-bit per
 * 16 values. Per 128 values: ql[0..63] low nibbles, qh[0..31] top 2 bits. */
void dt_to_float_q6_k(const void *src, float *dst, size_t n)
{
    const struct blk_q6_k *b = src;
    for (size_t i = 0; i < n / QK_K; i++) {
        const float d = dt_fp16_to_f32(b[i].d);
        const uint8_t *ql = b[i].ql;
        const uint8_t *qh = b[i].qh;
        const int8_t *sc = b[i].scales;
        for (int half = 0; half < 2; half++, dst += 128, ql += 64, qh += 32, sc += 8) {
            for (int l = 0; l < 32; l++) {
                const int is = l / 16;
                const int q1 = ((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) - 32;
                const int q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                dst[l] = d * (float)sc[is] * (float)q1;
                dst[l + 32] = d * (float)sc[is + 2] * (float)q2;
                dst[l + 64] = d * (float)sc[is + 4] * (float)q3;
                dst[l + 96] = d * (float)sc[is + 6] * (float)q4;
            }
        }
    }
}

/* Q8_K: x = q * d (d is a plain float). */
void dt_to_float_q8_k(const void *src, float *dst, size_t n)
{
    const struct blk_q8_k *b = src;
    for (size_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        for (int j = 0; j < QK_K; j++)
            dst[j] = (float)b[i].qs[j] * b[i].d;
    }
}

/* ---- encoders ----------------------------------------------------------- */

/* Values of the largest sub-block (Q4_K/Q5_K: 32). */
#define DT_SUB_MAX 32

static inline int dt_clampi(int v, int lo, int hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

/* Asymmetric fit of n values to x ~ s*L - m, L in [0, nmax], s >= 0,
 * m >= 0 (the zero point never lies above the smallest value, as a decoder
 * subtracts m). Returns the best (s, m). */
static void dt_fit_asym(const float *x, int n, int nmax, float *s_out, float *m_out)
{
    float xmin = x[0], xmax = x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < xmin)
            xmin = x[i];
        if (x[i] > xmax)
            xmax = x[i];
    }
    if (xmin > 0.0f)
        xmin = 0.0f;
    if (xmax <= xmin) {
        *s_out = 0.0f;
        *m_out = -xmin;
        return;
    }
    /* start: the plain min/max grid */
    float best_s = (xmax - xmin) / (float)nmax, best_m = -xmin;
    double best_err = HUGE_VAL;
    int L[DT_SUB_MAX];
    for (int k = -10; k <= 10; k++) {
        const float iscale = ((float)nmax + 0.1f * (float)k) / (xmax - xmin);
        for (int i = 0; i < n; i++)
            L[i] = dt_clampi(dt_nearest_int(iscale * (x[i] - xmin)), 0, nmax);
        /* least squares for x ~ s*L + b */
        double sl = 0, sll = 0, sx = 0, slx = 0;
        for (int i = 0; i < n; i++) {
            sl += L[i];
            sll += (double)L[i] * L[i];
            sx += x[i];
            slx += (double)L[i] * x[i];
        }
        const double det = n * sll - sl * sl;
        double s, bb;
        if (det > 0) {
            s = (n * slx - sl * sx) / det;
            bb = (sll * sx - sl * slx) / det;
        } else {
            s = 0;
            bb = sx / n;
        }
        if (bb > 0) { /* zero point above the data: pin it at 0 */
            bb = 0;
            s = sll > 0 ? slx / sll : 0;
        }
        if (s < 0)
            continue;
        double err = 0;
        for (int i = 0; i < n; i++) {
            const double e = s * L[i] + bb - x[i];
            err += e * e;
        }
        if (err < best_err) {
            best_err = err;
            best_s = (float)s;
            best_m = (float)-bb;
        }
    }
    *s_out = best_s;
    *m_out = best_m;
}

/* Symmetric fit of n values to x ~ s*L, L in [-nneg, nneg-1]; s may be
 * negative so that the wider side of the code range covers the value of
 * largest magnitude. */
static float dt_fit_sym(const float *x, int n, int nneg)
{
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    if (amax == 0.0f)
        return 0.0f;
    float best_s = max / (float)-nneg;
    double best_err = HUGE_VAL;
    int L[DT_SUB_MAX];
    for (int k = -9; k <= 9; k++) {
        const float iscale = -((float)nneg + 0.1f * (float)k) / max;
        double slx = 0, sll = 0;
        for (int i = 0; i < n; i++) {
            L[i] = dt_clampi(dt_nearest_int(iscale * x[i]), -nneg, nneg - 1);
            slx += (double)L[i] * x[i];
            sll += (double)L[i] * L[i];
        }
        if (sll <= 0)
            continue;
        const double s = slx / sll;
        double err = 0;
        for (int i = 0; i < n; i++) {
            const double e = s * L[i] - x[i];
            err += e * e;
        }
        if (err < best_err) {
            best_err = err;
            best_s = (float)s;
        }
    }
    return best_s;
}

/* Quantize per-sub-block non-negative factors v[0..nb) to codes in
 * [0, cmax] against a super-block factor (returned, as stored in fp16). */
static dt_fp16 dt_superscale_pos(const float *v, int nb, int cmax, uint8_t *codes)
{
    float vmax = 0.0f;
    for (int j = 0; j < nb; j++)
        if (v[j] > vmax)
            vmax = v[j];
    dt_fp16 h = dt_f32_to_fp16(vmax / (float)cmax);
    /* never round the super-block factor down: the largest factor would
     * then clip (matters where fp16 is coarse, e.g. subnormal) */
    if (dt_fp16_to_f32(h) * (float)cmax < vmax && h < 0x7bff)
        h++;
    const float d = dt_fp16_to_f32(h);
    const float id = d > 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < nb; j++)
        codes[j] = (uint8_t)dt_clampi(dt_nearest_int(v[j] * id), 0, cmax);
    return h;
}

/* Signed factors v[0..nb) to codes in [-cneg, cneg-1]; the largest-magnitude
 * factor maps onto -cneg. Returns the super-block factor as stored. */
static dt_fp16 dt_superscale_sym(const float *v, int nb, int cneg, int *codes)
{
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < nb; j++) {
        if (fabsf(v[j]) > amax) {
            amax = fabsf(v[j]);
            max = v[j];
        }
    }
    dt_fp16 h = dt_f32_to_fp16(max / (float)-cneg);
    /* as above: round the magnitude up rather than clip the largest factor */
    if (fabsf(dt_fp16_to_f32(h)) * (float)cneg < amax && (h & 0x7fff) < 0x7bff)
        h++;
    const float d = dt_fp16_to_f32(h);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < nb; j++)
        codes[j] = dt_clampi(dt_nearest_int(v[j] * id), -cneg, cneg - 1);
    return h;
}

/* Code of x for a decoder computing dl*L - ml, L in [0, nmax]. */
static inline int dt_code_asym(float x, float dl, float ml, int nmax)
{
    if (dl == 0.0f)
        return 0;
    return dt_clampi(dt_nearest_int((x + ml) / dl), 0, nmax);
}

static inline int dt_code_sym(float x, float dl, int nneg)
{
    if (dl == 0.0f)
        return 0;
    return dt_clampi(dt_nearest_int(x / dl), -nneg, nneg - 1);
}

/* Q2_K: 16 sub-blocks of 16, 4-bit scale and min, 2-bit codes. */
void dt_from_float_q2_k(const float *src, void *dst, size_t n)
{
    struct blk_q2_k *b = dst;
    for (size_t i = 0; i < n / QK_K; i++, src += QK_K) {
        float s[16], m[16];
        uint8_t sc[16], mn[16];
        for (int j = 0; j < 16; j++)
            dt_fit_asym(src + 16 * j, 16, 3, &s[j], &m[j]);
        b[i].d = dt_superscale_pos(s, 16, 15, sc);
        b[i].dmin = dt_superscale_pos(m, 16, 15, mn);
        const float d = dt_fp16_to_f32(b[i].d), dmin = dt_fp16_to_f32(b[i].dmin);
        memset(b[i].qs, 0, sizeof b[i].qs);
        for (int j = 0; j < 16; j++) {
            b[i].scales[j] = (uint8_t)(sc[j] | mn[j] << 4);
            const float dl = d * (float)sc[j], ml = dmin * (float)mn[j];
            for (int l = 0; l < 16; l++) {
                /* value v = 16*j + l lives in byte 32*(v/128) + v%32, pair (v%128)/32 */
                const int v = 16 * j + l;
                const int L = dt_code_asym(src[v], dl, ml, 3);
                b[i].qs[32 * (v / 128) + v % 32] |= (uint8_t)(L << (2 * ((v % 128) / 32)));
            }
        }
    }
}

/* Q3_K: 16 sub-blocks of 16, signed 6-bit scale, codes -4..3. */
void dt_from_float_q3_k(const float *src, void *dst, size_t n)
{
    struct blk_q3_k *b = dst;
    for (size_t i = 0; i < n / QK_K; i++, src += QK_K) {
        float s[16];
        int sc[16];
        for (int j = 0; j < 16; j++)
            s[j] = dt_fit_sym(src + 16 * j, 16, 4);
        b[i].d = dt_superscale_sym(s, 16, 32, sc);
        dt_q3k_pack(sc, b[i].scales);
        const float d = dt_fp16_to_f32(b[i].d);
        memset(b[i].qs, 0, sizeof b[i].qs);
        memset(b[i].hmask, 0, sizeof b[i].hmask);
        for (int j = 0; j < 16; j++) {
            const float dl = d * (float)sc[j];
            for (int l = 0; l < 16; l++) {
                const int v = 16 * j + l;
                const int L = dt_code_sym(src[v], dl, 4) + 4; /* 0..7 */
                const int col = v % 32, pair = (v % 128) / 32, set = v / 128;
                b[i].qs[32 * set + col] |= (uint8_t)((L & 3) << (2 * pair));
                if (L & 4)
                    b[i].hmask[col] |= (uint8_t)(1u << (4 * set + pair));
            }
        }
    }
}

/* Q4_K / Q5_K share the scale layout; nbits is 4 or 5. */
static void dt_from_float_k45(const float *src, int nbits, dt_fp16 *d_out, dt_fp16 *dmin_out,
                              uint8_t scales[K_SCALE_SIZE], int codes[QK_K])
{
    const int nmax = (1 << nbits) - 1;
    float s[8], m[8];
    uint8_t sc[8], mn[8];
    for (int j = 0; j < 8; j++)
        dt_fit_asym(src + 32 * j, 32, nmax, &s[j], &m[j]);
    *d_out = dt_superscale_pos(s, 8, 63, sc);
    *dmin_out = dt_superscale_pos(m, 8, 63, mn);
    dt_k4_pack(sc, mn, scales);
    const float d = dt_fp16_to_f32(*d_out), dmin = dt_fp16_to_f32(*dmin_out);
    for (int j = 0; j < 8; j++) {
        const float dl = d * (float)sc[j], ml = dmin * (float)mn[j];
        for (int l = 0; l < 32; l++)
            codes[32 * j + l] = dt_code_asym(src[32 * j + l], dl, ml, nmax);
    }
}

void dt_from_float_q4_k(const float *src, void *dst, size_t n)
{
    struct blk_q4_k *b = dst;
    int L[QK_K];
    for (size_t i = 0; i < n / QK_K; i++, src += QK_K) {
        dt_from_float_k45(src, 4, &b[i].d, &b[i].dmin, b[i].scales, L);
        /* 32 bytes per 64 values: sub-block 2t in the low nibbles */
        for (int t = 0; t < 4; t++)
            for (int l = 0; l < 32; l++)
                b[i].qs[32 * t + l] = (uint8_t)(L[64 * t + l] | L[64 * t + 32 + l] << 4);
    }
}

void dt_from_float_q5_k(const float *src, void *dst, size_t n)
{
    struct blk_q5_k *b = dst;
    int L[QK_K];
    for (size_t i = 0; i < n / QK_K; i++, src += QK_K) {
        dt_from_float_k45(src, 5, &b[i].d, &b[i].dmin, b[i].scales, L);
        memset(b[i].qh, 0, sizeof b[i].qh);
        for (int t = 0; t < 4; t++) {
            for (int l = 0; l < 32; l++) {
                const int lo = L[64 * t + l], hi = L[64 * t + 32 + l];
                b[i].qs[32 * t + l] = (uint8_t)((lo & 0x0f) | (hi & 0x0f) << 4);
                b[i].qh[l] |= (uint8_t)(((lo >> 4) & 1) << (2 * t));
                b[i].qh[l] |= (uint8_t)(((hi >> 4) & 1) << (2 * t + 1));
            }
        }
    }
}

/* Q6_K: 16 sub-blocks of 16, signed 8-bit scale, codes -32..31. */
void dt_from_float_q6_k(const float *src, void *dst, size_t n)
{
    struct blk_q6_k *b = dst;
    for (size_t i = 0; i < n / QK_K; i++, src += QK_K) {
        float s[16];
        int sc[16];
        for (int j = 0; j < 16; j++)
            s[j] = dt_fit_sym(src + 16 * j, 16, 32);
        b[i].d = dt_superscale_sym(s, 16, 128, sc);
        const float d = dt_fp16_to_f32(b[i].d);
        memset(b[i].ql, 0, sizeof b[i].ql);
        memset(b[i].qh, 0, sizeof b[i].qh);
        for (int j = 0; j < 16; j++) {
            b[i].scales[j] = (int8_t)sc[j];
            /* the decoder forms d * sc first, in float */
            const float dl = d * (float)sc[j];
            for (int l = 0; l < 16; l++) {
                const int v = 16 * j + l;
                const int L = dt_code_sym(src[v], dl, 32) + 32; /* 0..63 */
                /* per 128 values: value 32*p + c has low nibble in
                 * ql[64*h + c + 32*(p&1)] (high nibble if p >= 2) and top
                 * bits at qh[32*h + c] bits 2p..2p+1 */
                const int h = v / 128, p = (v % 128) / 32, c = v % 32;
                uint8_t *qlb = &b[i].ql[64 * h + c + 32 * (p & 1)];
                *qlb |= (uint8_t)((L & 0x0f) << (p >= 2 ? 4 : 0));
                b[i].qh[32 * h + c] |= (uint8_t)((L >> 4) << (2 * p));
            }
        }
    }
}

/* Q8_K: d = 1/iscale with iscale = -127/max, max the value of largest
 * magnitude; q = nearest (ties even) of iscale*x, at most 127; bsums are
 * the sums of each 16 codes. */
void dt_from_float_q8_k(const float *src, void *dst, size_t n)
{
    struct blk_q8_k *b = dst;
    for (size_t i = 0; i < n / QK_K; i++, src += QK_K) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK_K; j++) {
            const float a = fabsf(src[j]);
            if (a > amax) {
                amax = a;
                max = src[j];
            }
        }
        if (amax == 0.0f) {
            memset(&b[i], 0, sizeof b[i]);
            continue;
        }
        const float iscale = -127.0f / max;
        for (int j = 0; j < QK_K; j++) {
            const int v = dt_nearest_int(iscale * src[j]);
            b[i].qs[j] = (int8_t)(v > 127 ? 127 : v);
        }
        for (int g = 0; g < QK_K / 16; g++) {
            int s = 0;
            for (int l = 0; l < 16; l++)
                s += b[i].qs[16 * g + l];
            b[i].bsums[g] = (int16_t)s;
        }
        b[i].d = 1.0f / iscale;
    }
}
