/* cmd_bench.c - `inferctl bench`: prefill and decode speed at batch 1, set
 * against the machine's read bandwidth measured in the same run.
 *
 * Decode streams every weight matrix once per token (the embedding table
 * only contributes a row, unless it doubles as the output), so the bytes per
 * token are the model's stream_bytes; decode_gbs = stream_bytes * decode
 * tokens/s, and roofline_pct = decode_gbs / mem_read_gbs. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "cmds.h"
#include "engine.h"

static double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int cmd_bench(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) /* against a running daemon: cmd_loadgen.c */
        if (!strcmp(argv[i], "--socket") || !strncmp(argv[i], "--socket=", 9))
            return cmd_bench_serve(argc, argv);
    /* --concurrency: the scheduler under concurrent requests. */
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--concurrency") || !strncmp(argv[i], "--concurrency=", 14))
            return cmd_bench_sched(argc, argv);

    static const char usage[] =
        "usage: inferctl bench --model PATH [--threads N] [--prompt-tokens P] [--gen-tokens G]\n"
        "                      [--reps R] [--kv-type f32|f16|bf16] [--json]\n"
        "Prefill of P tokens and decode of G tokens at batch 1 (best of R runs, default 3),\n"
        "and the read bandwidth of this machine measured with the same threads.\n";
    enum { O_MODEL = 256, O_THREADS, O_P, O_G, O_REPS, O_KV, O_JSON, O_HELP };
    static const struct option opts[] = {
        {"model", required_argument, 0, O_MODEL},
        {"threads", required_argument, 0, O_THREADS},
        {"prompt-tokens", required_argument, 0, O_P},
        {"gen-tokens", required_argument, 0, O_G},
        {"reps", required_argument, 0, O_REPS},
        {"kv-type", required_argument, 0, O_KV},
        {"json", no_argument, 0, O_JSON},
        {"help", no_argument, 0, O_HELP},
        {0, 0, 0, 0},
    };
    struct engine_params ep;
    engine_params_default(&ep);
    uint32_t n_p = 128, n_g = 64, reps = 3;
    bool json = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case O_MODEL: ep.model_path = optarg; break;
        case O_THREADS: bad = cli_u32("--threads", optarg, 1, 1024, &ep.n_threads); break;
        case O_P: bad = cli_u32("--prompt-tokens", optarg, 1, 1u << 16, &n_p); break;
        case O_G: bad = cli_u32("--gen-tokens", optarg, 1, 1u << 16, &n_g); break;
        case O_REPS: bad = cli_u32("--reps", optarg, 1, 1000, &reps); break;
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
    ep.n_ctx = n_p + n_g + 16;
    char err[512] = "";
    struct engine *e = NULL;
    int32_t *toks = NULL;
    float *logits = NULL;
    int rc = 1;
    int r = engine_open(&ep, &e, err, sizeof err);
    if (r) {
        fprintf(stderr, "inferctl bench: %s: %s\n", ep.model_path, err);
        return 1;
    }
    const struct model *m = e->model;
    uint32_t nv = m->hp.n_vocab;
    toks = malloc((size_t)(n_p + n_g) * sizeof *toks);
    logits = malloc((size_t)nv * sizeof *logits);
    if (!toks || !logits) {
        fprintf(stderr, "inferctl bench: out of memory\n");
        goto out;
    }
    /* A fixed pseudo-random prompt (content does not change the cost). */
    uint64_t s = 0x9e3779b97f4a7c15ULL;
    for (uint32_t i = 0; i < n_p + n_g; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        toks[i] = (int32_t)((s >> 33) % nv);
    }
    double best_p = 1e30, best_g = 1e30;
    for (uint32_t rep = 0; rep < reps; rep++) {
        struct kv_seq seq = {0};
        if ((r = kv_seq_reserve(&e->kv, &seq, n_p + n_g))) {
            fprintf(stderr, "inferctl bench: KV cache too small\n");
            goto out;
        }
        int32_t *pos = malloc((size_t)(n_p + n_g) * sizeof *pos);
        uint32_t *sid = calloc(n_p + n_g, sizeof *sid);
        if (!pos || !sid) {
            free(pos);
            free(sid);
            kv_seq_release(&e->kv, &seq);
            goto out;
        }
        for (uint32_t i = 0; i < n_p + n_g; i++)
            pos[i] = (int32_t)i;
        double t0 = bench_now();
        struct fwd_batch b = {n_p, toks, pos, sid, NULL};
        r = fwd_eval(e->fwd, &b, &seq, 1, logits);
        double t1 = bench_now();
        for (uint32_t i = 0; i < n_g && r == 0; i++) {
            struct fwd_batch d = {1, toks + n_p + i, pos + n_p + i, sid, NULL};
            r = fwd_eval(e->fwd, &d, &seq, 1, logits);
        }
        double t2 = bench_now();
        free(pos);
        free(sid);
        kv_seq_release(&e->kv, &seq);
        if (r) {
            fprintf(stderr, "inferctl bench: forward pass failed\n");
            goto out;
        }
        if (t1 - t0 < best_p)
            best_p = t1 - t0;
        if (t2 - t1 < best_g)
            best_g = t2 - t1;
    }
    double mem = kern_membw_read(e->pool, (size_t)1 << 30, 5);
    double prefill = n_p / best_p, decode = n_g / best_g;
    double gbs = (double)m->stream_bytes * decode / 1e9;
    double pct = mem > 0 ? 100.0 * gbs / mem : 0;
    if (json) {
        json_t *o = json_object();
        json_object_set_new(o, "model", json_string(ep.model_path));
        json_object_set_new(o, "threads", json_integer(tp_size(e->pool)));
        json_object_set_new(o, "isa", json_string(kern_isa_name(e->kc.isa)));
        json_object_set_new(o, "prompt_tokens", json_integer(n_p));
        json_object_set_new(o, "gen_tokens", json_integer(n_g));
        json_object_set_new(o, "prefill_tok_s", json_real(prefill));
        json_object_set_new(o, "decode_tok_s", json_real(decode));
        json_object_set_new(o, "model_bytes", json_integer((json_int_t)m->weight_bytes));
        json_object_set_new(o, "stream_bytes", json_integer((json_int_t)m->stream_bytes));
        json_object_set_new(o, "decode_gbs", json_real(gbs));
        json_object_set_new(o, "mem_read_gbs", json_real(mem));
        json_object_set_new(o, "roofline_pct", json_real(pct));
        cli_print_json(o, JSON_COMPACT | JSON_REAL_PRECISION(6));
    } else {
        printf("model        %s (%s)\n", ep.model_path, m->hp.name);
        printf("threads      %u (%s)\n", tp_size(e->pool), kern_isa_name(e->kc.isa));
        printf("model bytes  %llu (streamed per token: %llu)\n",
               (unsigned long long)m->weight_bytes, (unsigned long long)m->stream_bytes);
        printf("prefill      %.2f tok/s (%u tokens)\n", prefill, n_p);
        printf("decode       %.2f tok/s (%u tokens)\n", decode, n_g);
        printf("decode GB/s  %.2f of %.2f read bandwidth = %.1f%% of the roofline\n", gbs, mem, pct);
    }
    rc = 0;
out:
    free(toks);
    free(logits);
    engine_close(e);
    return rc;
}
