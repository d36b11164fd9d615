/* cmd_bench_sched.c - `inferctl bench --model PATH --concurrency C`: the
 * in-process scheduler under C concurrent requests.
 *
 * C requests of P random prompt tokens and G generated tokens each are
 * submitted at once and run to completion; with --shared-prefix S their
 * first S tokens are the same (a system prompt) and they arrive one per
 * scheduler step. Figures:
 *   decode_tok_s   generated tokens after the last first token, divided by
 *                  the time from that first token to the end (steady decode
 *                  of the whole batch)
 *   output_tok_s   all generated tokens / wall time
 *   ttft_ms_*      first token - submission, per request
 *   tpot_ms_*      (last token - first token) / (generated - 1), per request
 *   kv_utilization token slots holding KV / slots of the blocks in use,
 *                  averaged over steps
 *   prefix_hit_rate  full prompt blocks found in the prefix cache / looked up
 * With --shared-prefix the same workload runs again without the prefix cache
 * (ttft_ms_p50_nocache). */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmds.h"
#include "engine.h"
#include "scheduler.h"

struct bs_req {
    uint64_t queued, first, last;
    uint32_t n;
};

struct bs_state {
    struct bs_req *r; /* by request id - 1 */
    size_t n;
    uint64_t *times;  /* every token's time */
    size_t n_times, cap_times;
};

static void bs_on_event(void *ud, const struct sched_event *ev)
{
    struct bs_state *st = ud;
    if (ev->req_id == 0 || ev->req_id > st->n)
        return;
    struct bs_req *r = &st->r[ev->req_id - 1];
    if (ev->type == SCHED_EV_TOKEN && ev->token >= 0) {
        if (!r->first)
            r->first = ev->time;
        if (st->n_times < st->cap_times)
            st->times[st->n_times++] = ev->time;
        r->last = ev->time;
        r->n++;
    } else if (ev->type != SCHED_EV_TOKEN) {
        r->queued = ev->times.queued;
    }
}

struct bs_result {
    double decode_tok_s, output_tok_s, ttft_p50, ttft_p99, tpot_p50, tpot_p99;
    double kv_util, hit_rate;
    uint64_t preemptions;
};

static int bs_run(struct engine *e, uint32_t conc, uint32_t n_p, uint32_t n_g, uint32_t shared,
                  bool prefix, struct bs_result *out)
{
    struct bs_state st = {calloc(conc, sizeof *st.r), conc, NULL, 0, (size_t)conc * n_g};
    st.times = malloc(st.cap_times * sizeof *st.times);
    int32_t *prompt = malloc((size_t)n_p * sizeof *prompt);
    double *ttft = malloc(conc * sizeof *ttft), *tpot = malloc(conc * sizeof *tpot);
    struct sched *s = NULL;
    int rc = -ENOMEM;
    if (!st.r || !st.times || !prompt || !ttft || !tpot)
        goto out;
    struct sched_params sp;
    sched_params_default(&sp);
    sp.prefix_cache = prefix;
    if ((rc = sched_create(e, &sp, bs_on_event, &st, &s)))
        goto out;
    uint32_t nv = e->model->hp.n_vocab;
    uint64_t x = 0x2545f4914f6cdd1dULL;
    struct sched_request q = {0};
    smp_params_default(&q.sampling);
    q.sampling.temperature = 0;
    q.prompt = prompt;
    q.n_prompt = n_p;
    q.max_tokens = n_g;
    /* All at once; with a shared prefix one arrival per step, so that
     * later requests can find the prefix the earlier ones computed. */
    uint64_t t0 = sched_now_ns();
    uint32_t submitted = 0;
    while (submitted < conc || sched_has_work(s)) {
        uint32_t burst = shared ? 1 : conc;
        for (uint32_t b = 0; b < burst && submitted < conc; b++, submitted++) {
            for (uint32_t k = 0; k < n_p; k++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                /* the shared prefix is the same for every request */
                uint64_t v = k < shared ? (uint64_t)k * 2654435761u : x;
                prompt[k] = (int32_t)(v % nv);
            }
            char err[256];
            if ((rc = sched_submit(s, &q, NULL, err, sizeof err))) {
                fprintf(stderr, "inferctl bench: %s\n", err);
                goto out;
            }
        }
        if ((rc = sched_step(s)) < 0)
            goto out;
    }
    uint64_t t1 = sched_now_ns(), last_first = 0;
    uint64_t total = 0, after = 0;
    for (uint32_t i = 0; i < conc; i++)
        if (st.r[i].first > last_first)
            last_first = st.r[i].first;
    for (uint32_t i = 0; i < conc; i++) {
        struct bs_req *r = &st.r[i];
        total += r->n;
        ttft[i] = (double)(r->first - r->queued) * 1e-6;
        tpot[i] = r->n > 1 ? (double)(r->last - r->first) * 1e-6 / (r->n - 1) : 0;
    }
    for (size_t i = 0; i < st.n_times; i++)
        after += st.times[i] > last_first;
    cli_sort(ttft, conc);
    cli_sort(tpot, conc);
    struct sched_stats ss;
    sched_get_stats(s, &ss);
    out->output_tok_s = (double)total / ((double)(t1 - t0) * 1e-9);
    out->decode_tok_s = t1 > last_first ? (double)after / ((double)(t1 - last_first) * 1e-9) : 0;
    out->ttft_p50 = cli_rank(ttft, conc, 0.5);
    out->ttft_p99 = cli_rank(ttft, conc, 0.99);
    out->tpot_p50 = cli_rank(tpot, conc, 0.5);
    out->tpot_p99 = cli_rank(tpot, conc, 0.99);
    out->kv_util = ss.kv_slots_alloc_sum ? (double)ss.kv_slots_used_sum / (double)ss.kv_slots_alloc_sum : 0;
    out->hit_rate = ss.cache.queries ? (double)ss.cache.hits / (double)ss.cache.queries : 0;
    out->preemptions = ss.preemptions;
    rc = 0;
out:
    sched_free(s);
    free(st.r);
    free(st.times);
    free(prompt);
    free(ttft);
    free(tpot);
    return rc;
}

int cmd_bench_sched(int argc, char **argv)
{
    static const char usage[] =
        "usage: inferctl bench --model PATH --concurrency C [--prompt-tokens P] [--gen-tokens G]\n"
        "                      [--shared-prefix S] [--threads N] [--kv-memory BYTES]\n"
        "                      [--kv-type f32|f16|bf16] [--json]\n";
    enum { O_MODEL = 256, O_CONC, O_P, O_G, O_SHARED, O_THREADS, O_KVMEM, O_KV, O_JSON, O_HELP };
    static const struct option opts[] = {
        {"model", required_argument, 0, O_MODEL},
        {"concurrency", required_argument, 0, O_CONC},
        {"prompt-tokens", required_argument, 0, O_P},
        {"gen-tokens", required_argument, 0, O_G},
        {"shared-prefix", required_argument, 0, O_SHARED},
        {"threads", required_argument, 0, O_THREADS},
        {"kv-memory", required_argument, 0, O_KVMEM},
        {"kv-type", required_argument, 0, O_KV},
        {"json", no_argument, 0, O_JSON},
        {"help", no_argument, 0, O_HELP},
        {0, 0, 0, 0},
    };
    struct engine_params ep;
    engine_params_default(&ep);
    uint32_t conc = 1, n_p = 64, n_g = 32, shared = 0;
    bool json = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case O_MODEL: ep.model_path = optarg; break;
        case O_CONC: bad = cli_u32("--concurrency", optarg, 1, 4096, &conc); break;
        case O_P: bad = cli_u32("--prompt-tokens", optarg, 1, 1u << 16, &n_p); break;
        case O_G: bad = cli_u32("--gen-tokens", optarg, 1, 1u << 16, &n_g); break;
        case O_SHARED: bad = cli_u32("--shared-prefix", optarg, 0, 1u << 16, &shared); break;
        case O_THREADS: bad = cli_u32("--threads", optarg, 1, 1024, &ep.n_threads); break;
        case O_KVMEM: bad = cli_mem_size("--kv-memory", optarg, &ep.kv_bytes); break;
        case O_KV: bad = cli_kv_type(optarg, &ep.kv_type); break;
        case O_JSON: json = true; break;
        case O_HELP: fputs(usage, stdout); return 0;
        default: bad = 1; break;
        }
        if (bad)
            return 2;
    }
    if (optind < argc || !ep.model_path) {
        fprintf(stderr, "inferctl bench: --model is required\n%s", usage);
        return 2;
    }
    if (shared > n_p) {
        fprintf(stderr, "inferctl bench: --shared-prefix exceeds --prompt-tokens\n");
        return 2;
    }
    ep.n_ctx = n_p + n_g + 16;
    char err[512];
    struct engine *e = NULL;
    if (engine_open(&ep, &e, err, sizeof err)) {
        fprintf(stderr, "inferctl bench: %s: %s\n", ep.model_path, err);
        return 1;
    }
    if (!ep.kv_bytes) {
        /* Room for every request at full length. */
        const struct model_hparams *hp = &e->model->hp;
        uint64_t blocks = (uint64_t)conc * ((n_p + n_g) / KV_BLOCK_TOKENS + 2);
        ep.kv_bytes = blocks * kv_block_bytes_total(ep.kv_type, hp->n_layer,
                                                    hp->n_head_kv * hp->head_dim);
        engine_close(e);
        if (engine_open(&ep, &e, err, sizeof err)) {
            fprintf(stderr, "inferctl bench: %s: %s\n", ep.model_path, err);
            return 1;
        }
    }
    struct bs_result r, nc = {0};
    int rc = bs_run(e, conc, n_p, n_g, shared, true, &r);
    if (!rc && shared)
        rc = bs_run(e, conc, n_p, n_g, shared, false, &nc);
    if (rc) {
        fprintf(stderr, "inferctl bench: run failed: %s\n", strerror(-rc));
        engine_close(e);
        return 1;
    }
    if (json) {
        json_t *o = json_object();
        json_object_set_new(o, "model", json_string(ep.model_path));
        json_object_set_new(o, "threads", json_integer(tp_size(e->pool)));
        json_object_set_new(o, "concurrency", json_integer(conc));
        json_object_set_new(o, "prompt_tokens", json_integer(n_p));
        json_object_set_new(o, "gen_tokens", json_integer(n_g));
        json_object_set_new(o, "decode_tok_s", json_real(r.decode_tok_s));
        json_object_set_new(o, "output_tok_s", json_real(r.output_tok_s));
        json_object_set_new(o, "ttft_ms_p50", json_real(r.ttft_p50));
        json_object_set_new(o, "ttft_ms_p99", json_real(r.ttft_p99));
        json_object_set_new(o, "tpot_ms_p50", json_real(r.tpot_p50));
        json_object_set_new(o, "tpot_ms_p99", json_real(r.tpot_p99));
        json_object_set_new(o, "kv_utilization", json_real(r.kv_util));
        json_object_set_new(o, "prefix_hit_rate", json_real(r.hit_rate));
        json_object_set_new(o, "preemptions", json_integer((json_int_t)r.preemptions));
        if (shared) {
            json_object_set_new(o, "shared_prefix", json_integer(shared));
            json_object_set_new(o, "ttft_ms_p50_nocache", json_real(nc.ttft_p50));
        }
        cli_print_json(o, JSON_COMPACT | JSON_REAL_PRECISION(6));
    } else {
        printf("concurrency %u, %u prompt + %u generated tokens each, %u threads\n", conc, n_p,
               n_g, tp_size(e->pool));
        printf("decode       %.1f tok/s aggregate (output %.1f tok/s over the whole run)\n",
               r.decode_tok_s, r.output_tok_s);
        printf("TTFT         p50 %.1f ms, p99 %.1f ms\n", r.ttft_p50, r.ttft_p99);
        printf("TPOT         p50 %.2f ms, p99 %.2f ms\n", r.tpot_p50, r.tpot_p99);
        printf("KV           %.1f%% of allocated slots used; prefix hit rate %.1f%%\n",
               100 * r.kv_util, 100 * r.hit_rate);
        if (shared)
            printf("shared prefix %u: TTFT p50 %.1f ms with the prefix cache, %.1f ms without\n",
                   shared, r.ttft_p50, nc.ttft_p50);
    }
    engine_close(e);
    return 0;
}
