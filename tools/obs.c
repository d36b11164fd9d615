/* obs.c - names, quantiles, JSON and tables of inferd's figures for the
 * inferctl commands (see obs.h). The BPF map reader is in cmd_bpf.c. */
#include "obs.h"

#include <assert.h>
#include <string.h>

static_assert((int)INFER_HIST_COUNT == (int)INFERD_H_COUNT &&
                  (int)INFER_HIST_TTFT == (int)INFERD_H_TTFT &&
                  (int)INFER_HIST_ITL == (int)INFERD_H_ITL &&
                  (int)INFER_HIST_E2E == (int)INFERD_H_E2E &&
                  (int)INFER_HIST_QUEUE == (int)INFERD_H_QUEUE &&
                  (int)INFER_HIST_PREFILL == (int)INFERD_H_PREFILL &&
                  (int)INFER_HIST_STEP == (int)INFERD_H_STEP &&
                  (int)INFER_HIST_BATCH == (int)INFERD_H_BATCH,
              "libinferclient's histogram ids are the BPF maps'");
static_assert(INFER_HIST_SLOTS == INFERD_HIST_SLOTS, "the same log2 slots");
static_assert(INFER_END_COUNT == (int)INFERD_PROBE_REASON_COUNT &&
                  INFER_END_ERROR == (int)INFERD_PROBE_ERROR &&
                  (int)INFER_FINISH_LENGTH == (int)INFERD_PROBE_LENGTH &&
                  (int)INFER_FINISH_EOS == (int)INFERD_PROBE_EOS &&
                  (int)INFER_FINISH_STOP == (int)INFERD_PROBE_STOP &&
                  (int)INFER_FINISH_CANCELLED == (int)INFERD_PROBE_CANCELLED,
              "libinferclient's finish counts follow enum inferd_probe_reason");

const char *const obs_hist_names[INFERD_H_COUNT] = {
    [INFERD_H_TTFT] = "ttft",       [INFERD_H_ITL] = "itl",   [INFERD_H_E2E] = "e2e",
    [INFERD_H_QUEUE] = "queue",     [INFERD_H_PREFILL] = "prefill",
    [INFERD_H_STEP] = "step",       [INFERD_H_BATCH] = "batch_tokens",
};

const char *const obs_ctr_names[INFERD_C_COUNT] = {
    [INFERD_C_FIN_LENGTH] = "finished_length",
    [INFERD_C_FIN_EOS] = "finished_eos",
    [INFERD_C_FIN_STOP] = "finished_stop",
    [INFERD_C_FIN_CANCELLED] = "finished_cancelled",
    [INFERD_C_FIN_ERROR] = "finished_error",
    [INFERD_C_QUEUED] = "requests_queued",
    [INFERD_C_PROMPT_TOKENS] = "prompt_tokens",
    [INFERD_C_GEN_TOKENS] = "generated_tokens",
    [INFERD_C_TOKEN_EVENTS] = "token_events",
    [INFERD_C_PREFIX_Q_TOKENS] = "prefix_query_tokens",
    [INFERD_C_PREFIX_H_TOKENS] = "prefix_hit_tokens",
    [INFERD_C_PREFIX_Q_BLOCKS] = "prefix_query_blocks",
    [INFERD_C_PREFIX_H_BLOCKS] = "prefix_hit_blocks",
    [INFERD_C_PREEMPTIONS] = "preemptions",
    [INFERD_C_KV_IN_USE] = "kv_blocks_in_use",
    [INFERD_C_KV_ALLOCS] = "kv_allocs",
    [INFERD_C_KV_FREES] = "kv_frees",
    [INFERD_C_STEPS] = "steps",
    [INFERD_C_CACHED_PROMPT] = "cached_prompt_tokens",
    [INFERD_C_CANCELS] = "cancels",
};

const char *const obs_reason_names[INFERD_PROBE_REASON_COUNT] = {
    [INFERD_PROBE_LENGTH] = "length", [INFERD_PROBE_EOS] = "eos",
    [INFERD_PROBE_STOP] = "stop",     [INFERD_PROBE_CANCELLED] = "cancelled",
    [INFERD_PROBE_ERROR] = "error",
};

double obs_hist_quantile(const struct inferd_hist *h, double p)
{
    uint64_t total = 0;
    for (int i = 0; i < INFERD_HIST_SLOTS; i++)
        total += h->slots[i];
    if (!total)
        return 0;
    double want = p * (double)total;
    uint64_t cum = 0;
    for (int i = 0; i < INFERD_HIST_SLOTS; i++) {
        if (!h->slots[i])
            continue;
        if ((double)(cum + h->slots[i]) >= want) {
            double lo = i ? (double)(1ULL << (i - 1)) : 0;
            double hi = i < 63 ? (double)(1ULL << i) : 18446744073709551615.0;
            double f = (want - (double)cum) / (double)h->slots[i];
            return lo + (hi - lo) * (f < 0 ? 0 : f);
        }
        cum += h->slots[i];
    }
    return (double)(1ULL << 63);
}

void obs_stats_from_client(const struct infer_stats *s, const struct infer_stats_detail *d,
                           struct prom_stats *out)
{
    memset(out, 0, sizeof *out);
    out->requests_running = s->requests_running;
    out->requests_waiting = s->requests_waiting;
    out->requests_finished = s->requests_finished;
    out->prompt_tokens = s->prompt_tokens;
    out->generated_tokens = s->generated_tokens;
    out->kv_blocks_total = s->kv_blocks_total;
    out->kv_blocks_used = s->kv_blocks_used;
    out->prefix_cache_queries = s->prefix_cache_queries;
    out->prefix_cache_hits = s->prefix_cache_hits;
    out->preemptions = s->preemptions;
    if (!d)
        return;
    out->have_hists = d->have_hists;
    out->have_reasons = d->have_finished;
    for (int i = 0; i < INFERD_H_COUNT; i++) {
        struct inferd_hist *h = &out->obs.h[i];
        for (int k = 0; k < INFERD_HIST_SLOTS; k++)
            h->slots[k] = d->hists[i].slots[k];
        h->count = d->hists[i].count;
        h->sum = d->hists[i].sum;
    }
    for (int i = 0; i < INFERD_PROBE_REASON_COUNT; i++)
        out->obs.finished[i] = d->finished[i];
}

static json_t *obs_u64(uint64_t v)
{
    /* JSON integers are signed 64-bit here; counters stay far below. */
    return json_integer((json_int_t)v);
}

json_t *obs_reasons_json(const uint64_t *fin)
{
    json_t *o = json_object();
    for (int i = 0; i < INFERD_PROBE_REASON_COUNT; i++)
        json_object_set_new(o, obs_reason_names[i], obs_u64(fin[i]));
    return o;
}

void obs_stats_counters(const struct prom_stats *st, struct obs_counter out[OBS_N_COUNTERS])
{
    const struct obs_counter rows[OBS_N_COUNTERS] = {
        {"requests_running", st->requests_running},
        {"requests_waiting", st->requests_waiting},
        {"requests_finished", st->requests_finished},
        {"prompt_tokens", st->prompt_tokens},
        {"generated_tokens", st->generated_tokens},
        {"kv_blocks_total", st->kv_blocks_total},
        {"kv_blocks_used", st->kv_blocks_used},
        {"prefix_cache_queries", st->prefix_cache_queries},
        {"prefix_cache_hits", st->prefix_cache_hits},
        {"preemptions", st->preemptions},
    };
    memcpy(out, rows, sizeof rows);
}

json_t *obs_stats_json(const struct prom_stats *st)
{
    json_t *o = json_object();
    struct obs_counter rows[OBS_N_COUNTERS];
    obs_stats_counters(st, rows);
    for (size_t i = 0; i < OBS_N_COUNTERS; i++)
        json_object_set_new(o, rows[i].name, obs_u64(rows[i].v));
    if (st->have_reasons)
        json_object_set_new(o, "finished_by_reason", obs_reasons_json(st->obs.finished));
    if (!st->have_hists)
        return o;
    json_t *hs = json_object();
    for (int i = 0; i < INFERD_H_COUNT; i++) {
        const struct inferd_hist *h = &st->obs.h[i];
        json_t *e = json_object(), *slots = json_array();
        for (int k = 0; k < INFERD_HIST_SLOTS; k++)
            json_array_append_new(slots, obs_u64(h->slots[k]));
        json_object_set_new(e, "unit", json_string(i == INFERD_H_BATCH ? "tokens" : "ns"));
        json_object_set_new(e, "count", obs_u64(h->count));
        json_object_set_new(e, "sum", obs_u64(h->sum));
        json_object_set_new(e, "slots", slots);
        json_object_set_new(hs, obs_hist_names[i], e);
    }
    json_object_set_new(o, "histograms", hs);
    return o;
}

json_t *obs_hists_summary_json(const struct inferd_hist *hists)
{
    json_t *o = json_object();
    for (int i = 0; i < INFERD_H_COUNT; i++) {
        const struct inferd_hist *x = &hists[i];
        json_t *e = json_object();
        json_object_set_new(e, "count", obs_u64(x->count));
        json_object_set_new(e, "sum", obs_u64(x->sum));
        json_object_set_new(e, "mean", json_real(x->count ? (double)x->sum / (double)x->count : 0));
        json_object_set_new(e, "p50", json_real(obs_hist_quantile(x, 0.5)));
        json_object_set_new(e, "p90", json_real(obs_hist_quantile(x, 0.9)));
        json_object_set_new(e, "p99", json_real(obs_hist_quantile(x, 0.99)));
        json_object_set_new(o, obs_hist_names[i], e);
    }
    return o;
}

static void obs_fmt_ns(char *buf, size_t n, double ns)
{
    if (ns < 1e3)
        snprintf(buf, n, "%.0fns", ns);
    else if (ns < 1e6)
        snprintf(buf, n, "%.1fus", ns / 1e3);
    else if (ns < 1e9)
        snprintf(buf, n, "%.1fms", ns / 1e6);
    else
        snprintf(buf, n, "%.2fs", ns / 1e9);
}

void obs_print_hists(FILE *fp, const struct inferd_hist *hists)
{
    fprintf(fp, "%-14s %10s %10s %10s %10s %10s\n", "", "count", "mean", "p50", "p90", "p99");
    for (int i = 0; i < INFERD_H_COUNT; i++) {
        const struct inferd_hist *h = &hists[i];
        double mean = h->count ? (double)h->sum / (double)h->count : 0;
        double q[3] = {obs_hist_quantile(h, 0.5), obs_hist_quantile(h, 0.9),
                       obs_hist_quantile(h, 0.99)};
        char f[4][32];
        if (i == INFERD_H_BATCH) {
            snprintf(f[0], sizeof f[0], "%.1f", mean);
            for (int k = 0; k < 3; k++)
                snprintf(f[k + 1], sizeof f[k + 1], "%.0f", q[k]);
        } else {
            obs_fmt_ns(f[0], sizeof f[0], mean);
            for (int k = 0; k < 3; k++)
                obs_fmt_ns(f[k + 1], sizeof f[k + 1], q[k]);
        }
        fprintf(fp, "%-14s %10llu %10s %10s %10s %10s\n", obs_hist_names[i],
                (unsigned long long)h->count, f[0], f[1], f[2], f[3]);
    }
}
