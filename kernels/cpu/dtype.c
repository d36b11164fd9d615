/* dtype.c - the per-type traits table (block size, bytes per block, row
 * converters, activation format for dot products), type names, row sizes
 * and the half-precision (IEEE binary16, bfloat16) conversions.
 */
#include "dtype.h"
#include "quant.h"

#include <string.h>
#include <strings.h>

/* An id the format knows but this engine cannot load: name and layout only,
 * so that a reader can skip over (or report) such tensors. */
#define DT_KNOWN(nm, bs, ts) \
    { .name = (nm), .block_size = (bs), .type_size = (ts), .supported = false, \
      .to_float = NULL, .from_float = NULL, .vec_dot_type = DT_COUNT }

static const struct dt_traits dt_table[DT_COUNT] = {
    [DT_F32] = { "F32", 1, 4, true, dt_to_float_f32, dt_from_float_f32, DT_F32 },
    [DT_F16] = { "F16", 1, 2, true, dt_to_float_f16, dt_from_float_f16, DT_F32 },
    [DT_Q4_0] = { "Q4_0", QK4_0, sizeof(struct blk_q4_0), true, dt_to_float_q4_0,
                  dt_from_float_q4_0, DT_Q8_0 },
    [DT_Q4_1] = { "Q4_1", QK4_1, sizeof(struct blk_q4_1), true, dt_to_float_q4_1,
                  dt_from_float_q4_1, DT_Q8_1 },
    [DT_Q5_0] = { "Q5_0", QK5_0, sizeof(struct blk_q5_0), true, dt_to_float_q5_0,
                  dt_from_float_q5_0, DT_Q8_0 },
    [DT_Q5_1] = { "Q5_1", QK5_1, sizeof(struct blk_q5_1), true, dt_to_float_q5_1,
                  dt_from_float_q5_1, DT_Q8_1 },
    [DT_Q8_0] = { "Q8_0", QK8_0, sizeof(struct blk_q8_0), true, dt_to_float_q8_0,
                  dt_from_float_q8_0, DT_Q8_0 },
    /* Activation-only formats: never loaded from files. */
    [DT_Q8_1] = { "Q8_1", QK8_1, sizeof(struct blk_q8_1), false, dt_to_float_q8_1,
                  dt_from_float_q8_1, DT_Q8_1 },
    [DT_Q2_K] = { "Q2_K", QK_K, sizeof(struct blk_q2_k), true, dt_to_float_q2_k,
                  dt_from_float_q2_k, DT_Q8_K },
    [DT_Q3_K] = { "Q3_K", QK_K, sizeof(struct blk_q3_k), true, dt_to_float_q3_k,
                  dt_from_float_q3_k, DT_Q8_K },
    [DT_Q4_K] = { "Q4_K", QK_K, sizeof(struct blk_q4_k), true, dt_to_float_q4_k,
                  dt_from_float_q4_k, DT_Q8_K },
    [DT_Q5_K] = { "Q5_K", QK_K, sizeof(struct blk_q5_k), true, dt_to_float_q5_k,
                  dt_from_float_q5_k, DT_Q8_K },
    [DT_Q6_K] = { "Q6_K", QK_K, sizeof(struct blk_q6_k), true, dt_to_float_q6_k,
                  dt_from_float_q6_k, DT_Q8_K },
    [DT_Q8_K] = { "Q8_K", QK_K, sizeof(struct blk_q8_k), false, dt_to_float_q8_k,
                  dt_from_float_q8_k, DT_Q8_K },
    [16] = DT_KNOWN("IQ2_XXS", 256, 66),
    [17] = DT_KNOWN("IQ2_XS", 256, 74),
    [18] = DT_KNOWN("IQ3_XXS", 256, 98),
    [19] = DT_KNOWN("IQ1_S", 256, 50),
    [20] = DT_KNOWN("IQ4_NL", 32, 18),
    [21] = DT_KNOWN("IQ3_S", 256, 110),
    [22] = DT_KNOWN("IQ2_S", 256, 82),
    [23] = DT_KNOWN("IQ4_XS", 256, 136),
    [24] = DT_KNOWN("I8", 1, 1),
    [25] = DT_KNOWN("I16", 1, 2),
    [26] = DT_KNOWN("I32", 1, 4),
    [27] = DT_KNOWN("I64", 1, 8),
    [28] = DT_KNOWN("F64", 1, 8),
    [29] = DT_KNOWN("IQ1_M", 256, 56),
    [DT_BF16] = { "BF16", 1, 2, true, dt_to_float_bf16, dt_from_float_bf16, DT_BF16 },
    /* 31..33 and 36..38 were interleaved layouts, removed from the format. */
    [34] = DT_KNOWN("TQ1_0", 256, 54),
    [35] = DT_KNOWN("TQ2_0", 256, 66),
    [39] = DT_KNOWN("MXFP4", 32, 17),
};

const struct dt_traits *dt_get(uint32_t t)
{
    if (t >= DT_COUNT || dt_table[t].name == NULL)
        return NULL;
    return &dt_table[t];
}

const char *dt_name(uint32_t t)
{
    const struct dt_traits *tr = dt_get(t);
    return tr ? tr->name : "?";
}

int dt_from_name(const char *name)
{
    if (name == NULL)
        return -1;
    for (int t = 0; t < DT_COUNT; t++) {
        if (dt_table[t].name && strcasecmp(dt_table[t].name, name) == 0)
            return t;
    }
    return -1;
}

size_t dt_row_size(enum dt_type t, size_t n)
{
    const struct dt_traits *tr = dt_get((uint32_t)t);
    if (tr == NULL || n % tr->block_size != 0)
        return 0;
    size_t blocks = n / tr->block_size;
    if (blocks > SIZE_MAX / tr->type_size)
        return 0;
    return blocks * tr->type_size;
}

static inline uint32_t dt_f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float dt_bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float dt_fp16_to_f32(dt_fp16 h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;

    if (exp == 0x1f) /* inf / NaN: payload moves to the top of the f32 fraction */
        return dt_bits_f32(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {
        /* zero or subnormal: man * 2^-24, exact in f32 */
        float v = (float)man * 0x1p-24f;
        return dt_bits_f32(sign | dt_f32_bits(v));
    }
    return dt_bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

dt_fp16 dt_f32_to_fp16(float f)
{
    uint32_t u = dt_f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;

    if (a > 0x7f800000u) /* NaN: quiet it, keep the top payload bits */
        return (dt_fp16)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    if (a >= 0x477ff000u) /* >= 65520 rounds to infinity (incl. inf itself) */
        return (dt_fp16)(sign | 0x7c00u);
    if (a < 0x38800000u) {
        /* below the smallest normal (2^-14): result is subnormal or zero.
         * Scaling by 2^24 is exact here; the integer rounding is RNE. */
        if (a < 0x33000000u) /* < 2^-25: rounds to zero (2^-25 itself is a tie to 0) */
            return sign;
        uint32_t man = (a & 0x7fffffu) | 0x800000u;
        uint32_t e = a >> 23;           /* 102..112 */
        uint32_t shift = 126u - e;      /* value = man * 2^(e-150); want units of 2^-24 */
        uint32_t q = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1u);
        uint32_t half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (q & 1u)))
            q++;
        return (dt_fp16)(sign | q);
    }
    /* normal: rebias the exponent, round the 13 dropped bits to nearest even;
     * a carry out of the mantissa correctly bumps the exponent. */
    uint32_t h = ((a >> 13) - (112u << 10));
    uint32_t rem = a & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u)))
        h++;
    return (dt_fp16)(sign | h);
}

float dt_bf16_to_f32(dt_bf16 h)
{
    return dt_bits_f32((uint32_t)h << 16);
}

dt_bf16 dt_f32_to_bf16(float f)
{
    uint32_t u = dt_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) /* NaN: truncate, force quiet bit */
        return (dt_bf16)((u >> 16) | 0x40u);
    /* round to nearest even on the 16 dropped bits; overflow goes to inf */
    uint32_t r = u + 0x7fffu + ((u >> 16) & 1u);
    return (dt_bf16)(r >> 16);
}
