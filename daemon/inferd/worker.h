/* worker.h - the engine side of inferd: one thread per model that owns an
 * engine and its scheduler, fed by an inbox of commands from the IPC thread
 * and answering through an outbox of events shared by all workers.
 *
 * Cross-thread handoffs (the only ones in the daemon):
 *  - inbox: the IPC thread appends commands under the worker's mutex and
 *    signals its condition variable; the worker takes the whole list under
 *    the same mutex. A job (and every byte it points to) is built before the
 *    append and never touched by the IPC thread afterwards: the mutex
 *    release/acquire pair orders its construction before the worker's reads.
 *  - outbox: the worker appends a batch of events under the outbox mutex,
 *    sets `pending` (release, after the unlock) and writes the outbox eventfd.
 *    The IPC thread sees `pending` (acquire) or the eventfd's read
 *    completion, then takes the list under the mutex; events are owned by the
 *    IPC thread from then on.
 *  - stats: the worker copies its scheduler's statistics (histograms
 *    included) into a snapshot under its mutex after every step, before
 *    the step's events go to the outbox; wk_get_stats() copies it out
 *    under the same mutex, from the IPC thread (Stats) or the metrics
 *    thread (GET /metrics). Neither side does more than the copy while
 *    holding it.
 *  - the engine: opened on the calling thread in wk_start() before the
 *    worker thread exists (pthread_create orders it); afterwards the IPC
 *    thread reads only what never changes (the tokenizer, which is immutable
 *    and safe for concurrent use, the model's hyper-parameters and n_ctx).
 *    Everything else in it belongs to the worker thread.
 */
#ifndef INFERD_WORKER_H
#define INFERD_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "scheduler.h"

/* A validated request for the engine. Built by the IPC thread with
 * wk_job_new(), owned by the worker once submitted. */
struct wk_job {
    uint64_t ticket;  /* daemon-wide id of this request, never reused */
    uint64_t sess_id; /* routing of its events */
    uint64_t creq_id;
    int32_t *prompt;
    size_t n_prompt;
    struct smp_params sampling;
    uint32_t max_tokens;
    uint32_t n;       /* parallel samples, sample j seeded with seed + j */
    char **stop;
    size_t n_stop;
    uint32_t top_probs;
    int32_t priority; /* scheduler order: lower runs first */
    char *cache_salt; /* NULL: none */
};

/* n_prompt tokens and n_stop stop strings, zeroed otherwise; NULL on ENOMEM. */
struct wk_job *wk_job_new(size_t n_prompt, size_t n_stop);
void wk_job_free(struct wk_job *j); /* NULL and half-built jobs are fine */

/* One event of one request, routed back to its session. */
struct wk_event {
    struct wk_event *next;
    enum sched_ev_type type;
    uint64_t ticket, sess_id, creq_id;
    /* TOKEN */
    uint32_t sample;     /* which of the request's n samples */
    int32_t token;       /* -1: none (a sample ended without a new token) */
    bool sample_done;
    enum gen_finish finish;
    uint64_t time;
    const char *text;    /* TOKEN: released text; ERROR: the message */
    size_t text_len;
    const struct smp_prob *top;
    size_t n_top;
    /* FINISHED / CANCELLED / ERROR */
    struct sched_times times;
    uint32_t prompt_tokens, cached_prompt_tokens, generated_tokens;
    int error;           /* ERROR: -errno (-EINVAL, -E2BIG, -ENOMEM, -EIO...) */
};

void wk_event_free_list(struct wk_event *ev);

struct wk_outbox {
    pthread_mutex_t mu;
    struct wk_event *head, *tail; /* guarded by mu */
    _Atomic bool pending;         /* hint for the IPC thread's busy-poll */
    int efd;                      /* eventfd, written after every batch */
};

int wk_outbox_init(struct wk_outbox *o);
void wk_outbox_destroy(struct wk_outbox *o); /* frees undelivered events */
/* The whole list in arrival order (NULL when empty); clears pending. */
struct wk_event *wk_outbox_take(struct wk_outbox *o);

struct wk_params {
    const char *name;
    const char *path;
    unsigned n_threads;
    uint64_t kv_bytes; /* 0: 8 full contexts */
    uint32_t n_ctx;    /* 0: the model's, at most 4096 */
};

struct worker;

/* Opens the model (errors are reported here, with a message), creates the
 * scheduler and starts the thread. 0 or -errno. */
int wk_start(struct worker **out, const struct wk_params *p, struct wk_outbox *ob, char *err,
             size_t errlen);
/* Cancels what is left (CANCELLED events go to the outbox), joins the
 * thread, frees everything. NULL is fine. */
void wk_stop(struct worker *w);

/* Commands: queued and applied before the worker's next step, in order.
 * 0 or -ENOMEM (submit: the job is freed then). */
int wk_submit(struct worker *w, struct wk_job *job);
int wk_cancel(struct worker *w, uint64_t ticket);
int wk_drop_session(struct worker *w, uint64_t sess_id);
int wk_cancel_all(struct worker *w);

/* The statistics after the worker's latest step or command batch. */
void wk_get_stats(struct worker *w, struct sched_stats *st);

/* Immutable facts of the model, safe from the IPC thread. */
const struct engine *wk_engine(const struct worker *w);
const char *wk_name(const struct worker *w);

#endif
