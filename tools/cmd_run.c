/* cmd_run.c - `inferctl run`: in-process generation through the scheduler.
 * One prompt streams its text to stdout as it is generated; several prompts
 * (and --parallel samples of each) run concurrently and print their texts in
 * input order when done. With --json, one JSON line per sequence (input
 * order) holds the prompt ids, generated ids, text, the K most probable
 * tokens per step (--top-probs K) and the prompt tokens served from the
 * prefix cache. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_gen.h"
#include "cmds.h"
#include "engine.h"
#include "scheduler.h"

static void run_usage(FILE *fp)
{
    fprintf(fp,
            "usage: inferctl run --model PATH [options]\n"
            "  --prompt TEXT            prompt (repeatable; default: empty, from BOS alone)\n"
            "  --parallel N             N samples of each prompt, sharing its KV blocks\n"
            "  --kv-memory SIZE         KV pool: bytes (K/M/G suffix) or N%% of available memory\n"
            "                           (default: every sequence at full length)\n"
            "  --priority P             scheduling priority (lower runs first)\n");
    cli_gen_usage_sampling(fp);
    fputs("  --threads N              (default: all cores)\n"
          "  --ctx-size N             context length (default: the model's, at most 4096)\n"
          "  --kv-type f32|f16|bf16   KV cache type (default f16)\n"
          "  --top-probs K            report the K most probable tokens per step\n"
          "  --json                   print a JSON object as the last line\n"
          "  --quiet                  no timing line on stderr\n",
          fp);
}

/* What one sequence (prompt k, sample j) produced. */
struct run_seq {
    struct cli_gen_seq g;
    struct smp_prob *top;
    enum gen_finish finish;
};

struct run_state {
    struct run_seq *seqs; /* n_prompts * parallel */
    uint32_t parallel;
    size_t top_k;
    bool stream;
    uint32_t *cached;     /* per prompt */
    uint64_t first_token_ns, last_token_ns;
    size_t n_generated;
    int rc;
    char err[256];
};

static void run_on_event(void *ud, const struct sched_event *ev)
{
    struct run_state *st = ud;
    if (ev->type == SCHED_EV_ERROR) {
        st->rc = ev->error ? ev->error : -EIO;
        return;
    }
    if (ev->type != SCHED_EV_TOKEN) {
        st->cached[ev->user] = ev->cached_prompt_tokens;
        return;
    }
    struct run_seq *q = &st->seqs[ev->user * st->parallel + ev->sample];
    struct cli_gen_seq *g = &q->g;
    if (ev->token >= 0) {
        size_t cap = g->cap;
        if (engine_grow((void **)&g->tokens, &g->cap, g->n_tokens + 1, sizeof *g->tokens) ||
            (st->top_k && engine_grow((void **)&q->top, &cap, g->n_tokens + 1,
                                      st->top_k * sizeof *q->top))) {
            st->rc = -ENOMEM;
            return;
        }
        if (st->top_k)
            memcpy(q->top + g->n_tokens * st->top_k, ev->top, st->top_k * sizeof *q->top);
        g->tokens[g->n_tokens++] = ev->token;
        if (!st->first_token_ns)
            st->first_token_ns = ev->time;
        st->last_token_ns = ev->time;
        st->n_generated++;
    }
    if (cli_gen_add_text(g, ev->text, ev->text_len, st->stream)) {
        st->rc = -ENOMEM;
        return;
    }
    if (ev->sample_done)
        q->finish = ev->finish;
}

static int run_print_json(const int32_t *prompt, size_t n_prompt, const struct run_seq *q,
                          size_t top_k, uint32_t cached)
{
    json_t *tp = json_array();
    for (size_t i = 0; i < q->g.n_tokens && top_k; i++) {
        json_t *step = json_array();
        for (size_t k = 0; k < top_k; k++) {
            const struct smp_prob *p = &q->top[i * top_k + k];
            json_array_append_new(step, cli_gen_prob_pair(p->id, p->p));
        }
        json_array_append_new(tp, step);
    }
    struct cli_gen_json j = {
        .prompt = prompt,
        .n_prompt = n_prompt,
        .seq = &q->g,
        .top_probs = tp,
        .cached = cached,
        .finish = gen_finish_name(q->finish),
    };
    return cli_gen_print_json(&j);
}

int cmd_run(int argc, char **argv)
{
    enum { O_MODEL = CLI_GEN_END, O_THREADS, O_CTX, O_KV, O_KVMEM, O_HELP };
    static const struct option opts[] = {
        {"model", required_argument, 0, O_MODEL},
        CLI_GEN_OPT_PROMPT,
        CLI_GEN_OPTS_SAMPLING,
        {"threads", required_argument, 0, O_THREADS},
        {"ctx-size", required_argument, 0, O_CTX},
        {"kv-type", required_argument, 0, O_KV},
        CLI_GEN_OPT_TOPPROBS,
        CLI_GEN_OPTS_OUTPUT,
        {"kv-memory", required_argument, 0, O_KVMEM},
        CLI_GEN_OPT_PRIORITY,
        {"help", no_argument, 0, O_HELP},
        {0, 0, 0, 0},
    };
    struct engine_params ep;
    engine_params_default(&ep);
    struct cli_gen g;
    cli_gen_init(&g, 1000);
    int c, rc = 2;

    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case O_MODEL: ep.model_path = optarg; break;
        case O_THREADS: bad = cli_u32("--threads", optarg, 1, 1024, &ep.n_threads); break;
        case O_CTX: bad = cli_u32("--ctx-size", optarg, 16, 1u << 20, &ep.n_ctx); break;
        case O_KV: bad = cli_kv_type(optarg, &ep.kv_type); break;
        case O_KVMEM: bad = cli_mem_size("--kv-memory", optarg, &ep.kv_bytes); break;
        case O_HELP:
            run_usage(stdout);
            rc = 0;
            goto out_args;
        default: bad = cli_gen_option(&g, c, optarg); break;
        }
        if (bad)
            goto out_args;
    }
    struct sched_request req = {
        .sampling = g.sampling,
        .max_tokens = g.max_tokens,
        .top_probs = g.top_probs,
        .priority = (int32_t)g.priority,
    };
    uint32_t parallel = g.parallel;
    if (optind < argc || !ep.model_path) {
        if (optind < argc)
            fprintf(stderr, "inferctl run: unexpected argument '%s'\n", argv[optind]);
        else
            fprintf(stderr, "inferctl run: --model is required\n");
        run_usage(stderr);
        goto out_args;
    }
    static const char *empty_prompt[1] = {""};
    const char **plist = g.n_prompts ? g.prompts : empty_prompt;
    size_t np = g.n_prompts ? g.n_prompts : 1;

    char err[512] = "";
    struct engine *e = NULL;
    struct sched *s = NULL;
    int32_t **ids = calloc(np, sizeof *ids);
    size_t *n_ids = calloc(np, sizeof *n_ids);
    struct run_state st = {0};
    st.parallel = parallel;
    st.top_k = req.top_probs;
    st.stream = np == 1 && parallel == 1;
    st.seqs = calloc(np * parallel, sizeof *st.seqs);
    st.cached = calloc(np, sizeof *st.cached);
    rc = 1;
    if (!ids || !n_ids || !st.seqs || !st.cached) {
        fprintf(stderr, "inferctl run: out of memory\n");
        goto out;
    }
    /* Open the model once to tokenize, then size the KV pool for every
     * sequence at full length unless --kv-memory says otherwise. */
    int r = engine_open(&ep, &e, err, sizeof err);
    if (r) {
        fprintf(stderr, "inferctl run: %s: %s\n", ep.model_path, err);
        goto out;
    }
    uint64_t slots = 0;
    for (size_t k = 0; k < np; k++) {
        r = engine_tokenize(e, plist[k], strlen(plist[k]), &ids[k], &n_ids[k]);
        if (r) {
            fprintf(stderr, "inferctl run: cannot tokenize prompt %zu: %s\n", k + 1, strerror(-r));
            goto out;
        }
        if (n_ids[k] == 0) {
            int32_t bos = tok_bos(e->tok);
            if (bos < 0) {
                fprintf(stderr, "inferctl run: empty prompt and the vocabulary has no BOS token\n");
                goto out;
            }
            ids[k][0] = bos;
            n_ids[k] = 1;
        }
        if (n_ids[k] >= e->n_ctx) {
            fprintf(stderr, "inferctl run: prompt %zu has %zu tokens; the context holds %u\n",
                    k + 1, n_ids[k], e->n_ctx);
            goto out;
        }
        uint64_t len = n_ids[k] + req.max_tokens;
        if (len > e->n_ctx)
            len = e->n_ctx;
        slots += (len + KV_BLOCK_TOKENS) * parallel;
    }
    if (!ep.kv_bytes && slots > (uint64_t)e->kv.n_blocks * KV_BLOCK_TOKENS) {
        const struct model_hparams *hp = &e->model->hp;
        ep.kv_bytes = (slots / KV_BLOCK_TOKENS + 1) *
                      kv_block_bytes_total(ep.kv_type, hp->n_layer, hp->n_head_kv * hp->head_dim);
        engine_close(e);
        e = NULL;
        if ((r = engine_open(&ep, &e, err, sizeof err))) {
            fprintf(stderr, "inferctl run: %s: %s\n", ep.model_path, err);
            goto out;
        }
    }
    struct sched_params sp;
    sched_params_default(&sp);
    if ((r = sched_create(e, &sp, run_on_event, &st, &s))) {
        fprintf(stderr, "inferctl run: cannot start the scheduler: %s\n", strerror(-r));
        goto out;
    }
    req.stop = g.stops;
    req.n_stop = g.n_stop;
    req.n = parallel;
    for (size_t k = 0; k < np; k++) {
        req.prompt = ids[k];
        req.n_prompt = n_ids[k];
        req.user = k;
        uint32_t max = req.max_tokens;
        if (req.max_tokens > e->n_ctx - n_ids[k])
            req.max_tokens = e->n_ctx - (uint32_t)n_ids[k];
        r = sched_submit(s, &req, NULL, err, sizeof err);
        req.max_tokens = max;
        if (r) {
            fprintf(stderr, "inferctl run: prompt %zu refused: %s\n", k + 1, err);
            goto out;
        }
    }
    uint64_t t0 = sched_now_ns();
    while (sched_has_work(s) && st.rc == 0) {
        r = sched_step(s);
        if (r < 0) {
            st.rc = r;
            break;
        }
    }
    uint64_t t1 = sched_now_ns();
    if (st.rc) {
        fprintf(stderr, "inferctl run: generation failed: %s\n", strerror(-st.rc));
        goto out;
    }
    if (st.stream)
        printf("\n");
    for (size_t k = 0; k < np; k++)
        for (uint32_t j = 0; j < parallel; j++) {
            struct run_seq *q = &st.seqs[k * parallel + j];
            if (g.json) {
                if (run_print_json(ids[k], n_ids[k], q, st.top_k, st.cached[k])) {
                    fprintf(stderr, "inferctl run: out of memory\n");
                    goto out;
                }
            } else if (!st.stream) {
                cli_gen_print_text(k + 1, j + 1, gen_finish_name(q->finish), &q->g);
            }
        }
    fflush(stdout);
    if (!g.quiet) {
        struct sched_stats ss;
        sched_get_stats(s, &ss);
        double wall = (double)(t1 - t0) * 1e-9;
        double dec = (double)(st.last_token_ns - st.first_token_ns) * 1e-9;
        fprintf(stderr,
                "inferctl run: %zu sequence(s), %llu prompt tokens (%llu from the prefix cache), "
                "%zu generated in %.3f s; decode %.1f tok/s; %llu steps, %llu preemptions; seed "
                "%llu\n",
                np * parallel, (unsigned long long)ss.prompt_tokens,
                (unsigned long long)ss.cached_prompt_tokens, st.n_generated, wall,
                dec > 0 && st.n_generated > 1 ? (double)(st.n_generated - 1) / dec : 0.0,
                (unsigned long long)ss.steps, (unsigned long long)ss.preemptions,
                (unsigned long long)req.sampling.seed);
    }
    rc = 0;
out:
    sched_free(s);
    for (size_t k = 0; ids && k < np; k++)
        free(ids[k]);
    for (size_t k = 0; st.seqs && k < np * parallel; k++) {
        cli_gen_seq_free(&st.seqs[k].g);
        free(st.seqs[k].top);
    }
    free(st.seqs);
    free(st.cached);
    free(ids);
    free(n_ids);
    engine_close(e);
out_args:
    cli_gen_free(&g);
    return rc;
}
