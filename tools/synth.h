/* synth.h - synthetic llama-architecture GGUF models: real shapes, random
 * weights.
 *
 * A preset fixes the shapes and hyperparameters of a known model; synth_write()
 * streams a complete GGUF file (metadata as llama.cpp's loader expects for
 * arch "llama", a generated or copied tokenizer, and every tensor) with
 * deterministic pseudo-random weights quantized to the requested type.
 *
 * Weights: every value comes from a counter-based generator keyed by (seed,
 * tensor index), so a tensor can be regenerated in any row range, by any
 * thread count, bit-identically (synth_tensor_fill). Values are approximately
 * normal (sum of four uniforms, so bounded at +-3.46 std): token_embd std 1,
 * projections std 1/sqrt(row length), output std 0.15, norm weights
 * 1 + 0.1 N(0,1). rope_freqs (llama3 rope scaling presets) holds the exact
 * scaling divisors.
 *
 * Tensor types: 1-D tensors are F32; token_embd and the projections have the
 * base type; output.weight is Q6_K for the low-bit types (Q4_0, Q4_1, Q5_0,
 * Q5_1, Q2_K, Q3_K, Q4_K, Q5_K) unless pure; a tensor whose row length is not
 * a multiple of its type's block size is F16 instead (reported through the
 * note callback).
 */
#ifndef INFERD_SYNTH_H
#define INFERD_SYNTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dtype.h"

struct synth_preset {
    const char *name;
    const char *desc;       /* one line for usage text */
    uint32_t n_embd;        /* embedding_length */
    uint32_t n_layer;       /* block_count */
    uint32_t n_head;
    uint32_t n_head_kv;
    uint32_t head_dim;      /* rope.dimension_count; n_embd / n_head unless set */
    uint32_t n_ff;          /* feed_forward_length */
    uint32_t n_vocab;       /* generated vocab size (--vocab-from overrides) */
    uint32_t n_ctx;         /* context_length */
    float rope_base;        /* rope.freq_base */
    float rms_eps;
    bool tied_output;       /* no output.weight (token_embd is reused) */
    /* llama3 rope scaling: emits rope_freqs.weight when factor > 0 */
    float rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    uint32_t rope_orig_ctx;
};

/* Preset table. */
size_t synth_n_presets(void);
const struct synth_preset *synth_preset_at(size_t i);
/* Case-insensitive lookup; NULL if unknown. */
const struct synth_preset *synth_preset_find(const char *name);

/* Base types synth can write (F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K
 * Q4_K Q5_K Q6_K). */
bool synth_type_ok(enum dt_type t);
/* general.file_type (llama_ftype) for a base type; -1 if not writable. */
int synth_ftype(enum dt_type t);

/* Called for each notice (e.g. an F16 fallback); msg has no newline. */
typedef void (*synth_note_fn)(void *ctx, const char *msg);

struct synth_params {
    const struct synth_preset *preset;
    enum dt_type type;      /* base type */
    uint64_t seed;
    const char *vocab_from; /* GGUF whose tokenizer.* keys are copied; NULL: generate */
    bool pure;              /* no Q6_K output */
    unsigned n_threads;     /* 0: one per online CPU */
    synth_note_fn note;     /* may be NULL */
    void *note_ctx;
};

enum synth_init {
    SYNTH_INIT_NORMAL,      /* std * N(0,1) */
    SYNTH_INIT_NORM,        /* 1 + std * N(0,1) */
    SYNTH_INIT_ROPE_FREQS,  /* llama3 scaling divisors (no randomness) */
};

/* One tensor of the generated model. */
struct synth_tensor {
    char name[64];
    enum dt_type type;      /* stored type */
    uint32_t n_dims;        /* 1 or 2 */
    uint64_t ne[2];         /* ne[0] = row length; ne[1] = rows (1 for 1-D) */
    enum synth_init init;
    float std;
    uint32_t index;         /* position in the file; keys the generator */
    bool fallback;          /* F16 because the row length did not fit the type */
};

/* The tensors of p's model in file order, for a vocab of n_vocab tokens.
 * *out is malloc'd (free with synth_plan_free). Returns 0 or -errno. */
int synth_plan(const struct synth_params *p, uint32_t n_vocab, struct synth_tensor **out,
               size_t *n_out);
void synth_plan_free(struct synth_tensor *plan);

/* Float values of rows [row0, row0 + nrows) of t into dst (nrows * ne[0]
 * values), as synth_write generates them for this seed. */
void synth_tensor_fill(const struct synth_params *p, const struct synth_tensor *t,
                       uint64_t row0, uint64_t nrows, float *dst);

struct synth_stats {
    uint64_t bytes;         /* file size */
    uint64_t n_params;      /* values in all tensors */
    size_t n_tensors;
    size_t n_fallback;      /* tensors stored as F16 instead */
    uint32_t n_vocab;
};

/* Write the model to path (through path + ".tmp", renamed at the end; the
 * temporary file is removed on failure). Returns 0 or -errno; err (if errlen
 * > 0) then says what failed. st may be NULL. */
int synth_write(const char *path, const struct synth_params *p, struct synth_stats *st,
                char *err, size_t errlen);

#endif
