/* scheduler.c - continuous batching with chunked prefill, prefix caching,
 * copy-on-write forks and preemption by recomputation. See scheduler.h. */
#include "scheduler.h"
#include "probes.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stopstr.h"

struct sched_req;

struct sched_seq {
    struct sched_req *req;
    uint32_t sample;
    uint64_t arrival;       /* order among equal priorities */
    int32_t *tokens;        /* prompt + generated */
    uint32_t n_tokens, cap_tokens;
    uint32_t n_computed;    /* positions [0, n_computed) are in the KV cache */
    struct kv_seq tbl;      /* block table; each entry holds one reference */
    uint64_t *hashes;       /* chain hash of each full block of tbl */
    uint32_t n_hashed;
    struct smp_state *smp;
    uint32_t n_generated;
    struct stopstr text;
    bool running;
    uint32_t lookup_queries, lookup_hits; /* of the pending admission */
    /* this step */
    uint32_t step_new;
    bool step_logits;
};

struct sched_req {
    uint64_t id, user;
    int32_t *prompt;
    uint32_t n_prompt;
    struct smp_params sampling;
    uint32_t max_tokens;
    char **stop;
    size_t n_stop;
    uint32_t top_probs;
    int32_t priority;
    uint64_t salt_hash;
    uint32_t n, n_live, n_seqs;
    struct sched_seq **seqs; /* n slots; n_seqs filled (1 until the fork) */
    struct sched_times t;
    uint32_t cached_prompt_tokens, generated, preemptions;
    uint32_t cache_queries, cache_hits;
    bool admitted_once;
    uint8_t last_finish;     /* enum gen_finish of the last sample done (probes) */
};

struct sched {
    struct engine *e;
    struct sched_params p;
    sched_event_fn fn;
    void *ud;
    struct bm bm;
    struct sched_seq **running, **waiting, **step;
    uint32_t n_running, n_waiting, n_step, cap_seqs;
    struct sched_req **reqs;
    uint32_t n_reqs, cap_reqs;
    uint64_t next_id, next_arrival;
    /* batch buffers */
    int32_t *b_tokens, *b_pos;
    uint32_t *b_seq;
    uint8_t *b_want;
    uint32_t b_cap;
    struct kv_seq *b_tables;
    float *logits;
    uint32_t logits_rows;
    struct smp_prob *top;
    uint8_t *fill;          /* per block, scratch for the utilization figure */
    struct sched_stats st;
};

uint64_t sched_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void sched_params_default(struct sched_params *p)
{
    p->max_batch_tokens = 512;
    p->max_running = 256;
    p->prefix_cache = true;
}

/* ---- ordered sequence lists ---------------------------------------- */

static bool seq_before(const struct sched_seq *a, const struct sched_seq *b)
{
    if (a->req->priority != b->req->priority)
        return a->req->priority < b->req->priority;
    if (a->arrival != b->arrival)
        return a->arrival < b->arrival;
    return a->sample < b->sample;
}

static int list_reserve(struct sched *s, uint32_t need)
{
    if (need <= s->cap_seqs)
        return 0;
    uint32_t cap = s->cap_seqs ? s->cap_seqs * 2 : 64;
    while (cap < need)
        cap *= 2;
    struct sched_seq **r = realloc(s->running, cap * sizeof *r);
    if (r)
        s->running = r;
    struct sched_seq **w = realloc(s->waiting, cap * sizeof *w);
    if (w)
        s->waiting = w;
    struct sched_seq **st = realloc(s->step, cap * sizeof *st);
    if (st)
        s->step = st;
    if (!r || !w || !st)
        return -ENOMEM;
    s->cap_seqs = cap;
    return 0;
}

static void list_insert(struct sched_seq **list, uint32_t *n, struct sched_seq *q)
{
    uint32_t i = *n;
    while (i > 0 && seq_before(q, list[i - 1])) {
        list[i] = list[i - 1];
        i--;
    }
    list[i] = q;
    (*n)++;
}

static void list_remove(struct sched_seq **list, uint32_t *n, struct sched_seq *q)
{
    for (uint32_t i = 0; i < *n; i++)
        if (list[i] == q) {
            memmove(list + i, list + i + 1, (*n - i - 1) * sizeof *list);
            (*n)--;
            return;
        }
}

/* ---- sequences ---------------------------------------------------- */

static int seq_push_token(struct sched_seq *q, int32_t id)
{
    if (q->n_tokens == q->cap_tokens) {
        uint32_t cap = q->cap_tokens ? q->cap_tokens * 2 : 64;
        int32_t *t = realloc(q->tokens, cap * sizeof *t);
        if (!t)
            return -ENOMEM;
        q->tokens = t;
        q->cap_tokens = cap;
    }
    q->tokens[q->n_tokens++] = id;
    return 0;
}

static int seq_table_reserve(struct sched_seq *q, uint32_t n_blocks)
{
    if (n_blocks <= q->tbl.cap)
        return 0;
    uint32_t cap = q->tbl.cap ? q->tbl.cap * 2 : 8;
    while (cap < n_blocks)
        cap *= 2;
    uint32_t *b = realloc(q->tbl.blocks, cap * sizeof *b);
    if (!b)
        return -ENOMEM;
    q->tbl.blocks = b;
    uint64_t *h = realloc(q->hashes, cap * sizeof *h);
    if (!h)
        return -ENOMEM;
    q->hashes = h;
    q->tbl.cap = cap;
    return 0;
}

/* Drop every block reference; the sequence then holds no KV. */
static void seq_release_blocks(struct sched *s, struct sched_seq *q)
{
    for (uint32_t i = 0; i < q->tbl.n_blocks; i++)
        bm_unref(&s->bm, q->tbl.blocks[i]);
    q->tbl.n_blocks = 0;
    q->n_computed = 0;
    q->n_hashed = 0;
}

static void seq_free(struct sched *s, struct sched_seq *q)
{
    if (!q)
        return;
    seq_release_blocks(s, q);
    free(q->tbl.blocks);
    free(q->hashes);
    free(q->tokens);
    smp_free(q->smp);
    stopstr_free(&q->text);
    free(q);
}

/* Look up the longest cached prefix of a sequence holding no blocks. At
 * least one token is always left to compute (its logits are needed). */
static int seq_prefix_lookup(struct sched *s, struct sched_seq *q)
{
    q->lookup_queries = q->lookup_hits = 0;
    if (!s->p.prefix_cache || q->tbl.n_blocks)
        return 0;
    uint32_t max_full = (q->n_tokens - 1) / KV_BLOCK_TOKENS;
    int rc = seq_table_reserve(q, max_full + 1);
    if (rc)
        return rc;
    uint64_t parent = q->req->salt_hash;
    for (uint32_t b = 0; b < max_full; b++) {
        const int32_t *toks = q->tokens + (size_t)b * KV_BLOCK_TOKENS;
        uint32_t id = bm_lookup(&s->bm, parent, toks);
        q->lookup_queries++;
        if (id == BM_NONE)
            break;
        q->lookup_hits++;
        parent = bm_chain_hash(parent, toks);
        q->tbl.blocks[q->tbl.n_blocks++] = id;
        q->hashes[q->n_hashed++] = parent;
    }
    q->n_computed = q->tbl.n_blocks * KV_BLOCK_TOKENS;
    return 0;
}

/* Make the table cover positions [0, upto) with blocks this sequence alone
 * owns from n_computed on (new blocks, or copies of shared ones). All or
 * nothing: false when the pool cannot supply enough blocks. */
static bool seq_alloc(struct sched *s, struct sched_seq *q, uint32_t upto)
{
    uint32_t first = q->n_computed / KV_BLOCK_TOKENS;
    uint32_t need_blocks = (upto + KV_BLOCK_TOKENS - 1) / KV_BLOCK_TOKENS;
    uint32_t fresh = need_blocks > q->tbl.n_blocks ? need_blocks - q->tbl.n_blocks : 0;
    uint32_t cow = 0;
    for (uint32_t b = first; b < q->tbl.n_blocks && b < need_blocks; b++)
        cow += s->bm.blocks[q->tbl.blocks[b]].ref > 1;
    if (fresh + cow > bm_available(&s->bm) || seq_table_reserve(q, need_blocks))
        return false;
    for (uint32_t b = first; b < q->tbl.n_blocks && b < need_blocks; b++) {
        uint32_t old = q->tbl.blocks[b];
        if (s->bm.blocks[old].ref > 1) {
            uint32_t nb = bm_alloc(&s->bm);
            bm_copy(&s->bm, nb, old);
            bm_unref(&s->bm, old);
            q->tbl.blocks[b] = nb;
        }
    }
    while (q->tbl.n_blocks < need_blocks)
        q->tbl.blocks[q->tbl.n_blocks++] = bm_alloc(&s->bm);
    return true;
}

/* Publish (and record the hash of) every block that became full. */
static void seq_publish(struct sched *s, struct sched_seq *q)
{
    while (q->n_hashed < q->n_computed / KV_BLOCK_TOKENS) {
        uint32_t b = q->n_hashed;
        uint64_t parent = b ? q->hashes[b - 1] : q->req->salt_hash;
        const int32_t *toks = q->tokens + (size_t)b * KV_BLOCK_TOKENS;
        if (s->p.prefix_cache)
            bm_publish(&s->bm, q->tbl.blocks[b], parent, toks);
        q->hashes[b] = bm_chain_hash(parent, toks);
        q->n_hashed++;
    }
}

/* ---- requests ------------------------------------------------------ */

static void req_free(struct sched *s, struct sched_req *r)
{
    for (uint32_t i = 0; i < r->n_seqs; i++)
        seq_free(s, r->seqs[i]);
    for (size_t i = 0; i < r->n_stop; i++)
        free(r->stop[i]);
    free(r->stop);
    free(r->seqs);
    free(r->prompt);
    free(r);
}

static void req_unlink(struct sched *s, struct sched_req *r)
{
    for (uint32_t i = 0; i < r->n_seqs; i++) {
        struct sched_seq *q = r->seqs[i];
        if (!q)
            continue;
        list_remove(s->running, &s->n_running, q);
        list_remove(s->waiting, &s->n_waiting, q);
    }
    for (uint32_t i = 0; i < s->n_reqs; i++)
        if (s->reqs[i] == r) {
            s->reqs[i] = s->reqs[--s->n_reqs];
            break;
        }
}

static void req_end(struct sched *s, struct sched_req *r, enum sched_ev_type type, int error)
{
    r->t.finished = sched_now_ns();
    struct sched_event ev = {0};
    ev.type = type;
    ev.req_id = r->id;
    ev.user = r->user;
    ev.times = r->t;
    ev.prompt_tokens = r->n_prompt;
    ev.cached_prompt_tokens = r->cached_prompt_tokens;
    ev.generated_tokens = r->generated;
    ev.preemptions = r->preemptions;
    ev.cache_queries = r->cache_queries;
    ev.cache_hits = r->cache_hits;
    ev.error = error;
    ev.time = r->t.finished;
    if (type == SCHED_EV_CANCELLED)
        INFERD_PROBE2(request_cancelled, r->id, r->generated);
    /* The probe and the daemon's own figures get the same values. */
    int reason = type == SCHED_EV_FINISHED    ? (int)r->last_finish
                 : type == SCHED_EV_CANCELLED ? (int)INFERD_PROBE_CANCELLED
                                              : (int)INFERD_PROBE_ERROR;
    uint64_t e2e_ns = r->t.finished - r->t.queued;
    INFERD_PROBE6(request_finished, r->id, reason, r->n_prompt, r->generated, e2e_ns,
                  r->cached_prompt_tokens);
    s->st.obs.finished[reason]++;
    obs_hist_add(&s->st.obs.h[INFERD_H_E2E], e2e_ns);
    req_unlink(s, r);
    if (type == SCHED_EV_FINISHED)
        s->st.finished++;
    else
        s->st.cancelled++;
    s->st.generated_tokens += r->generated;
    req_free(s, r);
    if (s->fn)
        s->fn(s->ud, &ev);
}

static struct sched_seq *seq_new(struct sched_req *r, uint32_t sample, uint32_t n_vocab, int *rc)
{
    struct sched_seq *q = calloc(1, sizeof *q);
    if (!q) {
        *rc = -ENOMEM;
        return NULL;
    }
    q->req = r;
    q->sample = sample;
    struct smp_params sp = r->sampling;
    sp.seed += sample;
    *rc = smp_create(&sp, n_vocab, &q->smp);
    if (*rc) {
        free(q);
        return NULL;
    }
    return q;
}

void sched_get_stats(const struct sched *s, struct sched_stats *st)
{
    *st = s->st;
    st->running = s->n_running;
    st->waiting = s->n_waiting;
    st->kv_blocks_total = s->bm.n_blocks;
    st->kv_blocks_used = bm_in_use(&s->bm);
    st->kv_blocks_cached = s->bm.n_evictable;
    st->cache = s->bm.stats;
}

bool sched_has_work(const struct sched *s)
{
    return s->n_running || s->n_waiting;
}

int sched_create(struct engine *e, const struct sched_params *p, sched_event_fn fn, void *ud,
                 struct sched **out)
{
    struct sched *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->e = e;
    if (p)
        s->p = *p;
    else
        sched_params_default(&s->p);
    if (!s->p.max_batch_tokens)
        s->p.max_batch_tokens = 512;
    if (!s->p.max_running)
        s->p.max_running = 256;
    s->fn = fn;
    s->ud = ud;
    s->next_id = 1;
    int rc = bm_init(&s->bm, &e->kv);
    if (rc) {
        free(s);
        return rc;
    }
    s->fill = calloc(s->bm.n_blocks, 1);
    if (!s->fill) {
        sched_free(s);
        return -ENOMEM;
    }
    if ((rc = list_reserve(s, 64))) {
        sched_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void sched_free(struct sched *s)
{
    if (!s)
        return;
    while (s->n_reqs)
        req_end(s, s->reqs[s->n_reqs - 1], SCHED_EV_CANCELLED, 0);
    bm_free(&s->bm);
    free(s->running);
    free(s->waiting);
    free(s->step);
    free(s->reqs);
    free(s->b_tokens);
    free(s->b_pos);
    free(s->b_seq);
    free(s->b_want);
    free(s->b_tables);
    free(s->logits);
    free(s->top);
    free(s->fill);
    free(s);
}

static int sched_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

int sched_submit(struct sched *s, const struct sched_request *in, uint64_t *id, char *err,
                 size_t errlen)
{
    uint32_t n_vocab = s->e->model->hp.n_vocab;
    uint32_t n = in->n ? in->n : 1;
    if (in->n_prompt == 0)
        return sched_fail(err, errlen, -EINVAL, "empty prompt");
    if (n > 1024)
        return sched_fail(err, errlen, -EINVAL, "n = %u parallel samples is too many", n);
    for (size_t i = 0; i < in->n_prompt; i++)
        if (in->prompt[i] < 0 || (uint32_t)in->prompt[i] >= n_vocab)
            return sched_fail(err, errlen, -EINVAL, "token id %d at %zu is outside the vocabulary",
                              in->prompt[i], i);
    uint64_t need = (uint64_t)in->n_prompt + in->max_tokens;
    if (need > s->e->n_ctx)
        return sched_fail(err, errlen, -E2BIG,
                          "prompt (%zu tokens) + max tokens (%u) exceed the context (%u)",
                          in->n_prompt, in->max_tokens, s->e->n_ctx);
    uint64_t blocks = (need + KV_BLOCK_TOKENS - 1) / KV_BLOCK_TOKENS;
    if (blocks > s->bm.n_blocks)
        return sched_fail(err, errlen, -E2BIG,
                          "prompt (%zu tokens) + max tokens (%u) need %llu KV blocks; the pool "
                          "has %u (%u tokens)",
                          in->n_prompt, in->max_tokens, (unsigned long long)blocks, s->bm.n_blocks,
                          s->bm.n_blocks * KV_BLOCK_TOKENS);
    if (in->top_probs > n_vocab)
        return sched_fail(err, errlen, -EINVAL, "top_probs %u exceeds the vocabulary",
                          in->top_probs);

    int rc = -ENOMEM;
    struct sched_req *r = calloc(1, sizeof *r);
    if (!r)
        return sched_fail(err, errlen, -ENOMEM, "out of memory");
    r->n = n;
    r->n_live = n;
    r->n_prompt = (uint32_t)in->n_prompt;
    r->sampling = in->sampling;
    r->max_tokens = in->max_tokens;
    r->top_probs = in->top_probs;
    r->priority = in->priority;
    r->user = in->user;
    const char *salt = in->cache_salt ? in->cache_salt : "";
    r->salt_hash = bm_salt_hash(salt, strlen(salt));
    r->prompt = malloc(in->n_prompt * sizeof *r->prompt);
    r->seqs = calloc(n, sizeof *r->seqs);
    r->stop = calloc(in->n_stop ? in->n_stop : 1, sizeof *r->stop);
    if (!r->prompt || !r->seqs || !r->stop)
        goto fail;
    memcpy(r->prompt, in->prompt, in->n_prompt * sizeof *r->prompt);
    for (size_t i = 0; i < in->n_stop; i++) {
        if (!(r->stop[i] = strdup(in->stop[i])))
            goto fail;
        r->n_stop++;
    }
    struct sched_seq *q = seq_new(r, 0, n_vocab, &rc);
    if (!q) {
        if (rc == -EINVAL)
            sched_fail(err, errlen, rc, "invalid sampling parameters");
        goto fail;
    }
    r->seqs[r->n_seqs++] = q;
    rc = -ENOMEM;
    for (uint32_t i = 0; i < r->n_prompt; i++) {
        if (seq_push_token(q, r->prompt[i]))
            goto fail;
        smp_accept(q->smp, r->prompt[i]);
    }
    if (list_reserve(s, s->n_running + s->n_waiting + n + 1))
        goto fail;
    if (s->n_reqs == s->cap_reqs) {
        uint32_t cap = s->cap_reqs ? s->cap_reqs * 2 : 64;
        struct sched_req **nr = realloc(s->reqs, cap * sizeof *nr);
        if (!nr)
            goto fail;
        s->reqs = nr;
        s->cap_reqs = cap;
    }
    r->id = s->next_id++;
    q->arrival = s->next_arrival++;
    r->t.queued = sched_now_ns();
    s->reqs[s->n_reqs++] = r;
    list_insert(s->waiting, &s->n_waiting, q);
    s->st.prompt_tokens += r->n_prompt;
    INFERD_PROBE4(request_queued, r->id, r->n_prompt, r->max_tokens, r->n);
    if (id)
        *id = r->id;
    return 0;
fail:
    if (rc == -ENOMEM)
        sched_fail(err, errlen, rc, "out of memory");
    req_free(s, r);
    return rc;
}

int sched_cancel(struct sched *s, uint64_t id)
{
    for (uint32_t i = 0; i < s->n_reqs; i++)
        if (s->reqs[i]->id == id) {
            req_end(s, s->reqs[i], SCHED_EV_CANCELLED, 0);
            return 0;
        }
    return -ENOENT;
}

/* ---- one step ------------------------------------------------------ */

static void sched_preempt(struct sched *s, struct sched_seq *q)
{
    INFERD_PROBE3(request_preempted, q->req->id, q->sample, q->tbl.n_blocks);
    seq_release_blocks(s, q);
    list_remove(s->running, &s->n_running, q);
    q->running = false;
    list_insert(s->waiting, &s->n_waiting, q);
    q->req->preemptions++;
    s->st.preemptions++;
}

static void sched_schedule(struct sched *s, struct sched_seq *q, uint32_t n_new)
{
    q->step_new = n_new;
    q->step_logits = q->n_computed + n_new == q->n_tokens;
    s->step[s->n_step++] = q;
}

static int sched_batch_reserve(struct sched *s, uint32_t n_tok, uint32_t n_rows)
{
    if (n_tok > s->b_cap) {
        uint32_t cap = n_tok;
        int32_t *t = realloc(s->b_tokens, cap * sizeof *t);
        if (t)
            s->b_tokens = t;
        int32_t *p = realloc(s->b_pos, cap * sizeof *p);
        if (p)
            s->b_pos = p;
        uint32_t *q = realloc(s->b_seq, cap * sizeof *q);
        if (q)
            s->b_seq = q;
        uint8_t *w = realloc(s->b_want, cap);
        if (w)
            s->b_want = w;
        if (!t || !p || !q || !w)
            return -ENOMEM;
        s->b_cap = cap;
    }
    if (n_rows > s->logits_rows) {
        uint32_t nv = s->e->model->hp.n_vocab;
        float *l = realloc(s->logits, (size_t)n_rows * nv * sizeof *l);
        if (!l)
            return -ENOMEM;
        s->logits = l;
        s->logits_rows = n_rows;
    }
    struct kv_seq *tb = realloc(s->b_tables, (s->n_step ? s->n_step : 1) * sizeof *tb);
    if (!tb)
        return -ENOMEM;
    s->b_tables = tb;
    return 0;
}

/* Fork a request's only sequence into its n samples (shared blocks). */
static int sched_fork(struct sched *s, struct sched_seq *q)
{
    struct sched_req *r = q->req;
    uint32_t n_vocab = s->e->model->hp.n_vocab;
    int rc = 0;
    for (uint32_t k = 1; k < r->n; k++) {
        struct sched_seq *c = seq_new(r, k, n_vocab, &rc);
        if (!c)
            return rc;
        r->seqs[r->n_seqs++] = c;
        c->arrival = q->arrival;
        for (uint32_t i = 0; i < q->n_tokens; i++) {
            if ((rc = seq_push_token(c, q->tokens[i])))
                return rc;
            smp_accept(c->smp, q->tokens[i]);
        }
        if ((rc = seq_table_reserve(c, q->tbl.n_blocks)))
            return rc;
        for (uint32_t b = 0; b < q->tbl.n_blocks; b++) {
            c->tbl.blocks[b] = q->tbl.blocks[b];
            bm_ref(&s->bm, q->tbl.blocks[b]);
        }
        c->tbl.n_blocks = q->tbl.n_blocks;
        memcpy(c->hashes, q->hashes, q->n_hashed * sizeof *c->hashes);
        c->n_hashed = q->n_hashed;
        c->n_computed = q->n_computed;
        c->running = true;
        list_insert(s->running, &s->n_running, c);
    }
    return 0;
}

/* Sample the next token of q from its logits row; emits TOKEN, and ends the
 * sample (and the request, after its last sample) when it is done. */
static int sched_sample(struct sched *s, struct sched_seq *q, const float *logits)
{
    struct sched_req *r = q->req;
    struct engine *e = s->e;
    uint32_t nv = e->model->hp.n_vocab;
    struct sched_event ev = {0};
    ev.type = SCHED_EV_TOKEN;
    ev.req_id = r->id;
    ev.user = r->user;
    ev.sample = q->sample;
    ev.token = -1;
    bool done = false;
    enum gen_finish fin = GEN_FINISH_LENGTH;
    if (q->n_generated < r->max_tokens) {
        if (r->top_probs) {
            smp_top_probs(logits, nv, r->top_probs, s->top);
            ev.top = s->top;
            ev.n_top = r->top_probs;
        }
        int32_t id = smp_sample(q->smp, logits);
        smp_accept(q->smp, id);
        int rc = seq_push_token(q, id);
        if (rc)
            return rc;
        q->n_generated++;
        r->generated++;
        ev.token = id;
        uint64_t now = sched_now_ns();
        ev.time = now;
        /* The probes and the daemon's own figures get the same values. */
        uint64_t itl_ns = r->t.last_token ? now - r->t.last_token : 0;
        INFERD_PROBE4(request_token, r->id, q->sample, r->generated, itl_ns);
        if (r->generated > 1)
            obs_hist_add(&s->st.obs.h[INFERD_H_ITL], itl_ns);
        if (!r->t.first_token) {
            r->t.first_token = now;
            uint64_t ttft_ns = now - r->t.queued, prefill_ns = now - r->t.scheduled;
            INFERD_PROBE3(request_first_token, r->id, ttft_ns, prefill_ns);
            obs_hist_add(&s->st.obs.h[INFERD_H_TTFT], ttft_ns);
            obs_hist_add(&s->st.obs.h[INFERD_H_PREFILL], prefill_ns);
        }
        r->t.last_token = now;
        if (tok_is_eog(e->tok, id)) {
            done = true;
            fin = GEN_FINISH_EOS;
        } else {
            char piece[256];
            int n = tok_piece(e->tok, id, piece, sizeof piece, false);
            if (n > (int)sizeof piece)
                n = (int)sizeof piece;
            if ((rc = stopstr_add(&q->text, piece, n > 0 ? (size_t)n : 0,
                                  (const char *const *)r->stop, r->n_stop))) {
                if (rc != 1)
                    return rc;
                done = true;
                fin = GEN_FINISH_STOP;
            }
        }
        if (!done && (q->n_generated >= r->max_tokens || q->n_tokens >= e->n_ctx))
            done = true;
    } else {
        done = true; /* max_tokens 0: prompt processing only */
    }
    ev.sample_done = done;
    ev.finish = fin;
    ev.text = stopstr_take(&q->text, done, (const char *const *)r->stop, r->n_stop, &ev.text_len);
    if (done)
        r->last_finish = (uint8_t)fin;
    if (ev.token >= 0 || done) {
        if (s->fn)
            s->fn(s->ud, &ev);
    }
    if (done) {
        seq_release_blocks(s, q);
        list_remove(s->running, &s->n_running, q);
        q->running = false;
        if (--r->n_live == 0)
            req_end(s, r, SCHED_EV_FINISHED, 0);
    }
    return 0;
}

/* The end of a step that ran its forward pass: the step_end probe and the
 * daemon's own step figures, with the same values. */
static void sched_step_end(struct sched *s, uint32_t n_tok, uint64_t t_step, int rc)
{
    uint64_t step_ns = sched_now_ns() - t_step;
    INFERD_PROBE5(step_end, s->st.steps - 1, n_tok, s->n_step, step_ns, rc);
    obs_hist_add(&s->st.obs.h[INFERD_H_STEP], step_ns);
    obs_hist_add(&s->st.obs.h[INFERD_H_BATCH], n_tok);
}

int sched_step(struct sched *s)
{
    uint32_t budget = s->p.max_batch_tokens;
    s->n_step = 0;

    /* Running sequences first, in priority order. */
    for (uint32_t i = 0; i < s->n_running && budget; i++) {
        struct sched_seq *q = s->running[i];
        uint32_t want = q->n_tokens - q->n_computed;
        uint32_t n_new = want < budget ? want : budget;
        bool ok;
        while (!(ok = seq_alloc(s, q, q->n_computed + n_new))) {
            struct sched_seq *victim = s->running[s->n_running - 1];
            sched_preempt(s, victim);
            if (victim == q)
                break;
        }
        if (!ok)
            break; /* q was the last one; nothing after it */
        sched_schedule(s, q, n_new);
        budget -= n_new;
    }
    /* Then waiting requests, while the budget and the pool allow. */
    while (budget && s->n_waiting && s->n_running < s->p.max_running) {
        struct sched_seq *q = s->waiting[0];
        int rc = seq_prefix_lookup(s, q);
        if (rc)
            return rc;
        uint32_t want = q->n_tokens - q->n_computed;
        uint32_t n_new = want < budget ? want : budget;
        if (!seq_alloc(s, q, q->n_computed + n_new)) {
            seq_release_blocks(s, q);
            break;
        }
        struct sched_req *r = q->req;
        /* Count the lookups of admissions that happen (a request that
         * waits looks up again each step). */
        r->cache_queries += q->lookup_queries;
        r->cache_hits += q->lookup_hits;
        s->bm.stats.queries += q->lookup_queries;
        s->bm.stats.hits += q->lookup_hits;
        INFERD_PROBE5(prefix_query, r->id, q->lookup_queries * KV_BLOCK_TOKENS,
                      q->lookup_hits * KV_BLOCK_TOKENS, q->lookup_queries, q->lookup_hits);
        bool readmission = r->admitted_once;
        if (!r->admitted_once) {
            r->admitted_once = true;
            r->t.scheduled = sched_now_ns();
            r->cached_prompt_tokens = q->n_computed;
            s->st.cached_prompt_tokens += q->n_computed;
        }
        uint64_t queue_ns = readmission ? 0 : r->t.scheduled - r->t.queued;
        INFERD_PROBE4(request_admitted, r->id, queue_ns, q->n_computed, (int)readmission);
        if (!readmission)
            obs_hist_add(&s->st.obs.h[INFERD_H_QUEUE], queue_ns);
        list_remove(s->waiting, &s->n_waiting, q);
        q->running = true;
        list_insert(s->running, &s->n_running, q);
        sched_schedule(s, q, n_new);
        budget -= n_new;
    }
    if (!s->n_step)
        return 0;

    /* The flat batch. */
    uint64_t t_step = sched_now_ns();
    uint32_t n_tok = 0, n_rows = 0;
    for (uint32_t i = 0; i < s->n_step; i++) {
        n_tok += s->step[i]->step_new;
        n_rows += s->step[i]->step_logits;
    }
    INFERD_PROBE4(step_begin, s->st.steps, n_tok, s->n_step, s->n_waiting);
    int rc = sched_batch_reserve(s, n_tok, n_rows);
    if (rc)
        return rc;
    uint32_t k = 0;
    for (uint32_t i = 0; i < s->n_step; i++) {
        struct sched_seq *q = s->step[i];
        s->b_tables[i] = q->tbl;
        for (uint32_t j = 0; j < q->step_new; j++, k++) {
            uint32_t p = q->n_computed + j;
            s->b_tokens[k] = q->tokens[p];
            s->b_pos[k] = (int32_t)p;
            s->b_seq[k] = i;
            s->b_want[k] = q->step_logits && j + 1 == q->step_new;
        }
    }
    struct fwd_batch b = {n_tok, s->b_tokens, s->b_pos, s->b_seq, s->b_want};
    rc = fwd_eval(s->e->fwd, &b, s->b_tables, s->n_step, s->logits);
    s->st.steps++;
    if (rc) {
        /* The step's requests cannot continue: collect them first (ending
         * one frees its sequences). */
        struct sched_req **dead = calloc(s->n_step, sizeof *dead);
        uint32_t n_dead = 0;
        for (uint32_t i = 0; dead && i < s->n_step; i++) {
            bool seen = false;
            for (uint32_t j = 0; j < n_dead; j++)
                seen |= dead[j] == s->step[i]->req;
            if (!seen)
                dead[n_dead++] = s->step[i]->req;
        }
        for (uint32_t j = 0; j < n_dead; j++)
            req_end(s, dead[j], SCHED_EV_ERROR, rc);
        free(dead);
        sched_step_end(s, n_tok, t_step, rc);
        return rc;
    }
    s->st.tokens_processed += n_tok;

    uint64_t used = 0;
    for (uint32_t i = 0; i < s->n_step; i++) {
        struct sched_seq *q = s->step[i];
        q->n_computed += q->step_new;
        seq_publish(s, q);
    }
    /* Slots holding KV, each block counted once however many sequences
     * share it. */
    for (uint32_t i = 0; i < s->n_running; i++) {
        const struct sched_seq *q = s->running[i];
        for (uint32_t b = 0; b < q->tbl.n_blocks; b++) {
            uint32_t id = q->tbl.blocks[b];
            uint32_t start = b * KV_BLOCK_TOKENS;
            uint8_t fill = (uint8_t)(q->n_computed <= start ? 0
                                     : q->n_computed - start >= KV_BLOCK_TOKENS ? KV_BLOCK_TOKENS
                                                                               : q->n_computed - start);
            if (fill > s->fill[id]) {
                used += fill - s->fill[id];
                s->fill[id] = fill;
            }
        }
    }
    for (uint32_t i = 0; i < s->n_running; i++) {
        const struct sched_seq *q = s->running[i];
        for (uint32_t b = 0; b < q->tbl.n_blocks; b++)
            s->fill[q->tbl.blocks[b]] = 0;
    }
    s->st.kv_slots_used_sum += used;
    s->st.kv_slots_alloc_sum += (uint64_t)bm_in_use(&s->bm) * KV_BLOCK_TOKENS;

    /* Sample, in step order. A request ends (and is freed) only when its
     * last live sample is done, and every sample is in the step list at most
     * once, so no freed sequence is visited afterwards. */
    uint32_t nv = s->e->model->hp.n_vocab;
    if (s->top == NULL) {
        s->top = malloc((size_t)nv * sizeof *s->top);
        if (!s->top)
            return -ENOMEM;
    }
    uint32_t row = 0;
    for (uint32_t i = 0; i < s->n_step; i++) {
        struct sched_seq *q = s->step[i];
        if (!q->step_logits)
            continue;
        const float *lg = s->logits + (size_t)row++ * nv;
        struct sched_req *r = q->req;
        if (r->n > 1 && r->n_seqs == 1) {
            /* First token: fork, then every sample draws from this row. The
             * request can only end with the last of them. */
            if ((rc = sched_fork(s, q)))
                return rc;
            uint32_t n_samples = r->n_seqs;
            for (uint32_t j = 0; j < n_samples; j++)
                if ((rc = sched_sample(s, r->seqs[j], lg)))
                    return rc;
        } else if ((rc = sched_sample(s, q, lg))) {
            return rc;
        }
    }
    sched_step_end(s, n_tok, t_step, 0);
    return (int)n_tok;
}

int sched_check(const struct sched *s, char *err, size_t errlen)
{
    const struct bm *m = &s->bm;
    uint32_t *refs = calloc(m->n_blocks ? m->n_blocks : 1, sizeof *refs);
    uint8_t *seen = calloc(m->n_blocks ? m->n_blocks : 1, 1);
    int rc = 0;
    if (!refs || !seen) {
        rc = sched_fail(err, errlen, -ENOMEM, "out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < s->n_reqs; i++) {
        const struct sched_req *r = s->reqs[i];
        for (uint32_t j = 0; j < r->n_seqs; j++) {
            const struct sched_seq *q = r->seqs[j];
            if (!q->running && q->tbl.n_blocks) {
                bool waiting = false;
                for (uint32_t k = 0; k < s->n_waiting; k++)
                    waiting |= s->waiting[k] == q;
                if (waiting) {
                    rc = sched_fail(err, errlen, -EUCLEAN, "waiting sequence holds %u blocks",
                                    q->tbl.n_blocks);
                    goto out;
                }
            }
            if (q->n_computed > q->tbl.n_blocks * KV_BLOCK_TOKENS) {
                rc = sched_fail(err, errlen, -EUCLEAN, "sequence computed past its table");
                goto out;
            }
            for (uint32_t b = 0; b < q->tbl.n_blocks; b++)
                refs[q->tbl.blocks[b]]++;
        }
    }
    for (uint32_t i = 0; i < m->n_free; i++)
        seen[m->free_ids[i]] |= 1;
    uint32_t n_lru = 0;
    for (uint32_t id = m->lru_head; id != BM_NONE && n_lru <= m->n_blocks; id = m->blocks[id].lru_next) {
        seen[id] |= 2;
        n_lru++;
    }
    if (n_lru != m->n_evictable) {
        rc = sched_fail(err, errlen, -EUCLEAN, "LRU list has %u blocks, counter %u", n_lru,
                        m->n_evictable);
        goto out;
    }
    for (uint32_t b = 0; b < m->n_blocks; b++) {
        const struct bm_block *blk = &m->blocks[b];
        if (blk->ref != refs[b]) {
            rc = sched_fail(err, errlen, -EUCLEAN, "block %u has ref %u but %u tables hold it",
                            b, blk->ref, refs[b]);
            goto out;
        }
        uint8_t want = blk->ref ? 0 : blk->cached ? 2 : 1;
        if (seen[b] != want) {
            rc = sched_fail(err, errlen, -EUCLEAN,
                            "block %u (ref %u, cached %d) is on list mask %u, expected %u", b,
                            blk->ref, blk->cached, seen[b], want);
            goto out;
        }
    }
out:
    free(refs);
    free(seen);
    return rc;
}
