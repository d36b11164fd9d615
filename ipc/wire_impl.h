/* wire_impl.h - internals shared by the wire protocol sources: the schema's
 * field ids, the schema description the verifier walks, little-endian loads,
 * and the generic back-to-front FlatBuffers builder (wire_builder.c) that the
 * per-message builders (wire_build.c) drive.
 *
 * The ids below are the `(id: N)` of ipc/schema/inferd.fbs; a table's
 * vtable slot for id N sits at byte 4 + 2 * N of the vtable.
 */
#ifndef INFERD_WIRE_IMPL_H
#define INFERD_WIRE_IMPL_H

#include "wire.h"

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "the wire code stores FlatBuffers scalars in host order");
static_assert(sizeof(struct wire_top_logprob) == 8, "TopLogprob is 8 bytes on the wire");
static_assert(sizeof(float) == 4, "float is IEEE-754 binary32");

/* ---- field ids (schema order; append-only) ---- */

enum { F_MESSAGE_BODY_TYPE = 0, F_MESSAGE_BODY = 1 };
enum {
    F_LIMITS_MAX_CONCURRENT_REQUESTS = 0,
    F_LIMITS_MAX_QUEUED_TOKENS = 1,
    F_LIMITS_SUBMIT_RING_BYTES = 2,
    F_LIMITS_COMPLETION_RING_BYTES = 3,
    F_LIMITS_MAX_MESSAGE_BYTES = 4,
};
enum { F_HELLO_PROTOCOL_VERSION = 0, F_HELLO_CLIENT_NAME = 1, F_HELLO_REQUESTED = 2 };
enum { F_WELCOME_PROTOCOL_VERSION = 0, F_WELCOME_SESSION_ID = 1, F_WELCOME_LIMITS = 2 };
enum {
    F_SAMPLING_TEMPERATURE = 0,
    F_SAMPLING_TOP_K = 1,
    F_SAMPLING_TOP_P = 2,
    F_SAMPLING_MIN_P = 3,
    F_SAMPLING_REPEAT_PENALTY = 4,
    F_SAMPLING_FREQUENCY_PENALTY = 5,
    F_SAMPLING_PRESENCE_PENALTY = 6,
    F_SAMPLING_REPEAT_LAST_N = 7,
    F_SAMPLING_SEED = 8,
};
enum {
    F_REQUEST_CLIENT_REQUEST_ID = 0,
    F_REQUEST_MODEL = 1,
    F_REQUEST_PROMPT = 2,
    F_REQUEST_PROMPT_TOKENS = 3,
    F_REQUEST_SAMPLING = 4,
    F_REQUEST_MAX_TOKENS = 5,
    F_REQUEST_STOP = 6,
    F_REQUEST_STREAM = 7,
    F_REQUEST_PRIORITY = 8,
    F_REQUEST_CACHE_SALT = 9,
    F_REQUEST_N = 10,
    F_REQUEST_LOGPROBS = 11,
};
enum { F_CANCEL_CLIENT_REQUEST_ID = 0 };
enum { F_TOKEN_LOGPROBS_TOKEN = 0, F_TOKEN_LOGPROBS_LOGPROB = 1, F_TOKEN_LOGPROBS_TOP = 2 };
enum {
    F_TOKEN_CHUNK_CLIENT_REQUEST_ID = 0,
    F_TOKEN_CHUNK_TOKENS = 1,
    F_TOKEN_CHUNK_TEXT = 2,
    F_TOKEN_CHUNK_LOGPROBS = 3,
    F_TOKEN_CHUNK_SAMPLE = 4,
};
enum {
    F_USAGE_PROMPT_TOKENS = 0,
    F_USAGE_CACHED_PROMPT_TOKENS = 1,
    F_USAGE_GENERATED_TOKENS = 2,
};
enum {
    F_TIMINGS_QUEUED_NS = 0,
    F_TIMINGS_SCHEDULED_NS = 1,
    F_TIMINGS_FIRST_TOKEN_NS = 2,
    F_TIMINGS_FINISHED_NS = 3,
};
enum {
    F_DONE_CLIENT_REQUEST_ID = 0,
    F_DONE_FINISH_REASON = 1,
    F_DONE_USAGE = 2,
    F_DONE_TIMINGS = 3,
    F_DONE_SAMPLE_FINISH = 4,
};
enum { F_ERROR_CLIENT_REQUEST_ID = 0, F_ERROR_CODE = 1, F_ERROR_MESSAGE = 2 };
enum {
    F_MODEL_INFO_NAME = 0,
    F_MODEL_INFO_ARCH = 1,
    F_MODEL_INFO_N_PARAMS = 2,
    F_MODEL_INFO_N_CTX = 3,
    F_MODEL_INFO_QUANT = 4,
};
enum { F_MODELS_MODELS = 0 };
enum { F_HISTOGRAM_ID = 0, F_HISTOGRAM_SLOTS = 1, F_HISTOGRAM_COUNT = 2, F_HISTOGRAM_SUM = 3 };
enum {
    F_STATS_REQUESTS_RUNNING = 0, /* ids 0..9: ulong counters in struct wire_stats order */
    F_STATS_REQUESTS_WAITING = 1,
    F_STATS_REQUESTS_FINISHED = 2,
    F_STATS_PROMPT_TOKENS = 3,
    F_STATS_GENERATED_TOKENS = 4,
    F_STATS_KV_BLOCKS_TOTAL = 5,
    F_STATS_KV_BLOCKS_USED = 6,
    F_STATS_PREFIX_CACHE_QUERIES = 7,
    F_STATS_PREFIX_CACHE_HITS = 8,
    F_STATS_PREEMPTIONS = 9,
    F_STATS_HISTOGRAMS = 10,
    F_STATS_FINISHED_BY_REASON = 11,
};
#define WIRE_STATS_COUNTERS 10

/* Schema defaults that are not zero. */
#define WIRE_DEF_TEMPERATURE    0.8f
#define WIRE_DEF_TOP_K          40
#define WIRE_DEF_TOP_P          0.95f
#define WIRE_DEF_MIN_P          0.05f
#define WIRE_DEF_REPEAT_PENALTY 1.0f
#define WIRE_DEF_REPEAT_LAST_N  64
#define WIRE_DEF_SEED           0xfa11u
#define WIRE_DEF_MAX_TOKENS     256u
#define WIRE_DEF_STREAM         true
#define WIRE_DEF_N              1u

/* ---- schema description (wire_schema.c), walked by the verifier ---- */

enum wire_table_id {
    WT_MESSAGE,
    WT_LIMITS,
    WT_HELLO,
    WT_WELCOME,
    WT_SAMPLING,
    WT_REQUEST,
    WT_CANCEL,
    WT_TOKEN_LOGPROBS,
    WT_TOKEN_CHUNK,
    WT_USAGE,
    WT_TIMINGS,
    WT_DONE,
    WT_ERROR,
    WT_LIST_MODELS,
    WT_MODEL_INFO,
    WT_MODELS,
    WT_STATS_REQUEST,
    WT_STATS,
    WT_HISTOGRAM,
    WT_COUNT,
};

enum wire_kind {
    WK_SCALAR,     /* size bytes inline, aligned to size */
    WK_STRING,     /* uoffset to a string */
    WK_TABLE,      /* uoffset to a table of type `table` */
    WK_VEC_SCALAR, /* uoffset to a vector of size-byte scalars */
    WK_VEC_STRUCT, /* uoffset to a vector of size-byte structs aligned to align */
    WK_VEC_STRING, /* uoffset to a vector of uoffsets to strings */
    WK_VEC_TABLE,  /* uoffset to a vector of uoffsets to tables of type `table` */
    WK_UNION_TYPE, /* ubyte: the type of the union value at id + 1 */
    WK_UNION,      /* uoffset to a table chosen by the type at id - 1 */
};

struct wire_field_desc {
    const char *name;
    uint16_t id;
    uint8_t kind;  /* enum wire_kind */
    uint8_t size;  /* scalar or element size */
    uint8_t align; /* element alignment (WK_VEC_STRUCT) */
    uint8_t table; /* enum wire_table_id (WK_TABLE, WK_VEC_TABLE) */
    bool required; /* WK_UNION_TYPE: a value must be present */
    uint16_t max_n; /* vectors: most elements the schema allows; 0: no bound */
};

struct wire_table_desc {
    const char *name;
    const struct wire_field_desc *fields;
    size_t n_fields;
};

extern const struct wire_table_desc wire_tables[WT_COUNT];
/* Body union type (enum wire_type) -> table; WT_COUNT for NONE. */
extern const uint8_t wire_body_tables[WIRE_TYPE_COUNT];

/* ---- little-endian loads (any alignment) ---- */

static inline uint16_t wire_ld16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline uint32_t wire_ld32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline uint64_t wire_ld64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* ---- the generic builder (wire_builder.c) ----
 *
 * Data grows from the end of buf towards its start; an object is named by a
 * wb_ref, its distance from the end of the finished data (0: no object).
 * Children are built before the table that points at them. Errors are
 * sticky: the first one is kept in b->err and later calls do nothing.
 */

typedef uint32_t wb_ref;

#define WB_MAX_FIELDS 32 /* highest field id + 1 of any table */

struct wb_slot {
    uint16_t id;
    uint32_t at; /* distance from the end of the field's bytes */
};

struct wire_builder {
    uint8_t *buf;
    size_t cap; /* bytes allocated; data is buf[cap - size, cap) */
    size_t size;
    size_t max_bytes;  /* ceiling of a finished message */
    size_t minalign;   /* the largest alignment used so far */
    int err;           /* first error, 0 if none */
    bool done;         /* a root was finished */
    uint32_t *vtables; /* refs of the vtables written, for sharing */
    size_t n_vtables, cap_vtables;
    size_t table_start; /* size when the open table began */
    struct wb_slot slots[WB_MAX_FIELDS];
    size_t n_slots;
    bool in_table;
};

void wb_reset(struct wire_builder *b);
void wb_fail(struct wire_builder *b, int err);
/* size bytes of value, skipped when equal (bitwise) to def (NULL: never). */
void wb_add_scalar(struct wire_builder *b, unsigned id, const void *value, const void *def,
                   size_t size);
void wb_add_ref(struct wire_builder *b, unsigned id, wb_ref ref); /* ref 0: skipped */
wb_ref wb_string(struct wire_builder *b, const char *s, size_t len);
wb_ref wb_vector(struct wire_builder *b, const void *data, size_t n, size_t elem_size,
                 size_t align);
wb_ref wb_vector_refs(struct wire_builder *b, const wb_ref *refs, size_t n);
void wb_table_start(struct wire_builder *b);
/* omit_empty: a table with no field written is left out (ref 0). */
wb_ref wb_table_end(struct wire_builder *b, bool omit_empty);
void wb_finish(struct wire_builder *b, wb_ref root);

static inline void wb_add_u8(struct wire_builder *b, unsigned id, uint8_t v, uint8_t def)
{
    wb_add_scalar(b, id, &v, &def, 1);
}

static inline void wb_add_u16(struct wire_builder *b, unsigned id, uint16_t v, uint16_t def)
{
    wb_add_scalar(b, id, &v, &def, 2);
}

static inline void wb_add_u32(struct wire_builder *b, unsigned id, uint32_t v, uint32_t def)
{
    wb_add_scalar(b, id, &v, &def, 4);
}

static inline void wb_add_i32(struct wire_builder *b, unsigned id, int32_t v, int32_t def)
{
    wb_add_scalar(b, id, &v, &def, 4);
}

static inline void wb_add_f32(struct wire_builder *b, unsigned id, float v, float def)
{
    wb_add_scalar(b, id, &v, &def, 4);
}

static inline void wb_add_u64(struct wire_builder *b, unsigned id, uint64_t v, uint64_t def)
{
    wb_add_scalar(b, id, &v, &def, 8);
}

#endif
