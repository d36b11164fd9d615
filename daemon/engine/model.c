/* model.c - hyper-parameters and weight views of a Llama-family GGUF model.
 * See model.h. Every tensor is checked for presence, type and shape before
 * the forward pass can see it. */
#include "model.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtype.h"
#include "gguf.h"

/* Architectures the forward pass implements, and what distinguishes them. */
struct model_arch_info {
    const char *name;
    enum model_rope rope;
    bool qkv_bias; /* biases expected on q, k, v */
};

static const struct model_arch_info model_archs[] = {
    {"llama", MODEL_ROPE_NORM, false},
    {"qwen2", MODEL_ROPE_NEOX, true},
};

static int model_err(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static int model_get_u32(struct gguf_file *f, const char *arch, const char *suffix, uint32_t *out,
                         bool required, char *err, size_t errlen)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int rc = gguf_get_u32(f, key, out);
    if (rc == -ENOENT && !required)
        return 0;
    if (rc == -ENOENT)
        return model_err(err, errlen, -EINVAL, "missing metadata key %s", key);
    if (rc)
        return model_err(err, errlen, -EINVAL, "metadata key %s has a wrong type or value", key);
    return 0;
}

static int model_get_f32(struct gguf_file *f, const char *arch, const char *suffix, float *out,
                         char *err, size_t errlen)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int rc = gguf_get_f32(f, key, out);
    if (rc == -ENOENT)
        return 0;
    if (rc || !isfinite(*out))
        return model_err(err, errlen, -EINVAL, "metadata key %s has a wrong type or value", key);
    return 0;
}

/* A matrix tensor of shape ne = [cols, rows]. */
static int model_mat(struct model *m, const char *name, uint64_t cols, uint64_t rows, bool required,
                     struct kern_mat *out, char *err, size_t errlen)
{
    const struct gguf_tensor *t = gguf_find_tensor(m->gguf, name);
    memset(out, 0, sizeof *out);
    if (!t) {
        if (!required)
            return 0;
        return model_err(err, errlen, -EINVAL, "missing tensor %s", name);
    }
    if (t->n_dims > 2 || t->ne[0] != cols || t->ne[1] != rows || t->ne[2] != 1 || t->ne[3] != 1)
        return model_err(err, errlen, -EINVAL,
                         "tensor %s has shape [%llu, %llu, %llu, %llu], expected [%llu, %llu]",
                         name, (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
                         (unsigned long long)t->ne[2], (unsigned long long)t->ne[3],
                         (unsigned long long)cols, (unsigned long long)rows);
    const struct dt_traits *tr = dt_get(t->type);
    if (!tr || !tr->supported || !tr->to_float)
        return model_err(err, errlen, -EINVAL, "tensor %s has unsupported type %s", name,
                         dt_name(t->type));
    out->type = (enum dt_type)t->type;
    out->rows = rows;
    out->cols = cols;
    out->row_bytes = dt_row_size(out->type, cols);
    out->data = t->data;
    return 0;
}

/* A 1-D tensor of n values, converted to an owned float array. */
static int model_vec(struct model *m, const char *name, uint64_t n, bool required,
                     const float **out, char *err, size_t errlen)
{
    const struct gguf_tensor *t = gguf_find_tensor(m->gguf, name);
    *out = NULL;
    if (!t) {
        if (!required)
            return 0;
        return model_err(err, errlen, -EINVAL, "missing tensor %s", name);
    }
    if (t->ne[0] != n || t->ne[1] != 1 || t->ne[2] != 1 || t->ne[3] != 1)
        return model_err(err, errlen, -EINVAL, "tensor %s has %llu x %llu values, expected %llu",
                         name, (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
                         (unsigned long long)n);
    const struct dt_traits *tr = dt_get(t->type);
    if (!tr || !tr->supported || !tr->to_float)
        return model_err(err, errlen, -EINVAL, "tensor %s has unsupported type %s", name,
                         dt_name(t->type));
    float *v = malloc(n * sizeof *v);
    float **grown = realloc(m->owned, (m->n_owned + 1) * sizeof *grown);
    if (!v || !grown) {
        free(v);
        if (grown)
            m->owned = grown;
        return model_err(err, errlen, -ENOMEM, "out of memory");
    }
    m->owned = grown;
    m->owned[m->n_owned++] = v;
    tr->to_float(t->data, v, n);
    *out = v;
    return 0;
}

static int model_read_hparams(struct model *m, char *err, size_t errlen)
{
    struct gguf_file *f = m->gguf;
    struct model_hparams *hp = &m->hp;
    struct gguf_str s;
    int rc;

    if (gguf_get_str(f, "general.architecture", &s) != 0)
        return model_err(err, errlen, -EINVAL, "missing general.architecture");
    const struct model_arch_info *info = NULL;
    for (size_t i = 0; i < sizeof model_archs / sizeof model_archs[0]; i++)
        if (gguf_str_eq(s, model_archs[i].name))
            info = &model_archs[i];
    if (!info)
        return model_err(err, errlen, -ENOTSUP,
                         "unsupported model architecture '%.*s' (supported: llama, qwen2)",
                         (int)(s.len > 64 ? 64 : s.len), s.ptr);
    snprintf(hp->arch, sizeof hp->arch, "%s", info->name);
    if (gguf_get_str(f, "general.name", &s) == 0)
        snprintf(hp->name, sizeof hp->name, "%.*s", (int)(s.len > 63 ? 63 : s.len), s.ptr);
    const char *a = hp->arch;

    if ((rc = model_get_u32(f, a, "embedding_length", &hp->n_embd, true, err, errlen)) ||
        (rc = model_get_u32(f, a, "block_count", &hp->n_layer, true, err, errlen)) ||
        (rc = model_get_u32(f, a, "feed_forward_length", &hp->n_ff, true, err, errlen)) ||
        (rc = model_get_u32(f, a, "attention.head_count", &hp->n_head, true, err, errlen)))
        return rc;
    hp->n_head_kv = hp->n_head;
    hp->n_ctx_train = 2048;
    if ((rc = model_get_u32(f, a, "attention.head_count_kv", &hp->n_head_kv, false, err, errlen)) ||
        (rc = model_get_u32(f, a, "context_length", &hp->n_ctx_train, false, err, errlen)))
        return rc;
    if (hp->n_embd == 0 || hp->n_layer == 0 || hp->n_ff == 0 || hp->n_head == 0 ||
        hp->n_head_kv == 0 || hp->n_head % hp->n_head_kv != 0 || hp->n_embd % hp->n_head != 0 ||
        hp->n_embd > 65536 || hp->n_layer > 1024 || hp->n_head > 1024 || hp->n_ff > 1u << 20)
        return model_err(err, errlen, -EINVAL,
                         "inconsistent hyper-parameters: n_embd %u, n_layer %u, n_ff %u, "
                         "n_head %u, n_head_kv %u",
                         hp->n_embd, hp->n_layer, hp->n_ff, hp->n_head, hp->n_head_kv);
    hp->head_dim = hp->n_embd / hp->n_head;
    if ((rc = model_get_u32(f, a, "attention.key_length", &hp->head_dim, false, err, errlen)))
        return rc;
    uint32_t vlen = hp->head_dim;
    if ((rc = model_get_u32(f, a, "attention.value_length", &vlen, false, err, errlen)))
        return rc;
    if (vlen != hp->head_dim || hp->head_dim == 0 || hp->head_dim > 1024)
        return model_err(err, errlen, -ENOTSUP, "unsupported head sizes: key %u, value %u",
                         hp->head_dim, vlen);
    hp->n_rot = hp->head_dim;
    if ((rc = model_get_u32(f, a, "rope.dimension_count", &hp->n_rot, false, err, errlen)))
        return rc;
    if (hp->n_rot == 0 || hp->n_rot > hp->head_dim || hp->n_rot % 2)
        return model_err(err, errlen, -EINVAL, "rope.dimension_count %u invalid for head size %u",
                         hp->n_rot, hp->head_dim);

    hp->rms_eps = 1e-5f;
    hp->rope_freq_base = 10000.0f;
    hp->rope_freq_scale = 1.0f;
    if ((rc = model_get_f32(f, a, "attention.layer_norm_rms_epsilon", &hp->rms_eps, err, errlen)) ||
        (rc = model_get_f32(f, a, "rope.freq_base", &hp->rope_freq_base, err, errlen)))
        return rc;
    if (!(hp->rms_eps > 0) || !(hp->rope_freq_base > 0))
        return model_err(err, errlen, -EINVAL, "invalid rms epsilon or rope base");

    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", a);
    if (gguf_get_str(f, key, &s) == 0 && !gguf_str_eq(s, "none")) {
        if (!gguf_str_eq(s, "linear"))
            return model_err(err, errlen, -ENOTSUP, "unsupported rope scaling type '%.*s'",
                             (int)(s.len > 32 ? 32 : s.len), s.ptr);
        float factor = 1.0f;
        if ((rc = model_get_f32(f, a, "rope.scaling.factor", &factor, err, errlen)))
            return rc;
        if (!(factor > 0))
            return model_err(err, errlen, -EINVAL, "invalid rope scaling factor");
        hp->rope_freq_scale = 1.0f / factor;
    } else {
        float scale = 1.0f;
        if ((rc = model_get_f32(f, a, "rope.scale_linear", &scale, err, errlen)))
            return rc;
        if (scale > 0)
            hp->rope_freq_scale = 1.0f / scale;
    }
    hp->rope = info->rope;
    hp->qkv_bias = info->qkv_bias;

    /* The vocabulary size is the embedding table's row count. */
    const struct gguf_tensor *te = gguf_find_tensor(f, "token_embd.weight");
    if (!te)
        return model_err(err, errlen, -EINVAL, "missing tensor token_embd.weight");
    if (te->ne[1] == 0 || te->ne[1] > (1u << 24))
        return model_err(err, errlen, -EINVAL, "token_embd.weight has %llu rows",
                         (unsigned long long)te->ne[1]);
    hp->n_vocab = (uint32_t)te->ne[1];
    return 0;
}

int model_load(struct gguf_file *f, struct model **out, char *err, size_t errlen)
{
    struct model *m = calloc(1, sizeof *m);
    if (!m) {
        gguf_close(f);
        return model_err(err, errlen, -ENOMEM, "out of memory");
    }
    m->gguf = f;
    int rc = model_read_hparams(m, err, errlen);
    if (rc)
        goto fail;
    struct model_hparams *hp = &m->hp;
    uint64_t E = hp->n_embd, Q = (uint64_t)hp->n_head * hp->head_dim,
             KV = (uint64_t)hp->n_head_kv * hp->head_dim, F = hp->n_ff, V = hp->n_vocab;

    if ((rc = model_mat(m, "token_embd.weight", E, V, true, &m->tok_embd, err, errlen)) ||
        (rc = model_vec(m, "output_norm.weight", E, true, &m->output_norm, err, errlen)) ||
        (rc = model_mat(m, "output.weight", E, V, false, &m->output, err, errlen)) ||
        (rc = model_vec(m, "rope_freqs.weight", hp->n_rot / 2, false, &m->rope_freqs, err, errlen)))
        goto fail;
    if (!m->output.data) {
        m->output = m->tok_embd;
        hp->tied_output = true;
    }
    m->layers = calloc(hp->n_layer, sizeof *m->layers);
    if (!m->layers) {
        rc = model_err(err, errlen, -ENOMEM, "out of memory");
        goto fail;
    }
    for (uint32_t il = 0; il < hp->n_layer; il++) {
        struct model_layer *l = &m->layers[il];
        char n[13][64];
        const char *suffix[13] = {"attn_norm.weight", "attn_q.weight", "attn_k.weight",
                                  "attn_v.weight", "attn_output.weight", "attn_q.bias",
                                  "attn_k.bias", "attn_v.bias", "ffn_norm.weight",
                                  "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight", ""};
        for (int i = 0; i < 12; i++)
            snprintf(n[i], sizeof n[i], "blk.%u.%s", il, suffix[i]);
        if ((rc = model_vec(m, n[0], E, true, &l->attn_norm, err, errlen)) ||
            (rc = model_mat(m, n[1], E, Q, true, &l->wq, err, errlen)) ||
            (rc = model_mat(m, n[2], E, KV, true, &l->wk, err, errlen)) ||
            (rc = model_mat(m, n[3], E, KV, true, &l->wv, err, errlen)) ||
            (rc = model_mat(m, n[4], Q, E, true, &l->wo, err, errlen)) ||
            (rc = model_vec(m, n[5], Q, hp->qkv_bias, &l->bq, err, errlen)) ||
            (rc = model_vec(m, n[6], KV, hp->qkv_bias, &l->bk, err, errlen)) ||
            (rc = model_vec(m, n[7], KV, hp->qkv_bias, &l->bv, err, errlen)) ||
            (rc = model_vec(m, n[8], E, true, &l->ffn_norm, err, errlen)) ||
            (rc = model_mat(m, n[9], E, F, true, &l->w_gate, err, errlen)) ||
            (rc = model_mat(m, n[10], E, F, true, &l->w_up, err, errlen)) ||
            (rc = model_mat(m, n[11], F, E, true, &l->w_down, err, errlen)))
            goto fail;
        const struct kern_mat *mats[7] = {&l->wq, &l->wk, &l->wv, &l->wo,
                                          &l->w_gate, &l->w_up, &l->w_down};
        for (int i = 0; i < 7; i++)
            m->stream_bytes += mats[i]->row_bytes * mats[i]->rows;
    }
    m->stream_bytes += m->output.row_bytes * m->output.rows;
    for (size_t i = 0; i < gguf_n_tensors(f); i++)
        m->weight_bytes += gguf_tensor_at(f, i)->nbytes;
    *out = m;
    return 0;
fail:
    model_free(m);
    return rc;
}

int model_open(const char *path, struct model **out, char *err, size_t errlen)
{
    struct gguf_file *f;
    int rc = gguf_open(path, &f, err, errlen);
    if (rc)
        return rc;
    return model_load(f, out, err, errlen);
}

void model_free(struct model *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n_owned; i++)
        free(m->owned[i]);
    free(m->owned);
    free(m->layers);
    gguf_close(m->gguf);
    free(m);
}

void model_embed(const struct model *m, int32_t id, float *out)
{
    const struct kern_mat *e = &m->tok_embd;
    dt_get(e->type)->to_float((const char *)e->data + (size_t)id * e->row_bytes, out, e->cols);
}
