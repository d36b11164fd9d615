/* model.h - a Llama-family model: hyper-parameters from GGUF metadata and
 * weight views into the mapped file.
 *
 * Supported architectures (general.architecture): llama (also Mistral,
 * TinyLlama, SmolLM, Llama 2/3 files, which use it), qwen2 (NeoX RoPE, QKV
 * bias). Anything else is refused with a message naming the architecture.
 * Weights stay in place in the mapping; only 1-D tensors (norms, biases,
 * RoPE frequency factors) are converted to owned float arrays.
 */
#ifndef INFERD_MODEL_H
#define INFERD_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kern.h"

struct gguf_file;

enum model_rope { MODEL_ROPE_NORM = 0, MODEL_ROPE_NEOX = 2 };

struct model_hparams {
    char arch[32];
    char name[64];
    uint32_t n_vocab;
    uint32_t n_ctx_train;
    uint32_t n_embd;
    uint32_t n_layer;
    uint32_t n_ff;
    uint32_t n_head;
    uint32_t n_head_kv;
    uint32_t head_dim; /* key/value length per head */
    uint32_t n_rot;    /* rotated dimensions per head (<= head_dim, even) */
    float rms_eps;
    float rope_freq_base;
    float rope_freq_scale; /* 1 / linear scaling factor */
    enum model_rope rope;
    bool qkv_bias;
    bool tied_output; /* output projection shares token_embd */
};

struct model_layer {
    const float *attn_norm; /* (n_embd,) */
    struct kern_mat wq;     /* (n_head*head_dim, n_embd) */
    struct kern_mat wk;     /* (n_head_kv*head_dim, n_embd) */
    struct kern_mat wv;     /* (n_head_kv*head_dim, n_embd) */
    struct kern_mat wo;     /* (n_embd, n_head*head_dim) */
    const float *bq, *bk, *bv; /* biases or NULL */
    const float *ffn_norm;  /* (n_embd,) */
    struct kern_mat w_gate; /* (n_ff, n_embd) */
    struct kern_mat w_up;   /* (n_ff, n_embd) */
    struct kern_mat w_down; /* (n_embd, n_ff) */
};

struct model {
    struct gguf_file *gguf;
    struct model_hparams hp;
    struct kern_mat tok_embd; /* (n_vocab, n_embd) */
    const float *output_norm; /* (n_embd,) */
    struct kern_mat output;   /* (n_vocab, n_embd) */
    const float *rope_freqs;  /* (n_rot/2,) divisors of the frequencies, or NULL */
    struct model_layer *layers;
    uint64_t weight_bytes;    /* all tensor bytes */
    uint64_t stream_bytes;    /* bytes read per decoded token (all matrices but the embedding table, unless tied) */
    float **owned;            /* converted 1-D tensors */
    size_t n_owned;
};

/* Load from an open GGUF file (the model keeps f; model_free closes it).
 * Returns 0 or -errno with a message in err. */
int model_load(struct gguf_file *f, struct model **out, char *err, size_t errlen);
/* Open path and load. */
int model_open(const char *path, struct model **out, char *err, size_t errlen);
void model_free(struct model *m);

/* Row id of the embedding table as floats: out (n_embd,). */
void model_embed(const struct model *m, int32_t id, float *out);

#endif
