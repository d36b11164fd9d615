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

#include "cli.h"
#include "cli_gen.h"
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
            "  --priority P             scheduling priority (lower runs first, as in run)\n");
    cli_gen_usage_sampling(fp);
    fputs("  --top-probs K            report the K most probable tokens per step (K <= 100)\n"
          "  --cache-salt TEXT        prefix-cache isolation key\n"
          "  --no-stream              ask for one chunk per request at the end\n"
          "  --cancel-after N         cancel each request after N tokens (testing)\n"
          "  --json                   print a JSON object per sequence as the last lines\n"
          "  --quiet                  no timing line on stderr\n",
          fp);
}

struct sub_seq {
    uint64_t id;
    struct cli_gen_seq g;
    double *top; /* n_tokens * top_k pairs (id, p) */
    size_t top_cap;
    enum infer_finish finish;
    uint32_t prompt_tokens, cached;
    bool done, cancel_sent;
    uint64_t first_ns;
};

static int sub_tokens(struct sub_seq *q, const struct infer_event *ev, size_t top_k, bool stream)
{
    struct cli_gen_seq *g = &q->g;
    size_t top_cap = q->top_cap;
    size_t need = g->n_tokens + ev->n_tokens;
    if (engine_grow((void **)&g->tokens, &g->cap, need, sizeof *g->tokens) ||
        (top_k && engine_grow((void **)&q->top, &top_cap, need, 2 * top_k * sizeof *q->top)))
        return -ENOMEM;
    q->top_cap = top_cap;
    for (size_t i = 0; i < ev->n_tokens; i++) {
        for (size_t k = 0; top_k && k < top_k; k++) {
            double *pair = q->top + ((g->n_tokens + i) * top_k + k) * 2;
            if (ev->top && k < ev->n_top) {
                pair[0] = ev->top[i * ev->n_top + k].token;
                pair[1] = exp((double)ev->top[i * ev->n_top + k].logprob);
            } else {
                pair[0] = -1;
                pair[1] = 0;
            }
        }
        g->tokens[g->n_tokens + i] = ev->tokens[i];
    }
    g->n_tokens += ev->n_tokens;
    return cli_gen_add_text(g, ev->text, ev->text_len, stream);
}

static int sub_print_json(const int32_t *prompt, size_t n_prompt, const struct sub_seq *q,
                          size_t top_k)
{
    json_t *tp = json_array();
    for (size_t i = 0; i < q->g.n_tokens && top_k; i++) {
        json_t *step = json_array();
        for (size_t k = 0; k < top_k; k++) {
            const double *pair = q->top + (i * top_k + k) * 2;
            if (pair[0] >= 0)
                json_array_append_new(step, cli_gen_prob_pair((json_int_t)pair[0], pair[1]));
        }
        json_array_append_new(tp, step);
    }
    struct cli_gen_json j = {
        .prompt = prompt,
        .n_prompt = n_prompt,
        .n_prompt_tokens = &q->prompt_tokens,
        .seq = &q->g,
        .top_probs = tp,
        .cached = q->cached,
        .finish = ccli_finish(q->finish),
    };
    return cli_gen_print_json(&j);
}

/* The client's sampling fields are the engine's under the same names but
 * for repeat_last_n. */
static void sub_sampling(const struct smp_params *p, struct infer_sampling *out)
{
    *out = (struct infer_sampling){
        .temperature = p->temperature,
        .top_k = p->top_k,
        .top_p = p->top_p,
        .min_p = p->min_p,
        .repeat_penalty = p->repeat_penalty,
        .frequency_penalty = p->frequency_penalty,
        .presence_penalty = p->presence_penalty,
        .repeat_last_n = p->penalty_last_n,
        .seed = p->seed,
    };
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
    enum { O_SOCKET = CLI_GEN_END, O_MODEL, O_TOKENS, O_SALT, O_NOSTREAM, O_CANCEL, O_HELP };
    static const struct option opts[] = {
        {"socket", required_argument, 0, O_SOCKET},
        {"model", required_argument, 0, O_MODEL},
        CLI_GEN_OPT_PROMPT,
        {"tokens", required_argument, 0, O_TOKENS},
        CLI_GEN_OPTS_SAMPLING,
        CLI_GEN_OPT_TOPPROBS,
        CLI_GEN_OPTS_OUTPUT,
        CLI_GEN_OPT_PRIORITY,
        {"cache-salt", required_argument, 0, O_SALT},
        {"no-stream", no_argument, 0, O_NOSTREAM},
        {"cancel-after", required_argument, 0, O_CANCEL},
        {"help", no_argument, 0, O_HELP},
        {0, 0, 0, 0},
    };
    struct infer_request req;
    infer_request_init(&req);
    struct cli_gen g;
    cli_gen_init(&g, 100);
    const char *sock = NULL;
    int32_t *tok_prompt = NULL;
    size_t n_tok_prompt = 0;
    uint32_t cancel_after = 0;
    int c, rc = 2;

    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case O_SOCKET: sock = optarg; break;
        case O_MODEL: req.model = optarg; break;
        case O_TOKENS:
            free(tok_prompt);
            tok_prompt = NULL;
            bad = cli_ids(optarg, &tok_prompt, &n_tok_prompt);
            break;
        case O_SALT: req.cache_salt = optarg; break;
        case O_NOSTREAM: req.stream = false; break;
        case O_CANCEL: bad = cli_u32("--cancel-after", optarg, 1, 1u << 24, &cancel_after); break;
        case O_HELP:
            submit_usage(stdout);
            rc = 0;
            goto out_args;
        default: bad = cli_gen_option(&g, c, optarg); break;
        }
        if (bad)
            goto out_args;
    }
    sub_sampling(&g.sampling, &req.sampling);
    req.max_tokens = g.max_tokens;
    req.priority = -(int32_t)g.priority; /* the wire runs higher first */
    uint32_t parallel = g.parallel, top_k = g.top_probs;
    if (optind < argc) {
        fprintf(stderr, "inferctl submit: unexpected argument '%s'\n", argv[optind]);
        submit_usage(stderr);
        goto out_args;
    }
    if (tok_prompt && g.n_prompts) {
        fprintf(stderr, "inferctl submit: give --prompt or --tokens, not both\n");
        goto out_args;
    }
    static const char *empty_prompt[1] = {""};
    const char **plist = g.n_prompts ? g.prompts : empty_prompt;
    size_t np = tok_prompt ? 1 : g.n_prompts ? g.n_prompts : 1;
    size_t n_seqs = np * parallel;
    req.logprobs = top_k;
    req.stop = g.stops;
    req.n_stop = g.n_stop;

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
            if (cancel_after && q->g.n_tokens >= cancel_after && !head->cancel_sent) {
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
        n_gen += q->g.n_tokens;
        n_prompt += q->prompt_tokens;
        n_cached += q->cached;
        if (q->first_ns && (ttft == 0 || (double)(q->first_ns - t0) * 1e-6 < ttft))
            ttft = (double)(q->first_ns - t0) * 1e-6;
        if (g.json) {
            if (sub_print_json(tok_prompt, tok_prompt ? n_tok_prompt : 0, q, top_k)) {
                fprintf(stderr, "inferctl submit: out of memory\n");
                goto out;
            }
        } else if (!stream) {
            cli_gen_print_text(i / parallel + 1, i % parallel + 1, ccli_finish(q->finish), &q->g);
        }
    }
    fflush(stdout);
    if (!g.quiet)
        fprintf(stderr,
                "inferctl submit: %zu sequence(s), %zu prompt tokens (%zu from the prefix cache), "
                "%zu generated in %.3f s; first token after %.1f ms; seed %llu\n",
                n_seqs, n_prompt, n_cached, n_gen, (double)(t1 - t0) * 1e-9, ttft,
                (unsigned long long)base_seed);
    rc = failed ? 1 : 0;
out:
    infer_close(cl);
    for (size_t i = 0; seqs && i < n_seqs; i++) {
        cli_gen_seq_free(&seqs[i].g);
        free(seqs[i].top);
    }
    free(seqs);
out_args:
    cli_gen_free(&g);
    free(tok_prompt);
    return rc;
}
