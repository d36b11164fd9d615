/* test_client.c - inferd end to end through libinferclient, with the
 * stories260K model: the golden greedy tokens, 64 concurrent clients
 * against in-process greedy results, streaming and non-streaming, logprobs,
 * stop strings, the poll-fd API, cancellation, request errors and quotas,
 * a client killed with SIGKILL mid-stream (its KV released), models and
 * stats, the SIGTERM drain, and startup errors. */
#include "client/inferclient.h"
#include "dtest.h"
#include "engine.h"
#include "scheduler.h"
#include "testutil.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------ */

struct result {
    int32_t tokens[4096];
    size_t n_tokens;
    char text[16384];
    size_t text_len;
    int n_chunks;
    enum infer_event_type end; /* DONE or ERROR */
    enum infer_finish finish;
    enum infer_error error;
    char message[256];
    uint32_t prompt_tokens;
};

static struct infer_client *connect_ok(const struct dtest_daemon *d)
{
    struct infer_client *c = NULL;
    int rc = infer_connect(d->sock, NULL, &c);
    ck_assert_msg(rc == 0, "infer_connect: %s", strerror(-rc));
    return c;
}

/* Reads events of request id until its terminal one. */
static int collect(struct infer_client *c, uint64_t id, struct result *r)
{
    memset(r, 0, sizeof *r);
    for (;;) {
        struct infer_event ev;
        int rc = infer_next_event(c, &ev, 60000);
        if (rc)
            return rc;
        if (ev.request_id != id)
            continue;
        if (ev.type == INFER_EV_TOKENS) {
            r->n_chunks++;
            for (size_t i = 0; i < ev.n_tokens && r->n_tokens < 4096; i++)
                r->tokens[r->n_tokens++] = ev.tokens[i];
            if (r->text_len + ev.text_len < sizeof r->text) {
                memcpy(r->text + r->text_len, ev.text, ev.text_len);
                r->text_len += ev.text_len;
            }
            continue;
        }
        r->end = ev.type;
        r->finish = ev.finish;
        r->error = ev.error;
        r->prompt_tokens = ev.prompt_tokens;
        snprintf(r->message, sizeof r->message, "%s", ev.message);
        return 0;
    }
}

static void greedy(struct infer_request *r, const char *prompt, uint32_t max_tokens)
{
    infer_request_init(r);
    r->prompt = prompt;
    r->sampling.temperature = 0;
    r->max_tokens = max_tokens;
}

static struct infer_stats stats_of(const struct dtest_daemon *d)
{
    struct infer_client *c = connect_ok(d);
    struct infer_stats s;
    ck_assert_int_eq(infer_stats(c, &s), 0);
    infer_close(c);
    return s;
}

/* Polls the stats until no sequence runs and no KV block is in use. */
static bool wait_idle(const struct dtest_daemon *d, int timeout_ms)
{
    for (int i = 0; i <= timeout_ms / 20; i++) {
        struct infer_stats s = stats_of(d);
        if (s.requests_running == 0 && s.requests_waiting == 0 && s.kv_blocks_used == 0)
            return true;
        dtest_sleep_ms(20);
    }
    return false;
}

static json_t *golden(void)
{
    json_error_t e;
    json_t *g = json_load_file(tu_path("golden/greedy/stories260K.json"), 0, &e);
    ck_assert_msg(g != NULL, "golden: %s", e.text);
    return g;
}

static const char *const long_args[] = {"--ctx-size", "4096", NULL};

/* ---- tests -------------------------------------------------------------- */

/* Every golden run (F16 KV, llama.cpp's default) through the daemon. */
START_TEST(test_golden_greedy)
{
    struct dtest_daemon d;
    dtest_start(&d, true, NULL);
    json_t *g = golden();
    json_t *runs = json_object_get(g, "runs");
    struct infer_client *c = connect_ok(&d);
    static struct result r;
    for (size_t k = 0; k < json_array_size(runs); k++) {
        json_t *run = json_array_get(runs, k);
        const char *prompt = json_string_value(json_object_get(run, "prompt"));
        json_t *ids = json_object_get(run, "generated_ids");
        struct infer_request q;
        greedy(&q, prompt, (uint32_t)json_array_size(ids));
        uint64_t id;
        ck_assert_int_eq(infer_submit(c, &q, &id), 0);
        ck_assert_int_eq(collect(c, id, &r), 0);
        ck_assert_int_eq(r.end, INFER_EV_DONE);
        ck_assert_int_eq(r.finish, INFER_FINISH_LENGTH);
        ck_assert_uint_eq(r.prompt_tokens, json_array_size(json_object_get(run, "prompt_ids")));
        ck_assert_uint_eq(r.n_tokens, json_array_size(ids));
        for (size_t i = 0; i < r.n_tokens; i++)
            ck_assert_msg(r.tokens[i] == json_integer_value(json_array_get(ids, i)),
                          "run %zu ('%s'): token %zu is %d, golden %lld", k, prompt, i,
                          r.tokens[i], json_integer_value(json_array_get(ids, i)));
        const char *text = json_string_value(json_object_get(run, "generated_text"));
        ck_assert_uint_eq(r.text_len, strlen(text));
        ck_assert(memcmp(r.text, text, r.text_len) == 0);
        ck_assert_int_eq(r.n_chunks, (int)r.n_tokens); /* streamed: one chunk per token */
    }
    /* The same first run as token ids, not streamed: one chunk. */
    json_t *run = json_array_get(runs, 0);
    json_t *pids = json_object_get(run, "prompt_ids");
    int32_t p[64];
    for (size_t i = 0; i < json_array_size(pids); i++)
        p[i] = (int32_t)json_integer_value(json_array_get(pids, i));
    struct infer_request q;
    greedy(&q, NULL, 48);
    q.prompt_tokens = p;
    q.n_prompt_tokens = json_array_size(pids);
    q.stream = false;
    uint64_t id;
    ck_assert_int_eq(infer_submit(c, &q, &id), 0);
    ck_assert_int_eq(collect(c, id, &r), 0);
    ck_assert_int_eq(r.n_chunks, 1);
    ck_assert_uint_eq(r.n_tokens, 48);
    json_t *ids = json_object_get(run, "generated_ids");
    for (size_t i = 0; i < 48; i++)
        ck_assert_int_eq(r.tokens[i], json_integer_value(json_array_get(ids, i)));
    infer_close(c);
    json_decref(g);
    ck_assert_int_eq(dtest_stop(&d, 10000), 0);
}
END_TEST

#define N_PROMPTS 8
#define N_CLIENTS 64
#define N_GEN 40
static const char *const prompts[N_PROMPTS] = {
    "Once upon a time", "The little dog", "Lily and Ben went to the park. They", "",
    "The cat sat on the mat", "Tom had a big red car", "One day, a bird", "Sue was sad because",
};

struct ref {
    int32_t tokens[N_PROMPTS][N_GEN];
    size_t n[N_PROMPTS];
};

static void ref_event(void *ud, const struct sched_event *ev)
{
    struct ref *r = ud;
    if (ev->type == SCHED_EV_TOKEN && ev->token >= 0 && r->n[ev->user] < N_GEN)
        r->tokens[ev->user][r->n[ev->user]++] = ev->token;
}

/* Greedy results of the prompts in-process, through the same scheduler. */
static void reference(struct ref *r)
{
    memset(r, 0, sizeof *r);
    struct engine_params ep;
    engine_params_default(&ep);
    ep.model_path = tu_path("models/stories260K.gguf");
    ep.n_threads = 1;
    ep.kv_bytes = 64u << 20;
    struct engine *e;
    char err[256];
    ck_assert_msg(engine_open(&ep, &e, err, sizeof err) == 0, "%s", err);
    struct sched *s;
    ck_assert_int_eq(sched_create(e, NULL, ref_event, r, &s), 0);
    for (size_t k = 0; k < N_PROMPTS; k++) {
        int32_t *ids;
        size_t n;
        ck_assert_int_eq(engine_tokenize(e, prompts[k], strlen(prompts[k]), &ids, &n), 0);
        if (n == 0) {
            ids[0] = tok_bos(e->tok);
            n = 1;
        }
        struct sched_request q = {.prompt = ids, .n_prompt = n, .max_tokens = N_GEN, .user = k};
        smp_params_default(&q.sampling);
        q.sampling.temperature = 0;
        ck_assert_int_eq(sched_submit(s, &q, NULL, err, sizeof err), 0);
        free(ids);
    }
    while (sched_has_work(s))
        ck_assert_int_ge(sched_step(s), 0);
    sched_free(s);
    engine_close(e);
}

struct client_job {
    const char *sock;
    size_t k;
    struct result *r;
    int rc;
};

static void *client_thread(void *arg)
{
    struct client_job *j = arg;
    struct infer_client *c;
    j->rc = infer_connect(j->sock, NULL, &c);
    if (j->rc)
        return NULL;
    struct infer_request q;
    greedy(&q, prompts[j->k], N_GEN);
    uint64_t id;
    j->rc = infer_submit(c, &q, &id);
    if (!j->rc)
        j->rc = collect(c, id, j->r);
    infer_close(c);
    return NULL;
}

START_TEST(test_64_clients)
{
    static struct ref ref;
    reference(&ref);
    struct dtest_daemon d;
    dtest_start(&d, true, NULL);
    static struct result res[N_CLIENTS];
    struct client_job jobs[N_CLIENTS];
    pthread_t th[N_CLIENTS];
    for (size_t i = 0; i < N_CLIENTS; i++) {
        jobs[i] = (struct client_job){d.sock, i % N_PROMPTS, &res[i], 0};
        ck_assert_int_eq(pthread_create(&th[i], NULL, client_thread, &jobs[i]), 0);
    }
    for (size_t i = 0; i < N_CLIENTS; i++)
        pthread_join(th[i], NULL);
    for (size_t i = 0; i < N_CLIENTS; i++) {
        size_t k = jobs[i].k;
        ck_assert_msg(jobs[i].rc == 0, "client %zu: %s", i, strerror(-jobs[i].rc));
        ck_assert_int_eq(res[i].end, INFER_EV_DONE);
        ck_assert_msg(res[i].n_tokens == ref.n[k], "client %zu: %zu tokens, expected %zu", i,
                      res[i].n_tokens, ref.n[k]);
        for (size_t t = 0; t < ref.n[k]; t++)
            ck_assert_msg(res[i].tokens[t] == ref.tokens[k][t],
                          "client %zu prompt '%s': token %zu is %d, in-process %d", i, prompts[k],
                          t, res[i].tokens[t], ref.tokens[k][t]);
    }
    ck_assert(wait_idle(&d, 5000));
    ck_assert_int_eq(dtest_stop(&d, 10000), 0);
}
END_TEST

START_TEST(test_options)
{
    struct dtest_daemon d;
    dtest_start(&d, true, NULL);
    struct infer_client *c = connect_ok(&d);
    static struct result r;
    uint64_t id;
    /* Logprobs: greedy picks the most probable token. */
    struct infer_request q;
    greedy(&q, "Once upon a time", 8);
    q.logprobs = 5;
    ck_assert_int_eq(infer_submit(c, &q, &id), 0);
    int n_tok = 0;
    for (;;) {
        struct infer_event ev;
        ck_assert_int_eq(infer_next_event(c, &ev, 10000), 0);
        if (ev.type != INFER_EV_TOKENS)
            break;
        ck_assert_uint_eq(ev.n_top, 5);
        ck_assert_ptr_nonnull(ev.logprobs);
        for (size_t i = 0; i < ev.n_tokens; i++, n_tok++) {
            ck_assert_int_eq(ev.top[i * 5].token, ev.tokens[i]);
            ck_assert_float_eq(ev.logprobs[i], ev.top[i * 5].logprob);
            for (size_t k = 1; k < 5; k++)
                ck_assert(ev.top[i * 5 + k].logprob <= ev.top[i * 5 + k - 1].logprob);
        }
    }
    ck_assert_int_eq(n_tok, 8);
    /* A stop string ends the text before it. */
    greedy(&q, "Once upon a time", 48);
    const char *stop[] = {"girl"};
    q.stop = stop;
    q.n_stop = 1;
    ck_assert_int_eq(infer_submit(c, &q, &id), 0);
    ck_assert_int_eq(collect(c, id, &r), 0);
    ck_assert_int_eq(r.finish, INFER_FINISH_STOP);
    r.text[r.text_len] = 0;
    ck_assert_str_eq(r.text, ", there was a little ");
    /* The poll-fd API: drain to -EAGAIN, then poll the fd. */
    greedy(&q, "The little dog", 16);
    ck_assert_int_eq(infer_submit(c, &q, &id), 0);
    int tokens = 0;
    bool done = false;
    while (!done) {
        struct infer_event ev;
        int rc = infer_poll_event(c, &ev);
        if (rc == -EAGAIN) {
            struct pollfd p = {.fd = infer_fd(c), .events = POLLIN};
            ck_assert_int_eq(poll(&p, 1, 10000), 1);
            continue;
        }
        ck_assert_int_eq(rc, 0);
        if (ev.type == INFER_EV_TOKENS)
            tokens += (int)ev.n_tokens;
        else
            done = true;
    }
    ck_assert_int_eq(tokens, 16);
    /* Models. */
    struct infer_model m[4];
    size_t n;
    ck_assert_int_eq(infer_list_models(c, m, 4, &n), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(m[0].name, "stories");
    ck_assert_str_eq(m[0].arch, "llama");
    ck_assert_uint_eq(m[0].n_ctx, 512);
    ck_assert_uint_gt(m[0].n_params, 200000);
    struct infer_stats s;
    ck_assert_int_eq(infer_stats(c, &s), 0);
    ck_assert_uint_ge(s.requests_finished, 3);
    ck_assert_uint_ge(s.generated_tokens, 8 + 16);
    ck_assert_uint_gt(s.kv_blocks_total, 0);
    infer_close(c);
    ck_assert_int_eq(dtest_stop(&d, 10000), 0);
}
END_TEST

START_TEST(test_cancel)
{
    struct dtest_daemon d;
    dtest_start(&d, true, long_args);
    struct infer_client *c = connect_ok(&d);
    struct infer_request q;
    greedy(&q, "", 4000);
    uint64_t id;
    ck_assert_int_eq(infer_submit(c, &q, &id), 0);
    int got = 0;
    struct infer_event ev;
    while (got < 5) {
        ck_assert_int_eq(infer_next_event(c, &ev, 10000), 0);
        ck_assert_int_eq(ev.type, INFER_EV_TOKENS);
        got += (int)ev.n_tokens;
    }
    ck_assert_int_eq(infer_cancel(c, id), 0);
    for (;;) {
        ck_assert_int_eq(infer_next_event(c, &ev, 10000), 0);
        if (ev.type != INFER_EV_TOKENS)
            break;
        got += (int)ev.n_tokens;
    }
    ck_assert_int_eq(ev.type, INFER_EV_DONE);
    ck_assert_int_eq(ev.finish, INFER_FINISH_CANCELLED);
    ck_assert_int_lt(got, 4000);
    /* Cancelling it again: it is over. */
    ck_assert_int_eq(infer_cancel(c, id), 0);
    ck_assert_int_eq(infer_next_event(c, &ev, 10000), 0);
    ck_assert_int_eq(ev.type, INFER_EV_ERROR);
    ck_assert_int_eq(ev.error, INFER_ERR_UNKNOWN_REQUEST);
    ck_assert(wait_idle(&d, 5000));
    infer_close(c);
    ck_assert_int_eq(dtest_stop(&d, 10000), 0);
}
END_TEST

/* Each refused request gets its own Error; the session goes on. */
START_TEST(test_request_errors)
{
    struct dtest_daemon d;
    const char *const args[] = {"--ctx-size", "4096", "--max-concurrent", "2", NULL};
    dtest_start(&d, true, args);
    struct infer_client *c = connect_ok(&d);
    static struct result r;
    struct infer_request q;
    uint64_t id;
    struct {
        const char *what;
        enum infer_error code;
    } cases[] = {
        {"model", INFER_ERR_UNKNOWN_MODEL},     {"token", INFER_ERR_INVALID_PARAMS},
        {"long", INFER_ERR_PROMPT_TOO_LONG},    {"top_p", INFER_ERR_INVALID_PARAMS},
        {"nan", INFER_ERR_INVALID_PARAMS},      {"logprobs", INFER_ERR_INVALID_PARAMS},
        {"stops", INFER_ERR_INVALID_PARAMS},    {"n0", INFER_ERR_INVALID_PARAMS},
        {"nbig", INFER_ERR_INVALID_PARAMS},     {"nquota", INFER_ERR_QUOTA_EXCEEDED},
    };
    static int32_t many[5000];
    const char *stops[20];
    for (int i = 0; i < 20; i++)
        stops[i] = "x";
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        greedy(&q, "Once", 4);
        const char *w = cases[k].what;
        int32_t bad = 100000;
        if (!strcmp(w, "model"))
            q.model = "no-such-model";
        else if (!strcmp(w, "token")) {
            q.prompt = NULL;
            q.prompt_tokens = &bad;
            q.n_prompt_tokens = 1;
        } else if (!strcmp(w, "long")) {
            q.prompt = NULL;
            q.prompt_tokens = many;
            q.n_prompt_tokens = 4096;
        } else if (!strcmp(w, "top_p"))
            q.sampling.top_p = 2;
        else if (!strcmp(w, "nan"))
            q.sampling.temperature = NAN;
        else if (!strcmp(w, "logprobs"))
            q.logprobs = 1000;
        else if (!strcmp(w, "n0"))
            q.n = 0;
        else if (!strcmp(w, "nbig"))
            q.n = 17; /* above the default max-n of 16 */
        else if (!strcmp(w, "nquota"))
            q.n = 3; /* three sequences, the session may run two */
        else if (!strcmp(w, "stops")) {
            q.stop = stops;
            q.n_stop = 20;
        }
        ck_assert_int_eq(infer_submit(c, &q, &id), 0);
        ck_assert_int_eq(collect(c, id, &r), 0);
        ck_assert_msg(r.end == INFER_EV_ERROR && r.error == cases[k].code,
                      "%s: got event %d error %s (%s)", w, r.end, infer_error_name(r.error),
                      r.message);
    }
    /* Quota: two live requests at most, the third is refused. */
    uint64_t ids[3];
    for (int i = 0; i < 3; i++) {
        greedy(&q, "", 3000);
        ck_assert_int_eq(infer_submit(c, &q, &ids[i]), 0);
    }
    ck_assert_int_eq(collect(c, ids[2], &r), 0);
    ck_assert_int_eq(r.end, INFER_EV_ERROR);
    ck_assert_int_eq(r.error, INFER_ERR_QUOTA_EXCEEDED);
    ck_assert_int_eq(infer_cancel(c, ids[0]), 0);
    ck_assert_int_eq(infer_cancel(c, ids[1]), 0);
    ck_assert_int_eq(collect(c, ids[0], &r), 0);
    ck_assert_int_eq(r.finish, INFER_FINISH_CANCELLED);
    ck_assert_int_eq(collect(c, ids[1], &r), 0);
    ck_assert_int_eq(r.finish, INFER_FINISH_CANCELLED);
    /* And the session still generates. */
    greedy(&q, "Once upon a time", 4);
    ck_assert_int_eq(infer_submit(c, &q, &id), 0);
    ck_assert_int_eq(collect(c, id, &r), 0);
    ck_assert_int_eq(r.end, INFER_EV_DONE);
    ck_assert_uint_eq(r.n_tokens, 4);
    infer_close(c);
    /* Queued-token quota, asked lower by the client. */
    struct infer_connect_opts o;
    infer_connect_opts_init(&o);
    o.max_queued_tokens = 100;
    ck_assert_int_eq(infer_connect(d.sock, &o, &c), 0);
    struct infer_limits lim;
    ck_assert_int_eq(infer_get_limits(c, &lim), 0);
    ck_assert_uint_eq(lim.max_queued_tokens, 100);
    ck_assert_uint_eq(lim.max_concurrent_requests, 2);
    greedy(&q, "Once upon a time", 200);
    ck_assert_int_eq(infer_submit(c, &q, &id), 0);
    ck_assert_int_eq(collect(c, id, &r), 0);
    ck_assert_int_eq(r.error, INFER_ERR_QUOTA_EXCEEDED);
    infer_close(c);
    ck_assert_int_eq(dtest_stop(&d, 10000), 0);
}
END_TEST

/* n = 4 parallel samples in one request: sample j equals a lone request
 * with seed + j, each stream complete, one DONE with every finish reason. */
START_TEST(test_parallel_n)
{
    enum { N = 4, MAX = 24 };
    struct dtest_daemon d;
    dtest_start(&d, true, NULL);
    struct infer_client *c = connect_ok(&d);
    static struct result ref[N];
    struct infer_request q;
    uint64_t id;
    for (int j = 0; j < N; j++) {
        infer_request_init(&q);
        q.prompt = "Once upon a time";
        q.sampling.temperature = 1.0f;
        q.sampling.seed = 4242 + (uint64_t)j;
        q.max_tokens = MAX;
        ck_assert_int_eq(infer_submit(c, &q, &id), 0);
        ck_assert_int_eq(collect(c, id, &ref[j]), 0);
        ck_assert_int_eq(ref[j].end, INFER_EV_DONE);
    }
    for (int stream = 1; stream >= 0; stream--) {
        infer_request_init(&q);
        q.prompt = "Once upon a time";
        q.sampling.temperature = 1.0f;
        q.sampling.seed = 4242;
        q.max_tokens = MAX;
        q.n = N;
        q.stream = stream;
        ck_assert_int_eq(infer_submit(c, &q, &id), 0);
        static int32_t tok[N][MAX + 1];
        size_t nt[N] = {0};
        uint8_t fin[N] = {0};
        uint32_t gen = 0;
        for (;;) {
            struct infer_event ev;
            ck_assert_int_eq(infer_next_event(c, &ev, 60000), 0);
            if (ev.request_id != id)
                continue;
            ck_assert_int_ne(ev.type, INFER_EV_ERROR);
            if (ev.type == INFER_EV_TOKENS) {
                ck_assert_uint_lt(ev.sample, N);
                for (size_t i = 0; i < ev.n_tokens; i++) {
                    ck_assert_uint_le(nt[ev.sample], MAX);
                    tok[ev.sample][nt[ev.sample]++] = ev.tokens[i];
                }
                continue;
            }
            ck_assert_uint_eq(ev.n_samples, N);
            memcpy(fin, ev.sample_finish, N);
            ck_assert_int_eq(ev.finish, fin[0]);
            gen = ev.generated_tokens;
            break;
        }
        uint32_t total = 0;
        for (int j = 0; j < N; j++) {
            ck_assert_msg(nt[j] == ref[j].n_tokens, "stream %d sample %d: %zu tokens, lone %zu",
                          stream, j, nt[j], ref[j].n_tokens);
            ck_assert_int_eq(memcmp(tok[j], ref[j].tokens, nt[j] * 4), 0);
            ck_assert_int_eq(fin[j], ref[j].finish);
            total += (uint32_t)nt[j];
        }
        ck_assert_uint_eq(gen, total);
    }
    infer_close(c);
    ck_assert(wait_idle(&d, 5000));
    ck_assert_int_eq(dtest_stop(&d, 10000), 0);
}
END_TEST

/* A client killed mid-stream: its requests end and its KV is released. */
START_TEST(test_kill9_client)
{
    struct dtest_daemon d;
    dtest_start(&d, true, long_args);
    int pfd[2];
    ck_assert_int_eq(pipe(pfd), 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct infer_client *c;
        if (infer_connect(d.sock, NULL, &c))
            _exit(1);
        struct infer_request q;
        greedy(&q, "", 4000);
        for (int i = 0; i < 4; i++)
            if (infer_submit(c, &q, NULL))
                _exit(1);
        int got = 0;
        for (;;) {
            struct infer_event ev;
            if (infer_next_event(c, &ev, 10000))
                _exit(1);
            if (ev.type == INFER_EV_TOKENS && ++got == 20 && write(pfd[1], "x", 1) != 1)
                _exit(1);
        }
    }
    close(pfd[1]);
    char x;
    ck_assert_int_eq(read(pfd[0], &x, 1), 1);
    close(pfd[0]);
    struct infer_stats s = stats_of(&d);
    ck_assert_uint_ge(s.requests_running + s.requests_waiting, 1);
    ck_assert_uint_gt(s.kv_blocks_used, 0);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    ck_assert_msg(wait_idle(&d, 3000), "the killed client's requests are still running");
    ck_assert(dtest_alive(&d));
    ck_assert_int_eq(dtest_stop(&d, 10000), 0);
}
END_TEST

/* SIGTERM: in-flight requests end with a terminal event, new ones are
 * refused, the socket goes away, exit 0. */
START_TEST(test_sigterm_drain)
{
    struct dtest_daemon d;
    const char *const args[] = {"--ctx-size", "4096", "--drain-timeout-ms", "300", NULL};
    dtest_start(&d, true, args);
    struct infer_client *c = connect_ok(&d);
    struct infer_request q;
    greedy(&q, "", 4000);
    uint64_t id;
    ck_assert_int_eq(infer_submit(c, &q, &id), 0);
    struct infer_event ev;
    ck_assert_int_eq(infer_next_event(c, &ev, 10000), 0);
    ck_assert_int_eq(ev.type, INFER_EV_TOKENS);
    kill(d.pid, SIGTERM);
    dtest_sleep_ms(50);
    uint64_t id2;
    ck_assert_int_eq(infer_submit(c, &q, &id2), 0);
    bool done = false, refused = false;
    int rc;
    while ((rc = infer_next_event(c, &ev, 10000)) == 0) {
        if (ev.request_id == id && ev.type != INFER_EV_TOKENS) {
            ck_assert_int_eq(ev.type, INFER_EV_DONE);
            ck_assert(ev.finish == INFER_FINISH_CANCELLED || ev.finish == INFER_FINISH_LENGTH);
            done = true;
        }
        if (ev.request_id == id2) {
            ck_assert_int_eq(ev.type, INFER_EV_ERROR);
            ck_assert_int_eq(ev.error, INFER_ERR_SHUTTING_DOWN);
            refused = true;
        }
    }
    ck_assert_int_eq(rc, -ECONNRESET);
    ck_assert(done && refused);
    infer_close(c);
    int st = dtest_wait_exit(&d, 10000);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
    struct infer_client *c2;
    ck_assert_int_ne(infer_connect(d.sock, NULL, &c2), 0);
    dtest_stop(&d, 0);
}
END_TEST

static int run_daemon(const char *const *argv, char *err, size_t errlen)
{
    int pfd[2];
    ck_assert_int_eq(pipe(pfd), 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pfd[1], 2);
        close(pfd[0]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(pfd[1]);
    size_t n = 0;
    ssize_t k;
    while (n + 1 < errlen && (k = read(pfd[0], err + n, errlen - n - 1)) > 0)
        n += (size_t)k;
    err[n] = 0;
    close(pfd[0]);
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(test_startup_errors)
{
    char err[4096];
    char dir[] = "/tmp/inferd-start-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char sock[128], trunc[128], model[4200];
    snprintf(sock, sizeof sock, "%s/s", dir);
    snprintf(trunc, sizeof trunc, "%s/trunc.gguf", dir);
    /* Missing model file: exit 1 with a message naming it. */
    const char *a1[] = {dtest_bin(), "--socket", sock, "--model", "m=/nonexistent/x.gguf", NULL};
    ck_assert_int_eq(run_daemon(a1, err, sizeof err), 1);
    ck_assert_msg(strstr(err, "/nonexistent/x.gguf") != NULL, "%s", err);
    /* A truncated model. */
    size_t size;
    char *data = tu_read_file(tu_path("models/stories260K.gguf"), &size);
    ck_assert_ptr_nonnull(data);
    FILE *fp = fopen(trunc, "wb");
    ck_assert_ptr_nonnull(fp);
    fwrite(data, 1, 3000, fp);
    fclose(fp);
    free(data);
    snprintf(model, sizeof model, "m=%s", trunc);
    const char *a2[] = {dtest_bin(), "--socket", sock, "--model", model, NULL};
    ck_assert_int_eq(run_daemon(a2, err, sizeof err), 1);
    ck_assert_msg(strstr(err, "trunc.gguf") != NULL, "%s", err);
    /* Usage errors: exit 2. */
    const char *a3[] = {dtest_bin(), "--model", model, NULL};
    ck_assert_int_eq(run_daemon(a3, err, sizeof err), 2);
    const char *a4[] = {dtest_bin(), "--socket", sock, "--echo", "--submit-ring-bytes", "5000", NULL};
    ck_assert_int_eq(run_daemon(a4, err, sizeof err), 2);
    /* The socket path taken by a regular file: exit 1, the file untouched. */
    fp = fopen(sock, "w");
    ck_assert_ptr_nonnull(fp);
    fclose(fp);
    const char *a5[] = {dtest_bin(), "--socket", sock, "--echo", NULL};
    ck_assert_int_eq(run_daemon(a5, err, sizeof err), 1);
    ck_assert(access(sock, F_OK) == 0);
    unlink(sock);
    unlink(trunc);
    rmdir(dir);
}
END_TEST

static Suite *client_suite(void)
{
    Suite *s = suite_create("client");
    TCase *tc = tcase_create("e2e");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_golden_greedy);
    tcase_add_test(tc, test_64_clients);
    tcase_add_test(tc, test_options);
    tcase_add_test(tc, test_cancel);
    tcase_add_test(tc, test_request_errors);
    tcase_add_test(tc, test_parallel_n);
    tcase_add_test(tc, test_kill9_client);
    tcase_add_test(tc, test_sigterm_drain);
    tcase_add_test(tc, test_startup_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    tu_shared(); /* skip (77), or fail under CI, without the data */
    return tu_run_suite(client_suite());
}
