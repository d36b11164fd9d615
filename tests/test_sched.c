/* test_sched.c - the scheduler on a real model (stories260K): block
 * accounting under random load, batch invariance against requests run
 * alone and against the goldens, prefix reuse, preemption, refusal of
 * requests that can never fit, copy-on-write samples, cancellation. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler.h"
#include "testutil.h"

#define MAX_REQ 1024

/* Everything the events said, per request id. */
struct rec {
    int32_t tokens[8][512];
    uint32_t n_tokens[8];
    int terminal;       /* count of terminal events */
    enum sched_ev_type how;
    uint32_t cached, generated, preemptions, cache_queries, cache_hits;
    uint32_t blocks_at_first_token;
};

struct log {
    struct rec *r; /* indexed by request id */
    struct sched *s;
    int bad;       /* events for unknown / ended requests */
};

static void on_event(void *ud, const struct sched_event *ev)
{
    struct log *lg = ud;
    if (ev->req_id >= MAX_REQ) {
        lg->bad++;
        return;
    }
    struct rec *r = &lg->r[ev->req_id];
    if (r->terminal) {
        lg->bad++;
        return;
    }
    if (ev->type == SCHED_EV_TOKEN) {
        if (ev->sample >= 8) {
            lg->bad++;
            return;
        }
        if (ev->token >= 0 && r->n_tokens[ev->sample] < 512)
            r->tokens[ev->sample][r->n_tokens[ev->sample]++] = ev->token;
        if (lg->s && r->blocks_at_first_token == 0) {
            struct sched_stats st;
            sched_get_stats(lg->s, &st);
            r->blocks_at_first_token = st.kv_blocks_used;
        }
        return;
    }
    r->terminal++;
    r->how = ev->type;
    r->cached = ev->cached_prompt_tokens;
    r->generated = ev->generated_tokens;
    r->preemptions = ev->preemptions;
    r->cache_queries = ev->cache_queries;
    r->cache_hits = ev->cache_hits;
}

static struct engine *open_engine(enum dt_type kv, uint32_t n_blocks)
{
    struct engine_params p;
    engine_params_default(&p);
    p.model_path = tu_path("models/stories260K.gguf");
    p.kv_type = kv;
    p.n_ctx = 512;
    p.n_threads = 2;
    p.kv_bytes = (uint64_t)n_blocks * kv_block_bytes_total(kv, 5, 32);
    char err[256];
    struct engine *e = NULL;
    ck_assert_msg(engine_open(&p, &e, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(e->kv.n_blocks, n_blocks);
    return e;
}

static struct sched *new_sched(struct engine *e, struct log *lg, bool prefix, uint32_t budget)
{
    struct sched_params sp;
    sched_params_default(&sp);
    sp.prefix_cache = prefix;
    if (budget)
        sp.max_batch_tokens = budget;
    struct sched *s;
    ck_assert_int_eq(sched_create(e, &sp, on_event, lg, &s), 0);
    lg->s = s;
    return s;
}

static void run_all(struct sched *s)
{
    char err[256];
    while (sched_has_work(s)) {
        int n = sched_step(s);
        ck_assert_int_ge(n, 0);
        ck_assert_msg(sched_check(s, err, sizeof err) == 0, "%s", err);
    }
}

static uint64_t submit(struct sched *s, const int32_t *p, size_t n, uint32_t max, float temp,
                       uint64_t seed, uint32_t samples)
{
    struct sched_request r = {0};
    smp_params_default(&r.sampling);
    r.sampling.temperature = temp;
    r.sampling.seed = seed;
    r.prompt = p;
    r.n_prompt = n;
    r.max_tokens = max;
    r.n = samples;
    uint64_t id;
    char err[256];
    ck_assert_msg(sched_submit(s, &r, &id, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_lt(id, MAX_REQ);
    return id;
}

/* A prompt of n ids: BOS then pseudo-random vocabulary ids (seeded). */
static void make_prompt(int32_t *p, size_t n, unsigned seed)
{
    unsigned long long st = seed * 7919ULL + 17;
    p[0] = 1;
    for (size_t i = 1; i < n; i++)
        p[i] = 3 + (int32_t)(tu_rand_uniform(&st) * 509);
}

/* The scheduler's own histograms and finish counters (obsstats.h) against
 * what the events said: every request ended once (E2E, finish counts), one
 * TTFT and PREFILL per request that produced a token, one ITL per later
 * token, one STEP and BATCH per step with the batch tokens summing to the
 * tokens processed; every histogram's slots sum to its count. */
static void check_obs(const struct sched_stats *st, const struct log *lg, const uint64_t *ids,
                      uint32_t n_ids, uint32_t cancels)
{
    const struct obs_stats *o = &st->obs;
    uint64_t with_token = 0, itl = 0, fin = 0;
    for (uint32_t i = 0; i < n_ids; i++) {
        const struct rec *r = &lg->r[ids[i]];
        with_token += r->generated > 0;
        itl += r->generated > 1 ? r->generated - 1 : 0;
    }
    for (int i = 0; i < INFERD_PROBE_REASON_COUNT; i++)
        fin += o->finished[i];
    ck_assert_uint_eq(fin, n_ids);
    ck_assert_uint_eq(o->finished[INFERD_PROBE_CANCELLED], cancels);
    ck_assert_uint_eq(o->finished[INFERD_PROBE_ERROR], 0);
    ck_assert_uint_eq(o->finished[INFERD_PROBE_LENGTH] + o->finished[INFERD_PROBE_EOS] +
                          o->finished[INFERD_PROBE_STOP],
                      st->finished);
    ck_assert_uint_eq(o->h[INFERD_H_E2E].count, n_ids);
    ck_assert_uint_eq(o->h[INFERD_H_TTFT].count, with_token);
    ck_assert_uint_eq(o->h[INFERD_H_PREFILL].count, with_token);
    ck_assert_uint_eq(o->h[INFERD_H_ITL].count, itl);
    ck_assert_uint_ge(o->h[INFERD_H_QUEUE].count, with_token);
    ck_assert_uint_le(o->h[INFERD_H_QUEUE].count, n_ids);
    ck_assert_uint_eq(o->h[INFERD_H_STEP].count, st->steps);
    ck_assert_uint_eq(o->h[INFERD_H_BATCH].count, st->steps);
    ck_assert_uint_eq(o->h[INFERD_H_BATCH].sum, st->tokens_processed);
    /* TTFT = queue + prefill, request by request, so in the sums too. */
    ck_assert_uint_ge(o->h[INFERD_H_TTFT].sum, o->h[INFERD_H_PREFILL].sum);
    for (int h = 0; h < INFERD_H_COUNT; h++) {
        unsigned long long total = 0;
        for (int i = 0; i < INFERD_HIST_SLOTS; i++)
            total += o->h[h].slots[i];
        ck_assert_uint_eq(total, o->h[h].count);
    }
}

START_TEST(test_random_accounting)
{
    struct engine *e = open_engine(DT_F16, 24);
    struct log lg = {calloc(MAX_REQ, sizeof(struct rec)), NULL, 0};
    ck_assert_ptr_nonnull(lg.r);
    struct sched *s = new_sched(e, &lg, true, 48);
    unsigned long long rng = tu_rng_seed();
    printf("accounting seed %llu\n", rng);
    uint64_t ids[MAX_REQ];
    uint32_t n_ids = 0, cancels = 0;
    int32_t shared[64];
    make_prompt(shared, 64, 99);
    char err[256];
    for (int it = 0; it < 3000 && n_ids < MAX_REQ - 8; it++) {
        double u = tu_rand_uniform(&rng);
        if (u < 0.25) {
            int32_t p[96];
            size_t n = 1 + (size_t)(tu_rand_uniform(&rng) * 95);
            make_prompt(p, n, (unsigned)(tu_rand_uniform(&rng) * 1e6));
            if (tu_rand_uniform(&rng) < 0.5) /* a shared prefix for cache hits */
                memcpy(p, shared, (n < 48 ? n : 48) * sizeof *p);
            struct sched_request r = {0};
            smp_params_default(&r.sampling);
            r.sampling.seed = (uint64_t)it;
            r.prompt = p;
            r.n_prompt = n;
            r.max_tokens = 1 + (uint32_t)(tu_rand_uniform(&rng) * 40);
            r.n = 1 + (uint32_t)(tu_rand_uniform(&rng) * 3);
            r.priority = (int32_t)(tu_rand_uniform(&rng) * 3);
            uint64_t id;
            int rc = sched_submit(s, &r, &id, err, sizeof err);
            if (rc == 0)
                ids[n_ids++] = id;
            else
                ck_assert_int_eq(rc, -E2BIG);
        } else if (u < 0.32 && n_ids) {
            uint64_t id = ids[(size_t)(tu_rand_uniform(&rng) * n_ids)];
            int rc = sched_cancel(s, id);
            ck_assert(rc == 0 || rc == -ENOENT);
            cancels += rc == 0;
            ck_assert_int_eq(sched_cancel(s, id), -ENOENT);
        } else {
            ck_assert_int_ge(sched_step(s), 0);
        }
        ck_assert_msg(sched_check(s, err, sizeof err) == 0, "iteration %d: %s", it, err);
    }
    run_all(s);
    struct sched_stats st;
    sched_get_stats(s, &st);
    ck_assert_uint_eq(st.kv_blocks_used, 0);
    ck_assert_uint_eq(st.running + st.waiting, 0);
    ck_assert_int_eq(lg.bad, 0);
    for (uint32_t i = 0; i < n_ids; i++)
        ck_assert_msg(lg.r[ids[i]].terminal == 1, "request %llu ended %d times",
                      (unsigned long long)ids[i], lg.r[ids[i]].terminal);
    ck_assert_uint_eq(st.finished + st.cancelled, n_ids);
    check_obs(&st, &lg, ids, n_ids, cancels);
    printf("accounting: %u requests, %u cancelled, %llu preemptions, %llu/%llu cache hits\n", n_ids,
           cancels, (unsigned long long)st.preemptions, (unsigned long long)st.cache.hits,
           (unsigned long long)st.cache.queries);
    ck_assert_uint_gt(st.preemptions, 0);
    ck_assert_uint_gt(st.cache.hits, 0);
    sched_free(s);
    ck_assert_uint_eq(e->kv.n_free, e->kv.n_blocks);
    free(lg.r);
    engine_close(e);
}
END_TEST

/* 32 concurrent greedy requests give exactly what each gives alone; the
 * four golden prompts among them match the goldens. */
START_TEST(test_batch_invariance)
{
    json_error_t jerr;
    json_t *g = json_load_file(tu_path("golden/greedy/stories260K.kvf32.json"), JSON_ALLOW_NUL, &jerr);
    ck_assert_ptr_nonnull(g);
    json_t *runs = json_object_get(g, "runs");
    enum { N = 32 };
    int32_t prompts[N][80];
    size_t lens[N];
    uint32_t maxt[N];
    for (int i = 0; i < N; i++) {
        if (i < 4) {
            json_t *ids = json_object_get(json_array_get(runs, (size_t)i), "prompt_ids");
            lens[i] = json_array_size(ids);
            for (size_t k = 0; k < lens[i]; k++)
                prompts[i][k] = (int32_t)json_integer_value(json_array_get(ids, k));
            maxt[i] = 48;
        } else {
            lens[i] = 2 + (size_t)((i * 37) % 75);
            make_prompt(prompts[i], lens[i], (unsigned)i);
            maxt[i] = 8 + (uint32_t)((i * 13) % 50);
        }
    }
    struct engine *e = open_engine(DT_F32, 512);
    struct log alone = {calloc(MAX_REQ, sizeof(struct rec)), NULL, 0};
    struct log all = {calloc(MAX_REQ, sizeof(struct rec)), NULL, 0};
    ck_assert(alone.r && all.r);
    uint64_t id_alone[N], id_all[N];
    struct sched *s = new_sched(e, &alone, false, 0);
    for (int i = 0; i < N; i++) {
        id_alone[i] = submit(s, prompts[i], lens[i], maxt[i], 0, 0, 1);
        run_all(s);
    }
    sched_free(s);
    s = new_sched(e, &all, false, 64); /* a small budget: chunked prefill mixes with decode */
    for (int i = 0; i < N; i++)
        id_all[i] = submit(s, prompts[i], lens[i], maxt[i], 0, 0, 1);
    run_all(s);
    sched_free(s);
    for (int i = 0; i < N; i++) {
        struct rec *a = &alone.r[id_alone[i]], *b = &all.r[id_all[i]];
        ck_assert_uint_eq(a->n_tokens[0], maxt[i]);
        ck_assert_uint_eq(b->n_tokens[0], a->n_tokens[0]);
        ck_assert_msg(memcmp(a->tokens[0], b->tokens[0], a->n_tokens[0] * sizeof(int32_t)) == 0,
                      "request %d differs when batched", i);
        if (i < 4) {
            json_t *gen = json_object_get(json_array_get(runs, (size_t)i), "generated_ids");
            for (size_t k = 0; k < json_array_size(gen); k++)
                ck_assert_int_eq(b->tokens[0][k], (int32_t)json_integer_value(json_array_get(gen, k)));
        }
    }
    free(alone.r);
    free(all.r);
    json_decref(g);
    engine_close(e);
}
END_TEST

/* A second request sharing a 300-token prefix computes only its suffix and
 * gives the same tokens as without the cache. */
START_TEST(test_prefix_reuse)
{
    int32_t a[340], b[330];
    make_prompt(a, 340, 5);
    memcpy(b, a, 300 * sizeof *a);
    make_prompt(b + 300, 30, 6);
    b[300] = 7;
    struct engine *e = open_engine(DT_F16, 256);
    struct log lg = {calloc(MAX_REQ, sizeof(struct rec)), NULL, 0};
    struct log ref = {calloc(MAX_REQ, sizeof(struct rec)), NULL, 0};
    ck_assert(lg.r && ref.r);
    struct sched *s = new_sched(e, &lg, true, 0);
    submit(s, a, 340, 10, 0, 0, 1);
    run_all(s);
    struct sched_stats before, after;
    sched_get_stats(s, &before);
    uint64_t idb = submit(s, b, 330, 10, 0, 0, 1);
    run_all(s);
    sched_get_stats(s, &after);
    uint32_t cached = 300 / KV_BLOCK_TOKENS * KV_BLOCK_TOKENS;
    ck_assert_uint_eq(lg.r[idb].cached, cached);
    /* 18 blocks found, the 19th (holding the first differing token) not */
    ck_assert_uint_eq(lg.r[idb].cache_hits, cached / KV_BLOCK_TOKENS);
    ck_assert_uint_eq(lg.r[idb].cache_queries, cached / KV_BLOCK_TOKENS + 1);
    ck_assert_uint_eq(after.tokens_processed - before.tokens_processed, 330 - cached + 10 - 1);
    sched_free(s);
    s = new_sched(e, &ref, false, 0);
    uint64_t idr = submit(s, b, 330, 10, 0, 0, 1);
    run_all(s);
    sched_free(s);
    ck_assert_uint_eq(ref.r[idr].cached, 0);
    ck_assert_uint_eq(lg.r[idb].n_tokens[0], 10);
    ck_assert_mem_eq(lg.r[idb].tokens[0], ref.r[idr].tokens[0], 10 * sizeof(int32_t));
    free(lg.r);
    free(ref.r);
    engine_close(e);
}
END_TEST

/* 20 concurrent requests through a pool that holds a few sequences finish
 * with the outputs an ample pool gives; preemptions happen. */
static void run_twenty(uint32_t n_blocks, struct log *lg, uint64_t *ids, uint64_t *preempt,
                       float temp)
{
    struct engine *e = open_engine(DT_F16, n_blocks);
    struct sched *s = new_sched(e, lg, true, 96);
    for (int i = 0; i < 20; i++) {
        int32_t p[40];
        size_t n = 10 + (size_t)(i % 7) * 4;
        make_prompt(p, n, 100 + (unsigned)i);
        ids[i] = submit(s, p, n, 40, temp, 1000 + (uint64_t)i, 1);
    }
    run_all(s);
    struct sched_stats st;
    sched_get_stats(s, &st);
    *preempt = st.preemptions;
    ck_assert_uint_eq(st.kv_blocks_used, 0);
    sched_free(s);
    engine_close(e);
}

START_TEST(test_preemption)
{
    struct log small = {calloc(MAX_REQ, sizeof(struct rec)), NULL, 0};
    struct log ample = {calloc(MAX_REQ, sizeof(struct rec)), NULL, 0};
    ck_assert(small.r && ample.r);
    uint64_t ids_s[20], ids_a[20], pre_s, pre_a;
    float temp = _i ? 0.8f : 0.0f; /* greedy, then sampled (sampler state survives) */
    run_twenty(12, &small, ids_s, &pre_s, temp);
    run_twenty(512, &ample, ids_a, &pre_a, temp);
    ck_assert_uint_gt(pre_s, 0);
    ck_assert_uint_eq(pre_a, 0);
    for (int i = 0; i < 20; i++) {
        struct rec *a = &small.r[ids_s[i]], *b = &ample.r[ids_a[i]];
        ck_assert_int_eq(a->terminal, 1);
        ck_assert_int_eq(a->how, SCHED_EV_FINISHED);
        ck_assert_uint_eq(a->n_tokens[0], b->n_tokens[0]);
        ck_assert_msg(memcmp(a->tokens[0], b->tokens[0], a->n_tokens[0] * sizeof(int32_t)) == 0,
                      "request %d differs under preemption", i);
    }
    printf("preemption (temperature %.1f): %llu preemptions with 12 blocks\n", temp,
           (unsigned long long)pre_s);
    free(small.r);
    free(ample.r);
}
END_TEST

START_TEST(test_too_big)
{
    struct engine *e = open_engine(DT_F16, 8);
    struct log lg = {calloc(MAX_REQ, sizeof(struct rec)), NULL, 0};
    struct sched *s = new_sched(e, &lg, true, 0);
    int32_t p[100];
    make_prompt(p, 100, 1);
    struct sched_request r = {0};
    smp_params_default(&r.sampling);
    r.prompt = p;
    r.n_prompt = 100;
    r.max_tokens = 29; /* 129 tokens > 8 blocks of 16 */
    char err[256] = "";
    uint64_t id;
    ck_assert_int_eq(sched_submit(s, &r, &id, err, sizeof err), -E2BIG);
    ck_assert_msg(strstr(err, "KV blocks") != NULL, "%s", err);
    r.max_tokens = 500; /* beyond the context */
    ck_assert_int_eq(sched_submit(s, &r, &id, err, sizeof err), -E2BIG);
    r.max_tokens = 28; /* exactly fits */
    struct sched_stats st;
    sched_get_stats(s, &st);
    ck_assert_uint_eq(st.waiting + st.running + st.kv_blocks_used, 0);
    ck_assert_uint_eq(st.cache.queries, 0);
    ck_assert_int_eq(sched_submit(s, &r, &id, err, sizeof err), 0);
    run_all(s);
    ck_assert_int_eq(lg.r[id].terminal, 1);
    ck_assert_uint_eq(lg.r[id].n_tokens[0], 28);
    /* Bad input */
    p[3] = 600;
    r.max_tokens = 4;
    ck_assert_int_eq(sched_submit(s, &r, &id, err, sizeof err), -EINVAL);
    r.n_prompt = 0;
    ck_assert_int_eq(sched_submit(s, &r, &id, err, sizeof err), -EINVAL);
    sched_free(s);
    free(lg.r);
    engine_close(e);
}
END_TEST

/* n = 4 samples share the prompt's blocks, copy the partial one on write,
 * and each equals a lone request with seed + i. */
START_TEST(test_cow_samples)
{
    struct engine *e = open_engine(DT_F16, 64);
    struct log lg = {calloc(MAX_REQ, sizeof(struct rec)), NULL, 0};
    struct log ref = {calloc(MAX_REQ, sizeof(struct rec)), NULL, 0};
    ck_assert(lg.r && ref.r);
    int32_t p[40];
    make_prompt(p, 40, 77); /* 2 full blocks + 8 tokens */
    struct sched *s = new_sched(e, &lg, false, 0);
    uint64_t id = submit(s, p, 40, 20, 1.0f, 500, 4);
    run_all(s);
    struct sched_stats st;
    sched_get_stats(s, &st);
    sched_free(s);
    /* At the first token the four samples held the prompt's 3 blocks only. */
    ck_assert_uint_eq(lg.r[id].blocks_at_first_token, 3);
    ck_assert_uint_eq(st.cache.cow_copies, 3);
    ck_assert_uint_eq(lg.r[id].generated, 80);
    s = new_sched(e, &ref, false, 0);
    int distinct = 0;
    for (uint32_t k = 0; k < 4; k++) {
        uint64_t rid = submit(s, p, 40, 20, 1.0f, 500 + k, 1);
        run_all(s);
        ck_assert_uint_eq(lg.r[id].n_tokens[k], ref.r[rid].n_tokens[0]);
        ck_assert_msg(memcmp(lg.r[id].tokens[k], ref.r[rid].tokens[0],
                             ref.r[rid].n_tokens[0] * sizeof(int32_t)) == 0,
                      "sample %u differs from its lone run", k);
        if (k && memcmp(lg.r[id].tokens[k], lg.r[id].tokens[0], 20 * sizeof(int32_t)))
            distinct++;
    }
    ck_assert_int_gt(distinct, 0);
    sched_free(s);
    free(lg.r);
    free(ref.r);
    engine_close(e);
}
END_TEST

START_TEST(test_cancel)
{
    struct engine *e = open_engine(DT_F16, 64);
    struct log lg = {calloc(MAX_REQ, sizeof(struct rec)), NULL, 0};
    struct sched *s = new_sched(e, &lg, true, 16);
    int32_t p[100];
    make_prompt(p, 100, 3);
    uint64_t first = submit(s, p, 100, 50, 0, 0, 1);
    uint64_t second = submit(s, p, 60, 50, 0, 0, 2);
    ck_assert_int_ge(sched_step(s), 0); /* first prefills a chunk, second waits */
    ck_assert_int_eq(sched_cancel(s, second), 0);
    for (int i = 0; i < 10; i++) /* first finishes its prompt and decodes */
        ck_assert_int_ge(sched_step(s), 0);
    ck_assert_uint_gt(lg.r[first].n_tokens[0], 0);
    ck_assert_int_eq(sched_cancel(s, first), 0);
    struct sched_stats st;
    sched_get_stats(s, &st);
    ck_assert_uint_eq(st.kv_blocks_used, 0);
    ck_assert_uint_eq(st.running + st.waiting, 0);
    ck_assert_int_eq(lg.r[first].how, SCHED_EV_CANCELLED);
    ck_assert_int_eq(lg.r[second].how, SCHED_EV_CANCELLED);
    ck_assert_int_eq(sched_cancel(s, first), -ENOENT);
    uint64_t left = submit(s, p, 20, 5, 0, 0, 1);
    sched_free(s); /* cancels what is left */
    ck_assert_int_eq(lg.r[left].terminal, 1);
    ck_assert_int_eq(lg.r[left].how, SCHED_EV_CANCELLED);
    ck_assert_uint_eq(e->kv.n_free, e->kv.n_blocks);
    free(lg.r);
    engine_close(e);
}
END_TEST

int main(void)
{
    tu_shared();
    Suite *s = suite_create("sched");
    TCase *tc = tcase_create("sched");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_random_accounting);
    tcase_add_test(tc, test_batch_invariance);
    tcase_add_test(tc, test_prefix_reuse);
    tcase_add_loop_test(tc, test_preemption, 0, 2);
    tcase_add_test(tc, test_too_big);
    tcase_add_test(tc, test_cow_samples);
    tcase_add_test(tc, test_cancel);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
