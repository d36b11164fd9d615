/* dstats.h - the daemon's figures, summed over its engines: what the
 * Stats message carries (session.c) and GET /metrics shows (metrics.c),
 * read in one place so that both give the same numbers.
 *
 * Threads: dstats_collect() may run on any thread. It copies each
 * worker's published statistics under that worker's mutex (wk_get_stats,
 * a copy and nothing else), so a reader never holds an engine up for
 * longer than the copy; the echo engine's counters are atomics. */
#ifndef INFERD_DSTATS_H
#define INFERD_DSTATS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "ipc/wire.h"
#include "prom.h"
#include "worker.h"

struct dstats_src {
    struct worker *const *workers; /* one per model; none with the echo engine */
    size_t n_workers;
    /* The echo engine (no engine thread): requests answered and their
     * tokens, bumped by the IPC thread. Relaxed: independent counters
     * that order nothing else. */
    _Atomic uint64_t echo_finished, echo_tokens;
};

/* The sums over the engines, the echo engine's requests counted as
 * finished by length. */
void dstats_collect(struct dstats_src *src, struct prom_stats *out);

/* The Stats message of st; its histograms are written to hists (room for
 * INFERD_H_COUNT), which w then points to. */
void dstats_to_wire(const struct prom_stats *st, struct wire_histogram *hists,
                    struct wire_stats *w);

/* The model_name label of the exposition: the model's name when there is
 * one, "echo" for the echo engine, else "inferd" (the figures are summed
 * over the models), as `inferctl metrics` names it. */
const char *dstats_model_label(const struct dstats_src *src);

#endif
