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
#include <time.h>

#include "cli.h"
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
            "  --priority P             scheduling priority (lower runs first)\n"
            "  --max-tokens N           tokens to generate (default 256)\n"
            "  --temperature T          0 = greedy (default 0.8)\n"
            "  --top-k K                (default 40; 0 = off)\n"
            "  --top-p P                (default 0.95; 1 = off)\n"
            "  --min-p P                (default 0.05; 0 = off)\n"
            "  --repeat-penalty R       (default 1 = off)\n"
            "  --frequency-penalty F    (default 0)\n"
            "  --presence-penalty F     (default 0)\n"
            "  --repeat-last-n N        penalty window (default 64)\n"
            "  --stop TEXT              stop string (repeatable)\n"
            "  --seed S                 sampling seed (default: random, printed on stderr)\n"
            "  --threads N              (default: all cores)\n"
            "  --ctx-size N             context length (default: the model's, at most 4096)\n"
            "  --kv-type f32|f16|bf16   KV cache type (default f16)\n"
            "  --top-probs K            report the K most probable tokens per step\n"
            "  --json                   print a JSON object as the last line\n"
            "  --quiet                  no timing line on stderr\n");
}

/* What one sequence (prompt k, sample j) produced. */
struct run_seq {
    int32_t *tokens;
    size_t n_tokens, cap;
    char *text;
    size_t text_len, text_cap;
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
    if (ev->token >= 0) {
        size_t cap = q->cap;
        if (engine_grow((void **)&q->tokens, &q->cap, q->n_tokens + 1, sizeof *q->tokens) ||
            (st->top_k && engine_grow((void **)&q->top, &cap, q->n_tokens + 1,
                                      st->top_k * sizeof *q->top))) {
            st->rc = -ENOMEM;
            return;
        }
        if (st->top_k)
            memcpy(q->top + q->n_tokens * st->top_k, ev->top, st->top_k * sizeof *q->top);
        q->tokens[q->n_tokens++] = ev->token;
        if (!st->first_token_ns)
            st->first_token_ns = ev->time;
        st->last_token_ns = ev->time;
        st->n_generated++;
    }
    if (ev->text_len) {
        if (engine_grow((void **)&q->text, &q->text_cap, q->text_len + ev->text_len + 1, 1)) {
            st->rc = -ENOMEM;
            return;
        }
        memcpy(q->text + q->text_len, ev->text, ev->text_len);
        q->text_len += ev->text_len;
        q->text[q->text_len] = 0;
        if (st->stream) {
            fwrite(ev->text, 1, ev->text_len, stdout);
            fflush(stdout);
        }
    }
    if (ev->sample_done)
        q->finish = ev->finish;
}

static json_t *run_ids_json(const int32_t *ids, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_integer(ids[i]));
    return a;
}

static int run_print_json(const int32_t *prompt, size_t n_prompt, const struct run_seq *q,
                          size_t top_k, uint32_t cached)
{
    json_t *o = json_object();
    json_object_set_new(o, "prompt_tokens", run_ids_json(prompt, n_prompt));
    json_object_set_new(o, "tokens", run_ids_json(q->tokens, q->n_tokens));
    char *text = cli_utf8_sanitize(q->text ? q->text : "", q->text_len);
    if (!text) {
        json_decref(o);
        return -ENOMEM;
    }
    json_object_set_new(o, "text", json_string(text));
    free(text);
    json_t *tp = json_array();
    for (size_t i = 0; i < q->n_tokens && top_k; i++) {
        json_t *step = json_array();
        for (size_t k = 0; k < top_k; k++) {
            const struct smp_prob *p = &q->top[i * top_k + k];
            json_t *pair = json_array();
            json_array_append_new(pair, json_integer(p->id));
            json_array_append_new(pair, json_real(p->p));
            json_array_append_new(step, pair);
        }
        json_array_append_new(tp, step);
    }
    json_object_set_new(o, "top_probs", tp);
    json_object_set_new(o, "cached_prompt_tokens", json_integer(cached));
    json_object_set_new(o, "finish_reason", json_string(gen_finish_name(q->finish)));
    char *str = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(o);
    if (!str)
        return -ENOMEM;
    printf("%s\n", str);
    free(str);
    return 0;
}

int cmd_run(int argc, char **argv)
{
    enum {
        O_MODEL = 256, O_PROMPT, O_MAX, O_TEMP, O_TOPK, O_TOPP, O_MINP, O_RP, O_FP, O_PP, O_RLN,
        O_STOP, O_SEED, O_THREADS, O_CTX, O_KV, O_TOPPROBS, O_JSON, O_QUIET, O_PAR, O_KVMEM,
        O_PRIO, O_HELP,
    };
    static const struct option opts[] = {
        {"model", required_argument, 0, O_MODEL},
        {"prompt", required_argument, 0, O_PROMPT},
        {"max-tokens", required_argument, 0, O_MAX},
        {"temperature", required_argument, 0, O_TEMP},
        {"top-k", required_argument, 0, O_TOPK},
        {"top-p", required_argument, 0, O_TOPP},
        {"min-p", required_argument, 0, O_MINP},
        {"repeat-penalty", required_argument, 0, O_RP},
        {"frequency-penalty", required_argument, 0, O_FP},
        {"presence-penalty", required_argument, 0, O_PP},
        {"repeat-last-n", required_argument, 0, O_RLN},
        {"stop", required_argument, 0, O_STOP},
        {"seed", required_argument, 0, O_SEED},
        {"threads", required_argument, 0, O_THREADS},
        {"ctx-size", required_argument, 0, O_CTX},
        {"kv-type", required_argument, 0, O_KV},
        {"top-probs", required_argument, 0, O_TOPPROBS},
        {"json", no_argument, 0, O_JSON},
        {"quiet", no_argument, 0, O_QUIET},
        {"parallel", required_argument, 0, O_PAR},
        {"kv-memory", required_argument, 0, O_KVMEM},
        {"priority", required_argument, 0, O_PRIO},
        {"help", no_argument, 0, O_HELP},
        {0, 0, 0, 0},
    };
    struct engine_params ep;
    engine_params_default(&ep);
    struct sched_request req = {0};
    smp_params_default(&req.sampling);
    req.sampling.seed = (uint64_t)time(NULL) ^ ((uint64_t)clock() << 32);
    req.max_tokens = 256;
    const char **prompts = NULL, **stops = NULL;
    size_t n_prompts = 0, n_stop = 0;
    uint32_t parallel = 1, u;
    bool json = false, quiet = false;
    int c, rc = 2;

    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case O_MODEL: ep.model_path = optarg; break;
        case O_PROMPT:
        case O_STOP: {
            const char ***list = c == O_PROMPT ? &prompts : &stops;
            size_t *n = c == O_PROMPT ? &n_prompts : &n_stop;
            const char **nl = realloc(*list, (*n + 1) * sizeof *nl);
            if (!nl) {
                bad = 1;
                break;
            }
            *list = nl;
            nl[(*n)++] = optarg;
            break;
        }
        case O_MAX: bad = cli_u32("--max-tokens", optarg, 0, 1u << 24, &req.max_tokens); break;
        case O_TEMP: bad = cli_f32("--temperature", optarg, 0, 100, &req.sampling.temperature); break;
        case O_TOPK:
            bad = cli_u32("--top-k", optarg, 0, 1u << 24, &u);
            req.sampling.top_k = (int32_t)u;
            break;
        case O_TOPP: bad = cli_f32("--top-p", optarg, 0, 1, &req.sampling.top_p); break;
        case O_MINP: bad = cli_f32("--min-p", optarg, 0, 1, &req.sampling.min_p); break;
        case O_RP: bad = cli_f32("--repeat-penalty", optarg, 0, 100, &req.sampling.repeat_penalty); break;
        case O_FP: bad = cli_f32("--frequency-penalty", optarg, -100, 100, &req.sampling.frequency_penalty); break;
        case O_PP: bad = cli_f32("--presence-penalty", optarg, -100, 100, &req.sampling.presence_penalty); break;
        case O_RLN:
            bad = cli_u32("--repeat-last-n", optarg, 0, 1u << 24, &u);
            req.sampling.penalty_last_n = (int32_t)u;
            break;
        case O_SEED: bad = cli_u64("--seed", optarg, &req.sampling.seed); break;
        case O_THREADS: bad = cli_u32("--threads", optarg, 1, 1024, &ep.n_threads); break;
        case O_CTX: bad = cli_u32("--ctx-size", optarg, 16, 1u << 20, &ep.n_ctx); break;
        case O_KV: bad = cli_kv_type(optarg, &ep.kv_type); break;
        case O_TOPPROBS: bad = cli_u32("--top-probs", optarg, 0, 1000, &req.top_probs); break;
        case O_JSON: json = true; break;
        case O_QUIET: quiet = true; break;
        case O_PAR: bad = cli_u32("--parallel", optarg, 1, 1024, &parallel); break;
        case O_KVMEM: bad = cli_mem_size("--kv-memory", optarg, &ep.kv_bytes); break;
        case O_PRIO:
            bad = cli_u32("--priority", optarg, 0, 1u << 30, &u);
            req.priority = (int32_t)u;
            break;
        case O_HELP:
            run_usage(stdout);
            rc = 0;
            goto out_args;
        default: bad = 1; break;
        }
        if (bad)
            goto out_args;
    }
    if (optind < argc || !ep.model_path) {
        if (optind < argc)
            fprintf(stderr, "inferctl run: unexpected argument '%s'\n", argv[optind]);
        else
            fprintf(stderr, "inferctl run: --model is required\n");
        run_usage(stderr);
        goto out_args;
    }
    static const char *empty_prompt[1] = {""};
    if (!n_prompts) {
        free(prompts);
        prompts = NULL;
    }
    const char **plist = n_prompts ? prompts : empty_prompt;
    size_t np = n_prompts ? n_prompts : 1;

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
    req.stop = stops;
    req.n_stop = n_stop;
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
            if (json) {
                if (run_print_json(ids[k], n_ids[k], q, st.top_k, st.cached[k])) {
                    fprintf(stderr, "inferctl run: out of memory\n");
                    goto out;
                }
            } else if (!st.stream) {
                printf("--- prompt %zu, sample %u (%s)\n", k + 1, j + 1, gen_finish_name(q->finish));
                if (q->text_len)
                    fwrite(q->text, 1, q->text_len, stdout);
                printf("\n");
            }
        }
    fflush(stdout);
    if (!quiet) {
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
        free(st.seqs[k].tokens);
        free(st.seqs[k].text);
        free(st.seqs[k].top);
    }
    free(st.seqs);
    free(st.cached);
    free(ids);
    free(n_ids);
    engine_close(e);
out_args:
    free(prompts);
    free(stops);
    return rc;
}
