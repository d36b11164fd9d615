/* test_sampler.c - tests of the token sampler (sampler.h): greedy, the
 * sampling chain and its determinism, penalties, top-probability reports and
 * special values. Draw statistics use fixed seeds, so results are
 * reproducible. */
#include "sampler.h"
#include "testutil.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* test_determinism: the first two draws and a hash of all 1000. */
#define PIN_A0   52
#define PIN_A1   215
#define PIN_HASH 0xc29fb7eb5cb5bf04ull

static struct smp_params params_plain(float temperature)
{
    struct smp_params p;
    smp_params_default(&p);
    p.temperature = temperature;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    return p;
}

static struct smp_state *make(const struct smp_params *p, uint32_t n)
{
    struct smp_state *s = NULL;
    ck_assert_int_eq(smp_create(p, n, &s), 0);
    ck_assert_ptr_nonnull(s);
    return s;
}

/* Draw `draws` tokens and count them per id into counts[n] (zeroed here). */
static void draw_counts(struct smp_state *s, const float *l, uint32_t n, int draws,
                        unsigned *counts)
{
    memset(counts, 0, n * sizeof *counts);
    for (int i = 0; i < draws; i++) {
        int32_t t = smp_sample(s, l);
        ck_assert_int_ge(t, 0);
        ck_assert_int_lt(t, (int32_t)n);
        counts[t]++;
    }
}

START_TEST(test_defaults_and_invalid)
{
    struct smp_params p;
    smp_params_default(&p);
    ck_assert(p.temperature == 0.8f && p.top_k == 40 && p.top_p == 0.95f && p.min_p == 0.05f);
    ck_assert(p.repeat_penalty == 1.0f && p.frequency_penalty == 0.0f &&
              p.presence_penalty == 0.0f);
    ck_assert_int_eq(p.penalty_last_n, 64);
    ck_assert_uint_eq(p.seed, 0xfa11);

    struct smp_state *s = (struct smp_state *)&p; /* must be reset to NULL */
    struct smp_params q = p;
    q.temperature = NAN;
    ck_assert_int_eq(smp_create(&q, 10, &s), -EINVAL);
    ck_assert_ptr_null(s);
    static const float bad_p[] = {-0.1f, 1.1f, NAN, INFINITY};
    for (size_t i = 0; i < 4; i++) {
        q = p;
        q.top_p = bad_p[i];
        ck_assert_int_eq(smp_create(&q, 10, &s), -EINVAL);
        q = p;
        q.min_p = bad_p[i];
        ck_assert_int_eq(smp_create(&q, 10, &s), -EINVAL);
    }
    q = p;
    q.repeat_penalty = 0.0f;
    ck_assert_int_eq(smp_create(&q, 10, &s), -EINVAL);
    q = p;
    q.frequency_penalty = NAN;
    ck_assert_int_eq(smp_create(&q, 10, &s), -EINVAL);
    q = p;
    q.presence_penalty = INFINITY;
    ck_assert_int_eq(smp_create(&q, 10, &s), -EINVAL);
    q = p;
    q.penalty_last_n = -2;
    ck_assert_int_eq(smp_create(&q, 10, &s), -EINVAL);
    ck_assert_int_eq(smp_create(&p, 0, &s), -EINVAL);
    ck_assert_int_eq(smp_create(NULL, 10, &s), -EINVAL);
    ck_assert_int_eq(smp_create(&p, 10, NULL), -EINVAL);

    /* Valid edge values. */
    q = p;
    q.temperature = -1.0f;
    q.top_p = 0.0f;
    q.min_p = 1.0f;
    q.top_k = -5;
    q.penalty_last_n = -1;
    q.repeat_penalty = 1.3f;
    ck_assert_int_eq(smp_create(&q, 10, &s), 0);
    smp_free(s);
    smp_free(NULL);
}
END_TEST

START_TEST(test_greedy)
{
    enum { N = 1000 };
    static float l[N];
    unsigned long long rs = 12345;
    for (int i = 0; i < N; i++)
        l[i] = (float)tu_rand_normal(&rs);
    l[777] = 9.0f;
    struct smp_params p = params_plain(0.0f);
    struct smp_state *s = make(&p, N);
    ck_assert_int_eq(smp_sample(s, l), 777);
    l[123] = 9.0f; /* tie: lowest id */
    ck_assert_int_eq(smp_sample(s, l), 123);
    l[5] = NAN; /* NaN never wins */
    ck_assert_int_eq(smp_sample(s, l), 123);
    smp_free(s);

    p.temperature = -3.0f;
    s = make(&p, N);
    ck_assert_int_eq(smp_sample(s, l), 123);
    for (int i = 0; i < N; i++)
        l[i] = i % 2 ? NAN : -INFINITY;
    ck_assert_int_eq(smp_sample(s, l), 0);
    smp_free(s);
}
END_TEST

START_TEST(test_determinism)
{
    enum { N = 300, DRAWS = 1000 };
    static float l[N];
    unsigned long long rs = 777;
    for (int i = 0; i < N; i++) /* no libm: the pinned values below hold anywhere */
        l[i] = (float)(tu_rand_uniform(&rs) * 8.0 - 4.0);
    struct smp_params p;
    smp_params_default(&p);
    p.top_k = 0; /* many candidates, so different seeds must differ */
    p.min_p = 0.0f;
    p.temperature = 1.5f;
    static int32_t a[DRAWS], b[DRAWS], c[DRAWS];
    struct smp_state *s1 = make(&p, N), *s2 = make(&p, N);
    p.seed = 0xfa12;
    struct smp_state *s3 = make(&p, N);
    for (int i = 0; i < DRAWS; i++) {
        a[i] = smp_sample(s1, l);
        b[i] = smp_sample(s2, l);
        c[i] = smp_sample(s3, l);
    }
    ck_assert_mem_eq(a, b, sizeof a);
    int differ = 0;
    for (int i = 0; i < DRAWS; i++)
        differ += a[i] != c[i];
    ck_assert_int_gt(differ, DRAWS / 2);
    /* The sequence is pinned: it must be the same on every machine and in
     * every build (SSE2 or AVX2 clones, sanitizers). A deliberate change to
     * the chain updates these values. */
    uint64_t h = 0;
    for (int i = 0; i < DRAWS; i++)
        h = h * 1000003u + (uint64_t)a[i];
    printf("sampler: first draws %d %d %d %d, hash %#llx\n", a[0], a[1], a[2], a[3],
           (unsigned long long)h);
    ck_assert_int_eq(a[0], PIN_A0);
    ck_assert_int_eq(a[1], PIN_A1);
    ck_assert_uint_eq(h, PIN_HASH);
    smp_free(s1);
    smp_free(s2);
    smp_free(s3);
}
END_TEST

/* Chi-square of observed counts against probabilities p[n]. */
static double chi_square(const unsigned *obs, const double *p, int n, int draws)
{
    double x = 0.0;
    for (int i = 0; i < n; i++) {
        double e = p[i] * draws;
        x += (obs[i] - e) * (obs[i] - e) / e;
    }
    return x;
}

START_TEST(test_temperature_frequencies)
{
    enum { N = 8, DRAWS = 200000 };
    static const float l[N] = {1.0f, 0.5f, 2.0f, -1.0f, 0.0f, 1.5f, -0.5f, 0.25f};
    static const float temps[] = {1.0f, 0.7f, 2.0f};
    for (size_t t = 0; t < 3; t++) {
        struct smp_params p = params_plain(temps[t]);
        p.seed = 42 + t;
        struct smp_state *s = make(&p, N);
        double prob[N], sum = 0.0;
        for (int i = 0; i < N; i++)
            sum += prob[i] = exp(l[i] / temps[t]);
        for (int i = 0; i < N; i++)
            prob[i] /= sum;
        unsigned counts[N];
        draw_counts(s, l, N, DRAWS, counts);
        double x = chi_square(counts, prob, N, DRAWS);
        /* 7 degrees of freedom: P(X > 40) is about 1e-6. */
        if (!(x < 40.0))
            ck_abort_msg("temperature %g: chi-square %g", temps[t], x);
        smp_free(s);
    }
}
END_TEST

START_TEST(test_top_k_one_is_greedy)
{
    enum { N = 2000 };
    static float l[N];
    unsigned long long rs = 99;
    struct smp_params p = params_plain(1.5f);
    p.top_k = 1;
    struct smp_params g = params_plain(0.0f);
    struct smp_state *s = make(&p, N), *sg = make(&g, N);
    for (int round = 0; round < 200; round++) {
        for (int i = 0; i < N; i++)
            l[i] = (float)tu_rand_normal(&rs);
        if (round % 3 == 0)
            l[N - 1] = l[round] = 10.0f; /* ties at the max */
        ck_assert_int_eq(smp_sample(s, l), smp_sample(sg, l));
    }
    smp_free(s);
    smp_free(sg);
}
END_TEST

/* A large vocabulary whose mass sits on a few tokens: `ids` get log(probs),
 * every other token a negligible logit. */
static float *crafted(uint32_t n, const int32_t *ids, const double *probs, int m)
{
    float *l = malloc(n * sizeof *l);
    ck_assert_ptr_nonnull(l);
    for (uint32_t i = 0; i < n; i++)
        l[i] = -40.0f - (float)(i % 7);
    for (int i = 0; i < m; i++)
        l[ids[i]] = (float)log(probs[i]);
    return l;
}

/* Draws only from `keep` (each seen), never from anything else. */
static void check_support(const struct smp_params *p, const float *l, uint32_t n,
                          const int32_t *keep, int n_keep)
{
    const int draws = n > 10000 ? 1000 : 20000;
    struct smp_state *s = make(p, n);
    unsigned *counts = malloc(n * sizeof *counts);
    ck_assert_ptr_nonnull(counts);
    draw_counts(s, l, n, draws, counts);
    unsigned in = 0;
    for (int i = 0; i < n_keep; i++) {
        if (counts[keep[i]] == 0)
            ck_abort_msg("token %d never drawn", keep[i]);
        in += counts[keep[i]];
    }
    if (in != (unsigned)draws) {
        for (uint32_t i = 0; i < n; i++)
            if (counts[i])
                fprintf(stderr, "drawn: %u x%u\n", i, counts[i]);
        ck_abort_msg("%u of %d draws outside the expected support", draws - in, draws);
    }
    free(counts);
    smp_free(s);
}

START_TEST(test_top_k_support)
{
    enum { N = 5000 };
    static const int32_t ids[] = {4000, 17, 2500, 3};
    static const double pr[] = {0.4, 0.3, 0.2, 0.1};
    float *l = crafted(N, ids, pr, 4);
    struct smp_params p = params_plain(1.0f);
    p.top_k = 3;
    check_support(&p, l, N, ids, 3);
    p.top_k = 4;
    check_support(&p, l, N, ids, 4);
    /* ties at the k-th place: the lowest ids stay */
    l[10] = l[3];
    l[2] = l[3];
    check_support(&p, l, N, (const int32_t[]){4000, 17, 2500, 2}, 4);
    free(l);
}
END_TEST

START_TEST(test_top_p_support)
{
    static const int32_t ids[] = {900, 4, 2048, 77};
    static const double pr[] = {0.5, 0.3, 0.15, 0.05};
    for (int big = 0; big < 2; big++) {
        uint32_t n = big ? 100000 : 3000;
        float *l = crafted(n, ids, pr, 4);
        struct smp_params p = params_plain(1.0f);
        p.top_p = 0.4f;
        check_support(&p, l, n, ids, 1);
        p.top_p = 0.75f;
        check_support(&p, l, n, ids, 2);
        p.top_p = 0.85f;
        check_support(&p, l, n, ids, 3);
        p.top_p = 0.0f;
        check_support(&p, l, n, ids, 1);
        /* after top-k, top-p renormalises over the k survivors */
        p.top_k = 3;
        p.top_p = 0.85f; /* 0.5/0.95, 0.8/0.95 = 0.842 < 0.85 */
        check_support(&p, l, n, ids, 3);
        p.top_p = 0.8f;
        check_support(&p, l, n, ids, 2);
        free(l);
    }
}
END_TEST

START_TEST(test_top_p_ties)
{
    /* Equal logits: the prefix is taken by ascending id. */
    enum { N = 10000 };
    static float l[N];
    for (int i = 0; i < N; i++)
        l[i] = 0.25f;
    struct smp_params p = params_plain(1.0f);
    p.top_p = 0.5f;
    struct smp_state *s = make(&p, N);
    static unsigned counts[N];
    draw_counts(s, l, N, 50000, counts);
    for (int i = N / 2; i < N; i++)
        ck_assert_uint_eq(counts[i], 0);
    unsigned seen = 0;
    for (int i = 0; i < N / 2; i++)
        seen += counts[i] > 0;
    ck_assert_uint_gt(seen, N / 2 - 100);
    smp_free(s);

    /* A tie straddling the boundary: 0.4 then three at 0.2. */
    static const int32_t ids[] = {50, 31, 7, 40};
    static const double pr[] = {0.4, 0.2, 0.2, 0.2};
    float *lc = crafted(200, ids, pr, 4);
    p.top_p = 0.5f;
    check_support(&p, lc, 200, (const int32_t[]){50, 7}, 2);
    p.top_p = 0.7f;
    check_support(&p, lc, 200, (const int32_t[]){50, 7, 31}, 3);
    free(lc);
}
END_TEST

START_TEST(test_min_p_support)
{
    static const int32_t ids[] = {12, 600, 3, 1999};
    static const double pr[] = {0.5, 0.3, 0.15, 0.05};
    float *l = crafted(2000, ids, pr, 4);
    struct smp_params p = params_plain(1.0f);
    p.min_p = 0.61f; /* threshold 0.305 */
    check_support(&p, l, 2000, ids, 1);
    p.min_p = 0.5f; /* 0.25 */
    check_support(&p, l, 2000, ids, 2);
    p.min_p = 0.2f; /* 0.1 */
    check_support(&p, l, 2000, ids, 3);
    p.min_p = 0.05f; /* 0.025 */
    check_support(&p, l, 2000, ids, 4);
    /* min-p is applied to the temperature-1 distribution, before the
     * temperature: a high temperature does not widen it. */
    p.min_p = 0.5f;
    p.temperature = 5.0f;
    check_support(&p, l, 2000, ids, 2);
    free(l);
}
END_TEST

static int32_t greedy_after(const struct smp_params *base, const float *l, uint32_t n,
                            const int32_t *hist, int n_hist)
{
    struct smp_params p = *base;
    p.temperature = 0.0f;
    struct smp_state *s = make(&p, n);
    for (int i = 0; i < n_hist; i++)
        smp_accept(s, hist[i]);
    int32_t t = smp_sample(s, l);
    smp_free(s);
    return t;
}

START_TEST(test_penalties)
{
    enum { N = 16 };
    float l[N];
    for (int i = 0; i < N; i++)
        l[i] = -5.0f;
    struct smp_params p = params_plain(0.0f);
    p.penalty_last_n = 64;
    const int32_t h0[] = {0};
    const int32_t h000[] = {0, 0, 0};

    /* repeat: positive logits are divided: 2.0 / 1.25 = 1.6 */
    l[0] = 2.0f;
    l[1] = 1.65f;
    p.repeat_penalty = 1.25f;
    ck_assert_int_eq(greedy_after(&p, l, N, NULL, 0), 0);
    ck_assert_int_eq(greedy_after(&p, l, N, h0, 1), 1);
    l[1] = 1.55f;
    ck_assert_int_eq(greedy_after(&p, l, N, h0, 1), 0);
    /* ...negative ones multiplied: -1.0 * 1.25 = -1.25 */
    for (int i = 0; i < N; i++)
        l[i] = -5.0f;
    l[0] = -1.0f;
    l[1] = -1.2f;
    ck_assert_int_eq(greedy_after(&p, l, N, h0, 1), 1);
    l[1] = -1.3f;
    ck_assert_int_eq(greedy_after(&p, l, N, h0, 1), 0);
    /* the count does not matter for the repeat penalty */
    ck_assert_int_eq(greedy_after(&p, l, N, h000, 3), 0);

    /* frequency: minus count * value: 2.0 - 3 * 0.125 = 1.625 */
    p.repeat_penalty = 1.0f;
    p.frequency_penalty = 0.125f;
    l[0] = 2.0f;
    l[1] = 1.7f;
    ck_assert_int_eq(greedy_after(&p, l, N, h0, 1), 0);
    ck_assert_int_eq(greedy_after(&p, l, N, h000, 3), 1);
    l[1] = 1.6f;
    ck_assert_int_eq(greedy_after(&p, l, N, h000, 3), 0);

    /* presence: minus value once: 2.0 - 0.5 = 1.5, whatever the count */
    p.frequency_penalty = 0.0f;
    p.presence_penalty = 0.5f;
    l[1] = 1.55f;
    ck_assert_int_eq(greedy_after(&p, l, N, h0, 1), 1);
    ck_assert_int_eq(greedy_after(&p, l, N, h000, 3), 1);
    l[1] = 1.45f;
    ck_assert_int_eq(greedy_after(&p, l, N, h000, 3), 0);

    /* window: token 0 leaves a window of 2 after two newer tokens */
    l[1] = 1.55f;
    p.penalty_last_n = 2;
    const int32_t h_old[] = {0, 5, 6};
    const int32_t h_new[] = {5, 0, 6};
    ck_assert_int_eq(greedy_after(&p, l, N, h_old, 3), 0);
    ck_assert_int_eq(greedy_after(&p, l, N, h_new, 3), 1);
    /* whole history */
    p.penalty_last_n = -1;
    int32_t h_long[300];
    h_long[0] = 0;
    for (int i = 1; i < 300; i++)
        h_long[i] = 2 + i % 10;
    ck_assert_int_eq(greedy_after(&p, l, N, h_long, 300), 1);
    /* off */
    p.penalty_last_n = 0;
    ck_assert_int_eq(greedy_after(&p, l, N, h_long, 300), 0);
    /* ids out of range are ignored */
    p.penalty_last_n = 8;
    const int32_t h_bad[] = {-1, N, 1 << 30};
    ck_assert_int_eq(greedy_after(&p, l, N, h_bad, 3), 0);
    /* the logits passed in are not modified */
    ck_assert(l[0] == 2.0f);
}
END_TEST

START_TEST(test_penalties_sampling)
{
    /* Penalties also apply on the sampling path: the penalised token's
     * frequency drops to what softmax of the penalised logits predicts. */
    enum { N = 4, DRAWS = 100000 };
    const float l[N] = {1.0f, 1.0f, 0.0f, 0.0f};
    struct smp_params p = params_plain(1.0f);
    p.presence_penalty = 1.0f;
    struct smp_state *s = make(&p, N);
    smp_accept(s, 0);
    unsigned counts[N];
    draw_counts(s, l, N, DRAWS, counts);
    double pr[N] = {exp(0.0), exp(1.0), exp(0.0), exp(0.0)}, sum = 0;
    for (int i = 0; i < N; i++)
        sum += pr[i];
    for (int i = 0; i < N; i++)
        pr[i] /= sum;
    double x = chi_square(counts, pr, N, DRAWS);
    ck_assert_msg(x < 30.0, "chi-square %g", x);
    smp_free(s);
}
END_TEST

static int cmp_ref(const void *a, const void *b)
{
    const struct smp_prob *x = a, *y = b;
    /* by logit (kept in logprob here) descending, id ascending */
    if (x->logprob != y->logprob)
        return x->logprob > y->logprob ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* llama.cpp server's computation, straightforwardly: sort everything by
 * logit, sum expf(l - max) in float in that order, divide. */
static void top_probs_ref(const float *l, uint32_t n, struct smp_prob *out)
{
    for (uint32_t i = 0; i < n; i++)
        out[i] = (struct smp_prob){.id = (int32_t)i, .logprob = l[i]};
    qsort(out, n, sizeof *out, cmp_ref);
    float max = out[0].logprob, sum = 0.0f;
    for (uint32_t i = 0; i < n; i++)
        sum += expf(out[i].logprob - max);
    for (uint32_t i = 0; i < n; i++) {
        out[i].p = expf(out[i].logprob - max) / sum;
        out[i].logprob = logf(out[i].p);
    }
}

START_TEST(test_top_probs)
{
    enum { N = 50000 };
    float *l = malloc(N * sizeof *l);
    struct smp_prob *got = malloc(N * sizeof *got), *ref = malloc(N * sizeof *ref);
    ck_assert(l && got && ref);
    unsigned long long rs = 2024;
    for (int trial = 0; trial < 4; trial++) {
        float scale = trial == 0 ? 0.5f : trial == 1 ? 3.0f : 8.0f;
        for (int i = 0; i < N; i++)
            l[i] = (float)(tu_rand_normal(&rs) * scale);
        if (trial == 3) /* quantised logits: many ties */
            for (int i = 0; i < N; i++)
                l[i] = roundf(l[i]);
        top_probs_ref(l, N, ref);
        static const size_t ks[] = {1, 10, 1000, N, N + 5};
        for (size_t j = 0; j < 5; j++) {
            size_t k = ks[j];
            size_t w = smp_top_probs(l, N, k, got);
            ck_assert_uint_eq(w, k < N ? k : N);
            for (size_t i = 0; i < w; i++) {
                if (got[i].id != ref[i].id || got[i].p != ref[i].p ||
                    got[i].logprob != ref[i].logprob)
                    ck_abort_msg("trial %d k %zu entry %zu: got (%d %a %a) want (%d %a %a)", trial,
                                 k, i, got[i].id, (double)got[i].p, (double)got[i].logprob,
                                 ref[i].id, (double)ref[i].p, (double)ref[i].logprob);
                if (i > 0) {
                    ck_assert(got[i].p <= got[i - 1].p);
                    if (got[i].p == got[i - 1].p && l[got[i].id] == l[got[i - 1].id])
                        ck_assert_int_gt(got[i].id, got[i - 1].id);
                }
            }
            if (w == N) {
                double sum = 0.0;
                for (size_t i = 0; i < w; i++)
                    sum += got[i].p;
                /* float sums over 50k terms, as llama.cpp: about 1e-3 */
                ck_assert_msg(fabs(sum - 1.0) < 5e-3, "sum %g", sum);
            }
        }
    }
    ck_assert_uint_eq(smp_top_probs(l, N, 0, got), 0);
    free(l);
    free(got);
    free(ref);
}
END_TEST

START_TEST(test_top_probs_small)
{
    const float l[5] = {1.0f, 3.0f, 3.0f, -INFINITY, NAN};
    struct smp_prob out[5];
    ck_assert_uint_eq(smp_top_probs(l, 5, 5, out), 5);
    ck_assert_int_eq(out[0].id, 1);
    ck_assert_int_eq(out[1].id, 2);
    ck_assert_int_eq(out[2].id, 0);
    ck_assert(out[0].p == out[1].p);
    float sum = 1.0f + 1.0f + expf(-2.0f);
    ck_assert(out[0].p == 1.0f / sum);
    ck_assert(out[2].p == expf(-2.0f) / sum);
    ck_assert(out[0].logprob == logf(out[0].p));
    ck_assert(out[3].p == 0.0f && out[4].p == 0.0f);
    ck_assert(isinf(out[3].logprob) && out[3].logprob < 0);
    ck_assert_int_eq(out[3].id, 3); /* NaN ranks as -inf, tie: lower id */
    ck_assert_int_eq(out[4].id, 4);

    const float inf[4] = {0.0f, INFINITY, 5.0f, INFINITY};
    ck_assert_uint_eq(smp_top_probs(inf, 4, 2, out), 2);
    ck_assert(out[0].id == 1 && out[1].id == 3 && out[0].p == 0.5f && out[1].p == 0.5f);
    const float none[3] = {NAN, -INFINITY, NAN};
    ck_assert_uint_eq(smp_top_probs(none, 3, 3, out), 3);
    ck_assert(out[0].id == 0 && fabsf(out[0].p - 1.0f / 3.0f) < 1e-7f);
}
END_TEST

START_TEST(test_logprob)
{
    enum { N = 32000 };
    float *l = malloc(N * sizeof *l);
    ck_assert_ptr_nonnull(l);
    unsigned long long rs = 5;
    for (int i = 0; i < N; i++)
        l[i] = (float)(tu_rand_normal(&rs) * 4.0);
    double max = -INFINITY, sum = 0.0;
    for (int i = 0; i < N; i++)
        max = l[i] > max ? l[i] : max;
    for (int i = 0; i < N; i++)
        sum += exp((double)l[i] - max);
    for (int id = 0; id < N; id += 997) {
        double want = (double)l[id] - max - log(sum);
        double got = smp_logprob(l, N, id);
        ck_assert_msg(fabs(got - want) < 1e-12 * (1.0 + fabs(want)), "id %d: %.17g vs %.17g", id,
                      got, want);
    }
    ck_assert(isnan(smp_logprob(l, N, -1)));
    ck_assert(isnan(smp_logprob(l, N, N)));
    l[3] = NAN;
    ck_assert(isinf(smp_logprob(l, N, 3)));
    l[4] = INFINITY;
    ck_assert(smp_logprob(l, N, 4) == 0.0);
    ck_assert(isinf(smp_logprob(l, N, 5)));
    free(l);
}
END_TEST

START_TEST(test_special_values)
{
    enum { N = 1000 };
    static float l[N];
    unsigned long long rs = 31;
    for (int i = 0; i < N; i++)
        l[i] = (float)tu_rand_normal(&rs);
    for (int i = 0; i < N; i += 3)
        l[i] = NAN;
    l[1] = INFINITY; /* NaN must not win, and -inf never be drawn */
    for (int i = 4; i < N; i += 7)
        l[i] = -INFINITY;
    struct smp_params variants[4];
    smp_params_default(&variants[0]);
    variants[1] = params_plain(1.0f);
    variants[2] = params_plain(0.5f);
    variants[2].top_p = 0.9f;
    variants[3] = params_plain(1.0f);
    variants[3].min_p = 0.1f;
    for (int v = 0; v < 4; v++) {
        struct smp_state *s = make(&variants[v], N);
        for (int i = 0; i < 100; i++)
            ck_assert_int_eq(smp_sample(s, l), 1);
        l[1] = 0.0f;
        for (int i = 0; i < 1000; i++) {
            int32_t t = smp_sample(s, l);
            ck_assert(!isnan(l[t]) && !isinf(l[t]));
        }
        l[1] = INFINITY;
        l[2] = INFINITY; /* two +inf: uniform between them */
        unsigned c1 = 0, c2 = 0;
        for (int i = 0; i < 2000; i++) {
            int32_t t = smp_sample(s, l);
            ck_assert(t == 1 || t == 2);
            c1 += t == 1;
            c2 += t == 2;
        }
        ck_assert(c1 > 800 && c2 > 800);
        l[2] = 0.3f;
        smp_free(s);
    }
    /* all NaN / -inf: token 0, without crashing */
    for (int i = 0; i < N; i++)
        l[i] = i % 2 ? NAN : -INFINITY;
    struct smp_state *s = make(&variants[1], N);
    ck_assert_int_eq(smp_sample(s, l), 0);
    smp_free(s);
    s = make(&variants[0], N);
    ck_assert_int_eq(smp_sample(s, l), 0);
    smp_free(s);
    /* extreme finite logits and temperatures */
    for (int i = 0; i < N; i++)
        l[i] = (i % 2 ? 1e38f : -3e38f);
    l[1] = 3e38f;
    struct smp_params tiny = params_plain(1e-30f);
    s = make(&tiny, N);
    ck_assert_int_eq(smp_sample(s, l), 1);
    smp_free(s);
}
END_TEST

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

START_TEST(test_speed_large_vocab)
{
    /* 128k vocabulary: each chain must stay well under a millisecond in an
     * optimised build; asserted loosely (sanitizer builds, noisy VMs). */
    enum { N = 128256, REPS = 50 };
    float *l = malloc(N * sizeof *l);
    ck_assert_ptr_nonnull(l);
    unsigned long long rs = 8;
    for (int i = 0; i < N; i++)
        l[i] = (float)(tu_rand_normal(&rs) * 2.5);
    struct smp_params ps[4];
    const char *names[4] = {"defaults", "top-p 0.95 only", "temperature only", "penalties+greedy"};
    smp_params_default(&ps[0]);
    ps[1] = params_plain(0.8f);
    ps[1].top_p = 0.95f;
    ps[2] = params_plain(0.8f);
    ps[3] = params_plain(0.0f);
    ps[3].repeat_penalty = 1.1f;
    for (int v = 0; v < 4; v++) {
        struct smp_state *s = make(&ps[v], N);
        for (int i = 0; i < 64; i++)
            smp_accept(s, i * 37);
        smp_sample(s, l);
        double t0 = now_s();
        for (int r = 0; r < REPS; r++)
            smp_sample(s, l);
        double ms = (now_s() - t0) / REPS * 1e3;
        printf("sampler: %s, %d-token vocabulary: %.3f ms per token\n", names[v], N, ms);
        ck_assert_msg(ms < 25.0, "%s: %.3f ms", names[v], ms);
        smp_free(s);
    }
    fflush(stdout);
    free(l);
}
END_TEST

static Suite *sampler_suite(void)
{
    Suite *s = suite_create("sampler");
    TCase *tc = tcase_create("sampler");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_defaults_and_invalid);
    tcase_add_test(tc, test_greedy);
    tcase_add_test(tc, test_determinism);
    tcase_add_test(tc, test_temperature_frequencies);
    tcase_add_test(tc, test_top_k_one_is_greedy);
    tcase_add_test(tc, test_top_k_support);
    tcase_add_test(tc, test_top_p_support);
    tcase_add_test(tc, test_top_p_ties);
    tcase_add_test(tc, test_min_p_support);
    tcase_add_test(tc, test_penalties);
    tcase_add_test(tc, test_penalties_sampling);
    tcase_add_test(tc, test_top_probs);
    tcase_add_test(tc, test_top_probs_small);
    tcase_add_test(tc, test_logprob);
    tcase_add_test(tc, test_special_values);
    tcase_add_test(tc, test_speed_large_vocab);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(sampler_suite());
}
