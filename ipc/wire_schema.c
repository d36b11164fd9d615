/* wire_schema.c - ipc/schema/inferd.fbs as data: every table's fields with
 * their ids, kinds and sizes, and the Body union's members, plus the names
 * of the enums. The verifier walks these tables; a field added to the schema
 * is added here (and to the ids in wire_impl.h) in the same change.
 */
#include "wire_impl.h"

/* One field per line reads best as a table: */
/* clang-format off */
#define SCALAR(n, i, sz) {.name = n, .id = i, .kind = WK_SCALAR, .size = sz}
#define STRING(n, i) {.name = n, .id = i, .kind = WK_STRING, .size = 4}
#define TABLE(n, i, t) {.name = n, .id = i, .kind = WK_TABLE, .size = 4, .table = t}
#define VEC_SCALAR(n, i, sz) {.name = n, .id = i, .kind = WK_VEC_SCALAR, .size = sz, .align = sz}
#define VEC_STRUCT(n, i, sz, al) {.name = n, .id = i, .kind = WK_VEC_STRUCT, .size = sz, .align = al}
#define VEC_STRING(n, i) {.name = n, .id = i, .kind = WK_VEC_STRING, .size = 4, .align = 4}
#define VEC_TABLE(n, i, t) {.name = n, .id = i, .kind = WK_VEC_TABLE, .size = 4, .align = 4, .table = t}
#define VEC_SCALAR_MAX(n, i, sz, mx) {.name = n, .id = i, .kind = WK_VEC_SCALAR, .size = sz, .align = sz, .max_n = mx}
#define VEC_TABLE_MAX(n, i, t, mx) {.name = n, .id = i, .kind = WK_VEC_TABLE, .size = 4, .align = 4, .table = t, .max_n = mx}

static const struct wire_field_desc message_fields[] = {
    {.name = "body_type", .id = F_MESSAGE_BODY_TYPE, .kind = WK_UNION_TYPE, .size = 1,
     .required = true},
    {.name = "body", .id = F_MESSAGE_BODY, .kind = WK_UNION, .size = 4},
};

static const struct wire_field_desc limits_fields[] = {
    SCALAR("max_concurrent_requests", F_LIMITS_MAX_CONCURRENT_REQUESTS, 4),
    SCALAR("max_queued_tokens", F_LIMITS_MAX_QUEUED_TOKENS, 4),
    SCALAR("submit_ring_bytes", F_LIMITS_SUBMIT_RING_BYTES, 4),
    SCALAR("completion_ring_bytes", F_LIMITS_COMPLETION_RING_BYTES, 4),
    SCALAR("max_message_bytes", F_LIMITS_MAX_MESSAGE_BYTES, 4),
};

static const struct wire_field_desc hello_fields[] = {
    SCALAR("protocol_version", F_HELLO_PROTOCOL_VERSION, 4),
    STRING("client_name", F_HELLO_CLIENT_NAME),
    TABLE("requested", F_HELLO_REQUESTED, WT_LIMITS),
};

static const struct wire_field_desc welcome_fields[] = {
    SCALAR("protocol_version", F_WELCOME_PROTOCOL_VERSION, 4),
    SCALAR("session_id", F_WELCOME_SESSION_ID, 8),
    TABLE("limits", F_WELCOME_LIMITS, WT_LIMITS),
};

static const struct wire_field_desc sampling_fields[] = {
    SCALAR("temperature", F_SAMPLING_TEMPERATURE, 4),
    SCALAR("top_k", F_SAMPLING_TOP_K, 4),
    SCALAR("top_p", F_SAMPLING_TOP_P, 4),
    SCALAR("min_p", F_SAMPLING_MIN_P, 4),
    SCALAR("repeat_penalty", F_SAMPLING_REPEAT_PENALTY, 4),
    SCALAR("frequency_penalty", F_SAMPLING_FREQUENCY_PENALTY, 4),
    SCALAR("presence_penalty", F_SAMPLING_PRESENCE_PENALTY, 4),
    SCALAR("repeat_last_n", F_SAMPLING_REPEAT_LAST_N, 4),
    SCALAR("seed", F_SAMPLING_SEED, 8),
};

static const struct wire_field_desc request_fields[] = {
    SCALAR("client_request_id", F_REQUEST_CLIENT_REQUEST_ID, 8),
    STRING("model", F_REQUEST_MODEL),
    STRING("prompt", F_REQUEST_PROMPT),
    VEC_SCALAR("prompt_tokens", F_REQUEST_PROMPT_TOKENS, 4),
    TABLE("sampling", F_REQUEST_SAMPLING, WT_SAMPLING),
    SCALAR("max_tokens", F_REQUEST_MAX_TOKENS, 4),
    VEC_STRING("stop", F_REQUEST_STOP),
    SCALAR("stream", F_REQUEST_STREAM, 1),
    SCALAR("priority", F_REQUEST_PRIORITY, 4),
    STRING("cache_salt", F_REQUEST_CACHE_SALT),
    SCALAR("n", F_REQUEST_N, 4),
    SCALAR("logprobs", F_REQUEST_LOGPROBS, 4),
};

static const struct wire_field_desc cancel_fields[] = {
    SCALAR("client_request_id", F_CANCEL_CLIENT_REQUEST_ID, 8),
};

static const struct wire_field_desc token_logprobs_fields[] = {
    SCALAR("token", F_TOKEN_LOGPROBS_TOKEN, 4),
    SCALAR("logprob", F_TOKEN_LOGPROBS_LOGPROB, 4),
    VEC_STRUCT("top", F_TOKEN_LOGPROBS_TOP, 8, 4),
};

static const struct wire_field_desc token_chunk_fields[] = {
    SCALAR("client_request_id", F_TOKEN_CHUNK_CLIENT_REQUEST_ID, 8),
    VEC_SCALAR("tokens", F_TOKEN_CHUNK_TOKENS, 4),
    VEC_SCALAR("text", F_TOKEN_CHUNK_TEXT, 1),
    VEC_TABLE("logprobs", F_TOKEN_CHUNK_LOGPROBS, WT_TOKEN_LOGPROBS),
    SCALAR("sample", F_TOKEN_CHUNK_SAMPLE, 4),
};

static const struct wire_field_desc usage_fields[] = {
    SCALAR("prompt_tokens", F_USAGE_PROMPT_TOKENS, 4),
    SCALAR("cached_prompt_tokens", F_USAGE_CACHED_PROMPT_TOKENS, 4),
    SCALAR("generated_tokens", F_USAGE_GENERATED_TOKENS, 4),
};

static const struct wire_field_desc timings_fields[] = {
    SCALAR("queued_ns", F_TIMINGS_QUEUED_NS, 8),
    SCALAR("scheduled_ns", F_TIMINGS_SCHEDULED_NS, 8),
    SCALAR("first_token_ns", F_TIMINGS_FIRST_TOKEN_NS, 8),
    SCALAR("finished_ns", F_TIMINGS_FINISHED_NS, 8),
};

static const struct wire_field_desc done_fields[] = {
    SCALAR("client_request_id", F_DONE_CLIENT_REQUEST_ID, 8),
    SCALAR("finish_reason", F_DONE_FINISH_REASON, 1),
    TABLE("usage", F_DONE_USAGE, WT_USAGE),
    TABLE("timings", F_DONE_TIMINGS, WT_TIMINGS),
    VEC_SCALAR("sample_finish", F_DONE_SAMPLE_FINISH, 1),
};

static const struct wire_field_desc error_fields[] = {
    SCALAR("client_request_id", F_ERROR_CLIENT_REQUEST_ID, 8),
    SCALAR("code", F_ERROR_CODE, 2),
    STRING("message", F_ERROR_MESSAGE),
};

static const struct wire_field_desc model_info_fields[] = {
    STRING("name", F_MODEL_INFO_NAME),
    STRING("arch", F_MODEL_INFO_ARCH),
    SCALAR("n_params", F_MODEL_INFO_N_PARAMS, 8),
    SCALAR("n_ctx", F_MODEL_INFO_N_CTX, 4),
    STRING("quant", F_MODEL_INFO_QUANT),
};

static const struct wire_field_desc models_fields[] = {
    VEC_TABLE("models", F_MODELS_MODELS, WT_MODEL_INFO),
};

static const struct wire_field_desc histogram_fields[] = {
    SCALAR("id", F_HISTOGRAM_ID, 1),
    VEC_SCALAR_MAX("slots", F_HISTOGRAM_SLOTS, 8, WIRE_HIST_SLOTS),
    SCALAR("count", F_HISTOGRAM_COUNT, 8),
    SCALAR("sum", F_HISTOGRAM_SUM, 8),
};

static const struct wire_field_desc stats_fields[] = {
    SCALAR("requests_running", F_STATS_REQUESTS_RUNNING, 8),
    SCALAR("requests_waiting", F_STATS_REQUESTS_WAITING, 8),
    SCALAR("requests_finished", F_STATS_REQUESTS_FINISHED, 8),
    SCALAR("prompt_tokens", F_STATS_PROMPT_TOKENS, 8),
    SCALAR("generated_tokens", F_STATS_GENERATED_TOKENS, 8),
    SCALAR("kv_blocks_total", F_STATS_KV_BLOCKS_TOTAL, 8),
    SCALAR("kv_blocks_used", F_STATS_KV_BLOCKS_USED, 8),
    SCALAR("prefix_cache_queries", F_STATS_PREFIX_CACHE_QUERIES, 8),
    SCALAR("prefix_cache_hits", F_STATS_PREFIX_CACHE_HITS, 8),
    SCALAR("preemptions", F_STATS_PREEMPTIONS, 8),
    VEC_TABLE_MAX("histograms", F_STATS_HISTOGRAMS, WT_HISTOGRAM, WIRE_MAX_HISTOGRAMS),
    VEC_SCALAR_MAX("finished_by_reason", F_STATS_FINISHED_BY_REASON, 8, WIRE_MAX_FINISH_COUNTS),
};

#define T(name, f) {name, f, sizeof f / sizeof f[0]}

const struct wire_table_desc wire_tables[WT_COUNT] = {
    [WT_MESSAGE] = T("Message", message_fields),
    [WT_LIMITS] = T("Limits", limits_fields),
    [WT_HELLO] = T("Hello", hello_fields),
    [WT_WELCOME] = T("Welcome", welcome_fields),
    [WT_SAMPLING] = T("SamplingParams", sampling_fields),
    [WT_REQUEST] = T("Request", request_fields),
    [WT_CANCEL] = T("Cancel", cancel_fields),
    [WT_TOKEN_LOGPROBS] = T("TokenLogprobs", token_logprobs_fields),
    [WT_TOKEN_CHUNK] = T("TokenChunk", token_chunk_fields),
    [WT_USAGE] = T("Usage", usage_fields),
    [WT_TIMINGS] = T("Timings", timings_fields),
    [WT_DONE] = T("Done", done_fields),
    [WT_ERROR] = T("Error", error_fields),
    [WT_LIST_MODELS] = {"ListModels", NULL, 0},
    [WT_MODEL_INFO] = T("ModelInfo", model_info_fields),
    [WT_MODELS] = T("Models", models_fields),
    [WT_STATS_REQUEST] = {"StatsRequest", NULL, 0},
    [WT_STATS] = T("Stats", stats_fields),
    [WT_HISTOGRAM] = T("Histogram", histogram_fields),
};

const uint8_t wire_body_tables[WIRE_TYPE_COUNT] = {
    [WIRE_NONE] = WT_COUNT,
    [WIRE_HELLO] = WT_HELLO,
    [WIRE_WELCOME] = WT_WELCOME,
    [WIRE_REQUEST] = WT_REQUEST,
    [WIRE_CANCEL] = WT_CANCEL,
    [WIRE_TOKEN_CHUNK] = WT_TOKEN_CHUNK,
    [WIRE_DONE] = WT_DONE,
    [WIRE_ERROR] = WT_ERROR,
    [WIRE_LIST_MODELS] = WT_LIST_MODELS,
    [WIRE_MODELS] = WT_MODELS,
    [WIRE_STATS_REQUEST] = WT_STATS_REQUEST,
    [WIRE_STATS] = WT_STATS,
};

/* clang-format on */

static const char *const type_names[WIRE_TYPE_COUNT] = {
    "NONE", "Hello", "Welcome",    "Request", "Cancel",       "TokenChunk",
    "Done", "Error", "ListModels", "Models",  "StatsRequest", "Stats",
};

static const char *const finish_names[WIRE_FINISH_COUNT] = {"Length", "Eos", "Stop", "Cancelled"};

static const char *const error_names[WIRE_ERR_COUNT] = {
    "Internal",         "BadMessage",    "UnsupportedVersion", "UnknownModel",
    "InvalidParams",    "QuotaExceeded", "PromptTooLong",      "UnknownRequest",
    "DuplicateRequest", "OutOfMemory",   "ShuttingDown",       "NotPermitted",
};

static const char *const hist_names[WIRE_HIST_COUNT] = {
    "Ttft", "Itl", "E2e", "Queue", "Prefill", "Step", "Batch",
};

const char *wire_type_name(enum wire_type t)
{
    return (unsigned)t < WIRE_TYPE_COUNT ? type_names[t] : "?";
}

const char *wire_finish_reason_name(enum wire_finish_reason r)
{
    return (unsigned)r < WIRE_FINISH_COUNT ? finish_names[r] : "?";
}

const char *wire_error_code_name(enum wire_error_code c)
{
    return (unsigned)c < WIRE_ERR_COUNT ? error_names[c] : "?";
}

const char *wire_hist_id_name(enum wire_hist_id h)
{
    return (unsigned)h < WIRE_HIST_COUNT ? hist_names[h] : "?";
}
