/* cmd_submit.c - `inferctl submit`: generation through a running inferd.
 * The same generation flags and output as `inferctl run`: one prompt
 * streams its text to stdout as it arrives; several prompts (and
 * --parallel samples of each: one request with n = N, sample j seeded with
 * seed + j by the scheduler) run concurrently on one session and print in input order
 * when done. With --json, one JSON line per sequence:
 * {"prompt_tokens":[...],"n_prompt_tokens":N,"tokens":[...],"text":"...",
 *  "top_probs":[[[id,p],...],...],"cached_prompt_tokens":N,"finish_reason":"..."}
 * (prompt_tokens lists the ids when the prompt was given as --tokens; the
 * daemon tokenizes text prompts and reports only their count). */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "client_cli.h"
#include "cmds.h"
#include "engine.h"

static void submit_usage(FILE *fp)
{
    fprintf(fp,
            "usage: inferctl submit [--socket PATH] [--model NAME] [options]\n"
            "  --socket PATH            the daemon's socket (default $INFERD_SOCKET or /run/inferd.sock)\n"
            "  --model NAME             a model the daemon serves (default: its first)\n"
            "  --prompt TEXT            prompt (repeatable; default: empty, from BOS alone)\n"
            "  --tokens ID,ID,...       prompt as token ids instead of text\n"
            "  --parallel N             N samples of each prompt (seeds seed, seed + 1, ...)\n"
            "  --priority P             scheduling priority (lower runs first, as in run)\n"
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
            "  --top-probs K            report the K most probable tokens per step (K <= 100)\n"
            "  --cache-salt TEXT        prefix-cache isolation key\n"
            "  --no-stream              ask for one chunk per request at the end\n"
            "  --cancel-after N         cancel each request after N tokens (testing)\n"
            "  --json                   print a JSON object per sequence as the last lines\n"
            "  --quiet                  no timing line on stderr\n");
}

struct sub_seq {
    uint64_t id;
    int32_t *tokens;
    size_t n_tokens, cap;
    char *text;
    size_t text_len, text_cap;
    double *top; /* n_tokens * top_k pairs (id, p) */
    size_t top_cap;
    enum infer_finish finish;
    uint32_t prompt_tokens, cached;
    bool done, cancel_sent;
    uint64_t first_ns;
};

static int sub_tokens(struct sub_seq *q, const struct infer_event *ev, size_t top_k, bool stream)
{
    size_t top_cap = q->top_cap;
    size_t need = q->n_tokens + ev->n_tokens;
    if (engine_grow((void **)&q->tokens, &q->cap, need, sizeof *q->tokens) ||
        (top_k && engine_grow((void **)&q->top, &top_cap, need, 2 * top_k * sizeof *q->top)))
        return -ENOMEM;
    q->top_cap = top_cap;
    for (size_t i = 0; i < ev->n_tokens; i++) {
        for (size_t k = 0; top_k && k < top_k; k++) {
            double *pair = q->top + ((q->n_tokens + i) * top_k + k) * 2;
            if (ev->top && k < ev->n_top) {
                pair[0] = ev->top[i * ev->n_top + k].token;
                pair[1] = exp((double)ev->top[i * ev->n_top + k].logprob);
            } else {
                pair[0] = -1;
                pair[1] = 0;
            }
        }
        q->tokens[q->n_tokens + i] = ev->tokens[i];
    }
    q->n_tokens += ev->n_tokens;
    if (ev->text_len) {
        if (engine_grow((void **)&q->text, &q->text_cap, q->text_len + ev->text_len + 1, 1))
            return -ENOMEM;
        memcpy(q->text + q->text_len, ev->text, ev->text_len);
        q->text_len += ev->text_len;
        q->text[q->text_len] = 0;
        if (stream) {
            fwrite(ev->text, 1, ev->text_len, stdout);
            fflush(stdout);
        }
    }
    return 0;
}

static json_t *sub_ids_json(const int32_t *ids, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_integer(ids[i]));
    return a;
}

static int sub_print_json(const int32_t *prompt, size_t n_prompt, const struct sub_seq *q,
                          size_t top_k)
{
    json_t *o = json_object();
    json_object_set_new(o, "prompt_tokens", sub_ids_json(prompt, n_prompt));
    json_object_set_new(o, "n_prompt_tokens", json_integer(q->prompt_tokens));
    json_object_set_new(o, "tokens", sub_ids_json(q->tokens, q->n_tokens));
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
            const double *pair = q->top + (i * top_k + k) * 2;
            if (pair[0] < 0)
                continue;
            json_t *p = json_array();
            json_array_append_new(p, json_integer((json_int_t)pair[0]));
            json_array_append_new(p, json_real(pair[1]));
            json_array_append_new(step, p);
        }
        json_array_append_new(tp, step);
    }
    json_object_set_new(o, "top_probs", tp);
    json_object_set_new(o, "cached_prompt_tokens", json_integer(q->cached));
    json_object_set_new(o, "finish_reason", json_string(ccli_finish(q->finish)));
    char *str = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(o);
    if (!str)
        return -ENOMEM;
    printf("%s\n", str);
    free(str);
    return 0;
}

/* The first sequence (sample 0) of the request with this id, among the
 * n_req requests submitted so far (request k owns seqs[k * par ...]). */
static struct sub_seq *sub_find(struct sub_seq *seqs, size_t n_req, size_t par, uint64_t id)
{
    for (size_t k = 0; k < n_req; k++)
        if (seqs[k * par].id == id)
            return &seqs[k * par];
    return NULL;
}

int cmd_submit(int argc, char **argv)
{
    enum {
        O_SOCKET = 256, O_MODEL, O_PROMPT, O_TOKENS, O_MAX, O_TEMP, O_TOPK, O_TOPP, O_MINP, O_RP,
        O_FP, O_PP, O_RLN, O_STOP, O_SEED, O_TOPPROBS, O_JSON, O_QUIET, O_PAR, O_PRIO, O_SALT,
        O_NOSTREAM, O_CANCEL, O_HELP,
    };
    static const struct option opts[] = {
        {"socket", required_argument, 0, O_SOCKET},
        {"model", required_argument, 0, O_MODEL},
        {"prompt", required_argument, 0, O_PROMPT},
        {"tokens", required_argument, 0, O_TOKENS},
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
        {"top-probs", required_argument, 0, O_TOPPROBS},
        {"json", no_argument, 0, O_JSON},
        {"quiet", no_argument, 0, O_QUIET},
        {"parallel", required_argument, 0, O_PAR},
        {"priority", required_argument, 0, O_PRIO},
        {"cache-salt", required_argument, 0, O_SALT},
        {"no-stream", no_argument, 0, O_NOSTREAM},
        {"cancel-after", required_argument, 0, O_CANCEL},
        {"help", no_argument, 0, O_HELP},
        {0, 0, 0, 0},
    };
    struct infer_request req;
    infer_request_init(&req);
    req.sampling.seed = (uint64_t)time(NULL) ^ ((uint64_t)clock() << 32);
    const char *sock = NULL;
    const char **prompts = NULL, **stops = NULL;
    size_t n_prompts = 0, n_stop = 0;
    int32_t *tok_prompt = NULL;
    size_t n_tok_prompt = 0;
    uint32_t parallel = 1, top_k = 0, cancel_after = 0, u;
    bool json = false, quiet = false;
    int c, rc = 2;

    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case O_SOCKET: sock = optarg; break;
        case O_MODEL: req.model = optarg; break;
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
        case O_TOKENS:
            free(tok_prompt);
            tok_prompt = NULL;
            bad = cli_ids(optarg, &tok_prompt, &n_tok_prompt);
            break;
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
            req.sampling.repeat_last_n = (int32_t)u;
            break;
        case O_SEED: bad = cli_u64("--seed", optarg, &req.sampling.seed); break;
        case O_TOPPROBS: bad = cli_u32("--top-probs", optarg, 0, 100, &top_k); break;
        case O_JSON: json = true; break;
        case O_QUIET: quiet = true; break;
        case O_PAR: bad = cli_u32("--parallel", optarg, 1, 1024, &parallel); break;
        case O_PRIO:
            bad = cli_u32("--priority", optarg, 0, 1u << 30, &u);
            req.priority = -(int32_t)u; /* the wire runs higher first */
            break;
        case O_SALT: req.cache_salt = optarg; break;
        case O_NOSTREAM: req.stream = false; break;
        case O_CANCEL: bad = cli_u32("--cancel-after", optarg, 1, 1u << 24, &cancel_after); break;
        case O_HELP:
            submit_usage(stdout);
            rc = 0;
            goto out_args;
        default: bad = 1; break;
        }
        if (bad)
            goto out_args;
    }
    if (optind < argc) {
        fprintf(stderr, "inferctl submit: unexpected argument '%s'\n", argv[optind]);
        submit_usage(stderr);
        goto out_args;
    }
    if (tok_prompt && n_prompts) {
        fprintf(stderr, "inferctl submit: give --prompt or --tokens, not both\n");
        goto out_args;
    }
    static const char *empty_prompt[1] = {""};
    const char **plist = n_prompts ? prompts : empty_prompt;
    size_t np = tok_prompt ? 1 : n_prompts ? n_prompts : 1;
    size_t n_seqs = np * parallel;
    req.logprobs = top_k;
    req.stop = stops;
    req.n_stop = n_stop;

    rc = 1;
    struct infer_client *cl = NULL;
    struct sub_seq *seqs = calloc(n_seqs, sizeof *seqs);
    if (!seqs) {
        fprintf(stderr, "inferctl submit: out of memory\n");
        goto out_args;
    }
    const char *path = ccli_socket(sock);
    if (ccli_connect("submit", path, NULL, &cl))
        goto out;
    bool stream = n_seqs == 1; /* as run: the text streams, --json or not */
    uint64_t base_seed = req.sampling.seed;
    uint64_t t0 = ccli_now_ns();
    /* One request per prompt with n = --parallel; each sample counts as one
     * request against the session's limit. */
    size_t next = 0, running = 0, finished = 0;
    struct infer_limits lim;
    infer_get_limits(cl, &lim);
    size_t window = lim.max_concurrent_requests ? lim.max_concurrent_requests : 1;
    int failed = 0;
    req.n = parallel;
    while (finished < np) {
        while (next < np && (running == 0 || (running + 1) * parallel <= window)) {
            size_t k = next;
            if (tok_prompt) {
                req.prompt = NULL;
                req.prompt_tokens = tok_prompt;
                req.n_prompt_tokens = n_tok_prompt;
            } else {
                req.prompt = plist[k];
                req.prompt_len = strlen(plist[k]);
                if (!req.prompt_len)
                    req.prompt = ""; /* the daemon starts from BOS */
            }
            req.sampling.seed = base_seed; /* sample j: base_seed + j */
            int r = infer_submit(cl, &req, &seqs[next * parallel].id);
            if (r) {
                fprintf(stderr, "inferctl submit: cannot submit: %s\n", strerror(-r));
                goto out;
            }
            next++;
            running++;
        }
        struct infer_event ev;
        int r = infer_next_event(cl, &ev, -1);
        if (r) {
            fprintf(stderr, "inferctl submit: %s\n",
                    r == -ECONNRESET ? "the daemon closed the session" : strerror(-r));
            goto out;
        }
        if (ev.type == INFER_EV_ERROR && ev.request_id == 0) {
            fprintf(stderr, "inferctl submit: daemon: %s: %s\n", infer_error_name(ev.error),
                    ev.message);
            continue;
        }
        struct sub_seq *head = sub_find(seqs, next, parallel, ev.request_id);
        if (!head || head->done)
            continue;
        if (ev.type == INFER_EV_TOKENS) {
            if (ev.sample >= parallel)
                continue; /* not a sample this request has */
            struct sub_seq *q = head + ev.sample;
            if (!q->first_ns)
                q->first_ns = ccli_now_ns();
            if (sub_tokens(q, &ev, top_k, stream)) {
                fprintf(stderr, "inferctl submit: out of memory\n");
                goto out;
            }
            if (cancel_after && q->n_tokens >= cancel_after && !head->cancel_sent) {
                head->cancel_sent = true;
                if ((r = infer_cancel(cl, head->id)))
                    fprintf(stderr, "inferctl submit: cannot cancel: %s\n", strerror(-r));
            }
            continue;
        }
        head->done = true;
        running--;
        finished++;
        if (ev.type == INFER_EV_ERROR) {
            fprintf(stderr, "inferctl submit: request %zu refused: %s: %s\n",
                    (size_t)(head - seqs) / parallel + 1, infer_error_name(ev.error), ev.message);
            failed++;
            continue;
        }
        for (size_t j = 0; j < parallel; j++) {
            struct sub_seq *q = head + j;
            q->finish = j < ev.n_samples ? (enum infer_finish)ev.sample_finish[j] : ev.finish;
            q->prompt_tokens = ev.prompt_tokens;
            q->cached = ev.cached_prompt_tokens;
        }
    }
    uint64_t t1 = ccli_now_ns();
    if (stream && !failed)
        printf("\n");
    size_t n_gen = 0, n_prompt = 0, n_cached = 0;
    double ttft = 0;
    for (size_t i = 0; i < n_seqs; i++) {
        struct sub_seq *q = &seqs[i];
        n_gen += q->n_tokens;
        n_prompt += q->prompt_tokens;
        n_cached += q->cached;
        if (q->first_ns && (ttft == 0 || (double)(q->first_ns - t0) * 1e-6 < ttft))
            ttft = (double)(q->first_ns - t0) * 1e-6;
        if (json) {
            if (sub_print_json(tok_prompt, tok_prompt ? n_tok_prompt : 0, q, top_k)) {
                fprintf(stderr, "inferctl submit: out of memory\n");
                goto out;
            }
        } else if (!stream) {
            printf("--- prompt %zu, sample %zu (%s)\n", i / parallel + 1, i % parallel + 1,
                   ccli_finish(q->finish));
            if (q->text_len)
                fwrite(q->text, 1, q->text_len, stdout);
            printf("\n");
        }
    }
    fflush(stdout);
    if (!quiet)
        fprintf(stderr,
                "inferctl submit: %zu sequence(s), %zu prompt tokens (%zu from the prefix cache), "
                "%zu generated in %.3f s; first token after %.1f ms; seed %llu\n",
                n_seqs, n_prompt, n_cached, n_gen, (double)(t1 - t0) * 1e-9, ttft,
                (unsigned long long)base_seed);
    rc = failed ? 1 : 0;
out:
    infer_close(cl);
    for (size_t i = 0; seqs && i < n_seqs; i++) {
        free(seqs[i].tokens);
        free(seqs[i].text);
        free(seqs[i].top);
    }
    free(seqs);
out_args:
    free(prompts);
    free(stops);
    free(tok_prompt);
    return rc;
}
