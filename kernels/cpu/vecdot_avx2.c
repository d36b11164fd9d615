/* vecdot_avx2.c - AVX2 + FMA + F16C dot products for every weight type, the
 * activation converters (Q8_0, Q8_1, Q8_K, BF16) and matrix tile kernels for
 * Q4_0 and Q8_0 (decode and prefill) and F32/F16/BF16 (prefill).
 *
 * Built with -mavx2 -mfma -mf16c; only reached through the dispatch tables
 * in vecdot.c after kern_isa_supported(KERN_ISA_AVX2). Integer products use
 * vpmaddubsw (u8 x s8 -> s16 pairs) and vpmaddwd: every input range below
 * keeps the s16 pair sums clear of saturation (stated at each use). Scalar
 * references: vecdot.c (dots), quant.c / quant_k.c (converters).
 */
#include "kern_impl.h"

#include <immintrin.h>
#include <string.h>

static inline float hsum_ps(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline int hsum_epi32(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

static inline float h2f(dt_fp16 h)
{
    return _cvtsh_ss(h);
}

static inline __m256i loadu256(const void *p)
{
    return _mm256_loadu_si256((const __m256i *)p);
}

/* Sum of s8 products, u (0..255 as u8) x s (s8): pair sums must fit s16. */
static inline __m256i dot_us8(__m256i u, __m256i s)
{
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

/* Signed x signed via |a| and sign(b, a): needs a, b in -127..127 (or
 * b = -128 with a >= 0), so pair sums stay within 2 * 128 * 127. */
static inline __m256i dot_ss8(__m256i a, __m256i b)
{
    return dot_us8(_mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a));
}

/* 32 bits -> 32 bytes, byte j = 0xff if bit j of v is set. */
static inline __m256i bits_to_bytes(uint32_t v)
{
    const __m256i shuf = _mm256_setr_epi64x(0x0000000000000000, 0x0101010101010101,
                                            0x0202020202020202, 0x0303030303030303);
    __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32((int)v), shuf);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    return _mm256_cmpeq_epi8(_mm256_and_si256(b, bit), bit);
}

/* ---- float formats -------------------------------------------------------- */

/* w (n,) f32 . x (n,) f32 */
static void vd_f32_avx2(size_t n, float *s, const void *w, const void *x)
{
    const float *a = w, *b = x;
    __m256 acc[4] = { _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                      _mm256_setzero_ps() };
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        for (int k = 0; k < 4; k++)
            acc[k] = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8 * k), _mm256_loadu_ps(b + i + 8 * k),
                                     acc[k]);
    }
    for (; i + 8 <= n; i += 8)
        acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc[0]);
    float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    for (; i < n; i++)
        sum += a[i] * b[i];
    *s = sum;
}

/* w (n,) f16 . x (n,) f32 */
static void vd_f16_avx2(size_t n, float *s, const void *w, const void *x)
{
    const dt_fp16 *a = w;
    const float *b = x;
    __m256 acc[4] = { _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                      _mm256_setzero_ps() };
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        for (int k = 0; k < 4; k++) {
            const __m256 wv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i + 8 * k)));
            acc[k] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(b + i + 8 * k), acc[k]);
        }
    }
    for (; i + 8 <= n; i += 8) {
        const __m256 wv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i)));
        acc[0] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(b + i), acc[0]);
    }
    float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    for (; i < n; i++)
        sum += h2f(a[i]) * b[i];
    *s = sum;
}

/* w (n,) bf16 . x (n,) bf16: a bf16 is the top half of an f32, so the even
 * elements of 16 are (v << 16) and the odd ones (v & 0xffff0000). */
static void vd_bf16_avx2(size_t n, float *s, const void *w, const void *x)
{
    const dt_bf16 *a = w, *b = x;
    const __m256i hi = _mm256_set1_epi32((int)0xffff0000u);
    __m256 acc[4] = { _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                      _mm256_setzero_ps() };
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        for (int k = 0; k < 2; k++) {
            const __m256i wv = loadu256(a + i + 16 * k), xv = loadu256(b + i + 16 * k);
            acc[2 * k] = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(wv, 16)),
                                         _mm256_castsi256_ps(_mm256_slli_epi32(xv, 16)), acc[2 * k]);
            acc[2 * k + 1] = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(wv, hi)),
                                             _mm256_castsi256_ps(_mm256_and_si256(xv, hi)),
                                             acc[2 * k + 1]);
        }
    }
    float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    for (; i < n; i++)
        sum += dt_bf16_to_f32(a[i]) * dt_bf16_to_f32(b[i]);
    *s = sum;
}

/* ---- legacy blocks . Q8_0 / Q8_1 ----------------------------------------------- */

/* 16 bytes of packed nibbles -> 32 bytes: low nibbles, then high nibbles. */
static inline __m256i nibbles32(const uint8_t *qs)
{
    const __m128i q = _mm_loadu_si128((const __m128i *)qs);
    const __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(q), _mm_srli_epi16(q, 4), 1);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0f));
}

/* Q4_0 . Q8_0: per block (q - 8) in -8..7 times y, signed x signed. */
static void vd_q4_0_avx2(size_t n, float *s, const void *w, const void *x)
{
    const struct blk_q4_0 *a = w;
    const struct blk_q8_0 *b = x;
    const size_t nb = n / QK4_0;
    __m256 acc[2] = { _mm256_setzero_ps(), _mm256_setzero_ps() };
    for (size_t i = 0; i < nb; i++) {
        const __m256i q = _mm256_sub_epi8(nibbles32(a[i].qs), _mm256_set1_epi8(8));
        const __m256i p = dot_ss8(q, loadu256(b[i].qs));
        const __m256 d = _mm256_set1_ps(h2f(a[i].d) * h2f(b[i].d));
        acc[i & 1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), d, acc[i & 1]);
    }
    *s = hsum_ps(_mm256_add_ps(acc[0], acc[1]));
}

/* Q4_1 . Q8_1: q in 0..15 unsigned; the min contributes m * s per block. */
static void vd_q4_1_avx2(size_t n, float *s, const void *w, const void *x)
{
    const struct blk_q4_1 *a = w;
    const struct blk_q8_1 *b = x;
    const size_t nb = n / QK4_1;
    __m256 acc[2] = { _mm256_setzero_ps(), _mm256_setzero_ps() };
    float summ = 0.0f;
    for (size_t i = 0; i < nb; i++) {
        const __m256i p = dot_us8(nibbles32(a[i].qs), loadu256(b[i].qs));
        const __m256 d = _mm256_set1_ps(h2f(a[i].d) * h2f(b[i].d));
        acc[i & 1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), d, acc[i & 1]);
        summ += h2f(a[i].m) * h2f(b[i].s);
    }
    *s = hsum_ps(_mm256_add_ps(acc[0], acc[1])) + summ;
}

/* Q5_0 . Q8_0: q = nibble | 16 * bit, minus 16: -16..15, signed x signed. */
static void vd_q5_0_avx2(size_t n, float *s, const void *w, const void *x)
{
    const struct blk_q5_0 *a = w;
    const struct blk_q8_0 *b = x;
    const size_t nb = n / QK5_0;
    __m256 acc[2] = { _mm256_setzero_ps(), _mm256_setzero_ps() };
    for (size_t i = 0; i < nb; i++) {
        uint32_t qh;
        memcpy(&qh, a[i].qh, sizeof qh);
        const __m256i hb = _mm256_and_si256(bits_to_bytes(qh), _mm256_set1_epi8(0x10));
        const __m256i q = _mm256_sub_epi8(_mm256_or_si256(nibbles32(a[i].qs), hb),
                                          _mm256_set1_epi8(16));
        const __m256i p = dot_ss8(q, loadu256(b[i].qs));
        const __m256 d = _mm256_set1_ps(h2f(a[i].d) * h2f(b[i].d));
        acc[i & 1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), d, acc[i & 1]);
    }
    *s = hsum_ps(_mm256_add_ps(acc[0], acc[1]));
}

/* Q5_1 . Q8_1: q in 0..31 unsigned, plus m * s. */
static void vd_q5_1_avx2(size_t n, float *s, const void *w, const void *x)
{
    const struct blk_q5_1 *a = w;
    const struct blk_q8_1 *b = x;
    const size_t nb = n / QK5_1;
    __m256 acc[2] = { _mm256_setzero_ps(), _mm256_setzero_ps() };
    float summ = 0.0f;
    for (size_t i = 0; i < nb; i++) {
        uint32_t qh;
        memcpy(&qh, a[i].qh, sizeof qh);
        const __m256i hb = _mm256_and_si256(bits_to_bytes(qh), _mm256_set1_epi8(0x10));
        const __m256i p = dot_us8(_mm256_or_si256(nibbles32(a[i].qs), hb), loadu256(b[i].qs));
        const __m256 d = _mm256_set1_ps(h2f(a[i].d) * h2f(b[i].d));
        acc[i & 1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), d, acc[i & 1]);
        summ += h2f(a[i].m) * h2f(b[i].s);
    }
    *s = hsum_ps(_mm256_add_ps(acc[0], acc[1])) + summ;
}

/* Q8_0 . Q8_0: signed x signed (weights may hold -128: |-128| is 128 as u8,
 * activations stay within -127..127). */
static void vd_q8_0_avx2(size_t n, float *s, const void *w, const void *x)
{
    const struct blk_q8_0 *a = w;
    const struct blk_q8_0 *b = x;
    const size_t nb = n / QK8_0;
    __m256 acc[2] = { _mm256_setzero_ps(), _mm256_setzero_ps() };
    for (size_t i = 0; i < nb; i++) {
        const __m256i p = dot_ss8(loadu256(a[i].qs), loadu256(b[i].qs));
        const __m256 d = _mm256_set1_ps(h2f(a[i].d) * h2f(b[i].d));
        acc[i & 1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), d, acc[i & 1]);
    }
    *s = hsum_ps(_mm256_add_ps(acc[0], acc[1]));
}

/* ---- k-quants . Q8_K ------------------------------------------------------------- */

/* [sc_g x 8 | sc_g+1 x 8] from 16 s16 scales (g even): the scales of the 16
 * s16 pair sums of 32 products. */
static inline __m256i scale_pair(__m256i sc16, int g)
{
    const __m256i d = _mm256_permutevar8x32_epi32(sc16, _mm256_set1_epi32(g / 2));
    const __m256i idx = _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1,
                                         2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3);
    return _mm256_shuffle_epi8(d, idx);
}

/* sum_g bsums[g] * sc[g] over the 16 groups, sc as 16 s16 */
static inline int bsum_dot(const int16_t *bsums, __m256i sc16)
{
    return hsum_epi32(_mm256_madd_epi16(loadu256(bsums), sc16));
}

/* Q2_K: q in 0..3 (u8) x y; pair sums <= 2 * 3 * 127. */
static void vd_q2_k_avx2(size_t n, float *s, const void *w, const void *x)
{
    const struct blk_q2_k *a = w;
    const struct blk_q8_k *b = x;
    __m256 acc = _mm256_setzero_ps();
    float summ = 0.0f;
    for (size_t i = 0; i < n / QK_K; i++) {
        const __m128i scb = _mm_loadu_si128((const __m128i *)a[i].scales);
        const __m256i mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(scb, 4),
                                                                _mm_set1_epi8(0x0f)));
        const __m256i sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(scb, _mm_set1_epi8(0x0f)));
        summ += b[i].d * h2f(a[i].dmin) * (float)bsum_dot(b[i].bsums, mins);
        const int8_t *q8 = b[i].qs;
        __m256i isum = _mm256_setzero_si256();
        for (int c = 0; c < 2; c++) {
            const __m256i q2 = loadu256(a[i].qs + 32 * c);
            for (int j = 0; j < 4; j++) {
                const int g = 8 * c + 2 * j;
                const __m256i q = _mm256_and_si256(_mm256_srli_epi16(q2, 2 * j), _mm256_set1_epi8(3));
                const __m256i p = _mm256_maddubs_epi16(q, loadu256(q8 + 16 * g));
                isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, scale_pair(sc16, g)));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(b[i].d * h2f(a[i].d)), acc);
    }
    *s = hsum_ps(acc) - summ;
}

/* The 16 Q3_K scales, unbiased, as s8 (see vd_q3k_scale in vecdot.c):
 * low nibbles from bytes 0-7, top 2 bits from bytes 8-11. */
static inline __m128i q3k_scales(const uint8_t *sc)
{
    uint32_t a0, a1, t;
    memcpy(&a0, sc, 4);
    memcpy(&a1, sc + 4, 4);
    memcpy(&t, sc + 8, 4);
    const uint32_t m4 = 0x0f0f0f0fu, m2 = 0x03030303u;
    const uint32_t s0 = (a0 & m4) | (((t >> 0) & m2) << 4);
    const uint32_t s1 = (a1 & m4) | (((t >> 2) & m2) << 4);
    const uint32_t s2 = ((a0 >> 4) & m4) | (((t >> 4) & m2) << 4);
    const uint32_t s3 = ((a1 >> 4) & m4) | (((t >> 6) & m2) << 4);
    return _mm_sub_epi8(_mm_setr_epi32((int)s0, (int)s1, (int)s2, (int)s3), _mm_set1_epi8(32));
}

/* Q3_K: uses q + 4 in 0..7 (u8) and subtracts 4 * sum(sc * bsums). */
static void vd_q3_k_avx2(size_t n, float *s, const void *w, const void *x)
{
    const struct blk_q3_k *a = w;
    const struct blk_q8_k *b = x;
    __m256 acc = _mm256_setzero_ps();
    for (size_t i = 0; i < n / QK_K; i++) {
        const __m256i sc16 = _mm256_cvtepi8_epi16(q3k_scales(a[i].scales));
        const int corr = 4 * bsum_dot(b[i].bsums, sc16);
        const __m256i hm = loadu256(a[i].hmask);
        const int8_t *q8 = b[i].qs;
        __m256i isum = _mm256_setzero_si256();
        for (int c = 0; c < 2; c++) {
            const __m256i q3 = loadu256(a[i].qs + 32 * c);
            for (int j = 0; j < 4; j++) {
                const int g = 8 * c + 2 * j;
                const __m256i lo = _mm256_and_si256(_mm256_srli_epi16(q3, 2 * j), _mm256_set1_epi8(3));
                const __m256i hb = _mm256_and_si256(_mm256_srli_epi16(hm, 4 * c + j), _mm256_set1_epi8(1));
                const __m256i q = _mm256_or_si256(lo, _mm256_slli_epi16(hb, 2));
                const __m256i p = _mm256_maddubs_epi16(q, loadu256(q8 + 16 * g));
                isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, scale_pair(sc16, g)));
            }
        }
        isum = _mm256_sub_epi32(isum, _mm256_setr_epi32(corr, 0, 0, 0, 0, 0, 0, 0));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(h2f(a[i].d) * b[i].d), acc);
    }
    *s = hsum_ps(acc);
}

/* sum_j m_j * (bsums[2j] + bsums[2j+1]); scm from k4_scales_mins() */
static inline int k4_min_dot(const int16_t *bsums, __m128i scm)
{
    return bsum_dot(bsums, _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(scm, scm)));
}

/* [sc_j x 16 words] for j = 2c, 2c + 1 as two s16 vectors */
static inline void k4_scale_pair(__m256i sc16, int c, __m256i *lo, __m256i *hi)
{
    const __m256i sw = _mm256_permute4x64_epi64(sc16, 0x00); /* words 0-3 in every lane */
    const __m256i sw2 = _mm256_permute4x64_epi64(sc16, 0x55); /* words 4-7 */
    const __m256i v = c < 2 ? sw : sw2;
    const int k = (2 * c) & 3;
    const __m256i idx_lo = _mm256_set1_epi16((short)(0x0100 + 0x0202 * k));
    const __m256i idx_hi = _mm256_set1_epi16((short)(0x0100 + 0x0202 * (k + 1)));
    *lo = _mm256_shuffle_epi8(v, idx_lo);
    *hi = _mm256_shuffle_epi8(v, idx_hi);
}

/* Q4_K: q in 0..15 (u8) x y; pair sums <= 2 * 15 * 127. */
static void vd_q4_k_avx2(size_t n, float *s, const void *w, const void *x)
{
    const struct blk_q4_k *a = w;
    const struct blk_q8_k *b = x;
    __m256 acc = _mm256_setzero_ps();
    float summ = 0.0f;
    for (size_t i = 0; i < n / QK_K; i++) {
        const __m128i scm = k4_scales_mins(a[i].scales);
        const __m256i sc16 = _mm256_cvtepu8_epi16(scm);
        summ += b[i].d * h2f(a[i].dmin) * (float)k4_min_dot(b[i].bsums, scm);
        const int8_t *q8 = b[i].qs;
        __m256i isum = _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            const __m256i q = loadu256(a[i].qs + 32 * c);
            const __m256i lo = _mm256_and_si256(q, _mm256_set1_epi8(0x0f));
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), _mm256_set1_epi8(0x0f));
            const __m256i plo = _mm256_maddubs_epi16(lo, loadu256(q8 + 64 * c));
            const __m256i phi = _mm256_maddubs_epi16(hi, loadu256(q8 + 64 * c + 32));
            __m256i slo, shi;
            k4_scale_pair(sc16, c, &slo, &shi);
            isum = _mm256_add_epi32(isum, _mm256_madd_epi16(plo, slo));
            isum = _mm256_add_epi32(isum, _mm256_madd_epi16(phi, shi));
        }
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(b[i].d * h2f(a[i].d)), acc);
    }
    *s = hsum_ps(acc) - summ;
}

/* Q5_K: q in 0..31 (u8) x y; pair sums <= 2 * 31 * 127. */
static void vd_q5_k_avx2(size_t n, float *s, const void *w, const void *x)
{
    const struct blk_q5_k *a = w;
    const struct blk_q8_k *b = x;
    __m256 acc = _mm256_setzero_ps();
    float summ = 0.0f;
    for (size_t i = 0; i < n / QK_K; i++) {
        const __m128i scm = k4_scales_mins(a[i].scales);
        const __m256i sc16 = _mm256_cvtepu8_epi16(scm);
        summ += b[i].d * h2f(a[i].dmin) * (float)k4_min_dot(b[i].bsums, scm);
        const int8_t *q8 = b[i].qs;
        const __m256i qh = loadu256(a[i].qh);
        const __m256i one = _mm256_set1_epi8(1);
        __m256i isum = _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            const __m256i q = loadu256(a[i].qs + 32 * c);
            const __m256i hlo = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * c), one);
            const __m256i hhi = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * c + 1), one);
            const __m256i lo = _mm256_or_si256(_mm256_and_si256(q, _mm256_set1_epi8(0x0f)),
                                               _mm256_slli_epi16(hlo, 4));
            const __m256i hi = _mm256_or_si256(
                _mm256_and_si256(_mm256_srli_epi16(q, 4), _mm256_set1_epi8(0x0f)),
                _mm256_slli_epi16(hhi, 4));
            const __m256i plo = _mm256_maddubs_epi16(lo, loadu256(q8 + 64 * c));
            const __m256i phi = _mm256_maddubs_epi16(hi, loadu256(q8 + 64 * c + 32));
            __m256i slo, shi;
            k4_scale_pair(sc16, c, &slo, &shi);
            isum = _mm256_add_epi32(isum, _mm256_madd_epi16(plo, slo));
            isum = _mm256_add_epi32(isum, _mm256_madd_epi16(phi, shi));
        }
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(b[i].d * h2f(a[i].d)), acc);
    }
    *s = hsum_ps(acc) - summ;
}

/* Q6_K: q in 0..63 (u8) x y, pair sums <= 2 * 63 * 127; the -32 offset is
 * applied once per block as 32 * sum(sc * bsums). */
static void vd_q6_k_avx2(size_t n, float *s, const void *w, const void *x)
{
    const struct blk_q6_k *a = w;
    const struct blk_q8_k *b = x;
    const __m256i m4 = _mm256_set1_epi8(0x0f), m30 = _mm256_set1_epi8(0x30);
    __m256 acc = _mm256_setzero_ps();
    for (size_t i = 0; i < n / QK_K; i++) {
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)a[i].scales));
        const int corr = 32 * bsum_dot(b[i].bsums, sc16);
        const int8_t *q8 = b[i].qs;
        __m256i isum = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const __m256i ql0 = loadu256(a[i].ql + 64 * h);
            const __m256i ql1 = loadu256(a[i].ql + 64 * h + 32);
            const __m256i qh = loadu256(a[i].qh + 32 * h);
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30));
            q[1] = _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_and_si256(qh, m30));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                   _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30));
            for (int p = 0; p < 4; p++) {
                const int g = 8 * h + 2 * p;
                const __m256i pr = _mm256_maddubs_epi16(q[p], loadu256(q8 + 16 * g));
                isum = _mm256_add_epi32(isum, _mm256_madd_epi16(pr, scale_pair(sc16, g)));
            }
        }
        isum = _mm256_sub_epi32(isum, _mm256_setr_epi32(corr, 0, 0, 0, 0, 0, 0, 0));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(h2f(a[i].d) * b[i].d), acc);
    }
    *s = hsum_ps(acc);
}

/* ---- activation converters ------------------------------------------------------ */

static inline float hmax_ps(__m256 v)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

/* roundf(): nearest, ties away from zero (v - trunc(v) is exact). */
static inline __m256i round_away(__m256 v)
{
    const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 frac = _mm256_andnot_ps(sign, _mm256_sub_ps(v, t));
    const __m256 up = _mm256_and_ps(_mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ),
                                    _mm256_or_ps(_mm256_and_ps(v, sign), _mm256_set1_ps(1.0f)));
    return _mm256_cvttps_epi32(_mm256_add_ps(t, up));
}

/* 4 x 8 s32 (each within -128..127) -> 32 s8 in order */
static inline __m256i pack_s8(__m256i a, __m256i b, __m256i c, __m256i d)
{
    const __m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
    const __m256i v = _mm256_packs_epi16(ab, cd);
    return _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* One Q8_0/Q8_1 block of 32 values: d = amax / 127, q = roundf(x / d). */
static inline float q8_block(const float *x, int8_t *qs, int *sum)
{
    __m256 v[4];
    __m256 amax = _mm256_setzero_ps();
    for (int k = 0; k < 4; k++) {
        v[k] = _mm256_loadu_ps(x + 8 * k);
        amax = _mm256_max_ps(amax, _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v[k]));
    }
    const float d = hmax_ps(amax) / 127.0f;
    const __m256 id = _mm256_set1_ps(d != 0.0f ? 1.0f / d : 0.0f);
    __m256i q[4];
    for (int k = 0; k < 4; k++)
        q[k] = round_away(_mm256_mul_ps(v[k], id));
    *sum = hsum_epi32(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
    _mm256_storeu_si256((__m256i *)qs, pack_s8(q[0], q[1], q[2], q[3]));
    return d;
}

static void quant_q8_0_avx2(const float *x, void *dst, size_t n)
{
    struct blk_q8_0 *b = dst;
    int sum;
    for (size_t i = 0; i < n / QK8_0; i++, x += QK8_0)
        b[i].d = dt_f32_to_fp16(q8_block(x, b[i].qs, &sum));
}

static void quant_q8_1_avx2(const float *x, void *dst, size_t n)
{
    struct blk_q8_1 *b = dst;
    int sum;
    for (size_t i = 0; i < n / QK8_1; i++, x += QK8_1) {
        const float d = q8_block(x, b[i].qs, &sum);
        b[i].d = dt_f32_to_fp16(d);
        b[i].s = dt_f32_to_fp16((float)sum * d);
    }
}

/* Q8_K: iscale = -127 / (the first value of largest magnitude),
 * q = min(127, rint(iscale * x)) (ties to even, the MXCSR default). */
static void quant_q8_k_avx2(const float *x, void *dst, size_t n)
{
    struct blk_q8_k *b = dst;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (size_t i = 0; i < n / QK_K; i++, x += QK_K) {
        __m256 am = _mm256_setzero_ps();
        for (int k = 0; k < QK_K; k += 8)
            am = _mm256_max_ps(am, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + k)));
        const float amax = hmax_ps(am);
        if (amax == 0.0f) {
            memset(&b[i], 0, sizeof b[i]);
            continue;
        }
        float max = 0.0f;
        const __m256 av = _mm256_set1_ps(amax);
        for (int k = 0; k < QK_K; k += 8) {
            const __m256 e = _mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + k)), av, _CMP_EQ_OQ);
            const int m = _mm256_movemask_ps(e);
            if (m) {
                max = x[k + __builtin_ctz((unsigned)m)];
                break;
            }
        }
        const float iscale = -127.0f / max;
        const __m256 is = _mm256_set1_ps(iscale);
        const __m256i lim = _mm256_set1_epi32(127);
        for (int k = 0; k < QK_K; k += 32) {
            __m256i q[4];
            for (int j = 0; j < 4; j++)
                q[j] = _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(is, _mm256_loadu_ps(x + k + 8 * j))), lim);
            b[i].bsums[k / 16] = (int16_t)hsum_epi32(_mm256_add_epi32(q[0], q[1]));
            b[i].bsums[k / 16 + 1] = (int16_t)hsum_epi32(_mm256_add_epi32(q[2], q[3]));
            _mm256_storeu_si256((__m256i *)(b[i].qs + k), pack_s8(q[0], q[1], q[2], q[3]));
        }
        b[i].d = 1.0f / iscale;
    }
}

/* BF16: round to nearest even on the dropped 16 bits, NaN kept quiet. */
static inline __m256i bf16_round(__m256 v)
{
    const __m256i u = _mm256_castps_si256(v);
    const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)),
                                           _mm256_set1_epi32(0x7f800000));
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    const __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)), lsb), 16);
    const __m256i q = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
    return _mm256_blendv_epi8(r, q, nan);
}

static void quant_bf16_avx2(const float *x, void *dst, size_t n)
{
    dt_bf16 *o = dst;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256i a = bf16_round(_mm256_loadu_ps(x + i));
        const __m256i b = bf16_round(_mm256_loadu_ps(x + i + 8));
        const __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(a, b), 0xd8);
        _mm256_storeu_si256((__m256i *)(o + i), p);
    }
    for (; i < n; i++)
        o[i] = dt_f32_to_bf16(x[i]);
}

/* ---- matrix tiles: Q4_0 and Q8_0 ----------------------------------------------------
 * As in vecdot_avx512vnni.c, the activations of a matrix product are laid out
 * once (act_from_float) for the tile kernels, whose inner loops then work on
 * the weights only. */

/* Q4_0: a unit is 2 weight blocks. x: [qs0 | qs1] -> lo / hi nibbles;
 * activation unit (128 bytes): ylo = [y0[0..15] | y1[0..15]], yhi likewise
 * for [16..31], c = -8 * sum(y_k) in lane 4k, dy = d(y_k) in lanes 4k..4k+3. */
struct q4a_unit {
    int8_t ylo[32];
    int8_t yhi[32];
    int32_t c[8];
    float dy[8];
};
static_assert(sizeof(struct q4a_unit) == 128, "q4_0 activation unit");

static size_t q4a_act_size(size_t n)
{
    return (n / QK4_0 + 1) / 2 * sizeof(struct q4a_unit);
}

static void q4a_act_from_float(const float *x, void *dst, size_t n)
{
    struct q4a_unit *u = dst;
    const size_t nb = n / QK4_0;
    for (size_t b0 = 0; b0 < nb; b0 += 2, u++) {
        struct blk_q8_0 q[2];
        const size_t nk = nb - b0 < 2 ? nb - b0 : 2;
        quant_q8_0_avx2(x + b0 * QK8_0, q, nk * QK8_0);
        memset(u, 0, sizeof *u);
        for (size_t k = 0; k < nk; k++) {
            memcpy(u->ylo + 16 * k, q[k].qs, 16);
            memcpy(u->yhi + 16 * k, q[k].qs + 16, 16);
            int sum = 0;
            for (int j = 0; j < QK8_0; j++)
                sum += q[k].qs[j];
            u->c[4 * k] = -8 * sum;
            for (size_t l = 4 * k; l < 4 * k + 4; l++)
                u->dy[l] = h2f(q[k].d);
        }
    }
}

/* [d0 x 4 | d1 x 4] as f32 from two fp16 bit patterns */
static inline __m256 d_pair(uint16_t d0, uint16_t d1)
{
    const __m128i v = _mm_cvtsi32_si128((int)((uint32_t)d0 | (uint32_t)d1 << 16));
    const __m128i idx = _mm_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3);
    return _mm256_cvtph_ps(_mm_shuffle_epi8(v, idx));
}

struct q4a_w {
    __m256i lo, hi;
    __m256 dx;
};

KERN_INLINE struct q4a_w q4a_load(const struct blk_q4_0 *b, bool two)
{
    const __m128i q0 = _mm_loadu_si128((const __m128i *)b[0].qs);
    const __m128i q1 = two ? _mm_loadu_si128((const __m128i *)b[1].qs) : _mm_setzero_si128();
    const __m256i q = _mm256_inserti128_si256(_mm256_castsi128_si256(q0), q1, 1);
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    struct q4a_w v;
    v.lo = _mm256_and_si256(q, m4);
    v.hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
    v.dx = d_pair(b[0].d, two ? b[1].d : 0);
    return v;
}

/* R rows x T tokens; pair sums of vpmaddubsw <= 2 * 15 * 127, two of them
 * added in s16 <= 7620. */
KERN_INLINE void q4a_tile(size_t n, int R, int T, const uint8_t *w, size_t ws, const uint8_t *x,
                          size_t xs, float *y, size_t ys)
{
    const size_t nb = n / QK4_0, nu = (nb + 1) / 2;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[4][4];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++)
            acc[r][t] = _mm256_setzero_ps();
    struct kern_pf pf;
    kern_pf_init(&pf, w);
    for (size_t u = 0; u < nu; u++) {
        const bool two = 2 * u + 1 < nb;
        if (T == 1)
            kern_pf_advance(&pf, (u + 1) * R * 36);
        struct q4a_w wv[4];
        for (int r = 0; r < R; r++)
            wv[r] = q4a_load((const struct blk_q4_0 *)(w + r * ws) + 2 * u, two);
        for (int t = 0; t < T; t++) {
            const struct q4a_unit *a = (const struct q4a_unit *)(x + t * xs) + u;
            const __m256i ylo = _mm256_load_si256((const __m256i *)a->ylo);
            const __m256i yhi = _mm256_load_si256((const __m256i *)a->yhi);
            const __m256i c = _mm256_load_si256((const __m256i *)a->c);
            const __m256 dy = _mm256_load_ps(a->dy);
            for (int r = 0; r < R; r++) {
                const __m256i p16 = _mm256_add_epi16(_mm256_maddubs_epi16(wv[r].lo, ylo),
                                                     _mm256_maddubs_epi16(wv[r].hi, yhi));
                const __m256i p = _mm256_add_epi32(_mm256_madd_epi16(p16, ones), c);
                acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_mul_ps(wv[r].dx, dy), acc[r][t]);
            }
        }
    }
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++)
            y[t * ys + r] = hsum_ps(acc[r][t]);
}

/* Q8_0: one block per step, |x| x sign(y, x) (x may be -128, y within
 * -127..127). Activation unit (64 bytes): y[32] and d(y) in 8 lanes. */
struct q8a_unit {
    int8_t y[32];
    float dy[8];
};
static_assert(sizeof(struct q8a_unit) == 64, "q8_0 activation unit");

static size_t q8a_act_size(size_t n)
{
    return n / QK8_0 * sizeof(struct q8a_unit);
}

static void q8a_act_from_float(const float *x, void *dst, size_t n)
{
    struct q8a_unit *u = dst;
    for (size_t i = 0; i < n / QK8_0; i++, u++) {
        struct blk_q8_0 q;
        quant_q8_0_avx2(x + i * QK8_0, &q, QK8_0);
        memcpy(u->y, q.qs, 32);
        for (int l = 0; l < 8; l++)
            u->dy[l] = h2f(q.d);
    }
}

KERN_INLINE void q8a_tile(size_t n, int R, int T, const uint8_t *w, size_t ws, const uint8_t *x,
                          size_t xs, float *y, size_t ys)
{
    const size_t nb = n / QK8_0;
    __m256 acc[4][4];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++)
            acc[r][t] = _mm256_setzero_ps();
    struct kern_pf pf;
    kern_pf_init(&pf, w);
    for (size_t i = 0; i < nb; i++) {
        if (T == 1)
            kern_pf_advance(&pf, (i + 1) * R * 34);
        __m256i q[4], aq[4];
        __m256 dx[4];
        for (int r = 0; r < R; r++) {
            const struct blk_q8_0 *b = (const struct blk_q8_0 *)(w + r * ws) + i;
            q[r] = loadu256(b->qs);
            aq[r] = _mm256_sign_epi8(q[r], q[r]);
            dx[r] = _mm256_cvtph_ps(_mm_set1_epi16((short)b->d));
        }
        for (int t = 0; t < T; t++) {
            const struct q8a_unit *a = (const struct q8a_unit *)(x + t * xs) + i;
            const __m256i yv = _mm256_load_si256((const __m256i *)a->y);
            const __m256 dy = _mm256_load_ps(a->dy);
            for (int r = 0; r < R; r++) {
                const __m256i p = dot_us8(aq[r], _mm256_sign_epi8(yv, q[r]));
                acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_mul_ps(dx[r], dy), acc[r][t]);
            }
        }
    }
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++)
            y[t * ys + r] = hsum_ps(acc[r][t]);
}

/* ---- prefill tiles for float weights -----------------------------------------------
 * R rows x T tokens, 16 columns per step; decode uses the vec_dot kernels.
 * Kind: 0 F32 x F32, 1 F16 x F32, 2 BF16 x BF16 (even/odd halves as in
 * vd_bf16_avx2). R <= 2, T <= 4; measured best: 1 row x 4 tokens (8
 * accumulators of the 16 ymm registers), 1.3-1.5x the vec_dot loop. */
KERN_INLINE void ftile_avx2(size_t n, int R, int T, int kind, const uint8_t *w, size_t ws,
                            const uint8_t *x, size_t xs, float *y, size_t ys)
{
    const __m256i hi16 = _mm256_set1_epi32((int)0xffff0000u);
    __m256 acc[2][4][2];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++)
            acc[r][t][0] = acc[r][t][1] = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 wv[2][2];
        for (int r = 0; r < R; r++) {
            const uint8_t *wr = w + r * ws;
            if (kind == 0) {
                wv[r][0] = _mm256_loadu_ps((const float *)wr + i);
                wv[r][1] = _mm256_loadu_ps((const float *)wr + i + 8);
            } else if (kind == 1) {
                wv[r][0] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const dt_fp16 *)wr + i)));
                wv[r][1] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const dt_fp16 *)wr + i + 8)));
            } else {
                const __m256i v = loadu256((const dt_bf16 *)wr + i);
                wv[r][0] = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
                wv[r][1] = _mm256_castsi256_ps(_mm256_and_si256(v, hi16));
            }
        }
        for (int t = 0; t < T; t++) {
            const uint8_t *xt = x + t * xs;
            __m256 x0, x1;
            if (kind == 2) {
                const __m256i v = loadu256((const dt_bf16 *)xt + i);
                x0 = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
                x1 = _mm256_castsi256_ps(_mm256_and_si256(v, hi16));
            } else {
                x0 = _mm256_loadu_ps((const float *)xt + i);
                x1 = _mm256_loadu_ps((const float *)xt + i + 8);
            }
            for (int r = 0; r < R; r++) {
                acc[r][t][0] = _mm256_fmadd_ps(wv[r][0], x0, acc[r][t][0]);
                acc[r][t][1] = _mm256_fmadd_ps(wv[r][1], x1, acc[r][t][1]);
            }
        }
    }
    for (int r = 0; r < R; r++) {
        for (int t = 0; t < T; t++) {
            float sum = hsum_ps(_mm256_add_ps(acc[r][t][0], acc[r][t][1]));
            const uint8_t *wr = w + r * ws, *xt = x + t * xs;
            for (size_t k = i; k < n; k++) { /* tail of n % 16 values */
                if (kind == 0)
                    sum += ((const float *)wr)[k] * ((const float *)xt)[k];
                else if (kind == 1)
                    sum += h2f(((const dt_fp16 *)wr)[k]) * ((const float *)xt)[k];
                else
                    sum += dt_bf16_to_f32(((const dt_bf16 *)wr)[k]) * dt_bf16_to_f32(((const dt_bf16 *)xt)[k]);
            }
            y[t * ys + r] = sum;
        }
    }
}

KERN_INLINE void f32_tile_avx2(size_t n, int R, int T, const uint8_t *w, size_t ws, const uint8_t *x,
                               size_t xs, float *y, size_t ys)
{
    ftile_avx2(n, R, T, 0, w, ws, x, xs, y, ys);
}

KERN_INLINE void f16_tile_avx2(size_t n, int R, int T, const uint8_t *w, size_t ws, const uint8_t *x,
                               size_t xs, float *y, size_t ys)
{
    ftile_avx2(n, R, T, 1, w, ws, x, xs, y, ys);
}

KERN_INLINE void bf16_tile_avx2(size_t n, int R, int T, const uint8_t *w, size_t ws, const uint8_t *x,
                                size_t xs, float *y, size_t ys)
{
    ftile_avx2(n, R, T, 2, w, ws, x, xs, y, ys);
}

TILE_DRIVER(tile_f32_avx2, f32_tile_avx2, vd_f32_avx2, 1, 1, 4)
TILE_DRIVER(tile_f16_avx2, f16_tile_avx2, vd_f16_avx2, 1, 1, 4)
TILE_DRIVER(tile_bf16_avx2, bf16_tile_avx2, vd_bf16_avx2, 1, 1, 4)
TILE_DRIVER(tile_q4_0_avx2, q4a_tile, vd_q4_0_avx2, 2, 1, 4)
TILE_DRIVER(tile_q8_0_avx2, q8a_tile, vd_q8_0_avx2, 2, 2, 4)

const struct kern_isa_ops kern_ops_avx2 = {
    .vec_dot = {
        [DT_F32] = vd_f32_avx2,
        [DT_F16] = vd_f16_avx2,
        [DT_BF16] = vd_bf16_avx2,
        [DT_Q4_0] = vd_q4_0_avx2,
        [DT_Q4_1] = vd_q4_1_avx2,
        [DT_Q5_0] = vd_q5_0_avx2,
        [DT_Q5_1] = vd_q5_1_avx2,
        [DT_Q8_0] = vd_q8_0_avx2,
        [DT_Q2_K] = vd_q2_k_avx2,
        [DT_Q3_K] = vd_q3_k_avx2,
        [DT_Q4_K] = vd_q4_k_avx2,
        [DT_Q5_K] = vd_q5_k_avx2,
        [DT_Q6_K] = vd_q6_k_avx2,
    },
    .quant = {
        [DT_Q8_0] = quant_q8_0_avx2,
        [DT_Q8_1] = quant_q8_1_avx2,
        [DT_Q8_K] = quant_q8_k_avx2,
        [DT_BF16] = quant_bf16_avx2,
    },
    .tile = {
        [DT_Q4_0] = { .fn = tile_q4_0_avx2, .act_size = q4a_act_size,
                      .act_from_float = q4a_act_from_float },
        [DT_Q8_0] = { .fn = tile_q8_0_avx2, .act_size = q8a_act_size,
                      .act_from_float = q8a_act_from_float },
        [DT_F32] = { .fn = tile_f32_avx2 },
        [DT_F16] = { .fn = tile_f16_avx2 },
        [DT_BF16] = { .fn = tile_bf16_avx2 },
    },
};
