// SPDX-License-Identifier: MIT
/* inferd.bpf.c - CO-RE programs on inferd's USDT probes (see
 * daemon/engine/probes.h) that aggregate in the kernel: log2 histograms and
 * counters in two array maps (layout in inferd_bpf.h). Every program is
 * named after the probe it attaches to; `inferctl bpf attach` relies on it. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/usdt.bpf.h>

#include "inferd_bpf.h"

char LICENSE[] SEC("license") = "GPL";

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, INFERD_H_COUNT);
    __type(key, __u32);
    __type(value, struct inferd_hist);
} hists SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, INFERD_C_COUNT);
    __type(key, __u32);
    __type(value, __u64);
} counters SEC(".maps");

/* floor(log2(v)) for v >= 1 */
static __always_inline __u32 log2_floor(__u64 v)
{
    __u32 r = 0, shift;
    shift = (v > 0xffffffffULL) << 5; v >>= shift; r |= shift;
    shift = (v > 0xffff) << 4; v >>= shift; r |= shift;
    shift = (v > 0xff) << 3; v >>= shift; r |= shift;
    shift = (v > 0xf) << 2; v >>= shift; r |= shift;
    shift = (v > 0x3) << 1; v >>= shift; r |= shift;
    r |= (__u32)(v >> 1);
    return r;
}

static __always_inline void hist_add(__u32 id, __u64 v)
{
    struct inferd_hist *h = bpf_map_lookup_elem(&hists, &id);
    if (!h)
        return;
    __u64 slot = v <= 1 ? 0 : log2_floor(v - 1) + 1;
    /* Values above 2^63 (slot 64) count in the last slot, as the daemon's
     * own histograms do (daemon/engine/obsstats.c). */
    if (slot > INFERD_HIST_SLOTS - 1)
        slot = INFERD_HIST_SLOTS - 1;
    /* The mask after the barrier is what the verifier sees as the bound. */
    barrier_var(slot);
    slot &= INFERD_HIST_SLOTS - 1;
    __sync_fetch_and_add(&h->slots[slot], 1);
    __sync_fetch_and_add(&h->count, 1);
    __sync_fetch_and_add(&h->sum, v);
}

static __always_inline void ctr_add(__u32 id, __u64 v)
{
    __u64 *c = bpf_map_lookup_elem(&counters, &id);
    if (c)
        __sync_fetch_and_add(c, v);
}

SEC("usdt")
int BPF_USDT(request_queued, __u64 id, __u32 prompt_tokens, __u32 max_tokens, __u32 n)
{
    ctr_add(INFERD_C_QUEUED, 1);
    ctr_add(INFERD_C_PROMPT_TOKENS, prompt_tokens);
    return 0;
}

SEC("usdt")
int BPF_USDT(request_admitted, __u64 id, __u64 queue_ns, __u32 cached_tokens, int readmission)
{
    if (!readmission) {
        hist_add(INFERD_H_QUEUE, queue_ns);
        ctr_add(INFERD_C_CACHED_PROMPT, cached_tokens);
    }
    return 0;
}

SEC("usdt")
int BPF_USDT(request_first_token, __u64 id, __u64 ttft_ns, __u64 prefill_ns)
{
    hist_add(INFERD_H_TTFT, ttft_ns);
    hist_add(INFERD_H_PREFILL, prefill_ns);
    return 0;
}

SEC("usdt")
int BPF_USDT(request_token, __u64 id, __u32 sample, __u32 n_generated, __u64 itl_ns)
{
    ctr_add(INFERD_C_TOKEN_EVENTS, 1);
    if (n_generated > 1)
        hist_add(INFERD_H_ITL, itl_ns);
    return 0;
}

SEC("usdt")
int BPF_USDT(request_finished, __u64 id, int reason, __u32 prompt_tokens, __u32 generated,
             __u64 e2e_ns, __u32 cached_tokens)
{
    if (reason >= 0 && reason <= INFERD_C_FIN_ERROR)
        ctr_add((__u32)reason, 1);
    ctr_add(INFERD_C_GEN_TOKENS, generated);
    hist_add(INFERD_H_E2E, e2e_ns);
    return 0;
}

SEC("usdt")
int BPF_USDT(request_cancelled, __u64 id, __u32 generated)
{
    ctr_add(INFERD_C_CANCELS, 1);
    return 0;
}

SEC("usdt")
int BPF_USDT(request_preempted, __u64 id, __u32 sample, __u32 blocks)
{
    ctr_add(INFERD_C_PREEMPTIONS, 1);
    return 0;
}

SEC("usdt")
int BPF_USDT(step_end, __u64 step, __u32 batch_tokens, __u32 running, __u64 step_ns, int rc)
{
    ctr_add(INFERD_C_STEPS, 1);
    hist_add(INFERD_H_STEP, step_ns);
    hist_add(INFERD_H_BATCH, batch_tokens);
    return 0;
}

SEC("usdt")
int BPF_USDT(kv_alloc, __u32 block, __u32 in_use, int source)
{
    ctr_add(INFERD_C_KV_IN_USE, 1);
    ctr_add(INFERD_C_KV_ALLOCS, 1);
    return 0;
}

SEC("usdt")
int BPF_USDT(kv_free, __u32 block, __u32 in_use, int cached)
{
    ctr_add(INFERD_C_KV_IN_USE, (__u64)-1);
    ctr_add(INFERD_C_KV_FREES, 1);
    return 0;
}

SEC("usdt")
int BPF_USDT(prefix_query, __u64 id, __u32 q_tokens, __u32 h_tokens, __u32 q_blocks,
             __u32 h_blocks)
{
    ctr_add(INFERD_C_PREFIX_Q_TOKENS, q_tokens);
    ctr_add(INFERD_C_PREFIX_H_TOKENS, h_tokens);
    ctr_add(INFERD_C_PREFIX_Q_BLOCKS, q_blocks);
    ctr_add(INFERD_C_PREFIX_H_BLOCKS, h_blocks);
    return 0;
}
