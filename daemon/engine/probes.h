/* probes.h - every USDT probe of inferd (provider "inferd"), with its
 * arguments. Each is a <sys/sdt.h> probe: a single nop in the code plus an
 * ELF note describing where its arguments live, so an unattached probe
 * costs a nop and the arguments' register moves. bpf/inferd.bpf.c attaches
 * to them (`inferctl bpf attach`); bpftrace, perf and stap can too:
 *   bpftrace -e 'usdt:/usr/bin/inferd:inferd:request_finished { @[arg1] = count(); }'
 *
 * Times are nanoseconds of CLOCK_MONOTONIC (sched_now_ns); durations are
 * differences of them, 0 when a moment was not reached. The scheduler
 * keeps the daemon's own histograms and finish counts (obsstats.h) where
 * these probes fire, computing each value once for both, so the BPF maps
 * and the daemon's Stats agree exactly.
 *
 * request_queued    (req_id, prompt_tokens, max_tokens, n_samples)
 *     sched_submit accepted a request.
 * request_admitted  (req_id, queue_ns, cached_prompt_tokens, readmission)
 *     a sequence of the request left the waiting list. readmission is 0 the
 *     first time (queue_ns = scheduled - queued), 1 after a preemption
 *     (queue_ns 0). cached_prompt_tokens: tokens found in the prefix cache.
 * request_first_token (req_id, ttft_ns, prefill_ns)
 *     the request's first sampled token: ttft = first_token - queued,
 *     prefill = first_token - scheduled.
 * request_token     (req_id, sample, n_generated, itl_ns)
 *     one generated token (every sample's); n_generated counts the
 *     request's tokens so far, itl_ns is the time since its previous token
 *     (0 for the first).
 * request_finished  (req_id, reason, prompt_tokens, generated_tokens, e2e_ns,
 *                    cached_prompt_tokens)
 *     the request's terminal event, exactly once per request. reason is
 *     enum inferd_probe_reason; e2e = finished - queued.
 * request_cancelled (req_id, generated_tokens)
 *     fires before request_finished(reason CANCELLED).
 * request_preempted (req_id, sample, blocks_released)
 * step_begin        (step, batch_tokens, running_seqs, waiting_seqs)
 *     one engine step is about to run its forward pass over batch_tokens
 *     tokens of running_seqs sequences (those scheduled this step).
 * step_end          (step, batch_tokens, running_seqs, step_ns, rc)
 *     step_ns covers the whole sched_step (batching, forward, sampling);
 *     rc < 0 when the forward pass failed.
 * kv_alloc          (block, in_use, source)
 *     a block became referenced: source 0 from the free list, 1 evicted
 *     from the prefix cache, 2 a cached block revived by a prefix hit.
 *     in_use: blocks referenced in this scheduler after the change.
 * kv_free           (block, in_use, cached)
 *     the last reference to a block went; cached 1 when it stays in the
 *     prefix cache (evictable), 0 when it went back to the free list.
 * prefix_query      (req_id, query_tokens, hit_tokens, query_blocks, hit_blocks)
 *     an admission's prefix-cache lookup (counted when the admission
 *     happens, as the daemon's own prefix_cache_* counters are).
 */
#ifndef INFERD_PROBES_H
#define INFERD_PROBES_H

/* The order of finish reasons in request_finished (and in the BPF
 * counters): append only. */
enum inferd_probe_reason {
    INFERD_PROBE_LENGTH = 0,
    INFERD_PROBE_EOS = 1,
    INFERD_PROBE_STOP = 2,
    INFERD_PROBE_CANCELLED = 3,
    INFERD_PROBE_ERROR = 4,
    INFERD_PROBE_REASON_COUNT
};

#if defined(INFERD_NO_PROBES) || !__has_include(<sys/sdt.h>)
#define INFERD_PROBE2(name, a, b) ((void)(a), (void)(b))
#define INFERD_PROBE3(name, a, b, c) ((void)(a), (void)(b), (void)(c))
#define INFERD_PROBE4(name, a, b, c, d) ((void)(a), (void)(b), (void)(c), (void)(d))
#define INFERD_PROBE5(name, a, b, c, d, e) \
    ((void)(a), (void)(b), (void)(c), (void)(d), (void)(e))
#define INFERD_PROBE6(name, a, b, c, d, e, f) \
    ((void)(a), (void)(b), (void)(c), (void)(d), (void)(e), (void)(f))
#else
#include <sys/sdt.h>
#define INFERD_PROBE2(name, a, b) DTRACE_PROBE2(inferd, name, a, b)
#define INFERD_PROBE3(name, a, b, c) DTRACE_PROBE3(inferd, name, a, b, c)
#define INFERD_PROBE4(name, a, b, c, d) DTRACE_PROBE4(inferd, name, a, b, c, d)
#define INFERD_PROBE5(name, a, b, c, d, e) DTRACE_PROBE5(inferd, name, a, b, c, d, e)
#define INFERD_PROBE6(name, a, b, c, d, e, f) DTRACE_PROBE6(inferd, name, a, b, c, d, e, f)
#endif

#endif
