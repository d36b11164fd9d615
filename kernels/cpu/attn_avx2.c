/* attn_avx2.c - AVX2/FMA/F16C attention over float K/V rows and KV-row
 * conversion. Built with -mavx2 -mfma -mf16c; called only after the CPUID
 * check (kern_isa_supported). The scalar references are in attn.c. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "attn_impl.h"

static inline float attn_hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* dot(a, b) over hd values: 8 lanes, then a scalar tail. */
static inline float attn_dot(const float *a, const float *b, size_t hd)
{
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= hd; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
    }
    if (i + 8 <= hd) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
        i += 8;
    }
    float s = attn_hsum(_mm256_add_ps(acc0, acc1));
    for (; i < hd; i++)
        s += a[i] * b[i];
    return s;
}

void kern_attn_head_avx2(size_t hd, size_t n, const float *q, const float *k, const float *v,
                         size_t ld, float scale, float *scores, float *out)
{
    float mx = -INFINITY;
    for (size_t p = 0; p < n; p++) {
        float d = attn_dot(q, k + p * ld, hd) * scale;
        scores[p] = d;
        if (d > mx)
            mx = d;
    }
    float sum = 0.0f;
    for (size_t p = 0; p < n; p++) {
        scores[p] = expf(scores[p] - mx);
        sum += scores[p];
    }
    const float inv = 1.0f / sum;
    size_t i = 0;
    for (; i + 8 <= hd; i += 8) {
        __m256 acc = _mm256_setzero_ps();
        for (size_t p = 0; p < n; p++)
            acc = _mm256_fmadd_ps(_mm256_set1_ps(scores[p] * inv), _mm256_loadu_ps(v + p * ld + i),
                                  acc);
        _mm256_storeu_ps(out + i, acc);
    }
    for (; i < hd; i++) {
        float acc = 0.0f;
        for (size_t p = 0; p < n; p++)
            acc += scores[p] * inv * v[p * ld + i];
        out[i] = acc;
    }
}

void kern_kv_to_f32_avx2(enum dt_type t, const void *src, float *dst, size_t n)
{
    size_t i = 0;
    if (t == DT_F32) {
        memcpy(dst, src, n * sizeof *dst);
        return;
    }
    if (t == DT_F16) {
        const dt_fp16 *s = src;
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + i))));
        for (; i < n; i++)
            dst[i] = _cvtsh_ss(s[i]);
        return;
    }
    const dt_bf16 *s = src;
    for (; i + 8 <= n; i += 8) {
        __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(s + i)));
        _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
    }
    for (; i < n; i++) {
        uint32_t u = (uint32_t)s[i] << 16;
        memcpy(dst + i, &u, sizeof u);
    }
}
