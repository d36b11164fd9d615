/* worker.c - the engine thread of one model (see worker.h): inbox of
 * commands, scheduler steps, events copied into the shared outbox. */
#include "worker.h"

#include "ipc/doorbell.h"

#include <errno.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- jobs and events --------------------------------------------------- */

struct wk_job *wk_job_new(size_t n_prompt, size_t n_stop)
{
    struct wk_job *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->prompt = malloc((n_prompt ? n_prompt : 1) * sizeof *j->prompt);
    j->stop = calloc(n_stop ? n_stop : 1, sizeof *j->stop);
    if (!j->prompt || !j->stop) {
        wk_job_free(j);
        return NULL;
    }
    j->n_prompt = n_prompt;
    j->n_stop = n_stop;
    return j;
}

void wk_job_free(struct wk_job *j)
{
    if (!j)
        return;
    for (size_t i = 0; j->stop && i < j->n_stop; i++)
        free(j->stop[i]);
    free(j->stop);
    free(j->prompt);
    free(j->cache_salt);
    free(j);
}

void wk_event_free_list(struct wk_event *ev)
{
    while (ev) {
        struct wk_event *n = ev->next;
        free(ev);
        ev = n;
    }
}

int wk_outbox_init(struct wk_outbox *o)
{
    memset(o, 0, sizeof *o);
    o->efd = doorbell_create();
    if (o->efd < 0)
        return o->efd;
    int rc = pthread_mutex_init(&o->mu, NULL);
    if (rc) {
        close(o->efd);
        o->efd = -1;
        return -rc;
    }
    atomic_init(&o->pending, false);
    return 0;
}

void wk_outbox_destroy(struct wk_outbox *o)
{
    wk_event_free_list(o->head);
    o->head = o->tail = NULL;
    pthread_mutex_destroy(&o->mu);
    if (o->efd >= 0)
        close(o->efd);
    o->efd = -1;
}

struct wk_event *wk_outbox_take(struct wk_outbox *o)
{
    /* Relaxed: cleared before taking the lock, so a batch appended after
     * the take sets it again (its store comes after ours in the mutex
     * order) and is not missed. */
    atomic_store_explicit(&o->pending, false, memory_order_relaxed);
    pthread_mutex_lock(&o->mu);
    struct wk_event *l = o->head;
    o->head = o->tail = NULL;
    pthread_mutex_unlock(&o->mu);
    return l;
}

static void wk_outbox_push(struct wk_outbox *o, struct wk_event *head, struct wk_event *tail)
{
    pthread_mutex_lock(&o->mu);
    if (o->tail)
        o->tail->next = head;
    else
        o->head = head;
    o->tail = tail;
    pthread_mutex_unlock(&o->mu);
    /* Release: pairs with the IPC thread's acquire load before it takes
     * the list (the list itself is ordered by the mutex). */
    atomic_store_explicit(&o->pending, true, memory_order_release);
    (void)doorbell_ring(o->efd);
}

/* ---- the worker --------------------------------------------------------- */

enum wk_cmd_type { WK_SUBMIT, WK_CANCEL, WK_DROP_SESSION, WK_CANCEL_ALL };

struct wk_cmd {
    struct wk_cmd *next;
    enum wk_cmd_type type;
    uint64_t arg; /* ticket or session id */
    struct wk_job *job;
};

/* A request the scheduler holds; the scheduler's `user` is its index. */
struct wk_slot {
    bool used;
    uint64_t ticket, sess_id, creq_id, sched_id;
    int fail; /* -errno: report the coming CANCELLED as this ERROR */
};

struct worker {
    char name[160];
    struct engine *e;
    struct sched *s;
    struct wk_outbox *ob;
    pthread_t thr;
    bool started;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct wk_cmd *in_head, *in_tail; /* guarded by mu */
    bool stop;                        /* guarded by mu */
    struct sched_stats stats;         /* guarded by mu */

    /* worker thread only */
    struct wk_slot *slots;
    uint32_t n_slots, cap_slots;
    uint32_t *free_slots;
    uint32_t n_free;
    struct wk_event *ev_head, *ev_tail; /* batch for the outbox */
    bool oom;                           /* an event could not be allocated */
};

static int wk_slot_alloc(struct worker *w, uint32_t *idx)
{
    if (w->n_free) {
        *idx = w->free_slots[--w->n_free];
        return 0;
    }
    if (w->n_slots == w->cap_slots) {
        uint32_t cap = w->cap_slots ? w->cap_slots * 2 : 64;
        struct wk_slot *s = realloc(w->slots, cap * sizeof *s);
        if (!s)
            return -ENOMEM;
        w->slots = s;
        uint32_t *f = realloc(w->free_slots, cap * sizeof *f);
        if (!f)
            return -ENOMEM;
        w->free_slots = f;
        w->cap_slots = cap;
    }
    *idx = w->n_slots++;
    return 0;
}

static void wk_slot_release(struct worker *w, uint32_t idx)
{
    w->slots[idx].used = false;
    w->free_slots[w->n_free++] = idx;
}

/* A new event with room for text and top probabilities after it. */
static struct wk_event *wk_event_new(struct worker *w, const char *text, size_t text_len,
                                     const struct smp_prob *top, size_t n_top)
{
    size_t top_off = (sizeof(struct wk_event) + text_len + 1 + alignof(struct smp_prob) - 1) &
                     ~(alignof(struct smp_prob) - 1);
    struct wk_event *ev = calloc(1, top_off + n_top * sizeof *top);
    if (!ev) {
        w->oom = true;
        return NULL;
    }
    char *t = (char *)(ev + 1);
    if (text_len)
        memcpy(t, text, text_len);
    t[text_len] = 0;
    ev->text = t;
    ev->text_len = text_len;
    if (n_top) {
        struct smp_prob *tp = (struct smp_prob *)((char *)ev + top_off);
        memcpy(tp, top, n_top * sizeof *top);
        ev->top = tp;
        ev->n_top = n_top;
    }
    return ev;
}

static void wk_emit(struct worker *w, struct wk_event *ev)
{
    if (w->ev_tail)
        w->ev_tail->next = ev;
    else
        w->ev_head = ev;
    w->ev_tail = ev;
}

/* An ERROR event for a request the scheduler never held. */
static void wk_emit_error(struct worker *w, const struct wk_job *j, int error, const char *msg)
{
    struct wk_event *ev = wk_event_new(w, msg, strlen(msg), NULL, 0);
    if (!ev)
        return;
    ev->type = SCHED_EV_ERROR;
    ev->ticket = j->ticket;
    ev->sess_id = j->sess_id;
    ev->creq_id = j->creq_id;
    ev->token = -1;
    ev->error = error;
    ev->times.queued = ev->times.finished = sched_now_ns();
    wk_emit(w, ev);
}

/* The scheduler's callback (worker thread, inside sched_* calls). */
static void wk_on_event(void *ud, const struct sched_event *sev)
{
    struct worker *w = ud;
    if (sev->user >= w->n_slots || !w->slots[sev->user].used)
        return; /* cannot happen: every request has its slot until its end */
    struct wk_slot *sl = &w->slots[sev->user];
    bool terminal = sev->type != SCHED_EV_TOKEN;
    enum sched_ev_type type = sev->type;
    int error = sev->error;
    const char *msg = sev->type == SCHED_EV_TOKEN ? sev->text : "";
    size_t msg_len = sev->type == SCHED_EV_TOKEN ? sev->text_len : 0;
    if (type == SCHED_EV_CANCELLED && sl->fail) {
        type = SCHED_EV_ERROR;
        error = sl->fail;
    }
    if (type == SCHED_EV_ERROR) {
        msg = error == -ENOMEM ? "out of memory in the engine" : "the engine failed this request";
        msg_len = strlen(msg);
    }
    struct wk_event *ev = wk_event_new(w, msg, msg_len, sev->top, sev->n_top);
    if (ev) {
        ev->type = type;
        ev->ticket = sl->ticket;
        ev->sess_id = sl->sess_id;
        ev->creq_id = sl->creq_id;
        ev->sample = sev->sample;
        ev->token = sev->token;
        ev->sample_done = sev->sample_done;
        ev->finish = sev->finish;
        ev->time = sev->time;
        ev->times = sev->times;
        ev->prompt_tokens = sev->prompt_tokens;
        ev->cached_prompt_tokens = sev->cached_prompt_tokens;
        ev->generated_tokens = sev->generated_tokens;
        ev->error = error;
        wk_emit(w, ev);
    }
    if (terminal)
        wk_slot_release(w, (uint32_t)sev->user);
}

static void wk_do_submit(struct worker *w, struct wk_job *j)
{
    uint32_t idx;
    if (wk_slot_alloc(w, &idx)) {
        wk_emit_error(w, j, -ENOMEM, "out of memory in the engine");
        return;
    }
    struct wk_slot *sl = &w->slots[idx];
    *sl = (struct wk_slot){.used = true, .ticket = j->ticket, .sess_id = j->sess_id,
                           .creq_id = j->creq_id};
    struct sched_request r = {
        .prompt = j->prompt,
        .n_prompt = j->n_prompt,
        .sampling = j->sampling,
        .max_tokens = j->max_tokens,
        .stop = (const char *const *)j->stop,
        .n_stop = j->n_stop,
        .top_probs = j->top_probs,
        .priority = j->priority,
        .cache_salt = j->cache_salt,
        .n = j->n ? j->n : 1,
        .user = idx,
    };
    char err[256] = "";
    int rc = sched_submit(w->s, &r, &sl->sched_id, err, sizeof err);
    if (rc) {
        wk_slot_release(w, idx);
        wk_emit_error(w, j, rc, err[0] ? err : "the engine refused the request");
    }
}

static void wk_apply(struct worker *w, struct wk_cmd *c)
{
    switch (c->type) {
    case WK_SUBMIT:
        wk_do_submit(w, c->job);
        break;
    case WK_CANCEL:
        for (uint32_t i = 0; i < w->n_slots; i++)
            if (w->slots[i].used && w->slots[i].ticket == c->arg) {
                (void)sched_cancel(w->s, w->slots[i].sched_id);
                break;
            }
        break;
    case WK_DROP_SESSION:
    case WK_CANCEL_ALL:
        /* sched_cancel releases the slot from inside the callback; the
         * loop only reads used flags, so it may visit slots in any state. */
        for (uint32_t i = 0; i < w->n_slots; i++)
            if (w->slots[i].used && (c->type == WK_CANCEL_ALL || w->slots[i].sess_id == c->arg))
                (void)sched_cancel(w->s, w->slots[i].sched_id);
        break;
    }
}

static void wk_flush_events(struct worker *w)
{
    if (!w->ev_head)
        return;
    wk_outbox_push(w->ob, w->ev_head, w->ev_tail);
    w->ev_head = w->ev_tail = NULL;
}

static void wk_publish_stats(struct worker *w)
{
    struct sched_stats st;
    sched_get_stats(w->s, &st);
    pthread_mutex_lock(&w->mu);
    w->stats = st;
    pthread_mutex_unlock(&w->mu);
}

static void *wk_main(void *arg)
{
    struct worker *w = arg;
    bool busy = false;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (!w->in_head && !w->stop && !busy)
            pthread_cond_wait(&w->cv, &w->mu);
        struct wk_cmd *cmds = w->in_head;
        w->in_head = w->in_tail = NULL;
        bool stop = w->stop;
        pthread_mutex_unlock(&w->mu);

        bool changed = cmds != NULL;
        while (cmds) {
            struct wk_cmd *n = cmds->next;
            wk_apply(w, cmds);
            wk_job_free(cmds->job);
            free(cmds);
            cmds = n;
        }
        if (stop)
            break;
        if (sched_has_work(w->s)) {
            int rc = sched_step(w->s);
            changed = true;
            if (rc < 0 && sched_has_work(w->s)) {
                /* The step failed before the forward pass (no memory for
                 * the batch): end everything rather than spin on it. */
                for (uint32_t i = 0; i < w->n_slots; i++)
                    if (w->slots[i].used) {
                        w->slots[i].fail = rc;
                        (void)sched_cancel(w->s, w->slots[i].sched_id);
                    }
            }
        }
        busy = sched_has_work(w->s);
        if (changed)
            wk_publish_stats(w);
        wk_flush_events(w);
    }
    /* Stopping: whatever is left ends as CANCELLED. */
    for (uint32_t i = 0; i < w->n_slots; i++)
        if (w->slots[i].used)
            (void)sched_cancel(w->s, w->slots[i].sched_id);
    wk_publish_stats(w);
    wk_flush_events(w);
    return NULL;
}

static int wk_push(struct worker *w, enum wk_cmd_type type, uint64_t arg, struct wk_job *job)
{
    struct wk_cmd *c = calloc(1, sizeof *c);
    if (!c) {
        wk_job_free(job);
        return -ENOMEM;
    }
    c->type = type;
    c->arg = arg;
    c->job = job;
    pthread_mutex_lock(&w->mu);
    if (w->in_tail)
        w->in_tail->next = c;
    else
        w->in_head = c;
    w->in_tail = c;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return 0;
}

int wk_submit(struct worker *w, struct wk_job *job)
{
    return wk_push(w, WK_SUBMIT, 0, job);
}

int wk_cancel(struct worker *w, uint64_t ticket)
{
    return wk_push(w, WK_CANCEL, ticket, NULL);
}

int wk_drop_session(struct worker *w, uint64_t sess_id)
{
    return wk_push(w, WK_DROP_SESSION, sess_id, NULL);
}

int wk_cancel_all(struct worker *w)
{
    return wk_push(w, WK_CANCEL_ALL, 0, NULL);
}

void wk_get_stats(struct worker *w, struct sched_stats *st)
{
    pthread_mutex_lock(&w->mu);
    *st = w->stats;
    pthread_mutex_unlock(&w->mu);
}

const struct engine *wk_engine(const struct worker *w)
{
    return w->e;
}

const char *wk_name(const struct worker *w)
{
    return w->name;
}

/* Opens the engine with a KV pool of kv_bytes, or 8 full contexts. */
static int wk_open_engine(struct worker *w, const struct wk_params *p, char *err, size_t errlen)
{
    struct engine_params ep;
    engine_params_default(&ep);
    ep.model_path = p->path;
    ep.n_threads = p->n_threads;
    ep.n_ctx = p->n_ctx;
    ep.kv_bytes = p->kv_bytes;
    int rc = engine_open(&ep, &w->e, err, errlen);
    if (rc || p->kv_bytes)
        return rc;
    const struct model_hparams *hp = &w->e->model->hp;
    uint64_t blocks = 8ull * ((w->e->n_ctx + KV_BLOCK_TOKENS - 1) / KV_BLOCK_TOKENS);
    ep.kv_bytes = blocks * kv_block_bytes_total(ep.kv_type, hp->n_layer, hp->n_head_kv * hp->head_dim);
    engine_close(w->e);
    w->e = NULL;
    return engine_open(&ep, &w->e, err, errlen);
}

int wk_start(struct worker **out, const struct wk_params *p, struct wk_outbox *ob, char *err,
             size_t errlen)
{
    *out = NULL;
    struct worker *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    snprintf(w->name, sizeof w->name, "%s", p->name);
    w->ob = ob;
    int rc = pthread_mutex_init(&w->mu, NULL);
    if (rc) {
        free(w);
        snprintf(err, errlen, "cannot create a mutex");
        return -rc;
    }
    if ((rc = pthread_cond_init(&w->cv, NULL))) {
        pthread_mutex_destroy(&w->mu);
        free(w);
        snprintf(err, errlen, "cannot create a condition variable");
        return -rc;
    }
    if ((rc = wk_open_engine(w, p, err, errlen)))
        goto fail;
    struct sched_params sp;
    sched_params_default(&sp);
    if ((rc = sched_create(w->e, &sp, wk_on_event, w, &w->s))) {
        snprintf(err, errlen, "cannot start the scheduler: %s", strerror(-rc));
        goto fail;
    }
    sched_get_stats(w->s, &w->stats);
    if ((rc = pthread_create(&w->thr, NULL, wk_main, w))) {
        rc = -rc;
        snprintf(err, errlen, "cannot start the engine thread: %s", strerror(-rc));
        goto fail;
    }
    w->started = true;
    *out = w;
    return 0;
fail:
    wk_stop(w);
    return rc;
}

void wk_stop(struct worker *w)
{
    if (!w)
        return;
    if (w->started) {
        pthread_mutex_lock(&w->mu);
        w->stop = true;
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->thr, NULL);
    }
    /* Commands that arrived after the stop are dropped unapplied. */
    while (w->in_head) {
        struct wk_cmd *n = w->in_head->next;
        wk_job_free(w->in_head->job);
        free(w->in_head);
        w->in_head = n;
    }
    sched_free(w->s); /* nothing left: the thread cancelled it all */
    w->s = NULL;
    wk_flush_events(w);
    engine_close(w->e);
    free(w->slots);
    free(w->free_slots);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
