/* vecdot_avx512.c - AVX-512 F/BW/VL/DQ kernels for CPUs without VNNI/BF16:
 * the shared zmm kernels of vecdot_zmm.inc with vpdpbusd/vpdpwssd emulated by
 * vpmaddubsw/vpmaddwd, and a BF16 dot product that widens bf16 to f32.
 *
 * Built with -mavx512f -mavx512bw -mavx512vl -mavx512dq (plus AVX2/FMA/F16C);
 * only reached through vecdot.c after kern_isa_supported(KERN_ISA_AVX512).
 * Types without a kernel here use the AVX2 ones.
 */
#include "kern_impl.h"

#include <immintrin.h>
#include <string.h>

#define ZFN(name) name##_avx512

/* u8 x s8: callers keep each pair sum within s16 (see vecdot_zmm.inc). */
static inline __m512i zdpbusd(__m512i acc, __m512i u, __m512i s)
{
    return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(u, s), _mm512_set1_epi16(1)));
}

static inline __m512i zdpwssd(__m512i acc, __m512i a, __m512i b)
{
    return _mm512_add_epi32(acc, _mm512_madd_epi16(a, b));
}

#include "vecdot_zmm.inc"

/* w (n,) bf16 . x (n,) bf16: even elements of 32 are (v << 16), odd ones
 * (v & 0xffff0000) as f32. */
static void vd_bf16_avx512(size_t n, float *s, const void *w, const void *x)
{
    const dt_bf16 *a = w, *b = x;
    const __m512i hi = _mm512_set1_epi32((int)0xffff0000u);
    __m512 acc[4] = { _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                      _mm512_setzero_ps() };
    for (size_t i = 0; i < n; i += 32) {
        const __mmask32 m = n - i >= 32 ? (__mmask32)0xffffffffu : (__mmask32)((1u << (n - i)) - 1);
        const __m512i wv = _mm512_maskz_loadu_epi16(m, a + i), xv = _mm512_maskz_loadu_epi16(m, b + i);
        const int k = (int)((i / 32) & 1);
        acc[2 * k] = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(wv, 16)),
                                     _mm512_castsi512_ps(_mm512_slli_epi32(xv, 16)), acc[2 * k]);
        acc[2 * k + 1] = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(wv, hi)),
                                         _mm512_castsi512_ps(_mm512_and_si512(xv, hi)), acc[2 * k + 1]);
    }
    *s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
}

const struct kern_isa_ops kern_ops_avx512 = {
    .vec_dot = {
        [DT_F32] = vd_f32_avx512,
        [DT_F16] = vd_f16_avx512,
        [DT_BF16] = vd_bf16_avx512,
        [DT_Q4_0] = vd_q4_0_avx512,
        [DT_Q8_0] = vd_q8_0_avx512,
        [DT_Q4_K] = vd_q4_k_avx512,
        [DT_Q6_K] = vd_q6_k_avx512,
    },
    .quant = {
        [DT_Q8_0] = quant_q8_0_avx512,
        [DT_Q8_1] = quant_q8_1_avx512,
        [DT_Q8_K] = quant_q8_k_avx512,
        [DT_BF16] = quant_bf16_avx512,
    },
};
