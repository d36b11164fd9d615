/* dstats.c - the daemon's figures summed over its engines (see dstats.h). */
#include "dstats.h"

#include <string.h>

static_assert((int)WIRE_HIST_COUNT == (int)INFERD_H_COUNT &&
                  (int)WIRE_HIST_TTFT == (int)INFERD_H_TTFT &&
                  (int)WIRE_HIST_ITL == (int)INFERD_H_ITL &&
                  (int)WIRE_HIST_E2E == (int)INFERD_H_E2E &&
                  (int)WIRE_HIST_QUEUE == (int)INFERD_H_QUEUE &&
                  (int)WIRE_HIST_PREFILL == (int)INFERD_H_PREFILL &&
                  (int)WIRE_HIST_STEP == (int)INFERD_H_STEP &&
                  (int)WIRE_HIST_BATCH == (int)INFERD_H_BATCH,
              "HistogramId follows enum inferd_hist_id");
static_assert(WIRE_HIST_SLOTS == INFERD_HIST_SLOTS, "Histogram.slots holds every log2 slot");
static_assert((int)WIRE_FINISH_LENGTH == (int)INFERD_PROBE_LENGTH &&
                  (int)WIRE_FINISH_EOS == (int)INFERD_PROBE_EOS &&
                  (int)WIRE_FINISH_STOP == (int)INFERD_PROBE_STOP &&
                  (int)WIRE_FINISH_CANCELLED == (int)INFERD_PROBE_CANCELLED &&
                  WIRE_FINISH_INDEX_ERROR == (int)INFERD_PROBE_ERROR,
              "finished_by_reason follows enum inferd_probe_reason");

void dstats_collect(struct dstats_src *src, struct prom_stats *out)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < src->n_workers; i++) {
        struct sched_stats st;
        wk_get_stats(src->workers[i], &st);
        out->requests_running += st.running;
        out->requests_waiting += st.waiting;
        out->requests_finished += st.finished + st.cancelled;
        out->prompt_tokens += st.prompt_tokens;
        out->generated_tokens += st.generated_tokens;
        out->kv_blocks_total += st.kv_blocks_total;
        out->kv_blocks_used += st.kv_blocks_used;
        out->prefix_cache_queries += st.cache.queries;
        out->prefix_cache_hits += st.cache.hits;
        out->preemptions += st.preemptions;
        obs_stats_merge(&out->obs, &st.obs);
    }
    uint64_t echo = atomic_load_explicit(&src->echo_finished, memory_order_relaxed);
    uint64_t echo_tokens = atomic_load_explicit(&src->echo_tokens, memory_order_relaxed);
    out->requests_finished += echo;
    out->prompt_tokens += echo_tokens;
    out->generated_tokens += echo_tokens;
    out->obs.finished[INFERD_PROBE_LENGTH] += echo;
    out->have_reasons = out->have_hists = true;
}

void dstats_to_wire(const struct prom_stats *st, struct wire_histogram *hists, struct wire_stats *w)
{
    *w = (struct wire_stats){
        .requests_running = st->requests_running,
        .requests_waiting = st->requests_waiting,
        .requests_finished = st->requests_finished,
        .prompt_tokens = st->prompt_tokens,
        .generated_tokens = st->generated_tokens,
        .kv_blocks_total = st->kv_blocks_total,
        .kv_blocks_used = st->kv_blocks_used,
        .prefix_cache_queries = st->prefix_cache_queries,
        .prefix_cache_hits = st->prefix_cache_hits,
        .preemptions = st->preemptions,
    };
    for (unsigned i = 0; i < INFERD_H_COUNT; i++) {
        const struct inferd_hist *h = &st->obs.h[i];
        struct wire_histogram *o = &hists[i];
        memset(o, 0, sizeof *o);
        o->id = (enum wire_hist_id)i;
        o->count = h->count;
        o->sum = h->sum;
        /* Trailing empty slots stay off the wire. */
        size_t n = INFERD_HIST_SLOTS;
        while (n && !h->slots[n - 1])
            n--;
        for (size_t k = 0; k < n; k++)
            o->slots[k] = h->slots[k];
        o->n_slots = n;
    }
    w->histograms = (struct wire_histogram_list){INFERD_H_COUNT, hists, NULL};
    for (unsigned i = 0; i < INFERD_PROBE_REASON_COUNT; i++)
        w->finished_by_reason[i] = st->obs.finished[i];
    w->n_finished_by_reason = INFERD_PROBE_REASON_COUNT;
}

const char *dstats_model_label(const struct dstats_src *src)
{
    if (src->n_workers == 1)
        return wk_name(src->workers[0]);
    return src->n_workers ? "inferd" : "echo";
}
