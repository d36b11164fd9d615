/* cli_gen.c - see cli_gen.h. */
#include "cli_gen.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "engine.h"

void cli_gen_init(struct cli_gen *g, uint32_t top_probs_max)
{
    memset(g, 0, sizeof *g);
    smp_params_default(&g->sampling);
    g->sampling.seed = (uint64_t)time(NULL) ^ ((uint64_t)clock() << 32);
    g->max_tokens = 256;
    g->top_probs_max = top_probs_max;
    g->parallel = 1;
}

static int cli_gen_append(const char ***list, size_t *n, const char *arg)
{
    const char **nl = realloc(*list, (*n + 1) * sizeof *nl);
    if (!nl)
        return -1;
    *list = nl;
    nl[(*n)++] = arg;
    return 0;
}

/* An int32_t flag given as an integer in [0, hi]. */
static int cli_gen_i32(const char *flag, const char *arg, uint32_t hi, int32_t *out)
{
    uint32_t u;
    if (cli_u32(flag, arg, 0, hi, &u))
        return -1;
    *out = (int32_t)u;
    return 0;
}

int cli_gen_option(struct cli_gen *g, int c, const char *arg)
{
    struct smp_params *sp = &g->sampling;
    switch (c) {
    case CLI_GEN_PROMPT: return cli_gen_append(&g->prompts, &g->n_prompts, arg);
    case CLI_GEN_STOP: return cli_gen_append(&g->stops, &g->n_stop, arg);
    case CLI_GEN_MAX: return cli_u32("--max-tokens", arg, 0, 1u << 24, &g->max_tokens);
    case CLI_GEN_TEMP: return cli_f32("--temperature", arg, 0, 100, &sp->temperature);
    case CLI_GEN_TOPK: return cli_gen_i32("--top-k", arg, 1u << 24, &sp->top_k);
    case CLI_GEN_TOPP: return cli_f32("--top-p", arg, 0, 1, &sp->top_p);
    case CLI_GEN_MINP: return cli_f32("--min-p", arg, 0, 1, &sp->min_p);
    case CLI_GEN_RP: return cli_f32("--repeat-penalty", arg, 0, 100, &sp->repeat_penalty);
    case CLI_GEN_FP:
        return cli_f32("--frequency-penalty", arg, -100, 100, &sp->frequency_penalty);
    case CLI_GEN_PP: return cli_f32("--presence-penalty", arg, -100, 100, &sp->presence_penalty);
    case CLI_GEN_RLN: return cli_gen_i32("--repeat-last-n", arg, 1u << 24, &sp->penalty_last_n);
    case CLI_GEN_SEED: return cli_u64("--seed", arg, &sp->seed);
    case CLI_GEN_TOPPROBS:
        return cli_u32("--top-probs", arg, 0, g->top_probs_max, &g->top_probs);
    case CLI_GEN_JSON: g->json = true; return 0;
    case CLI_GEN_QUIET: g->quiet = true; return 0;
    case CLI_GEN_PAR: return cli_u32("--parallel", arg, 1, 1024, &g->parallel);
    case CLI_GEN_PRIO: return cli_u32("--priority", arg, 0, 1u << 30, &g->priority);
    default: return -1;
    }
}

void cli_gen_free(struct cli_gen *g)
{
    free(g->prompts);
    free(g->stops);
    g->prompts = g->stops = NULL;
    g->n_prompts = g->n_stop = 0;
}

void cli_gen_usage_sampling(FILE *fp)
{
    fputs("  --max-tokens N           tokens to generate (default 256)\n"
          "  --temperature T          0 = greedy (default 0.8)\n"
          "  --top-k K                (default 40; 0 = off)\n"
          "  --top-p P                (default 0.95; 1 = off)\n"
          "  --min-p P                (default 0.05; 0 = off)\n"
          "  --repeat-penalty R       (default 1 = off)\n"
          "  --frequency-penalty F    (default 0)\n"
          "  --presence-penalty F     (default 0)\n"
          "  --repeat-last-n N        penalty window (default 64)\n"
          "  --stop TEXT              stop string (repeatable)\n"
          "  --seed S                 sampling seed (default: random, printed on stderr)\n",
          fp);
}

int cli_gen_add_text(struct cli_gen_seq *q, const char *text, size_t len, bool stream)
{
    if (!len)
        return 0;
    if (engine_grow((void **)&q->text, &q->text_cap, q->text_len + len + 1, 1))
        return -ENOMEM;
    memcpy(q->text + q->text_len, text, len);
    q->text_len += len;
    q->text[q->text_len] = 0;
    if (stream) {
        fwrite(text, 1, len, stdout);
        fflush(stdout);
    }
    return 0;
}

void cli_gen_seq_free(struct cli_gen_seq *q)
{
    free(q->tokens);
    free(q->text);
}

void cli_gen_print_text(size_t prompt, size_t sample, const char *finish,
                        const struct cli_gen_seq *q)
{
    printf("--- prompt %zu, sample %zu (%s)\n", prompt, sample, finish);
    if (q->text_len)
        fwrite(q->text, 1, q->text_len, stdout);
    printf("\n");
}

static json_t *cli_gen_ids(const int32_t *ids, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_integer(ids[i]));
    return a;
}

json_t *cli_gen_prob_pair(json_int_t id, double p)
{
    json_t *pair = json_array();
    json_array_append_new(pair, json_integer(id));
    json_array_append_new(pair, json_real(p));
    return pair;
}

int cli_gen_print_json(const struct cli_gen_json *j)
{
    const struct cli_gen_seq *q = j->seq;
    json_t *o = json_object();
    json_object_set_new(o, "prompt_tokens", cli_gen_ids(j->prompt, j->n_prompt));
    if (j->n_prompt_tokens)
        json_object_set_new(o, "n_prompt_tokens", json_integer(*j->n_prompt_tokens));
    json_object_set_new(o, "tokens", cli_gen_ids(q->tokens, q->n_tokens));
    char *text = cli_utf8_sanitize(q->text ? q->text : "", q->text_len);
    if (!text) {
        json_decref(j->top_probs);
        json_decref(o);
        return -ENOMEM;
    }
    json_object_set_new(o, "text", json_string(text));
    free(text);
    json_object_set_new(o, "top_probs", j->top_probs);
    json_object_set_new(o, "cached_prompt_tokens", json_integer(j->cached));
    json_object_set_new(o, "finish_reason", json_string(j->finish));
    return cli_print_json(o, JSON_COMPACT | JSON_REAL_PRECISION(9));
}
