/* vecdot_avx512vnni.c - AVX-512 VNNI + BF16 kernels: the shared zmm kernels
 * of vecdot_zmm.inc on vpdpbusd/vpdpwssd, a BF16 dot on vdpbf16ps, and the
 * matrix tile kernels that kern_matmul uses (Q4_0, Q8_0, Q4_K, Q6_K, BF16,
 * F16, F32 weights).
 *
 * Built with -mavx512f/bw/vl/dq -mavx512vnni -mavx512bf16; only reached
 * through vecdot.c after kern_isa_supported(KERN_ISA_AVX512VNNI).
 *
 * Q4_0 / Q8_0 matrix kernels: groups of 16 weight rows, one row per dword
 * lane (transposed in registers from the rows as they lie in memory: the
 * model is never repacked), against activations converted once per product
 * into units that mirror the weight bytes, interleaved over the tokens of a
 * pass. The weights of a unit are unpacked once for up to 16 tokens; each
 * (row, token) sums a block exactly in int32 and scales and adds it in f32
 * in block order, so results never depend on the batch. Details at the
 * "16-row groups" section.
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

/* ---- Q4_0 / Q8_0: 16-row groups -----------------------------------------------------------
 *
 * One weight row per dword lane. The rows of a group of 16 are read as they
 * lie in memory (64 bytes per row and load), transposed in registers so that
 * vector j holds dword j of every row, and multiplied by one activation dword
 * broadcast from memory (vpdpbusd with an embedded broadcast). A lane thus
 * sums exactly one (row, block) in int32, and the block is scaled and added in
 * f32, lane by lane:
 *     acc(r, t) = acc(r, t) + ((float)isum(r, t, b) * d_w(r, b)) * d_x(t, b)
 * over the blocks in order: the operations of the scalar reference in its
 * order, so a result is the same bits whatever the number of tokens or rows
 * that share a call. The transposed weights of a unit serve every token of
 * the pass (up to 16, one accumulator vector each): the shuffles cost once
 * per weight per 16 tokens, and with one token (decode) they still keep up
 * with memory.
 *
 * Activations are converted once per product into units that mirror the
 * weight bytes (the value bytes at the offsets of the weights they multiply,
 * zero under the fp16 scales), with the block's offset term (c) and scale
 * (dy). They are interleaved by unit in groups of 16 tokens (kern_impl.h):
 * the units of all the tokens of a pass are contiguous, one pointer away.
 */

/* 16 x 16 dwords: on return v[j] lane r = (v[r] on entry) dword j. */
KERN_INLINE void tr16x16(__m512i v[16])
{
    __m512i a[16], b[16];
    for (int r = 0; r < 16; r += 2) {
        a[r] = _mm512_unpacklo_epi32(v[r], v[r + 1]);
        a[r + 1] = _mm512_unpackhi_epi32(v[r], v[r + 1]);
    }
    /* b[4q + m], 128-bit lane L: rows 4q..4q+3 of dword 4L + m */
    for (int q = 0; q < 16; q += 4) {
        b[q] = _mm512_unpacklo_epi64(a[q], a[q + 2]);
        b[q + 1] = _mm512_unpackhi_epi64(a[q], a[q + 2]);
        b[q + 2] = _mm512_unpacklo_epi64(a[q + 1], a[q + 3]);
        b[q + 3] = _mm512_unpackhi_epi64(a[q + 1], a[q + 3]);
    }
    for (int m = 0; m < 4; m++) {
        const __m512i u0 = _mm512_shuffle_i32x4(b[m], b[4 + m], 0x88);
        const __m512i u1 = _mm512_shuffle_i32x4(b[m], b[4 + m], 0xdd);
        const __m512i u2 = _mm512_shuffle_i32x4(b[8 + m], b[12 + m], 0x88);
        const __m512i u3 = _mm512_shuffle_i32x4(b[8 + m], b[12 + m], 0xdd);
        v[m] = _mm512_shuffle_i32x4(u0, u2, 0x88);
        v[4 + m] = _mm512_shuffle_i32x4(u1, u3, 0x88);
        v[8 + m] = _mm512_shuffle_i32x4(u0, u2, 0xdd);
        v[12 + m] = _mm512_shuffle_i32x4(u1, u3, 0xdd);
    }
}

/* 16 rows x 4 dwords: z[a] holds rows a, a+4, a+8, a+12 in its 128-bit
 * lanes; on return z[m] lane r = dword m of row r. */
KERN_INLINE void tr16x4(__m512i z[4])
{
    const __m512i a0 = _mm512_unpacklo_epi32(z[0], z[1]), a1 = _mm512_unpackhi_epi32(z[0], z[1]);
    const __m512i a2 = _mm512_unpacklo_epi32(z[2], z[3]), a3 = _mm512_unpackhi_epi32(z[2], z[3]);
    z[0] = _mm512_unpacklo_epi64(a0, a2);
    z[1] = _mm512_unpackhi_epi64(a0, a2);
    z[2] = _mm512_unpacklo_epi64(a1, a3);
    z[3] = _mm512_unpackhi_epi64(a1, a3);
}

/* s + dpbusd(u, the dword at p broadcast), read by the instruction itself
 * (an embedded broadcast: no separate load and register). */
typedef int32_t __attribute__((may_alias, aligned(1))) kern_i32u;

KERN_INLINE __m512i dpbusd_bc(__m512i s, __m512i u, const int8_t *p)
{
    __asm__("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(s) : "v"(u), "m"(*(const kern_i32u *)p));
    return s;
}

/* fp16 in the low / high halves of the dwords -> f32 */
KERN_INLINE __m512 h16_lo(__m512i v)
{
    return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(v));
}

KERN_INLINE __m512 h16_hi(__m512i v)
{
    return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(v, 16)));
}

/* Weight prefetch. The rows of a group are read side by side, 16 streams that
 * neither the hardware prefetcher nor per-row software prefetches feed at
 * memory speed; the next group is one contiguous block, prefetched in address
 * order, a fraction of it after each fraction of the current group. A
 * prefetch never faults: running past the matrix is harmless. */
struct gpf {
    uintptr_t next;
    size_t per_step; /* lines per step: the same every step (no branch to mispredict) */
};

/* The group at w of 16 rows ws apart, consumed in steps. */
KERN_INLINE void gpf_init(struct gpf *p, const uint8_t *w, size_t ws, size_t steps)
{
    const uintptr_t base = (uintptr_t)w + 16 * ws;
    p->next = base & ~(uintptr_t)63;
    p->per_step = (16 * ws + 64 + 64 * steps - 1) / (64 * steps);
}

/* After a step of the current group. */
KERN_INLINE void gpf_step(struct gpf *p)
{
    for (size_t i = 0; i < p->per_step; i++) {
        _mm_prefetch((const char *)p->next, _MM_HINT_T0);
        p->next += 64;
    }
}

/* The first group of a call, which no earlier group prefetched: all of its
 * lines at once (they are read soon and in any order). */
static void gpf_first(const uint8_t *w, size_t ws, size_t nr)
{
    const uintptr_t end = (uintptr_t)w + (nr < 16 ? nr : 16) * ws;
    for (uintptr_t a = (uintptr_t)w & ~(uintptr_t)63; a < end; a += 64)
        _mm_prefetch((const char *)a, _MM_HINT_T0);
}

/* acc (lane r) += ((float)isum * dw) * dx */
KERN_INLINE __m512 g_scale_add(__m512 acc, __m512i isum, __m512 dw, const float *dx)
{
    return _mm512_add_ps(acc, _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(isum), dw),
                                            _mm512_set1_ps(*dx)));
}

/* Row addresses of a group. A full group (16 rows) is addressed from four
 * pointers and the stride (few registers); a short one (the matrix's last)
 * from a table, rows >= nr repeating row nr - 1 (computed, not stored) so
 * that nothing outside the matrix is read. tail: compile-time. */
struct grows {
    const uint8_t *b[4];
    size_t ws, ws3;
    size_t off[16];
};

KERN_INLINE void grows_init(struct grows *g, const uint8_t *w, size_t ws, size_t nr, bool tail)
{
    g->ws = ws;
    g->ws3 = 3 * ws;
    for (int l = 0; l < 4; l++)
        g->b[l] = w + (size_t)(4 * l) * ws;
    if (tail)
        for (size_t r = 0; r < 16; r++)
            g->off[r] = (r < nr ? r : nr - 1) * ws;
}

/* The strides, hidden from the optimizer once per unit: it would otherwise
 * keep one induction variable per row (16, spilled to the stack). */
KERN_INLINE void grows_opaque(struct grows *g)
{
    __asm__("" : "+r"(g->ws), "+r"(g->ws3));
}

/* Row r at byte offset o. */
KERN_INLINE const uint8_t *grow(const struct grows *g, int r, bool tail, size_t o)
{
    if (tail)
        return g->b[0] + g->off[r] + o;
    const uint8_t *b = g->b[r >> 2] + o;
    switch (r & 3) {
    case 0: return b;
    case 1: return b + g->ws;
    case 2: return b + 2 * g->ws;
    default: return b + g->ws3;
    }
}

KERN_INLINE void g_store(float *y, size_t ys, int T, size_t nr, const __m512 *acc)
{
    const __mmask16 rm = (__mmask16)((1u << nr) - 1);
    for (int t = 0; t < T; t++)
        _mm512_mask_storeu_ps(y + t * ys, rm, acc[t]);
}

/* Q4_0: a unit is 3 blocks (54 bytes, one 64-byte load per row):
 *   0-1 d0 | 2-17 qs0 | 18-19 d1 | 20-35 qs1 | 36-37 d2 | 38-53 qs2 | 54-63 next
 * transposed: block 0 in dwords 0-4 (scale: low half of dword 0), block 1 in
 * dwords 5-8 (scale: high half of dword 4), block 2 in 9-13 (low half of 9).
 * Activation unit: ylo = y_k[0..15] at the offsets of qs_k (low nibbles),
 * yhi = y_k[16..31] likewise, 0 elsewhere; c[k] = -8 * sum(y_k) (the offset
 * of the nibbles), dy[k] = d(y_k). */
#define Q4G_BLOCKS 3
struct q4g_unit {
    int8_t ylo[56];
    int8_t yhi[56];
    int32_t c[Q4G_BLOCKS];
    float dy[Q4G_BLOCKS];
};
static_assert(sizeof(struct q4g_unit) == 136, "q4_0 activation unit");

/* Sum of 32 int8 values (from the stored bytes: exact whatever the input). */
static inline int sum_i8x32(const int8_t *q)
{
    const __m512i v = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)q));
    return _mm512_reduce_add_epi32(_mm512_madd_epi16(v, _mm512_set1_epi16(1)));
}

static size_t q4g_act_size(size_t n)
{
    return (n / QK4_0 + Q4G_BLOCKS - 1) / Q4G_BLOCKS * sizeof(struct q4g_unit);
}

static void q4g_act_units(const float *x, void *dst, size_t n, size_t stride)
{
    uint8_t *d = dst;
    const size_t nb = n / QK4_0;
    for (size_t b0 = 0; b0 < nb; b0 += Q4G_BLOCKS, d += stride) {
        struct q4g_unit *u = (struct q4g_unit *)d;
        const size_t nk = nb - b0 < Q4G_BLOCKS ? nb - b0 : Q4G_BLOCKS;
        memset(u, 0, sizeof *u);
        for (size_t k = 0; k < nk; k++) {
            int8_t q[QK8_0];
            int sum;
            const float dy = q8_block_vnni(x + (b0 + k) * QK8_0, q, &sum);
            memcpy(u->ylo + 18 * k + 2, q, 16);
            memcpy(u->yhi + 18 * k + 2, q + 16, 16);
            u->c[k] = -8 * sum_i8x32(q);
            u->dy[k] = _cvtsh_ss(dt_f32_to_fp16(dy)); /* the fp16 d of the Q8_0 block */
        }
    }
}

/* Block k (dwords j0 .. j0 + nj - 1 of the transposed unit v) for T tokens,
 * whose units are sizeof(struct q4g_unit) apart from a. */
KERN_INLINE void q4g_block(int T, int k, int j0, int nj, const __m512i *v, __m512 dw,
                           const uint8_t *a, __m512 *acc)
{
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    __m512i lo[5], hi[5];
#pragma GCC unroll 8
    for (int j = 0; j < nj; j++) {
        lo[j] = _mm512_and_si512(v[j0 + j], m4);
        hi[j] = _mm512_and_si512(_mm512_srli_epi16(v[j0 + j], 4), m4);
    }
#pragma GCC unroll 16
    for (int t = 0; t < T; t++) {
        const struct q4g_unit *ut = (const struct q4g_unit *)a + t;
        __m512i s = _mm512_set1_epi32(ut->c[k]);
        if (T <= 2) { /* few tokens: two shorter chains */
            __m512i s2 = _mm512_setzero_si512();
#pragma GCC unroll 8
            for (int j = 0; j < nj; j++) {
                s = dpbusd_bc(s, lo[j], ut->ylo + 4 * (j0 + j));
                s2 = dpbusd_bc(s2, hi[j], ut->yhi + 4 * (j0 + j));
            }
            s = _mm512_add_epi32(s, s2);
        } else {
#pragma GCC unroll 8
            for (int j = 0; j < nj; j++)
                s = dpbusd_bc(s, lo[j], ut->ylo + 4 * (j0 + j));
#pragma GCC unroll 8
            for (int j = 0; j < nj; j++)
                s = dpbusd_bc(s, hi[j], ut->yhi + 4 * (j0 + j));
        }
        acc[t] = g_scale_add(acc[t], s, dw, &ut->dy[k]);
    }
}

/* 16 rows (nr of them real) x T tokens; x: the pass's interleaved units,
 * unit u of token t at x + u * xus + t * sizeof(struct q4g_unit). */
KERN_INLINE void q4g_tile(size_t n, int T, bool tail, size_t nr, const uint8_t *w, size_t ws,
                          const uint8_t *x, size_t xus, float *y, size_t ys)
{
    const size_t nb = n / QK4_0;
    const size_t nu = (nb + Q4G_BLOCKS - 1) / Q4G_BLOCKS;
    const size_t rem = nb - (nu - 1) * Q4G_BLOCKS;
    struct grows g;
    grows_init(&g, w, ws, nr, tail);
    __m512 acc[16];
    for (int t = 0; t < T; t++)
        acc[t] = _mm512_setzero_ps();
    struct gpf pf;
    gpf_init(&pf, w, ws, 3 * nu);
    for (size_t u = 0; u < nu; u++) {
        const bool full = u + 1 < nu;
        const __mmask64 mask = full ? ~(__mmask64)0 : (((__mmask64)1 << (18 * rem)) - 1);
        __m512i v[16];
        grows_opaque(&g);
        for (int r = 0; r < 16; r++) {
            const uint8_t *p = grow(&g, r, tail, u * 54);
            v[r] = full ? _mm512_loadu_si512(p) : _mm512_maskz_loadu_epi8(mask, p);
        }
        tr16x16(v);
        const uint8_t *a = x + u * xus;
        const int nk = full ? Q4G_BLOCKS : (int)rem;
        gpf_step(&pf);
        q4g_block(T, 0, 0, 5, v, h16_lo(v[0]), a, acc);
        gpf_step(&pf);
        if (nk > 1)
            q4g_block(T, 1, 5, 4, v, h16_hi(v[4]), a, acc);
        gpf_step(&pf);
        if (nk > 2)
            q4g_block(T, 2, 9, 5, v, h16_lo(v[9]), a, acc);
    }
    g_store(y, ys, T, nr, acc);
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

/* Groups of 16 rows x passes of up to KERN_XG tokens, the units of a pass
 * interleaved (kern_impl.h); xs: bytes of one token's units. A pass runs
 * its tokens in parts of 16, 8, 4, 2 and 1 (fewer kernel shapes to compile;
 * results do not depend on the split). A short last group of rows runs its
 * tokens one at a time. */
#define GROUP_DRIVER(name, body, unit)                                                             \
    static void name(size_t n, size_t nr, size_t nt, const void *w, size_t ws, const void *x,     \
                     size_t xs, float *y, size_t ys)                                              \
    {                                                                                              \
        const uint8_t *wb = w, *xb = x;                                                            \
        gpf_first(wb, ws, nr);                                                                     \
        for (size_t r = 0; r < nr; r += 16) {                                                      \
            const size_t rn = nr - r < 16 ? nr - r : 16;                                           \
            const uint8_t *wr = wb + r * ws;                                                       \
            for (size_t t = 0; t < nt; t += KERN_XG) {                                             \
                const size_t tn = nt - t < KERN_XG ? nt - t : KERN_XG;                             \
                const uint8_t *xt = xb + t * xs;                                                   \
                const size_t xus = tn * (unit); /* bytes from a unit to the next */                \
                float *yt = y + t * ys + r;                                                        \
                for (size_t i = 0; i < tn;) {                                                      \
                    const size_t left = tn - i;                                                    \
                    const uint8_t *xi = xt + i * (unit);                                           \
                    float *yi = yt + i * ys;                                                       \
                    if (rn < 16) {                                                                 \
                        body(n, 1, true, rn, wr, ws, xi, xus, yi, ys);                             \
                        i += 1;                                                                    \
                    } else if (left >= 16) {                                                       \
                        body(n, 16, false, 16, wr, ws, xi, xus, yi, ys);                           \
                        i += 16;                                                                   \
                    } else if (left >= 8) {                                                        \
                        body(n, 8, false, 16, wr, ws, xi, xus, yi, ys);                            \
                        i += 8;                                                                    \
                    } else if (left >= 4) {                                                        \
                        body(n, 4, false, 16, wr, ws, xi, xus, yi, ys);                            \
                        i += 4;                                                                    \
                    } else if (left >= 2) {                                                        \
                        body(n, 2, false, 16, wr, ws, xi, xus, yi, ys);                            \
                        i += 2;                                                                    \
                    } else {                                                                       \
                        body(n, 1, false, 16, wr, ws, xi, xus, yi, ys);                            \
                        i += 1;                                                                    \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

static_assert(KERN_XG == 16, "the group drivers expect passes of 16 tokens");
GROUP_DRIVER(tile_q4_0_g, q4g_tile, sizeof(struct q4g_unit))

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

/* Q8_0: one row at a time for decode, a single prefetched stream; 2 rows x
 * 8 tokens per call for prefill. */
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
        [DT_Q4_0] = { .fn = tile_q4_0_g, .act_size = q4g_act_size,
                       .act_unit = sizeof(struct q4g_unit), .act_units = q4g_act_units },
        [DT_Q8_0] = { .fn = tile_q8_0_vnni, .act_size = q8p_act_size,
                      .act_from_float = q8p_act_from_float },
        [DT_F32] = { .fn = tile_f32_vnni },
        [DT_F16] = { .fn = tile_f16_vnni },
        [DT_BF16] = { .fn = tile_bf16_vnni },
        [DT_Q4_K] = { .fn = tile_q4_k_vnni },
        [DT_Q6_K] = { .fn = tile_q6_k_vnni },
    },
};
