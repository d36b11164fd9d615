/* inferclient.h - libinferclient, the C client of the inferd daemon.
 *
 * A client connects to the daemon's Unix socket, receives its own session
 * (a sealed shared-memory region with a submission and a completion ring,
 * and two eventfd doorbells), and from then on talks to the daemon through
 * the rings only: requests go in, token chunks and terminal events come
 * out. Nothing in the steady state needs a system call while both sides
 * are busy; a side that has nothing to do spins briefly, then sleeps until
 * the other rings its doorbell.
 *
 *     struct infer_client *c;
 *     int rc = infer_connect("/run/inferd.sock", NULL, &c);   // 0 or -errno
 *     struct infer_request r;
 *     infer_request_init(&r);
 *     r.prompt = "Once upon a time";
 *     uint64_t id;
 *     rc = infer_submit(c, &r, &id);
 *     struct infer_event ev;
 *     while ((rc = infer_next_event(c, &ev, -1)) == 0) {
 *         if (ev.type == INFER_EV_TOKENS)
 *             fwrite(ev.text, 1, ev.text_len, stdout);
 *         else if (ev.request_id == id)
 *             break;                                  // DONE or ERROR: the end
 *     }
 *     infer_close(c);
 *
 * Every request ends with exactly one terminal event: INFER_EV_DONE (with a
 * finish reason, INFER_FINISH_CANCELLED after infer_cancel) or
 * INFER_EV_ERROR. An ERROR with request_id 0 is about the session itself
 * (a malformed message, for instance); the session goes on unless the
 * daemon hangs up.
 *
 * Event loops: infer_fd() is a descriptor that becomes readable when an
 * event may be ready or the daemon hung up; put it in poll/epoll/io_uring
 * and call infer_poll_event() until it returns -EAGAIN. Only a -EAGAIN
 * arms the wake-up, so always drain to -EAGAIN before waiting on the fd.
 *
 * Errors: every function returns 0 or a negative errno: -ECONNREFUSED /
 * -ENOENT (no daemon), -EACCES (the daemon's access policy refused this
 * user), -EUSERS (too many sessions), -ESHUTDOWN (the daemon is draining),
 * -ECONNRESET (the daemon went away), -EPROTO (the daemon broke the
 * protocol), -ETIMEDOUT, -EMSGSIZE (a request larger than the session's
 * message limit), -EINVAL, -ENOMEM. The library never prints, logs, exits
 * or raises signals (SIGPIPE included).
 *
 * Thread-safety: a handle belongs to one thread at a time (no locking
 * inside); distinct handles are independent, and the library has no global
 * state. Use one handle per thread, or serialize the calls on a handle.
 */
#ifndef INFERCLIENT_H
#define INFERCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct infer_client;

struct infer_connect_opts {
    const char *client_name;    /* sent in Hello; NULL: "libinferclient" */
    uint32_t max_concurrent;    /* ask for a lower per-session limit; 0: the daemon's */
    uint32_t max_queued_tokens; /* likewise; 0: the daemon's */
    uint32_t spin_us;           /* busy-poll this long before sleeping (default 50) */
    int timeout_ms;             /* connection and handshake; default 5000 */
};

void infer_connect_opts_init(struct infer_connect_opts *o);

/* Connects, receives the session and exchanges Hello/Welcome. opts may be
 * NULL (defaults). */
int infer_connect(const char *socket_path, const struct infer_connect_opts *opts,
                  struct infer_client **out);
/* Hangs up: the daemon cancels this session's requests. NULL is fine. */
void infer_close(struct infer_client *c);

/* What the daemon granted this session (from its Welcome). */
struct infer_limits {
    uint32_t max_concurrent_requests;
    uint32_t max_queued_tokens; /* prompt + max_tokens over live requests */
    uint32_t submit_ring_bytes;
    uint32_t completion_ring_bytes;
    uint32_t max_message_bytes;
};
int infer_get_limits(const struct infer_client *c, struct infer_limits *out);
uint64_t infer_session_id(const struct infer_client *c);

/* Sampling parameters; infer_request_init() fills the daemon's defaults. */
struct infer_sampling {
    float temperature;       /* 0.8; <= 0: greedy */
    int32_t top_k;           /* 40; <= 0: off */
    float top_p;             /* 0.95; 1: off */
    float min_p;             /* 0.05; 0: off */
    float repeat_penalty;    /* 1: off */
    float frequency_penalty; /* 0: off */
    float presence_penalty;  /* 0: off */
    int32_t repeat_last_n;   /* 64; 0: off, -1: the whole history */
    uint64_t seed;           /* 0xfa11 */
};

struct infer_request {
    const char *model;            /* NULL: the daemon's default model */
    const char *prompt;           /* text (tokenized by the daemon, BOS added) ... */
    size_t prompt_len;            /* ... of this many bytes; 0: strlen(prompt) */
    const int32_t *prompt_tokens; /* ... or token ids (then prompt is NULL) */
    size_t n_prompt_tokens;
    struct infer_sampling sampling;
    uint32_t max_tokens;          /* 256 */
    const char *const *stop;      /* stop strings, not included in the text */
    size_t n_stop;
    bool stream;                  /* true: a TOKENS event per token; false: one at the end */
    int32_t priority;             /* higher runs first; 0 */
    const char *cache_salt;       /* NULL: the shared prefix cache */
    uint32_t logprobs;            /* top-N alternatives per token; 0: none */
    /* Parallel samples of the prompt (1; at most the daemon's max-n): sample
     * j samples with seed + j, exactly as a lone request with that seed
     * would. Each sample counts as one request (and its prompt + max_tokens)
     * against the session's limits. TOKENS events say which sample they
     * belong to; the one DONE carries every sample's finish reason.
     * (Added after the first release: set it through infer_request_init.) */
    uint32_t n;
};

void infer_request_init(struct infer_request *r);

/* Queues a request; *id (may be NULL) receives its id, which every event of
 * the request carries. Waits while the submission ring is full (reading
 * arriving events into the handle's queue meanwhile). */
int infer_submit(struct infer_client *c, const struct infer_request *r, uint64_t *id);
/* Asks the daemon to cancel a request; its terminal event follows (DONE
 * with INFER_FINISH_CANCELLED, or the DONE it had already reached). */
int infer_cancel(struct infer_client *c, uint64_t id);

enum infer_event_type {
    INFER_EV_TOKENS = 1, /* generated tokens and text */
    INFER_EV_DONE = 2,   /* terminal: finish reason, usage, timings */
    INFER_EV_ERROR = 3,  /* terminal for request_id != 0 */
};

enum infer_finish {
    INFER_FINISH_LENGTH = 0,
    INFER_FINISH_EOS = 1,
    INFER_FINISH_STOP = 2,
    INFER_FINISH_CANCELLED = 3,
};

/* The protocol's error codes (ipc/schema/inferd.fbs ErrorCode). */
enum infer_error {
    INFER_ERR_INTERNAL = 0,
    INFER_ERR_BAD_MESSAGE = 1,
    INFER_ERR_UNSUPPORTED_VERSION = 2,
    INFER_ERR_UNKNOWN_MODEL = 3,
    INFER_ERR_INVALID_PARAMS = 4,
    INFER_ERR_QUOTA_EXCEEDED = 5,
    INFER_ERR_PROMPT_TOO_LONG = 6,
    INFER_ERR_UNKNOWN_REQUEST = 7,
    INFER_ERR_DUPLICATE_REQUEST = 8,
    INFER_ERR_OUT_OF_MEMORY = 9,
    INFER_ERR_SHUTTING_DOWN = 10,
    INFER_ERR_NOT_PERMITTED = 11,
};

struct infer_top_logprob {
    int32_t token;
    float logprob;
};

/* One event. Pointers stay valid until the next infer_poll_event /
 * infer_next_event / infer_close on the handle. */
struct infer_event {
    enum infer_event_type type;
    uint64_t request_id;
    /* TOKENS */
    const int32_t *tokens;
    size_t n_tokens;
    const char *text; /* NUL-terminated; bytes, not always whole UTF-8 characters */
    size_t text_len;
    const float *logprobs;               /* n_tokens entries, or NULL (-inf: not in the top N) */
    const struct infer_top_logprob *top; /* n_tokens * n_top entries, most probable first */
    size_t n_top;
    uint32_t sample; /* TOKENS: which of the request's n samples (0 .. n-1) */
    /* DONE */
    enum infer_finish finish; /* sample 0's (the request's when n = 1) */
    uint32_t prompt_tokens, cached_prompt_tokens, generated_tokens;
    uint64_t queued_ns, scheduled_ns, first_token_ns, finished_ns; /* daemon's CLOCK_MONOTONIC */
    /* DONE: the finish reason of every sample, sample j at [j] (enum
     * infer_finish values); n_samples = the request's n. For n = 1 it is
     * the one reason, finish. */
    const uint8_t *sample_finish;
    size_t n_samples;
    /* ERROR */
    enum infer_error error;
    const char *message; /* NUL-terminated */
};

/* The next event without waiting: 0, or -EAGAIN when none is ready (the fd
 * is then armed), -ECONNRESET once the daemon has gone and every event it
 * sent has been delivered, -EPROTO. */
int infer_poll_event(struct infer_client *c, struct infer_event *ev);
/* Waits up to timeout_ms (-1: forever) for the next event: 0, -ETIMEDOUT,
 * or as infer_poll_event. */
int infer_next_event(struct infer_client *c, struct infer_event *ev, int timeout_ms);
/* Readable when infer_poll_event may have something, or on hang-up. */
int infer_fd(const struct infer_client *c);

struct infer_model {
    char name[129];
    char arch[33];
    char quant[33];
    uint64_t n_params;
    uint32_t n_ctx;
};

/* The daemon's models: up to cap into out, the total in *n. Events that
 * arrive meanwhile are kept for infer_*_event. */
int infer_list_models(struct infer_client *c, struct infer_model *out, size_t cap, size_t *n);

struct infer_stats {
    uint64_t requests_running;
    uint64_t requests_waiting;
    uint64_t requests_finished;
    uint64_t prompt_tokens;
    uint64_t generated_tokens;
    uint64_t kv_blocks_total;
    uint64_t kv_blocks_used;
    uint64_t prefix_cache_queries;
    uint64_t prefix_cache_hits;
    uint64_t preemptions;
};

/* The daemon's counters (all models). */
int infer_stats(struct infer_client *c, struct infer_stats *out);

/* The daemon's latency histograms, with the definitions of the eBPF
 * figures (bpf/inferd_bpf.h). Log2 slots: slots[i] counts the values v
 * with 2^(i-1) < v <= 2^i (slots[0]: v <= 1; the last slot also counts
 * everything larger); nanoseconds, batch sizes in tokens. */
#define INFER_HIST_SLOTS 64

enum infer_hist_id {
    INFER_HIST_TTFT = 0,    /* queued -> first token */
    INFER_HIST_ITL = 1,     /* between consecutive tokens of a request, from its 2nd */
    INFER_HIST_E2E = 2,     /* queued -> the request's end, every way it ends */
    INFER_HIST_QUEUE = 3,   /* queued -> first scheduled */
    INFER_HIST_PREFILL = 4, /* first scheduled -> first token */
    INFER_HIST_STEP = 5,    /* one engine step */
    INFER_HIST_BATCH = 6,   /* tokens in one engine step */
    INFER_HIST_COUNT
};

struct infer_hist {
    uint64_t slots[INFER_HIST_SLOTS];
    uint64_t count;
    uint64_t sum; /* modulo 2^64 */
};

/* How requests ended: the enum infer_finish values, then errors. */
#define INFER_END_ERROR 4
#define INFER_END_COUNT 5

struct infer_stats_detail {
    bool have_hists;    /* false: the daemon predates them (all zero) */
    struct infer_hist hists[INFER_HIST_COUNT];
    bool have_finished; /* likewise */
    uint64_t finished[INFER_END_COUNT]; /* [enum infer_finish], [INFER_END_ERROR] */
};

/* infer_stats() and, when detail is not NULL, the histograms and the
 * requests ended by reason, from one Stats message. */
int infer_stats_detail(struct infer_client *c, struct infer_stats *out,
                       struct infer_stats_detail *detail);

/* "Length", "Eos", "Stop", "Cancelled"; "QuotaExceeded", ...; "?" if unknown. */
const char *infer_finish_name(enum infer_finish f);
const char *infer_error_name(enum infer_error e);

#ifdef __cplusplus
}
#endif

#endif
