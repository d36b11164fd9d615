/* threadpool.c - the worker pool behind every parallel kernel (see
 * threadpool.h).
 *
 * Dispatch protocol. Each worker owns one cache line with its own generation
 * counter `gen` (also its futex word), a `sleeping` flag and a copy of the
 * job. To start a job the caller sets pending = nth - 1, writes the job (fn,
 * arg, nth) into the lines of workers 1 .. nth-1 and bumps their `gen` only, so workers that take
 * no part are never disturbed. A worker spins on its `gen` for a bounded time (TP_SPIN_NS_DEFAULT,
 * or INFERD_TP_SPIN_US) and then sleeps on it with FUTEX_WAIT_PRIVATE. The caller runs ith = 0
 * itself, then waits for `pending` to reach 0 the same way: spin, then futex.
 *
 * Sleeping without lost wake-ups uses a Dekker-style handshake in the
 * sequentially consistent order S: the sleeper stores its flag and then
 * re-reads the word it waits on; the waker stores the word and then reads the
 * flag. Either the waker sees the flag (and calls FUTEX_WAKE), or the sleeper
 * sees the new word (and does not sleep); FUTEX_WAIT itself re-checks the word
 * in the kernel, which covers a wake that lands between the check and the
 * wait.
 *
 * The job fields (fn, arg, nth) are plain data: the caller writes them before
 * the release store of a worker's `gen` and a worker reads them only after
 * its acquire load of that `gen`; the caller rewrites them only after its
 * acquire load sees `pending` at 0, which every participant decrements with
 * release semantics after its last read of the job.
 */
#include "threadpool.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define TP_CACHE_LINE      64
#define TP_MAX_THREADS     1024
#define TP_SPIN_NS_DEFAULT 100000 /* 100 us: longer than a decode step's gaps */
#define TP_SPIN_CHECK      64     /* pause iterations between clock reads */

_Static_assert(sizeof(_Atomic uint32_t) == sizeof(uint32_t), "futex words are 32-bit");

/* One cache line per worker, so that a dispatch moves one line to the
 * worker: the job is copied next to the word that announces it. */
struct tp_worker {
    alignas(TP_CACHE_LINE) _Atomic uint32_t gen; /* written by the caller, futex word */
    _Atomic uint32_t sleeping;                   /* written by this worker */
    unsigned ith;
    unsigned nth; /* job: written by the caller (see the file comment) */
    tp_fn fn;     /* job */
    void *arg;    /* job */
    struct tp_pool *pool;
    pthread_t thread;
};
_Static_assert(sizeof(struct tp_worker) == TP_CACHE_LINE, "one line per worker");

struct tp_pool {
    /* Read-mostly line. */
    alignas(TP_CACHE_LINE) unsigned n; /* threads including the caller */
    uint64_t spin_ns;                  /* bounded spin before sleeping */
    struct tp_worker *workers;         /* workers[0] is unused (the caller) */
    _Atomic int stop;                  /* set by tp_free before the last gen bump */
    /* Completion: decremented by the workers, futex word for the caller. */
    alignas(TP_CACHE_LINE) _Atomic uint32_t pending;
    _Atomic uint32_t caller_sleeping;
};

static void tp_futex_wait(_Atomic uint32_t *word, uint32_t val)
{
    /* Returns on wake, EAGAIN (word changed) or EINTR; callers re-check. */
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void tp_futex_wake(_Atomic uint32_t *word, int count)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, count, NULL, NULL, 0);
}

static inline void tp_pause(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static uint64_t tp_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Spin until *word != old (acquire) for at most spin_ns; returns whether it
 * changed. The acquire load pairs with the release (or seq_cst) store that
 * changed the word. */
static int tp_spin_until_changed(_Atomic uint32_t *word, uint32_t old, uint64_t spin_ns)
{
    uint64_t deadline = 0;
    for (unsigned i = 1;; i++) {
        if (atomic_load_explicit(word, memory_order_acquire) != old)
            return 1;
        tp_pause();
        if (i % TP_SPIN_CHECK == 0) {
            uint64_t now = tp_now_ns();
            if (deadline == 0)
                deadline = now + spin_ns;
            else if (now >= deadline)
                return 0;
        }
    }
}

static void *tp_worker_main(void *p)
{
    struct tp_worker *w = p;
    struct tp_pool *pool = w->pool;
    uint32_t seen = 0;

    for (;;) {
        if (!tp_spin_until_changed(&w->gen, seen, pool->spin_ns)) {
            /* Sleep. seq_cst store of the flag, then seq_cst re-load of gen:
             * pairs with the caller's seq_cst store of gen followed by its
             * seq_cst load of `sleeping` in tp_run_n (Dekker handshake). */
            atomic_store_explicit(&w->sleeping, 1, memory_order_seq_cst);
            while (atomic_load_explicit(&w->gen, memory_order_seq_cst) == seen)
                tp_futex_wait(&w->gen, seen);
            /* Relaxed: the flag only decides whether the caller issues a
             * (harmless if spurious) FUTEX_WAKE. */
            atomic_store_explicit(&w->sleeping, 0, memory_order_relaxed);
        }
        /* Acquire: pairs with the caller's store of gen, which happens after
         * it wrote fn/arg/nth/pending/stop. */
        seen = atomic_load_explicit(&w->gen, memory_order_acquire);
        /* Relaxed: ordered by the acquire load of gen above. */
        if (atomic_load_explicit(&pool->stop, memory_order_relaxed))
            break;
        w->fn(w->arg, w->ith, w->nth);
        /* seq_cst (includes release): publishes this thread's work to the
         * caller's acquire load of pending, and orders this decrement before
         * the load of caller_sleeping (Dekker handshake with tp_wait_done). */
        if (atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_seq_cst) == 1 &&
            atomic_load_explicit(&pool->caller_sleeping, memory_order_seq_cst))
            tp_futex_wake(&pool->pending, 1);
    }
    return NULL;
}

/* Caller side: wait for all participants of the current job. */
static void tp_wait_done(struct tp_pool *pool)
{
    uint64_t deadline = 0;
    for (unsigned i = 1;; i++) {
        /* Acquire: pairs with the workers' fetch_sub on pending, so their
         * writes are visible once the count reaches 0. */
        if (atomic_load_explicit(&pool->pending, memory_order_acquire) == 0)
            return;
        tp_pause();
        if (i % TP_SPIN_CHECK == 0) {
            uint64_t now = tp_now_ns();
            if (deadline == 0)
                deadline = now + pool->spin_ns;
            else if (now >= deadline)
                break;
        }
    }
    /* seq_cst store of the flag, then seq_cst loads of pending: pairs with
     * the workers' seq_cst fetch_sub followed by their load of the flag. */
    atomic_store_explicit(&pool->caller_sleeping, 1, memory_order_seq_cst);
    for (;;) {
        uint32_t left = atomic_load_explicit(&pool->pending, memory_order_seq_cst);
        if (left == 0)
            break;
        tp_futex_wait(&pool->pending, left);
    }
    atomic_store_explicit(&pool->caller_sleeping, 0, memory_order_relaxed);
}

void tp_run_n(struct tp_pool *pool, unsigned n, tp_fn fn, void *arg)
{
    unsigned nth = n < pool->n ? n : pool->n;
    if (nth == 0)
        nth = 1; /* a job of zero threads still has to be done */
    if (nth == 1) {
        fn(arg, 0, 1);
        return;
    }
    /* Relaxed: published to the workers by the gen stores below. */
    atomic_store_explicit(&pool->pending, nth - 1, memory_order_relaxed);
    for (unsigned i = 1; i < nth; i++) {
        struct tp_worker *w = &pool->workers[i];
        w->fn = fn;
        w->arg = arg;
        w->nth = nth;
        /* A worker's gen moves by one per job it takes part in (and it sees
         * every such job), so the word can never wrap back to the value it
         * last saw. Relaxed: only this thread writes gen. */
        uint32_t g = atomic_load_explicit(&w->gen, memory_order_relaxed) + 1;
        /* seq_cst (includes release): publishes the job to the worker's
         * acquire load of gen, and orders this store before the load of
         * `sleeping` (Dekker handshake with tp_worker_main). */
        atomic_store_explicit(&w->gen, g, memory_order_seq_cst);
        if (atomic_load_explicit(&w->sleeping, memory_order_seq_cst))
            tp_futex_wake(&w->gen, 1);
    }
    fn(arg, 0, nth);
    tp_wait_done(pool);
}

void tp_run(struct tp_pool *pool, tp_fn fn, void *arg)
{
    tp_run_n(pool, pool->n, fn, arg);
}

unsigned tp_size(const struct tp_pool *pool)
{
    return pool->n;
}

static uint64_t tp_spin_from_env(void)
{
    const char *s = getenv("INFERD_TP_SPIN_US");
    if (!s || !*s)
        return TP_SPIN_NS_DEFAULT;
    char *end;
    unsigned long long us = strtoull(s, &end, 10);
    if (*end || us > 10000000ull)
        return TP_SPIN_NS_DEFAULT;
    return (uint64_t)us * 1000u;
}

/* Stop and join workers 1 .. started-1. */
static void tp_stop_workers(struct tp_pool *pool, unsigned started)
{
    /* Relaxed: published by the seq_cst gen stores below, which the workers
     * load with acquire before reading stop. */
    atomic_store_explicit(&pool->stop, 1, memory_order_relaxed);
    for (unsigned i = 1; i < started; i++) {
        struct tp_worker *w = &pool->workers[i];
        uint32_t g = atomic_load_explicit(&w->gen, memory_order_relaxed) + 1;
        atomic_store_explicit(&w->gen, g, memory_order_seq_cst);
        tp_futex_wake(&w->gen, 1);
    }
    for (unsigned i = 1; i < started; i++)
        pthread_join(pool->workers[i].thread, NULL);
}

int tp_create(unsigned n_threads, struct tp_pool **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (n_threads == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = cpus > 0 ? (unsigned)(cpus < TP_MAX_THREADS ? cpus : TP_MAX_THREADS) : 1;
    }
    if (n_threads > TP_MAX_THREADS)
        return -EINVAL;

    struct tp_pool *pool = aligned_alloc(TP_CACHE_LINE, sizeof *pool);
    if (!pool)
        return -ENOMEM;
    *pool = (struct tp_pool){.n = n_threads, .spin_ns = tp_spin_from_env()};
    atomic_init(&pool->stop, 0);
    atomic_init(&pool->pending, 0);
    atomic_init(&pool->caller_sleeping, 0);
    size_t wbytes = sizeof(struct tp_worker) * n_threads;
    pool->workers = aligned_alloc(TP_CACHE_LINE, wbytes);
    if (!pool->workers) {
        free(pool);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < n_threads; i++) {
        struct tp_worker *w = &pool->workers[i];
        atomic_init(&w->gen, 0);
        atomic_init(&w->sleeping, 0);
        w->ith = i;
        w->pool = pool;
    }

    /* Workers block every signal, so process signals go to the daemon's own
     * threads; the mask is inherited from this thread at pthread_create. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = 0;
    unsigned started = 1;
    for (; started < n_threads; started++) {
        struct tp_worker *w = &pool->workers[started];
        err = pthread_create(&w->thread, NULL, tp_worker_main, w);
        if (err)
            break;
        char name[16];
        snprintf(name, sizeof name, "inferd-tp%hu", (unsigned short)started); /* < 1024 */
        pthread_setname_np(w->thread, name); /* cosmetic: errors ignored */
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err) {
        tp_stop_workers(pool, started);
        free(pool->workers);
        free(pool);
        return -err;
    }
    *out = pool;
    return 0;
}

void tp_free(struct tp_pool *pool)
{
    if (!pool)
        return;
    tp_stop_workers(pool, pool->n);
    free(pool->workers);
    free(pool);
}
