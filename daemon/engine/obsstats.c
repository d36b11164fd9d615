/* obsstats.c - log2 histograms and finish counters (see obsstats.h). */
#include "obsstats.h"

unsigned obs_hist_slot(uint64_t v)
{
    if (v <= 1)
        return 0;
    /* ceil(log2(v)) = floor(log2(v - 1)) + 1 for v >= 2; v - 1 >= 1, so
     * the count of leading zeros is defined. */
    unsigned slot = 64u - (unsigned)__builtin_clzll(v - 1);
    return slot < INFERD_HIST_SLOTS ? slot : INFERD_HIST_SLOTS - 1;
}

void obs_hist_add(struct inferd_hist *h, uint64_t v)
{
    h->slots[obs_hist_slot(v)]++;
    h->count++;
    h->sum += v;
}

void obs_hist_merge(struct inferd_hist *dst, const struct inferd_hist *src)
{
    for (unsigned i = 0; i < INFERD_HIST_SLOTS; i++)
        dst->slots[i] += src->slots[i];
    dst->count += src->count;
    dst->sum += src->sum;
}

void obs_stats_merge(struct obs_stats *dst, const struct obs_stats *src)
{
    for (unsigned i = 0; i < INFERD_H_COUNT; i++)
        obs_hist_merge(&dst->h[i], &src->h[i]);
    for (unsigned i = 0; i < INFERD_PROBE_REASON_COUNT; i++)
        dst->finished[i] += src->finished[i];
}
