/* cmd_run.c - `inferctl run`: in-process generation, streaming text to
 * stdout; with --json a final line holds the prompt ids, generated ids,
 * text and (with --top-probs K) the K most probable tokens per step. */
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

static void run_usage(FILE *fp)
{
    fprintf(fp,
            "usage: inferctl run --model PATH [options]\n"
            "  --prompt TEXT            prompt (default: empty, generation starts from BOS)\n"
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

static void run_on_text(void *ud, const char *text, size_t len)
{
    (void)ud;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
}

static json_t *run_ids_json(const int32_t *ids, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_integer(ids[i]));
    return a;
}

static int run_print_json(const int32_t *prompt, size_t n_prompt, const struct gen_result *res)
{
    json_t *o = json_object();
    json_object_set_new(o, "prompt_tokens", run_ids_json(prompt, n_prompt));
    json_object_set_new(o, "tokens", run_ids_json(res->tokens, res->n_tokens));
    char *text = cli_utf8_sanitize(res->text, res->text_len);
    if (!text) {
        json_decref(o);
        return -ENOMEM;
    }
    json_object_set_new(o, "text", json_string(text));
    free(text);
    json_t *tp = json_array();
    for (size_t i = 0; i < res->n_tokens && res->top_probs; i++) {
        json_t *step = json_array();
        for (size_t k = 0; k < res->top_probs; k++) {
            const struct smp_prob *p = &res->top[i * res->top_probs + k];
            json_t *pair = json_array();
            json_array_append_new(pair, json_integer(p->id));
            json_array_append_new(pair, json_real(p->p));
            json_array_append_new(step, pair);
        }
        json_array_append_new(tp, step);
    }
    json_object_set_new(o, "top_probs", tp);
    json_object_set_new(o, "finish_reason", json_string(gen_finish_name(res->finish)));
    char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(o);
    if (!s)
        return -ENOMEM;
    printf("%s\n", s);
    free(s);
    return 0;
}

int cmd_run(int argc, char **argv)
{
    enum {
        O_MODEL = 256, O_PROMPT, O_MAX, O_TEMP, O_TOPK, O_TOPP, O_MINP, O_RP, O_FP, O_PP, O_RLN,
        O_STOP, O_SEED, O_THREADS, O_CTX, O_KV, O_TOPPROBS, O_JSON, O_QUIET, O_HELP,
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
        {"help", no_argument, 0, O_HELP},
        {0, 0, 0, 0},
    };
    struct engine_params ep;
    engine_params_default(&ep);
    struct gen_request req = {0};
    smp_params_default(&req.sampling);
    req.sampling.seed = (uint64_t)time(NULL) ^ ((uint64_t)clock() << 32);
    req.max_tokens = 256;
    const char *prompt = "";
    const char **stops = NULL;
    size_t n_stop = 0;
    bool json = false, quiet = false;
    uint32_t u;
    int c, rc = 2;

    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case O_MODEL: ep.model_path = optarg; break;
        case O_PROMPT: prompt = optarg; break;
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
        case O_STOP: {
            const char **ns = realloc(stops, (n_stop + 1) * sizeof *ns);
            if (!ns) {
                bad = 1;
                break;
            }
            stops = ns;
            stops[n_stop++] = optarg;
            break;
        }
        case O_SEED: bad = cli_u64("--seed", optarg, &req.sampling.seed); break;
        case O_THREADS: bad = cli_u32("--threads", optarg, 1, 1024, &ep.n_threads); break;
        case O_CTX: bad = cli_u32("--ctx-size", optarg, 16, 1u << 20, &ep.n_ctx); break;
        case O_KV: bad = cli_kv_type(optarg, &ep.kv_type); break;
        case O_TOPPROBS:
            bad = cli_u32("--top-probs", optarg, 0, 1000, &u);
            req.top_probs = u;
            break;
        case O_JSON: json = true; break;
        case O_QUIET: quiet = true; break;
        case O_HELP:
            run_usage(stdout);
            free(stops);
            return 0;
        default: bad = 1; break;
        }
        if (bad) {
            free(stops);
            return 2;
        }
    }
    if (optind < argc || !ep.model_path) {
        if (optind < argc)
            fprintf(stderr, "inferctl run: unexpected argument '%s'\n", argv[optind]);
        else
            fprintf(stderr, "inferctl run: --model is required\n");
        run_usage(stderr);
        free(stops);
        return 2;
    }

    char err[512] = "";
    struct engine *e = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    struct gen_result res = {0};
    rc = 1;
    int r = engine_open(&ep, &e, err, sizeof err);
    if (r) {
        fprintf(stderr, "inferctl run: %s: %s\n", ep.model_path, err);
        goto out;
    }
    r = engine_tokenize(e, prompt, strlen(prompt), &ids, &n_ids);
    if (r) {
        fprintf(stderr, "inferctl run: cannot tokenize the prompt: %s\n", strerror(-r));
        goto out;
    }
    if (n_ids == 0) {
        /* The vocab adds no BOS: start from BOS anyway, or refuse. */
        int32_t bos = tok_bos(e->tok);
        if (bos < 0) {
            fprintf(stderr, "inferctl run: empty prompt and the vocabulary has no BOS token\n");
            goto out;
        }
        ids[0] = bos;
        n_ids = 1;
    }
    if (n_ids >= e->n_ctx) {
        fprintf(stderr, "inferctl run: the prompt has %zu tokens; the context holds %u\n", n_ids,
                e->n_ctx);
        goto out;
    }
    req.prompt = ids;
    req.n_prompt = n_ids;
    req.stop = stops;
    req.n_stop = n_stop;
    struct gen_callbacks cb = {run_on_text, NULL};
    r = engine_generate(e, &req, &cb, &res);
    if (r) {
        fprintf(stderr, "inferctl run: generation failed: %s\n", strerror(-r));
        goto out;
    }
    if (json) {
        printf("\n");
        if (run_print_json(ids, n_ids, &res))
            goto out;
    } else {
        printf("\n");
    }
    fflush(stdout);
    if (!quiet)
        fprintf(stderr,
                "inferctl run: %zu prompt tokens in %.3f s (%.1f tok/s), %zu generated in %.3f s "
                "(%.1f tok/s), finish: %s, seed %llu\n",
                n_ids, res.prefill_s, res.prefill_s > 0 ? (double)n_ids / res.prefill_s : 0.0,
                res.n_tokens, res.decode_s,
                res.decode_s > 0 && res.n_tokens > 1 ? (double)(res.n_tokens - 1) / res.decode_s : 0.0,
                gen_finish_name(res.finish), (unsigned long long)req.sampling.seed);
    rc = 0;
out:
    gen_result_free(&res);
    free(ids);
    free(stops);
    engine_close(e);
    return rc;
}
