/* cmd_loadgen.c - `inferctl bench --socket PATH`: a load generator against
 * a running inferd, in the manner of vLLM's `bench serve`. C client
 * threads, each with its own session, take the next of N requests; with
 * --rate R the requests arrive as a Poisson process of R per second (a
 * request waits for its arrival time, then for a free client), otherwise
 * all at once. Reported: request throughput, output tokens/s, and mean /
 * p50 / p99 of TTFT (submit to first token), TPOT ((end-to-end - TTFT) /
 * (tokens - 1)), ITL (gaps between token chunks) and end-to-end latency. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "client_cli.h"
#include "cmds.h"

struct lg_result {
    bool ok;
    double ttft_ms, tpot_ms, e2e_ms;
    uint32_t out_tokens, prompt_tokens;
};

struct lg_shared {
    const char *path;
    struct infer_request req; /* template */
    uint64_t seed;
    uint32_t n_requests;
    uint64_t t0;
    double *arrival_s;        /* NULL: all at once */
    _Atomic uint32_t next;
    struct lg_result *res;    /* n_requests, each written by one thread */
    pthread_mutex_t mu;
    double *itl;              /* guarded by mu */
    size_t n_itl, cap_itl;
    _Atomic int conn_failed;
};

static void lg_sleep_until(uint64_t t_ns)
{
    uint64_t now = ccli_now_ns();
    if (t_ns <= now)
        return;
    struct timespec ts = {(time_t)((t_ns - now) / 1000000000ull), (long)((t_ns - now) % 1000000000ull)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void lg_add_itl(struct lg_shared *sh, const double *v, size_t n)
{
    if (!n)
        return;
    pthread_mutex_lock(&sh->mu);
    if (sh->n_itl + n > sh->cap_itl) {
        size_t cap = sh->cap_itl ? sh->cap_itl : 1024;
        while (cap < sh->n_itl + n)
            cap *= 2;
        double *p = realloc(sh->itl, cap * sizeof *p);
        if (p) {
            sh->itl = p;
            sh->cap_itl = cap;
        }
    }
    if (sh->n_itl + n <= sh->cap_itl) {
        memcpy(sh->itl + sh->n_itl, v, n * sizeof *v);
        sh->n_itl += n;
    }
    pthread_mutex_unlock(&sh->mu);
}

static void *lg_client(void *arg)
{
    struct lg_shared *sh = arg;
    struct infer_client *c;
    if (ccli_connect("bench", sh->path, NULL, &c)) {
        atomic_store(&sh->conn_failed, 1);
        return NULL;
    }
    double *gaps = NULL;
    size_t cap = 0;
    for (;;) {
        uint32_t i = atomic_fetch_add(&sh->next, 1);
        if (i >= sh->n_requests)
            break;
        if (sh->arrival_s)
            lg_sleep_until(sh->t0 + (uint64_t)(sh->arrival_s[i] * 1e9));
        struct infer_request r = sh->req;
        r.sampling.seed = sh->seed + i;
        struct lg_result *out = &sh->res[i];
        uint64_t ts = ccli_now_ns(), first = 0, last = 0;
        uint64_t id;
        size_t n_gaps = 0;
        if (infer_submit(c, &r, &id))
            break;
        for (;;) {
            struct infer_event ev;
            if (infer_next_event(c, &ev, -1))
                goto done;
            if (ev.request_id != id)
                continue;
            uint64_t now = ccli_now_ns();
            if (ev.type == INFER_EV_TOKENS) {
                if (!ev.n_tokens)
                    continue;
                if (!first) {
                    first = now;
                } else {
                    if (n_gaps == cap) {
                        size_t nc = cap ? cap * 2 : 256;
                        double *g = realloc(gaps, nc * sizeof *g);
                        if (g) {
                            gaps = g;
                            cap = nc;
                        }
                    }
                    if (n_gaps < cap)
                        gaps[n_gaps++] = (double)(now - last) * 1e-6;
                }
                last = now;
                out->out_tokens += (uint32_t)ev.n_tokens;
                continue;
            }
            if (ev.type == INFER_EV_DONE) {
                out->ok = true;
                out->prompt_tokens = ev.prompt_tokens;
                out->e2e_ms = (double)(now - ts) * 1e-6;
                out->ttft_ms = first ? (double)(first - ts) * 1e-6 : out->e2e_ms;
                out->tpot_ms = out->out_tokens > 1
                                   ? (out->e2e_ms - out->ttft_ms) / (out->out_tokens - 1)
                                   : 0;
                lg_add_itl(sh, gaps, n_gaps);
            }
            break;
        }
    }
done:
    free(gaps);
    infer_close(c);
    return NULL;
}

static void lg_stat(json_t *o, const char *name, double *v, size_t n, bool json)
{
    double mean = cli_mean(v, n);
    double p50 = cli_quantile(v, n, 0.5), p99 = cli_quantile(v, n, 0.99);
    if (json) {
        char k[64];
        snprintf(k, sizeof k, "%s_ms_mean", name);
        json_object_set_new(o, k, json_real(mean));
        snprintf(k, sizeof k, "%s_ms_p50", name);
        json_object_set_new(o, k, json_real(p50));
        snprintf(k, sizeof k, "%s_ms_p99", name);
        json_object_set_new(o, k, json_real(p99));
    } else {
        printf("%-6s ms   mean %9.3f   p50 %9.3f   p99 %9.3f\n", name, mean, p50, p99);
    }
}

int cmd_bench_serve(int argc, char **argv)
{
    static const char usage[] =
        "usage: inferctl bench --socket PATH [--concurrency C] [--requests N] [--rate R]\n"
        "                      [--model NAME] [--prompt TEXT] [--max-tokens M]\n"
        "                      [--temperature T] [--seed S] [--json]\n"
        "Load generator against a running inferd: C clients (default 8) run N requests\n"
        "(default 64), arriving as a Poisson process of R per second (default: all at once).\n";
    enum { O_SOCKET = 256, O_CONC, O_REQS, O_RATE, O_MODEL, O_PROMPT, O_MAX, O_TEMP, O_SEED,
           O_JSON, O_HELP };
    static const struct option opts[] = {
        {"socket", required_argument, 0, O_SOCKET},
        {"concurrency", required_argument, 0, O_CONC},
        {"requests", required_argument, 0, O_REQS},
        {"rate", required_argument, 0, O_RATE},
        {"model", required_argument, 0, O_MODEL},
        {"prompt", required_argument, 0, O_PROMPT},
        {"max-tokens", required_argument, 0, O_MAX},
        {"temperature", required_argument, 0, O_TEMP},
        {"seed", required_argument, 0, O_SEED},
        {"json", no_argument, 0, O_JSON},
        {"help", no_argument, 0, O_HELP},
        {0, 0, 0, 0},
    };
    struct lg_shared sh;
    memset(&sh, 0, sizeof sh);
    infer_request_init(&sh.req);
    sh.req.prompt = "Once upon a time";
    sh.req.max_tokens = 64;
    sh.seed = 1;
    sh.n_requests = 64;
    uint32_t conc = 8;
    float rate = 0;
    bool json = false;
    const char *sock = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case O_SOCKET: sock = optarg; break;
        case O_CONC: bad = cli_u32("--concurrency", optarg, 1, 4096, &conc); break;
        case O_REQS: bad = cli_u32("--requests", optarg, 1, 1u << 24, &sh.n_requests); break;
        case O_RATE: bad = cli_f32("--rate", optarg, 0, 1e9f, &rate); break;
        case O_MODEL: sh.req.model = optarg; break;
        case O_PROMPT: sh.req.prompt = optarg; break;
        case O_MAX: bad = cli_u32("--max-tokens", optarg, 1, 1u << 20, &sh.req.max_tokens); break;
        case O_TEMP: bad = cli_f32("--temperature", optarg, 0, 100, &sh.req.sampling.temperature); break;
        case O_SEED: bad = cli_u64("--seed", optarg, &sh.seed); break;
        case O_JSON: json = true; break;
        case O_HELP: fputs(usage, stdout); return 0;
        default: bad = 1; break;
        }
        if (bad)
            return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "inferctl bench: unexpected argument '%s'\n%s", argv[optind], usage);
        return 2;
    }
    sh.path = ccli_socket(sock);
    if (conc > sh.n_requests)
        conc = sh.n_requests;
    int rc = 1;
    pthread_mutex_init(&sh.mu, NULL);
    pthread_t *thr = calloc(conc, sizeof *thr);
    sh.res = calloc(sh.n_requests, sizeof *sh.res);
    double *v = calloc(sh.n_requests, sizeof *v);
    if (!thr || !sh.res || !v) {
        fprintf(stderr, "inferctl bench: out of memory\n");
        goto out;
    }
    if (rate > 0) {
        sh.arrival_s = calloc(sh.n_requests, sizeof *sh.arrival_s);
        if (!sh.arrival_s)
            goto out;
        uint64_t st = sh.seed * 0x9e3779b97f4a7c15ull + 1;
        double t = 0;
        for (uint32_t i = 0; i < sh.n_requests; i++) {
            st = st * 6364136223846793005ull + 1442695040888963407ull;
            double u = ((double)(st >> 11) + 0.5) / 9007199254740992.0;
            t += -log(u) / rate;
            sh.arrival_s[i] = t;
        }
    }
    sh.t0 = ccli_now_ns();
    uint32_t started = 0;
    for (; started < conc; started++)
        if (pthread_create(&thr[started], NULL, lg_client, &sh))
            break;
    for (uint32_t i = 0; i < started; i++)
        pthread_join(thr[i], NULL);
    uint64_t t1 = ccli_now_ns();
    if (atomic_load(&sh.conn_failed) && started)
        goto out;
    double dur = (double)(t1 - sh.t0) * 1e-9;
    size_t ok = 0;
    uint64_t out_tok = 0, in_tok = 0;
    for (uint32_t i = 0; i < sh.n_requests; i++)
        if (sh.res[i].ok) {
            ok++;
            out_tok += sh.res[i].out_tokens;
            in_tok += sh.res[i].prompt_tokens;
        }
    json_t *o = json ? json_object() : NULL;
    if (json) {
        json_object_set_new(o, "requests", json_integer(sh.n_requests));
        json_object_set_new(o, "concurrency", json_integer(conc));
        json_object_set_new(o, "rate", json_real(rate));
        json_object_set_new(o, "completed", json_integer((json_int_t)ok));
        json_object_set_new(o, "failed", json_integer((json_int_t)(sh.n_requests - ok)));
        json_object_set_new(o, "duration_s", json_real(dur));
        json_object_set_new(o, "request_throughput", json_real((double)ok / dur));
        json_object_set_new(o, "output_tok_s", json_real((double)out_tok / dur));
        json_object_set_new(o, "input_tok_s", json_real((double)in_tok / dur));
        json_object_set_new(o, "output_tokens", json_integer((json_int_t)out_tok));
    } else {
        char rs[32] = "inf";
        if (rate > 0)
            snprintf(rs, sizeof rs, "%.2f/s", rate);
        printf("requests          %zu completed, %zu failed, concurrency %u, rate %s\n", ok,
               (size_t)(sh.n_requests - ok), conc, rs);
        printf("duration          %.3f s\n", dur);
        printf("request rate      %.2f req/s\n", (double)ok / dur);
        printf("output tokens     %llu (%.1f tok/s); input %llu (%.1f tok/s)\n",
               (unsigned long long)out_tok, (double)out_tok / dur, (unsigned long long)in_tok,
               (double)in_tok / dur);
    }
    struct {
        const char *name;
        size_t off;
    } metrics[] = {
        {"ttft", offsetof(struct lg_result, ttft_ms)},
        {"tpot", offsetof(struct lg_result, tpot_ms)},
        {"e2e", offsetof(struct lg_result, e2e_ms)},
    };
    for (size_t m = 0; m < 3; m++) {
        size_t n = 0;
        for (uint32_t i = 0; i < sh.n_requests; i++)
            if (sh.res[i].ok && (m != 1 || sh.res[i].out_tokens > 1))
                memcpy(&v[n++], (const char *)&sh.res[i] + metrics[m].off, sizeof(double));
        lg_stat(o, metrics[m].name, v, n, json);
    }
    lg_stat(o, "itl", sh.itl, sh.n_itl, json);
    if (json)
        cli_print_json(o, JSON_COMPACT | JSON_REAL_PRECISION(6));
    rc = ok == sh.n_requests ? 0 : 1;
out:
    free(thr);
    free(sh.res);
    free(sh.arrival_s);
    free(sh.itl);
    free(v);
    pthread_mutex_destroy(&sh.mu);
    return rc;
}
