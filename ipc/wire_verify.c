/* wire_verify.c - the verifier: decides whether a byte string is a
 * well-formed inferd message before anything reads it.
 *
 * It walks the buffer from the root along the schema description of
 * wire_schema.c and checks every byte a reader may touch, with arithmetic
 * in 64 bits so that no length or offset can wrap:
 *  - size between 8 bytes and the limit, file identifier "INFD";
 *  - tables: 4-aligned and inside the buffer; their vtable (table - soffset)
 *    2-aligned, at least 4 bytes, even-sized, inside the buffer; the table's
 *    inline size at least 4 and inside the buffer; every known field inside
 *    its table (past the soffset), aligned to its size;
 *  - uoffsets: non-zero, forward, the target inside the buffer and aligned
 *    (forward-only offsets also rule out cycles);
 *  - strings: length in bounds and a NUL right after the bytes;
 *  - vectors: element count times size in bounds, elements aligned, and
 *    the count within the schema's bound where it sets one (Stats);
 *  - the Body union: a type this code knows with a value, or neither (and
 *    Message must have one);
 *  - nesting depth and the number of tables, vectors and strings visited
 *    (shared sub-objects count every time) under the limits, which bounds
 *    the work on a hostile buffer that points many times at one object.
 * Fields of ids this code does not know (a newer peer's) are not touched.
 */
#include "wire_impl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

struct vctx {
    const uint8_t *b;
    size_t len;
    uint32_t max_depth;
    uint32_t max_objects;
    uint32_t objects;
    struct wire_diag *diag;
};

/* Where a problem is: "Table.field[i]" (any part may be missing). */
struct vwhere {
    const char *table;
    const char *field;
    long index; /* -1: none */
};

static int vfail(struct vctx *c, const struct vwhere *w, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int vfail(struct vctx *c, const struct vwhere *w, size_t off, const char *fmt, ...)
{
    if (!c->diag)
        return -EINVAL;
    char *r = c->diag->reason;
    size_t cap = sizeof c->diag->reason, n = 0;
    int k = 0;
    if (w && w->table && w->field && w->index >= 0)
        k = snprintf(r, cap, "%s.%s[%ld]: ", w->table, w->field, w->index);
    else if (w && w->table && w->field)
        k = snprintf(r, cap, "%s.%s: ", w->table, w->field);
    else if (w && w->table)
        k = snprintf(r, cap, "%s: ", w->table);
    else
        r[0] = '\0';
    if (k > 0)
        n = (size_t)k < cap ? (size_t)k : cap - 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r + n, cap - n, fmt, ap);
    va_end(ap);
    c->diag->offset = off;
    return -EINVAL;
}

static int vcount(struct vctx *c, const struct vwhere *w, size_t off)
{
    if (++c->objects > c->max_objects)
        return vfail(c, w, off, "more than %u objects", c->max_objects);
    return 0;
}

/* The uoffset at p (4 bytes inside the buffer, checked by the caller) ->
 * its target, aligned to align and with at least `need` bytes there. */
static int vderef(struct vctx *c, const struct vwhere *w, size_t p, size_t need, size_t align,
                  size_t *out)
{
    uint32_t u = wire_ld32(c->b + p);
    if (u == 0)
        return vfail(c, w, p, "null offset");
    uint64_t t = (uint64_t)p + u;
    if (t > c->len || need > c->len - t)
        return vfail(c, w, p, "offset %u points past the end of the buffer", u);
    if (t & (align - 1))
        return vfail(c, w, p, "offset %u points at a misaligned object", u);
    *out = (size_t)t;
    return 0;
}

static int vstring(struct vctx *c, const struct vwhere *w, size_t p)
{
    size_t s = 0;
    int rc = vderef(c, w, p, 4, 4, &s);
    if (rc == 0)
        rc = vcount(c, w, s);
    if (rc < 0)
        return rc;
    uint64_t n = wire_ld32(c->b + s);
    if (n + 1 > c->len - s - 4)
        return vfail(c, w, s, "string of %llu bytes runs past the end of the buffer",
                     (unsigned long long)n);
    if (c->b[s + 4 + n] != 0)
        return vfail(c, w, s, "string not NUL-terminated");
    return 0;
}

/* The vector whose uoffset is at p: its element count (at most max_n when
 * that is not 0) and the position of its first element. */
static int vvector(struct vctx *c, const struct vwhere *w, size_t p, size_t elem_size, size_t align,
                   uint32_t max_n, size_t *n_out, size_t *data_out)
{
    size_t v = 0;
    int rc = vderef(c, w, p, 4, 4, &v);
    if (rc == 0)
        rc = vcount(c, w, v);
    if (rc < 0)
        return rc;
    if ((v + 4) & (align - 1))
        return vfail(c, w, v, "vector elements misaligned");
    uint64_t n = wire_ld32(c->b + v);
    if (max_n && n > max_n)
        return vfail(c, w, v, "vector of %llu elements over the schema's limit of %u",
                     (unsigned long long)n, (unsigned)max_n);
    if (n * elem_size > c->len - v - 4)
        return vfail(c, w, v, "vector of %llu elements runs past the end of the buffer",
                     (unsigned long long)n);
    *n_out = (size_t)n;
    *data_out = v + 4;
    return 0;
}

static int vtable(struct vctx *c, size_t t, enum wire_table_id id, uint32_t depth,
                  const struct vwhere *from);

static int vfield(struct vctx *c, const struct wire_field_desc *f, const struct vwhere *w, size_t p,
                  uint32_t depth)
{
    size_t n = 0, data = 0, t = 0;
    int rc = 0;
    switch ((enum wire_kind)f->kind) {
    case WK_SCALAR:
    case WK_UNION_TYPE:
        return 0;
    case WK_STRING:
        return vstring(c, w, p);
    case WK_TABLE:
        rc = vderef(c, w, p, 4, 4, &t);
        return rc < 0 ? rc : vtable(c, t, (enum wire_table_id)f->table, depth + 1, w);
    case WK_VEC_SCALAR:
    case WK_VEC_STRUCT:
        return vvector(c, w, p, f->size, f->align, f->max_n, &n, &data);
    case WK_VEC_STRING:
    case WK_VEC_TABLE:
        rc = vvector(c, w, p, 4, 4, f->max_n, &n, &data);
        for (size_t i = 0; rc == 0 && i < n; i++) {
            struct vwhere wi = {w->table, w->field, (long)i};
            size_t e = data + 4 * i;
            if (f->kind == WK_VEC_STRING) {
                rc = vstring(c, &wi, e);
            } else {
                rc = vderef(c, &wi, e, 4, 4, &t);
                if (rc == 0)
                    rc = vtable(c, t, (enum wire_table_id)f->table, depth + 1, &wi);
            }
        }
        return rc;
    case WK_UNION:
        return 0; /* with its type, in vtable() */
    }
    return vfail(c, w, p, "unknown field kind");
}

static int vtable(struct vctx *c, size_t t, enum wire_table_id id, uint32_t depth,
                  const struct vwhere *from)
{
    const struct wire_table_desc *td = &wire_tables[id];
    struct vwhere w = {td->name, NULL, -1};
    if (depth > c->max_depth)
        return vfail(c, from, t, "tables nested deeper than %u", c->max_depth);
    int rc = vcount(c, &w, t);
    if (rc < 0)
        return rc;
    if (t & 3)
        return vfail(c, &w, t, "table misaligned");
    if (t > c->len || c->len - t < 4)
        return vfail(c, &w, t, "table past the end of the buffer");
    int32_t soff;
    memcpy(&soff, c->b + t, 4);
    int64_t vt = (int64_t)t - soff;
    if (vt < 0 || (uint64_t)vt > c->len - 4)
        return vfail(c, &w, t, "vtable offset %d points outside the buffer", (int)soff);
    if (vt & 1)
        return vfail(c, &w, t, "vtable misaligned");
    size_t vtp = (size_t)vt;
    uint16_t vtsize = wire_ld16(c->b + vtp), tsize = wire_ld16(c->b + vtp + 2);
    if (vtsize < 4 || (vtsize & 1))
        return vfail(c, &w, vtp, "bad vtable size %u", (unsigned)vtsize);
    if (vtsize > c->len - vtp)
        return vfail(c, &w, vtp, "vtable past the end of the buffer");
    if (tsize < 4)
        return vfail(c, &w, vtp, "table size %u below 4", (unsigned)tsize);
    if (tsize > c->len - t)
        return vfail(c, &w, t, "table of %u bytes past the end of the buffer", (unsigned)tsize);

    int union_type = -1; /* -1: no union in this table */
    size_t union_value = 0;
    const struct wire_field_desc *union_type_f = NULL, *union_value_f = NULL;
    for (size_t i = 0; i < td->n_fields; i++) {
        const struct wire_field_desc *f = &td->fields[i];
        w.field = f->name;
        size_t slot = 4 + 2 * (size_t)f->id;
        uint16_t fo = slot + 2 <= vtsize ? wire_ld16(c->b + vtp + slot) : 0;
        if (f->kind == WK_UNION_TYPE) {
            union_type_f = f;
            union_type = WIRE_NONE;
        } else if (f->kind == WK_UNION) {
            union_value_f = f;
        }
        if (fo == 0)
            continue;
        /* Inline: the scalar itself, or a 4-byte uoffset. */
        size_t inl = f->kind == WK_SCALAR || f->kind == WK_UNION_TYPE ? f->size : 4;
        if (fo < 4)
            return vfail(c, &w, t, "field offset %u overlaps the vtable offset", (unsigned)fo);
        if ((size_t)fo + inl > tsize)
            return vfail(c, &w, t, "field at %u past the end of its %u-byte table", (unsigned)fo,
                         (unsigned)tsize);
        size_t p = t + fo;
        if (p & (inl - 1))
            return vfail(c, &w, p, "field misaligned");
        if (f->kind == WK_UNION_TYPE)
            union_type = c->b[p];
        else if (f->kind == WK_UNION)
            union_value = p;
        rc = vfield(c, f, &w, p, depth);
        if (rc < 0)
            return rc;
    }

    if (union_type >= 0) {
        w.field = union_type_f->name;
        if (union_type == WIRE_NONE) {
            if (union_value)
                return vfail(c, &w, union_value, "union value without a type");
            if (union_type_f->required)
                return vfail(c, &w, t, "no body");
        } else if (union_type >= WIRE_TYPE_COUNT) {
            return vfail(c, &w, t, "unknown body type %d", union_type);
        } else if (!union_value) {
            return vfail(c, &w, t, "body type %s without a value",
                         wire_type_name((enum wire_type)union_type));
        } else {
            size_t bt = 0;
            w.field = union_value_f ? union_value_f->name : w.field;
            rc = vderef(c, &w, union_value, 4, 4, &bt);
            if (rc == 0)
                rc = vtable(c, bt, (enum wire_table_id)wire_body_tables[union_type], depth + 1, &w);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

int wire_verify(const void *buf, size_t len, const struct wire_verify_opts *opts,
                struct wire_diag *diag)
{
    struct vctx c = {
        .b = buf,
        .len = len,
        .max_depth = opts && opts->max_depth ? opts->max_depth : WIRE_DEFAULT_MAX_DEPTH,
        .max_objects = opts && opts->max_objects ? opts->max_objects : WIRE_DEFAULT_MAX_OBJECTS,
        .diag = diag,
    };
    size_t max_bytes = opts && opts->max_bytes ? opts->max_bytes : WIRE_MAX_MESSAGE_BYTES;
    if (max_bytes > WIRE_MAX_MESSAGE_BYTES)
        max_bytes = WIRE_MAX_MESSAGE_BYTES;
    if (diag) {
        diag->reason[0] = '\0';
        diag->offset = 0;
    }
    if (!buf)
        return vfail(&c, NULL, 0, "no buffer");
    if (len > max_bytes)
        return vfail(&c, NULL, 0, "message of %zu bytes over the %zu-byte limit", len, max_bytes);
    if (len < 8)
        return vfail(&c, NULL, 0, "message of %zu bytes shorter than the 8-byte header", len);
    if (memcmp(c.b + 4, WIRE_FILE_IDENTIFIER, 4) != 0)
        return vfail(&c, NULL, 4, "file identifier is not " WIRE_FILE_IDENTIFIER);
    uint32_t root = wire_ld32(c.b);
    if (root < 8)
        return vfail(&c, NULL, 0, "root offset %u inside the header", root);
    if (root > len)
        return vfail(&c, NULL, 0, "root offset %u past the end of the buffer", root);
    return vtable(&c, root, WT_MESSAGE, 1, NULL);
}
