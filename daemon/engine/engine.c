/* engine.c - in-process engine and single-sequence generation. See
 * engine.h. */
#include "engine.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gguf.h"

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

static double engine_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
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
    rc = kv_pool_init(&e->kv, kv_type, hp->n_layer, hp->n_head_kv * hp->head_dim, n_blocks);
    if (rc) {
        engine_err(err, errlen, rc, "cannot allocate the KV cache (%u tokens)", n_ctx);
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

/* Growable byte buffer for the generated text. */
static int engine_append(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t nc = *cap ? *cap : 256;
        while (nc < *len + n + 1)
            nc *= 2;
        char *nb = realloc(*buf, nc);
        if (!nb)
            return -ENOMEM;
        *buf = nb;
        *cap = nc;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = 0;
    return 0;
}

/* Length of the longest suffix of text[0, len) that is a proper prefix of
 * some stop string: that much must be held back from the stream. */
static size_t engine_stop_holdback(const char *text, size_t len, const char *const *stop,
                                   size_t n_stop)
{
    size_t best = 0;
    for (size_t i = 0; i < n_stop; i++) {
        size_t sl = strlen(stop[i]);
        if (sl == 0)
            continue;
        for (size_t k = sl - 1 < len ? sl - 1 : len; k > best; k--)
            if (memcmp(text + len - k, stop[i], k) == 0) {
                best = k;
                break;
            }
    }
    return best;
}

/* Earliest occurrence of any stop string at or after `from`; len if none. */
static size_t engine_stop_find(const char *text, size_t len, size_t from,
                               const char *const *stop, size_t n_stop)
{
    size_t best = len;
    for (size_t i = 0; i < n_stop; i++) {
        size_t sl = strlen(stop[i]);
        if (!sl)
            continue;
        for (size_t p = from; p + sl <= len && p < best; p++)
            if (memcmp(text + p, stop[i], sl) == 0) {
                best = p;
                break;
            }
    }
    return best;
}

int engine_generate(struct engine *e, const struct gen_request *r, const struct gen_callbacks *cb,
                    struct gen_result *res)
{
    memset(res, 0, sizeof *res);
    uint32_t n_vocab = e->model->hp.n_vocab;
    if (r->n_prompt == 0 || r->n_prompt > e->n_ctx)
        return -EINVAL;
    for (size_t i = 0; i < r->n_prompt; i++)
        if (r->prompt[i] < 0 || (uint32_t)r->prompt[i] >= n_vocab)
            return -EINVAL;
    struct smp_state *smp = NULL;
    int rc = smp_create(&r->sampling, n_vocab, &smp);
    if (rc)
        return rc;
    float *logits = malloc((size_t)n_vocab * sizeof *logits);
    size_t max_new = r->max_tokens;
    if (max_new > e->n_ctx - r->n_prompt + 1)
        max_new = e->n_ctx - r->n_prompt + 1;
    res->tokens = malloc((max_new ? max_new : 1) * sizeof *res->tokens);
    res->top_probs = r->top_probs;
    if (r->top_probs)
        res->top = malloc((max_new ? max_new : 1) * r->top_probs * sizeof *res->top);
    size_t text_cap = 0, emitted = 0;
    char piece[256];
    struct kv_seq seq = {0};
    if (!logits || !res->tokens || (r->top_probs && !res->top)) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < r->n_prompt; i++)
        smp_accept(smp, r->prompt[i]);

    double t0 = engine_now();
    rc = engine_run(e, &seq, r->prompt, r->n_prompt, 0, false, logits);
    if (rc)
        goto out;
    double t1 = engine_now();
    res->prefill_s = t1 - t0;
    res->finish = GEN_FINISH_LENGTH;
    uint32_t pos = (uint32_t)r->n_prompt;
    while (res->n_tokens < max_new) {
        if (r->top_probs)
            smp_top_probs(logits, n_vocab, r->top_probs, res->top + res->n_tokens * r->top_probs);
        int32_t id = smp_sample(smp, logits);
        smp_accept(smp, id);
        res->tokens[res->n_tokens++] = id;
        if (tok_is_eog(e->tok, id)) {
            res->finish = GEN_FINISH_EOS;
            break;
        }
        int n = tok_piece(e->tok, id, piece, sizeof piece, false);
        if (n > (int)sizeof piece)
            n = (int)sizeof piece; /* pieces are short; never more than the buffer */
        size_t before = res->text_len;
        if (n > 0 && (rc = engine_append(&res->text, &res->text_len, &text_cap, piece, (size_t)n)))
            goto out;
        if (r->n_stop) {
            /* A stop string may straddle pieces: search from where a match
             * could start. */
            size_t from = before > 255 ? before - 255 : 0;
            size_t at = engine_stop_find(res->text, res->text_len, from, r->stop, r->n_stop);
            if (at < res->text_len) {
                res->text_len = at;
                res->text[at] = 0;
                res->finish = GEN_FINISH_STOP;
                break;
            }
        }
        size_t hold = engine_stop_holdback(res->text, res->text_len, r->stop, r->n_stop);
        if (cb && cb->on_text && res->text_len - hold > emitted) {
            cb->on_text(cb->ud, res->text + emitted, res->text_len - hold - emitted);
            emitted = res->text_len - hold;
        }
        if (res->n_tokens >= max_new || pos >= e->n_ctx)
            break;
        rc = engine_run(e, &seq, &id, 1, pos++, false, logits);
        if (rc)
            goto out;
    }
    if (cb && cb->on_text && res->text_len > emitted)
        cb->on_text(cb->ud, res->text + emitted, res->text_len - emitted);
    res->decode_s = engine_now() - t1;
    if (!res->text)
        rc = engine_append(&res->text, &res->text_len, &text_cap, "", 0);
out:
    kv_seq_release(&e->kv, &seq);
    smp_free(smp);
    free(logits);
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
