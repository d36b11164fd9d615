/* obsstats.h - the daemon's own latency histograms and finish counters:
 * the figures that bpf/inferd.bpf.c aggregates from the USDT probes, kept
 * in process with the same definitions (bpf/inferd_bpf.h: the same log2
 * slots, histogram ids and units), so that they are there without root or
 * BPF. The scheduler updates them exactly where the corresponding probe
 * fires and with the very values it passes to the probe, so the daemon's
 * figures and the BPF maps agree exactly for the same requests:
 *
 *   TTFT, PREFILL  request_first_token: first_token - queued, - scheduled
 *   ITL            request_token, from the request's 2nd token on
 *   E2E            request_finished: finished - queued, every reason
 *   QUEUE          request_admitted, first admission: scheduled - queued
 *   STEP, BATCH    step_end: the step's duration and its batch tokens
 *   finished[r]    request_finished with reason r (enum inferd_probe_reason)
 *
 * Plain data, owned by one scheduler (one thread); the daemon publishes a
 * copy with the scheduler's statistics (struct sched_stats). Sums wrap
 * modulo 2^64, as the BPF programs' do.
 */
#ifndef INFERD_OBSSTATS_H
#define INFERD_OBSSTATS_H

#include <assert.h>
#include <stdint.h>

#include "bpf/inferd_bpf.h"
#include "probes.h"

static_assert(INFERD_C_FIN_ERROR + 1 == INFERD_PROBE_REASON_COUNT,
              "the BPF finish counters follow enum inferd_probe_reason");

struct obs_stats {
    struct inferd_hist h[INFERD_H_COUNT];
    uint64_t finished[INFERD_PROBE_REASON_COUNT];
};

/* The slot of v: 0 for v <= 1, else i with 2^(i-1) < v <= 2^i; values
 * above 2^63 go to the last slot (INFERD_HIST_SLOTS - 1). */
unsigned obs_hist_slot(uint64_t v);
/* Counts v in h (its slot, count and sum). */
void obs_hist_add(struct inferd_hist *h, uint64_t v);
/* dst += src, slot by slot (figures of several schedulers). */
void obs_hist_merge(struct inferd_hist *dst, const struct inferd_hist *src);
void obs_stats_merge(struct obs_stats *dst, const struct obs_stats *src);

#endif
