/* vecdot_avx512vnni.c - AVX-512 VNNI + BF16 kernels: the shared zmm kernels
 * of vecdot_zmm.inc on vpdpbusd/vpdpwssd, a BF16 dot on vdpbf16ps, and the
 * matrix tile kernels that kern_matmul uses (Q4_0, Q8_0, Q4_K, Q6_K, BF16,
 * F16, F32 weights).
 *
 * Built with -mavx512f/bw/vl/dq -mavx512vnni -mavx512bf16; only reached
 * through vecdot.c after kern_isa_supported(KERN_ISA_AVX512VNNI).
 *
 * Q4_0 / Q8_0 tiles. A weight row is read as it lies in memory (no repacking
 * of the model): one 64-byte load covers 3 Q4_0 blocks (54 bytes), or the
 * scales of 2 Q8_0 blocks. Everything the activations need is prepared once
 * per matrix product in a private layout (act_from_float) so that the inner
 * loop spends its instructions on the weights: for Q4_0 the activation bytes
 * sit at the same offsets as the nibbles they multiply (zero under the fp16
 * scales), the -8 offset is folded in as -8 * sum(y) per block, and the
 * activation scales are already spread over the lanes of their block.
 * The other tiles read plain activation rows and serve prefill (several
 * tokens per weight load); their decode path is the vec_dot kernel.
 */
#include "kern_impl.h"

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define ZFN(name) name##_vnni

static inline __m512i zdpbusd(__m512i acc, __m512i u, __m512i s)
{
    return _mm512_dpbusd_epi32(acc, u, s);
}

static inline __m512i zdpwssd(__m512i acc, __m512i a, __m512i b)
{
    return _mm512_dpwssd_epi32(acc, a, b);
}

#include "vecdot_zmm.inc"

/* w (n,) bf16 . x (n,) bf16 with vdpbf16ps (pairs of products, exact, then
 * added in f32; denormal inputs count as zero). */
static void vd_bf16_vnni(size_t n, float *s, const void *w, const void *x)
{
    const dt_bf16 *a = w, *b = x;
    __m512 acc[4] = { _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                      _mm512_setzero_ps() };
    size_t i = 0;
    for (; i + 128 <= n; i += 128) {
        for (int k = 0; k < 4; k++) {
            const __m512i wv = _mm512_loadu_si512(a + i + 32 * k);
            const __m512i xv = _mm512_loadu_si512(b + i + 32 * k);
            acc[k] = _mm512_dpbf16_ps(acc[k], (__m512bh)wv, (__m512bh)xv);
        }
    }
    for (; i < n; i += 32) {
        const __mmask32 m = n - i >= 32 ? (__mmask32)0xffffffffu : (__mmask32)((1u << (n - i)) - 1);
        const __m512i wv = _mm512_maskz_loadu_epi16(m, a + i), xv = _mm512_maskz_loadu_epi16(m, b + i);
        acc[0] = _mm512_dpbf16_ps(acc[0], (__m512bh)wv, (__m512bh)xv);
    }
    *s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
}

/* ---- Q4_0 tiles ---------------------------------------------------------------------------
 *
 * A unit is 3 weight blocks (54 bytes, one 64-byte load R). Bytes of R:
 *   0-1 d0 | 2-17 qs0 | 18-19 d1 | 20-35 qs1 | 36-37 d2 | 38-53 qs2 | 54-63 next
 * dpbusd lanes (4 bytes each): block 0 -> lanes 0-4, 1 -> 5-8, 2 -> 9-13.
 * The matching activation unit (256 bytes):
 *   ylo[64]: y_k[0..15] at the offsets of qs_k, 0 elsewhere (low nibbles);
 *   yhi[64]: y_k[16..31] likewise (high nibbles);
 *   c[16]:   -8 * sum(y_k) in the first lane of block k;
 *   dy[16]:  d(y_k) in every lane of block k, 0 in lanes 14-15.
 */
struct q4p_unit {
    int8_t ylo[64];
    int8_t yhi[64];
    int32_t c[16];
    float dy[16];
};
static_assert(sizeof(struct q4p_unit) == 256, "q4_0 activation unit");

#define Q4P_BLOCKS 3
static const int q4p_lane0[Q4P_BLOCKS] = { 0, 5, 9 };
static const int q4p_lane_end[Q4P_BLOCKS] = { 5, 9, 14 };

static size_t q4p_act_size(size_t n)
{
    return (n / QK4_0 + Q4P_BLOCKS - 1) / Q4P_BLOCKS * sizeof(struct q4p_unit);
}

static void q4p_act_from_float(const float *x, void *dst, size_t n)
{
    struct q4p_unit *u = dst;
    const size_t nb = n / QK4_0;
    for (size_t b0 = 0; b0 < nb; b0 += Q4P_BLOCKS, u++) {
        struct blk_q8_0 q[Q4P_BLOCKS];
        const size_t nk = nb - b0 < Q4P_BLOCKS ? nb - b0 : Q4P_BLOCKS;
        quant_q8_0_vnni(x + b0 * QK8_0, q, nk * QK8_0);
        memset(u, 0, sizeof *u);
        for (size_t k = 0; k < nk; k++) {
            memcpy(u->ylo + 18 * k + 2, q[k].qs, 16);
            memcpy(u->yhi + 18 * k + 2, q[k].qs + 16, 16);
            int sum = 0;
            for (int j = 0; j < QK8_0; j++)
                sum += q[k].qs[j];
            u->c[q4p_lane0[k]] = -8 * sum;
            const float dy = _cvtsh_ss(q[k].d);
            for (int l = q4p_lane0[k]; l < q4p_lane_end[k]; l++)
                u->dy[l] = dy;
        }
    }
}

/* Weight side of one unit: nibbles and the per-lane f32 scales. */
struct q4p_w {
    __m512i lo, hi;
    __m512 dx;
};

KERN_INLINE struct q4p_w q4p_load(const uint8_t *p, __mmask64 mask, bool full)
{
    static const int16_t idx[32] = { 0, 0, 0, 0, 0, 9, 9, 9, 9, 18, 18, 18, 18, 18, 0, 0 };
    const __m512i didx = _mm512_loadu_si512(idx);
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    const __m512i r = full ? _mm512_loadu_si512(p) : _mm512_maskz_loadu_epi8(mask, p);
    struct q4p_w v;
    v.lo = _mm512_and_si512(r, m4);
    v.hi = _mm512_and_si512(_mm512_srli_epi16(r, 4), m4);
    v.dx = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(didx, r)));
    return v;
}

/* R rows x T tokens over all units; R, T compile-time constants. */
KERN_INLINE void q4p_tile(size_t n, int R, int T, const uint8_t *w, size_t ws, const uint8_t *x,
                          size_t xs, float *y, size_t ys)
{
    const size_t nb = n / QK4_0;
    __m512 acc[4][8];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++)
            acc[r][t] = _mm512_setzero_ps();
    const size_t nu = (nb + Q4P_BLOCKS - 1) / Q4P_BLOCKS;
    const size_t rem = nb - (nu - 1) * Q4P_BLOCKS; /* blocks in the last unit */
    struct kern_pf pf;
    kern_pf_init(&pf, w);
    for (size_t u = 0; u < nu; u++) {
        const bool full = u + 1 < nu;
        const __mmask64 mask = full ? ~(__mmask64)0 : (((__mmask64)1 << (18 * rem)) - 1);
        if (T == 1)
            kern_pf_advance(&pf, (u + 1) * R * 54);
        struct q4p_w wv[4];
        for (int r = 0; r < R; r++)
            wv[r] = q4p_load(w + r * ws + u * 54, mask, full);
        for (int t = 0; t < T; t++) {
            const struct q4p_unit *a = (const struct q4p_unit *)(x + t * xs) + u;
            const __m512i ylo = _mm512_load_si512(a->ylo), yhi = _mm512_load_si512(a->yhi);
            const __m512i c = _mm512_load_si512(a->c);
            const __m512 dy = _mm512_load_ps(a->dy);
            for (int r = 0; r < R; r++) {
                __m512i p = _mm512_dpbusd_epi32(c, wv[r].lo, ylo);
                p = _mm512_dpbusd_epi32(p, wv[r].hi, yhi);
                acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(wv[r].dx, dy), acc[r][t]);
            }
        }
    }
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++)
            y[t * ys + r] = _mm512_reduce_add_ps(acc[r][t]);
}

/* ---- Q8_0 tiles ----------------------------------------------------------------------------
 *
 * A unit is 2 weight blocks (68 bytes): qs as [qs0 | qs1], shifted to u8 by
 * x ^ 0x80 = x + 128, the scales from one load at the unit start (d0 word 0,
 * d1 word 17). Activation unit (192 bytes): y[64] = [y0 | y1];
 * c[16] = -128 * sum(y_k) in lane 8k; dy[16] = d(y_k) in lanes 8k..8k+7.
 */
struct q8p_unit {
    int8_t y[64];
    int32_t c[16];
    float dy[16];
};
static_assert(sizeof(struct q8p_unit) == 192, "q8_0 activation unit");

static size_t q8p_act_size(size_t n)
{
    return (n / QK8_0 + 1) / 2 * sizeof(struct q8p_unit);
}

static void q8p_act_from_float(const float *x, void *dst, size_t n)
{
    struct q8p_unit *u = dst;
    const size_t nb = n / QK8_0;
    for (size_t b0 = 0; b0 < nb; b0 += 2, u++) {
        struct blk_q8_0 q[2];
        const size_t nk = nb - b0 < 2 ? nb - b0 : 2;
        quant_q8_0_vnni(x + b0 * QK8_0, q, nk * QK8_0);
        memset(u, 0, sizeof *u);
        for (size_t k = 0; k < nk; k++) {
            memcpy(u->y + 32 * k, q[k].qs, 32);
            int sum = 0;
            for (int j = 0; j < QK8_0; j++)
                sum += q[k].qs[j];
            u->c[8 * k] = -128 * sum;
            const float dy = _cvtsh_ss(q[k].d);
            for (size_t l = 8 * k; l < 8 * k + 8; l++)
                u->dy[l] = dy;
        }
    }
}

struct q8p_w {
    __m512i q;
    __m512 dx;
};

KERN_INLINE struct q8p_w q8p_load(const uint8_t *p, bool two)
{
    static const int16_t idx[32] = { 0, 0, 0, 0, 0, 0, 0, 0, 17, 17, 17, 17, 17, 17, 17, 17 };
    const __m512i didx = _mm512_loadu_si512(idx);
    struct q8p_w v;
    __m512i q, r;
    if (two) {
        q = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(p + 2))),
                               _mm256_loadu_si256((const __m256i *)(p + 36)), 1);
        r = _mm512_loadu_si512(p);
    } else { /* a lone last block: the rest reads as zero */
        q = _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *)(p + 2)));
        r = _mm512_maskz_loadu_epi8(((__mmask64)1 << 34) - 1, p);
    }
    v.q = _mm512_xor_si512(q, _mm512_set1_epi8((char)0x80));
    v.dx = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(didx, r)));
    return v;
}

KERN_INLINE void q8p_tile(size_t n, int R, int T, const uint8_t *w, size_t ws, const uint8_t *x,
                          size_t xs, float *y, size_t ys)
{
    const size_t nb = n / QK8_0;
    __m512 acc[4][8];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++)
            acc[r][t] = _mm512_setzero_ps();
    const size_t nu = (nb + 1) / 2;
    struct kern_pf pf;
    kern_pf_init(&pf, w);
    for (size_t u = 0; u < nu; u++) {
        const bool two = 2 * u + 1 < nb;
        if (T == 1)
            kern_pf_advance(&pf, (u + 1) * R * 68);
        struct q8p_w wv[4];
        for (int r = 0; r < R; r++)
            wv[r] = q8p_load(w + r * ws + u * 68, two);
        for (int t = 0; t < T; t++) {
            const struct q8p_unit *a = (const struct q8p_unit *)(x + t * xs) + u;
            const __m512i yv = _mm512_load_si512(a->y), c = _mm512_load_si512(a->c);
            const __m512 dy = _mm512_load_ps(a->dy);
            for (int r = 0; r < R; r++) {
                const __m512i p = _mm512_dpbusd_epi32(c, wv[r].q, yv);
                acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(wv[r].dx, dy), acc[r][t]);
            }
        }
    }
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++)
            y[t * ys + r] = _mm512_reduce_add_ps(acc[r][t]);
}

/* ---- prefill tiles for float and k-quant weights --------------------------------------------
 * R rows x T tokens per call on plain activation rows: each weight vector is
 * loaded (and for k-quants unpacked) once and used for T tokens. One token
 * (decode) goes to the type's vec_dot kernel instead, which streams rows at
 * memory bandwidth. */

static inline __mmask16 mask16(size_t left)
{
    return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
}

/* F32 / F16 weights x F32 activations, 16 columns per step. */
KERN_INLINE void ftile(size_t n, int R, int T, bool f16, const uint8_t *w, size_t ws,
                       const uint8_t *x, size_t xs, float *y, size_t ys)
{
    __m512 acc[4][8];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++)
            acc[r][t] = _mm512_setzero_ps();
    for (size_t i = 0; i < n; i += 16) {
        const __mmask16 m = mask16(n - i);
        __m512 wv[4];
        for (int r = 0; r < R; r++) {
            if (f16)
                wv[r] = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const dt_fp16 *)(w + r * ws) + i));
            else
                wv[r] = _mm512_maskz_loadu_ps(m, (const float *)(w + r * ws) + i);
        }
        for (int t = 0; t < T; t++) {
            const __m512 xv = _mm512_maskz_loadu_ps(m, (const float *)(x + t * xs) + i);
            for (int r = 0; r < R; r++)
                acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++)
            y[t * ys + r] = _mm512_reduce_add_ps(acc[r][t]);
}

KERN_INLINE void f32_tile(size_t n, int R, int T, const uint8_t *w, size_t ws, const uint8_t *x,
                          size_t xs, float *y, size_t ys)
{
    ftile(n, R, T, false, w, ws, x, xs, y, ys);
}

KERN_INLINE void f16_tile(size_t n, int R, int T, const uint8_t *w, size_t ws, const uint8_t *x,
                          size_t xs, float *y, size_t ys)
{
    ftile(n, R, T, true, w, ws, x, xs, y, ys);
}

/* BF16 x BF16, 32 columns per vdpbf16ps. */
KERN_INLINE void bf16_tile(size_t n, int R, int T, const uint8_t *w, size_t ws, const uint8_t *x,
                           size_t xs, float *y, size_t ys)
{
    __m512 acc[4][8];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++)
            acc[r][t] = _mm512_setzero_ps();
    for (size_t i = 0; i < n; i += 32) {
        const __mmask32 m = n - i >= 32 ? (__mmask32)0xffffffffu : (__mmask32)((1u << (n - i)) - 1);
        __m512i wv[4];
        for (int r = 0; r < R; r++)
            wv[r] = _mm512_maskz_loadu_epi16(m, (const dt_bf16 *)(w + r * ws) + i);
        for (int t = 0; t < T; t++) {
            const __m512i xv = _mm512_maskz_loadu_epi16(m, (const dt_bf16 *)(x + t * xs) + i);
            for (int r = 0; r < R; r++)
                acc[r][t] = _mm512_dpbf16_ps(acc[r][t], (__m512bh)wv[r], (__m512bh)xv);
        }
    }
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++)
            y[t * ys + r] = _mm512_reduce_add_ps(acc[r][t]);
}

static inline float hsum256_ps(__m256 v)
{
    __m128 m = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_add_ps(m, _mm_movehl_ps(m, m));
    m = _mm_add_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

/* Q4_K x Q8_K, one row x T tokens: the nibbles and scale vectors of a
 * super-block are unpacked once (as in vd_q4_k) and used for every token. */
KERN_INLINE void q4k_tile(size_t n, int R, int T, const uint8_t *w, size_t ws, const uint8_t *x,
                          size_t xs, float *y, size_t ys)
{
    (void)R; /* one row */
    (void)ws;
    const struct blk_q4_k *a = (const struct blk_q4_k *)w;
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    __m512 acc[4];
    __m256 accm[4];
    for (int t = 0; t < T; t++) {
        acc[t] = _mm512_setzero_ps();
        accm[t] = _mm256_setzero_ps();
    }
    for (size_t i = 0; i < n / QK_K; i++) {
        const __m128i scm = k4_scales_mins(a[i].scales);
        uint32_t dbits;
        memcpy(&dbits, &a[i].d, sizeof dbits);
        const __m128 dd = _mm_cvtph_ps(_mm_cvtsi32_si128((int)dbits));
        const __m256i mins = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(scm, scm));
        const __m512i sc16 = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(scm));
        __m512i v[4], sv[4];
        for (int c = 0; c < 4; c++) {
            v[c] = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(a[i].qs + 32 * c)));
            v[c] = _mm512_and_si512(_mm512_mask_srli_epi16(v[c], (__mmask32)0xffff0000u, v[c], 4), m4);
            sv[c] = _mm512_permutexvar_epi16(k4_idx_vnni(c), sc16);
        }
        for (int t = 0; t < T; t++) {
            const struct blk_q8_k *b = (const struct blk_q8_k *)(x + t * xs) + i;
            const __m128 ddy = _mm_mul_ps(dd, _mm_set1_ps(b->d));
            __m512i isum[2] = { _mm512_setzero_si512(), _mm512_setzero_si512() };
            for (int c = 0; c < 4; c++) {
                const __m512i p = _mm512_maddubs_epi16(v[c], _mm512_loadu_si512(b->qs + 64 * c));
                isum[c & 1] = _mm512_dpwssd_epi32(isum[c & 1], p, sv[c]);
            }
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(isum[0], isum[1])),
                                     _mm512_broadcastss_ps(ddy), acc[t]);
            const __m256i mp = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)b->bsums), mins);
            accm[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mp), _mm256_broadcastss_ps(_mm_movehdup_ps(ddy)),
                                      accm[t]);
        }
    }
    for (int t = 0; t < T; t++)
        y[t * ys] = _mm512_reduce_add_ps(acc[t]) - hsum256_ps(accm[t]);
}

/* Q6_K x Q8_K, one row x T tokens (unpacking as in vd_q6_k). */
KERN_INLINE void q6k_tile(size_t n, int R, int T, const uint8_t *w, size_t ws, const uint8_t *x,
                          size_t xs, float *y, size_t ys)
{
    (void)R;
    (void)ws;
    const struct blk_q6_k *a = (const struct blk_q6_k *)w;
    const __m512i m4 = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
    const __m512i sl01 = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
    const __m512i sr23 = _mm512_inserti64x4(_mm512_set1_epi16(0), _mm256_set1_epi16(2), 1);
    __m512 acc[4];
    for (int t = 0; t < T; t++)
        acc[t] = _mm512_setzero_ps();
    for (size_t i = 0; i < n / QK_K; i++) {
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)a[i].scales));
        const __m512i scz = _mm512_castsi256_si512(sc16);
        const float d = _cvtsh_ss(a[i].d);
        __m512i q[4], sv[4];
        for (int h = 0; h < 2; h++) {
            const __m512i ql = _mm512_loadu_si512(a[i].ql + 64 * h);
            const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(a[i].qh + 32 * h)));
            q[2 * h] = _mm512_or_si512(_mm512_and_si512(ql, m4),
                                       _mm512_and_si512(_mm512_sllv_epi16(qh, sl01), m30));
            q[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                                           _mm512_and_si512(_mm512_srlv_epi16(qh, sr23), m30));
            sv[2 * h] = _mm512_permutexvar_epi16(k6_idx_vnni(8 * h), scz);
            sv[2 * h + 1] = _mm512_permutexvar_epi16(k6_idx_vnni(8 * h + 4), scz);
        }
        for (int t = 0; t < T; t++) {
            const struct blk_q8_k *b = (const struct blk_q8_k *)(x + t * xs) + i;
            const __m256i cp = _mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)b->bsums));
            __m512i isum[2] = { _mm512_sub_epi32(_mm512_setzero_si512(),
                                                 _mm512_slli_epi32(_mm512_zextsi256_si512(cp), 5)),
                                _mm512_setzero_si512() };
            for (int k = 0; k < 4; k++) {
                const __m512i p = _mm512_maddubs_epi16(q[k], _mm512_loadu_si512(b->qs + 64 * k));
                isum[k & 1] = _mm512_dpwssd_epi32(isum[k & 1], p, sv[k]);
            }
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(isum[0], isum[1])),
                                     _mm512_set1_ps(d * b->d), acc[t]);
        }
    }
    for (int t = 0; t < T; t++)
        y[t * ys] = _mm512_reduce_add_ps(acc[t]);
}

/* Shapes measured on Zen 5 (GMAC/s per core at 64 tokens in brackets). */
TILE_DRIVER(tile_f32_vnni, f32_tile, vd_f32_vnni, 1, 4, 4)   /* [88] */
TILE_DRIVER(tile_f16_vnni, f16_tile, vd_f16_vnni, 1, 2, 8)   /* [100] */
TILE_DRIVER(tile_bf16_vnni, bf16_tile, vd_bf16_vnni, 1, 2, 8) /* [194] */
TILE_DRIVER(tile_q4_k_vnni, q4k_tile, vd_q4_k_vnni, 0, 1, 4) /* [131] */
TILE_DRIVER(tile_q6_k_vnni, q6k_tile, vd_q6_k_vnni, 0, 1, 4) /* [137] */

/* Decode: one row at a time, a single prefetched stream, measured best from
 * DRAM (Q4_0 x 4 rows runs faster from cache but streams worse when rows are
 * long). The vec_dot argument is unused for these (RDEC > 0). */
TILE_DRIVER(tile_q4_0_vnni, q4p_tile, vd_q4_0_vnni, 1, 2, 8) /* [157] */
TILE_DRIVER(tile_q8_0_vnni, q8p_tile, vd_q8_0_vnni, 1, 2, 8) /* [117] */

const struct kern_isa_ops kern_ops_avx512vnni = {
    .vec_dot = {
        [DT_F32] = vd_f32_vnni,
        [DT_F16] = vd_f16_vnni,
        [DT_BF16] = vd_bf16_vnni,
        [DT_Q4_0] = vd_q4_0_vnni,
        [DT_Q8_0] = vd_q8_0_vnni,
        [DT_Q4_K] = vd_q4_k_vnni,
        [DT_Q6_K] = vd_q6_k_vnni,
    },
    .quant = {
        [DT_Q8_0] = quant_q8_0_vnni,
        [DT_Q8_1] = quant_q8_1_vnni,
        [DT_Q8_K] = quant_q8_k_vnni,
        [DT_BF16] = quant_bf16_vnni,
    },
    .tile = {
        [DT_Q4_0] = { tile_q4_0_vnni, q4p_act_size, q4p_act_from_float },
        [DT_Q8_0] = { tile_q8_0_vnni, q8p_act_size, q8p_act_from_float },
        [DT_F32] = { tile_f32_vnni, NULL, NULL },
        [DT_F16] = { tile_f16_vnni, NULL, NULL },
        [DT_BF16] = { tile_bf16_vnni, NULL, NULL },
        [DT_Q4_K] = { tile_q4_k_vnni, NULL, NULL },
        [DT_Q6_K] = { tile_q6_k_vnni, NULL, NULL },
    },
};
