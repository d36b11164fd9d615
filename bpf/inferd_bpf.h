/* inferd_bpf.h - the layout of the maps that bpf/inferd.bpf.c fills and
 * `inferctl bpf|top|metrics` read (pinned under /sys/fs/bpf/inferd/).
 * Shared by the BPF program (clang -target bpf) and user space: plain
 * fixed-width fields only. Enums are append-only.
 *
 * Map "hists": array, key enum inferd_hist_id, value struct inferd_hist.
 *   slots[i] counts values v with 2^(i-1) < v <= 2^i (slot 0: v <= 1), so
 *   2^i is an inclusive upper bound, as a Prometheus "le" bucket is; the
 *   last slot also counts every v above 2^63. Latencies are in
 *   nanoseconds, batch sizes in tokens. The daemon keeps the same
 *   histograms itself (daemon/engine/obsstats.h), fed the same values.
 * Map "counters": array, key enum inferd_ctr_id, value u64. KV_IN_USE is a
 *   gauge kept as a sum of +1/-1 (two's complement), so it is exact only
 *   when the programs were attached before the daemon allocated blocks.
 */
#ifndef INFERD_BPF_H
#define INFERD_BPF_H

#define INFERD_HIST_SLOTS 64

struct inferd_hist {
    unsigned long long slots[INFERD_HIST_SLOTS];
    unsigned long long count;
    unsigned long long sum;
};

enum inferd_hist_id {
    INFERD_H_TTFT = 0,    /* request_first_token: first_token - queued */
    INFERD_H_ITL = 1,     /* request_token, from a request's 2nd token on */
    INFERD_H_E2E = 2,     /* request_finished: finished - queued (every reason) */
    INFERD_H_QUEUE = 3,   /* request_admitted (first admission): scheduled - queued */
    INFERD_H_PREFILL = 4, /* request_first_token: first_token - scheduled */
    INFERD_H_STEP = 5,    /* step_end: duration of one engine step */
    INFERD_H_BATCH = 6,   /* step_end: tokens in the step's batch */
    INFERD_H_COUNT
};

enum inferd_ctr_id {
    /* request_finished by reason (enum inferd_probe_reason order) */
    INFERD_C_FIN_LENGTH = 0,
    INFERD_C_FIN_EOS = 1,
    INFERD_C_FIN_STOP = 2,
    INFERD_C_FIN_CANCELLED = 3,
    INFERD_C_FIN_ERROR = 4,
    INFERD_C_QUEUED = 5,          /* request_queued */
    INFERD_C_PROMPT_TOKENS = 6,   /* request_queued: prompt tokens */
    INFERD_C_GEN_TOKENS = 7,      /* request_finished: generated tokens */
    INFERD_C_TOKEN_EVENTS = 8,    /* request_token firings */
    INFERD_C_PREFIX_Q_TOKENS = 9, /* prefix_query */
    INFERD_C_PREFIX_H_TOKENS = 10,
    INFERD_C_PREFIX_Q_BLOCKS = 11,
    INFERD_C_PREFIX_H_BLOCKS = 12,
    INFERD_C_PREEMPTIONS = 13,    /* request_preempted */
    INFERD_C_KV_IN_USE = 14,      /* gauge: kv_alloc +1, kv_free -1 */
    INFERD_C_KV_ALLOCS = 15,
    INFERD_C_KV_FREES = 16,
    INFERD_C_STEPS = 17,          /* step_end */
    INFERD_C_CACHED_PROMPT = 18,  /* request_admitted (first): cached prompt tokens */
    INFERD_C_CANCELS = 19,        /* request_cancelled */
    INFERD_C_COUNT
};

#endif
