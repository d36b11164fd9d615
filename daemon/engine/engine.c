/* engine.c - in-process engine and single-sequence generation. See
 * engine.h. */
#include "engine.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "scheduler.h"

static int engine_err(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

void engine_params_default(struct engine_params *p)
{
    memset(p, 0, sizeof *p);
    p->kv_type = DT_F16;
    p->n_batch = 512;
}

int engine_open(const struct engine_params *p, struct engine **out, char *err, size_t errlen)
{
    struct engine *e = calloc(1, sizeof *e);
    if (!e)
        return engine_err(err, errlen, -ENOMEM, "out of memory");
    int rc = model_open(p->model_path, &e->model, err, errlen);
    if (rc)
        goto fail;
    rc = tok_load(e->model->gguf, &e->tok, err, errlen);
    if (rc)
        goto fail;
    if (tok_n_vocab(e->tok) != e->model->hp.n_vocab) {
        /* The tokenizer may have fewer entries than the embedding rows
         * (padding); it may not have more. */
        if (tok_n_vocab(e->tok) > e->model->hp.n_vocab) {
            rc = engine_err(err, errlen, -EINVAL, "vocabulary has %u tokens, the model %u rows",
                            tok_n_vocab(e->tok), e->model->hp.n_vocab);
            goto fail;
        }
    }
    rc = tp_create(p->n_threads, &e->pool);
    if (rc) {
        engine_err(err, errlen, rc, "cannot start %u threads", p->n_threads);
        goto fail;
    }
    rc = kern_ctx_init(&e->kc, kern_isa_best(), e->pool);
    if (rc) {
        engine_err(err, errlen, rc, "out of memory");
        goto fail;
    }
    const struct model_hparams *hp = &e->model->hp;
    uint32_t n_ctx = p->n_ctx;
    if (!n_ctx)
        n_ctx = hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096;
    if (n_ctx < 16)
        n_ctx = 16;
    e->n_ctx = n_ctx;
    enum dt_type kv_type = p->kv_type;
    if (kv_type != DT_F32 && kv_type != DT_F16 && kv_type != DT_BF16) {
        rc = engine_err(err, errlen, -EINVAL, "KV cache type must be f32, f16 or bf16");
        goto fail;
    }
    uint32_t n_blocks = (n_ctx + KV_BLOCK_TOKENS - 1) / KV_BLOCK_TOKENS;
    if (p->kv_bytes) {
        size_t per = kv_block_bytes_total(kv_type, hp->n_layer, hp->n_head_kv * hp->head_dim);
        uint64_t nb = p->kv_bytes / per;
        if (nb == 0 || nb > UINT32_MAX / 2) {
            rc = engine_err(err, errlen, -EINVAL,
                            "KV memory of %llu bytes is not between one block (%zu bytes) and "
                            "2^31 blocks",
                            (unsigned long long)p->kv_bytes, per);
            goto fail;
        }
        n_blocks = (uint32_t)nb;
    }
    rc = kv_pool_init(&e->kv, kv_type, hp->n_layer, hp->n_head_kv * hp->head_dim, n_blocks);
    if (rc) {
        engine_err(err, errlen, rc, "cannot allocate the KV cache (%u blocks of %d tokens)", n_blocks, KV_BLOCK_TOKENS);
        goto fail;
    }
    rc = fwd_init(&e->fwd, e->model, &e->kv, &e->kc, p->n_batch ? p->n_batch : 512, n_ctx);
    if (rc) {
        engine_err(err, errlen, rc, "cannot allocate the forward workspace");
        goto fail;
    }
    *out = e;
    return 0;
fail:
    engine_close(e);
    return rc;
}

void engine_close(struct engine *e)
{
    if (!e)
        return;
    fwd_free(e->fwd);
    if (e->kv.k)
        kv_pool_free(&e->kv);
    kern_ctx_free(&e->kc);
    tp_free(e->pool);
    tok_free(e->tok);
    model_free(e->model);
    free(e);
}

int engine_tokenize(const struct engine *e, const char *text, size_t len, int32_t **out,
                    size_t *n_out)
{
    size_t cap = len + 4, n = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids)
        return -ENOMEM;
    int rc = tok_encode(e->tok, text, len, true, true, ids, cap, &n);
    if (rc == -ENOSPC) {
        int32_t *grown = realloc(ids, n * sizeof *ids);
        if (!grown) {
            free(ids);
            return -ENOMEM;
        }
        ids = grown;
        rc = tok_encode(e->tok, text, len, true, true, ids, n, &n);
    }
    if (rc) {
        free(ids);
        return rc;
    }
    *out = ids;
    *n_out = n;
    return 0;
}

const char *gen_finish_name(enum gen_finish f)
{
    switch (f) {
    case GEN_FINISH_EOS:
        return "eos";
    case GEN_FINISH_STOP:
        return "stop";
    default:
        return "length";
    }
}

/* Run n tokens of one sequence at positions pos0.. through the model, with
 * logits for the last one (or all, if all_logits) written to logits. */
static int engine_run(struct engine *e, struct kv_seq *seq, const int32_t *tokens, size_t n,
                      uint32_t pos0, bool all_logits, float *logits)
{
    if (pos0 + n > e->n_ctx)
        return -EINVAL;
    int rc = kv_seq_reserve(&e->kv, seq, (uint32_t)(pos0 + n));
    if (rc)
        return rc;
    int32_t *pos = malloc(n * sizeof *pos);
    uint32_t *sid = calloc(n, sizeof *sid);
    uint8_t *want = all_logits ? malloc(n) : NULL;
    if (!pos || !sid || (all_logits && !want)) {
        free(pos);
        free(sid);
        free(want);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        pos[i] = (int32_t)(pos0 + i);
    if (want)
        memset(want, 1, n);
    struct fwd_batch b = {(uint32_t)n, tokens, pos, sid, want};
    rc = fwd_eval(e->fwd, &b, seq, 1, logits);
    free(pos);
    free(sid);
    free(want);
    return rc;
}

int engine_eval(struct engine *e, const int32_t *tokens, size_t n, float *logits)
{
    if (n == 0 || n > e->n_ctx)
        return -EINVAL;
    struct kv_seq seq = {0};
    int rc = engine_run(e, &seq, tokens, n, 0, true, logits);
    kv_seq_release(&e->kv, &seq);
    return rc;
}

int engine_grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    void *n = realloc(*p, c * elem);
    if (!n)
        return -ENOMEM;
    *p = n;
    *cap = c;
    return 0;
}

/* Collects one request's events into a gen_result. */
struct engine_collect {
    struct gen_result *res;
    const struct gen_callbacks *cb;
    size_t cap_tokens, cap_text;
    int rc;
};

static void engine_on_event(void *ud, const struct sched_event *ev)
{
    struct engine_collect *c = ud;
    struct gen_result *res = c->res;
    if (ev->type == SCHED_EV_ERROR) {
        c->rc = ev->error ? ev->error : -EIO;
        return;
    }
    if (ev->type != SCHED_EV_TOKEN) {
        res->prefill_s = ev->times.first_token > ev->times.queued
                             ? (double)(ev->times.first_token - ev->times.queued) * 1e-9
                             : 0;
        res->decode_s = ev->times.first_token
                            ? (double)(ev->times.finished - ev->times.first_token) * 1e-9
                            : 0;
        return;
    }
    if (c->rc)
        return;
    if (ev->token >= 0) {
        size_t cap_top = c->cap_tokens;
        if (engine_grow((void **)&res->tokens, &c->cap_tokens, res->n_tokens + 1,
                        sizeof *res->tokens) ||
            (res->top_probs && engine_grow((void **)&res->top, &cap_top,
                                           (res->n_tokens + 1), res->top_probs * sizeof *res->top))) {
            c->rc = -ENOMEM;
            return;
        }
        if (res->top_probs)
            memcpy(res->top + res->n_tokens * res->top_probs, ev->top,
                   res->top_probs * sizeof *res->top);
        res->tokens[res->n_tokens++] = ev->token;
    }
    if (ev->text_len) {
        if (engine_grow((void **)&res->text, &c->cap_text, res->text_len + ev->text_len + 1, 1)) {
            c->rc = -ENOMEM;
            return;
        }
        memcpy(res->text + res->text_len, ev->text, ev->text_len);
        res->text_len += ev->text_len;
        res->text[res->text_len] = 0;
        if (c->cb && c->cb->on_text)
            c->cb->on_text(c->cb->ud, ev->text, ev->text_len);
    }
    if (ev->sample_done)
        res->finish = ev->finish;
}

int engine_generate(struct engine *e, const struct gen_request *r, const struct gen_callbacks *cb,
                    struct gen_result *res)
{
    memset(res, 0, sizeof *res);
    if (r->n_prompt == 0 || r->n_prompt >= e->n_ctx)
        return -EINVAL;
    struct engine_collect c = {res, cb, 0, 0, 0};
    res->top_probs = r->top_probs;
    struct sched_params sp;
    sched_params_default(&sp);
    sp.prefix_cache = false;
    struct sched *s;
    int rc = sched_create(e, &sp, engine_on_event, &c, &s);
    if (rc)
        return rc;
    struct sched_request q = {0};
    q.prompt = r->prompt;
    q.n_prompt = r->n_prompt;
    q.sampling = r->sampling;
    q.max_tokens = r->max_tokens;
    if (q.max_tokens > e->n_ctx - r->n_prompt)
        q.max_tokens = e->n_ctx - (uint32_t)r->n_prompt;
    q.stop = r->stop;
    q.n_stop = r->n_stop;
    q.top_probs = (uint32_t)r->top_probs;
    rc = sched_submit(s, &q, NULL, NULL, 0);
    while (rc == 0 && c.rc == 0 && sched_has_work(s)) {
        int n = sched_step(s);
        if (n < 0)
            rc = n;
    }
    sched_free(s);
    if (!rc)
        rc = c.rc;
    if (!rc && !res->text) {
        res->text = calloc(1, 1);
        if (!res->text)
            rc = -ENOMEM;
    }
    if (rc)
        gen_result_free(res);
    return rc;
}

void gen_result_free(struct gen_result *res)
{
    free(res->tokens);
    free(res->text);
    free(res->top);
    memset(res, 0, sizeof *res);
}
