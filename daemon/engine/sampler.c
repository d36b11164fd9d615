/* sampler.c - next-token selection (see sampler.h): penalties, top-k, top-p,
 * min-p, temperature, and the draw from the request's own RNG.
 *
 * Special values: a NaN logit is treated as -inf (never drawn, never the
 * arg-max unless every logit is NaN or -inf, in which case token 0 is
 * returned). If any logit is +inf, the draw is uniform among the +inf tokens.
 * A temperature so small that 1/temperature overflows a float is greedy.
 *
 * Cost: no full sort of the vocabulary. Tokens more than 50 nats (times the
 * temperature, if above 1) below the best are dropped first (their weight
 * cannot move a double sum). Top-k keeps a k-entry heap in one pass over the
 * logits; top-p bins the candidates by logit, finds the bin where the mass
 * crosses top_p, and settles only that bin with a mass-weighted quickselect;
 * min-p, temperature and the draw are linear passes over what is left. The
 * exp, max and sum passes use GCC vector extensions (SSE2, or AVX2 through
 * target_clones). A 128k vocabulary takes well under a millisecond.
 *
 * Determinism: weights come from smp_expf8(), plain IEEE arithmetic (no
 * libm, no FMA contraction under -std=c11, identical in every clone), and
 * sums run in a fixed order, so the same inputs give the same tokens on
 * every machine. The RNG is xoshiro256** seeded through splitmix64.
 */
#include "sampler.h"

/* Results must not depend on the compiler's FP contraction either: gcc does
 * not contract under -std=c11; clang needs to be told. */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Top-p on more candidates than SMP_TOP_P_SMALL first bins them by logit:
 * SMP_BINS bins of 1/SMP_BIN_SCALE nat below the best logit (the last bin
 * takes everything further down). */
#define SMP_TOP_P_SMALL 64
#define SMP_BINS        2048
#define SMP_BIN_SCALE   32.0f

/* A candidate set, one array per field (so the exp pass vectorises). */
struct smp_set {
    float *l;    /* logit (after penalties) */
    int32_t *id; /* token */
    double *e;   /* exp(l - max), then the tempered weight; NULL if unused */
};

struct smp_state {
    struct smp_params p;
    uint32_t n_vocab;
    uint64_t rng[4];
    bool penalties; /* any penalty active */
    /* History window (penalties only). ring is NULL for the whole history. */
    int32_t *ring;
    size_t ring_cap, ring_len, ring_head; /* head: oldest entry once full */
    uint32_t *count;                      /* [n_vocab] occurrences in the window */
    uint32_t *dpos;                       /* [n_vocab] index in distinct while count > 0 */
    int32_t *distinct;                    /* tokens with count > 0 */
    size_t n_distinct;
    float *work;         /* [n_vocab] penalised logits */
    struct smp_set cand; /* [cand_cap] */
    size_t cand_cap;     /* top_k if it is below n_vocab, else n_vocab */
    struct smp_set tmp;  /* [cand_cap] top-p scratch (NULL arrays if off) */
    double *hist;        /* [2 * SMP_BINS] top-p mass histogram */
};

/* ---- RNG ---------------------------------------------------------------- */

static uint64_t smp_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t smp_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t smp_next(uint64_t s[4])
{
    uint64_t r = smp_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = smp_rotl(s[3], 45);
    return r;
}

/* Uniform in [0, 1) with 53 random bits. */
static double smp_uniform(uint64_t s[4])
{
    return (double)(smp_next(s) >> 11) * 0x1.0p-53;
}

/* ---- vector kernels ------------------------------------------------------ */

/* GCC vector extensions: plain SSE2 code in the baseline build, and one AVX
 * instruction per operation in the AVX2 copies below, chosen at run time
 * (explicit dispatch, not ifunc/target_clones: ifunc resolvers run before the
 * sanitizer runtimes are up). Every lane goes through the same IEEE
 * operations (no FMA contraction under -std=c11) and the sums run in a fixed
 * order, so both copies give identical results. */
typedef double smp_v4d __attribute__((vector_size(32)));
typedef float smp_v4f __attribute__((vector_size(16)));
typedef int64_t smp_v4i __attribute__((vector_size(32)));
typedef uint64_t smp_v4u __attribute__((vector_size(32)));
typedef float smp_v8f __attribute__((vector_size(32)));
typedef int32_t smp_v8i __attribute__((vector_size(32)));
typedef uint32_t smp_v8u __attribute__((vector_size(32)));

#define SMP_INLINE static inline __attribute__((always_inline))

/* Horizontal sum of four lanes, in a fixed order. */
SMP_INLINE double smp_hsum4(const smp_v4d *a)
{
    double lanes[4];
    memcpy(lanes, a, sizeof lanes);
    return (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
}

/* out[0..4) = exp((l[0..4) - max) * scale) for arguments <= 0, relative
 * error about 3e-16; 0 below -700 and for -inf and NaN; added to *acc.
 * Round-to-nearest reduction x = k ln2 + r, |r| <= ln2/2, a degree-12
 * Taylor polynomial, and an exact scaling by 2^k: the low mantissa bits of
 * x / ln2 + 1.5 * 2^52 hold 2^51 + k, and (those bits + 1023) << 52 drops
 * the rest, leaving the bits of 2^k (k >= -1010: a normal number). */
SMP_INLINE void smp_exp4(const float *l, double *out, double max, double scale, smp_v4d *acc)
{
    smp_v4f lf;
    memcpy(&lf, l, sizeof lf);
    smp_v4d x = (__builtin_convertvector(lf, smp_v4d) - max) * scale;
    smp_v4i keep = x >= -700.0; /* all ones where true; false for NaN */
    const smp_v4d lo = {-700.0, -700.0, -700.0, -700.0};
    smp_v4d xc = (smp_v4d)(((smp_v4i)x & keep) | ((smp_v4i)lo & ~keep));
    smp_v4d kd = xc * 0x1.71547652b82fep0 + 0x1.8p52;
    smp_v4u kbits = (smp_v4u)kd;
    kd -= 0x1.8p52;
    smp_v4d r = xc - kd * 0x1.62e42fefa3800p-1 - kd * 0x1.ef35793c76730p-45;
    smp_v4d p = r * (1.0 / 479001600.0) + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    smp_v4u sbits = ((kbits + 1023u) << 52) & (smp_v4u)keep;
    smp_v4d res = p * (smp_v4d)sbits;
    memcpy(out, &res, sizeof res);
    *acc += res;
}

/* Single-precision weights for the sampling chain: out[0..8) =
 * exp((l[0..8) - max) * scale) for arguments <= 0, relative error about
 * 1e-7; 0 below -86 and for -inf and NaN. Same scheme as smp_exp4 with
 * 1.5 * 2^23, a degree-7 polynomial and k >= -125. The results are widened
 * to double and added to *acc. */
SMP_INLINE void smp_expf8(const float *l, double *out, float max, float scale, smp_v4d *acc)
{
    smp_v8f x;
    memcpy(&x, l, sizeof x);
    x = (x - max) * scale;
    smp_v8i keep = x >= -86.0f;
    const smp_v8f lo = {-86.0f, -86.0f, -86.0f, -86.0f, -86.0f, -86.0f, -86.0f, -86.0f};
    smp_v8f xc = (smp_v8f)(((smp_v8i)x & keep) | ((smp_v8i)lo & ~keep));
    smp_v8f kd = xc * 0x1.715476p0f + 0x1.8p23f;
    smp_v8u kbits = (smp_v8u)kd;
    kd -= 0x1.8p23f;
    smp_v8f r = xc - kd * 0x1.62e4p-1f - kd * 0x1.7f7d1cp-20f;
    smp_v8f p = r * (1.0f / 5040.0f) + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    smp_v8u sbits = ((kbits + 127u) << 23) & (smp_v8u)keep;
    smp_v8f res = p * (smp_v8f)sbits;
    smp_v4f half;
    smp_v4d wide;
    memcpy(&half, &res, sizeof half);
    wide = __builtin_convertvector(half, smp_v4d);
    memcpy(out, &wide, sizeof wide);
    *acc += wide;
    memcpy(&half, (const float *)(const void *)&res + 4, sizeof half);
    wide = __builtin_convertvector(half, smp_v4d);
    memcpy(out + 4, &wide, sizeof wide);
    *acc += wide;
}

/* e[i] = exp((l[i] - max) * scale) for i < n (arguments <= 0), in double;
 * returns the sum of e. */
SMP_INLINE double smp_exp_pass_body(const float *l, double *e, size_t n, double max, double scale)
{
    smp_v4d acc = {0.0, 0.0, 0.0, 0.0};
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        smp_exp4(l + i, e + i, max, scale, &acc);
    if (i < n) { /* the padding gives exp(-inf) = 0 */
        float t[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
        double o[4];
        memcpy(t, l + i, (n - i) * sizeof *t);
        smp_exp4(t, o, max, scale, &acc);
        memcpy(e + i, o, (n - i) * sizeof *e);
    }
    return smp_hsum4(&acc);
}

/* The same in single precision (the sampling chain's weights). */
SMP_INLINE double smp_expf_pass_body(const float *l, double *e, size_t n, float max, float scale)
{
    smp_v4d acc = {0.0, 0.0, 0.0, 0.0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        smp_expf8(l + i, e + i, max, scale, &acc);
    if (i < n) {
        float t[8] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY,
                      -INFINITY, -INFINITY, -INFINITY, -INFINITY};
        double o[8];
        memcpy(t, l + i, (n - i) * sizeof *t);
        smp_expf8(t, o, max, scale, &acc);
        memcpy(e + i, o, (n - i) * sizeof *e);
    }
    return smp_hsum4(&acc);
}

/* Largest value, NaN ignored (-inf if all NaN/-inf). */
SMP_INLINE float smp_max_body(const float *l, size_t n)
{
    smp_v8f m = {-INFINITY, -INFINITY, -INFINITY, -INFINITY,
                 -INFINITY, -INFINITY, -INFINITY, -INFINITY};
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        smp_v8f x;
        memcpy(&x, l + i, sizeof x);
        smp_v8i gt = x > m; /* false for NaN */
        m = (smp_v8f)(((smp_v8i)x & gt) | ((smp_v8i)m & ~gt));
    }
    float lanes[8], r = -INFINITY;
    memcpy(lanes, &m, sizeof lanes);
    for (int j = 0; j < 8; j++)
        r = lanes[j] > r ? lanes[j] : r;
    for (; i < n; i++)
        r = l[i] > r ? l[i] : r;
    return r;
}

/* Sum of e[0..n), in a fixed order (four lanes, then the tail). */
SMP_INLINE double smp_sum_body(const double *e, size_t n)
{
    smp_v4d a = {0.0, 0.0, 0.0, 0.0};
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        smp_v4d x;
        memcpy(&x, e + i, sizeof x);
        a += x;
    }
    double s = smp_hsum4(&a);
    for (; i < n; i++)
        s += e[i];
    return s;
}

/* The baseline and AVX2 copies of each kernel, and the dispatching entry
 * point (__builtin_cpu_supports reads what libgcc's constructor found). */
#define SMP_KERNEL(ret, name, params, args)                                                        \
    __attribute__((target("avx2"))) static ret name##_avx2 params                                  \
    {                                                                                              \
        return name##_body args;                                                                   \
    }                                                                                              \
    static ret name##_base params                                                                  \
    {                                                                                              \
        return name##_body args;                                                                   \
    }                                                                                              \
    static ret name params                                                                         \
    {                                                                                              \
        return __builtin_cpu_supports("avx2") ? name##_avx2 args : name##_base args;               \
    }

SMP_KERNEL(double, smp_exp_pass, (const float *l, double *e, size_t n, double max, double scale),
           (l, e, n, max, scale))
SMP_KERNEL(double, smp_expf_pass, (const float *l, double *e, size_t n, float max, float scale),
           (l, e, n, max, scale))
SMP_KERNEL(float, smp_max, (const float *l, size_t n), (l, n))
SMP_KERNEL(double, smp_sum, (const double *e, size_t n), (e, n))

/* ---- parameters and state ----------------------------------------------- */

void smp_params_default(struct smp_params *p)
{
    *p = (struct smp_params){
        .temperature = 0.8f,
        .top_k = 40,
        .top_p = 0.95f,
        .min_p = 0.05f,
        .repeat_penalty = 1.0f,
        .frequency_penalty = 0.0f,
        .presence_penalty = 0.0f,
        .penalty_last_n = 64,
        .seed = 0xfa11,
    };
}

static bool smp_params_valid(const struct smp_params *p)
{
    if (isnan(p->temperature) || (isinf(p->temperature) && p->temperature > 0))
        return false;
    if (!(p->top_p >= 0.0f && p->top_p <= 1.0f))
        return false;
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
        return false;
    if (!(p->repeat_penalty > 0.0f) || isinf(p->repeat_penalty))
        return false;
    if (!isfinite(p->frequency_penalty) || !isfinite(p->presence_penalty))
        return false;
    return p->penalty_last_n >= -1;
}

int smp_create(const struct smp_params *p, uint32_t n_vocab, struct smp_state **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!p || n_vocab == 0 || n_vocab > (uint32_t)INT32_MAX || !smp_params_valid(p))
        return -EINVAL;
    struct smp_state *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->p = *p;
    s->n_vocab = n_vocab;
    uint64_t x = p->seed;
    for (int i = 0; i < 4; i++)
        s->rng[i] = smp_splitmix64(&x);

    s->penalties =
        p->penalty_last_n != 0 &&
        (p->repeat_penalty != 1.0f || p->frequency_penalty != 0.0f || p->presence_penalty != 0.0f);
    s->cand_cap = n_vocab;
    if (p->top_k > 0 && (uint32_t)p->top_k < n_vocab)
        s->cand_cap = (size_t)p->top_k;
    s->cand.l = malloc(s->cand_cap * sizeof *s->cand.l);
    s->cand.id = malloc(s->cand_cap * sizeof *s->cand.id);
    s->cand.e = malloc(s->cand_cap * sizeof *s->cand.e);
    bool ok = s->cand.l && s->cand.id && s->cand.e;
    if (ok && p->top_p < 1.0f && s->cand_cap > SMP_TOP_P_SMALL) {
        s->tmp.l = malloc(s->cand_cap * sizeof *s->tmp.l);
        s->tmp.id = malloc(s->cand_cap * sizeof *s->tmp.id);
        s->tmp.e = malloc(s->cand_cap * sizeof *s->tmp.e);
        s->hist = malloc(2 * SMP_BINS * sizeof *s->hist);
        ok = s->tmp.l && s->tmp.id && s->tmp.e && s->hist;
    }
    if (ok && s->penalties) {
        size_t window = p->penalty_last_n > 0 ? (size_t)p->penalty_last_n : n_vocab;
        size_t n_dist = window < n_vocab ? window : n_vocab;
        s->count = calloc(n_vocab, sizeof *s->count);
        s->dpos = malloc(n_vocab * sizeof *s->dpos);
        s->distinct = malloc(n_dist * sizeof *s->distinct);
        s->work = malloc(n_vocab * sizeof *s->work);
        ok = s->count && s->dpos && s->distinct && s->work;
        if (ok && p->penalty_last_n > 0) {
            s->ring_cap = (size_t)p->penalty_last_n;
            s->ring = malloc(s->ring_cap * sizeof *s->ring);
            ok = s->ring != NULL;
        }
    }
    if (!ok) {
        smp_free(s);
        return -ENOMEM;
    }
    *out = s;
    return 0;
}

void smp_free(struct smp_state *s)
{
    if (!s)
        return;
    free(s->ring);
    free(s->count);
    free(s->dpos);
    free(s->distinct);
    free(s->work);
    free(s->cand.l);
    free(s->cand.id);
    free(s->cand.e);
    free(s->tmp.l);
    free(s->tmp.id);
    free(s->tmp.e);
    free(s->hist);
    free(s);
}

/* ---- penalties ---------------------------------------------------------- */

static void smp_count_add(struct smp_state *s, int32_t t)
{
    if (s->count[t]++ == 0) {
        s->dpos[t] = (uint32_t)s->n_distinct;
        s->distinct[s->n_distinct++] = t;
    }
}

static void smp_count_remove(struct smp_state *s, int32_t t)
{
    if (--s->count[t] == 0) {
        int32_t last = s->distinct[--s->n_distinct];
        s->distinct[s->dpos[t]] = last;
        s->dpos[last] = s->dpos[t];
    }
}

/* Tokens outside [0, n_vocab) are ignored. */
void smp_accept(struct smp_state *s, int32_t token)
{
    if (!s || !s->penalties || token < 0 || (uint32_t)token >= s->n_vocab)
        return;
    if (s->ring) {
        if (s->ring_len == s->ring_cap) {
            smp_count_remove(s, s->ring[s->ring_head]);
            s->ring[s->ring_head] = token;
            s->ring_head = (s->ring_head + 1) % s->ring_cap;
        } else {
            s->ring[s->ring_len++] = token;
        }
    }
    smp_count_add(s, token);
}

/* work = logits with the penalties applied to the tokens of the window. */
static const float *smp_apply_penalties(struct smp_state *s, const float *logits)
{
    if (!s->penalties || s->n_distinct == 0)
        return logits;
    memcpy(s->work, logits, s->n_vocab * sizeof *s->work);
    const float rp = s->p.repeat_penalty, fp = s->p.frequency_penalty;
    const float pp = s->p.presence_penalty;
    for (size_t i = 0; i < s->n_distinct; i++) {
        int32_t t = s->distinct[i];
        float l = s->work[t];
        l = l > 0.0f ? l / rp : l * rp;
        l -= (float)s->count[t] * fp + pp; /* count > 0 here */
        s->work[t] = l;
    }
    return s->work;
}

/* ---- candidate sets ------------------------------------------------------ */

/* Arg-max, lowest id on ties; NaN never wins (token 0 if all NaN/-inf). */
static int32_t smp_argmax(const float *l, uint32_t n)
{
    float best = -INFINITY;
    uint32_t id = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (l[i] > best) {
            best = l[i];
            id = i;
        }
    }
    return (int32_t)id;
}

static inline float smp_clean(float v)
{
    return isnan(v) ? -INFINITY : v;
}

/* c ranks i before j: higher logit, or equal logit and lower id. */
static inline bool smp_rank_before(const struct smp_set *c, size_t i, size_t j)
{
    return c->l[i] > c->l[j] || (c->l[i] == c->l[j] && c->id[i] < c->id[j]);
}

/* The order used by smp_sort/smp_select: by id, or by rank. */
static inline bool smp_before(const struct smp_set *c, size_t i, size_t j, bool by_id)
{
    return by_id ? c->id[i] < c->id[j] : smp_rank_before(c, i, j);
}

static inline void smp_swap(struct smp_set *c, size_t i, size_t j)
{
    float l = c->l[i];
    c->l[i] = c->l[j];
    c->l[j] = l;
    int32_t id = c->id[i];
    c->id[i] = c->id[j];
    c->id[j] = id;
    if (c->e) {
        double e = c->e[i];
        c->e[i] = c->e[j];
        c->e[j] = e;
    }
}

static void smp_sift(struct smp_set *c, size_t lo, size_t n, size_t i, bool by_id)
{
    for (;;) {
        size_t m = i, a = 2 * i + 1, b = a + 1;
        if (a < n && smp_before(c, lo + m, lo + a, by_id))
            m = a;
        if (b < n && smp_before(c, lo + m, lo + b, by_id))
            m = b;
        if (m == i)
            return;
        smp_swap(c, lo + i, lo + m);
        i = m;
    }
}

/* Sort c[lo..hi) in smp_before order: insertion sort when short, else
 * heapsort (no recursion, O(n log n) at worst). */
static void smp_sort(struct smp_set *c, size_t lo, size_t hi, bool by_id)
{
    size_t n = hi - lo;
    if (n <= 16) {
        for (size_t i = lo + 1; i < hi; i++)
            for (size_t j = i; j > lo && smp_before(c, j, j - 1, by_id); j--)
                smp_swap(c, j, j - 1);
        return;
    }
    for (size_t i = n / 2; i-- > 0;)
        smp_sift(c, lo, n, i, by_id);
    for (size_t end = n - 1; end > 0; end--) {
        smp_swap(c, lo, lo + end);
        smp_sift(c, lo, end, 0, by_id);
    }
}

/* Median of three positions in smp_before order. */
static size_t smp_median3(const struct smp_set *c, size_t a, size_t b, size_t d, bool by_id)
{
    if (smp_before(c, a, b, by_id))
        return smp_before(c, b, d, by_id) ? b : (smp_before(c, a, d, by_id) ? d : a);
    return smp_before(c, a, d, by_id) ? a : (smp_before(c, b, d, by_id) ? d : b);
}

/* Rearrange c[lo..hi) so that c[lo..k) come before c[k..hi) in smp_before
 * order (each side unordered). Quickselect; entries are distinct in that
 * order, so each round removes at least its pivot; a bounded number of
 * rounds falls back to sorting what is left. */
static void smp_select(struct smp_set *c, size_t lo, size_t hi, size_t k, bool by_id)
{
    for (int budget = 128; hi - lo > 16; budget--) {
        if (k <= lo || k >= hi)
            return;
        if (budget == 0)
            break;
        size_t im = smp_median3(c, lo, lo + (hi - lo) / 2, hi - 1, by_id);
        smp_swap(c, im, hi - 1);
        size_t st = lo;
        for (size_t i = lo; i < hi - 1; i++)
            if (smp_before(c, i, hi - 1, by_id))
                smp_swap(c, i, st++);
        smp_swap(c, st, hi - 1); /* the pivot, at its final place */
        if (k <= st)
            hi = st;
        else
            lo = st + 1;
    }
    if (k > lo && k < hi)
        smp_sort(c, lo, hi, by_id);
}

/* Sift entry p of the heap h[0..m) down; the root is the entry that ranks
 * last. */
static void smp_heap_down(struct smp_set *h, size_t m, size_t p)
{
    for (;;) {
        size_t w = p, a = 2 * p + 1, b = a + 1;
        if (a < m && smp_rank_before(h, w, a))
            w = a;
        if (b < m && smp_rank_before(h, w, b))
            w = b;
        if (w == p)
            return;
        smp_swap(h, p, w);
        p = w;
    }
}

/* Top-k: the k best non-NaN logits (rank order) into c->l/c->id, unordered;
 * returns how many (< k only if fewer are not NaN). A heap whose root ranks
 * last: ids arrive in ascending order, so a newcomer equal to the root ranks
 * after it and only a strictly greater logit gets in. */
static size_t smp_top_k_heap(const float *l, uint32_t n, size_t k, struct smp_set *c)
{
    struct smp_set h = {.l = c->l, .id = c->id, .e = NULL};
    size_t m = 0;
    uint32_t i = 0;
    for (; i < n && m < k; i++)
        if (!isnan(l[i])) {
            h.l[m] = l[i];
            h.id[m++] = (int32_t)i;
        }
    for (size_t j = m / 2; j-- > 0;)
        smp_heap_down(&h, m, j);
    for (; i < n; i++) {
        if (l[i] > h.l[0]) { /* false for NaN */
            h.l[0] = l[i];
            h.id[0] = (int32_t)i;
            smp_heap_down(&h, m, 0);
        }
    }
    return m;
}

/* Top-p. c[0..n) carry e = exp(l - max). Rearranges c and returns m >= 1:
 * c[0..m) is the smallest prefix, in rank order, whose mass reaches target
 * (= top_p * total mass). Mass-weighted quickselect with three-way
 * partitions on the logit; a bounded depth falls back to sorting the rest. */
static size_t smp_mass_prefix(struct smp_set *c, size_t n, double target)
{
    size_t lo = 0, hi = n; /* c[0..lo) kept, c[hi..n) dropped */
    double acc = 0.0;      /* mass of c[0..lo), always < target */
    if (!(target > 0.0)) {
        size_t best = 0;
        for (size_t i = 1; i < n; i++)
            if (smp_rank_before(c, i, best))
                best = i;
        smp_swap(c, 0, best);
        return 1;
    }
    for (int budget = 128; hi - lo > 16 && budget > 0; budget--) {
        float pv = c->l[smp_median3(c, lo, lo + (hi - lo) / 2, hi - 1, false)];
        size_t gt = lo, i = lo, lt = hi; /* [lo,gt) > pv, [gt,i) == pv, [lt,hi) < pv */
        while (i < lt) {
            if (c->l[i] > pv)
                smp_swap(c, gt++, i++);
            else if (c->l[i] < pv)
                smp_swap(c, i, --lt);
            else
                i++;
        }
        double m_gt = smp_sum(c->e + lo, gt - lo);
        if (acc + m_gt >= target) {
            hi = gt;
            continue;
        }
        double m_eq = smp_sum(c->e + gt, lt - gt);
        if (acc + m_gt + m_eq >= target) {
            /* The prefix ends among the ties: take them by ascending id. */
            acc += m_gt;
            size_t j = 0;
            while (gt + j < lt) {
                acc += c->e[gt + j++];
                if (acc >= target)
                    break;
            }
            smp_select(c, gt, lt, gt + j, true);
            return gt + j;
        }
        acc += m_gt + m_eq;
        lo = lt;
    }
    smp_sort(c, lo, hi, false);
    for (size_t i = lo; i < hi; i++) {
        acc += c->e[i];
        if (acc >= target)
            return i + 1;
    }
    return hi > 0 ? hi : 1; /* rounding: keep all that was not dropped */
}

/* Bin of a logit: floor((max - l) * SMP_BIN_SCALE), at most SMP_BINS - 1.
 * Non-decreasing as l decreases, so bins follow rank order. */
static inline size_t smp_bin(float max, float l)
{
    const float last = (float)(SMP_BINS - 1);
    float d = (max - l) * SMP_BIN_SCALE;           /* >= 0; +inf clamps below */
    return (size_t)(int32_t)(d < last ? d : last); /* via int32: cheaper */
}

/* Top-p on c[0..n) (e = exp(l - max) set, summing to total): as
 * smp_mass_prefix with target = top_p * total, in linear time and without
 * data-dependent branches when n is large. One pass builds a mass histogram
 * over the bins; the bin where the cumulative mass reaches target is the
 * boundary. A second pass keeps the earlier bins in c and copies the
 * boundary bin to tmp, where smp_mass_prefix settles it. */
static size_t smp_top_p(struct smp_set *c, size_t n, double top_p, double total, float max,
                        struct smp_set *tmp, double *hist)
{
    if (n <= SMP_TOP_P_SMALL || !(top_p > 0.0) || !tmp->l)
        return smp_mass_prefix(c, n, top_p * total);
    /* two interleaved histograms halve the store-to-load chains */
    double *h0 = hist, *h1 = hist + SMP_BINS;
    memset(hist, 0, 2 * SMP_BINS * sizeof *hist);
    size_t i = 0;
    for (; i + 2 <= n; i += 2) {
        h0[smp_bin(max, c->l[i])] += c->e[i];
        h1[smp_bin(max, c->l[i + 1])] += c->e[i + 1];
    }
    if (i < n)
        h0[smp_bin(max, c->l[i])] += c->e[i];
    const double target = top_p * total;
    double acc = 0.0;
    size_t b = 0;
    for (; b < SMP_BINS; b++) {
        double m = h0[b] + h1[b];
        if (acc + m >= target)
            break;
        acc += m;
    }
    if (b == SMP_BINS)
        return n; /* rounding: the total fell short of target */
    size_t k = 0, t = 0;
    for (i = 0; i < n; i++) {
        size_t bi = smp_bin(max, c->l[i]);
        float l = c->l[i];
        int32_t id = c->id[i];
        double e = c->e[i];
        tmp->l[t] = l;
        tmp->id[t] = id;
        tmp->e[t] = e;
        t += bi == b;
        c->l[k] = l; /* k <= i: compaction in place */
        c->id[k] = id;
        c->e[k] = e;
        k += bi < b;
    }
    size_t m = smp_mass_prefix(tmp, t, target - acc);
    memcpy(c->l + k, tmp->l, m * sizeof *c->l);
    memcpy(c->id + k, tmp->id, m * sizeof *c->id);
    memcpy(c->e + k, tmp->e, m * sizeof *c->e);
    return k + m;
}

/* ---- sampling ------------------------------------------------------------ */

/* A token more than SMP_CUT * max(1, temperature) below the best logit has
 * weight below e^-50 = 2e-22 against the best one's 1, in the temperature-1
 * stage and after the temperature: even 150k of them cannot move a double
 * sum >= 1, so they are left out before any other work. */
#define SMP_CUT 50.0

int32_t smp_sample(struct smp_state *s, const float *logits)
{
    const float *l = smp_apply_penalties(s, logits);
    const uint32_t n = s->n_vocab;
    const double temp = s->p.temperature;
    if (!(temp > 0.0) || !(1.0 / temp <= FLT_MAX)) /* tiny: greedy in effect */
        return smp_argmax(l, n);

    struct smp_set *c = &s->cand;
    const bool top_k = s->cand_cap < n;
    size_t nc = 0;
    float fmax;
    if (top_k) {
        /* top-k first (NaN excluded): the k entries hold the maximum */
        nc = smp_top_k_heap(l, n, s->cand_cap, c);
        fmax = smp_max(c->l, nc);
    } else {
        fmax = smp_max(l, n);
    }
    if (fmax == -INFINITY)
        return smp_argmax(l, n); /* nothing has mass */
    /* Keep what has mass: with +inf logits only those, in equal parts (as
     * the heap ranks them, top-k keeps the lowest ids among them); else
     * whatever is not more than the cut below the maximum. */
    const bool inf = fmax == INFINITY;
    const float floor =
        inf ? INFINITY : (float)((double)fmax - SMP_CUT * (temp > 1.0 ? temp : 1.0));
    if (top_k) {
        size_t m = 0;
        for (size_t i = 0; i < nc; i++) { /* in place: m <= i */
            float v = c->l[i];
            c->id[m] = c->id[i];
            c->l[m] = inf ? 0.0f : v;
            m += v >= floor;
        }
        nc = m;
    } else if (inf) {
        for (uint32_t i = 0; i < n; i++) {
            c->id[nc] = (int32_t)i;
            c->l[nc] = 0.0f;
            nc += l[i] >= floor;
        }
    } else {
        for (uint32_t i = 0; i < n; i++) {
            /* branch-free compaction; NaN fails the comparison */
            c->id[nc] = (int32_t)i;
            c->l[nc] = l[i];
            nc += l[i] >= floor;
        }
    }
    if (inf)
        fmax = 0.0f;
    /* weights at temperature 1 first if top-p or min-p need them; they are
     * the final ones when the temperature is 1 */
    bool final = false;
    double total = 0.0;
    if (s->p.top_p < 1.0f || s->p.min_p > 0.0f) {
        total = smp_expf_pass(c->l, c->e, nc, fmax, 1.0f);
        size_t n0 = nc;
        if (s->p.top_p < 1.0f)
            nc = smp_top_p(c, nc, s->p.top_p, total, fmax, &s->tmp, s->hist);
        if (s->p.min_p > 0.0f) {
            /* p_i >= min_p * p_max  <=>  e_i >= min_p (e of the max is 1,
             * which always stays since min_p <= 1). */
            const double mp = s->p.min_p;
            size_t m = 0;
            for (size_t i = 0; i < nc; i++) {
                c->l[m] = c->l[i];
                c->id[m] = c->id[i];
                c->e[m] = c->e[i];
                m += c->e[i] >= mp;
            }
            nc = m;
        }
        final = temp == 1.0;
        if (final && nc != n0)
            total = smp_sum(c->e, nc);
    }
    if (!final)
        total = smp_expf_pass(c->l, c->e, nc, fmax, (float)(1.0 / temp));

    double r = smp_uniform(s->rng) * total;
    double acc = 0.0;
    size_t last = 0;
    for (size_t i = 0; i < nc; i++) {
        if (c->e[i] > 0.0)
            last = i;
        acc += c->e[i];
        if (r < acc)
            return c->id[i];
    }
    return c->id[last]; /* r rounded up to the total */
}

/* ---- reporting ----------------------------------------------------------- */

/* Returns 0 when k is 0 or memory runs out. With every logit NaN or -inf the
 * distribution is uniform; with +inf logits it is uniform over those. */
size_t smp_top_probs(const float *logits, uint32_t n_vocab, size_t k, struct smp_prob *out)
{
    if (k > n_vocab)
        k = n_vocab;
    if (k == 0)
        return 0;
    struct smp_set c = {.l = malloc((size_t)n_vocab * sizeof *c.l),
                        .id = malloc((size_t)n_vocab * sizeof *c.id)};
    if (!c.l || !c.id) {
        free(c.l);
        free(c.id);
        return 0;
    }
    float max = -INFINITY;
    for (uint32_t i = 0; i < n_vocab; i++) {
        c.l[i] = smp_clean(logits[i]);
        c.id[i] = (int32_t)i;
        max = c.l[i] > max ? c.l[i] : max;
    }
    if (max == INFINITY || max == -INFINITY) {
        for (uint32_t i = 0; i < n_vocab; i++)
            c.l[i] = max == -INFINITY || c.l[i] == INFINITY ? 0.0f : -INFINITY;
        max = 0.0f;
    }

    /* The sum runs over the logits in descending order, as llama.cpp's
     * server does. A term below 2^-24 added to a float sum >= 1 (the first
     * term is exactly 1) leaves it unchanged, and every later term is
     * smaller still, so only the significant terms need sorting. */
    size_t m = 0;
    for (uint32_t i = 0; i < n_vocab; i++) {
        float x = c.l[i] - max;
        m += x >= -17.0f && expf(x) >= 0x1p-24f; /* expf(-17) < 2^-24 */
    }
    size_t need = m > k ? m : k;
    smp_select(&c, 0, n_vocab, need, false);
    smp_sort(&c, 0, need, false);

    float sum = 0.0f;
    for (size_t i = 0; i < m; i++)
        sum += expf(c.l[i] - max);
    for (size_t i = 0; i < k; i++) {
        float p = expf(c.l[i] - max) / sum;
        out[i] = (struct smp_prob){.id = c.id[i], .p = p, .logprob = logf(p)};
    }
    free(c.l);
    free(c.id);
    return k;
}

double smp_logprob(const float *logits, uint32_t n_vocab, int32_t id)
{
    if (id < 0 || (uint32_t)id >= n_vocab)
        return NAN;
    double max = -INFINITY;
    size_t n_inf = 0;
    for (uint32_t i = 0; i < n_vocab; i++) {
        double v = smp_clean(logits[i]);
        max = v > max ? v : max;
        n_inf += v == INFINITY;
    }
    double target = smp_clean(logits[id]);
    if (max == INFINITY)
        return target == INFINITY ? -log((double)n_inf) : -INFINITY;
    if (max == -INFINITY)
        return -log((double)n_vocab); /* all -inf: uniform, as smp_top_probs */
    double sum = 0.0, e[256];
    for (uint32_t i = 0; i < n_vocab; i += 256) {
        size_t m = n_vocab - i < 256 ? n_vocab - i : 256;
        sum += smp_exp_pass(logits + i, e, m, max, 1.0); /* NaN gives 0 */
    }
    return (target - max) - log(sum);
}
