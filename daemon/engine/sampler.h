/* sampler.h - choosing the next token from a row of logits.
 *
 * Order of the chain (as llama.cpp's common sampler): penalties (repetition,
 * frequency, presence over the last penalty_last_n tokens) -> top-k -> top-p
 * -> min-p -> temperature -> draw from the distribution with the request's
 * own RNG. temperature <= 0 is greedy: the arg-max of the raw logits (lowest
 * id on ties), no RNG draw.
 *
 * Same parameters, same seed, same logits => same tokens, on every machine.
 *
 * Thread-safety: one smp_state per request; states are independent.
 */
#ifndef INFERD_SAMPLER_H
#define INFERD_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

struct smp_params {
    float temperature;       /* <= 0: greedy */
    int32_t top_k;           /* <= 0: off */
    float top_p;             /* >= 1: off */
    float min_p;             /* <= 0: off */
    float repeat_penalty;    /* 1: off; logit > 0 divided, < 0 multiplied */
    float frequency_penalty; /* 0: off; minus count * value */
    float presence_penalty;  /* 0: off; minus value if count > 0 */
    int32_t penalty_last_n;  /* window of past tokens; 0: off, -1: whole history */
    uint64_t seed;
};

/* Defaults: temperature 0.8, top_k 40, top_p 0.95, min_p 0.05, penalties
 * off, penalty_last_n 64, seed 0xfa11. */
void smp_params_default(struct smp_params *p);

struct smp_state;

/* Returns 0, -EINVAL (bad parameter: negative temperature is fine, NaN is
 * not; top_p/min_p outside [0,1]) or -ENOMEM. */
int smp_create(const struct smp_params *p, uint32_t n_vocab, struct smp_state **out);
void smp_free(struct smp_state *s);

/* Record a token of the history (prompt or generated) for the penalties. */
void smp_accept(struct smp_state *s, int32_t token);

/* Pick the next token from logits[n_vocab] (not modified). */
int32_t smp_sample(struct smp_state *s, const float *logits);

struct smp_prob {
    int32_t id;
    float p; /* probability */
    float logprob; /* natural log of p */
};

/* The k most probable tokens of softmax(logits) (raw logits: no sampler
 * applied), by descending probability, lower id first on ties. Writes
 * min(k, n_vocab) entries and returns that number. Computed as llama.cpp's
 * server does: p_i = expf(l_i - l_max) / sum. */
size_t smp_top_probs(const float *logits, uint32_t n_vocab, size_t k, struct smp_prob *out);

/* log-softmax of logits at id (for perplexity), computed in double. */
double smp_logprob(const float *logits, uint32_t n_vocab, int32_t id);

#endif
