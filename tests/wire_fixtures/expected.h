/* expected.h - the C form of every JSON fixture in this folder (one
 * wire_msg per NAME.json, with the same values), and the comparing and
 * walking of decoded messages that tests/test_wire.c does with them.
 *
 * A fixture changed here is changed in its JSON file in the same commit:
 * test_wire checks each against the other through flatc (test_wire
 * interop), and that every JSON file has its struct here.
 *
 * Test-only, included by tests/test_wire.c alone (static definitions; the
 * Check assertions come from there).
 */
#ifndef INFERD_WIRE_EXPECTED_H
#define INFERD_WIRE_EXPECTED_H

#include "wire.h"

#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define S(lit) ((struct wire_str){lit, sizeof(lit) - 1})
#define SI(lit)                                                                                    \
    {                                                                                              \
        lit, sizeof(lit) - 1                                                                       \
    } /* the same, in static initializers */

/* ---- the expected messages, one per fixture ---- */

static void fx_hello(struct wire_msg *m)
{
    m->type = WIRE_HELLO;
    m->u.hello = (struct wire_hello){
        .protocol_version = 1,
        .client_name = S("inferctl/0.1 caf\xc3\xa9 \"quoted\""),
        .requested = {8, 65536, 1048576, 4194304, 262144},
    };
}

static void fx_welcome(struct wire_msg *m)
{
    m->type = WIRE_WELCOME;
    m->u.welcome = (struct wire_welcome){
        .protocol_version = 1,
        .session_id = 18364758544493064720ull,
        .limits = {4, 32768, 524288, 2097152, 131072},
    };
}

static const struct wire_str request_stop[] = {SI("\n\n"), SI(""), SI("The End")};

static void fx_request(struct wire_msg *m)
{
    m->type = WIRE_REQUEST;
    struct wire_request *r = &m->u.request;
    wire_request_default(r);
    r->client_request_id = 9223372036854775809ull;
    r->model = S("tinyllama-1.1b-q4_0");
    r->prompt = S("Once upon a time,\nthere was\ta \"llama\".");
    r->sampling = (struct wire_sampling){0.5f, 7, 0.75f, 0.125f, 1.25f, 0.5f, -0.25f, -1, 0};
    r->max_tokens = 4096;
    r->stop = (struct wire_str_list){3, request_stop, NULL};
    r->stream = false;
    r->priority = -5;
    r->cache_salt = S("tenant-42");
    r->n = 3;
    r->logprobs = 5;
}

static const int32_t request_tokens[] = {1, 15043, -1, 2147483647, 0, INT32_MIN};

static void fx_request_tokens(struct wire_msg *m)
{
    m->type = WIRE_REQUEST;
    struct wire_request *r = &m->u.request;
    wire_request_default(r);
    r->client_request_id = 2;
    r->prompt_tokens = request_tokens;
    r->n_prompt_tokens = 6;
    r->sampling.temperature = 0.0f;
    r->sampling.seed = UINT64_MAX;
    r->max_tokens = 0;
    r->stop = (struct wire_str_list){0, request_stop, NULL}; /* present, empty */
    r->priority = INT32_MAX;
}

static void fx_request_defaults(struct wire_msg *m)
{
    m->type = WIRE_REQUEST;
    wire_request_default(&m->u.request);
    m->u.request.prompt = S("");
}

static void fx_cancel(struct wire_msg *m)
{
    m->type = WIRE_CANCEL;
    m->u.cancel.client_request_id = UINT64_MAX;
}

static const int32_t chunk_tokens[] = {450, 4996, 17354, -7};
static const uint8_t chunk_text[] = {84, 104, 101, 32, 113, 117, 105, 99, 107, 0, 255};
static const struct wire_top_logprob chunk_top[] = {{450, -0.5f}, {1576, -1.25f}, {0, -2.75f}};
static const struct wire_token_logprobs chunk_lps[] = {
    {450, -0.5f, chunk_top, 3},
    {4996, -0.0625f, chunk_top, 0}, /* present, empty */
    {0, 0.0f, NULL, 0},
};

static void fx_token_chunk(struct wire_msg *m)
{
    m->type = WIRE_TOKEN_CHUNK;
    m->u.token_chunk = (struct wire_token_chunk){
        .client_request_id = 77,
        .sample = UINT32_MAX,
        .tokens = chunk_tokens,
        .n_tokens = 4,
        .text = chunk_text,
        .text_len = sizeof chunk_text,
        .logprobs = {3, chunk_lps, NULL},
    };
}

static void fx_token_chunk_empty(struct wire_msg *m)
{
    m->type = WIRE_TOKEN_CHUNK;
    m->u.token_chunk = (struct wire_token_chunk){
        .client_request_id = 78,
        .tokens = chunk_tokens,
        .n_tokens = 0,
        .text = chunk_text,
        .text_len = 0,
    };
}

static const uint8_t done_sample_finish[] = {WIRE_FINISH_STOP, WIRE_FINISH_LENGTH, WIRE_FINISH_EOS,
                                            WIRE_FINISH_CANCELLED, WIRE_FINISH_STOP};

static void fx_done(struct wire_msg *m)
{
    m->type = WIRE_DONE;
    m->u.done = (struct wire_done){
        .client_request_id = 9223372036854775809ull,
        .finish_reason = WIRE_FINISH_STOP,
        .usage = {1234, 1024, 4294967295u},
        .timings = {1000000000001ull, 1000000500002ull, 1000020000003ull, UINT64_MAX},
        .sample_finish = done_sample_finish,
        .n_sample_finish = sizeof done_sample_finish,
    };
}

static void fx_done_cancelled(struct wire_msg *m)
{
    m->type = WIRE_DONE;
    m->u.done = (struct wire_done){
        .client_request_id = 5,
        .finish_reason = WIRE_FINISH_CANCELLED,
        .timings = {.queued_ns = 17},
    };
}

static void fx_error(struct wire_msg *m)
{
    m->type = WIRE_ERROR;
    m->u.error = (struct wire_error){
        .client_request_id = 42,
        .code = WIRE_ERR_QUOTA_EXCEEDED,
        .message = S("too many requests: 9 > 8\n\t(\"max_concurrent_requests\")"),
    };
}

static void fx_error_defaults(struct wire_msg *m)
{
    m->type = WIRE_ERROR;
}

static void fx_list_models(struct wire_msg *m)
{
    m->type = WIRE_LIST_MODELS;
}

static const struct wire_model_info model_infos[] = {
    {SI("tinyllama-1.1b-q4_0"), SI("llama"), 1100048384ull, 2048, SI("Q4_0")},
    {SI("smollm-135m"), {NULL, 0}, 0, 0, {NULL, 0}},
};

static void fx_models(struct wire_msg *m)
{
    m->type = WIRE_MODELS;
    m->u.models.models = (struct wire_model_info_list){2, model_infos, NULL};
}

static void fx_models_empty(struct wire_msg *m)
{
    m->type = WIRE_MODELS;
    m->u.models.models = (struct wire_model_info_list){0, model_infos, NULL};
}

static void fx_stats_request(struct wire_msg *m)
{
    m->type = WIRE_STATS_REQUEST;
}

/* The counters alone, as a daemon that predates histograms sends them. */
static void fx_stats(struct wire_msg *m)
{
    m->type = WIRE_STATS;
    m->u.stats = (struct wire_stats){
        .requests_running = 3,
        .requests_waiting = 12,
        .requests_finished = 100000,
        .prompt_tokens = 123456789,
        .generated_tokens = 987654321,
        .kv_blocks_total = 4096,
        .kv_blocks_used = 1000,
        .prefix_cache_queries = 5000,
        .prefix_cache_hits = 4321,
        .preemptions = UINT64_MAX,
    };
}

/* Histograms: short and full slot vectors, no slots, an id this code does
 * not know (kept), extreme values; finish counts with an extra index. */
static const struct wire_histogram stats_hists[] = {
    {.id = WIRE_HIST_TTFT, .count = 3, .sum = 9, .n_slots = 4, .slots = {0, 1, 0, 2}},
    {.id = WIRE_HIST_ITL, .count = 5, .sum = 5, .n_slots = 1, .slots = {5}},
    {.id = WIRE_HIST_BATCH},
    {.id = WIRE_HIST_STEP,
     .count = UINT64_MAX,
     .sum = UINT64_MAX - 1,
     .n_slots = 64,
     .slots = {[0] = 1, [1] = 2, [33] = 1, [63] = UINT64_MAX}},
    {.id = (enum wire_hist_id)200, .count = 1, .sum = 7},
};

static void fx_stats_hists(struct wire_msg *m)
{
    m->type = WIRE_STATS;
    m->u.stats = (struct wire_stats){
        .requests_running = 2,
        .requests_finished = 9,
        .generated_tokens = 321,
        .histograms = {5, stats_hists, NULL},
        .n_finished_by_reason = 6,
        .finished_by_reason = {3, 1, 2, 0, 1, UINT64_MAX},
    };
}

static const struct fixture {
    const char *name;
    void (*make)(struct wire_msg *m);
} fixtures[] = {
    {"hello", fx_hello},
    {"welcome", fx_welcome},
    {"request", fx_request},
    {"request_tokens", fx_request_tokens},
    {"request_defaults", fx_request_defaults},
    {"cancel", fx_cancel},
    {"token_chunk", fx_token_chunk},
    {"token_chunk_empty", fx_token_chunk_empty},
    {"done", fx_done},
    {"done_cancelled", fx_done_cancelled},
    {"error", fx_error},
    {"error_defaults", fx_error_defaults},
    {"list_models", fx_list_models},
    {"models", fx_models},
    {"models_empty", fx_models_empty},
    {"stats_request", fx_stats_request},
    {"stats", fx_stats},
    {"stats_hists", fx_stats_hists},
};
#define N_FIXTURES ((int)(sizeof fixtures / sizeof fixtures[0]))

static struct wire_msg fixture_msg(int i)
{
    struct wire_msg m;
    memset(&m, 0, sizeof m);
    fixtures[i].make(&m);
    return m;
}

static int fixture_index(const char *name)
{
    for (int i = 0; i < N_FIXTURES; i++)
        if (strcmp(fixtures[i].name, name) == 0)
            return i;
    return -1;
}

/* ---- comparing messages (every field; floats bit for bit) ---- */

struct why {
    char s[256];
};

static bool differ(struct why *w, const char *what)
{
    snprintf(w->s, sizeof w->s, "%s differs", what);
    return false;
}

static bool str_eq(struct wire_str a, struct wire_str b)
{
    if (!a.ptr || !b.ptr)
        return !a.ptr && !b.ptr;
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static bool arr_eq(const void *a, size_t na, const void *b, size_t nb, size_t elem)
{
    if (!a || !b)
        return !a && !b && na == 0 && nb == 0;
    return na == nb && (na == 0 || memcmp(a, b, na * elem) == 0);
}

static bool f32_eq(float a, float b)
{
    return memcmp(&a, &b, sizeof a) == 0;
}

static bool limits_eq(const struct wire_limits *a, const struct wire_limits *b)
{
    return a->max_concurrent_requests == b->max_concurrent_requests &&
           a->max_queued_tokens == b->max_queued_tokens &&
           a->submit_ring_bytes == b->submit_ring_bytes &&
           a->completion_ring_bytes == b->completion_ring_bytes &&
           a->max_message_bytes == b->max_message_bytes;
}

static bool list_present(const void *items, const void *vec)
{
    return items || vec;
}

static bool request_eq(const struct wire_request *a, const struct wire_request *b, struct why *w)
{
    const struct wire_sampling *x = &a->sampling, *y = &b->sampling;
    if (a->client_request_id != b->client_request_id)
        return differ(w, "client_request_id");
    if (!str_eq(a->model, b->model))
        return differ(w, "model");
    if (!str_eq(a->prompt, b->prompt))
        return differ(w, "prompt");
    if (!arr_eq(a->prompt_tokens, a->n_prompt_tokens, b->prompt_tokens, b->n_prompt_tokens, 4))
        return differ(w, "prompt_tokens");
    if (!f32_eq(x->temperature, y->temperature) || x->top_k != y->top_k ||
        !f32_eq(x->top_p, y->top_p) || !f32_eq(x->min_p, y->min_p) ||
        !f32_eq(x->repeat_penalty, y->repeat_penalty) ||
        !f32_eq(x->frequency_penalty, y->frequency_penalty) ||
        !f32_eq(x->presence_penalty, y->presence_penalty) || x->repeat_last_n != y->repeat_last_n ||
        x->seed != y->seed)
        return differ(w, "sampling");
    if (a->max_tokens != b->max_tokens)
        return differ(w, "max_tokens");
    if (list_present(a->stop.items, a->stop.vec) != list_present(b->stop.items, b->stop.vec))
        return differ(w, "stop presence");
    if (a->stop.n != b->stop.n)
        return differ(w, "stop count");
    for (size_t i = 0; i < a->stop.n; i++) {
        struct wire_str s, t;
        if (wire_str_at(&a->stop, i, &s) || wire_str_at(&b->stop, i, &t) || !str_eq(s, t))
            return differ(w, "stop[i]");
    }
    if (a->stream != b->stream)
        return differ(w, "stream");
    if (a->priority != b->priority)
        return differ(w, "priority");
    if (!str_eq(a->cache_salt, b->cache_salt))
        return differ(w, "cache_salt");
    if (a->n != b->n)
        return differ(w, "n");
    if (a->logprobs != b->logprobs)
        return differ(w, "logprobs");
    return true;
}

static bool chunk_eq(const struct wire_token_chunk *a, const struct wire_token_chunk *b,
                     struct why *w)
{
    if (a->client_request_id != b->client_request_id)
        return differ(w, "client_request_id");
    if (a->sample != b->sample)
        return differ(w, "sample");
    if (!arr_eq(a->tokens, a->n_tokens, b->tokens, b->n_tokens, 4))
        return differ(w, "tokens");
    if (!arr_eq(a->text, a->text_len, b->text, b->text_len, 1))
        return differ(w, "text");
    if (list_present(a->logprobs.items, a->logprobs.vec) !=
            list_present(b->logprobs.items, b->logprobs.vec) ||
        a->logprobs.n != b->logprobs.n)
        return differ(w, "logprobs");
    for (size_t i = 0; i < a->logprobs.n; i++) {
        struct wire_token_logprobs s, t;
        if (wire_token_logprobs_at(&a->logprobs, i, &s) ||
            wire_token_logprobs_at(&b->logprobs, i, &t))
            return differ(w, "logprobs[i] access");
        if (s.token != t.token || !f32_eq(s.logprob, t.logprob))
            return differ(w, "logprobs[i].token/logprob");
        if (!arr_eq(s.top, s.n_top, t.top, t.n_top, sizeof *s.top))
            return differ(w, "logprobs[i].top");
    }
    return true;
}

static bool models_eq(const struct wire_models *a, const struct wire_models *b, struct why *w)
{
    if (list_present(a->models.items, a->models.vec) !=
            list_present(b->models.items, b->models.vec) ||
        a->models.n != b->models.n)
        return differ(w, "models");
    for (size_t i = 0; i < a->models.n; i++) {
        struct wire_model_info s, t;
        if (wire_model_info_at(&a->models, i, &s) || wire_model_info_at(&b->models, i, &t))
            return differ(w, "models[i] access");
        if (!str_eq(s.name, t.name) || !str_eq(s.arch, t.arch) || s.n_params != t.n_params ||
            s.n_ctx != t.n_ctx || !str_eq(s.quant, t.quant))
            return differ(w, "models[i]");
    }
    return true;
}

static bool hist_eq(const struct wire_histogram *a, const struct wire_histogram *b)
{
    if (a->id != b->id || a->count != b->count || a->sum != b->sum || a->n_slots != b->n_slots)
        return false;
    /* Slots past n_slots are zero on both sides (read as absent). */
    return memcmp(a->slots, b->slots, sizeof a->slots) == 0;
}

static bool stats_eq(const struct wire_stats *a, const struct wire_stats *b, struct why *w)
{
    const uint64_t ca[] = {a->requests_running, a->requests_waiting,  a->requests_finished,
                           a->prompt_tokens,    a->generated_tokens,  a->kv_blocks_total,
                           a->kv_blocks_used,   a->prefix_cache_queries, a->prefix_cache_hits,
                           a->preemptions};
    const uint64_t cb[] = {b->requests_running, b->requests_waiting,  b->requests_finished,
                           b->prompt_tokens,    b->generated_tokens,  b->kv_blocks_total,
                           b->kv_blocks_used,   b->prefix_cache_queries, b->prefix_cache_hits,
                           b->preemptions};
    if (memcmp(ca, cb, sizeof ca) != 0)
        return differ(w, "counters");
    if (list_present(a->histograms.items, a->histograms.vec) !=
            list_present(b->histograms.items, b->histograms.vec) ||
        a->histograms.n != b->histograms.n)
        return differ(w, "histograms");
    for (size_t i = 0; i < a->histograms.n; i++) {
        struct wire_histogram s, t;
        if (wire_histogram_at(&a->histograms, i, &s) || wire_histogram_at(&b->histograms, i, &t))
            return differ(w, "histograms[i] access");
        if (!hist_eq(&s, &t))
            return differ(w, "histograms[i]");
    }
    if (a->n_finished_by_reason != b->n_finished_by_reason ||
        memcmp(a->finished_by_reason, b->finished_by_reason, sizeof a->finished_by_reason) != 0)
        return differ(w, "finished_by_reason");
    return true;
}

static bool msg_eq(const struct wire_msg *a, const struct wire_msg *b, struct why *w)
{
    w->s[0] = '\0';
    if (a->type != b->type)
        return differ(w, "type");
    switch (a->type) {
    case WIRE_HELLO:
        if (a->u.hello.protocol_version != b->u.hello.protocol_version)
            return differ(w, "protocol_version");
        if (!str_eq(a->u.hello.client_name, b->u.hello.client_name))
            return differ(w, "client_name");
        if (!limits_eq(&a->u.hello.requested, &b->u.hello.requested))
            return differ(w, "requested");
        return true;
    case WIRE_WELCOME:
        if (a->u.welcome.protocol_version != b->u.welcome.protocol_version ||
            a->u.welcome.session_id != b->u.welcome.session_id)
            return differ(w, "protocol_version/session_id");
        if (!limits_eq(&a->u.welcome.limits, &b->u.welcome.limits))
            return differ(w, "limits");
        return true;
    case WIRE_REQUEST:
        return request_eq(&a->u.request, &b->u.request, w);
    case WIRE_CANCEL:
        if (a->u.cancel.client_request_id != b->u.cancel.client_request_id)
            return differ(w, "client_request_id");
        return true;
    case WIRE_TOKEN_CHUNK:
        return chunk_eq(&a->u.token_chunk, &b->u.token_chunk, w);
    case WIRE_DONE:
        if (a->u.done.client_request_id != b->u.done.client_request_id ||
            a->u.done.finish_reason != b->u.done.finish_reason)
            return differ(w, "client_request_id/finish_reason");
        if (memcmp(&a->u.done.usage, &b->u.done.usage, sizeof a->u.done.usage) != 0)
            return differ(w, "usage");
        if (memcmp(&a->u.done.timings, &b->u.done.timings, sizeof a->u.done.timings) != 0)
            return differ(w, "timings");
        if (!arr_eq(a->u.done.sample_finish, a->u.done.n_sample_finish, b->u.done.sample_finish,
                    b->u.done.n_sample_finish, 1))
            return differ(w, "sample_finish");
        return true;
    case WIRE_ERROR:
        if (a->u.error.client_request_id != b->u.error.client_request_id ||
            a->u.error.code != b->u.error.code)
            return differ(w, "client_request_id/code");
        if (!str_eq(a->u.error.message, b->u.error.message))
            return differ(w, "message");
        return true;
    case WIRE_MODELS:
        return models_eq(&a->u.models, &b->u.models, w);
    case WIRE_STATS:
        return stats_eq(&a->u.stats, &b->u.stats, w);
    case WIRE_LIST_MODELS:
    case WIRE_STATS_REQUEST:
        return true;
    default:
        return differ(w, "type (unknown)");
    }
}

/* Touch every byte a decoded message points at (strings with their NUL), so
 * that the sanitizers see any view reaching outside its buffer. */
static uint64_t walk_bytes(uint64_t h, const void *p, size_t n)
{
    const uint8_t *q = p;
    for (size_t i = 0; i < n; i++)
        h = h * 1099511628211ull + q[i];
    return h;
}

static uint64_t walk_str(uint64_t h, struct wire_str s)
{
    if (!s.ptr)
        return h * 31;
    ck_assert_int_eq(s.ptr[s.len], 0);
    return walk_bytes(h, s.ptr, s.len + 1);
}

static uint64_t walk_msg(const struct wire_msg *m)
{
    uint64_t h = (uint64_t)m->type;
    switch (m->type) {
    case WIRE_HELLO:
        h = walk_str(h, m->u.hello.client_name);
        return walk_bytes(h, &m->u.hello.requested, sizeof m->u.hello.requested);
    case WIRE_REQUEST: {
        const struct wire_request *r = &m->u.request;
        h = walk_str(walk_str(walk_str(h, r->model), r->prompt), r->cache_salt);
        h = walk_bytes(h, r->prompt_tokens, r->n_prompt_tokens * 4);
        for (size_t i = 0; i < r->stop.n; i++) {
            struct wire_str s;
            ck_assert_int_eq(wire_str_at(&r->stop, i, &s), 0);
            h = walk_str(h, s);
        }
        return h;
    }
    case WIRE_TOKEN_CHUNK: {
        const struct wire_token_chunk *c = &m->u.token_chunk;
        h = walk_bytes(h, c->tokens, c->n_tokens * 4);
        h = walk_bytes(h, c->text, c->text_len);
        for (size_t i = 0; i < c->logprobs.n; i++) {
            struct wire_token_logprobs t;
            ck_assert_int_eq(wire_token_logprobs_at(&c->logprobs, i, &t), 0);
            h = walk_bytes(h, t.top, t.n_top * sizeof *t.top) + (uint64_t)t.token;
        }
        return h;
    }
    case WIRE_DONE:
        h = walk_bytes(h, m->u.done.sample_finish, m->u.done.n_sample_finish);
        return walk_bytes(h, &m->u.done.usage, sizeof m->u.done.usage);
    case WIRE_ERROR:
        return walk_str(h, m->u.error.message);
    case WIRE_MODELS:
        for (size_t i = 0; i < m->u.models.models.n; i++) {
            struct wire_model_info mi;
            ck_assert_int_eq(wire_model_info_at(&m->u.models.models, i, &mi), 0);
            h = walk_str(walk_str(walk_str(h, mi.name), mi.arch), mi.quant) + mi.n_params;
        }
        return h;
    case WIRE_STATS:
        for (size_t i = 0; i < m->u.stats.histograms.n; i++) {
            struct wire_histogram hg;
            ck_assert_int_eq(wire_histogram_at(&m->u.stats.histograms, i, &hg), 0);
            ck_assert_uint_le(hg.n_slots, WIRE_HIST_SLOTS);
            h = walk_bytes(h, hg.slots, sizeof hg.slots) + hg.count + hg.sum + hg.id;
        }
        return walk_bytes(h, m->u.stats.finished_by_reason, m->u.stats.n_finished_by_reason * 8);
    default:
        return walk_bytes(h, &m->u, sizeof m->u.welcome);
    }
}

#endif
