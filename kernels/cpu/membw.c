/* membw.c - read-bandwidth probe (kern_membw_read), the roofline that
 * `inferctl bench` compares decode speed against.
 *
 * One buffer of `bytes` (page-aligned, transparent huge pages requested,
 * faulted in by the pool threads that later read it) is summed by all pool
 * threads, each over its own contiguous share, with the widest loads the CPU
 * has (AVX-512, AVX2, or plain 64-bit words). The best of `reps` passes is
 * returned in GB/s (1e9 bytes per second).
 */
#include "kern.h"

#include <errno.h>
#include <immintrin.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define MEMBW_UNIT 256 /* bytes per loop step: four 64-byte lines */

typedef uint64_t (*membw_sum_fn)(const unsigned char *p, size_t units);

/* Sum of `units` * 256 bytes as 64-bit words (plain C, baseline ISA). */
static uint64_t membw_sum_scalar(const unsigned char *p, size_t units)
{
    const uint64_t *q = (const uint64_t *)(const void *)p;
    uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (size_t i = 0; i < units * (MEMBW_UNIT / 8); i += 4) {
        a0 += q[i];
        a1 += q[i + 1];
        a2 += q[i + 2];
        a3 += q[i + 3];
    }
    return a0 + a1 + a2 + a3;
}

__attribute__((target("avx2"))) static uint64_t membw_sum_avx2(const unsigned char *p, size_t units)
{
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i < units; i++, p += MEMBW_UNIT) {
        a0 = _mm256_add_epi64(a0, _mm256_load_si256((const __m256i *)(const void *)p));
        a1 = _mm256_add_epi64(a1, _mm256_load_si256((const __m256i *)(const void *)(p + 32)));
        a2 = _mm256_add_epi64(a2, _mm256_load_si256((const __m256i *)(const void *)(p + 64)));
        a3 = _mm256_add_epi64(a3, _mm256_load_si256((const __m256i *)(const void *)(p + 96)));
        a0 = _mm256_add_epi64(a0, _mm256_load_si256((const __m256i *)(const void *)(p + 128)));
        a1 = _mm256_add_epi64(a1, _mm256_load_si256((const __m256i *)(const void *)(p + 160)));
        a2 = _mm256_add_epi64(a2, _mm256_load_si256((const __m256i *)(const void *)(p + 192)));
        a3 = _mm256_add_epi64(a3, _mm256_load_si256((const __m256i *)(const void *)(p + 224)));
    }
    __m256i s = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
    uint64_t lanes[4];
    _mm256_storeu_si256((__m256i *)(void *)lanes, s);
    return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

__attribute__((target("avx512f"))) static uint64_t membw_sum_avx512(const unsigned char *p,
                                                                    size_t units)
{
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i < units; i++, p += MEMBW_UNIT) {
        a0 = _mm512_add_epi64(a0, _mm512_load_si512((const void *)p));
        a1 = _mm512_add_epi64(a1, _mm512_load_si512((const void *)(p + 64)));
        a2 = _mm512_add_epi64(a2, _mm512_load_si512((const void *)(p + 128)));
        a3 = _mm512_add_epi64(a3, _mm512_load_si512((const void *)(p + 192)));
    }
    /* Lanes summed as unsigned: _mm512_reduce_add_epi64 adds signed values
     * and may overflow. */
    uint64_t lanes[8];
    _mm512_storeu_si512((void *)lanes,
                        _mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3)));
    uint64_t s = 0;
    for (int i = 0; i < 8; i++)
        s += lanes[i];
    return s;
}

struct membw_job {
    unsigned char *buf;
    size_t units; /* MEMBW_UNIT-byte steps in the whole buffer */
    membw_sum_fn sum;
    uint64_t sums[128]; /* per-thread results (threads beyond 128 fold in) */
};

static void membw_touch(void *arg, unsigned ith, unsigned nth)
{
    struct membw_job *job = arg;
    size_t lo, hi;
    tp_split(job->units, ith, nth, &lo, &hi);
    memset(job->buf + lo * MEMBW_UNIT, (int)(ith + 1), (hi - lo) * MEMBW_UNIT);
}

static void membw_read(void *arg, unsigned ith, unsigned nth)
{
    struct membw_job *job = arg;
    size_t lo, hi;
    tp_split(job->units, ith, nth, &lo, &hi);
    uint64_t s = job->sum(job->buf + lo * MEMBW_UNIT, hi - lo);
    /* Stored so the loads cannot be optimised away; each thread writes only
     * its own slot when nth <= 128 (otherwise the result is unused). */
    if (ith < 128)
        job->sums[ith] = s;
}

static void membw_run(struct tp_pool *pool, tp_fn fn, struct membw_job *job)
{
    if (pool)
        tp_run(pool, fn, job);
    else
        fn(job, 0, 1);
}

static double membw_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* __builtin_cpu_supports reads what libgcc's constructor found at start-up
 * (no __builtin_cpu_init needed outside constructors). */
static membw_sum_fn membw_pick(void)
{
    if (__builtin_cpu_supports("avx512f"))
        return membw_sum_avx512;
    if (__builtin_cpu_supports("avx2"))
        return membw_sum_avx2;
    return membw_sum_scalar;
}

/* Returns the best GB/s, or a negative errno (-EINVAL for bytes == 0 or
 * reps <= 0, -ENOMEM) as a double. pool may be NULL (one thread). */
double kern_membw_read(struct tp_pool *pool, size_t bytes, int reps)
{
    if (bytes == 0 || reps <= 0 || bytes > SIZE_MAX / 2)
        return -EINVAL;
    size_t units = (bytes + MEMBW_UNIT - 1) / MEMBW_UNIT;
    size_t page = 4096;
    size_t map_bytes = (units * MEMBW_UNIT + page - 1) / page * page;
    void *buf = mmap(NULL, map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED)
        return -ENOMEM;
#ifdef MADV_HUGEPAGE
    madvise(buf, map_bytes, MADV_HUGEPAGE); /* fewer TLB misses; advisory */
#endif
    struct membw_job job = {.buf = buf, .units = units, .sum = membw_pick()};
    membw_run(pool, membw_touch, &job);

    double best = 0.0;
    for (int r = 0; r < reps; r++) {
        double t0 = membw_now();
        membw_run(pool, membw_read, &job);
        double dt = membw_now() - t0;
        double gbs = dt > 0 ? (double)(units * MEMBW_UNIT) / dt * 1e-9 : 0.0;
        if (gbs > best)
            best = gbs;
    }
    munmap(buf, map_bytes);
    return best;
}
