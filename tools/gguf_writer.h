/* gguf_writer.h - streaming GGUF v3 writer.
 *
 * Usage: gguf_w_open() -> add metadata (gguf_w_add_*) and tensor infos
 * (gguf_w_add_tensor) -> gguf_w_write_header() -> the bytes of every tensor,
 * in declaration order, through gguf_w_write_data() (any number of pieces per
 * tensor) -> gguf_w_finish() -> gguf_w_free().
 *
 * Metadata is serialized into memory as it is added; tensor data offsets are
 * computed from the tensor infos, so the header is written once and the data
 * streams after it without seeking. Each tensor is padded with zeros to the
 * alignment (32, or the UINT32 value of a "general.alignment" key), including
 * the last one, so the file size is data_offset + sum of padded sizes.
 *
 * Every function returns 0 or a negative errno. After a failed write the
 * writer is poisoned: later calls return the same error. Values are stored
 * little-endian (the host is assumed little-endian, checked at compile time).
 */
#ifndef INFERD_GGUF_WRITER_H
#define INFERD_GGUF_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"

#define GGUF_W_VERSION 3
#define GGUF_W_MAX_NAME 63      /* tensor name bytes (ggml keeps 64 with the NUL) */
#define GGUF_W_MAX_KEY 65535    /* metadata key bytes */
#define GGUF_W_MAX_DEPTH 4      /* array nesting levels */

struct gguf_w;

/* Create (truncate) path for writing. */
int gguf_w_open(const char *path, struct gguf_w **out);
/* Close the file if still open and free. NULL is accepted. Does not remove
 * the file. */
void gguf_w_free(struct gguf_w *w);

/* Add one key with a value of any type, arrays (also nested, also of
 * strings) included. v->type selects the union member: u64 for unsigned,
 * i64 for signed integers (range-checked against the width), f64 for
 * FLOAT32/FLOAT64, b, str, arr (arr.data: packed little-endian elements;
 * arr.strs: STRING elements; arr.arrs: ARRAY elements). The value is copied.
 * -EEXIST for a duplicate key, -EINVAL for a malformed value, -EBUSY once the
 * header is written. */
int gguf_w_add_value(struct gguf_w *w, const char *key, const struct gguf_value *v);
/* Numeric or bool array of n packed elements of type elem (not STRING or
 * ARRAY). */
int gguf_w_add_arr(struct gguf_w *w, const char *key, enum gguf_vtype elem,
                   const void *data, size_t n);
/* Array of n NUL-terminated strings. */
int gguf_w_add_arr_str(struct gguf_w *w, const char *key, const char *const *strs, size_t n);

/* Declare the next tensor: n_dims (1..4) sizes ne (ne[0] = row length, a
 * multiple of the type's block size), dt_type id type. */
int gguf_w_add_tensor(struct gguf_w *w, const char *name, uint32_t type, uint32_t n_dims,
                      const uint64_t *ne);

/* Write magic, counts, metadata, tensor infos and padding. No more keys or
 * tensors after this. */
int gguf_w_write_header(struct gguf_w *w);
/* Append n bytes of the current tensor's data; when a tensor is complete its
 * padding follows and the next tensor becomes current. -EINVAL if n exceeds
 * what the current tensor still needs. */
int gguf_w_write_data(struct gguf_w *w, const void *buf, size_t n);
/* Check that every tensor was written completely (writes the header first if
 * that was not done) and close the file. */
int gguf_w_finish(struct gguf_w *w);

/* Facts, valid after the tensors are declared. */
size_t gguf_w_n_kv(const struct gguf_w *w);
size_t gguf_w_n_tensors(const struct gguf_w *w);
uint64_t gguf_w_alignment(const struct gguf_w *w);
/* Bytes of tensor i's data (unpadded); 0 if i is out of range. */
uint64_t gguf_w_tensor_nbytes(const struct gguf_w *w, size_t i);
/* Offset of tensor i relative to the data section. */
uint64_t gguf_w_tensor_offset(const struct gguf_w *w, size_t i);
/* File offset of the data section and the final file size (computed from the
 * keys and tensors declared so far). */
uint64_t gguf_w_data_offset(const struct gguf_w *w);
uint64_t gguf_w_file_size(const struct gguf_w *w);

/* Scalar helpers, all funnelled into gguf_w_add_value(). */
static inline int gguf_w_add_uint(struct gguf_w *w, const char *key, enum gguf_vtype t,
                                  uint64_t v)
{
    struct gguf_value x = {.type = t, .u64 = v};
    return gguf_w_add_value(w, key, &x);
}
static inline int gguf_w_add_int(struct gguf_w *w, const char *key, enum gguf_vtype t,
                                 int64_t v)
{
    struct gguf_value x = {.type = t, .i64 = v};
    return gguf_w_add_value(w, key, &x);
}
static inline int gguf_w_add_u32(struct gguf_w *w, const char *key, uint32_t v)
{
    return gguf_w_add_uint(w, key, GGUF_VT_UINT32, v);
}
static inline int gguf_w_add_i32(struct gguf_w *w, const char *key, int32_t v)
{
    return gguf_w_add_int(w, key, GGUF_VT_INT32, v);
}
static inline int gguf_w_add_u64(struct gguf_w *w, const char *key, uint64_t v)
{
    return gguf_w_add_uint(w, key, GGUF_VT_UINT64, v);
}
static inline int gguf_w_add_f32(struct gguf_w *w, const char *key, float v)
{
    struct gguf_value x = {.type = GGUF_VT_FLOAT32, .f64 = v};
    return gguf_w_add_value(w, key, &x);
}
static inline int gguf_w_add_f64(struct gguf_w *w, const char *key, double v)
{
    struct gguf_value x = {.type = GGUF_VT_FLOAT64, .f64 = v};
    return gguf_w_add_value(w, key, &x);
}
static inline int gguf_w_add_bool(struct gguf_w *w, const char *key, bool v)
{
    struct gguf_value x = {.type = GGUF_VT_BOOL, .b = v};
    return gguf_w_add_value(w, key, &x);
}
/* A NUL-terminated string. */
int gguf_w_add_str(struct gguf_w *w, const char *key, const char *s);

#endif
