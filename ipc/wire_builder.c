/* wire_builder.c - the generic FlatBuffers builder under the per-message
 * builders of wire_build.c.
 *
 * FlatBuffers are written back to front: children first, at the end of the
 * buffer, so that every uoffset points forward. Each scalar is aligned to
 * its size relative to the end; the finished buffer is padded to the
 * largest alignment used (and to 8), so that the same positions are aligned
 * relative to its start. Tables get a vtable written just before them, or
 * share an identical vtable written earlier (the soffset is then negative).
 * Strings are length-prefixed and NUL-terminated; vectors are
 * length-prefixed with their elements aligned; the root offset is followed
 * by the 4-byte file identifier.
 */
#include "wire_impl.h"

#include <errno.h>
#include <stdlib.h>

#define WB_INITIAL_CAP 512

struct wire_builder *wire_builder_new(size_t max_bytes)
{
    struct wire_builder *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    if (max_bytes == 0 || max_bytes > WIRE_MAX_MESSAGE_BYTES)
        max_bytes = WIRE_MAX_MESSAGE_BYTES;
    b->max_bytes = max_bytes;
    wb_reset(b);
    return b;
}

void wire_builder_free(struct wire_builder *b)
{
    if (!b)
        return;
    free(b->buf);
    free(b->vtables);
    free(b);
}

void wb_reset(struct wire_builder *b)
{
    b->size = 0;
    b->minalign = 1;
    b->err = 0;
    b->done = false;
    b->n_vtables = 0;
    b->n_slots = 0;
    b->in_table = false;
}

void wb_fail(struct wire_builder *b, int err)
{
    if (!b->err)
        b->err = err;
}

/* Room for n more bytes below the current data. */
static bool wb_reserve(struct wire_builder *b, size_t n)
{
    if (b->err)
        return false;
    if (n > b->max_bytes || b->size > b->max_bytes - n) {
        wb_fail(b, -EMSGSIZE);
        return false;
    }
    if (b->size + n <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : WB_INITIAL_CAP;
    while (cap < b->size + n)
        cap *= 2; /* max_bytes <= 16 MiB: no overflow */
    uint8_t *nb = malloc(cap);
    if (!nb) {
        wb_fail(b, -ENOMEM);
        return false;
    }
    if (b->size)
        memcpy(nb + cap - b->size, b->buf + b->cap - b->size, b->size);
    free(b->buf);
    b->buf = nb;
    b->cap = cap;
    return true;
}

/* The byte at distance d from the end of the data (d >= 1). */
static uint8_t *wb_at(struct wire_builder *b, size_t d)
{
    return b->buf + b->cap - d;
}

static void wb_push(struct wire_builder *b, const void *src, size_t n)
{
    if (!wb_reserve(b, n))
        return;
    b->size += n;
    if (n)
        memcpy(wb_at(b, b->size), src, n);
}

static void wb_pad(struct wire_builder *b, size_t n)
{
    if (!wb_reserve(b, n))
        return;
    b->size += n;
    if (n)
        memset(wb_at(b, b->size), 0, n);
}

/* Pad so that, after `additional` more bytes, the data is aligned to align
 * (a power of two). */
static void wb_prep(struct wire_builder *b, size_t align, size_t additional)
{
    if (align > b->minalign)
        b->minalign = align;
    size_t pad = (align - ((b->size + additional) & (align - 1))) & (align - 1);
    wb_pad(b, pad);
}

static void wb_push32(struct wire_builder *b, uint32_t v)
{
    wb_prep(b, 4, 0);
    wb_push(b, &v, 4);
}

/* A uoffset, written at the current position, to the object at ref. */
static void wb_push_uoffset(struct wire_builder *b, wb_ref ref)
{
    wb_prep(b, 4, 0);
    if (b->err)
        return;
    /* The field will sit at distance size + 4; ref < that. */
    wb_push32(b, (uint32_t)(b->size + 4 - ref));
}

static bool wb_not_in_table(struct wire_builder *b)
{
    if (b->in_table) {
        wb_fail(b, -EINVAL); /* a child object inside an open table */
        return false;
    }
    return !b->err;
}

wb_ref wb_string(struct wire_builder *b, const char *s, size_t len)
{
    if (!s || !wb_not_in_table(b))
        return 0;
    if (len > b->max_bytes) {
        wb_fail(b, -EMSGSIZE);
        return 0;
    }
    wb_prep(b, 4, len + 1);
    wb_pad(b, 1); /* the NUL terminator */
    wb_push(b, s, len);
    wb_push32(b, (uint32_t)len);
    return b->err ? 0 : (wb_ref)b->size;
}

wb_ref wb_vector(struct wire_builder *b, const void *data, size_t n, size_t elem_size, size_t align)
{
    if (!wb_not_in_table(b))
        return 0;
    if (n > 0 && !data) {
        wb_fail(b, -EINVAL);
        return 0;
    }
    if (n > b->max_bytes / elem_size) {
        wb_fail(b, -EMSGSIZE);
        return 0;
    }
    size_t bytes = n * elem_size;
    wb_prep(b, 4, bytes);     /* the length right before the elements */
    wb_prep(b, align, bytes); /* the first element */
    wb_push(b, data, bytes);
    wb_push32(b, (uint32_t)n);
    return b->err ? 0 : (wb_ref)b->size;
}

wb_ref wb_vector_refs(struct wire_builder *b, const wb_ref *refs, size_t n)
{
    if (!wb_not_in_table(b))
        return 0;
    if (n > b->max_bytes / 4) {
        wb_fail(b, -EMSGSIZE);
        return 0;
    }
    wb_prep(b, 4, n * 4);
    for (size_t i = n; i-- > 0;) {
        if (refs[i] == 0) {
            wb_fail(b, -EINVAL);
            return 0;
        }
        wb_push_uoffset(b, refs[i]);
    }
    wb_push32(b, (uint32_t)n);
    return b->err ? 0 : (wb_ref)b->size;
}

void wb_table_start(struct wire_builder *b)
{
    if (!wb_not_in_table(b))
        return;
    b->in_table = true;
    b->n_slots = 0;
    b->table_start = b->size;
}

static void wb_slot(struct wire_builder *b, unsigned id)
{
    if (!b->in_table || id >= WB_MAX_FIELDS || b->n_slots >= WB_MAX_FIELDS) {
        wb_fail(b, -EINVAL);
        return;
    }
    for (size_t i = 0; i < b->n_slots; i++) {
        if (b->slots[i].id == id) {
            wb_fail(b, -EINVAL); /* the same field twice */
            return;
        }
    }
    b->slots[b->n_slots].id = (uint16_t)id;
    b->slots[b->n_slots].at = (uint32_t)b->size;
    b->n_slots++;
}

void wb_add_scalar(struct wire_builder *b, unsigned id, const void *value, const void *def,
                   size_t size)
{
    if (b->err || (def && memcmp(value, def, size) == 0))
        return;
    wb_prep(b, size, 0);
    wb_push(b, value, size);
    if (!b->err)
        wb_slot(b, id);
}

void wb_add_ref(struct wire_builder *b, unsigned id, wb_ref ref)
{
    if (b->err || ref == 0)
        return;
    wb_push_uoffset(b, ref);
    if (!b->err)
        wb_slot(b, id);
}

/* A vtable identical to the len bytes at vt, written earlier: its ref. */
static wb_ref wb_find_vtable(struct wire_builder *b, const uint8_t *vt, size_t len)
{
    for (size_t i = 0; i < b->n_vtables; i++) {
        wb_ref r = b->vtables[i];
        const uint8_t *old = wb_at(b, r);
        if (wire_ld16(old) == len && memcmp(old, vt, len) == 0)
            return r;
    }
    return 0;
}

static void wb_remember_vtable(struct wire_builder *b, wb_ref r)
{
    if (b->n_vtables == b->cap_vtables) {
        size_t cap = b->cap_vtables ? b->cap_vtables * 2 : 16;
        uint32_t *nv = realloc(b->vtables, cap * sizeof *nv);
        if (!nv)
            return; /* sharing is an optimization: just stop remembering */
        b->vtables = nv;
        b->cap_vtables = cap;
    }
    b->vtables[b->n_vtables++] = r;
}

wb_ref wb_table_end(struct wire_builder *b, bool omit_empty)
{
    if (b->err)
        return 0;
    if (!b->in_table) {
        wb_fail(b, -EINVAL);
        return 0;
    }
    if (omit_empty && b->n_slots == 0) {
        b->in_table = false; /* nothing was written since the start */
        return 0;
    }
    /* The soffset to the vtable, filled in below. */
    wb_prep(b, 4, 0);
    wb_pad(b, 4);
    b->in_table = false;
    if (b->err)
        return 0;
    wb_ref table = (wb_ref)b->size;
    size_t object_size = b->size - b->table_start;
    if (object_size > UINT16_MAX) {
        wb_fail(b, -EMSGSIZE);
        return 0;
    }

    uint16_t vt[2 + WB_MAX_FIELDS];
    size_t n_entries = 0;
    for (size_t i = 0; i < b->n_slots; i++)
        if ((size_t)b->slots[i].id + 1 > n_entries)
            n_entries = (size_t)b->slots[i].id + 1;
    memset(vt, 0, sizeof vt);
    size_t vt_len = 4 + 2 * n_entries;
    vt[0] = (uint16_t)vt_len;
    vt[1] = (uint16_t)object_size;
    for (size_t i = 0; i < b->n_slots; i++)
        vt[2 + b->slots[i].id] = (uint16_t)(table - b->slots[i].at);

    wb_ref vref = wb_find_vtable(b, (const uint8_t *)vt, vt_len);
    if (!vref) {
        wb_push(b, vt, vt_len); /* size is 4-aligned, vt_len even */
        if (b->err)
            return 0;
        vref = (wb_ref)b->size;
        wb_remember_vtable(b, vref);
    }
    /* vtable = table - soffset, in addresses; addresses run opposite to
     * distances from the end. */
    int32_t soff = (int32_t)((int64_t)vref - (int64_t)table);
    memcpy(wb_at(b, table), &soff, 4);
    return table;
}

void wb_finish(struct wire_builder *b, wb_ref root)
{
    if (b->err)
        return;
    if (b->in_table || root == 0) {
        wb_fail(b, -EINVAL);
        return;
    }
    if (b->minalign < 8)
        b->minalign = 8;
    wb_prep(b, b->minalign, 8);
    static const char ident[4] = WIRE_FILE_IDENTIFIER;
    wb_push(b, ident, 4);
    wb_push_uoffset(b, root);
    if (!b->err)
        b->done = true;
}

int wire_builder_finish(struct wire_builder *b, const void **buf, size_t *len)
{
    if (!b || !b->done || b->err)
        return -EINVAL;
    *buf = wb_at(b, b->size);
    *len = b->size;
    return 0;
}
