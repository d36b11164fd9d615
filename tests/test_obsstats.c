/* test_obsstats.c - the daemon's own histograms (daemon/engine/obsstats.c):
 * slot boundaries (v <= 1 in slot 0, 2^(i-1) < v <= 2^i in slot i, the top
 * slot open-ended), agreement with the slot arithmetic of the BPF program
 * (bpf/inferd.bpf.c) over every boundary and random values, counts, sums
 * (wrapping as the BPF ones do) and merging. */
#include <stdint.h>
#include <string.h>

#include "obsstats.h"
#include "testutil.h"

/* The BPF program's slot, written as it is there (log2_floor by halving
 * shifts, then the clamp to the last slot). */
static unsigned bpf_slot(uint64_t v)
{
    if (v <= 1)
        return 0;
    uint64_t x = v - 1;
    unsigned r = 0, shift;
    shift = (x > 0xffffffffULL) << 5; x >>= shift; r |= shift;
    shift = (x > 0xffff) << 4; x >>= shift; r |= shift;
    shift = (x > 0xff) << 3; x >>= shift; r |= shift;
    shift = (x > 0xf) << 2; x >>= shift; r |= shift;
    shift = (x > 0x3) << 1; x >>= shift; r |= shift;
    r |= (unsigned)(x >> 1);
    unsigned slot = r + 1;
    return slot > INFERD_HIST_SLOTS - 1 ? INFERD_HIST_SLOTS - 1 : slot;
}

/* The definition itself: the first i with v <= 2^i (the last slot takes
 * the rest). */
static unsigned ref_slot(uint64_t v)
{
    for (unsigned i = 0; i < INFERD_HIST_SLOTS; i++)
        if (v <= (1ULL << i))
            return i;
    return INFERD_HIST_SLOTS - 1;
}

START_TEST(test_slot_boundaries)
{
    static const struct {
        uint64_t v;
        unsigned slot;
    } cases[] = {
        {0, 0}, {1, 0}, {2, 1}, {3, 2}, {4, 2}, {5, 3}, {7, 3}, {8, 3}, {9, 4},
        {1000, 10}, {1024, 10}, {1025, 11}, {1000000000ULL, 30},
        {1ULL << 62, 62}, {(1ULL << 62) + 1, 63}, {1ULL << 63, 63}, {(1ULL << 63) + 1, 63},
        {UINT64_MAX - 1, 63}, {UINT64_MAX, 63},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ck_assert_msg(obs_hist_slot(cases[i].v) == cases[i].slot, "v=%llu: slot %u, want %u",
                      (unsigned long long)cases[i].v, obs_hist_slot(cases[i].v), cases[i].slot);
        ck_assert_uint_eq(bpf_slot(cases[i].v), cases[i].slot);
    }
    /* Every power of two and its neighbours: 2^k is the inclusive top of
     * slot k, 2^k + 1 starts slot k + 1, 2^k - 1 stays in slot k (k >= 2). */
    for (unsigned k = 0; k < 64; k++) {
        uint64_t p = 1ULL << k;
        unsigned top = k < INFERD_HIST_SLOTS - 1 ? k + 1 : INFERD_HIST_SLOTS - 1;
        ck_assert_uint_eq(obs_hist_slot(p), k);
        ck_assert_uint_eq(obs_hist_slot(p + 1), k == 0 ? 1 : top);
        if (k >= 2)
            ck_assert_uint_eq(obs_hist_slot(p - 1), k);
        uint64_t vs[] = {p - 1, p, p + 1};
        for (int j = 0; j < 3; j++) {
            ck_assert_uint_eq(obs_hist_slot(vs[j]), ref_slot(vs[j]));
            ck_assert_uint_eq(obs_hist_slot(vs[j]), bpf_slot(vs[j]));
        }
    }
}
END_TEST

START_TEST(test_slot_random)
{
    unsigned long long st = tu_rng_seed();
    for (int i = 0; i < 200000; i++) {
        /* Values spread over every magnitude. */
        unsigned bits = (unsigned)(tu_rand_uniform(&st) * 64);
        uint64_t v = ((uint64_t)(tu_rand_uniform(&st) * 4294967296.0) << 32 |
                      (uint64_t)(tu_rand_uniform(&st) * 4294967296.0));
        v = bits ? v >> (64 - bits) : 0;
        unsigned s = obs_hist_slot(v);
        ck_assert_msg(s == ref_slot(v) && s == bpf_slot(v), "v=%llu", (unsigned long long)v);
    }
}
END_TEST

START_TEST(test_add_and_merge)
{
    struct inferd_hist a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    uint64_t vs[] = {0, 1, 2, 3, 4, 5, 1024, 1025, UINT64_MAX};
    uint64_t sum = 0;
    for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++) {
        obs_hist_add(&a, vs[i]);
        sum += vs[i]; /* wraps, as the histogram's sum does */
    }
    ck_assert_uint_eq(a.count, 9);
    ck_assert_uint_eq(a.sum, sum);
    ck_assert_uint_eq(a.slots[0], 2);
    ck_assert_uint_eq(a.slots[1], 1);
    ck_assert_uint_eq(a.slots[2], 2);
    ck_assert_uint_eq(a.slots[3], 1);
    ck_assert_uint_eq(a.slots[10], 1);
    ck_assert_uint_eq(a.slots[11], 1);
    ck_assert_uint_eq(a.slots[63], 1);
    unsigned long long total = 0;
    for (int i = 0; i < INFERD_HIST_SLOTS; i++)
        total += a.slots[i];
    ck_assert_uint_eq(total, a.count);

    obs_hist_add(&b, 7);
    obs_hist_merge(&b, &a);
    ck_assert_uint_eq(b.count, 10);
    ck_assert_uint_eq(b.sum, sum + 7);
    ck_assert_uint_eq(b.slots[3], 2);

    struct obs_stats x, y;
    memset(&x, 0, sizeof x);
    memset(&y, 0, sizeof y);
    obs_hist_add(&x.h[INFERD_H_TTFT], 100);
    x.finished[INFERD_PROBE_EOS] = 2;
    obs_hist_add(&y.h[INFERD_H_TTFT], 200);
    obs_hist_add(&y.h[INFERD_H_BATCH], 16);
    y.finished[INFERD_PROBE_EOS] = 3;
    y.finished[INFERD_PROBE_ERROR] = 1;
    obs_stats_merge(&x, &y);
    ck_assert_uint_eq(x.h[INFERD_H_TTFT].count, 2);
    ck_assert_uint_eq(x.h[INFERD_H_TTFT].sum, 300);
    ck_assert_uint_eq(x.h[INFERD_H_TTFT].slots[7], 1);
    ck_assert_uint_eq(x.h[INFERD_H_TTFT].slots[8], 1);
    ck_assert_uint_eq(x.h[INFERD_H_BATCH].slots[4], 1);
    ck_assert_uint_eq(x.finished[INFERD_PROBE_EOS], 5);
    ck_assert_uint_eq(x.finished[INFERD_PROBE_ERROR], 1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("obsstats");
    TCase *tc = tcase_create("obsstats");
    tcase_add_test(tc, test_slot_boundaries);
    tcase_add_test(tc, test_slot_random);
    tcase_add_test(tc, test_add_and_merge);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
