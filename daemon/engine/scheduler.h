/* scheduler.h - continuous batching over the paged KV cache: the internal
 * engine API (submit, step, cancel, events) that the CLI and the daemon
 * drive.
 *
 * One step (sched_step) builds one flat batch under a token budget:
 * running sequences first, in priority order (lower value first, then
 * arrival), each getting its next tokens (1 when decoding, a chunk of its
 * prompt when prefilling); the rest of the budget admits waiting requests
 * (prefix-cache lookup first, so only the uncached suffix is computed). When
 * the pool runs out of blocks, the lowest-priority / newest running sequence
 * is preempted: its blocks are released (full ones stay in the prefix cache)
 * and it is recomputed later with its sampler state intact, so its output
 * does not change. A request that could never fit (prompt + max tokens
 * beyond the pool or the context) is refused at submission.
 *
 * Requests with n > 1 prefill their prompt once; at the first sampled token
 * the sequence forks into n samples sharing the prompt's blocks, and a
 * shared partial block is copied on first write (copy-on-write).
 *
 * Events are delivered through a callback during sched_step / sched_cancel
 * / sched_free: TOKEN events for every generated token of every sample, and
 * exactly one terminal event per request: FINISHED, CANCELLED or ERROR.
 *
 * Thread-safety: none; one thread drives a scheduler.
 */
#ifndef INFERD_SCHEDULER_H
#define INFERD_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blockmgr.h"
#include "engine.h"
#include "obsstats.h"
#include "sampler.h"

struct sched_params {
    uint32_t max_batch_tokens; /* token budget per step (default 512) */
    uint32_t max_running;      /* running sequences at most (default 256) */
    bool prefix_cache;         /* default true */
};

void sched_params_default(struct sched_params *p);

struct sched_request {
    const int32_t *prompt; /* copied */
    size_t n_prompt;
    struct smp_params sampling; /* sample i of n uses seed + i */
    uint32_t max_tokens;
    const char *const *stop; /* copied */
    size_t n_stop;
    uint32_t top_probs;
    int32_t priority;        /* lower runs first */
    const char *cache_salt;  /* NULL or "": shared prefix cache */
    uint32_t n;              /* parallel samples; 0 means 1 */
    uint64_t user;           /* opaque, echoed in events */
};

enum sched_ev_type {
    SCHED_EV_TOKEN = 0,
    SCHED_EV_FINISHED = 1,
    SCHED_EV_CANCELLED = 2,
    SCHED_EV_ERROR = 3,
};

/* Times in nanoseconds of CLOCK_MONOTONIC; 0 = not reached. */
struct sched_times {
    uint64_t queued, scheduled, first_token, last_token, finished;
};

struct sched_event {
    enum sched_ev_type type;
    uint64_t req_id;
    uint64_t user;
    /* TOKEN */
    uint32_t sample;
    int32_t token;
    const char *text;        /* final text this token released (stop strings held back) */
    size_t text_len;
    const struct smp_prob *top; /* top_probs entries */
    size_t n_top;
    bool sample_done;        /* last token of this sample */
    enum gen_finish finish;  /* of this sample, when sample_done */
    uint64_t time;           /* of this token */
    /* FINISHED / CANCELLED / ERROR: the request's totals */
    struct sched_times times;
    uint32_t prompt_tokens;
    uint32_t cached_prompt_tokens;
    uint32_t generated_tokens; /* all samples */
    uint32_t preemptions;
    uint32_t cache_queries;    /* full prompt blocks looked up in the prefix cache */
    uint32_t cache_hits;       /* of which found (cached_prompt_tokens / 16 at admission) */
    int error;               /* ERROR: -errno */
};

typedef void (*sched_event_fn)(void *ud, const struct sched_event *ev);

struct sched_stats {
    uint32_t running, waiting;
    uint64_t finished, cancelled;
    uint64_t prompt_tokens, cached_prompt_tokens, generated_tokens;
    uint64_t tokens_processed; /* through the forward pass */
    uint64_t steps, preemptions;
    uint32_t kv_blocks_total, kv_blocks_used, kv_blocks_cached;
    uint64_t kv_slots_used_sum, kv_slots_alloc_sum; /* summed over steps: utilization */
    struct bm_stats cache;
    /* Latency histograms and finish counters, kept where the USDT probes
     * fire and with their values (obsstats.h). */
    struct obs_stats obs;
};

struct sched;

/* The scheduler takes every block of e->kv (none may be held). */
int sched_create(struct engine *e, const struct sched_params *p, sched_event_fn fn, void *ud,
                 struct sched **out);
/* Cancels what is left (CANCELLED events) and gives the blocks back. */
void sched_free(struct sched *s);

/* Queue a request. Returns 0 and its id, or -EINVAL (empty prompt, bad
 * token, bad sampling parameters), -E2BIG (can never fit the pool or the
 * context; err says why), -ENOMEM. Nothing is queued on error. */
int sched_submit(struct sched *s, const struct sched_request *r, uint64_t *id, char *err,
                 size_t errlen);
/* Cancel a queued or running request: its blocks are released now and its
 * CANCELLED event delivered. -ENOENT if unknown or already ended. */
int sched_cancel(struct sched *s, uint64_t id);
/* Run one step. Returns the number of tokens processed (0: nothing to do)
 * or -errno (the forward pass failed; the requests in the step get ERROR). */
int sched_step(struct sched *s);
bool sched_has_work(const struct sched *s);
void sched_get_stats(const struct sched *s, struct sched_stats *st);

uint64_t sched_now_ns(void);

/* Consistency check of the block accounting (for tests): every block's
 * reference count equals the number of block tables holding it, unreferenced
 * blocks are exactly the free and evictable ones, waiting sequences hold no
 * blocks. Returns 0 or -EUCLEAN with a description in err. */
int sched_check(const struct sched *s, char *err, size_t errlen);

#endif
