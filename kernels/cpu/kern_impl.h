/* kern_impl.h - private interface between the kernel dispatcher (vecdot.c,
 * kern.c) and the per-ISA kernel files (vecdot_avx2.c, vecdot_avx512.c,
 * vecdot_avx512vnni.c). Not part of the public kernel API (kern.h).
 *
 * Each ISA file defines one const table of its kernels; an entry left NULL
 * means "no kernel of this ISA", and the dispatcher falls back to the next
 * lower ISA, down to the scalar references in vecdot.c. The helpers at the
 * end (prefetch stream, tile drivers) are shared by the ISA files.
 */
#ifndef INFERD_KERN_IMPL_H
#define INFERD_KERN_IMPL_H

#include "kern.h"

#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <immintrin.h>
#endif

/* Convert n floats (a multiple of the format's block size) to an activation
 * format. Every version must produce the same bytes as the scalar reference
 * (dt_get(act)->from_float). */
typedef void (*kern_quant_fn)(const float *x, void *dst, size_t n);

/* A tile of a matrix product:
 *   y[t * ys + r] = dot(W row r, X row t),  r < nr, t < nt
 * W: nr rows of n values, consecutive rows ws bytes apart;
 * X: nt activation rows, xs bytes apart, in the vec_dot_type or the tile's
 *    own layout (struct kern_tile_ops);
 * y: nt rows of floats, ys floats apart.
 * Results equal the scalar reference dot products up to float rounding of
 * the accumulation order (block integer sums are exact). */
typedef void (*kern_tile_fn)(size_t n, size_t nr, size_t nt, const void *w, size_t ws,
                             const void *x, size_t xs, float *y, size_t ys);

/* A tile kernel and the activation layout it reads. When act_size is NULL
 * it reads plain rows of the vec_dot_type; otherwise rows of act_size(n)
 * bytes in a private layout built from the same quantized values as the
 * plain format, written either
 *   - by act_from_float(x, dst, n), one token's row at a time (act_unit 0); or
 *   - interleaved (act_unit > 0): a row is a sequence of units of act_unit
 *     bytes, and the tokens are taken in groups of KERN_XG (the last group
 *     may be short, m tokens): in a group starting at token g, unit u of
 *     token g + i lies at base_g + (u * m + i) * act_unit, where base_g is
 *     where token g's row would start (so the buffer is as large as for
 *     plain rows). act_units(x, dst, n, stride) writes one token's units,
 *     stride bytes apart. The tile kernel is then always called for tokens
 *     starting at a group boundary, with xs = act_size(n); one token alone
 *     (m = 1) has plain contiguous rows.
 */
#define KERN_XG 16

struct kern_tile_ops {
    kern_tile_fn fn;
    size_t (*act_size)(size_t n);
    void (*act_from_float)(const float *x, void *dst, size_t n);
    size_t act_unit;
    void (*act_units)(const float *x, void *dst, size_t n, size_t stride);
};

struct kern_isa_ops {
    kern_vec_dot_fn vec_dot[DT_COUNT];  /* indexed by the weight type */
    kern_quant_fn quant[DT_COUNT];      /* indexed by the activation type */
    struct kern_tile_ops tile[DT_COUNT]; /* indexed by the weight type */
};

#ifdef __SSE2__
/* The 8 six-bit scales (bytes 0-7) and 8 mins (bytes 8-15) of a Q4_K/Q5_K
 * super-block, unpacked from its 12 scale bytes in general registers (no
 * byte stores that a vector load would have to forward from). */
static inline __m128i k4_scales_mins(const uint8_t *q)
{
    uint32_t u0, u1, u2;
    memcpy(&u0, q, 4);
    memcpy(&u1, q + 4, 4);
    memcpy(&u2, q + 8, 4);
    const uint32_t m6 = 0x3f3f3f3fu, m4 = 0x0f0f0f0fu, m2 = 0x03030303u;
    const uint32_t sc_lo = u0 & m6;                                  /* sc 0-3 */
    const uint32_t sc_hi = (u2 & m4) | (((u0 >> 6) & m2) << 4);      /* sc 4-7 */
    const uint32_t mn_lo = u1 & m6;                                  /* m 0-3 */
    const uint32_t mn_hi = ((u2 >> 4) & m4) | (((u1 >> 6) & m2) << 4); /* m 4-7 */
    return _mm_setr_epi32((int)sc_lo, (int)sc_hi, (int)mn_lo, (int)mn_hi);
}
#endif

/* ---- helpers for the tile kernels of the ISA files ---------------------------- */

#define KERN_INLINE static inline __attribute__((always_inline))

#ifdef __SSE2__
/* Software prefetch for decode. With one token the weights stream from DRAM
 * once; the kernels' work per byte leaves the hardware prefetcher behind
 * (Zen 5, Q4_0: about 25 GB/s per core), while a pointer running
 * KERN_PF_DIST bytes ahead of the rows being read, advancing at the rate they
 * are consumed, keeps the stream at memory bandwidth (about 40 GB/s per core,
 * the single-thread read bandwidth). Prefetches do not fault, so running past
 * the end of the matrix is harmless; addresses are kept as integers. */
#define KERN_PF_DIST 8192

struct kern_pf {
    uintptr_t next; /* next cache line to prefetch */
    uintptr_t base; /* stream start + KERN_PF_DIST */
};

KERN_INLINE void kern_pf_init(struct kern_pf *p, const void *w)
{
    p->base = (uintptr_t)w + KERN_PF_DIST;
    p->next = p->base & ~(uintptr_t)63;
}

/* The first `consumed` bytes of the stream are read (or about to be). */
KERN_INLINE void kern_pf_advance(struct kern_pf *p, size_t consumed)
{
    const uintptr_t target = p->base + consumed;
    while (p->next < target) {
        _mm_prefetch((const char *)p->next, _MM_HINT_T0);
        p->next += 64;
    }
}
#endif

/* ---- tile drivers ------------------------------------------------------------
 * Several tokens: TT tokens x TR rows per step, tokens outermost, so that the
 * activations of TT tokens stay in L1 while the rows of the tile (in L2)
 * stream past; leftover tokens in groups of 4, 2, 1.
 * One token (decode): RDEC rows per step of the tile body (0: the type's
 * vec_dot kernel vd row by row, which streams at memory bandwidth by itself).
 * Batch invariance: an output must not depend on how many tokens share its
 * step, so a type whose body and vd accumulate in different orders (the
 * float types) must decode through the body (RDEC > 0); the integer kernels
 * sum each block exactly and scale in the same order either way.
 * body(n, R, T, w, ws, x, xs, y, ys) is an always-inline kernel specialized
 * for compile-time R <= 4 rows and T <= 8 tokens (its accumulator arrays
 * must hold R x max(TT, 4)). */
#define TILE_DRIVER(name, body, vd, RDEC, TR, TT)                                                \
    static void name(size_t n, size_t nr, size_t nt, const void *w, size_t ws, const void *x,    \
                     size_t xs, float *y, size_t ys)                                             \
    {                                                                                            \
        const uint8_t *wb = w, *xb = x;                                                          \
        if (nt == 1) {                                                                           \
            size_t r = 0;                                                                        \
            if ((RDEC) > 0) {                                                                    \
                for (; r + (RDEC) <= nr; r += (RDEC))                                            \
                    body(n, (RDEC), 1, wb + r * ws, ws, xb, xs, y + r, ys);                      \
                for (; r < nr; r++)                                                              \
                    body(n, 1, 1, wb + r * ws, ws, xb, xs, y + r, ys);                           \
            }                                                                                    \
            for (; r < nr; r++)                                                                  \
                vd(n, y + r, wb + r * ws, xb);                                                   \
            return;                                                                              \
        }                                                                                        \
        for (size_t t = 0; t < nt;) {                                                            \
            const size_t left = nt - t;                                                          \
            const int tn = left >= (TT) ? (TT) : left >= 4 ? 4 : left >= 2 ? 2 : 1;              \
            const uint8_t *xt = xb + t * xs;                                                     \
            float *yt = y + t * ys;                                                              \
            for (size_t r = 0; r < nr;) {                                                        \
                const uint8_t *wr = wb + r * ws;                                                 \
                if (nr - r >= (TR)) {                                                            \
                    TILE_TOKENS(body, n, (TR), tn, (TT), wr, ws, xt, xs, yt + r, ys);            \
                    r += (TR);                                                                   \
                } else {                                                                         \
                    TILE_TOKENS(body, n, 1, tn, (TT), wr, ws, xt, xs, yt + r, ys);               \
                    r += 1;                                                                      \
                }                                                                                \
            }                                                                                    \
            t += (size_t)tn;                                                                     \
        }                                                                                        \
    }

/* body with T = tn tokens, tn one of TT, 4, 2, 1 (compile-time shapes). */
#define TILE_TOKENS(body, n, R, tn, TT, w, ws, x, xs, y, ys)                                     \
    do {                                                                                         \
        if ((tn) == (TT))                                                                        \
            body(n, R, (TT), w, ws, x, xs, y, ys);                                               \
        else if ((tn) == 4)                                                                      \
            body(n, R, 4, w, ws, x, xs, y, ys);                                                  \
        else if ((tn) == 2)                                                                      \
            body(n, R, 2, w, ws, x, xs, y, ys);                                                  \
        else                                                                                     \
            body(n, R, 1, w, ws, x, xs, y, ys);                                                  \
    } while (0)

extern const struct kern_isa_ops kern_ops_scalar;
extern const struct kern_isa_ops kern_ops_avx2;
extern const struct kern_isa_ops kern_ops_avx512;
extern const struct kern_isa_ops kern_ops_avx512vnni;

/* The tile kernel for wtype on isa, falling back to lower ISAs; NULL when
 * none has one (the caller then loops over the vec_dot kernel). */
const struct kern_tile_ops *kern_tile(enum kern_isa isa, enum dt_type wtype);

#endif
