/* forward.c - the Llama-family forward pass on the CPU kernels. See
 * forward.h for the batch contract and the equations. */
#include "forward.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dtype.h"

struct fwd_ctx {
    const struct model *m;
    struct kv_pool *kv;
    struct kern_ctx *kc;
    uint32_t max_tokens, max_ctx;
    uint64_t n_processed;
    /* activations, one row per token of the current step */
    float *x;    /* (T, n_embd) residual stream */
    float *xb;   /* (T, n_embd) normalized input / gathered output rows */
    float *q;    /* (T, n_head*head_dim) */
    float *k;    /* (T, kv_dim) */
    float *v;    /* (T, kv_dim) */
    float *att;  /* (T, n_head*head_dim) attention output */
    float *hb;   /* (T, n_ff) */
    float *hb2;  /* (T, n_ff) */
    float *rope; /* (T, n_rot) cos/sin pairs per token */
    float *scores; /* (n_threads, max_ctx) */
    float *kvf;    /* (n_threads, 2, max_ctx, head_dim) K and V of one head as floats */
    uint32_t *grp_seq, *grp_start, *tok_order, *grp_of; /* token grouping by sequence */
    unsigned n_threads;
};

int fwd_init(struct fwd_ctx **out, const struct model *m, struct kv_pool *kv,
             struct kern_ctx *kc, uint32_t max_tokens, uint32_t max_ctx)
{
    const struct model_hparams *hp = &m->hp;
    if (!max_tokens || !max_ctx || kv->n_layer != hp->n_layer ||
        kv->kv_dim != hp->n_head_kv * hp->head_dim)
        return -EINVAL;
    struct fwd_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->m = m;
    c->kv = kv;
    c->kc = kc;
    c->max_tokens = max_tokens;
    c->max_ctx = max_ctx;
    c->n_threads = kc->pool ? tp_size(kc->pool) : 1;
    size_t T = max_tokens, E = hp->n_embd, Q = (size_t)hp->n_head * hp->head_dim,
           KV = kv->kv_dim, F = hp->n_ff;
    c->x = malloc(T * E * sizeof(float));
    c->xb = malloc(T * E * sizeof(float));
    c->q = malloc(T * Q * sizeof(float));
    c->k = malloc(T * KV * sizeof(float));
    c->v = malloc(T * KV * sizeof(float));
    c->att = malloc(T * Q * sizeof(float));
    c->hb = malloc(T * F * sizeof(float));
    c->hb2 = malloc(T * F * sizeof(float));
    c->rope = malloc(T * hp->n_rot * sizeof(float));
    c->scores = malloc((size_t)c->n_threads * max_ctx * sizeof(float));
    c->kvf = malloc((size_t)c->n_threads * 2 * max_ctx * hp->head_dim * sizeof(float));
    c->grp_seq = malloc(T * sizeof(uint32_t));
    c->grp_start = malloc((T + 1) * sizeof(uint32_t));
    c->tok_order = malloc(T * sizeof(uint32_t));
    c->grp_of = malloc(T * sizeof(uint32_t));
    if (!c->x || !c->xb || !c->q || !c->k || !c->v || !c->att || !c->hb || !c->hb2 ||
        !c->rope || !c->scores || !c->kvf || !c->grp_seq || !c->grp_start || !c->tok_order ||
        !c->grp_of) {
        fwd_free(c);
        return -ENOMEM;
    }
    *out = c;
    return 0;
}

void fwd_free(struct fwd_ctx *c)
{
    if (!c)
        return;
    free(c->x);
    free(c->xb);
    free(c->q);
    free(c->k);
    free(c->v);
    free(c->att);
    free(c->hb);
    free(c->hb2);
    free(c->rope);
    free(c->scores);
    free(c->kvf);
    free(c->grp_seq);
    free(c->grp_start);
    free(c->tok_order);
    free(c->grp_of);
    free(c);
}

uint64_t fwd_tokens_processed(const struct fwd_ctx *c)
{
    return c->n_processed;
}

/* cos/sin of every rotated pair for position pos: cs (n_rot,) as
 * [cos0, sin0, cos1, sin1, ...]. theta_i = pos * scale * base^(-2i/n_rot) /
 * factor_i, with the power taken as a running product like the reference. */
static void fwd_rope_cache(const struct model *m, int32_t pos, float *cs)
{
    const struct model_hparams *hp = &m->hp;
    float theta_scale = powf(hp->rope_freq_base, -2.0f / (float)hp->n_rot);
    float theta = (float)pos;
    for (uint32_t i = 0; i < hp->n_rot / 2; i++) {
        float ff = m->rope_freqs ? m->rope_freqs[i] : 1.0f;
        float t = hp->rope_freq_scale * (theta / ff);
        cs[2 * i] = cosf(t);
        cs[2 * i + 1] = sinf(t);
        theta *= theta_scale;
    }
}

/* Rotate n_heads heads of head_dim values in x by the cached angles. */
static void fwd_rope_apply(const struct model_hparams *hp, float *x, uint32_t n_heads,
                           const float *cs)
{
    uint32_t half = hp->n_rot / 2;
    for (uint32_t h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * hp->head_dim;
        for (uint32_t i = 0; i < half; i++) {
            float c = cs[2 * i], s = cs[2 * i + 1];
            uint32_t a, b;
            if (hp->rope == MODEL_ROPE_NEOX) {
                a = i;
                b = i + half;
            } else {
                a = 2 * i;
                b = 2 * i + 1;
            }
            float x0 = v[a], x1 = v[b];
            v[a] = x0 * c - x1 * s;
            v[b] = x0 * s + x1 * c;
        }
    }
}

static void fwd_store_row(enum dt_type type, void *dst, const float *src, size_t n)
{
    if (type == DT_F32) {
        memcpy(dst, src, n * sizeof(float));
    } else if (type == DT_F16) {
        dt_fp16 *d = dst;
        for (size_t i = 0; i < n; i++)
            d[i] = dt_f32_to_fp16(src[i]);
    } else {
        dt_bf16 *d = dst;
        for (size_t i = 0; i < n; i++)
            d[i] = dt_f32_to_bf16(src[i]);
    }
}

struct fwd_attn_job {
    struct fwd_ctx *c;
    const struct kv_seq *seqs;
    const int32_t *pos;
    uint32_t layer;
    uint32_t n_groups;        /* sequences present in the step */
    const uint32_t *grp_seq;  /* (n_groups,) sequence index of each group */
    const uint32_t *grp_start; /* (n_groups + 1,) ranges of tok_order */
    const uint32_t *tok_order; /* batch token indices, grouped by sequence */
};

/* Causal attention, one work item per (sequence, KV head): the head's K and
 * V rows are converted to floats once, then every query head of its group
 * and every token of the sequence in this step attends over them. Each
 * (token, head) result depends only on its own inputs (batch invariance). */
static void fwd_attn_task(void *arg, unsigned ith, unsigned nth)
{
    const struct fwd_attn_job *j = arg;
    struct fwd_ctx *c = j->c;
    const struct model_hparams *hp = &c->m->hp;
    const struct kv_pool *kv = c->kv;
    const enum kern_isa isa = c->kc->isa;
    size_t hd = hp->head_dim, Q = (size_t)hp->n_head * hd;
    uint32_t group = hp->n_head / hp->n_head_kv;
    float scale = 1.0f / sqrtf((float)hd);
    float *sc = c->scores + (size_t)ith * c->max_ctx;
    float *kf = c->kvf + (size_t)ith * 2 * c->max_ctx * hd, *vf = kf + c->max_ctx * hd;
    size_t esize = kv->type == DT_F32 ? 4 : 2;
    size_t lo, hi;
    tp_split((size_t)j->n_groups * hp->n_head_kv, ith, nth, &lo, &hi);
    for (size_t it = lo; it < hi; it++) {
        uint32_t g = (uint32_t)(it / hp->n_head_kv), kvh = (uint32_t)(it % hp->n_head_kv);
        const struct kv_seq *s = &j->seqs[j->grp_seq[g]];
        uint32_t n_pos = 0;
        for (uint32_t k = j->grp_start[g]; k < j->grp_start[g + 1]; k++)
            if ((uint32_t)j->pos[j->tok_order[k]] + 1 > n_pos)
                n_pos = (uint32_t)j->pos[j->tok_order[k]] + 1;
        size_t off = (size_t)kvh * hd * esize;
        for (uint32_t p = 0; p < n_pos; p++) {
            kern_kv_to_f32(isa, kv->type, (const char *)kv_k_row(kv, s, j->layer, p) + off,
                           kf + (size_t)p * hd, hd);
            kern_kv_to_f32(isa, kv->type, (const char *)kv_v_row(kv, s, j->layer, p) + off,
                           vf + (size_t)p * hd, hd);
        }
        for (uint32_t k = j->grp_start[g]; k < j->grp_start[g + 1]; k++) {
            uint32_t t = j->tok_order[k];
            for (uint32_t h = kvh * group; h < (kvh + 1) * group; h++)
                kern_attn_head(isa, hd, (size_t)j->pos[t] + 1, c->q + (size_t)t * Q + h * hd, kf,
                               vf, hd, scale, sc, c->att + (size_t)t * Q + h * hd);
        }
    }
}

static void fwd_add_bias(float *x, const float *b, size_t n_rows, size_t n)
{
    if (!b)
        return;
    for (size_t r = 0; r < n_rows; r++)
        for (size_t i = 0; i < n; i++)
            x[r * n + i] += b[i];
}

/* One step of at most max_tokens tokens. */
static int fwd_step(struct fwd_ctx *c, uint32_t T, const int32_t *tokens, const int32_t *pos,
                    const uint32_t *seq, const uint8_t *want, const struct kv_seq *seqs,
                    float *logits, size_t *n_out)
{
    const struct model *m = c->m;
    const struct model_hparams *hp = &m->hp;
    struct kern_ctx *kc = c->kc;
    size_t E = hp->n_embd, Q = (size_t)hp->n_head * hp->head_dim, KV = c->kv->kv_dim,
           F = hp->n_ff;
    int rc;

    for (uint32_t t = 0; t < T; t++) {
        model_embed(m, tokens[t], c->x + t * E);
        fwd_rope_cache(m, pos[t], c->rope + (size_t)t * hp->n_rot);
    }
    /* Group the tokens by sequence (groups in order of first appearance,
     * tokens in batch order within a group) for attention. */
    uint32_t n_groups = 0;
    for (uint32_t t = 0; t < T; t++) {
        uint32_t g = 0;
        while (g < n_groups && c->grp_seq[g] != seq[t])
            g++;
        if (g == n_groups)
            c->grp_seq[n_groups++] = seq[t];
        c->grp_of[t] = g;
    }
    memset(c->grp_start, 0, (n_groups + 1) * sizeof *c->grp_start);
    for (uint32_t t = 0; t < T; t++)
        c->grp_start[c->grp_of[t] + 1]++;
    for (uint32_t g = 0; g < n_groups; g++)
        c->grp_start[g + 1] += c->grp_start[g];
    for (uint32_t t = 0; t < T; t++)
        c->tok_order[c->grp_start[c->grp_of[t]]++] = t;
    for (uint32_t g = n_groups; g > 0; g--) /* restore the starts */
        c->grp_start[g] = c->grp_start[g - 1];
    c->grp_start[0] = 0;

    for (uint32_t il = 0; il < hp->n_layer; il++) {
        const struct model_layer *l = &m->layers[il];
        for (uint32_t t = 0; t < T; t++)
            kern_rmsnorm(c->xb + t * E, c->x + t * E, l->attn_norm, E, hp->rms_eps);
        if ((rc = kern_matmul(kc, &l->wq, T, c->xb, E, c->q, Q)) ||
            (rc = kern_matmul(kc, &l->wk, T, c->xb, E, c->k, KV)) ||
            (rc = kern_matmul(kc, &l->wv, T, c->xb, E, c->v, KV)))
            return rc;
        fwd_add_bias(c->q, l->bq, T, Q);
        fwd_add_bias(c->k, l->bk, T, KV);
        fwd_add_bias(c->v, l->bv, T, KV);
        for (uint32_t t = 0; t < T; t++) {
            const float *cs = c->rope + (size_t)t * hp->n_rot;
            fwd_rope_apply(hp, c->q + t * Q, hp->n_head, cs);
            fwd_rope_apply(hp, c->k + t * KV, hp->n_head_kv, cs);
            const struct kv_seq *s = &seqs[seq[t]];
            fwd_store_row(c->kv->type, kv_k_row(c->kv, s, il, (uint32_t)pos[t]), c->k + t * KV, KV);
            fwd_store_row(c->kv->type, kv_v_row(c->kv, s, il, (uint32_t)pos[t]), c->v + t * KV, KV);
        }
        struct fwd_attn_job job = {c, seqs, pos, il, n_groups, c->grp_seq, c->grp_start,
                                   c->tok_order};
        if (kc->pool)
            tp_run(kc->pool, fwd_attn_task, &job);
        else
            fwd_attn_task(&job, 0, 1);
        if ((rc = kern_matmul(kc, &l->wo, T, c->att, Q, c->xb, E)))
            return rc;
        for (size_t i = 0; i < (size_t)T * E; i++)
            c->x[i] += c->xb[i];

        for (uint32_t t = 0; t < T; t++)
            kern_rmsnorm(c->xb + t * E, c->x + t * E, l->ffn_norm, E, hp->rms_eps);
        if ((rc = kern_matmul(kc, &l->w_gate, T, c->xb, E, c->hb, F)) ||
            (rc = kern_matmul(kc, &l->w_up, T, c->xb, E, c->hb2, F)))
            return rc;
        kern_swiglu(c->hb, c->hb2, (size_t)T * F);
        if ((rc = kern_matmul(kc, &l->w_down, T, c->hb, F, c->xb, E)))
            return rc;
        for (size_t i = 0; i < (size_t)T * E; i++)
            c->x[i] += c->xb[i];
    }

    /* Final norm of the rows that want logits, gathered contiguously. */
    size_t n = 0;
    for (uint32_t t = 0; t < T; t++)
        if (want[t])
            kern_rmsnorm(c->xb + (n++) * E, c->x + t * E, m->output_norm, E, hp->rms_eps);
    if (n && (rc = kern_matmul(kc, &m->output, n, c->xb, E, logits, hp->n_vocab)))
        return rc;
    *n_out = n;
    c->n_processed += T;
    return 0;
}

int fwd_eval(struct fwd_ctx *c, const struct fwd_batch *b, const struct kv_seq *seqs,
             size_t n_seqs, float *logits)
{
    const struct model_hparams *hp = &c->m->hp;
    /* Validate everything before touching the cache. */
    for (size_t i = 0; i < n_seqs; i++)
        for (uint32_t k = 0; k < seqs[i].n_blocks; k++)
            if (seqs[i].blocks[k] >= c->kv->n_blocks)
                return -EINVAL;
    for (uint32_t t = 0; t < b->n_tokens; t++) {
        if (b->tokens[t] < 0 || (uint32_t)b->tokens[t] >= hp->n_vocab || b->pos[t] < 0 ||
            (uint32_t)b->pos[t] >= c->max_ctx || b->seq[t] >= n_seqs ||
            (uint32_t)b->pos[t] / KV_BLOCK_TOKENS >= seqs[b->seq[t]].n_blocks)
            return -EINVAL;
    }
    uint8_t *want_last = NULL;
    const uint8_t *want = b->logits;
    if (!want) {
        want_last = calloc(b->n_tokens ? b->n_tokens : 1, 1);
        if (!want_last)
            return -ENOMEM;
        if (b->n_tokens)
            want_last[b->n_tokens - 1] = 1;
        want = want_last;
    }
    int rc = 0;
    for (uint32_t start = 0; start < b->n_tokens && rc == 0;) {
        uint32_t T = b->n_tokens - start;
        if (T > c->max_tokens)
            T = c->max_tokens;
        size_t n_out = 0;
        rc = fwd_step(c, T, b->tokens + start, b->pos + start, b->seq + start, want + start, seqs,
                      logits, &n_out);
        logits += n_out * hp->n_vocab;
        start += T;
    }
    free(want_last);
    return rc;
}
