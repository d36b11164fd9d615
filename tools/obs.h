/* obs.h - inferd's observability figures for `inferctl stats`, `bpf`, `top`
 * and `metrics`: the daemon's own (its Stats message, histograms included,
 * as struct prom_stats of daemon/obs/prom.h), the BPF maps pinned by
 * `inferctl bpf attach` (layout in bpf/inferd_bpf.h), and what the
 * commands make of both (names, quantiles, JSON, tables). */
#ifndef INFERD_OBS_H
#define INFERD_OBS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "bpf/inferd_bpf.h"
#include "inferclient.h"
#include "prom.h"

#define OBS_PIN_DIR "/sys/fs/bpf/inferd"

struct obs_bpf {
    struct inferd_hist h[INFERD_H_COUNT];
    uint64_t c[INFERD_C_COUNT];
};

/* Whether this inferctl was built with the BPF programs. */
bool obs_built_with_bpf(void);
/* Reads the maps pinned under dir. Returns 0, -ENOTSUP (built without
 * BPF), -ENOENT (nothing attached), -EPERM/-EACCES (not privileged). */
int obs_bpf_read(const char *dir, struct obs_bpf *out);
/* The p-quantile (p in [0, 1]) of a log2 histogram, interpolated linearly
 * inside its slot; 0 when empty. */
double obs_hist_quantile(const struct inferd_hist *h, double p);

/* Names of the histograms and counters (JSON keys, table rows) and of the
 * finish reasons (enum inferd_probe_reason: "length", ..., "error"). */
extern const char *const obs_hist_names[INFERD_H_COUNT];
extern const char *const obs_ctr_names[INFERD_C_COUNT];
extern const char *const obs_reason_names[INFERD_PROBE_REASON_COUNT];

/* The daemon's Stats as libinferclient gives them (d may be NULL: none). */
void obs_stats_from_client(const struct infer_stats *s, const struct infer_stats_detail *d,
                           struct prom_stats *out);
/* The daemon's counters, named as `inferctl stats` prints them. */
#define OBS_N_COUNTERS 10
struct obs_counter {
    const char *name;
    uint64_t v;
};
void obs_stats_counters(const struct prom_stats *st, struct obs_counter out[OBS_N_COUNTERS]);
/* `inferctl stats --json`: the counters and, each when the daemon sent
 * it, "finished_by_reason" {reason: n} and "histograms" {name: {"unit",
 * "count", "sum", "slots": [64]}}. */
json_t *obs_stats_json(const struct prom_stats *st);
/* The finish counts as one JSON object {reason: n}. */
json_t *obs_reasons_json(const uint64_t *fin);
/* Per histogram {"count", "sum", "mean", "p50", "p90", "p99"}. */
json_t *obs_hists_summary_json(const struct inferd_hist *h);
/* A table of the histograms: count, mean, p50, p90, p99 (times in ns, us,
 * ms or s; batch sizes in tokens). */
void obs_print_hists(FILE *fp, const struct inferd_hist *h);

#endif
