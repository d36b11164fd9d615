/* quant.h - internal: the per-type row converters that the dtype traits
 * table (dtype.c) points at. Implemented in quant.c (legacy 32-value blocks,
 * float formats) and quant_k.c (256-value k-quant super-blocks).
 *
 * to_float: n values (a multiple of the block size) from src to dst; the
 * float operations are performed in the same order as ggml's reference
 * decoders so that results are bit-identical. src must be aligned to the
 * block struct's alignment (2; 4 for Q8_K), which GGUF data guarantees.
 * from_float: deterministic scalar reference quantizers.
 */
#ifndef INFERD_QUANT_H
#define INFERD_QUANT_H

#include "dtype.h"

#include <stddef.h>

void dt_to_float_f32(const void *src, float *dst, size_t n);
void dt_to_float_f16(const void *src, float *dst, size_t n);
void dt_to_float_bf16(const void *src, float *dst, size_t n);
void dt_to_float_q4_0(const void *src, float *dst, size_t n);
void dt_to_float_q4_1(const void *src, float *dst, size_t n);
void dt_to_float_q5_0(const void *src, float *dst, size_t n);
void dt_to_float_q5_1(const void *src, float *dst, size_t n);
void dt_to_float_q8_0(const void *src, float *dst, size_t n);
void dt_to_float_q8_1(const void *src, float *dst, size_t n);
void dt_to_float_q2_k(const void *src, float *dst, size_t n);
void dt_to_float_q3_k(const void *src, float *dst, size_t n);
void dt_to_float_q4_k(const void *src, float *dst, size_t n);
void dt_to_float_q5_k(const void *src, float *dst, size_t n);
void dt_to_float_q6_k(const void *src, float *dst, size_t n);
void dt_to_float_q8_k(const void *src, float *dst, size_t n);

void dt_from_float_f32(const float *src, void *dst, size_t n);
void dt_from_float_f16(const float *src, void *dst, size_t n);
void dt_from_float_bf16(const float *src, void *dst, size_t n);
void dt_from_float_q4_0(const float *src, void *dst, size_t n);
void dt_from_float_q4_1(const float *src, void *dst, size_t n);
void dt_from_float_q5_0(const float *src, void *dst, size_t n);
void dt_from_float_q5_1(const float *src, void *dst, size_t n);
void dt_from_float_q8_0(const float *src, void *dst, size_t n);
void dt_from_float_q8_1(const float *src, void *dst, size_t n);
void dt_from_float_q2_k(const float *src, void *dst, size_t n);
void dt_from_float_q3_k(const float *src, void *dst, size_t n);
void dt_from_float_q4_k(const float *src, void *dst, size_t n);
void dt_from_float_q5_k(const float *src, void *dst, size_t n);
void dt_from_float_q6_k(const float *src, void *dst, size_t n);
void dt_from_float_q8_k(const float *src, void *dst, size_t n);

/* Round to the nearest integer, ties to even (valid for |x| < 2^22). */
int dt_nearest_int(float x);

#endif
