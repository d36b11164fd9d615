/* prom.h - the Prometheus text exposition (format 0.0.4) of inferd's
 * figures, with vLLM's metric names where the meaning is the same and
 * inferd:* names where it differs. One renderer serves `inferctl metrics`
 * and the daemon's own GET /metrics, fed by either source:
 *
 *  - the daemon's figures (struct prom_stats): the Stats message in a
 *    client, the engines' published snapshots in the daemon; gauges,
 *    counters, and (from daemons that have them) the latency histograms
 *    and finish counts of daemon/engine/obsstats.h;
 *  - the BPF maps (bpf/inferd_bpf.h): the same histograms and counters
 *    from the USDT probes. Given, they replace the daemon's counters and
 *    histograms; the gauges still come from the daemon's Stats.
 *
 * Histograms: the log2 slots become cumulative "le" buckets at the slot
 * bounds (2^i ns, in seconds), +Inf, _sum and _count.
 */
#ifndef INFERD_PROM_H
#define INFERD_PROM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "bpf/inferd_bpf.h"
#include "obsstats.h"

#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* The daemon's Stats, summed over its models (ipc/schema/inferd.fbs). */
struct prom_stats {
    uint64_t requests_running, requests_waiting, requests_finished;
    uint64_t prompt_tokens, generated_tokens;
    uint64_t kv_blocks_total, kv_blocks_used;
    uint64_t prefix_cache_queries, prefix_cache_hits; /* in KV blocks */
    uint64_t preemptions;
    /* Daemons that predate them send neither; a Stats message too large
     * for the session's limit comes without the histograms. */
    bool have_reasons; /* obs.finished[] (by enum inferd_probe_reason) is filled */
    bool have_hists;   /* obs.h[] is filled */
    struct obs_stats obs;
};

struct prom_input {
    const char *model;              /* the model_name label; NULL or "": "inferd" */
    const struct prom_stats *stats; /* NULL: the daemon was not reachable */
    /* The BPF maps, or NULL: INFERD_H_COUNT histograms, INFERD_C_COUNT
     * counters. */
    const struct inferd_hist *bpf_hists;
    const uint64_t *bpf_counters;
};

/* Writes the exposition of in to fp. 0, or -EIO when fp reports an error. */
int prom_write(FILE *fp, const struct prom_input *in);

#endif
