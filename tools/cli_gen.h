/* cli_gen.h - what `inferctl run` and `inferctl submit` share: the
 * generation flags (parsing and usage text), the text and tokens collected
 * per sequence, and its output (plain text or one JSON line). */
#ifndef INFERD_CLI_GEN_H
#define INFERD_CLI_GEN_H

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sampler.h"

/* getopt_long values of the shared flags; a command numbers its own from
 * CLI_GEN_END. */
enum {
    CLI_GEN_PROMPT = 256,
    CLI_GEN_MAX,
    CLI_GEN_TEMP,
    CLI_GEN_TOPK,
    CLI_GEN_TOPP,
    CLI_GEN_MINP,
    CLI_GEN_RP,
    CLI_GEN_FP,
    CLI_GEN_PP,
    CLI_GEN_RLN,
    CLI_GEN_STOP,
    CLI_GEN_SEED,
    CLI_GEN_TOPPROBS,
    CLI_GEN_JSON,
    CLI_GEN_QUIET,
    CLI_GEN_PAR,
    CLI_GEN_PRIO,
    CLI_GEN_END,
};

/* Entries of a struct option table, in the order both commands list them. */
/* clang-format off */
#define CLI_GEN_OPT_PROMPT {"prompt", required_argument, 0, CLI_GEN_PROMPT}
#define CLI_GEN_OPTS_SAMPLING                                   \
    {"max-tokens", required_argument, 0, CLI_GEN_MAX},          \
    {"temperature", required_argument, 0, CLI_GEN_TEMP},        \
    {"top-k", required_argument, 0, CLI_GEN_TOPK},              \
    {"top-p", required_argument, 0, CLI_GEN_TOPP},              \
    {"min-p", required_argument, 0, CLI_GEN_MINP},              \
    {"repeat-penalty", required_argument, 0, CLI_GEN_RP},       \
    {"frequency-penalty", required_argument, 0, CLI_GEN_FP},    \
    {"presence-penalty", required_argument, 0, CLI_GEN_PP},     \
    {"repeat-last-n", required_argument, 0, CLI_GEN_RLN},       \
    {"stop", required_argument, 0, CLI_GEN_STOP},               \
    {"seed", required_argument, 0, CLI_GEN_SEED}
#define CLI_GEN_OPT_TOPPROBS {"top-probs", required_argument, 0, CLI_GEN_TOPPROBS}
#define CLI_GEN_OPTS_OUTPUT                                     \
    {"json", no_argument, 0, CLI_GEN_JSON},                     \
    {"quiet", no_argument, 0, CLI_GEN_QUIET},                   \
    {"parallel", required_argument, 0, CLI_GEN_PAR}
#define CLI_GEN_OPT_PRIORITY {"priority", required_argument, 0, CLI_GEN_PRIO}
/* clang-format on */

struct cli_gen {
    const char **prompts, **stops; /* malloc'd lists of the arguments */
    size_t n_prompts, n_stop;
    struct smp_params sampling;    /* seed: random unless --seed */
    uint32_t max_tokens, top_probs, top_probs_max, parallel, priority;
    bool json, quiet;
};

/* Defaults: 256 tokens, smp_params_default but for a random seed, one
 * sample; --top-probs accepts at most top_probs_max. */
void cli_gen_init(struct cli_gen *g, uint32_t top_probs_max);
/* Takes getopt_long's c and optarg: 0 when c is a shared flag with a good
 * value, -1 otherwise (a bad value's message printed). */
int cli_gen_option(struct cli_gen *g, int c, const char *arg);
void cli_gen_free(struct cli_gen *g);
/* The usage lines of CLI_GEN_OPTS_SAMPLING. */
void cli_gen_usage_sampling(FILE *fp);

/* What one sequence generated. */
struct cli_gen_seq {
    int32_t *tokens;
    size_t n_tokens, cap;
    char *text;
    size_t text_len, text_cap;
};

/* Appends text (kept NUL-terminated), echoed to stdout when stream is
 * set; 0 or -ENOMEM. */
int cli_gen_add_text(struct cli_gen_seq *q, const char *text, size_t len, bool stream);
void cli_gen_seq_free(struct cli_gen_seq *q);
/* "--- prompt K, sample J (finish)", then the text. */
void cli_gen_print_text(size_t prompt, size_t sample, const char *finish,
                        const struct cli_gen_seq *q);

/* One JSON line: {"prompt_tokens", ["n_prompt_tokens",] "tokens", "text",
 * "top_probs", "cached_prompt_tokens", "finish_reason"}. */
struct cli_gen_json {
    const int32_t *prompt;
    size_t n_prompt;
    const uint32_t *n_prompt_tokens; /* NULL: left out */
    const struct cli_gen_seq *seq;
    json_t *top_probs;               /* taken over: [[[id, p], ...] per step] */
    uint32_t cached;
    const char *finish;
};
/* 0 or -ENOMEM. */
int cli_gen_print_json(const struct cli_gen_json *j);
/* [id, p] */
json_t *cli_gen_prob_pair(json_int_t id, double p);

#endif
