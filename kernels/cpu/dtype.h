/* dtype.h - tensor element types: GGUF/ggml block layouts, per-type facts,
 * half-precision conversion, row (de)quantization.
 *
 * The enum values are the GGUF on-disk type ids (append-only). The block
 * structs follow the public ggml layouts bit for bit; every size is pinned by
 * a static_assert so that a file from the ecosystem maps onto them unchanged.
 */
#ifndef INFERD_DTYPE_H
#define INFERD_DTYPE_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum dt_type {
    DT_F32 = 0,
    DT_F16 = 1,
    DT_Q4_0 = 2,
    DT_Q4_1 = 3,
    /* 4 and 5 were Q4_2/Q4_3, removed from the format */
    DT_Q5_0 = 6,
    DT_Q5_1 = 7,
    DT_Q8_0 = 8,
    DT_Q8_1 = 9,
    DT_Q2_K = 10,
    DT_Q3_K = 11,
    DT_Q4_K = 12,
    DT_Q5_K = 13,
    DT_Q6_K = 14,
    DT_Q8_K = 15,
    /* 16..29: IQ*, I8..I64, F64, IQ1_M: known ids, not supported */
    DT_BF16 = 30,
    DT_COUNT = 40, /* size of the id space the tables cover */
};

#define QK4_0 32
#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK8_0 32
#define QK8_1 32
#define QK_K 256
#define K_SCALE_SIZE 12

typedef uint16_t dt_fp16; /* IEEE binary16 bits */
typedef uint16_t dt_bf16; /* bfloat16 bits */

/* Legacy quants: one scale (and min) per 32 values. */
struct blk_q4_0 {
    dt_fp16 d;
    uint8_t qs[QK4_0 / 2]; /* low nibbles = values 0..15, high = 16..31 */
};
struct blk_q4_1 {
    dt_fp16 d, m;
    uint8_t qs[QK4_1 / 2];
};
struct blk_q5_0 {
    dt_fp16 d;
    uint8_t qh[4]; /* 5th bit of each value, little-endian bit j = value j */
    uint8_t qs[QK5_0 / 2];
};
struct blk_q5_1 {
    dt_fp16 d, m;
    uint8_t qh[4];
    uint8_t qs[QK5_1 / 2];
};
struct blk_q8_0 {
    dt_fp16 d;
    int8_t qs[QK8_0];
};
/* Activation format for Q4_1/Q5_1 dot products: s = d * sum(qs). */
struct blk_q8_1 {
    dt_fp16 d, s;
    int8_t qs[QK8_1];
};

/* K-quants: super-blocks of 256 values. */
struct blk_q2_k {
    uint8_t scales[QK_K / 16]; /* low nibble scale, high nibble min */
    uint8_t qs[QK_K / 4];
    dt_fp16 d, dmin;
};
struct blk_q3_k {
    uint8_t hmask[QK_K / 8];
    uint8_t qs[QK_K / 4];
    uint8_t scales[12]; /* 16 6-bit scales */
    dt_fp16 d;
};
struct blk_q4_k {
    dt_fp16 d, dmin;
    uint8_t scales[K_SCALE_SIZE]; /* 8 6-bit scales and 8 6-bit mins */
    uint8_t qs[QK_K / 2];
};
struct blk_q5_k {
    dt_fp16 d, dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qh[QK_K / 8];
    uint8_t qs[QK_K / 2];
};
struct blk_q6_k {
    uint8_t ql[QK_K / 2];
    uint8_t qh[QK_K / 4];
    int8_t scales[QK_K / 16];
    dt_fp16 d;
};
/* Activation format for k-quant dot products (never stored in files). */
struct blk_q8_k {
    float d;
    int8_t qs[QK_K];
    int16_t bsums[QK_K / 16]; /* sum of each group of 16 qs */
};

static_assert(sizeof(struct blk_q4_0) == 18, "q4_0 layout");
static_assert(sizeof(struct blk_q4_1) == 20, "q4_1 layout");
static_assert(sizeof(struct blk_q5_0) == 22, "q5_0 layout");
static_assert(sizeof(struct blk_q5_1) == 24, "q5_1 layout");
static_assert(sizeof(struct blk_q8_0) == 34, "q8_0 layout");
static_assert(sizeof(struct blk_q8_1) == 36, "q8_1 layout");
static_assert(sizeof(struct blk_q2_k) == 84, "q2_k layout");
static_assert(sizeof(struct blk_q3_k) == 110, "q3_k layout");
static_assert(sizeof(struct blk_q4_k) == 144, "q4_k layout");
static_assert(sizeof(struct blk_q5_k) == 176, "q5_k layout");
static_assert(sizeof(struct blk_q6_k) == 210, "q6_k layout");
static_assert(sizeof(struct blk_q8_k) == 292, "q8_k layout");

/* Dequantize n values (n a multiple of block_size) from src to float. */
typedef void (*dt_to_float_fn)(const void *src, float *dst, size_t n);
/* Quantize n values (n a multiple of block_size) to dst. Reference
 * (deterministic, scalar) algorithm; used for synthetic models, tests and
 * activations. */
typedef void (*dt_from_float_fn)(const float *src, void *dst, size_t n);

struct dt_traits {
    const char *name;           /* "Q4_K" etc.; NULL for ids that do not exist */
    uint32_t block_size;        /* values per block */
    uint32_t type_size;         /* bytes per block */
    bool supported;             /* tensors of this type can be loaded */
    dt_to_float_fn to_float;    /* NULL when unsupported */
    dt_from_float_fn from_float; /* NULL when this type cannot be written */
    enum dt_type vec_dot_type;  /* activation format the dot kernels take */
};

/* Facts about type id t; NULL when t is outside the table or names no type. */
const struct dt_traits *dt_get(uint32_t t);
/* Name of id t, "?" for unknown ids (never NULL). */
const char *dt_name(uint32_t t);
/* Look up a type by case-insensitive name ("q4_k", "F16"); -1 if unknown. */
int dt_from_name(const char *name);
/* Bytes of a row of n values; 0 if n is not a multiple of the block size or
 * the type is unknown. */
size_t dt_row_size(enum dt_type t, size_t n);

/* Half precision conversions (round to nearest even, like ggml). */
float dt_fp16_to_f32(dt_fp16 h);
dt_fp16 dt_f32_to_fp16(float f);
float dt_bf16_to_f32(dt_bf16 h);
dt_bf16 dt_f32_to_bf16(float f);

#endif
