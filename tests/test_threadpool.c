/* test_threadpool.c - tests of the worker pool (threadpool.h) and of the
 * read-bandwidth probe kern_membw_read (membw.c). */
#include "kern.h"
#include "testutil.h"
#include "threadpool.h"

#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_T 64

/* Records which thread indices ran, and with which nth. */
struct rec {
    _Atomic unsigned calls[MAX_T];
    _Atomic unsigned bad_nth;
    _Atomic unsigned out_of_range;
    unsigned expect_nth;
};

static void rec_fn(void *arg, unsigned ith, unsigned nth)
{
    struct rec *r = arg;
    if (nth != r->expect_nth)
        atomic_fetch_add(&r->bad_nth, 1);
    if (ith >= nth || ith >= MAX_T) {
        atomic_fetch_add(&r->out_of_range, 1);
        return;
    }
    atomic_fetch_add(&r->calls[ith], 1);
}

static void check_once(struct tp_pool *pool, unsigned n, int use_run_n)
{
    struct rec r;
    memset(&r, 0, sizeof r);
    unsigned size = tp_size(pool);
    unsigned nth = use_run_n ? (n < size ? n : size) : size;
    if (nth == 0)
        nth = 1;
    r.expect_nth = nth;
    if (use_run_n)
        tp_run_n(pool, n, rec_fn, &r);
    else
        tp_run(pool, rec_fn, &r);
    unsigned bad_nth = atomic_load(&r.bad_nth), out_of_range = atomic_load(&r.out_of_range);
    ck_assert_msg(bad_nth == 0, "%u calls saw the wrong nth (expected %u)", bad_nth, nth);
    ck_assert_msg(out_of_range == 0, "%u calls with ith out of range", out_of_range);
    for (unsigned i = 0; i < MAX_T; i++) {
        unsigned got = atomic_load(&r.calls[i]), want = i < nth ? 1u : 0u;
        ck_assert_msg(got == want, "pool of %u, nth %u: thread %u ran %u times, expected %u", size,
                      nth, i, got, want);
    }
}

START_TEST(test_each_index_once)
{
    for (unsigned n = 1; n <= 4; n++) {
        struct tp_pool *pool;
        ck_assert_int_eq(tp_create(n, &pool), 0);
        ck_assert_uint_eq(tp_size(pool), n);
        for (int rep = 0; rep < 200; rep++)
            check_once(pool, 0, 0);
        tp_free(pool);
    }
}
END_TEST

START_TEST(test_default_size)
{
    struct tp_pool *pool;
    ck_assert_int_eq(tp_create(0, &pool), 0);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    ck_assert_uint_eq(tp_size(pool), (unsigned)(cpus > 0 ? cpus : 1));
    check_once(pool, 0, 0);
    tp_free(pool);
    tp_free(NULL);
    ck_assert_int_eq(tp_create(4, NULL), -EINVAL);
    ck_assert_int_eq(tp_create(1u << 20, &pool), -EINVAL);
    ck_assert_ptr_null(pool);
}
END_TEST

/* Each thread adds its share of 0..n-1 into its own slot; checked after each
 * run, so a run that returns before every worker finished is caught. */
struct sum_job {
    const uint32_t *data;
    size_t n;
    uint64_t part[MAX_T];
};

static void sum_fn(void *arg, unsigned ith, unsigned nth)
{
    struct sum_job *j = arg;
    size_t lo, hi;
    tp_split(j->n, ith, nth, &lo, &hi);
    uint64_t s = 0;
    for (size_t i = lo; i < hi; i++)
        s += j->data[i];
    j->part[ith] = s;
}

START_TEST(test_back_to_back_sums)
{
    enum { N = 1000, RUNS = 100000 };
    uint32_t *data = malloc(N * sizeof *data);
    ck_assert_ptr_nonnull(data);
    struct tp_pool *pool;
    ck_assert_int_eq(tp_create(2, &pool), 0);
    struct sum_job j = {.data = data, .n = N};
    for (int r = 0; r < RUNS; r++) {
        for (size_t i = 0; i < N; i++)
            data[i] = (uint32_t)(i + (size_t)r);
        memset(j.part, 0xff, sizeof j.part);
        tp_run(pool, sum_fn, &j);
        uint64_t s = j.part[0] + j.part[1];
        uint64_t expect = (uint64_t)N * (N - 1) / 2 + (uint64_t)N * (uint64_t)r;
        if (s != expect)
            ck_abort_msg("run %d: sum %llu, expected %llu", r, (unsigned long long)s,
                         (unsigned long long)expect);
    }
    tp_free(pool);
    free(data);
}
END_TEST

START_TEST(test_run_n)
{
    struct tp_pool *pool;
    ck_assert_int_eq(tp_create(4, &pool), 0);
    /* Vary n so workers that sit out some jobs must still see later ones. */
    static const unsigned ns[] = {1, 4, 2, 3, 0, 9, 2, 2, 4, 1, 3};
    for (int rep = 0; rep < 300; rep++)
        for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
            check_once(pool, ns[i], 1);
    tp_free(pool);
}
END_TEST

START_TEST(test_split)
{
    for (size_t n = 0; n < 200; n++) {
        for (unsigned nth = 1; nth <= 17; nth++) {
            size_t expect_lo = 0;
            for (unsigned ith = 0; ith < nth; ith++) {
                size_t lo, hi;
                tp_split(n, ith, nth, &lo, &hi);
                ck_assert_uint_eq(lo, expect_lo);
                ck_assert_uint_ge(hi, lo);
                /* nearly equal: sizes differ by at most one */
                ck_assert_uint_le(hi - lo, n / nth + 1);
                ck_assert_uint_ge(hi - lo, n / nth);
                expect_lo = hi;
            }
            ck_assert_uint_eq(expect_lo, n);
        }
    }
}
END_TEST

START_TEST(test_create_free_repeatedly)
{
    for (int i = 0; i < 200; i++) {
        struct tp_pool *pool;
        ck_assert_int_eq(tp_create((unsigned)(i % 5) + 1, &pool), 0);
        if (i % 2)
            check_once(pool, 0, 0);
        tp_free(pool);
    }
}
END_TEST

START_TEST(test_pool_of_one)
{
    struct tp_pool *pool;
    ck_assert_int_eq(tp_create(1, &pool), 0);
    ck_assert_uint_eq(tp_size(pool), 1);
    for (int i = 0; i < 1000; i++) {
        check_once(pool, 0, 0);
        check_once(pool, 5, 1);
    }
    tp_free(pool);
}
END_TEST

START_TEST(test_oversubscribed)
{
    /* More threads than cores: spinning workers must not starve the ones
     * that still have to run. */
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned n = (unsigned)(cpus > 0 ? cpus : 1) * 4;
    if (n > MAX_T)
        n = MAX_T;
    struct tp_pool *pool;
    ck_assert_int_eq(tp_create(n, &pool), 0);
    for (int i = 0; i < 300; i++)
        check_once(pool, 0, 0);
    tp_free(pool);
}
END_TEST

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static void slow_fn(void *arg, unsigned ith, unsigned nth)
{
    struct rec *r = arg;
    (void)nth;
    if (ith == 1)
        sleep_ms(5); /* the caller must sleep-wait for this worker */
    atomic_fetch_add(&r->calls[ith], 1);
}

START_TEST(test_sleep_then_wake)
{
    struct tp_pool *pool;
    ck_assert_int_eq(tp_create(3, &pool), 0);
    for (int round = 0; round < 5; round++) {
        sleep_ms(20); /* well past the spin time: workers are asleep */
        check_once(pool, 0, 0);
        check_once(pool, 2, 1);
        struct rec r;
        memset(&r, 0, sizeof r);
        tp_run(pool, slow_fn, &r);
        for (unsigned i = 0; i < 3; i++) {
            unsigned got = atomic_load(&r.calls[i]);
            ck_assert_msg(got == 1, "thread %u ran %u times", i, got);
        }
    }
    tp_free(pool);
}
END_TEST

START_TEST(test_no_spin)
{
    /* INFERD_TP_SPIN_US=0: every wait sleeps on the futex at once, so a lost
     * wake-up in the sleep/wake handshake would hang here (and time out). */
    setenv("INFERD_TP_SPIN_US", "0", 1);
    for (unsigned n = 2; n <= 3; n++) {
        struct tp_pool *pool;
        ck_assert_int_eq(tp_create(n, &pool), 0);
        for (int i = 0; i < 5000; i++) {
            check_once(pool, 0, 0);
            if (i % 7 == 0)
                check_once(pool, 2, 1);
        }
        tp_free(pool);
    }
    unsetenv("INFERD_TP_SPIN_US");
}
END_TEST

static void empty_fn(void *arg, unsigned ith, unsigned nth)
{
    (void)arg;
    (void)ith;
    (void)nth;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

START_TEST(test_dispatch_latency)
{
    /* Measured and printed, not asserted (the machines are noisy). */
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned n = cpus > 1 ? (unsigned)cpus : 2;
    struct tp_pool *pool;
    ck_assert_int_eq(tp_create(n, &pool), 0);
    enum { RUNS = 100000 };
    for (int i = 0; i < 1000; i++)
        tp_run(pool, empty_fn, NULL);
    double t0 = now_s();
    for (int i = 0; i < RUNS; i++)
        tp_run(pool, empty_fn, NULL);
    double dt = now_s() - t0;
    printf("threadpool: %u threads, mean dispatch latency %.0f ns (%d empty runs)\n", n,
           dt / RUNS * 1e9, RUNS);
    sleep_ms(20);
    t0 = now_s();
    tp_run(pool, empty_fn, NULL);
    printf("threadpool: dispatch to sleeping workers %.1f us\n", (now_s() - t0) * 1e6);
    fflush(stdout);
    tp_free(pool);
}
END_TEST

START_TEST(test_membw_small)
{
    struct tp_pool *pool;
    ck_assert_int_eq(tp_create(2, &pool), 0);
    double gbs = kern_membw_read(pool, 1u << 20, 3);
    ck_assert(isfinite(gbs));
    ck_assert(gbs > 0.0);
    /* sizes that are not a multiple of the unit, and the one-thread path */
    gbs = kern_membw_read(pool, 1000, 2);
    ck_assert(isfinite(gbs) && gbs > 0.0);
    gbs = kern_membw_read(NULL, 4097, 1);
    ck_assert(isfinite(gbs) && gbs > 0.0);
    ck_assert(kern_membw_read(pool, 0, 1) < 0);
    ck_assert(kern_membw_read(pool, 4096, 0) < 0);
    tp_free(pool);
}
END_TEST

/* Not part of the suite by default: INFERD_MEMBW_GIB=1 prints the figures
 * for 1 and 2 threads (best of 9), the baseline of `inferctl bench`. */
START_TEST(test_membw_report)
{
    const char *env = getenv("INFERD_MEMBW_GIB");
    size_t gib = env && *env ? (size_t)strtoul(env, NULL, 10) : 0;
    if (gib == 0)
        return;
    for (unsigned t = 1; t <= 2; t++) {
        struct tp_pool *pool;
        ck_assert_int_eq(tp_create(t, &pool), 0);
        double gbs = kern_membw_read(pool, gib << 30, 9);
        printf("membw: %u thread(s), %zu GiB, read %.1f GB/s\n", t, gib, gbs);
        fflush(stdout);
        ck_assert(gbs > 0.0);
        tp_free(pool);
    }
}
END_TEST

static Suite *tp_suite(void)
{
    Suite *s = suite_create("threadpool");
    TCase *tc = tcase_create("pool");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_each_index_once);
    tcase_add_test(tc, test_default_size);
    tcase_add_test(tc, test_back_to_back_sums);
    tcase_add_test(tc, test_run_n);
    tcase_add_test(tc, test_split);
    tcase_add_test(tc, test_create_free_repeatedly);
    tcase_add_test(tc, test_pool_of_one);
    tcase_add_test(tc, test_oversubscribed);
    tcase_add_test(tc, test_sleep_then_wake);
    tcase_add_test(tc, test_no_spin);
    tcase_add_test(tc, test_dispatch_latency);
    suite_add_tcase(s, tc);
    TCase *bw = tcase_create("membw");
    tcase_set_timeout(bw, 300);
    tcase_add_test(bw, test_membw_small);
    tcase_add_test(bw, test_membw_report);
    suite_add_tcase(s, bw);
    return s;
}

int main(void)
{
    return tu_run_suite(tp_suite());
}
