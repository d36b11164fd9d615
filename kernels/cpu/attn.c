/* attn.c - attention over float K/V rows and KV-row conversion: the scalar
 * references and the dispatch to the SIMD versions (attn_avx2.c). */
#include <math.h>
#include <string.h>

#include "attn_impl.h"
#include "kern.h"

void kern_attn_head_ref(size_t hd, size_t n, const float *q, const float *k, const float *v,
                        size_t ld, float scale, float *scores, float *out)
{
    float mx = -INFINITY;
    for (size_t p = 0; p < n; p++) {
        const float *kp = k + p * ld;
        float d = 0.0f;
        for (size_t i = 0; i < hd; i++)
            d += q[i] * kp[i];
        d *= scale;
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
    memset(out, 0, hd * sizeof *out);
    for (size_t p = 0; p < n; p++) {
        const float w = scores[p] * inv;
        const float *vp = v + p * ld;
        for (size_t i = 0; i < hd; i++)
            out[i] += w * vp[i];
    }
}

void kern_kv_to_f32_ref(enum dt_type t, const void *src, float *dst, size_t n)
{
    if (t == DT_F32) {
        memcpy(dst, src, n * sizeof *dst);
    } else if (t == DT_F16) {
        const dt_fp16 *s = src;
        for (size_t i = 0; i < n; i++)
            dst[i] = dt_fp16_to_f32(s[i]);
    } else {
        const dt_bf16 *s = src;
        for (size_t i = 0; i < n; i++)
            dst[i] = dt_bf16_to_f32(s[i]);
    }
}

void kern_attn_head(enum kern_isa isa, size_t hd, size_t n, const float *q, const float *k,
                    const float *v, size_t ld, float scale, float *scores, float *out)
{
    if (isa >= KERN_ISA_AVX2)
        kern_attn_head_avx2(hd, n, q, k, v, ld, scale, scores, out);
    else
        kern_attn_head_ref(hd, n, q, k, v, ld, scale, scores, out);
}

void kern_kv_to_f32(enum kern_isa isa, enum dt_type t, const void *src, float *dst, size_t n)
{
    if (isa >= KERN_ISA_AVX2)
        kern_kv_to_f32_avx2(t, src, dst, n);
    else
        kern_kv_to_f32_ref(t, src, dst, n);
}
