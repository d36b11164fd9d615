/* cmd_top.c - `inferctl top` (a refreshing view of a running inferd) and
 * `inferctl metrics` (the Prometheus text exposition format, with vLLM's
 * metric names where the meaning is the same). Both read the daemon's Stats
 * message and, when present and readable, the BPF maps pinned by `inferctl
 * bpf attach` (latency histograms, finish reasons). */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client_cli.h"
#include "cmds.h"
#include "kvcache.h"
#include "obs.h"

struct obs_snap {
    bool have_stats, have_bpf;
    int bpf_err;
    struct infer_stats st;
    struct obs_bpf b;
    char model[160];
};

static void obs_snap_take(struct obs_snap *s, const char *sock, const char *dir, bool want_model)
{
    memset(s, 0, sizeof *s);
    struct infer_client *c;
    struct infer_connect_opts o;
    infer_connect_opts_init(&o);
    o.client_name = "inferctl-obs";
    if (infer_connect(ccli_socket(sock), &o, &c) == 0) {
        s->have_stats = infer_stats(c, &s->st) == 0;
        if (want_model) {
            struct infer_model m[2];
            size_t n = 0;
            if (infer_list_models(c, m, 2, &n) == 0 && n == 1)
                snprintf(s->model, sizeof s->model, "%s", m[0].name);
        }
        infer_close(c);
    }
    s->bpf_err = obs_bpf_read(dir, &s->b);
    s->have_bpf = s->bpf_err == 0;
}

/* ---- top ------------------------------------------------------------ */

static volatile sig_atomic_t top_stop;

static void top_on_signal(int sig)
{
    (void)sig;
    top_stop = 1;
}

static json_t *top_json(const struct obs_snap *s)
{
    json_t *o = json_object();
    json_object_set_new(o, "source", json_string(s->have_bpf ? "bpf" : "stats"));
    if (s->have_stats) {
        json_t *st = json_object();
        const struct infer_stats *t = &s->st;
        json_object_set_new(st, "requests_running", json_integer((json_int_t)t->requests_running));
        json_object_set_new(st, "requests_waiting", json_integer((json_int_t)t->requests_waiting));
        json_object_set_new(st, "requests_finished", json_integer((json_int_t)t->requests_finished));
        json_object_set_new(st, "prompt_tokens", json_integer((json_int_t)t->prompt_tokens));
        json_object_set_new(st, "generated_tokens", json_integer((json_int_t)t->generated_tokens));
        json_object_set_new(st, "kv_blocks_total", json_integer((json_int_t)t->kv_blocks_total));
        json_object_set_new(st, "kv_blocks_used", json_integer((json_int_t)t->kv_blocks_used));
        json_object_set_new(st, "prefix_cache_queries",
                            json_integer((json_int_t)t->prefix_cache_queries));
        json_object_set_new(st, "prefix_cache_hits", json_integer((json_int_t)t->prefix_cache_hits));
        json_object_set_new(st, "preemptions", json_integer((json_int_t)t->preemptions));
        json_object_set_new(o, "stats", st);
    } else {
        json_object_set_new(o, "stats", json_null());
    }
    if (s->have_bpf) {
        json_t *b = json_object(), *c = json_object(), *h = json_object();
        for (int i = 0; i < INFERD_C_COUNT; i++)
            json_object_set_new(c, obs_ctr_names[i],
                                i == INFERD_C_KV_IN_USE
                                    ? json_integer((json_int_t)(int64_t)s->b.c[i])
                                    : json_integer((json_int_t)s->b.c[i]));
        for (int i = 0; i < INFERD_H_COUNT; i++) {
            const struct inferd_hist *x = &s->b.h[i];
            json_t *e = json_object();
            json_object_set_new(e, "count", json_integer((json_int_t)x->count));
            json_object_set_new(e, "sum", json_integer((json_int_t)x->sum));
            json_object_set_new(e, "p50", json_real(obs_hist_quantile(x, 0.5)));
            json_object_set_new(e, "p90", json_real(obs_hist_quantile(x, 0.9)));
            json_object_set_new(e, "p99", json_real(obs_hist_quantile(x, 0.99)));
            json_object_set_new(h, obs_hist_names[i], e);
        }
        json_object_set_new(b, "counters", c);
        json_object_set_new(b, "hists", h);
        json_object_set_new(o, "bpf", b);
    } else {
        json_object_set_new(o, "bpf", json_null());
    }
    return o;
}

static void top_fmt_ns(char *buf, size_t n, double ns)
{
    if (ns < 1e3)
        snprintf(buf, n, "%.0fns", ns);
    else if (ns < 1e6)
        snprintf(buf, n, "%.1fus", ns / 1e3);
    else if (ns < 1e9)
        snprintf(buf, n, "%.1fms", ns / 1e6);
    else
        snprintf(buf, n, "%.2fs", ns / 1e9);
}

static void top_print(const struct obs_snap *s, const struct obs_snap *prev, double dt,
                      const char *dir)
{
    printf("inferd top - source: %s\n",
           s->have_bpf ? "BPF maps" : "daemon stats (no BPF maps: inferctl bpf attach, as root)");
    if (s->have_stats) {
        const struct infer_stats *t = &s->st;
        double rate = prev && prev->have_stats && dt > 0
                          ? (double)(t->generated_tokens - prev->st.generated_tokens) / dt
                          : 0;
        printf("requests  running %-6llu waiting %-6llu finished %-8llu preemptions %llu\n",
               (unsigned long long)t->requests_running, (unsigned long long)t->requests_waiting,
               (unsigned long long)t->requests_finished, (unsigned long long)t->preemptions);
        printf("tokens    prompt %-10llu generated %-10llu %.1f tok/s\n",
               (unsigned long long)t->prompt_tokens, (unsigned long long)t->generated_tokens, rate);
        printf("kv cache  %llu / %llu blocks (%.1f%%)   prefix cache %llu / %llu blocks hit\n",
               (unsigned long long)t->kv_blocks_used, (unsigned long long)t->kv_blocks_total,
               t->kv_blocks_total ? 100.0 * (double)t->kv_blocks_used / (double)t->kv_blocks_total : 0,
               (unsigned long long)t->prefix_cache_hits, (unsigned long long)t->prefix_cache_queries);
    } else {
        printf("(daemon not reachable)\n");
    }
    if (!s->have_bpf)
        return;
    const uint64_t *c = s->b.c;
    printf("finished  length %llu  eos %llu  stop %llu  cancelled %llu  error %llu   (BPF, %s)\n",
           (unsigned long long)c[INFERD_C_FIN_LENGTH], (unsigned long long)c[INFERD_C_FIN_EOS],
           (unsigned long long)c[INFERD_C_FIN_STOP], (unsigned long long)c[INFERD_C_FIN_CANCELLED],
           (unsigned long long)c[INFERD_C_FIN_ERROR], dir);
    printf("\n%-14s %10s %10s %10s %10s %10s\n", "", "count", "mean", "p50", "p90", "p99");
    for (int i = 0; i < INFERD_H_COUNT; i++) {
        const struct inferd_hist *h = &s->b.h[i];
        double mean = h->count ? (double)h->sum / (double)h->count : 0;
        double q[3] = {obs_hist_quantile(h, 0.5), obs_hist_quantile(h, 0.9),
                       obs_hist_quantile(h, 0.99)};
        char f[4][32];
        if (i == INFERD_H_BATCH) {
            snprintf(f[0], sizeof f[0], "%.1f", mean);
            for (int k = 0; k < 3; k++)
                snprintf(f[k + 1], sizeof f[k + 1], "%.0f", q[k]);
        } else {
            top_fmt_ns(f[0], sizeof f[0], mean);
            for (int k = 0; k < 3; k++)
                top_fmt_ns(f[k + 1], sizeof f[k + 1], q[k]);
        }
        printf("%-14s %10llu %10s %10s %10s %10s\n", obs_hist_names[i],
               (unsigned long long)h->count, f[0], f[1], f[2], f[3]);
    }
}

int cmd_top(int argc, char **argv)
{
    static const char usage[] =
        "usage: inferctl top [--once] [--json] [--socket PATH] [--pin-dir DIR] [--interval MS]\n";
    enum { O_ONCE = 256, O_JSON, O_SOCKET, O_DIR, O_INTERVAL, O_HELP };
    static const struct option opts[] = {
        {"once", no_argument, 0, O_ONCE},         {"json", no_argument, 0, O_JSON},
        {"socket", required_argument, 0, O_SOCKET}, {"pin-dir", required_argument, 0, O_DIR},
        {"interval", required_argument, 0, O_INTERVAL}, {"help", no_argument, 0, O_HELP},
        {0, 0, 0, 0},
    };
    bool once = false, json = false;
    const char *sock = NULL, *dir = OBS_PIN_DIR;
    long interval = 1000;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_ONCE: once = true; break;
        case O_JSON: json = true; break;
        case O_SOCKET: sock = optarg; break;
        case O_DIR: dir = optarg; break;
        case O_INTERVAL: {
            char *end;
            interval = strtol(optarg, &end, 10);
            if (*end || interval < 50 || interval > 3600000) {
                fprintf(stderr, "inferctl top: bad --interval '%s' (50..3600000 ms)\n", optarg);
                return 2;
            }
            break;
        }
        case O_HELP: fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (optind < argc) {
        fputs(usage, stderr);
        return 2;
    }
    struct obs_snap *snap = calloc(2, sizeof *snap);
    if (!snap)
        return 1;
    int rc = 0;
    signal(SIGINT, top_on_signal);
    signal(SIGTERM, top_on_signal);
    uint64_t t_prev = 0;
    for (unsigned it = 0; !top_stop; it++) {
        struct obs_snap *cur = &snap[it & 1], *prev = &snap[(it + 1) & 1];
        obs_snap_take(cur, sock, dir, false);
        uint64_t now = ccli_now_ns();
        if (!cur->have_stats && !cur->have_bpf) {
            fprintf(stderr, "inferctl top: daemon at %s not reachable and no BPF maps in %s\n",
                    ccli_socket(sock), dir);
            rc = 1;
            break;
        }
        if (json) {
            json_t *o = top_json(cur);
            char *txt = json_dumps(o, JSON_COMPACT);
            if (txt)
                puts(txt);
            free(txt);
            json_decref(o);
        } else {
            if (!once)
                fputs("\033[H\033[2J", stdout);
            top_print(cur, it ? prev : NULL, it ? (double)(now - t_prev) / 1e9 : 0, dir);
        }
        fflush(stdout);
        t_prev = now;
        if (once)
            break;
        struct timespec ts = {interval / 1000, (interval % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    free(snap);
    return rc;
}

/* ---- metrics -------------------------------------------------------- */

struct prom {
    FILE *fp;
    char labels[400]; /* model_name="..." */
};

static void prom_head(struct prom *p, const char *name, const char *type, const char *help)
{
    fprintf(p->fp, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void prom_value(struct prom *p, const char *name, const char *type, const char *help,
                       double v)
{
    prom_head(p, name, type, help);
    fprintf(p->fp, "%s{%s} %.17g\n", name, p->labels, v);
}

/* A log2 histogram as Prometheus buckets; scale converts slot bounds and
 * the sum into the metric's unit (1e-9: nanoseconds to seconds). Buckets
 * from slot lo to hi, then +Inf. */
static void prom_hist(struct prom *p, const char *name, const char *help,
                      const struct inferd_hist *h, double scale, int lo, int hi)
{
    prom_head(p, name, "histogram", help);
    uint64_t cum = 0;
    for (int i = 0; i < lo; i++)
        cum += h->slots[i];
    for (int i = lo; i <= hi; i++) {
        cum += h->slots[i];
        fprintf(p->fp, "%s_bucket{%s,le=\"%.12g\"} %llu\n", name, p->labels,
                (double)(1ULL << i) * scale, (unsigned long long)cum);
    }
    uint64_t total = 0;
    for (int i = 0; i < INFERD_HIST_SLOTS; i++)
        total += h->slots[i];
    fprintf(p->fp, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, p->labels, (unsigned long long)total);
    fprintf(p->fp, "%s_sum{%s} %.17g\n", name, p->labels, (double)h->sum * scale);
    fprintf(p->fp, "%s_count{%s} %llu\n", name, p->labels, (unsigned long long)total);
}

static void prom_reason(struct prom *p, const char *name, const char *reason_label,
                        const char *reason, uint64_t v)
{
    fprintf(p->fp, "%s{%s,%s=\"%s\"} %llu\n", name, p->labels, reason_label, reason,
            (unsigned long long)v);
}

/* Writes the exposition of s to fp. */
static void obs_prometheus(FILE *fp, const struct obs_snap *s, bool bpf)
{
    struct prom p = {fp, {0}};
    const char *model = s->model[0] ? s->model : "inferd";
    char esc[340];
    size_t k = 0;
    for (const char *c = model; *c && k + 2 < sizeof esc; c++) {
        if (*c == '"' || *c == '\\')
            esc[k++] = '\\';
        esc[k++] = *c == '\n' ? ' ' : *c;
    }
    esc[k] = 0;
    snprintf(p.labels, sizeof p.labels, "model_name=\"%s\"", esc);
    const double blk = KV_BLOCK_TOKENS;
    if (s->have_stats) {
        const struct infer_stats *t = &s->st;
        prom_value(&p, "vllm:num_requests_running", "gauge",
                   "Number of requests in model execution batches.", (double)t->requests_running);
        prom_value(&p, "vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed.",
                   (double)t->requests_waiting);
        prom_value(&p, "vllm:kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.",
                   t->kv_blocks_total ? (double)t->kv_blocks_used / (double)t->kv_blocks_total : 0);
        prom_value(&p, "inferd:kv_blocks_used", "gauge", "KV blocks referenced by sequences.",
                   (double)t->kv_blocks_used);
        prom_value(&p, "inferd:kv_blocks_total", "gauge", "KV blocks in the pool.",
                   (double)t->kv_blocks_total);
    }
    if (s->have_stats && !bpf) {
        const struct infer_stats *t = &s->st;
        prom_value(&p, "vllm:prefix_cache_queries_total", "counter",
                   "Prefix cache queries, in tokens (full blocks looked up x block size).",
                   (double)t->prefix_cache_queries * blk);
        prom_value(&p, "vllm:prefix_cache_hits_total", "counter", "Prefix cache hits, in tokens.",
                   (double)t->prefix_cache_hits * blk);
        prom_value(&p, "inferd:prefix_cache_block_queries_total", "counter",
                   "Prefix cache lookups, in blocks.", (double)t->prefix_cache_queries);
        prom_value(&p, "inferd:prefix_cache_block_hits_total", "counter",
                   "Prefix cache hits, in blocks.", (double)t->prefix_cache_hits);
        prom_value(&p, "vllm:num_preemptions_total", "counter", "Cumulative number of preemptions.",
                   (double)t->preemptions);
        prom_value(&p, "vllm:prompt_tokens_total", "counter", "Number of prefill tokens processed.",
                   (double)t->prompt_tokens);
        prom_value(&p, "vllm:generation_tokens_total", "counter",
                   "Number of generation tokens processed.", (double)t->generated_tokens);
        prom_value(&p, "inferd:requests_finished_total", "counter",
                   "Requests that ended (any reason).", (double)t->requests_finished);
    }
    if (!bpf || !s->have_bpf)
        return;
    const uint64_t *c = s->b.c;
    const struct inferd_hist *h = s->b.h;
    prom_value(&p, "vllm:prefix_cache_queries_total", "counter",
               "Prefix cache queries, in tokens.", (double)c[INFERD_C_PREFIX_Q_TOKENS]);
    prom_value(&p, "vllm:prefix_cache_hits_total", "counter", "Prefix cache hits, in tokens.",
               (double)c[INFERD_C_PREFIX_H_TOKENS]);
    prom_value(&p, "inferd:prefix_cache_block_queries_total", "counter",
               "Prefix cache lookups, in blocks.", (double)c[INFERD_C_PREFIX_Q_BLOCKS]);
    prom_value(&p, "inferd:prefix_cache_block_hits_total", "counter", "Prefix cache hits, in blocks.",
               (double)c[INFERD_C_PREFIX_H_BLOCKS]);
    prom_value(&p, "vllm:num_preemptions_total", "counter", "Cumulative number of preemptions.",
               (double)c[INFERD_C_PREEMPTIONS]);
    prom_value(&p, "vllm:prompt_tokens_total", "counter", "Number of prefill tokens processed.",
               (double)c[INFERD_C_PROMPT_TOKENS]);
    prom_value(&p, "vllm:generation_tokens_total", "counter", "Number of generation tokens processed.",
               (double)c[INFERD_C_GEN_TOKENS]);
    uint64_t fin = 0;
    for (int i = INFERD_C_FIN_LENGTH; i <= INFERD_C_FIN_ERROR; i++)
        fin += c[i];
    prom_value(&p, "inferd:requests_finished_total", "counter", "Requests that ended (any reason).",
               (double)fin);
    prom_head(&p, "vllm:request_success_total", "counter",
              "Count of finished requests by finish reason (stop covers EOS and stop strings).");
    prom_reason(&p, "vllm:request_success_total", "finished_reason", "stop",
                c[INFERD_C_FIN_EOS] + c[INFERD_C_FIN_STOP]);
    prom_reason(&p, "vllm:request_success_total", "finished_reason", "length", c[INFERD_C_FIN_LENGTH]);
    prom_reason(&p, "vllm:request_success_total", "finished_reason", "abort",
                c[INFERD_C_FIN_CANCELLED] + c[INFERD_C_FIN_ERROR]);
    prom_head(&p, "inferd:requests_by_reason_total", "counter",
              "Requests that ended, by inferd's finish reason.");
    static const char *const reasons[] = {"length", "eos", "stop", "cancelled", "error"};
    for (int i = 0; i < 5; i++)
        prom_reason(&p, "inferd:requests_by_reason_total", "reason", reasons[i], c[i]);
    prom_value(&p, "inferd:kv_blocks_in_use_bpf", "gauge",
               "KV blocks referenced, from the kv_alloc/kv_free probes since attach.",
               (double)(int64_t)c[INFERD_C_KV_IN_USE]);
    const double ns = 1e-9;
    prom_hist(&p, "vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
              &h[INFERD_H_TTFT], ns, 14, 36);
    prom_hist(&p, "vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.",
              &h[INFERD_H_ITL], ns, 10, 34);
    prom_hist(&p, "vllm:e2e_request_latency_seconds",
              "Histogram of end to end request latency in seconds.", &h[INFERD_H_E2E], ns, 14, 38);
    prom_hist(&p, "vllm:request_queue_time_seconds",
              "Histogram of time spent in WAITING phase for request.", &h[INFERD_H_QUEUE], ns, 10, 38);
    prom_hist(&p, "vllm:request_prefill_time_seconds",
              "Histogram of time from scheduling to first token (prefill) in seconds.",
              &h[INFERD_H_PREFILL], ns, 10, 36);
    prom_hist(&p, "vllm:iteration_tokens_total", "Histogram of number of tokens per engine_step.",
              &h[INFERD_H_BATCH], 1.0, 0, 16);
    prom_hist(&p, "inferd:engine_step_seconds", "Histogram of engine step duration in seconds.",
              &h[INFERD_H_STEP], ns, 10, 36);
}

int cmd_metrics(int argc, char **argv)
{
    static const char usage[] =
        "usage: inferctl metrics [--socket PATH] [--bpf] [--pin-dir DIR] [--model-name NAME]\n"
        "  Prometheus text format: the daemon's stats; with --bpf the counters and\n"
        "  latency histograms come from the BPF maps (inferctl bpf attach).\n";
    enum { O_SOCKET = 256, O_BPF, O_DIR, O_MODEL, O_HELP };
    static const struct option opts[] = {
        {"socket", required_argument, 0, O_SOCKET}, {"bpf", no_argument, 0, O_BPF},
        {"pin-dir", required_argument, 0, O_DIR},   {"model-name", required_argument, 0, O_MODEL},
        {"help", no_argument, 0, O_HELP},           {0, 0, 0, 0},
    };
    const char *sock = NULL, *dir = OBS_PIN_DIR, *model = NULL;
    bool bpf = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_SOCKET: sock = optarg; break;
        case O_BPF: bpf = true; break;
        case O_DIR: dir = optarg; break;
        case O_MODEL: model = optarg; break;
        case O_HELP: fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (optind < argc) {
        fputs(usage, stderr);
        return 2;
    }
    struct obs_snap *s = malloc(sizeof *s);
    if (!s)
        return 1;
    obs_snap_take(s, sock, dir, !model);
    if (model)
        snprintf(s->model, sizeof s->model, "%s", model);
    int rc = 0;
    if (bpf && !s->have_bpf) {
        fprintf(stderr, "inferctl metrics: no BPF maps in %s: %s%s\n", dir, strerror(-s->bpf_err),
                obs_built_with_bpf() ? "" : " (built without BPF)");
        rc = 1;
    } else if (!bpf && !s->have_stats) {
        fprintf(stderr, "inferctl metrics: cannot read the stats of the daemon at %s\n",
                ccli_socket(sock));
        rc = 1;
    } else {
        obs_prometheus(stdout, s, bpf);
    }
    free(s);
    return rc;
}
