/* wire_read.c - typed readers: a verified buffer decoded into the plain
 * structs of wire.h (scalars copied, with schema defaults for absent
 * fields; strings and arrays as pointers into the buffer).
 *
 * Every entry point runs wire_verify() first, so the loads below need no
 * bounds checks of their own: each offset and size they follow was checked
 * by the verifier on the same bytes.
 */
#include "wire_impl.h"

#include <errno.h>
#include <stdio.h>

/* A verified table: where it starts and where its vtable is. */
struct rtab {
    const uint8_t *t;
    const uint8_t *vt;
    uint16_t vtsize;
};

static struct rtab rt_open(const uint8_t *t)
{
    int32_t soff;
    memcpy(&soff, t, 4);
    struct rtab r = {t, t - soff, 0};
    r.vtsize = wire_ld16(r.vt);
    return r;
}

/* Where field id is, or NULL when absent. */
static const uint8_t *rt_pos(const struct rtab *r, unsigned id)
{
    size_t slot = 4 + 2 * (size_t)id;
    if (slot + 2 > r->vtsize)
        return NULL;
    uint16_t fo = wire_ld16(r->vt + slot);
    return fo ? r->t + fo : NULL;
}

/* The target of the uoffset at p. */
static const uint8_t *rt_deref(const uint8_t *p)
{
    return p + wire_ld32(p);
}

static uint8_t rt_u8(const struct rtab *r, unsigned id, uint8_t def)
{
    const uint8_t *p = rt_pos(r, id);
    return p ? *p : def;
}

static uint16_t rt_u16(const struct rtab *r, unsigned id, uint16_t def)
{
    const uint8_t *p = rt_pos(r, id);
    return p ? wire_ld16(p) : def;
}

static uint32_t rt_u32(const struct rtab *r, unsigned id, uint32_t def)
{
    const uint8_t *p = rt_pos(r, id);
    return p ? wire_ld32(p) : def;
}

static int32_t rt_i32(const struct rtab *r, unsigned id, int32_t def)
{
    const uint8_t *p = rt_pos(r, id);
    int32_t v = def;
    if (p)
        memcpy(&v, p, 4);
    return v;
}

static float rt_f32(const struct rtab *r, unsigned id, float def)
{
    const uint8_t *p = rt_pos(r, id);
    float v = def;
    if (p)
        memcpy(&v, p, 4);
    return v;
}

static uint64_t rt_u64(const struct rtab *r, unsigned id, uint64_t def)
{
    const uint8_t *p = rt_pos(r, id);
    return p ? wire_ld64(p) : def;
}

static struct wire_str rt_str(const struct rtab *r, unsigned id)
{
    struct wire_str s = {NULL, 0};
    const uint8_t *p = rt_pos(r, id);
    if (p) {
        const uint8_t *at = rt_deref(p);
        s.len = wire_ld32(at);
        s.ptr = (const char *)at + 4;
    }
    return s;
}

/* A vector: its first element (NULL when absent) and count. */
static const uint8_t *rt_vec(const struct rtab *r, unsigned id, size_t *n)
{
    const uint8_t *p = rt_pos(r, id);
    *n = 0;
    if (!p)
        return NULL;
    const uint8_t *v = rt_deref(p);
    *n = wire_ld32(v);
    return v + 4;
}

static bool rt_sub(const struct rtab *r, unsigned id, struct rtab *out)
{
    const uint8_t *p = rt_pos(r, id);
    if (!p)
        return false;
    *out = rt_open(rt_deref(p));
    return true;
}

/* n u64 elements of a vector at v (n within the schema's bound, checked
 * by the verifier; cap is the room in out) into out. */
static size_t rt_copy_u64(const uint8_t *v, size_t n, uint64_t *out, size_t cap)
{
    if (n > cap)
        n = cap; /* cannot happen after the verifier; keeps out in bounds */
    for (size_t i = 0; i < n; i++)
        out[i] = wire_ld64(v + 8 * i);
    return n;
}

/* ---- defaults ---- */

void wire_sampling_default(struct wire_sampling *s)
{
    *s = (struct wire_sampling){
        .temperature = WIRE_DEF_TEMPERATURE,
        .top_k = WIRE_DEF_TOP_K,
        .top_p = WIRE_DEF_TOP_P,
        .min_p = WIRE_DEF_MIN_P,
        .repeat_penalty = WIRE_DEF_REPEAT_PENALTY,
        .frequency_penalty = 0.0f,
        .presence_penalty = 0.0f,
        .repeat_last_n = WIRE_DEF_REPEAT_LAST_N,
        .seed = WIRE_DEF_SEED,
    };
}

void wire_request_default(struct wire_request *r)
{
    memset(r, 0, sizeof *r);
    wire_sampling_default(&r->sampling);
    r->max_tokens = WIRE_DEF_MAX_TOKENS;
    r->stream = WIRE_DEF_STREAM;
    r->n = WIRE_DEF_N;
}

/* ---- lists ---- */

/* The table that element i of a vector of tables at vec points to. */
static struct rtab rt_elem(const unsigned char *vec, size_t i)
{
    return rt_open(rt_deref(vec + 4 * i));
}

int wire_str_at(const struct wire_str_list *l, size_t i, struct wire_str *out)
{
    if (i >= l->n || (!l->items && !l->vec))
        return -ERANGE;
    if (l->items) {
        *out = l->items[i];
        return 0;
    }
    const uint8_t *s = rt_deref(l->vec + 4 * i);
    out->len = wire_ld32(s);
    out->ptr = (const char *)s + 4;
    return 0;
}

static void read_token_logprobs(const struct rtab *r, struct wire_token_logprobs *o)
{
    o->token = rt_i32(r, F_TOKEN_LOGPROBS_TOKEN, 0);
    o->logprob = rt_f32(r, F_TOKEN_LOGPROBS_LOGPROB, 0.0f);
    o->top =
        (const struct wire_top_logprob *)(const void *)rt_vec(r, F_TOKEN_LOGPROBS_TOP, &o->n_top);
}

int wire_token_logprobs_at(const struct wire_token_logprobs_list *l, size_t i,
                           struct wire_token_logprobs *out)
{
    if (i >= l->n || (!l->items && !l->vec))
        return -ERANGE;
    if (l->items) {
        *out = l->items[i];
        return 0;
    }
    struct rtab r = rt_elem(l->vec, i);
    read_token_logprobs(&r, out);
    return 0;
}

static void read_model_info(const struct rtab *r, struct wire_model_info *o)
{
    o->name = rt_str(r, F_MODEL_INFO_NAME);
    o->arch = rt_str(r, F_MODEL_INFO_ARCH);
    o->n_params = rt_u64(r, F_MODEL_INFO_N_PARAMS, 0);
    o->n_ctx = rt_u32(r, F_MODEL_INFO_N_CTX, 0);
    o->quant = rt_str(r, F_MODEL_INFO_QUANT);
}

int wire_model_info_at(const struct wire_model_info_list *l, size_t i, struct wire_model_info *out)
{
    if (i >= l->n || (!l->items && !l->vec))
        return -ERANGE;
    if (l->items) {
        *out = l->items[i];
        return 0;
    }
    struct rtab r = rt_elem(l->vec, i);
    read_model_info(&r, out);
    return 0;
}

static void read_histogram(const struct rtab *r, struct wire_histogram *o)
{
    memset(o, 0, sizeof *o);
    o->id = (enum wire_hist_id)rt_u8(r, F_HISTOGRAM_ID, 0);
    o->count = rt_u64(r, F_HISTOGRAM_COUNT, 0);
    o->sum = rt_u64(r, F_HISTOGRAM_SUM, 0);
    size_t n = 0;
    const uint8_t *v = rt_vec(r, F_HISTOGRAM_SLOTS, &n);
    if (v)
        o->n_slots = rt_copy_u64(v, n, o->slots, WIRE_HIST_SLOTS);
}

int wire_histogram_at(const struct wire_histogram_list *l, size_t i, struct wire_histogram *out)
{
    if (i >= l->n || (!l->items && !l->vec))
        return -ERANGE;
    if (l->items) {
        *out = l->items[i];
        return 0;
    }
    struct rtab r = rt_elem(l->vec, i);
    read_histogram(&r, out);
    return 0;
}

/* ---- messages ---- */

static void read_limits(const struct rtab *m, unsigned id, struct wire_limits *o)
{
    struct rtab r;
    memset(o, 0, sizeof *o);
    if (!rt_sub(m, id, &r))
        return;
    o->max_concurrent_requests = rt_u32(&r, F_LIMITS_MAX_CONCURRENT_REQUESTS, 0);
    o->max_queued_tokens = rt_u32(&r, F_LIMITS_MAX_QUEUED_TOKENS, 0);
    o->submit_ring_bytes = rt_u32(&r, F_LIMITS_SUBMIT_RING_BYTES, 0);
    o->completion_ring_bytes = rt_u32(&r, F_LIMITS_COMPLETION_RING_BYTES, 0);
    o->max_message_bytes = rt_u32(&r, F_LIMITS_MAX_MESSAGE_BYTES, 0);
}

static void read_hello(const struct rtab *r, struct wire_msg *m)
{
    struct wire_hello *o = &m->u.hello;
    o->protocol_version = rt_u32(r, F_HELLO_PROTOCOL_VERSION, 0);
    o->client_name = rt_str(r, F_HELLO_CLIENT_NAME);
    read_limits(r, F_HELLO_REQUESTED, &o->requested);
}

static void read_welcome(const struct rtab *r, struct wire_msg *m)
{
    struct wire_welcome *o = &m->u.welcome;
    o->protocol_version = rt_u32(r, F_WELCOME_PROTOCOL_VERSION, 0);
    o->session_id = rt_u64(r, F_WELCOME_SESSION_ID, 0);
    read_limits(r, F_WELCOME_LIMITS, &o->limits);
}

static void read_sampling(const struct rtab *m, unsigned id, struct wire_sampling *o)
{
    struct rtab r;
    wire_sampling_default(o);
    if (!rt_sub(m, id, &r))
        return;
    o->temperature = rt_f32(&r, F_SAMPLING_TEMPERATURE, o->temperature);
    o->top_k = rt_i32(&r, F_SAMPLING_TOP_K, o->top_k);
    o->top_p = rt_f32(&r, F_SAMPLING_TOP_P, o->top_p);
    o->min_p = rt_f32(&r, F_SAMPLING_MIN_P, o->min_p);
    o->repeat_penalty = rt_f32(&r, F_SAMPLING_REPEAT_PENALTY, o->repeat_penalty);
    o->frequency_penalty = rt_f32(&r, F_SAMPLING_FREQUENCY_PENALTY, o->frequency_penalty);
    o->presence_penalty = rt_f32(&r, F_SAMPLING_PRESENCE_PENALTY, o->presence_penalty);
    o->repeat_last_n = rt_i32(&r, F_SAMPLING_REPEAT_LAST_N, o->repeat_last_n);
    o->seed = rt_u64(&r, F_SAMPLING_SEED, o->seed);
}

static void read_request(const struct rtab *r, struct wire_msg *m)
{
    struct wire_request *o = &m->u.request;
    wire_request_default(o);
    o->client_request_id = rt_u64(r, F_REQUEST_CLIENT_REQUEST_ID, 0);
    o->model = rt_str(r, F_REQUEST_MODEL);
    o->prompt = rt_str(r, F_REQUEST_PROMPT);
    o->prompt_tokens =
        (const int32_t *)(const void *)rt_vec(r, F_REQUEST_PROMPT_TOKENS, &o->n_prompt_tokens);
    read_sampling(r, F_REQUEST_SAMPLING, &o->sampling);
    o->max_tokens = rt_u32(r, F_REQUEST_MAX_TOKENS, WIRE_DEF_MAX_TOKENS);
    o->stop.vec = rt_vec(r, F_REQUEST_STOP, &o->stop.n);
    o->stream = rt_u8(r, F_REQUEST_STREAM, WIRE_DEF_STREAM) != 0;
    o->priority = rt_i32(r, F_REQUEST_PRIORITY, 0);
    o->cache_salt = rt_str(r, F_REQUEST_CACHE_SALT);
    o->n = rt_u32(r, F_REQUEST_N, WIRE_DEF_N);
    o->logprobs = rt_u32(r, F_REQUEST_LOGPROBS, 0);
}

static void read_cancel(const struct rtab *r, struct wire_msg *m)
{
    m->u.cancel.client_request_id = rt_u64(r, F_CANCEL_CLIENT_REQUEST_ID, 0);
}

static void read_token_chunk(const struct rtab *r, struct wire_msg *m)
{
    struct wire_token_chunk *o = &m->u.token_chunk;
    o->client_request_id = rt_u64(r, F_TOKEN_CHUNK_CLIENT_REQUEST_ID, 0);
    o->tokens = (const int32_t *)(const void *)rt_vec(r, F_TOKEN_CHUNK_TOKENS, &o->n_tokens);
    o->text = rt_vec(r, F_TOKEN_CHUNK_TEXT, &o->text_len);
    o->logprobs.items = NULL;
    o->logprobs.vec = rt_vec(r, F_TOKEN_CHUNK_LOGPROBS, &o->logprobs.n);
    o->sample = rt_u32(r, F_TOKEN_CHUNK_SAMPLE, 0);
}

static void read_done(const struct rtab *r, struct wire_msg *m)
{
    struct wire_done *o = &m->u.done;
    struct rtab s;
    o->client_request_id = rt_u64(r, F_DONE_CLIENT_REQUEST_ID, 0);
    o->finish_reason = (enum wire_finish_reason)rt_u8(r, F_DONE_FINISH_REASON, 0);
    o->sample_finish = rt_vec(r, F_DONE_SAMPLE_FINISH, &o->n_sample_finish);
    memset(&o->usage, 0, sizeof o->usage);
    if (rt_sub(r, F_DONE_USAGE, &s)) {
        o->usage.prompt_tokens = rt_u32(&s, F_USAGE_PROMPT_TOKENS, 0);
        o->usage.cached_prompt_tokens = rt_u32(&s, F_USAGE_CACHED_PROMPT_TOKENS, 0);
        o->usage.generated_tokens = rt_u32(&s, F_USAGE_GENERATED_TOKENS, 0);
    }
    memset(&o->timings, 0, sizeof o->timings);
    if (rt_sub(r, F_DONE_TIMINGS, &s)) {
        o->timings.queued_ns = rt_u64(&s, F_TIMINGS_QUEUED_NS, 0);
        o->timings.scheduled_ns = rt_u64(&s, F_TIMINGS_SCHEDULED_NS, 0);
        o->timings.first_token_ns = rt_u64(&s, F_TIMINGS_FIRST_TOKEN_NS, 0);
        o->timings.finished_ns = rt_u64(&s, F_TIMINGS_FINISHED_NS, 0);
    }
}

static void read_error(const struct rtab *r, struct wire_msg *m)
{
    struct wire_error *o = &m->u.error;
    o->client_request_id = rt_u64(r, F_ERROR_CLIENT_REQUEST_ID, 0);
    o->code = (enum wire_error_code)rt_u16(r, F_ERROR_CODE, 0);
    o->message = rt_str(r, F_ERROR_MESSAGE);
}

static void read_models(const struct rtab *r, struct wire_msg *m)
{
    struct wire_models *o = &m->u.models;
    o->models.items = NULL;
    o->models.vec = rt_vec(r, F_MODELS_MODELS, &o->models.n);
}

static void read_stats(const struct rtab *r, struct wire_msg *m)
{
    struct wire_stats *o = &m->u.stats;
    uint64_t *counters[WIRE_STATS_COUNTERS] = {
        &o->requests_running,     &o->requests_waiting,  &o->requests_finished,
        &o->prompt_tokens,        &o->generated_tokens,  &o->kv_blocks_total,
        &o->kv_blocks_used,       &o->prefix_cache_queries, &o->prefix_cache_hits,
        &o->preemptions,
    };
    for (unsigned i = 0; i < WIRE_STATS_COUNTERS; i++)
        *counters[i] = rt_u64(r, F_STATS_REQUESTS_RUNNING + i, 0);
    o->histograms.items = NULL;
    o->histograms.vec = rt_vec(r, F_STATS_HISTOGRAMS, &o->histograms.n);
    size_t n = 0;
    const uint8_t *v = rt_vec(r, F_STATS_FINISHED_BY_REASON, &n);
    memset(o->finished_by_reason, 0, sizeof o->finished_by_reason);
    o->n_finished_by_reason =
        v ? rt_copy_u64(v, n, o->finished_by_reason, WIRE_MAX_FINISH_COUNTS) : 0;
}

static void read_nothing(const struct rtab *r, struct wire_msg *m)
{
    (void)r;
    (void)m;
}

static void (*const readers[WIRE_TYPE_COUNT])(const struct rtab *, struct wire_msg *) = {
    [WIRE_HELLO] = read_hello,
    [WIRE_WELCOME] = read_welcome,
    [WIRE_REQUEST] = read_request,
    [WIRE_CANCEL] = read_cancel,
    [WIRE_TOKEN_CHUNK] = read_token_chunk,
    [WIRE_DONE] = read_done,
    [WIRE_ERROR] = read_error,
    [WIRE_LIST_MODELS] = read_nothing,
    [WIRE_MODELS] = read_models,
    [WIRE_STATS_REQUEST] = read_nothing,
    [WIRE_STATS] = read_stats,
};

static int read_fail(struct wire_diag *diag, const char *why)
{
    if (diag) {
        snprintf(diag->reason, sizeof diag->reason, "%s", why);
        diag->offset = 0;
    }
    return -EINVAL;
}

int wire_read(const void *buf, size_t len, const struct wire_verify_opts *opts,
              struct wire_msg *out, struct wire_diag *diag)
{
    memset(out, 0, sizeof *out);
    if (((uintptr_t)buf & 3) != 0)
        return read_fail(diag, "buffer not 4-byte aligned");
    int rc = wire_verify(buf, len, opts, diag);
    if (rc < 0)
        return rc;
    const uint8_t *b = buf;
    struct rtab msg = rt_open(b + wire_ld32(b)), body;
    enum wire_type type = (enum wire_type)rt_u8(&msg, F_MESSAGE_BODY_TYPE, WIRE_NONE);
    if (!rt_sub(&msg, F_MESSAGE_BODY, &body) || type <= WIRE_NONE || type >= WIRE_TYPE_COUNT)
        return read_fail(diag, "Message: no body"); /* the verifier rules this out */
    out->type = type;
    readers[type](&body, out);
    if (type == WIRE_REQUEST) {
        const struct wire_request *r = &out->u.request;
        if (r->prompt.ptr && r->prompt_tokens) {
            out->type = WIRE_NONE;
            return read_fail(diag, "Request: both prompt and prompt_tokens");
        }
        if (!r->prompt.ptr && !r->prompt_tokens) {
            out->type = WIRE_NONE;
            return read_fail(diag, "Request: neither prompt nor prompt_tokens");
        }
    }
    return 0;
}

static int read_typed(const void *buf, size_t len, enum wire_type want, struct wire_msg *m)
{
    int rc = wire_read(buf, len, NULL, m, NULL);
    if (rc < 0)
        return rc;
    return m->type == want ? 0 : -ENOMSG;
}

int wire_read_hello(const void *buf, size_t len, struct wire_hello *out)
{
    struct wire_msg m;
    int rc = read_typed(buf, len, WIRE_HELLO, &m);
    if (rc == 0)
        *out = m.u.hello;
    return rc;
}

int wire_read_welcome(const void *buf, size_t len, struct wire_welcome *out)
{
    struct wire_msg m;
    int rc = read_typed(buf, len, WIRE_WELCOME, &m);
    if (rc == 0)
        *out = m.u.welcome;
    return rc;
}

int wire_read_request(const void *buf, size_t len, struct wire_request *out)
{
    struct wire_msg m;
    int rc = read_typed(buf, len, WIRE_REQUEST, &m);
    if (rc == 0)
        *out = m.u.request;
    return rc;
}

int wire_read_cancel(const void *buf, size_t len, struct wire_cancel *out)
{
    struct wire_msg m;
    int rc = read_typed(buf, len, WIRE_CANCEL, &m);
    if (rc == 0)
        *out = m.u.cancel;
    return rc;
}

int wire_read_token_chunk(const void *buf, size_t len, struct wire_token_chunk *out)
{
    struct wire_msg m;
    int rc = read_typed(buf, len, WIRE_TOKEN_CHUNK, &m);
    if (rc == 0)
        *out = m.u.token_chunk;
    return rc;
}

int wire_read_done(const void *buf, size_t len, struct wire_done *out)
{
    struct wire_msg m;
    int rc = read_typed(buf, len, WIRE_DONE, &m);
    if (rc == 0)
        *out = m.u.done;
    return rc;
}

int wire_read_error(const void *buf, size_t len, struct wire_error *out)
{
    struct wire_msg m;
    int rc = read_typed(buf, len, WIRE_ERROR, &m);
    if (rc == 0)
        *out = m.u.error;
    return rc;
}

int wire_read_models(const void *buf, size_t len, struct wire_models *out)
{
    struct wire_msg m;
    int rc = read_typed(buf, len, WIRE_MODELS, &m);
    if (rc == 0)
        *out = m.u.models;
    return rc;
}

int wire_read_stats(const void *buf, size_t len, struct wire_stats *out)
{
    struct wire_msg m;
    int rc = read_typed(buf, len, WIRE_STATS, &m);
    if (rc == 0)
        *out = m.u.stats;
    return rc;
}
