/* attn_impl.h - private: the scalar and AVX2 versions behind
 * kern_attn_head() and kern_kv_to_f32() (same contracts, see kern.h). */
#ifndef INFERD_ATTN_IMPL_H
#define INFERD_ATTN_IMPL_H

#include <stddef.h>

#include "dtype.h"

void kern_attn_head_ref(size_t hd, size_t n, const float *q, const float *k, const float *v,
                        size_t ld, float scale, float *scores, float *out);
void kern_kv_to_f32_ref(enum dt_type t, const void *src, float *dst, size_t n);
void kern_attn_head_avx2(size_t hd, size_t n, const float *q, const float *k, const float *v,
                         size_t ld, float scale, float *scores, float *out);
void kern_kv_to_f32_avx2(enum dt_type t, const void *src, float *dst, size_t n);

#endif
