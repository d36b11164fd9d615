/* gguf.h - GGUF v2/v3 reader over a read-only mapping.
 *
 * The whole header (metadata and tensor infos) is parsed and validated at
 * open: every length, count, type id, dimension, offset and size is checked
 * against the file size before anything is used, so a truncated, corrupted or
 * hostile file is refused with a message naming what is wrong. Strings and
 * tensor data are views into the mapping (not NUL-terminated); nothing is
 * copied except the parsed index.
 *
 * Limits (a file beyond them is refused): key and string lengths < 1 MiB,
 * at most 2^20 metadata keys, 2^20 tensors, 2^26 array elements in one
 * array, array nesting depth 4, 4 dimensions.
 */
#ifndef INFERD_GGUF_H
#define INFERD_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GGUF_MAGIC 0x46554747u /* "GGUF" little-endian */
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_DIMS 4

enum gguf_vtype {
    GGUF_VT_UINT8 = 0,
    GGUF_VT_INT8 = 1,
    GGUF_VT_UINT16 = 2,
    GGUF_VT_INT16 = 3,
    GGUF_VT_UINT32 = 4,
    GGUF_VT_INT32 = 5,
    GGUF_VT_FLOAT32 = 6,
    GGUF_VT_BOOL = 7,
    GGUF_VT_STRING = 8,
    GGUF_VT_ARRAY = 9,
    GGUF_VT_UINT64 = 10,
    GGUF_VT_INT64 = 11,
    GGUF_VT_FLOAT64 = 12,
    GGUF_VT_COUNT,
};

struct gguf_str {
    const char *ptr; /* into the mapping; not NUL-terminated */
    uint64_t len;
};

struct gguf_value;

struct gguf_array {
    enum gguf_vtype type;   /* element type */
    uint64_t n;             /* element count */
    const void *data;       /* numeric/bool elements: n packed LE values in the mapping */
    struct gguf_str *strs;  /* STRING elements: n views (owned by the file) */
    struct gguf_value *arrs; /* ARRAY elements: n nested values (owned by the file) */
};

struct gguf_value {
    enum gguf_vtype type;
    union {
        uint64_t u64; /* UINT8/16/32/64 */
        int64_t i64;  /* INT8/16/32/64 */
        double f64;   /* FLOAT32/64 */
        bool b;
        struct gguf_str str;
        struct gguf_array arr;
    };
};

struct gguf_kv {
    struct gguf_str key;
    struct gguf_value v;
};

struct gguf_tensor {
    struct gguf_str name;
    uint32_t type;                /* dt_type id (validated: known and supported) */
    uint32_t n_dims;
    uint64_t ne[GGUF_MAX_DIMS];   /* unused dims are 1 */
    uint64_t offset;              /* relative to the data section */
    uint64_t nbytes;
    const void *data;             /* into the mapping */
};

struct gguf_file;

/* Map and parse path. On error returns -errno (-EINVAL for a malformed file)
 * and writes a message naming the problem into err (if errlen > 0). */
int gguf_open(const char *path, struct gguf_file **out, char *err, size_t errlen);
/* Parse a buffer the caller keeps alive (no copy). Same checks. */
int gguf_open_mem(const void *buf, size_t size, struct gguf_file **out, char *err, size_t errlen);
/* Unmap and free. NULL is accepted. */
void gguf_close(struct gguf_file *f);

uint32_t gguf_version(const struct gguf_file *f);
uint64_t gguf_alignment(const struct gguf_file *f);
size_t gguf_file_size(const struct gguf_file *f);
uint64_t gguf_data_offset(const struct gguf_file *f); /* file offset of tensor data */

size_t gguf_n_kv(const struct gguf_file *f);
const struct gguf_kv *gguf_kv_at(const struct gguf_file *f, size_t i);
/* Exact key match; NULL if absent. */
const struct gguf_kv *gguf_find(const struct gguf_file *f, const char *key);

/* Typed getters. Integers of any width convert when the value fits; floats
 * accept FLOAT32/FLOAT64. Return 0, -ENOENT (absent) or -EINVAL (wrong type
 * or out of range); *out is untouched on error. */
int gguf_get_u32(const struct gguf_file *f, const char *key, uint32_t *out);
int gguf_get_u64(const struct gguf_file *f, const char *key, uint64_t *out);
int gguf_get_i64(const struct gguf_file *f, const char *key, int64_t *out);
int gguf_get_f32(const struct gguf_file *f, const char *key, float *out);
int gguf_get_bool(const struct gguf_file *f, const char *key, bool *out);
int gguf_get_str(const struct gguf_file *f, const char *key, struct gguf_str *out);
/* Array of elements of type `elem` (GGUF_VT_COUNT = any). */
int gguf_get_arr(const struct gguf_file *f, const char *key, enum gguf_vtype elem,
                 const struct gguf_array **out);

/* Element accessors for numeric arrays (index must be < a->n). */
float gguf_arr_f32(const struct gguf_array *a, uint64_t i);
int64_t gguf_arr_i64(const struct gguf_array *a, uint64_t i); /* any integer/bool type */

size_t gguf_n_tensors(const struct gguf_file *f);
const struct gguf_tensor *gguf_tensor_at(const struct gguf_file *f, size_t i);
const struct gguf_tensor *gguf_find_tensor(const struct gguf_file *f, const char *name);

/* Compare a view with a C string. */
bool gguf_str_eq(struct gguf_str s, const char *c);
const char *gguf_vtype_name(enum gguf_vtype t);
/* Bytes of one element of a fixed-size type; 0 for STRING, ARRAY and
 * unknown types. */
size_t gguf_vtype_size(enum gguf_vtype t);

#endif
