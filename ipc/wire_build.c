/* wire_build.c - one builder per message of ipc/schema/inferd.fbs, on top of
 * the generic back-to-front builder of wire_builder.c.
 *
 * Each builds the children of a table first (strings, vectors, sub-tables),
 * then the table with its 8-byte fields first so that little padding is
 * needed, then the Message root. Scalars equal to their schema default and
 * sub-tables whose fields are all default are left out, as flatc's own
 * builders do, so an absent field always reads as its default.
 */
#include "wire_impl.h"

#include <errno.h>
#include <stdlib.h>

static wb_ref build_str(struct wire_builder *b, struct wire_str s)
{
    return s.ptr ? wb_string(b, s.ptr, s.len) : 0;
}

/* An array that is present (non-NULL) becomes a vector, empty or not. */
static wb_ref build_array(struct wire_builder *b, const void *p, size_t n, size_t elem_size)
{
    if (!p) {
        if (n)
            wb_fail(b, -EINVAL);
        return 0;
    }
    return wb_vector(b, p, n, elem_size, elem_size < 4 ? elem_size : 4);
}

/* Room for n refs of a vector of strings or tables (each costs at least 4
 * bytes of output, so a list beyond max_bytes / 4 cannot fit anyway). */
static wb_ref *alloc_refs(struct wire_builder *b, size_t n)
{
    if (b->err)
        return NULL;
    if (n > b->max_bytes / 4) {
        wb_fail(b, -EMSGSIZE);
        return NULL;
    }
    wb_ref *refs = malloc((n ? n : 1) * sizeof *refs);
    if (!refs)
        wb_fail(b, -ENOMEM);
    return refs;
}

static wb_ref build_str_list(struct wire_builder *b, const struct wire_str_list *l)
{
    if (!l->items && !l->vec) {
        if (l->n)
            wb_fail(b, -EINVAL);
        return 0;
    }
    wb_ref *refs = alloc_refs(b, l->n);
    if (!refs)
        return 0;
    for (size_t i = 0; i < l->n && !b->err; i++) {
        struct wire_str s;
        wire_str_at(l, i, &s);
        if (!s.ptr)
            wb_fail(b, -EINVAL); /* vectors hold no absent strings */
        refs[i] = build_str(b, s);
    }
    wb_ref r = wb_vector_refs(b, refs, l->n);
    free(refs);
    return r;
}

static wb_ref build_limits(struct wire_builder *b, const struct wire_limits *l)
{
    wb_table_start(b);
    wb_add_u32(b, F_LIMITS_MAX_CONCURRENT_REQUESTS, l->max_concurrent_requests, 0);
    wb_add_u32(b, F_LIMITS_MAX_QUEUED_TOKENS, l->max_queued_tokens, 0);
    wb_add_u32(b, F_LIMITS_SUBMIT_RING_BYTES, l->submit_ring_bytes, 0);
    wb_add_u32(b, F_LIMITS_COMPLETION_RING_BYTES, l->completion_ring_bytes, 0);
    wb_add_u32(b, F_LIMITS_MAX_MESSAGE_BYTES, l->max_message_bytes, 0);
    return wb_table_end(b, true);
}

static wb_ref build_hello(struct wire_builder *b, const struct wire_msg *m)
{
    const struct wire_hello *h = &m->u.hello;
    wb_ref name = build_str(b, h->client_name);
    wb_ref req = build_limits(b, &h->requested);
    wb_table_start(b);
    wb_add_u32(b, F_HELLO_PROTOCOL_VERSION, h->protocol_version, 0);
    wb_add_ref(b, F_HELLO_CLIENT_NAME, name);
    wb_add_ref(b, F_HELLO_REQUESTED, req);
    return wb_table_end(b, false);
}

static wb_ref build_welcome(struct wire_builder *b, const struct wire_msg *m)
{
    const struct wire_welcome *w = &m->u.welcome;
    wb_ref lim = build_limits(b, &w->limits);
    wb_table_start(b);
    wb_add_u64(b, F_WELCOME_SESSION_ID, w->session_id, 0);
    wb_add_u32(b, F_WELCOME_PROTOCOL_VERSION, w->protocol_version, 0);
    wb_add_ref(b, F_WELCOME_LIMITS, lim);
    return wb_table_end(b, false);
}

static wb_ref build_sampling(struct wire_builder *b, const struct wire_sampling *s)
{
    wb_table_start(b);
    wb_add_u64(b, F_SAMPLING_SEED, s->seed, WIRE_DEF_SEED);
    wb_add_f32(b, F_SAMPLING_TEMPERATURE, s->temperature, WIRE_DEF_TEMPERATURE);
    wb_add_i32(b, F_SAMPLING_TOP_K, s->top_k, WIRE_DEF_TOP_K);
    wb_add_f32(b, F_SAMPLING_TOP_P, s->top_p, WIRE_DEF_TOP_P);
    wb_add_f32(b, F_SAMPLING_MIN_P, s->min_p, WIRE_DEF_MIN_P);
    wb_add_f32(b, F_SAMPLING_REPEAT_PENALTY, s->repeat_penalty, WIRE_DEF_REPEAT_PENALTY);
    wb_add_f32(b, F_SAMPLING_FREQUENCY_PENALTY, s->frequency_penalty, 0.0f);
    wb_add_f32(b, F_SAMPLING_PRESENCE_PENALTY, s->presence_penalty, 0.0f);
    wb_add_i32(b, F_SAMPLING_REPEAT_LAST_N, s->repeat_last_n, WIRE_DEF_REPEAT_LAST_N);
    return wb_table_end(b, true);
}

static wb_ref build_request(struct wire_builder *b, const struct wire_msg *m)
{
    const struct wire_request *r = &m->u.request;
    if (!r->prompt.ptr == !r->prompt_tokens) {
        wb_fail(b, -EINVAL); /* exactly one of the two */
        return 0;
    }
    wb_ref model = build_str(b, r->model);
    wb_ref prompt = build_str(b, r->prompt);
    wb_ref tokens = build_array(b, r->prompt_tokens, r->n_prompt_tokens, 4);
    wb_ref sampling = build_sampling(b, &r->sampling);
    wb_ref stop = build_str_list(b, &r->stop);
    wb_ref salt = build_str(b, r->cache_salt);
    wb_table_start(b);
    wb_add_u64(b, F_REQUEST_CLIENT_REQUEST_ID, r->client_request_id, 0);
    wb_add_ref(b, F_REQUEST_MODEL, model);
    wb_add_ref(b, F_REQUEST_PROMPT, prompt);
    wb_add_ref(b, F_REQUEST_PROMPT_TOKENS, tokens);
    wb_add_ref(b, F_REQUEST_SAMPLING, sampling);
    wb_add_u32(b, F_REQUEST_MAX_TOKENS, r->max_tokens, WIRE_DEF_MAX_TOKENS);
    wb_add_ref(b, F_REQUEST_STOP, stop);
    wb_add_i32(b, F_REQUEST_PRIORITY, r->priority, 0);
    wb_add_ref(b, F_REQUEST_CACHE_SALT, salt);
    wb_add_u32(b, F_REQUEST_N, r->n, WIRE_DEF_N);
    wb_add_u32(b, F_REQUEST_LOGPROBS, r->logprobs, 0);
    wb_add_u8(b, F_REQUEST_STREAM, r->stream ? 1 : 0, WIRE_DEF_STREAM ? 1 : 0);
    return wb_table_end(b, false);
}

static wb_ref build_cancel(struct wire_builder *b, const struct wire_msg *m)
{
    wb_table_start(b);
    wb_add_u64(b, F_CANCEL_CLIENT_REQUEST_ID, m->u.cancel.client_request_id, 0);
    return wb_table_end(b, false);
}

static wb_ref build_token_logprobs(struct wire_builder *b, const struct wire_token_logprobs *t)
{
    wb_ref top = 0;
    if (t->top)
        top = wb_vector(b, t->top, t->n_top, sizeof *t->top, 4);
    else if (t->n_top)
        wb_fail(b, -EINVAL);
    wb_table_start(b);
    wb_add_i32(b, F_TOKEN_LOGPROBS_TOKEN, t->token, 0);
    wb_add_f32(b, F_TOKEN_LOGPROBS_LOGPROB, t->logprob, 0.0f);
    wb_add_ref(b, F_TOKEN_LOGPROBS_TOP, top);
    return wb_table_end(b, false);
}

static wb_ref build_token_chunk(struct wire_builder *b, const struct wire_msg *m)
{
    const struct wire_token_chunk *c = &m->u.token_chunk;
    wb_ref tokens = build_array(b, c->tokens, c->n_tokens, 4);
    wb_ref text = build_array(b, c->text, c->text_len, 1);
    wb_ref lps = 0;
    const struct wire_token_logprobs_list *l = &c->logprobs;
    if (l->items || l->vec) {
        wb_ref *refs = alloc_refs(b, l->n);
        for (size_t i = 0; refs && i < l->n && !b->err; i++) {
            struct wire_token_logprobs t;
            wire_token_logprobs_at(l, i, &t);
            refs[i] = build_token_logprobs(b, &t);
        }
        if (refs)
            lps = wb_vector_refs(b, refs, l->n);
        free(refs);
    } else if (l->n) {
        wb_fail(b, -EINVAL);
    }
    wb_table_start(b);
    wb_add_u64(b, F_TOKEN_CHUNK_CLIENT_REQUEST_ID, c->client_request_id, 0);
    wb_add_ref(b, F_TOKEN_CHUNK_TOKENS, tokens);
    wb_add_ref(b, F_TOKEN_CHUNK_TEXT, text);
    wb_add_ref(b, F_TOKEN_CHUNK_LOGPROBS, lps);
    wb_add_u32(b, F_TOKEN_CHUNK_SAMPLE, c->sample, 0);
    return wb_table_end(b, false);
}

static wb_ref build_done(struct wire_builder *b, const struct wire_msg *m)
{
    const struct wire_done *d = &m->u.done;
    wb_table_start(b);
    wb_add_u32(b, F_USAGE_PROMPT_TOKENS, d->usage.prompt_tokens, 0);
    wb_add_u32(b, F_USAGE_CACHED_PROMPT_TOKENS, d->usage.cached_prompt_tokens, 0);
    wb_add_u32(b, F_USAGE_GENERATED_TOKENS, d->usage.generated_tokens, 0);
    wb_ref usage = wb_table_end(b, true);
    wb_table_start(b);
    wb_add_u64(b, F_TIMINGS_QUEUED_NS, d->timings.queued_ns, 0);
    wb_add_u64(b, F_TIMINGS_SCHEDULED_NS, d->timings.scheduled_ns, 0);
    wb_add_u64(b, F_TIMINGS_FIRST_TOKEN_NS, d->timings.first_token_ns, 0);
    wb_add_u64(b, F_TIMINGS_FINISHED_NS, d->timings.finished_ns, 0);
    wb_ref timings = wb_table_end(b, true);
    wb_ref sample_finish = build_array(b, d->sample_finish, d->n_sample_finish, 1);
    if ((unsigned)d->finish_reason > UINT8_MAX)
        wb_fail(b, -EINVAL);
    wb_table_start(b);
    wb_add_u64(b, F_DONE_CLIENT_REQUEST_ID, d->client_request_id, 0);
    wb_add_ref(b, F_DONE_USAGE, usage);
    wb_add_ref(b, F_DONE_TIMINGS, timings);
    wb_add_ref(b, F_DONE_SAMPLE_FINISH, sample_finish);
    wb_add_u8(b, F_DONE_FINISH_REASON, (uint8_t)d->finish_reason, 0);
    return wb_table_end(b, false);
}

static wb_ref build_error(struct wire_builder *b, const struct wire_msg *m)
{
    const struct wire_error *e = &m->u.error;
    wb_ref msg = build_str(b, e->message);
    if ((unsigned)e->code > UINT16_MAX)
        wb_fail(b, -EINVAL);
    wb_table_start(b);
    wb_add_u64(b, F_ERROR_CLIENT_REQUEST_ID, e->client_request_id, 0);
    wb_add_ref(b, F_ERROR_MESSAGE, msg);
    wb_add_u16(b, F_ERROR_CODE, (uint16_t)e->code, 0);
    return wb_table_end(b, false);
}

static wb_ref build_empty(struct wire_builder *b, const struct wire_msg *m)
{
    (void)m;
    wb_table_start(b);
    return wb_table_end(b, false);
}

static wb_ref build_model_info(struct wire_builder *b, const struct wire_model_info *mi)
{
    wb_ref name = build_str(b, mi->name);
    wb_ref arch = build_str(b, mi->arch);
    wb_ref quant = build_str(b, mi->quant);
    wb_table_start(b);
    wb_add_u64(b, F_MODEL_INFO_N_PARAMS, mi->n_params, 0);
    wb_add_ref(b, F_MODEL_INFO_NAME, name);
    wb_add_ref(b, F_MODEL_INFO_ARCH, arch);
    wb_add_u32(b, F_MODEL_INFO_N_CTX, mi->n_ctx, 0);
    wb_add_ref(b, F_MODEL_INFO_QUANT, quant);
    return wb_table_end(b, false);
}

static wb_ref build_models(struct wire_builder *b, const struct wire_msg *m)
{
    const struct wire_model_info_list *l = &m->u.models.models;
    wb_ref vec = 0;
    if (l->items || l->vec) {
        wb_ref *refs = alloc_refs(b, l->n);
        for (size_t i = 0; refs && i < l->n && !b->err; i++) {
            struct wire_model_info mi;
            wire_model_info_at(l, i, &mi);
            refs[i] = build_model_info(b, &mi);
        }
        if (refs)
            vec = wb_vector_refs(b, refs, l->n);
        free(refs);
    } else if (l->n) {
        wb_fail(b, -EINVAL);
    }
    wb_table_start(b);
    wb_add_ref(b, F_MODELS_MODELS, vec);
    return wb_table_end(b, false);
}

static wb_ref build_histogram(struct wire_builder *b, const struct wire_histogram *h)
{
    if ((unsigned)h->id > UINT8_MAX || h->n_slots > WIRE_HIST_SLOTS) {
        wb_fail(b, -EINVAL);
        return 0;
    }
    wb_ref slots = h->n_slots ? wb_vector(b, h->slots, h->n_slots, 8, 8) : 0;
    wb_table_start(b);
    wb_add_u64(b, F_HISTOGRAM_COUNT, h->count, 0);
    wb_add_u64(b, F_HISTOGRAM_SUM, h->sum, 0);
    wb_add_ref(b, F_HISTOGRAM_SLOTS, slots);
    wb_add_u8(b, F_HISTOGRAM_ID, (uint8_t)h->id, 0);
    return wb_table_end(b, false);
}

static wb_ref build_stats(struct wire_builder *b, const struct wire_msg *m)
{
    const struct wire_stats *s = &m->u.stats;
    const struct wire_histogram_list *l = &s->histograms;
    wb_ref hists = 0, fin = 0;
    /* Nothing the verifier would refuse: the schema bounds both vectors. */
    if (l->n > WIRE_MAX_HISTOGRAMS || s->n_finished_by_reason > WIRE_MAX_FINISH_COUNTS) {
        wb_fail(b, -EINVAL);
        return 0;
    }
    if (l->items || l->vec) {
        wb_ref refs[WIRE_MAX_HISTOGRAMS];
        for (size_t i = 0; i < l->n && !b->err; i++) {
            struct wire_histogram h;
            wire_histogram_at(l, i, &h);
            refs[i] = build_histogram(b, &h);
        }
        hists = wb_vector_refs(b, refs, l->n);
    } else if (l->n) {
        wb_fail(b, -EINVAL);
    }
    if (s->n_finished_by_reason)
        fin = wb_vector(b, s->finished_by_reason, s->n_finished_by_reason, 8, 8);
    const uint64_t counters[WIRE_STATS_COUNTERS] = {
        s->requests_running,     s->requests_waiting,  s->requests_finished, s->prompt_tokens,
        s->generated_tokens,     s->kv_blocks_total,   s->kv_blocks_used,
        s->prefix_cache_queries, s->prefix_cache_hits, s->preemptions,
    };
    wb_table_start(b);
    for (unsigned i = 0; i < WIRE_STATS_COUNTERS; i++)
        wb_add_u64(b, F_STATS_REQUESTS_RUNNING + i, counters[i], 0);
    wb_add_ref(b, F_STATS_HISTOGRAMS, hists);
    wb_add_ref(b, F_STATS_FINISHED_BY_REASON, fin);
    return wb_table_end(b, false);
}

static wb_ref (*const builders[WIRE_TYPE_COUNT])(struct wire_builder *, const struct wire_msg *) = {
    [WIRE_HELLO] = build_hello,
    [WIRE_WELCOME] = build_welcome,
    [WIRE_REQUEST] = build_request,
    [WIRE_CANCEL] = build_cancel,
    [WIRE_TOKEN_CHUNK] = build_token_chunk,
    [WIRE_DONE] = build_done,
    [WIRE_ERROR] = build_error,
    [WIRE_LIST_MODELS] = build_empty,
    [WIRE_MODELS] = build_models,
    [WIRE_STATS_REQUEST] = build_empty,
    [WIRE_STATS] = build_stats,
};

int wire_build(struct wire_builder *b, const struct wire_msg *m)
{
    if (!b || !m)
        return -EINVAL;
    wb_reset(b);
    if ((unsigned)m->type == WIRE_NONE || (unsigned)m->type >= WIRE_TYPE_COUNT)
        return -EINVAL;
    wb_ref body = builders[m->type](b, m);
    wb_table_start(b);
    wb_add_ref(b, F_MESSAGE_BODY, body);
    wb_add_u8(b, F_MESSAGE_BODY_TYPE, (uint8_t)m->type, 0);
    wb_ref root = wb_table_end(b, false);
    wb_finish(b, root);
    int rc = b->err;
    if (rc)
        wb_reset(b);
    return rc;
}

int wire_build_hello(struct wire_builder *b, const struct wire_hello *h)
{
    struct wire_msg m = {.type = WIRE_HELLO, .u.hello = *h};
    return wire_build(b, &m);
}

int wire_build_welcome(struct wire_builder *b, const struct wire_welcome *w)
{
    struct wire_msg m = {.type = WIRE_WELCOME, .u.welcome = *w};
    return wire_build(b, &m);
}

int wire_build_request(struct wire_builder *b, const struct wire_request *r)
{
    struct wire_msg m = {.type = WIRE_REQUEST, .u.request = *r};
    return wire_build(b, &m);
}

int wire_build_cancel(struct wire_builder *b, const struct wire_cancel *c)
{
    struct wire_msg m = {.type = WIRE_CANCEL, .u.cancel = *c};
    return wire_build(b, &m);
}

int wire_build_token_chunk(struct wire_builder *b, const struct wire_token_chunk *c)
{
    struct wire_msg m = {.type = WIRE_TOKEN_CHUNK, .u.token_chunk = *c};
    return wire_build(b, &m);
}

int wire_build_done(struct wire_builder *b, const struct wire_done *d)
{
    struct wire_msg m = {.type = WIRE_DONE, .u.done = *d};
    return wire_build(b, &m);
}

int wire_build_error(struct wire_builder *b, const struct wire_error *e)
{
    struct wire_msg m = {.type = WIRE_ERROR, .u.error = *e};
    return wire_build(b, &m);
}

int wire_build_list_models(struct wire_builder *b)
{
    struct wire_msg m = {.type = WIRE_LIST_MODELS};
    return wire_build(b, &m);
}

int wire_build_models(struct wire_builder *b, const struct wire_models *ms)
{
    struct wire_msg m = {.type = WIRE_MODELS, .u.models = *ms};
    return wire_build(b, &m);
}

int wire_build_stats_request(struct wire_builder *b)
{
    struct wire_msg m = {.type = WIRE_STATS_REQUEST};
    return wire_build(b, &m);
}

int wire_build_stats(struct wire_builder *b, const struct wire_stats *s)
{
    struct wire_msg m = {.type = WIRE_STATS, .u.stats = *s};
    return wire_build(b, &m);
}
