/* cmd_top.c - `inferctl top` (a refreshing view of a running inferd) and
 * `inferctl metrics` (the Prometheus text exposition of daemon/obs/prom.h,
 * the daemon's own /metrics renderer). Both read the daemon's Stats message
 * (counters, latency histograms, finish reasons) and, when present and
 * readable, the BPF maps pinned by `inferctl bpf attach`. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "client_cli.h"
#include "cmds.h"
#include "obs.h"

struct obs_snap {
    bool have_stats, have_bpf;
    int bpf_err;
    struct prom_stats st; /* the daemon's Stats, histograms included when it sends them */
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
        struct infer_stats st;
        struct infer_stats_detail *d = malloc(sizeof *d);
        if (d && infer_stats_detail(c, &st, d) == 0) {
            obs_stats_from_client(&st, d, &s->st);
            s->have_stats = true;
        }
        free(d);
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

/* The histograms and finish counts that top shows: the BPF maps' when
 * readable, else the daemon's own; NULL when neither has them. */
static const struct inferd_hist *top_hists(const struct obs_snap *s, const uint64_t **fin)
{
    if (s->have_bpf) {
        *fin = &s->b.c[INFERD_C_FIN_LENGTH];
        return s->b.h;
    }
    if (s->have_stats && s->st.have_hists && s->st.have_reasons) {
        *fin = s->st.obs.finished;
        return s->st.obs.h;
    }
    *fin = NULL;
    return NULL;
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
    json_object_set_new(o, "stats", s->have_stats ? obs_stats_json(&s->st) : json_null());
    if (s->have_bpf) {
        json_t *b = json_object(), *c = json_object();
        for (int i = 0; i < INFERD_C_COUNT; i++)
            json_object_set_new(c, obs_ctr_names[i],
                                i == INFERD_C_KV_IN_USE
                                    ? json_integer((json_int_t)(int64_t)s->b.c[i])
                                    : json_integer((json_int_t)s->b.c[i]));
        json_object_set_new(b, "counters", c);
        json_object_set_new(b, "hists", obs_hists_summary_json(s->b.h));
        json_object_set_new(o, "bpf", b);
    } else {
        json_object_set_new(o, "bpf", json_null());
    }
    /* What the view shows, from the source above. */
    const uint64_t *fin;
    const struct inferd_hist *h = top_hists(s, &fin);
    json_object_set_new(o, "hists", h ? obs_hists_summary_json(h) : json_null());
    json_object_set_new(o, "finished", h ? obs_reasons_json(fin) : json_null());
    return o;
}

static void top_print(const struct obs_snap *s, const struct obs_snap *prev, double dt,
                      const char *dir)
{
    printf("inferd top - source: %s\n",
           s->have_bpf ? "BPF maps" : "daemon stats (BPF maps: inferctl bpf attach, as root)");
    if (s->have_stats) {
        const struct prom_stats *t = &s->st;
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
    const uint64_t *c;
    const struct inferd_hist *h = top_hists(s, &c);
    if (!h) {
        printf("(no histograms: the daemon predates them and no BPF maps are attached)\n");
        return;
    }
    printf("finished  length %llu  eos %llu  stop %llu  cancelled %llu  error %llu   (%s%s)\n",
           (unsigned long long)c[INFERD_PROBE_LENGTH], (unsigned long long)c[INFERD_PROBE_EOS],
           (unsigned long long)c[INFERD_PROBE_STOP], (unsigned long long)c[INFERD_PROBE_CANCELLED],
           (unsigned long long)c[INFERD_PROBE_ERROR], s->have_bpf ? "BPF, " : "daemon",
           s->have_bpf ? dir : "");
    putchar('\n');
    obs_print_hists(stdout, h);
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
            cli_print_json(top_json(cur), JSON_COMPACT);
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

int cmd_metrics(int argc, char **argv)
{
    static const char usage[] =
        "usage: inferctl metrics [--socket PATH] [--bpf] [--pin-dir DIR] [--model-name NAME]\n"
        "  Prometheus text format (as inferd --metrics-port serves it): the daemon's\n"
        "  stats, counters and latency histograms; with --bpf the counters and\n"
        "  histograms come from the BPF maps (inferctl bpf attach) instead.\n";
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
        /* The renderer of the daemon's own /metrics, fed the same way. */
        struct prom_input in = {
            .model = s->model,
            .stats = s->have_stats ? &s->st : NULL,
            .bpf_hists = bpf ? s->b.h : NULL,
            .bpf_counters = bpf ? s->b.c : NULL,
        };
        if (prom_write(stdout, &in) != 0 || fflush(stdout) != 0)
            rc = 1;
    }
    free(s);
    return rc;
}
