/* prom.c - the Prometheus text exposition of inferd's figures (see
 * prom.h). */
#include "prom.h"

#include <errno.h>
#include <string.h>

#include "kvcache.h"

/* The counters and histograms of one source, in the BPF maps' terms. */
struct prom_src {
    bool bpf;
    uint64_t prompt, generated, preemptions;
    uint64_t query_tokens, hit_tokens, query_blocks, hit_blocks;
    uint64_t finished_total;
    bool have_reasons; /* fin[] is known */
    uint64_t fin[INFERD_PROBE_REASON_COUNT];
    const struct inferd_hist *h; /* NULL: no histograms */
    int64_t kv_in_use;           /* BPF: the kv_alloc/kv_free gauge */
};

static void prom_src_stats(struct prom_src *s, const struct prom_stats *t)
{
    s->prompt = t->prompt_tokens;
    s->generated = t->generated_tokens;
    s->preemptions = t->preemptions;
    s->query_blocks = t->prefix_cache_queries;
    s->hit_blocks = t->prefix_cache_hits;
    s->query_tokens = t->prefix_cache_queries * KV_BLOCK_TOKENS;
    s->hit_tokens = t->prefix_cache_hits * KV_BLOCK_TOKENS;
    s->finished_total = t->requests_finished;
    s->have_reasons = t->have_reasons;
    if (t->have_reasons)
        memcpy(s->fin, t->obs.finished, sizeof s->fin);
    s->h = t->have_hists ? t->obs.h : NULL;
}

static void prom_src_bpf(struct prom_src *s, const struct inferd_hist *h, const uint64_t *c)
{
    s->bpf = true;
    s->prompt = c[INFERD_C_PROMPT_TOKENS];
    s->generated = c[INFERD_C_GEN_TOKENS];
    s->preemptions = c[INFERD_C_PREEMPTIONS];
    s->query_tokens = c[INFERD_C_PREFIX_Q_TOKENS];
    s->hit_tokens = c[INFERD_C_PREFIX_H_TOKENS];
    s->query_blocks = c[INFERD_C_PREFIX_Q_BLOCKS];
    s->hit_blocks = c[INFERD_C_PREFIX_H_BLOCKS];
    s->have_reasons = true;
    for (int i = 0; i < INFERD_PROBE_REASON_COUNT; i++) {
        s->fin[i] = c[INFERD_C_FIN_LENGTH + i];
        s->finished_total += s->fin[i];
    }
    s->h = h;
    /* A sum of +1/-1 kept as u64: two's complement. */
    s->kv_in_use = (int64_t)c[INFERD_C_KV_IN_USE];
}

struct prom {
    FILE *fp;
    char labels[400]; /* model_name="..." */
};

static void prom_head(struct prom *p, const char *name, const char *type, const char *help)
{
    fprintf(p->fp, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void prom_value(struct prom *p, const char *name, const char *type, const char *help,
                       double v)
{
    prom_head(p, name, type, help);
    fprintf(p->fp, "%s{%s} %.17g\n", name, p->labels, v);
}

static void prom_count(struct prom *p, const char *name, const char *help, uint64_t v)
{
    prom_head(p, name, "counter", help);
    fprintf(p->fp, "%s{%s} %llu\n", name, p->labels, (unsigned long long)v);
}

/* A log2 histogram as Prometheus buckets; scale converts slot bounds and
 * the sum into the metric's unit (1e-9: nanoseconds to seconds). Buckets
 * at the bounds of slots lo to hi, then +Inf; _count is the slots' total
 * (the BPF maps update count and slots apart, so only the slots are
 * consistent with the buckets). */
static void prom_hist(struct prom *p, const char *name, const char *help,
                      const struct inferd_hist *h, double scale, int lo, int hi)
{
    prom_head(p, name, "histogram", help);
    uint64_t cum = 0;
    for (int i = 0; i < lo; i++)
        cum += h->slots[i];
    for (int i = lo; i <= hi; i++) {
        cum += h->slots[i];
        fprintf(p->fp, "%s_bucket{%s,le=\"%.12g\"} %llu\n", name, p->labels,
                (double)(1ULL << i) * scale, (unsigned long long)cum);
    }
    uint64_t total = 0;
    for (int i = 0; i < INFERD_HIST_SLOTS; i++)
        total += h->slots[i];
    fprintf(p->fp, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, p->labels, (unsigned long long)total);
    fprintf(p->fp, "%s_sum{%s} %.17g\n", name, p->labels, (double)h->sum * scale);
    fprintf(p->fp, "%s_count{%s} %llu\n", name, p->labels, (unsigned long long)total);
}

static void prom_reason(struct prom *p, const char *name, const char *label, const char *reason,
                        uint64_t v)
{
    fprintf(p->fp, "%s{%s,%s=\"%s\"} %llu\n", name, p->labels, label, reason,
            (unsigned long long)v);
}

/* model_name="..." with the value escaped as the format wants. */
static void prom_labels(struct prom *p, const char *model)
{
    if (!model || !*model)
        model = "inferd";
    char esc[340];
    size_t k = 0;
    for (const char *c = model; *c && k + 2 < sizeof esc; c++) {
        if (*c == '"' || *c == '\\')
            esc[k++] = '\\';
        esc[k++] = *c == '\n' ? ' ' : *c;
    }
    esc[k] = 0;
    snprintf(p->labels, sizeof p->labels, "model_name=\"%s\"", esc);
}

static void prom_gauges(struct prom *p, const struct prom_stats *t)
{
    prom_value(p, "vllm:num_requests_running", "gauge",
               "Number of requests in model execution batches.", (double)t->requests_running);
    prom_value(p, "vllm:num_requests_waiting", "gauge",
               "Number of requests waiting to be processed.", (double)t->requests_waiting);
    prom_value(p, "vllm:kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.",
               t->kv_blocks_total ? (double)t->kv_blocks_used / (double)t->kv_blocks_total : 0);
    prom_value(p, "inferd:kv_blocks_used", "gauge", "KV blocks referenced by sequences.",
               (double)t->kv_blocks_used);
    prom_value(p, "inferd:kv_blocks_total", "gauge", "KV blocks in the pool.",
               (double)t->kv_blocks_total);
}

static void prom_counters(struct prom *p, const struct prom_src *s)
{
    prom_count(p, "vllm:prefix_cache_queries_total",
               "Prefix cache queries, in tokens (full blocks looked up x block size).",
               s->query_tokens);
    prom_count(p, "vllm:prefix_cache_hits_total", "Prefix cache hits, in tokens.", s->hit_tokens);
    prom_count(p, "inferd:prefix_cache_block_queries_total", "Prefix cache lookups, in blocks.",
               s->query_blocks);
    prom_count(p, "inferd:prefix_cache_block_hits_total", "Prefix cache hits, in blocks.",
               s->hit_blocks);
    prom_count(p, "vllm:num_preemptions_total", "Cumulative number of preemptions.",
               s->preemptions);
    prom_count(p, "vllm:prompt_tokens_total", "Number of prefill tokens processed.", s->prompt);
    prom_count(p, "vllm:generation_tokens_total", "Number of generation tokens processed.",
               s->generated);
    prom_count(p, "inferd:requests_finished_total", "Requests that ended (any reason).",
               s->finished_total);
    if (!s->have_reasons)
        return;
    const uint64_t *c = s->fin;
    prom_head(p, "vllm:request_success_total", "counter",
              "Count of finished requests by finish reason (stop covers EOS and stop strings).");
    prom_reason(p, "vllm:request_success_total", "finished_reason", "stop",
                c[INFERD_PROBE_EOS] + c[INFERD_PROBE_STOP]);
    prom_reason(p, "vllm:request_success_total", "finished_reason", "length",
                c[INFERD_PROBE_LENGTH]);
    prom_reason(p, "vllm:request_success_total", "finished_reason", "abort",
                c[INFERD_PROBE_CANCELLED] + c[INFERD_PROBE_ERROR]);
    prom_head(p, "inferd:requests_by_reason_total", "counter",
              "Requests that ended, by inferd's finish reason.");
    static const char *const reasons[INFERD_PROBE_REASON_COUNT] = {
        [INFERD_PROBE_LENGTH] = "length", [INFERD_PROBE_EOS] = "eos",
        [INFERD_PROBE_STOP] = "stop",     [INFERD_PROBE_CANCELLED] = "cancelled",
        [INFERD_PROBE_ERROR] = "error",
    };
    for (int i = 0; i < INFERD_PROBE_REASON_COUNT; i++)
        prom_reason(p, "inferd:requests_by_reason_total", "reason", reasons[i], c[i]);
}

static void prom_hists(struct prom *p, const struct inferd_hist *h)
{
    const double ns = 1e-9;
    prom_hist(p, "vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
              &h[INFERD_H_TTFT], ns, 14, 36);
    prom_hist(p, "vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.",
              &h[INFERD_H_ITL], ns, 10, 34);
    prom_hist(p, "vllm:time_per_output_token_seconds",
              "Histogram of time per output token in seconds (the observations of "
              "vllm:inter_token_latency_seconds, under vLLM's earlier name).",
              &h[INFERD_H_ITL], ns, 10, 34);
    prom_hist(p, "vllm:e2e_request_latency_seconds",
              "Histogram of end to end request latency in seconds.", &h[INFERD_H_E2E], ns, 14, 38);
    prom_hist(p, "vllm:request_queue_time_seconds",
              "Histogram of time spent in WAITING phase for request.", &h[INFERD_H_QUEUE], ns, 10,
              38);
    prom_hist(p, "vllm:request_prefill_time_seconds",
              "Histogram of time from scheduling to first token (prefill) in seconds.",
              &h[INFERD_H_PREFILL], ns, 10, 36);
    prom_hist(p, "vllm:iteration_tokens_total", "Histogram of number of tokens per engine_step.",
              &h[INFERD_H_BATCH], 1.0, 0, 16);
    prom_hist(p, "inferd:engine_step_seconds", "Histogram of engine step duration in seconds.",
              &h[INFERD_H_STEP], ns, 10, 36);
}

int prom_write(FILE *fp, const struct prom_input *in)
{
    struct prom p = {fp, {0}};
    prom_labels(&p, in->model);
    struct prom_src src;
    memset(&src, 0, sizeof src);
    bool have_src = true;
    if (in->bpf_hists && in->bpf_counters)
        prom_src_bpf(&src, in->bpf_hists, in->bpf_counters);
    else if (in->stats)
        prom_src_stats(&src, in->stats);
    else
        have_src = false;
    if (in->stats)
        prom_gauges(&p, in->stats);
    if (have_src)
        prom_counters(&p, &src);
    if (src.bpf)
        prom_value(&p, "inferd:kv_blocks_in_use_bpf", "gauge",
                   "KV blocks referenced, from the kv_alloc/kv_free probes since attach.",
                   (double)src.kv_in_use);
    if (have_src && src.h)
        prom_hists(&p, src.h);
    return ferror(fp) ? -EIO : 0;
}
