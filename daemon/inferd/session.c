/* session.c - one client session on the IPC thread: Hello/Welcome, request
 * validation and quotas, routing of engine events into TokenChunk / Done /
 * Error messages, the completion backlog. See session.h. */
#include "session.h"

#include "ipc/doorbell.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* stream = false: what one sample produced so far, sent as one TokenChunk
 * at the end (or earlier when it grows near the message limit). */
struct sess_acc {
    int32_t *tok;
    float *lp;                    /* logprob of each token */
    struct wire_top_logprob *top; /* logprobs entries per token */
    size_t n, cap;
    char *text;
    size_t n_text, cap_text;
};

/* A live request of the session: n samples (sequences). */
struct sess_req {
    uint64_t creq_id, ticket;
    uint32_t worker;
    uint32_t n;      /* samples; charged to the concurrent-request quota */
    uint64_t tokens; /* charged to the session's queued-token quota */
    bool stream, cancel_sent;
    uint32_t logprobs;
    uint8_t *finish;      /* n entries: each sample's wire_finish_reason */
    struct sess_acc *acc; /* stream = false: n entries */
};

/* One message waiting for room in the completion ring. */
struct sess_out {
    struct sess_out *next;
    size_t len;
    bool droppable; /* a TokenChunk: may be dropped once the session overflowed */
    unsigned char data[];
};

static uint64_t sess_now_ns(void)
{
    return sched_now_ns();
}

static size_t sess_backlog_soft(const struct sess *s)
{
    size_t soft = 4 * (size_t)s->lim.completion_ring_bytes;
    return soft < (1u << 20) ? (1u << 20) : soft;
}

void sess_default_limits(const struct inferd_config *cfg, struct wire_limits *lim)
{
    lim->max_concurrent_requests = cfg->max_concurrent;
    lim->max_queued_tokens = cfg->max_queued_tokens;
    lim->submit_ring_bytes = cfg->submit_ring_bytes;
    lim->completion_ring_bytes = cfg->completion_ring_bytes;
    lim->max_message_bytes = cfg->max_message_bytes;
}

static struct ring_params sess_ring_params(uint32_t cap, uint32_t msg_max)
{
    uint32_t rec = cap / 4 < msg_max ? cap / 4 : msg_max;
    return (struct ring_params){.capacity = cap, .record_max = rec, .msg_max = msg_max};
}

int sess_new(struct sess_ctx *ctx, int sock, const struct ucred *cred, struct sess **out)
{
    const struct inferd_config *cfg = ctx->cfg;
    *out = NULL;
    struct sess *s = calloc(1, sizeof *s);
    if (!s) {
        close(sock);
        return -ENOMEM;
    }
    s->sock = sock;
    s->bell_daemon = s->bell_client = -1;
    s->cred = *cred;
    s->created_ns = sess_now_ns();
    sess_default_limits(cfg, &s->lim);
    int rc = -ENOMEM;
    s->reqs = calloc(cfg->max_concurrent, sizeof *s->reqs);
    s->rx_cap = cfg->max_message_bytes;
    s->rx = malloc(s->rx_cap);
    if (!s->reqs || !s->rx)
        goto fail;
    struct shm_params sp = {.ring = {
        [SHM_RING_SUBMIT] = sess_ring_params(cfg->submit_ring_bytes, cfg->max_message_bytes),
        [SHM_RING_COMPLETE] = sess_ring_params(cfg->completion_ring_bytes, cfg->max_message_bytes),
    }};
    if ((rc = shm_create(&s->shm, &sp)))
        goto fail;
    if ((rc = s->bell_daemon = doorbell_create()) < 0)
        goto fail;
    if ((rc = s->bell_client = doorbell_create()) < 0)
        goto fail;
    if ((rc = shm_ring_open(s->shm, SHM_RING_SUBMIT, RING_CONSUMER, &s->sub)))
        goto fail;
    if ((rc = shm_ring_open(s->shm, SHM_RING_COMPLETE, RING_PRODUCER, &s->comp)))
        goto fail;
    /* Both of our handles wake the client: the submission consumer when
     * the client waits for room, the completion producer when it waits for
     * messages. */
    ring_set_doorbell(s->sub, s->bell_client);
    ring_set_doorbell(s->comp, s->bell_client);
    *out = s;
    return 0;
fail:
    sess_free(s);
    return rc;
}

static void sess_req_clear(struct sess_req *r)
{
    for (uint32_t i = 0; r->acc && i < r->n; i++) {
        free(r->acc[i].tok);
        free(r->acc[i].lp);
        free(r->acc[i].top);
        free(r->acc[i].text);
    }
    free(r->acc);
    free(r->finish);
    memset(r, 0, sizeof *r);
}

void sess_free(struct sess *s)
{
    if (!s)
        return;
    ring_close(s->sub);
    ring_close(s->comp);
    shm_free(s->shm);
    if (s->sock >= 0)
        close(s->sock);
    if (s->bell_daemon >= 0)
        close(s->bell_daemon);
    if (s->bell_client >= 0)
        close(s->bell_client);
    for (uint32_t i = 0; s->reqs && i < s->n_reqs; i++)
        sess_req_clear(&s->reqs[i]);
    free(s->reqs);
    while (s->out_head) {
        struct sess_out *n = s->out_head->next;
        free(s->out_head);
        s->out_head = n;
    }
    free(s->rx);
    free(s);
}

/* ---- sending ------------------------------------------------------------ */

static int sess_fatal(struct sess *s, const char *why)
{
    if (!s->close_reason)
        s->close_reason = why;
    return 0;
}

static void sess_cancel_reqs(struct sess_ctx *ctx, struct sess *s)
{
    for (uint32_t i = 0; i < s->n_reqs; i++) {
        struct sess_req *r = &s->reqs[i];
        if (!r->cancel_sent && r->worker < ctx->n_workers &&
            wk_cancel(ctx->workers[r->worker], r->ticket) == 0)
            r->cancel_sent = true;
    }
}

/* Sends the message in ctx->b, or queues it behind the backlog. */
static void sess_send(struct sess_ctx *ctx, struct sess *s, bool droppable)
{
    const void *buf;
    size_t len;
    if (wire_builder_finish(ctx->b, &buf, &len) != 0 || s->close_reason)
        return;
    if (!s->out_head) {
        int rc = ring_send(s->comp, buf, len);
        if (rc == 0)
            return;
        if (rc != -EAGAIN) {
            sess_fatal(s, "the completion ring is corrupt");
            return;
        }
    }
    if (droppable && s->overflowed)
        return;
    struct sess_out *o = malloc(sizeof *o + len);
    if (!o) {
        sess_fatal(s, "out of memory for the completion backlog");
        return;
    }
    o->next = NULL;
    o->len = len;
    o->droppable = droppable;
    memcpy(o->data, buf, len);
    if (s->out_tail)
        s->out_tail->next = o;
    else
        s->out_head = o;
    s->out_tail = o;
    s->out_bytes += len;
    if (!s->overflowed && s->out_bytes > sess_backlog_soft(s)) {
        /* The client does not read: stop generating for it. Terminal
         * events still queue (one per request, bounded by the quota). */
        s->overflowed = true;
        sess_cancel_reqs(ctx, s);
    }
    if (s->out_bytes > 2 * sess_backlog_soft(s))
        sess_fatal(s, "the client does not read its completion ring");
}

static int sess_flush(struct sess *s)
{
    int n = 0;
    while (s->out_head && !s->close_reason) {
        struct sess_out *o = s->out_head;
        int rc = ring_send(s->comp, o->data, o->len);
        if (rc == -EAGAIN)
            break;
        if (rc != 0) {
            sess_fatal(s, "the completion ring is corrupt");
            break;
        }
        s->out_head = o->next;
        if (!s->out_head)
            s->out_tail = NULL;
        s->out_bytes -= o->len;
        free(o);
        n++;
    }
    if (!s->out_head)
        s->overflowed = false; /* caught up: it may submit again */
    return n;
}

static int sess_error(struct sess_ctx *ctx, struct sess *s, uint64_t creq,
                      enum wire_error_code code, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct wire_error e = {
        .client_request_id = creq,
        .code = code,
        .message = {msg, strlen(msg)},
    };
    if (wire_build_error(ctx->b, &e) == 0)
        sess_send(ctx, s, false);
    return 0;
}

void sess_send_session_error(struct sess_ctx *ctx, struct sess *s, enum wire_error_code code,
                             const char *msg)
{
    (void)sess_error(ctx, s, 0, code, "%s", msg);
}

/* ---- requests ----------------------------------------------------------- */

static struct sess_req *sess_find(struct sess *s, uint64_t creq)
{
    for (uint32_t i = 0; i < s->n_reqs; i++)
        if (s->reqs[i].creq_id == creq)
            return &s->reqs[i];
    return NULL;
}

static void sess_req_remove(struct sess_ctx *ctx, struct sess *s, struct sess_req *r)
{
    s->queued_tokens -= r->tokens;
    s->n_seqs -= r->n;
    ctx->live_requests--;
    sess_req_clear(r);
    uint32_t i = (uint32_t)(r - s->reqs);
    if (i != s->n_reqs - 1) {
        *r = s->reqs[s->n_reqs - 1];
        memset(&s->reqs[s->n_reqs - 1], 0, sizeof *r);
    }
    s->n_reqs--;
}

static int sess_model(struct sess_ctx *ctx, const struct wire_str *name, uint32_t *idx)
{
    if (!name->ptr) {
        *idx = 0;
        return 0;
    }
    for (size_t i = 0; i < ctx->n_workers; i++)
        if (strlen(wk_name(ctx->workers[i])) == name->len &&
            !memcmp(wk_name(ctx->workers[i]), name->ptr, name->len)) {
            *idx = (uint32_t)i;
            return 0;
        }
    if (!ctx->n_workers && name->len == 4 && !memcmp(name->ptr, "echo", 4)) {
        *idx = 0;
        return 0;
    }
    return -ENOENT;
}

/* Parameter checks that need no model. NULL or what is wrong. */
static const char *sess_check_params(const struct sess_ctx *ctx, const struct wire_request *q)
{
    const struct wire_sampling *p = &q->sampling;
    if (q->n == 0)
        return "n must be at least 1";
    if (q->n > ctx->cfg->max_n)
        return "n is above the daemon's limit of parallel samples per request (max-n)";
    if (isnan(p->temperature) || isinf(p->temperature) || p->temperature > 1000.0f)
        return "temperature must be a finite number";
    if (!(p->top_p >= 0.0f && p->top_p <= 1.0f))
        return "top_p must be in [0, 1]";
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
        return "min_p must be in [0, 1]";
    if (!(p->repeat_penalty > 0.0f && p->repeat_penalty <= 1000.0f))
        return "repeat_penalty must be in (0, 1000]";
    if (!(fabsf(p->frequency_penalty) <= 1000.0f) || !(fabsf(p->presence_penalty) <= 1000.0f))
        return "frequency and presence penalties must be in [-1000, 1000]";
    if (p->repeat_last_n < -1)
        return "repeat_last_n must be >= -1";
    if (q->logprobs > SESS_MAX_LOGPROBS)
        return "logprobs must be at most 100";
    if (q->stop.n > SESS_MAX_STOP)
        return "at most 16 stop strings";
    for (size_t i = 0; i < q->stop.n; i++) {
        struct wire_str st;
        if (wire_str_at(&q->stop, i, &st) || st.len == 0 || st.len > SESS_MAX_STOP_BYTES ||
            memchr(st.ptr, 0, st.len))
            return "stop strings must be 1..256 bytes without NUL";
    }
    if (q->cache_salt.ptr &&
        (q->cache_salt.len > SESS_MAX_SALT_BYTES || memchr(q->cache_salt.ptr, 0, q->cache_salt.len)))
        return "cache_salt must be at most 256 bytes without NUL";
    return NULL;
}

/* The null engine: a TokenChunk echoing the prompt, then Done. */
static int sess_echo(struct sess_ctx *ctx, struct sess *s, const struct wire_request *q)
{
    uint64_t t = sess_now_ns();
    /* Every sample echoes the prompt; all of them end with Length. */
    for (uint32_t k = 0; k < q->n; k++) {
        struct wire_token_chunk c = {.client_request_id = q->client_request_id, .sample = k};
        c.tokens = q->prompt_tokens;
        c.n_tokens = q->n_prompt_tokens;
        c.text = (const uint8_t *)q->prompt.ptr;
        c.text_len = q->prompt.len;
        if (wire_build_token_chunk(ctx->b, &c) == 0)
            sess_send(ctx, s, true);
    }
    static const uint8_t lengths[SESS_MAX_N_CAP]; /* WIRE_FINISH_LENGTH is 0 */
    uint32_t n = (uint32_t)(q->prompt_tokens ? q->n_prompt_tokens : q->prompt.len);
    struct wire_done d = {
        .client_request_id = q->client_request_id,
        .finish_reason = WIRE_FINISH_LENGTH,
        .usage = {.prompt_tokens = n, .generated_tokens = n * q->n},
        .timings = {t, t, t, sess_now_ns()},
        .sample_finish = q->n > 1 ? lengths : NULL,
        .n_sample_finish = q->n > 1 ? q->n : 0,
    };
    if (wire_build_done(ctx->b, &d) == 0)
        sess_send(ctx, s, false);
    atomic_fetch_add_explicit(&ctx->stats->echo_finished, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&ctx->stats->echo_tokens, n, memory_order_relaxed);
    return 0;
}

/* Fills job's prompt from the request (tokenizing text). 0, or an error
 * code with msg filled. */
static enum wire_error_code sess_prompt(const struct engine *e, const struct wire_request *q,
                                        int32_t **ids, size_t *n, char *msg, size_t msglen)
{
    uint32_t n_vocab = e->model->hp.n_vocab;
    if (q->prompt_tokens) {
        if (q->n_prompt_tokens == 0) {
            snprintf(msg, msglen, "empty prompt_tokens");
            return WIRE_ERR_INVALID_PARAMS;
        }
        if (q->n_prompt_tokens >= e->n_ctx) {
            snprintf(msg, msglen, "prompt has %zu tokens; the context holds %u",
                     q->n_prompt_tokens, e->n_ctx);
            return WIRE_ERR_PROMPT_TOO_LONG;
        }
        for (size_t i = 0; i < q->n_prompt_tokens; i++)
            if (q->prompt_tokens[i] < 0 || (uint32_t)q->prompt_tokens[i] >= n_vocab) {
                snprintf(msg, msglen, "token id %d at %zu is outside the vocabulary (%u)",
                         q->prompt_tokens[i], i, n_vocab);
                return WIRE_ERR_INVALID_PARAMS;
            }
        *ids = malloc(q->n_prompt_tokens * sizeof **ids);
        if (!*ids)
            goto oom;
        memcpy(*ids, q->prompt_tokens, q->n_prompt_tokens * sizeof **ids);
        *n = q->n_prompt_tokens;
        return 0;
    }
    /* No token is shorter than a byte, and no vocab has pieces of more
     * than a few dozen bytes: far beyond the context is refused untouched. */
    if (q->prompt.len > 64ull * e->n_ctx) {
        snprintf(msg, msglen, "prompt of %zu bytes cannot fit the context of %u tokens",
                 q->prompt.len, e->n_ctx);
        return WIRE_ERR_PROMPT_TOO_LONG;
    }
    int rc = engine_tokenize(e, q->prompt.ptr, q->prompt.len, ids, n);
    if (rc)
        goto oom;
    if (*n == 0) { /* as `inferctl run`: an empty prompt starts from BOS */
        int32_t bos = tok_bos(e->tok);
        if (bos < 0) {
            free(*ids);
            *ids = NULL;
            snprintf(msg, msglen, "empty prompt and the vocabulary has no BOS token");
            return WIRE_ERR_INVALID_PARAMS;
        }
        (*ids)[0] = bos;
        *n = 1;
    }
    if (*n >= e->n_ctx) {
        snprintf(msg, msglen, "prompt has %zu tokens; the context holds %u", *n, e->n_ctx);
        free(*ids);
        *ids = NULL;
        return WIRE_ERR_PROMPT_TOO_LONG;
    }
    return 0;
oom:
    snprintf(msg, msglen, "out of memory");
    return WIRE_ERR_OUT_OF_MEMORY;
}

static int32_t sess_sched_priority(int32_t wire_prio)
{
    /* The wire says higher runs first, the scheduler lower first. */
    return wire_prio == INT32_MIN ? INT32_MAX : -wire_prio;
}

static int sess_request(struct sess_ctx *ctx, struct sess *s, const struct wire_request *q)
{
    uint64_t id = q->client_request_id;
    if (ctx->draining)
        return sess_error(ctx, s, id, WIRE_ERR_SHUTTING_DOWN, "the daemon is shutting down");
    if (id == 0)
        return sess_error(ctx, s, 0, WIRE_ERR_INVALID_PARAMS, "client_request_id 0 is reserved");
    if (sess_find(s, id))
        return sess_error(ctx, s, id, WIRE_ERR_DUPLICATE_REQUEST,
                          "request %llu is still running", (unsigned long long)id);
    /* Each of a request's n samples counts as one live request. */
    if (s->n_reqs >= s->lim.max_concurrent_requests ||
        (uint64_t)s->n_seqs + (q->n && q->n <= ctx->cfg->max_n ? q->n : 1) >
            s->lim.max_concurrent_requests) /* an n out of range: InvalidParams below */
        return sess_error(ctx, s, id, WIRE_ERR_QUOTA_EXCEEDED,
                          "the session has %u live sequences and asks for %u more; its limit is %u",
                          s->n_seqs, q->n, s->lim.max_concurrent_requests);
    if (s->overflowed)
        return sess_error(ctx, s, id, WIRE_ERR_QUOTA_EXCEEDED,
                          "the completion ring overflowed; read it before submitting");
    uint32_t widx;
    if (sess_model(ctx, &q->model, &widx))
        return sess_error(ctx, s, id, WIRE_ERR_UNKNOWN_MODEL, "no model named '%.*s'",
                          (int)(q->model.len > 64 ? 64 : q->model.len), q->model.ptr);
    const char *bad = sess_check_params(ctx, q);
    if (bad)
        return sess_error(ctx, s, id, WIRE_ERR_INVALID_PARAMS, "%s", bad);
    if (!ctx->n_workers)
        return sess_echo(ctx, s, q);

    struct worker *w = ctx->workers[widx];
    const struct engine *e = wk_engine(w);
    char msg[200];
    int32_t *ids = NULL;
    size_t n = 0;
    enum wire_error_code code = sess_prompt(e, q, &ids, &n, msg, sizeof msg);
    if (code)
        return sess_error(ctx, s, id, code, "%s", msg);
    uint32_t max_tokens = q->max_tokens;
    if (max_tokens > e->n_ctx - n)
        max_tokens = e->n_ctx - (uint32_t)n; /* as `inferctl run`: ends with Length */
    /* As n sequences: each sample holds the prompt and its own tokens. */
    uint64_t need = (n + (uint64_t)max_tokens) * q->n;
    if (s->queued_tokens + need > s->lim.max_queued_tokens) {
        free(ids);
        return sess_error(ctx, s, id, WIRE_ERR_QUOTA_EXCEEDED,
                          "%llu (prompt + max tokens) x n would exceed the session's %u queued tokens "
                          "(%llu in use)",
                          (unsigned long long)need, s->lim.max_queued_tokens,
                          (unsigned long long)s->queued_tokens);
    }
    uint8_t *finish = calloc(q->n, 1);
    struct sess_acc *acc = q->stream ? NULL : calloc(q->n, sizeof *acc);
    struct wk_job *j = finish && (q->stream || acc) ? wk_job_new(0, q->stop.n) : NULL;
    if (!j) {
        free(ids);
        free(finish);
        free(acc);
        return sess_error(ctx, s, id, WIRE_ERR_OUT_OF_MEMORY, "out of memory");
    }
    free(j->prompt);
    j->prompt = ids;
    j->n_prompt = n;
    j->ticket = ++ctx->next_ticket;
    j->sess_id = s->id;
    j->creq_id = id;
    const struct wire_sampling *sp = &q->sampling;
    j->sampling = (struct smp_params){
        .temperature = sp->temperature,
        .top_k = sp->top_k,
        .top_p = sp->top_p,
        .min_p = sp->min_p,
        .repeat_penalty = sp->repeat_penalty,
        .frequency_penalty = sp->frequency_penalty,
        .presence_penalty = sp->presence_penalty,
        .penalty_last_n = sp->repeat_last_n,
        .seed = sp->seed,
    };
    /* The sampler keeps a window of that many tokens: no sequence is longer
     * than the context, so a longer window means the same as the context. */
    if ((uint32_t)j->sampling.penalty_last_n > e->n_ctx && j->sampling.penalty_last_n > 0)
        j->sampling.penalty_last_n = (int32_t)e->n_ctx;
    j->max_tokens = max_tokens;
    j->n = q->n;
    j->top_probs = q->logprobs;
    j->priority = sess_sched_priority(q->priority);
    bool oom = false;
    for (size_t i = 0; i < q->stop.n; i++) {
        struct wire_str st;
        (void)wire_str_at(&q->stop, i, &st); /* checked above */
        oom |= !(j->stop[i] = strndup(st.ptr, st.len));
    }
    if (q->cache_salt.ptr && q->cache_salt.len)
        oom |= !(j->cache_salt = strndup(q->cache_salt.ptr, q->cache_salt.len));
    if (oom) {
        wk_job_free(j);
        free(finish);
        free(acc);
        return sess_error(ctx, s, id, WIRE_ERR_OUT_OF_MEMORY, "out of memory");
    }
    uint64_t ticket = j->ticket;
    if (wk_submit(w, j)) {
        free(finish);
        free(acc);
        return sess_error(ctx, s, id, WIRE_ERR_OUT_OF_MEMORY, "out of memory");
    }
    struct sess_req *r = &s->reqs[s->n_reqs++];
    memset(r, 0, sizeof *r);
    r->creq_id = id;
    r->ticket = ticket;
    r->worker = widx;
    r->tokens = need;
    r->n = q->n;
    r->finish = finish;
    r->acc = acc;
    r->stream = q->stream;
    r->logprobs = q->logprobs;
    s->queued_tokens += need;
    s->n_seqs += q->n;
    ctx->live_requests++;
    return 0;
}

static int sess_cancel(struct sess_ctx *ctx, struct sess *s, uint64_t id)
{
    struct sess_req *r = sess_find(s, id);
    if (!r)
        return sess_error(ctx, s, id, WIRE_ERR_UNKNOWN_REQUEST, "no live request %llu",
                          (unsigned long long)id);
    if (r->cancel_sent)
        return 0;
    if (wk_cancel(ctx->workers[r->worker], r->ticket))
        return sess_error(ctx, s, id, WIRE_ERR_OUT_OF_MEMORY, "out of memory");
    r->cancel_sent = true;
    return 0;
}

void sess_cancel_all(struct sess_ctx *ctx, struct sess *s)
{
    sess_cancel_reqs(ctx, s);
}

static uint64_t sess_n_params(const struct model *m)
{
    const struct model_hparams *hp = &m->hp;
    uint64_t n = (uint64_t)m->tok_embd.rows * m->tok_embd.cols + hp->n_embd;
    if (!hp->tied_output)
        n += (uint64_t)m->output.rows * m->output.cols;
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        const struct model_layer *L = &m->layers[l];
        const struct kern_mat *mats[] = {&L->wq, &L->wk, &L->wv, &L->wo,
                                         &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof mats / sizeof mats[0]; i++)
            n += (uint64_t)mats[i]->rows * mats[i]->cols;
        n += 2ull * hp->n_embd;
    }
    return n;
}

static int sess_models(struct sess_ctx *ctx, struct sess *s)
{
    struct wire_model_info items[CFG_MAX_MODELS + 1];
    size_t n = 0;
    if (!ctx->n_workers) {
        items[n++] = (struct wire_model_info){
            .name = {"echo", 4}, .arch = {"echo", 4}, .quant = {"none", 4}};
    }
    for (size_t i = 0; i < ctx->n_workers && n < CFG_MAX_MODELS; i++) {
        const struct engine *e = wk_engine(ctx->workers[i]);
        const char *name = wk_name(ctx->workers[i]);
        const char *arch = e->model->hp.arch;
        const char *quant = dt_name(e->model->layers[0].wq.type);
        items[n++] = (struct wire_model_info){
            .name = {name, strlen(name)},
            .arch = {arch, strlen(arch)},
            .n_params = sess_n_params(e->model),
            .n_ctx = e->n_ctx,
            .quant = {quant, strlen(quant)},
        };
    }
    struct wire_models m = {.models = {.n = n, .items = items}};
    if (wire_build_models(ctx->b, &m) == 0)
        sess_send(ctx, s, false);
    return 0;
}

static int sess_stats(struct sess_ctx *ctx, struct sess *s)
{
    struct prom_stats st;
    struct wire_histogram hists[INFERD_H_COUNT];
    struct wire_stats w;
    dstats_collect(ctx->stats, &st);
    dstats_to_wire(&st, hists, &w);
    int rc = wire_build_stats(ctx->b, &w);
    if (rc == -EMSGSIZE) {
        /* Under a very small --max-message-bytes: the counters without
         * the histograms rather than no answer. */
        w.histograms = (struct wire_histogram_list){0, NULL, NULL};
        rc = wire_build_stats(ctx->b, &w);
    }
    if (rc == 0)
        sess_send(ctx, s, false);
    return 0;
}

static int sess_hello(struct sess_ctx *ctx, struct sess *s, const struct wire_hello *h)
{
    if (s->state != SESS_NEW)
        return sess_error(ctx, s, 0, WIRE_ERR_BAD_MESSAGE, "Hello was already received");
    if (h->protocol_version == 0) {
        sess_error(ctx, s, 0, WIRE_ERR_UNSUPPORTED_VERSION,
                   "protocol version 0 is not supported; this daemon speaks 1..%u",
                   WIRE_PROTOCOL_VERSION);
        return sess_fatal(s, "unsupported protocol version");
    }
    s->version = h->protocol_version < WIRE_PROTOCOL_VERSION ? h->protocol_version
                                                               : WIRE_PROTOCOL_VERSION;
    /* A client may ask for less than the daemon grants, never more. */
    if (h->requested.max_concurrent_requests &&
        h->requested.max_concurrent_requests < s->lim.max_concurrent_requests)
        s->lim.max_concurrent_requests = h->requested.max_concurrent_requests;
    if (h->requested.max_queued_tokens && h->requested.max_queued_tokens < s->lim.max_queued_tokens)
        s->lim.max_queued_tokens = h->requested.max_queued_tokens;
    struct wire_welcome w = {.protocol_version = s->version, .session_id = s->id, .limits = s->lim};
    if (wire_build_welcome(ctx->b, &w) == 0)
        sess_send(ctx, s, false);
    s->state = SESS_READY;
    return 0;
}

static int sess_handle(struct sess_ctx *ctx, struct sess *s, size_t len)
{
    struct wire_verify_opts vo = {.max_bytes = s->lim.max_message_bytes};
    struct wire_msg m;
    struct wire_diag d = {{0}, 0};
    if (wire_read(s->rx, len, &vo, &m, &d) != 0)
        return sess_error(ctx, s, 0, WIRE_ERR_BAD_MESSAGE, "malformed message (%zu bytes): %s",
                          len, d.reason);
    if (s->state == SESS_NEW && m.type != WIRE_HELLO)
        return sess_error(ctx, s, 0, WIRE_ERR_BAD_MESSAGE, "the first message must be Hello, not %s",
                          wire_type_name(m.type));
    switch (m.type) {
    case WIRE_HELLO: return sess_hello(ctx, s, &m.u.hello);
    case WIRE_REQUEST: return sess_request(ctx, s, &m.u.request);
    case WIRE_CANCEL: return sess_cancel(ctx, s, m.u.cancel.client_request_id);
    case WIRE_LIST_MODELS: return sess_models(ctx, s);
    case WIRE_STATS_REQUEST: return sess_stats(ctx, s);
    default:
        return sess_error(ctx, s, 0, WIRE_ERR_BAD_MESSAGE, "a client may not send %s",
                          wire_type_name(m.type));
    }
    return 0;
}

int sess_pump(struct sess_ctx *ctx, struct sess *s)
{
    int work = sess_flush(s);
    for (int k = 0; k < SESS_PUMP_BUDGET && s->state != SESS_CLOSING && !s->close_reason; k++) {
        size_t len = 0;
        int rc = ring_recv(s->sub, s->rx, s->rx_cap, &len);
        if (rc == -EAGAIN || rc == -ENOMEM)
            break; /* -ENOMEM: a fragment could not be buffered; retried later */
        if (rc != 0) {
            /* -EPROTO (or a message past the ring's own limit): the client
             * broke the ring. Say so, then end the session. */
            sess_error(ctx, s, 0, WIRE_ERR_BAD_MESSAGE,
                       "the submission ring is corrupt (%s); closing the session", strerror(-rc));
            sess_fatal(s, "corrupt submission ring");
            break;
        }
        work++;
        sess_handle(ctx, s, len);
    }
    if (s->close_reason)
        return -EPROTO;
    return work;
}

int sess_wait_prepare(struct sess *s)
{
    if (s->state != SESS_CLOSING && ring_wait_prepare(s->sub))
        return 1;
    if (s->out_head && ring_wait_prepare(s->comp))
        return 1;
    return 0;
}

void sess_close_begin(struct sess_ctx *ctx, struct sess *s, const char *reason)
{
    if (s->state == SESS_CLOSING)
        return;
    sess_fatal(s, reason);
    s->state = SESS_CLOSING;
    for (size_t i = 0; i < ctx->n_workers; i++)
        (void)wk_drop_session(ctx->workers[i], s->id);
    for (uint32_t i = 0; i < s->n_reqs; i++) {
        sess_req_clear(&s->reqs[i]);
        ctx->live_requests--;
    }
    s->n_reqs = 0;
    s->queued_tokens = 0;
}

/* ---- engine events ------------------------------------------------------ */

static float sess_token_logprob(const struct wk_event *ev)
{
    for (size_t i = 0; i < ev->n_top; i++)
        if (ev->top[i].id == ev->token)
            return ev->top[i].logprob;
    return -INFINITY; /* not among the top N */
}

/* The accumulated tokens of one sample of a non-streamed request as one
 * TokenChunk. */
static int sess_flush_acc1(struct sess_ctx *ctx, struct sess *s, struct sess_req *r,
                           uint32_t sample)
{
    struct sess_acc *a = &r->acc[sample];
    if (!a->n && !a->n_text)
        return 0;
    struct wire_token_logprobs *lps = NULL;
    struct wire_token_chunk c = {.client_request_id = r->creq_id, .sample = sample};
    c.tokens = a->tok;
    c.n_tokens = a->n;
    c.text = (const uint8_t *)a->text;
    c.text_len = a->n_text;
    if (r->logprobs && a->n) {
        lps = calloc(a->n, sizeof *lps);
        if (!lps)
            return sess_fatal(s, "out of memory");
        for (size_t i = 0; i < a->n; i++)
            lps[i] = (struct wire_token_logprobs){a->tok[i], a->lp[i], a->top + i * r->logprobs,
                                                  r->logprobs};
        c.logprobs.n = a->n;
        c.logprobs.items = lps;
    }
    if (wire_build_token_chunk(ctx->b, &c) == 0)
        sess_send(ctx, s, true);
    else
        sess_fatal(s, "a TokenChunk could not be built");
    free(lps);
    a->n = 0;
    a->n_text = 0;
    return 0;
}

/* Every sample's accumulated tokens, in sample order. */
static void sess_flush_acc(struct sess_ctx *ctx, struct sess *s, struct sess_req *r)
{
    for (uint32_t k = 0; r->acc && k < r->n; k++)
        sess_flush_acc1(ctx, s, r, k);
}

static int sess_token(struct sess_ctx *ctx, struct sess *s, struct sess_req *r,
                       const struct wk_event *ev)
{
    bool tok = ev->token >= 0;
    size_t n_top = ev->n_top < r->logprobs ? ev->n_top : r->logprobs;
    if (r->stream) {
        if (!tok && !ev->text_len)
            return 0;
        struct wire_top_logprob top[SESS_MAX_LOGPROBS];
        for (size_t i = 0; i < n_top; i++)
            top[i] = (struct wire_top_logprob){ev->top[i].id, ev->top[i].logprob};
        struct wire_token_logprobs lp = {ev->token, sess_token_logprob(ev), top, n_top};
        struct wire_token_chunk c = {.client_request_id = r->creq_id, .sample = ev->sample};
        if (tok) {
            c.tokens = &ev->token;
            c.n_tokens = 1;
            if (r->logprobs) {
                c.logprobs.n = 1;
                c.logprobs.items = &lp;
            }
        }
        if (ev->text_len) {
            c.text = (const uint8_t *)ev->text;
            c.text_len = ev->text_len;
        }
        if (wire_build_token_chunk(ctx->b, &c) == 0)
            sess_send(ctx, s, true);
        return 0;
    }
    /* Not streamed: accumulate, in chunks that stay well inside a message. */
    if (ev->sample >= r->n)
        return 0; /* cannot happen: the scheduler forks exactly n samples */
    struct sess_acc *a = &r->acc[ev->sample];
    size_t per_tok = 4 + (r->logprobs ? 16 + 8 * (size_t)r->logprobs : 0);
    if ((a->n + 1) * per_tok + a->n_text + ev->text_len + 256 > s->lim.max_message_bytes / 2)
        sess_flush_acc1(ctx, s, r, ev->sample);
    if (tok) {
        size_t cap = a->cap;
        if (engine_grow((void **)&a->tok, &a->cap, a->n + 1, sizeof *a->tok))
            return sess_fatal(s, "out of memory");
        if (r->logprobs) {
            size_t c1 = cap, c2 = cap;
            if (engine_grow((void **)&a->lp, &c1, a->n + 1, sizeof *a->lp) ||
                engine_grow((void **)&a->top, &c2, a->n + 1, r->logprobs * sizeof *a->top))
                return sess_fatal(s, "out of memory");
            a->lp[a->n] = sess_token_logprob(ev);
            for (size_t i = 0; i < r->logprobs; i++)
                a->top[a->n * r->logprobs + i] =
                    i < n_top ? (struct wire_top_logprob){ev->top[i].id, ev->top[i].logprob}
                              : (struct wire_top_logprob){-1, -INFINITY};
        }
        a->tok[a->n++] = ev->token;
    }
    if (ev->text_len) {
        if (engine_grow((void **)&a->text, &a->cap_text, a->n_text + ev->text_len, 1))
            return sess_fatal(s, "out of memory");
        memcpy(a->text + a->n_text, ev->text, ev->text_len);
        a->n_text += ev->text_len;
    }
    return 0;
}

static enum wire_error_code sess_errno_code(int error)
{
    switch (error) {
    case -EINVAL: return WIRE_ERR_INVALID_PARAMS;
    case -E2BIG: return WIRE_ERR_PROMPT_TOO_LONG;
    case -ENOMEM: return WIRE_ERR_OUT_OF_MEMORY;
    default: return WIRE_ERR_INTERNAL;
    }
}

static enum wire_finish_reason sess_finish(enum gen_finish f)
{
    switch (f) {
    case GEN_FINISH_EOS: return WIRE_FINISH_EOS;
    case GEN_FINISH_STOP: return WIRE_FINISH_STOP;
    default: return WIRE_FINISH_LENGTH;
    }
}

int sess_on_event(struct sess_ctx *ctx, struct sess *s, const struct wk_event *ev)
{
    struct sess_req *r = sess_find(s, ev->creq_id);
    if (!r || r->ticket != ev->ticket || s->state == SESS_CLOSING)
        return 0;
    switch (ev->type) {
    case SCHED_EV_TOKEN:
        sess_token(ctx, s, r, ev);
        if (ev->sample_done && ev->sample < r->n)
            r->finish[ev->sample] = (uint8_t)sess_finish(ev->finish);
        break;
    case SCHED_EV_FINISHED:
    case SCHED_EV_CANCELLED: {
        sess_flush_acc(ctx, s, r);
        /* Cancelled: every sample reads as cancelled, as the request does. */
        if (ev->type == SCHED_EV_CANCELLED)
            memset(r->finish, WIRE_FINISH_CANCELLED, r->n);
        struct wire_done d = {
            .client_request_id = r->creq_id,
            .finish_reason = (enum wire_finish_reason)r->finish[0],
            .usage = {ev->prompt_tokens, ev->cached_prompt_tokens, ev->generated_tokens},
            .timings = {ev->times.queued, ev->times.scheduled, ev->times.first_token,
                        ev->times.finished},
            .sample_finish = r->n > 1 ? r->finish : NULL,
            .n_sample_finish = r->n > 1 ? r->n : 0,
        };
        if (wire_build_done(ctx->b, &d) == 0)
            sess_send(ctx, s, false);
        sess_req_remove(ctx, s, r);
        break;
    }
    case SCHED_EV_ERROR:
        sess_flush_acc(ctx, s, r);
        sess_error(ctx, s, r->creq_id, sess_errno_code(ev->error), "%s",
                   ev->text_len ? ev->text : "the engine failed this request");
        sess_req_remove(ctx, s, r);
        break;
    }
    return s->close_reason ? -EPROTO : 0;
}
