/* client_msg.c - libinferclient's messages: Hello/Welcome, requests and
 * cancels, decoding of events, and the synchronous ListModels / Stats
 * queries. See inferclient.h. */
#include "client_impl.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void infer_request_init(struct infer_request *r)
{
    memset(r, 0, sizeof *r);
    r->sampling = (struct infer_sampling){
        .temperature = 0.8f,
        .top_k = 40,
        .top_p = 0.95f,
        .min_p = 0.05f,
        .repeat_penalty = 1.0f,
        .frequency_penalty = 0.0f,
        .presence_penalty = 0.0f,
        .repeat_last_n = 64,
        .seed = 0xfa11,
    };
    r->max_tokens = 256;
    r->stream = true;
    r->n = 1;
}

const char *infer_finish_name(enum infer_finish f)
{
    return wire_finish_reason_name((enum wire_finish_reason)f);
}

const char *infer_error_name(enum infer_error e)
{
    return wire_error_code_name((enum wire_error_code)e);
}

static int cl_send_built(struct infer_client *c)
{
    const void *buf;
    size_t len;
    int rc = wire_builder_finish(c->b, &buf, &len);
    return rc ? rc : cl_send(c, buf, len);
}

/* Waits for the next message of type want (decoded into *m, pointing into
 * c->rx), queueing the events that come first. */
static int cl_await(struct infer_client *c, enum wire_type want, uint64_t deadline_ns,
                    struct wire_msg *m)
{
    struct wire_verify_opts vo = {.max_bytes = c->rx_cap};
    for (;;) {
        cl_disarm(c);
        size_t len;
        int rc = cl_recv(c, &len);
        if (rc == -EAGAIN) {
            if (c->gone)
                return -ECONNRESET;
            if ((rc = cl_wait_complete(c, deadline_ns)))
                return rc;
            continue;
        }
        if (rc)
            return rc;
        if (wire_read(c->rx, len, &vo, m, NULL) != 0)
            return -EPROTO;
        if (m->type == want)
            return 0;
        if (m->type == WIRE_ERROR && m->u.error.client_request_id == 0 && want == WIRE_WELCOME)
            return m->u.error.code == WIRE_ERR_UNSUPPORTED_VERSION ? -EPROTONOSUPPORT : -EPROTO;
        if (m->type == WIRE_TOKEN_CHUNK || m->type == WIRE_DONE || m->type == WIRE_ERROR)
            if ((rc = cl_queue_rx(c, len)))
                return rc;
    }
}

int cl_hello(struct infer_client *c, const struct infer_connect_opts *o)
{
    const char *name = o->client_name ? o->client_name : "libinferclient";
    struct wire_hello h = {
        .protocol_version = WIRE_PROTOCOL_VERSION,
        .client_name = {name, strlen(name)},
        .requested = {.max_concurrent_requests = o->max_concurrent,
                      .max_queued_tokens = o->max_queued_tokens},
    };
    int rc = wire_build_hello(c->b, &h);
    if (rc || (rc = cl_send_built(c)))
        return rc;
    struct wire_msg m;
    rc = cl_await(c, WIRE_WELCOME, cl_now_ns() + (uint64_t)o->timeout_ms * 1000000ull, &m);
    if (rc)
        return rc;
    if (m.u.welcome.protocol_version == 0 || m.u.welcome.protocol_version > WIRE_PROTOCOL_VERSION)
        return -EPROTO;
    c->lim = m.u.welcome.limits;
    return 0;
}

int infer_submit(struct infer_client *c, const struct infer_request *r, uint64_t *id)
{
    if (!c || !r || (!r->prompt == !r->prompt_tokens) ||
        (r->prompt_tokens && !r->n_prompt_tokens) || (r->n_stop && !r->stop))
        return -EINVAL;
    struct wire_request q;
    wire_request_default(&q);
    q.client_request_id = c->next_id + 1;
    if (r->model)
        q.model = (struct wire_str){r->model, strlen(r->model)};
    if (r->prompt)
        q.prompt = (struct wire_str){r->prompt, r->prompt_len ? r->prompt_len : strlen(r->prompt)};
    q.prompt_tokens = r->prompt_tokens;
    q.n_prompt_tokens = r->n_prompt_tokens;
    const struct infer_sampling *s = &r->sampling;
    q.sampling = (struct wire_sampling){
        .temperature = s->temperature,
        .top_k = s->top_k,
        .top_p = s->top_p,
        .min_p = s->min_p,
        .repeat_penalty = s->repeat_penalty,
        .frequency_penalty = s->frequency_penalty,
        .presence_penalty = s->presence_penalty,
        .repeat_last_n = s->repeat_last_n,
        .seed = s->seed,
    };
    q.max_tokens = r->max_tokens;
    q.stream = r->stream;
    q.priority = r->priority;
    if (r->cache_salt)
        q.cache_salt = (struct wire_str){r->cache_salt, strlen(r->cache_salt)};
    q.logprobs = r->logprobs;
    q.n = r->n; /* 0 is sent as is: the daemon refuses it */
    struct wire_str *stops = NULL;
    if (r->n_stop) {
        stops = calloc(r->n_stop, sizeof *stops);
        if (!stops)
            return -ENOMEM;
        for (size_t i = 0; i < r->n_stop; i++) {
            if (!r->stop[i]) {
                free(stops);
                return -EINVAL;
            }
            stops[i] = (struct wire_str){r->stop[i], strlen(r->stop[i])};
        }
        q.stop = (struct wire_str_list){.n = r->n_stop, .items = stops};
    }
    int rc = wire_build_request(c->b, &q);
    free(stops);
    if (rc)
        return rc;
    if ((rc = cl_send_built(c)))
        return rc;
    c->next_id++;
    if (id)
        *id = c->next_id;
    return 0;
}

int infer_cancel(struct infer_client *c, uint64_t id)
{
    if (!c || !id)
        return -EINVAL;
    struct wire_cancel x = {.client_request_id = id};
    int rc = wire_build_cancel(c->b, &x);
    return rc ? rc : cl_send_built(c);
}

static int cl_grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 64;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, n * elem);
    if (!q)
        return -ENOMEM;
    *p = q;
    *cap = n;
    return 0;
}

static int cl_decode_chunk(struct infer_client *c, const struct wire_token_chunk *t,
                           struct infer_event *ev)
{
    ev->type = INFER_EV_TOKENS;
    ev->request_id = t->client_request_id;
    ev->sample = t->sample;
    ev->tokens = t->tokens;
    ev->n_tokens = t->tokens ? t->n_tokens : 0;
    if (cl_grow((void **)&c->text, &c->text_cap, t->text_len + 1, 1))
        return -ENOMEM;
    if (t->text_len)
        memcpy(c->text, t->text, t->text_len);
    c->text[t->text_len] = 0;
    ev->text = c->text;
    ev->text_len = t->text_len;
    size_t n = t->logprobs.n < ev->n_tokens ? t->logprobs.n : ev->n_tokens;
    if (!n)
        return 0;
    size_t n_top = 0;
    struct wire_token_logprobs lp;
    for (size_t i = 0; i < n; i++) {
        if (wire_token_logprobs_at(&t->logprobs, i, &lp))
            return -EPROTO;
        if (lp.n_top > n_top)
            n_top = lp.n_top;
    }
    if (n_top > 4096)
        return -EPROTO;
    size_t nt = ev->n_tokens;
    if (cl_grow((void **)&c->lp, &c->lp_cap, nt, sizeof *c->lp) ||
        cl_grow((void **)&c->top, &c->top_cap, nt * n_top + 1, sizeof *c->top))
        return -ENOMEM;
    for (size_t i = 0; i < nt; i++) {
        lp.logprob = -INFINITY;
        lp.n_top = 0;
        if (i < n)
            (void)wire_token_logprobs_at(&t->logprobs, i, &lp);
        c->lp[i] = lp.logprob;
        for (size_t k = 0; k < n_top; k++)
            c->top[i * n_top + k] = k < lp.n_top
                                        ? (struct infer_top_logprob){lp.top[k].token, lp.top[k].logprob}
                                        : (struct infer_top_logprob){-1, -INFINITY};
    }
    ev->logprobs = c->lp;
    ev->top = c->top;
    ev->n_top = n_top;
    return 0;
}

int cl_decode_event(struct infer_client *c, const void *buf, size_t len, struct infer_event *ev)
{
    struct wire_verify_opts vo = {.max_bytes = c->rx_cap};
    struct wire_msg m;
    if (wire_read(buf, len, &vo, &m, NULL) != 0)
        return -EPROTO;
    memset(ev, 0, sizeof *ev);
    ev->message = "";
    switch (m.type) {
    case WIRE_TOKEN_CHUNK:
        return cl_decode_chunk(c, &m.u.token_chunk, ev);
    case WIRE_DONE: {
        const struct wire_done *d = &m.u.done;
        ev->type = INFER_EV_DONE;
        ev->request_id = d->client_request_id;
        ev->finish = (enum infer_finish)d->finish_reason;
        ev->prompt_tokens = d->usage.prompt_tokens;
        ev->cached_prompt_tokens = d->usage.cached_prompt_tokens;
        ev->generated_tokens = d->usage.generated_tokens;
        ev->queued_ns = d->timings.queued_ns;
        ev->scheduled_ns = d->timings.scheduled_ns;
        ev->first_token_ns = d->timings.first_token_ns;
        ev->finished_ns = d->timings.finished_ns;
        if (d->sample_finish) { /* points into the message, kept until the next event */
            ev->sample_finish = d->sample_finish;
            ev->n_samples = d->n_sample_finish;
        } else {
            c->finish1 = (uint8_t)d->finish_reason;
            ev->sample_finish = &c->finish1;
            ev->n_samples = 1;
        }
        return 0;
    }
    case WIRE_ERROR:
        ev->type = INFER_EV_ERROR;
        ev->request_id = m.u.error.client_request_id;
        ev->error = (enum infer_error)m.u.error.code;
        if (m.u.error.message.ptr)
            ev->message = m.u.error.message.ptr; /* NUL-terminated in the buffer */
        return 0;
    default:
        return -ENOMSG;
    }
}

static void cl_copy_str(char *dst, size_t cap, const struct wire_str *s)
{
    size_t n = s->ptr ? s->len : 0;
    if (n >= cap)
        n = cap - 1;
    if (n)
        memcpy(dst, s->ptr, n);
    dst[n] = 0;
}

int infer_list_models(struct infer_client *c, struct infer_model *out, size_t cap, size_t *n)
{
    if (!c || !n || (cap && !out))
        return -EINVAL;
    int rc = wire_build_list_models(c->b);
    if (rc || (rc = cl_send_built(c)))
        return rc;
    struct wire_msg m;
    if ((rc = cl_await(c, WIRE_MODELS, 0, &m)))
        return rc;
    const struct wire_model_info_list *l = &m.u.models.models;
    *n = l->n;
    for (size_t i = 0; i < l->n && i < cap; i++) {
        struct wire_model_info mi;
        if (wire_model_info_at(l, i, &mi))
            return -EPROTO;
        cl_copy_str(out[i].name, sizeof out[i].name, &mi.name);
        cl_copy_str(out[i].arch, sizeof out[i].arch, &mi.arch);
        cl_copy_str(out[i].quant, sizeof out[i].quant, &mi.quant);
        out[i].n_params = mi.n_params;
        out[i].n_ctx = mi.n_ctx;
    }
    return 0;
}

static_assert((int)INFER_HIST_COUNT == (int)WIRE_HIST_COUNT &&
                  (int)INFER_HIST_BATCH == (int)WIRE_HIST_BATCH &&
                  INFER_HIST_SLOTS == WIRE_HIST_SLOTS,
              "infer_hist_id is the schema's HistogramId");
static_assert(INFER_END_ERROR == WIRE_FINISH_INDEX_ERROR &&
                  (int)INFER_FINISH_CANCELLED == (int)WIRE_FINISH_CANCELLED,
              "finished[] is indexed as Stats.finished_by_reason");

/* The histograms and finish counts of a Stats message into d. Unknown
 * histogram ids and reasons (a newer daemon's) are skipped, as is a
 * repeated id. */
static int cl_stats_detail(const struct wire_stats *s, struct infer_stats_detail *d)
{
    memset(d, 0, sizeof *d);
    bool seen[INFER_HIST_COUNT] = {false};
    for (size_t i = 0; i < s->histograms.n; i++) {
        struct wire_histogram h;
        if (wire_histogram_at(&s->histograms, i, &h))
            return -EPROTO;
        if ((unsigned)h.id >= INFER_HIST_COUNT || seen[h.id])
            continue;
        seen[h.id] = true;
        struct infer_hist *o = &d->hists[h.id];
        for (size_t k = 0; k < h.n_slots && k < INFER_HIST_SLOTS; k++)
            o->slots[k] = h.slots[k];
        o->count = h.count;
        o->sum = h.sum;
        d->have_hists = true;
    }
    for (size_t i = 0; i < s->n_finished_by_reason && i < INFER_END_COUNT; i++)
        d->finished[i] = s->finished_by_reason[i];
    d->have_finished = s->n_finished_by_reason > 0;
    return 0;
}

int infer_stats_detail(struct infer_client *c, struct infer_stats *out,
                       struct infer_stats_detail *detail)
{
    if (!c || !out)
        return -EINVAL;
    int rc = wire_build_stats_request(c->b);
    if (rc || (rc = cl_send_built(c)))
        return rc;
    struct wire_msg m;
    if ((rc = cl_await(c, WIRE_STATS, 0, &m)))
        return rc;
    const struct wire_stats *s = &m.u.stats;
    *out = (struct infer_stats){
        .requests_running = s->requests_running,
        .requests_waiting = s->requests_waiting,
        .requests_finished = s->requests_finished,
        .prompt_tokens = s->prompt_tokens,
        .generated_tokens = s->generated_tokens,
        .kv_blocks_total = s->kv_blocks_total,
        .kv_blocks_used = s->kv_blocks_used,
        .prefix_cache_queries = s->prefix_cache_queries,
        .prefix_cache_hits = s->prefix_cache_hits,
        .preemptions = s->preemptions,
    };
    return detail ? cl_stats_detail(s, detail) : 0;
}

int infer_stats(struct infer_client *c, struct infer_stats *out)
{
    return infer_stats_detail(c, out, NULL);
}
