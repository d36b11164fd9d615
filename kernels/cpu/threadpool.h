/* threadpool.h - a fixed pool of worker threads for data-parallel kernels.
 *
 * tp_run() runs one function on every thread of the pool (the caller is
 * thread 0) and returns when all have finished. Workers spin briefly between
 * jobs and then sleep on a futex, so back-to-back jobs (hundreds per decoded
 * token) cost well under a microsecond to dispatch while an idle pool uses no
 * CPU.
 *
 * Thread-safety: one tp_run() at a time per pool; the pool itself may be used
 * from any one thread.
 */
#ifndef INFERD_THREADPOOL_H
#define INFERD_THREADPOOL_H

#include <stddef.h>

struct tp_pool;

/* fn(arg, ith, nth): thread ith of nth. */
typedef void (*tp_fn)(void *arg, unsigned ith, unsigned nth);

/* Create a pool of n_threads threads (including the caller); 0 means one per
 * online CPU. Returns 0 or -errno. */
int tp_create(unsigned n_threads, struct tp_pool **out);
/* Stop and join the workers. NULL is accepted. */
void tp_free(struct tp_pool *pool);
unsigned tp_size(const struct tp_pool *pool);
/* Run fn on all threads and wait for all of them. */
void tp_run(struct tp_pool *pool, tp_fn fn, void *arg);
/* Run fn on min(n, pool size) threads (nth = that number). */
void tp_run_n(struct tp_pool *pool, unsigned n, tp_fn fn, void *arg);

/* Split [0, n) into nth nearly equal parts; part ith is [*lo, *hi). */
static inline void tp_split(size_t n, unsigned ith, unsigned nth, size_t *lo, size_t *hi)
{
    size_t per = n / nth, rem = n % nth;
    *lo = ith * per + (ith < rem ? ith : rem);
    *hi = *lo + per + (ith < rem ? 1 : 0);
}

#endif
