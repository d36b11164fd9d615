/* obs.h - reading inferd's observability figures for `inferctl bpf`, `top`
 * and `metrics`: the BPF maps pinned by `inferctl bpf attach` (layout in
 * bpf/inferd_bpf.h) and log2-histogram helpers. */
#ifndef INFERD_OBS_H
#define INFERD_OBS_H

#include <stdbool.h>
#include <stdint.h>

#include "bpf/inferd_bpf.h"

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

/* Names of the histograms and counters (JSON keys, `top` rows). */
extern const char *const obs_hist_names[INFERD_H_COUNT];
extern const char *const obs_ctr_names[INFERD_C_COUNT];

#endif
