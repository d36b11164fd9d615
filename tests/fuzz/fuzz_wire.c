/* fuzz_wire.c - fuzz harness for the wire protocol verifier and readers
 * (ipc/wire*.c): any byte string goes through wire_read() (which verifies
 * first, with tight and default limits); when it is accepted, every field of
 * the message is walked (every byte of every string with its NUL, every
 * array element, every list element's own arrays) so that a view reaching
 * outside the input shows up under the sanitizers. An accepted message is
 * then built again and must read back to the same values, so that the
 * verifier, the readers and the builder agree with each other.
 */
#include "wire.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct wire_builder *fuzz_wire_builder;

static uint64_t fuzz_wire_bytes(uint64_t h, const void *p, size_t n)
{
    const uint8_t *q = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ q[i]) * 1099511628211ull;
    return h;
}

static uint64_t fuzz_wire_str(uint64_t h, struct wire_str s)
{
    if (!s.ptr)
        return h * 3 + 1;
    if (s.ptr[s.len] != '\0')
        abort(); /* the verifier promised a terminator */
    return fuzz_wire_bytes(h * 5 + s.len, s.ptr, s.len + 1);
}

static uint64_t fuzz_wire_f32(uint64_t h, float f)
{
    return fuzz_wire_bytes(h, &f, sizeof f);
}

/* A hash of every value of the message, in order (presence included). */
static uint64_t fuzz_wire_walk(const struct wire_msg *m)
{
    uint64_t h = 0xcbf29ce484222325ull + (uint64_t)m->type;
    switch (m->type) {
    case WIRE_HELLO:
        h = fuzz_wire_str(h + m->u.hello.protocol_version, m->u.hello.client_name);
        return fuzz_wire_bytes(h, &m->u.hello.requested, sizeof m->u.hello.requested);
    case WIRE_WELCOME:
        h += m->u.welcome.protocol_version + m->u.welcome.session_id * 7;
        return fuzz_wire_bytes(h, &m->u.welcome.limits, sizeof m->u.welcome.limits);
    case WIRE_REQUEST: {
        const struct wire_request *r = &m->u.request;
        const struct wire_sampling *s = &r->sampling;
        h = fuzz_wire_str(h + r->client_request_id, r->model);
        h = fuzz_wire_str(h, r->prompt);
        h = fuzz_wire_bytes(h * 3 + (r->prompt_tokens != NULL), r->prompt_tokens,
                            r->n_prompt_tokens * sizeof *r->prompt_tokens);
        h = fuzz_wire_f32(h, s->temperature) + (uint64_t)s->top_k;
        h = fuzz_wire_f32(fuzz_wire_f32(fuzz_wire_f32(h, s->top_p), s->min_p), s->repeat_penalty);
        h = fuzz_wire_f32(fuzz_wire_f32(h, s->frequency_penalty), s->presence_penalty);
        h = (h + (uint64_t)s->repeat_last_n) * 31 + s->seed;
        h = h * 31 + r->max_tokens + ((r->stop.vec || r->stop.items) ? 1 : 0);
        for (size_t i = 0; i < r->stop.n; i++) {
            struct wire_str st;
            if (wire_str_at(&r->stop, i, &st) != 0)
                abort();
            h = fuzz_wire_str(h, st);
        }
        h = h * 31 + r->stream + (uint64_t)r->priority * 5 + r->n * 7 + r->logprobs * 11;
        return fuzz_wire_str(h, r->cache_salt);
    }
    case WIRE_CANCEL:
        return h + m->u.cancel.client_request_id;
    case WIRE_TOKEN_CHUNK: {
        const struct wire_token_chunk *c = &m->u.token_chunk;
        h = fuzz_wire_bytes(h * 3 + (c->tokens != NULL) + c->client_request_id, c->tokens,
                            c->n_tokens * sizeof *c->tokens);
        h = fuzz_wire_bytes(h * 3 + (c->text != NULL), c->text, c->text_len);
        h = h * 3 + ((c->logprobs.vec || c->logprobs.items) ? 1 : 0);
        for (size_t i = 0; i < c->logprobs.n; i++) {
            struct wire_token_logprobs t;
            if (wire_token_logprobs_at(&c->logprobs, i, &t) != 0)
                abort();
            h = fuzz_wire_f32(h + (uint64_t)t.token, t.logprob) * 3 + (t.top != NULL);
            h = fuzz_wire_bytes(h, t.top, t.n_top * sizeof *t.top);
        }
        return h;
    }
    case WIRE_DONE:
        h += m->u.done.client_request_id + (uint64_t)m->u.done.finish_reason;
        h = fuzz_wire_bytes(h, &m->u.done.usage, sizeof m->u.done.usage);
        return fuzz_wire_bytes(h, &m->u.done.timings, sizeof m->u.done.timings);
    case WIRE_ERROR:
        h += m->u.error.client_request_id + (uint64_t)m->u.error.code;
        return fuzz_wire_str(h, m->u.error.message);
    case WIRE_MODELS:
        h = h * 3 + ((m->u.models.models.vec || m->u.models.models.items) ? 1 : 0);
        for (size_t i = 0; i < m->u.models.models.n; i++) {
            struct wire_model_info mi;
            if (wire_model_info_at(&m->u.models.models, i, &mi) != 0)
                abort();
            h = fuzz_wire_str(fuzz_wire_str(h, mi.name), mi.arch);
            h = fuzz_wire_str(h + mi.n_params + mi.n_ctx, mi.quant);
        }
        return h;
    case WIRE_STATS: {
        const struct wire_stats *s = &m->u.stats;
        const uint64_t c[] = {s->requests_running,     s->requests_waiting,  s->requests_finished,
                              s->prompt_tokens,        s->generated_tokens,  s->kv_blocks_total,
                              s->kv_blocks_used,       s->prefix_cache_queries,
                              s->prefix_cache_hits,    s->preemptions};
        h = fuzz_wire_bytes(h, c, sizeof c);
        /* An absent list and an empty one build and read back alike. */
        for (size_t i = 0; i < s->histograms.n; i++) {
            struct wire_histogram hg;
            if (wire_histogram_at(&s->histograms, i, &hg) != 0 || hg.n_slots > WIRE_HIST_SLOTS)
                abort();
            h = fuzz_wire_bytes(h * 31 + hg.id + hg.count * 3 + hg.sum * 5 + hg.n_slots, hg.slots,
                                sizeof hg.slots);
        }
        if (s->n_finished_by_reason > WIRE_MAX_FINISH_COUNTS)
            abort();
        return fuzz_wire_bytes(h + s->n_finished_by_reason, s->finished_by_reason,
                               s->n_finished_by_reason * sizeof *s->finished_by_reason);
    }
    default:
        return h;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fuzz_wire_builder)
        fuzz_wire_builder = wire_builder_new(0); /* lives for the process */
    /* A 4-aligned exact-size copy: readers need the alignment, and ASan
     * then sees any read past the input. */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    if (size)
        memcpy(buf, data, size);

    /* Tight limits first (depth and object counting paths), then defaults. */
    struct wire_verify_opts tight = {.max_bytes = 4096, .max_depth = 2, .max_objects = 16};
    struct wire_diag d;
    (void)wire_verify(buf, size, &tight, &d);

    struct wire_msg m, again;
    if (wire_read(buf, size, NULL, &m, &d) == 0) {
        uint64_t h = fuzz_wire_walk(&m);
        const void *p;
        size_t n;
        if (fuzz_wire_builder && wire_build(fuzz_wire_builder, &m) == 0 &&
            wire_builder_finish(fuzz_wire_builder, &p, &n) == 0) {
            if (wire_read(p, n, NULL, &again, &d) != 0)
                abort(); /* the builder wrote something the verifier refuses */
            if (fuzz_wire_walk(&again) != h)
                abort(); /* a value changed on the way through */
        }
    }
    free(buf);
    return 0;
}
