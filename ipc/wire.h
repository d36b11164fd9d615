/* wire.h - the inferd wire protocol: typed builders, a verifier and typed
 * readers for the FlatBuffers messages of ipc/schema/inferd.fbs.
 *
 * Every message is one FlatBuffer (file identifier "INFD") whose root table
 * `Message` carries one body: Hello, Welcome, Request, Cancel, TokenChunk,
 * Done, Error, ListModels, Models, StatsRequest or Stats. The code is
 * written by hand to the FlatBuffers binary format (no flatcc exists here);
 * buffers it builds read with flatc-generated code and the other way round
 * (tests/test_wire.c checks both directions for every message).
 *
 * Building:
 *     struct wire_builder *b = wire_builder_new(0);
 *     struct wire_cancel c = {.client_request_id = 7};
 *     wire_build_cancel(b, &c);              // 0 or -errno
 *     wire_builder_finish(b, &buf, &len);    // valid until the next build
 *     wire_builder_free(b);
 * Reading (a message from a peer is hostile input):
 *     struct wire_msg m;
 *     struct wire_diag d;
 *     if (wire_read(buf, len, NULL, &m, &d) < 0) ... d.reason says why
 * wire_read() always runs wire_verify() first; nothing touches a buffer that
 * has not passed it. Decoded structs hold pointers into the buffer: they are
 * valid while the buffer is, and the buffer must not change underneath them
 * (copy a message out of shared memory before reading it).
 *
 * Field conventions, for building and reading alike:
 *  - a string or array is present when its pointer is non-NULL (an empty one
 *    is present too); NULL means absent. Strings read from a buffer are
 *    NUL-terminated at ptr[len] and may contain any byte.
 *  - scalars read as the schema's default when absent, and the builder leaves
 *    out a scalar equal to its default (as flatc's builders do); *_default()
 *    functions fill a struct with the defaults.
 *  - lists of strings and of tables (struct wire_*_list) are the caller's
 *    array when building (items) and a view of the buffer when reading (vec);
 *    wire_*_at() returns element i of either kind, so a struct that was read
 *    can be built again unchanged.
 *  - enum fields keep unknown values (a newer peer may send them).
 *  - vectors of u64 (Stats) are copied into fixed arrays when read, as their
 *    elements need not be 8-aligned in memory; the schema bounds them.
 *
 * Errors: negative errno. -EINVAL: malformed buffer (diag->reason names the
 * problem) or an invalid struct given to a builder; -ENOMSG: a typed reader
 * found another message type; -EMSGSIZE: a built message would exceed the
 * builder's limit; -ENOMEM. Nothing here prints, logs or exits.
 *
 * Byte order: little-endian hosts only (static_assert in the sources).
 * Thread-safety: a builder is used by one thread at a time; verifying and
 * reading are pure functions of their arguments.
 */
#ifndef INFERD_WIRE_H
#define INFERD_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The protocol version this code speaks. A client sends its version in
 * Hello; the daemon answers Welcome with the version the session will speak
 * (at most the client's) or Error(UnsupportedVersion). */
#define WIRE_PROTOCOL_VERSION 1u
#define WIRE_FILE_IDENTIFIER  "INFD"

/* Hard ceiling of a message (sessions negotiate lower limits in Welcome). */
#define WIRE_MAX_MESSAGE_BYTES (16u << 20)
/* Verifier defaults: the schema nests tables three deep (Message > TokenChunk
 * > TokenLogprobs); objects = tables + vectors + strings visited. */
#define WIRE_DEFAULT_MAX_DEPTH   8u
#define WIRE_DEFAULT_MAX_OBJECTS (1u << 20)

/* Message types: the values of the schema's `Body` union (append-only). */
enum wire_type {
    WIRE_NONE = 0,
    WIRE_HELLO = 1,
    WIRE_WELCOME = 2,
    WIRE_REQUEST = 3,
    WIRE_CANCEL = 4,
    WIRE_TOKEN_CHUNK = 5,
    WIRE_DONE = 6,
    WIRE_ERROR = 7,
    WIRE_LIST_MODELS = 8,
    WIRE_MODELS = 9,
    WIRE_STATS_REQUEST = 10,
    WIRE_STATS = 11,
    WIRE_TYPE_COUNT,
};

/* The schema's FinishReason (ubyte, append-only). */
enum wire_finish_reason {
    WIRE_FINISH_LENGTH = 0,
    WIRE_FINISH_EOS = 1,
    WIRE_FINISH_STOP = 2,
    WIRE_FINISH_CANCELLED = 3,
    WIRE_FINISH_COUNT,
};

/* The schema's ErrorCode (ushort, append-only). */
enum wire_error_code {
    WIRE_ERR_INTERNAL = 0,
    WIRE_ERR_BAD_MESSAGE = 1,
    WIRE_ERR_UNSUPPORTED_VERSION = 2,
    WIRE_ERR_UNKNOWN_MODEL = 3,
    WIRE_ERR_INVALID_PARAMS = 4,
    WIRE_ERR_QUOTA_EXCEEDED = 5,
    WIRE_ERR_PROMPT_TOO_LONG = 6,
    WIRE_ERR_UNKNOWN_REQUEST = 7,
    WIRE_ERR_DUPLICATE_REQUEST = 8,
    WIRE_ERR_OUT_OF_MEMORY = 9,
    WIRE_ERR_SHUTTING_DOWN = 10,
    WIRE_ERR_NOT_PERMITTED = 11,
    WIRE_ERR_COUNT,
};

/* The schema's HistogramId (ubyte, append-only): the daemon's histograms,
 * in the order of bpf/inferd_bpf.h's enum inferd_hist_id. */
enum wire_hist_id {
    WIRE_HIST_TTFT = 0,
    WIRE_HIST_ITL = 1,
    WIRE_HIST_E2E = 2,
    WIRE_HIST_QUEUE = 3,
    WIRE_HIST_PREFILL = 4,
    WIRE_HIST_STEP = 5,
    WIRE_HIST_BATCH = 6,
    WIRE_HIST_COUNT,
};

/* Names as the schema spells them ("TokenChunk", "Stop", "BadMessage", "Ttft");
 * "?" for values this code does not know. */
const char *wire_type_name(enum wire_type t);
const char *wire_finish_reason_name(enum wire_finish_reason r);
const char *wire_error_code_name(enum wire_error_code c);
const char *wire_hist_id_name(enum wire_hist_id h);

struct wire_str {
    const char *ptr; /* NULL: absent */
    size_t len;
};

/* A list of strings: items (building) or vec (set by the readers). */
struct wire_str_list {
    size_t n;
    const struct wire_str *items;
    const unsigned char *vec;
};

struct wire_limits {
    uint32_t max_concurrent_requests;
    uint32_t max_queued_tokens;
    uint32_t submit_ring_bytes;
    uint32_t completion_ring_bytes;
    uint32_t max_message_bytes;
};

struct wire_hello {
    uint32_t protocol_version;
    struct wire_str client_name;
    struct wire_limits requested; /* 0: no preference */
};

struct wire_welcome {
    uint32_t protocol_version;
    uint64_t session_id;
    struct wire_limits limits;
};

/* Mirrors struct smp_params (daemon/engine/sampler.h) and its defaults. */
struct wire_sampling {
    float temperature;       /* 0.8 */
    int32_t top_k;           /* 40 */
    float top_p;             /* 0.95 */
    float min_p;             /* 0.05 */
    float repeat_penalty;    /* 1.0 */
    float frequency_penalty; /* 0 */
    float presence_penalty;  /* 0 */
    int32_t repeat_last_n;   /* 64 */
    uint64_t seed;           /* 0xfa11 */
};

/* Exactly one of prompt / prompt_tokens is present (builder and reader both
 * refuse anything else). */
struct wire_request {
    uint64_t client_request_id;
    struct wire_str model; /* absent: the daemon's default model */
    struct wire_str prompt;
    const int32_t *prompt_tokens; /* NULL: absent */
    size_t n_prompt_tokens;
    struct wire_sampling sampling;
    uint32_t max_tokens; /* 256 */
    struct wire_str_list stop;
    bool stream;      /* true */
    int32_t priority; /* 0 */
    struct wire_str cache_salt;
    uint32_t n;        /* 1 */
    uint32_t logprobs; /* 0 */
};

struct wire_cancel {
    uint64_t client_request_id;
};

/* Same layout as the schema's struct TopLogprob (8 bytes, 4-aligned). */
struct wire_top_logprob {
    int32_t token;
    float logprob;
};

struct wire_token_logprobs {
    int32_t token;
    float logprob;
    const struct wire_top_logprob *top; /* NULL: absent */
    size_t n_top;
};

struct wire_token_logprobs_list {
    size_t n;
    const struct wire_token_logprobs *items;
    const unsigned char *vec;
};

struct wire_token_chunk {
    uint64_t client_request_id;
    const int32_t *tokens; /* NULL: absent */
    size_t n_tokens;
    const uint8_t *text; /* NULL: absent */
    size_t text_len;
    struct wire_token_logprobs_list logprobs;
    uint32_t sample; /* 0: of the request's n samples */
};

struct wire_usage {
    uint32_t prompt_tokens;
    uint32_t cached_prompt_tokens;
    uint32_t generated_tokens;
};

/* CLOCK_MONOTONIC of the daemon in ns; 0: not reached. */
struct wire_timings {
    uint64_t queued_ns;
    uint64_t scheduled_ns;
    uint64_t first_token_ns;
    uint64_t finished_ns;
};

struct wire_done {
    uint64_t client_request_id;
    enum wire_finish_reason finish_reason; /* sample 0's */
    struct wire_usage usage;
    struct wire_timings timings;
    /* Per sample (n > 1): wire_finish_reason values, sample j at [j]; NULL:
     * absent. Unknown values are kept, as for finish_reason. */
    const uint8_t *sample_finish;
    size_t n_sample_finish;
};

struct wire_error {
    uint64_t client_request_id; /* 0: about the session */
    enum wire_error_code code;
    struct wire_str message;
};

struct wire_model_info {
    struct wire_str name;
    struct wire_str arch;
    uint64_t n_params;
    uint32_t n_ctx;
    struct wire_str quant;
};

struct wire_model_info_list {
    size_t n;
    const struct wire_model_info *items;
    const unsigned char *vec;
};

struct wire_models {
    struct wire_model_info_list models;
};

/* Limits of Stats' vectors (part of the schema's contract; the verifier
 * refuses longer ones). */
#define WIRE_HIST_SLOTS        64 /* Histogram.slots */
#define WIRE_MAX_HISTOGRAMS    32 /* Stats.histograms */
#define WIRE_MAX_FINISH_COUNTS 32 /* Stats.finished_by_reason */
/* Stats.finished_by_reason: after the FinishReason values, the index of
 * requests that ended with an Error. */
#define WIRE_FINISH_INDEX_ERROR 4

/* A log2 histogram: slots[i] counts values v with 2^(i-1) < v <= 2^i
 * (slots[0]: v <= 1). Copied out of the buffer when read (the wire's u64
 * vector need not be 8-aligned in memory). */
struct wire_histogram {
    enum wire_hist_id id; /* unknown values are kept */
    uint64_t count;
    uint64_t sum;
    /* slots[0, n_slots) go on the wire, the rest reads as 0; n_slots 0:
     * absent (an empty vector reads the same). At most WIRE_HIST_SLOTS. */
    size_t n_slots;
    uint64_t slots[WIRE_HIST_SLOTS];
};

struct wire_histogram_list {
    size_t n;
    const struct wire_histogram *items;
    const unsigned char *vec;
};

struct wire_stats {
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
    /* Appended; absent (n == 0) from daemons that predate them. */
    struct wire_histogram_list histograms; /* at most WIRE_MAX_HISTOGRAMS */
    /* finished_by_reason[i]: requests ended with FinishReason i, and
     * [WIRE_FINISH_INDEX_ERROR] with an Error; n 0: absent. Copied out of
     * the buffer when read. */
    size_t n_finished_by_reason; /* at most WIRE_MAX_FINISH_COUNTS */
    uint64_t finished_by_reason[WIRE_MAX_FINISH_COUNTS];
};

/* One message of any type (ListModels and StatsRequest carry nothing). */
struct wire_msg {
    enum wire_type type;
    union {
        struct wire_hello hello;
        struct wire_welcome welcome;
        struct wire_request request;
        struct wire_cancel cancel;
        struct wire_token_chunk token_chunk;
        struct wire_done done;
        struct wire_error error;
        struct wire_models models;
        struct wire_stats stats;
    } u;
};

/* Schema defaults (absent fields of a read message take the same values). */
void wire_sampling_default(struct wire_sampling *s);
void wire_request_default(struct wire_request *r);

/* Element i of a list (items or vec). 0, or -ERANGE when i >= n. */
int wire_str_at(const struct wire_str_list *l, size_t i, struct wire_str *out);
int wire_token_logprobs_at(const struct wire_token_logprobs_list *l, size_t i,
                           struct wire_token_logprobs *out);
int wire_model_info_at(const struct wire_model_info_list *l, size_t i, struct wire_model_info *out);
int wire_histogram_at(const struct wire_histogram_list *l, size_t i, struct wire_histogram *out);

/* ---- building ---- */

struct wire_builder;

/* max_bytes: the largest message this builder may produce (0:
 * WIRE_MAX_MESSAGE_BYTES; at most that). NULL on allocation failure. */
struct wire_builder *wire_builder_new(size_t max_bytes);
void wire_builder_free(struct wire_builder *b); /* NULL is fine */

/* Each builds one whole message, replacing whatever the builder held.
 * 0, -EINVAL (a NULL array with a non-zero count, both or neither prompt,
 * a type without a body), -EMSGSIZE, -ENOMEM. After an error the builder
 * holds nothing and can build again. The struct may point into another
 * message's buffer (a read message builds back unchanged) but not into
 * this builder's own. */
int wire_build(struct wire_builder *b, const struct wire_msg *m);
int wire_build_hello(struct wire_builder *b, const struct wire_hello *h);
int wire_build_welcome(struct wire_builder *b, const struct wire_welcome *w);
int wire_build_request(struct wire_builder *b, const struct wire_request *r);
int wire_build_cancel(struct wire_builder *b, const struct wire_cancel *c);
int wire_build_token_chunk(struct wire_builder *b, const struct wire_token_chunk *c);
int wire_build_done(struct wire_builder *b, const struct wire_done *d);
int wire_build_error(struct wire_builder *b, const struct wire_error *e);
int wire_build_list_models(struct wire_builder *b);
int wire_build_models(struct wire_builder *b, const struct wire_models *m);
int wire_build_stats_request(struct wire_builder *b);
int wire_build_stats(struct wire_builder *b, const struct wire_stats *s);

/* The finished message: *buf (8-byte aligned, owned by the builder, valid
 * until the next build or free) and *len. -EINVAL when nothing was built. */
int wire_builder_finish(struct wire_builder *b, const void **buf, size_t *len);

/* ---- verifying and reading ---- */

struct wire_verify_opts {
    size_t max_bytes;     /* 0: WIRE_MAX_MESSAGE_BYTES (also the ceiling) */
    uint32_t max_depth;   /* nested tables, root = 1; 0: WIRE_DEFAULT_MAX_DEPTH */
    uint32_t max_objects; /* tables + vectors + strings; 0: WIRE_DEFAULT_MAX_OBJECTS */
};

struct wire_diag {
    char reason[160]; /* e.g. "Request.stop[2]: string not NUL-terminated" */
    size_t offset;    /* byte offset of the problem in the buffer */
};

/* Checks every byte the readers may touch: sizes and identifier, every
 * offset and vtable in bounds and aligned, table fields inside their table,
 * strings terminated, vector lengths (overflow-safe) and the bounds the
 * schema sets on some (Stats), union type and value consistent and the
 * type known, nesting depth and object count under the limits. 0 or
 * -EINVAL with diag filled (diag may be NULL; opts NULL: defaults). Works
 * on any alignment of buf. */
int wire_verify(const void *buf, size_t len, const struct wire_verify_opts *opts,
                struct wire_diag *diag);

/* wire_verify(), then the decoded message. buf must be 4-byte aligned
 * (-EINVAL otherwise), as the structs point at int32/float arrays in it. */
int wire_read(const void *buf, size_t len, const struct wire_verify_opts *opts,
              struct wire_msg *out, struct wire_diag *diag);

/* Typed readers with default limits: -ENOMSG when the (valid) message is of
 * another type. */
int wire_read_hello(const void *buf, size_t len, struct wire_hello *out);
int wire_read_welcome(const void *buf, size_t len, struct wire_welcome *out);
int wire_read_request(const void *buf, size_t len, struct wire_request *out);
int wire_read_cancel(const void *buf, size_t len, struct wire_cancel *out);
int wire_read_token_chunk(const void *buf, size_t len, struct wire_token_chunk *out);
int wire_read_done(const void *buf, size_t len, struct wire_done *out);
int wire_read_error(const void *buf, size_t len, struct wire_error *out);
int wire_read_models(const void *buf, size_t len, struct wire_models *out);
int wire_read_stats(const void *buf, size_t len, struct wire_stats *out);

#endif
