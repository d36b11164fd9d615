/* test_wire.c - tests of the wire protocol (ipc/wire*.c, schema
 * ipc/schema/inferd.fbs).
 *
 *   test_wire           build/verify/read round trips of every message,
 *                       defaults, builder errors, and the verifier against
 *                       every kind of corruption (truncation at every byte,
 *                       bad offsets, vtables, strings, vectors, unions,
 *                       depth and object limits, random byte flips).
 *   test_wire interop   against flatc and its generated Python
 *                       (tests/wire_interop.py) for every fixture of
 *                       tests/wire_fixtures: C-built bytes decoded by the
 *                       generated code and printed by flatc --json equal
 *                       the fixture; flatc- and Python-built bytes read by C
 *                       equal the expected structs. Skips (77) when
 *                       flatc or Python's flatbuffers is missing, unless CI
 *                       is set.
 *   test_wire corpus D  writes the fuzz seed corpus into folder D.
 *
 * The expected structs are in wire_fixtures/expected.h, beside the JSON
 * fixtures they mirror.
 */
#include "wire.h"
#include "wire_impl.h"

#include "testutil.h"
#include "wire_fixtures/expected.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef WIRE_SOURCE_ROOT
#define WIRE_SOURCE_ROOT "."
#endif

/* ---- helpers ---- */

struct buf {
    uint8_t *p;
    size_t n;
};

static struct buf copy_buf(const void *p, size_t n)
{
    struct buf b = {malloc(n ? n : 1), n};
    ck_assert_ptr_nonnull(b.p);
    if (n)
        memcpy(b.p, p, n);
    return b;
}

/* The fixture built by the C builder, in a malloc'd copy. */
static struct buf build_fixture(int i)
{
    struct wire_builder *b = wire_builder_new(0);
    ck_assert_ptr_nonnull(b);
    struct wire_msg m = fixture_msg(i);
    ck_assert_int_eq(wire_build(b, &m), 0);
    const void *p;
    size_t n;
    ck_assert_int_eq(wire_builder_finish(b, &p, &n), 0);
    struct buf out = copy_buf(p, n);
    wire_builder_free(b);
    return out;
}

static void expect_reject(const struct buf *b, const struct wire_verify_opts *o, const char *frag)
{
    struct wire_diag d;
    int rc = wire_verify(b->p, b->n, o, &d);
    ck_assert_msg(rc == -EINVAL, "accepted; expected a rejection with \"%s\"", frag);
    ck_assert_msg(strstr(d.reason, frag) != NULL, "reason \"%s\" lacks \"%s\"", d.reason, frag);
    ck_assert_uint_le(d.offset, b->n);
    struct wire_msg m;
    ck_assert_int_eq(wire_read(b->p, b->n, o, &m, &d), -EINVAL);
    ck_assert_int_eq(m.type, WIRE_NONE);
}

static void expect_accept(const struct buf *b, const struct wire_verify_opts *o)
{
    struct wire_diag d = {{0}, 0};
    int rc = wire_verify(b->p, b->n, o, &d);
    ck_assert_msg(rc == 0, "rejected: %s (offset %zu)", d.reason, d.offset);
}

/* Navigating a buffer known to be valid, to find what to corrupt. */
static uint32_t ld32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static void st32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

static void st16(uint8_t *p, uint16_t v)
{
    memcpy(p, &v, 2);
}

static size_t nav_vt(const uint8_t *b, size_t t)
{
    int32_t soff;
    memcpy(&soff, b + t, 4);
    return (size_t)((int64_t)t - soff);
}

/* Position of the vtable slot of field id (the slot must exist). */
static size_t nav_slot(const uint8_t *b, size_t t, unsigned id)
{
    size_t vt = nav_vt(b, t);
    uint16_t vts;
    memcpy(&vts, b + vt, 2);
    ck_assert_uint_lt(4 + 2 * id, vts);
    return vt + 4 + 2 * id;
}

static size_t nav_field(const uint8_t *b, size_t t, unsigned id)
{
    uint16_t fo;
    memcpy(&fo, b + nav_slot(b, t, id), 2);
    ck_assert_uint_ne(fo, 0);
    return t + fo;
}

static size_t nav_deref(const uint8_t *b, size_t p)
{
    return p + ld32(b + p);
}

static size_t nav_body(const uint8_t *b)
{
    return nav_deref(b, nav_field(b, ld32(b), F_MESSAGE_BODY));
}

/* ---- round trips ---- */

START_TEST(test_roundtrip)
{
    struct wire_msg want = fixture_msg(_i), got;
    struct wire_builder *b = wire_builder_new(0);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(wire_build(b, &want), 0);
    const void *p;
    size_t n;
    ck_assert_int_eq(wire_builder_finish(b, &p, &n), 0);
    ck_assert_uint_eq((uintptr_t)p % 8, 0);
    ck_assert_uint_eq(n % 8, 0);
    ck_assert_int_eq(memcmp((const uint8_t *)p + 4, "INFD", 4), 0);

    struct wire_diag d;
    ck_assert_int_eq(wire_read(p, n, NULL, &got, &d), 0);
    struct why w;
    ck_assert_msg(msg_eq(&got, &want, &w), "%s: %s", fixtures[_i].name, w.s);
    walk_msg(&got);

    /* Built again from what was read (lists now views of the buffer): the
     * same bytes. */
    struct buf first = copy_buf(p, n);
    struct wire_builder *b2 = wire_builder_new(0);
    ck_assert_int_eq(wire_build(b2, &got), 0);
    const void *p2;
    size_t n2;
    ck_assert_int_eq(wire_builder_finish(b2, &p2, &n2), 0);
    ck_assert_uint_eq(n2, first.n);
    ck_assert_int_eq(memcmp(p2, first.p, n2), 0);
    wire_builder_free(b2);

    /* The typed reader of its type agrees; the others say -ENOMSG. */
    union {
        struct wire_hello h;
        struct wire_welcome w;
        struct wire_request r;
        struct wire_cancel c;
        struct wire_token_chunk t;
        struct wire_done d;
        struct wire_error e;
        struct wire_models m;
        struct wire_stats s;
    } o;
    struct {
        enum wire_type type;
        int rc;
    } typed[] = {
        {WIRE_HELLO, wire_read_hello(p, n, &o.h)},
        {WIRE_WELCOME, wire_read_welcome(p, n, &o.w)},
        {WIRE_REQUEST, wire_read_request(p, n, &o.r)},
        {WIRE_CANCEL, wire_read_cancel(p, n, &o.c)},
        {WIRE_TOKEN_CHUNK, wire_read_token_chunk(p, n, &o.t)},
        {WIRE_DONE, wire_read_done(p, n, &o.d)},
        {WIRE_ERROR, wire_read_error(p, n, &o.e)},
        {WIRE_MODELS, wire_read_models(p, n, &o.m)},
        {WIRE_STATS, wire_read_stats(p, n, &o.s)},
    };
    for (size_t k = 0; k < sizeof typed / sizeof typed[0]; k++)
        ck_assert_int_eq(typed[k].rc, typed[k].type == want.type ? 0 : -ENOMSG);
    if (want.type == WIRE_REQUEST) {
        struct wire_msg m2 = {.type = WIRE_REQUEST};
        ck_assert_int_eq(wire_read_request(p, n, &m2.u.request), 0);
        ck_assert_msg(msg_eq(&m2, &want, &w), "wire_read_request: %s", w.s);
    }

    /* An unaligned copy verifies (alignment is relative to the start) but
     * is not read. */
    uint8_t *shifted = malloc(n + 1);
    memcpy(shifted + 1, first.p, n);
    ck_assert_int_eq(wire_verify(shifted + 1, n, NULL, &d), 0);
    ck_assert_int_eq(wire_read(shifted + 1, n, NULL, &got, &d), -EINVAL);
    ck_assert_ptr_nonnull(strstr(d.reason, "aligned"));
    free(shifted);
    free(first.p);
    wire_builder_free(b);
}
END_TEST

START_TEST(test_defaults)
{
    /* The schema's defaults are the sampler's (daemon/engine/sampler.h). */
    struct wire_sampling s;
    wire_sampling_default(&s);
    ck_assert(f32_eq(s.temperature, 0.8f) && s.top_k == 40 && f32_eq(s.top_p, 0.95f));
    ck_assert(f32_eq(s.min_p, 0.05f) && f32_eq(s.repeat_penalty, 1.0f));
    ck_assert(f32_eq(s.frequency_penalty, 0.0f) && f32_eq(s.presence_penalty, 0.0f));
    ck_assert(s.repeat_last_n == 64 && s.seed == 0xfa11);
    struct wire_request r;
    wire_request_default(&r);
    ck_assert(r.max_tokens == 256 && r.stream && r.n == 1 && r.priority == 0 && r.logprobs == 0);
    ck_assert_ptr_null(r.prompt.ptr);
    ck_assert_ptr_null(r.prompt_tokens);

    /* All-default sub-tables and scalars are left out: a Request with only
     * an empty prompt is a few dozen bytes, and reads back as defaults. */
    int i = fixture_index("request_defaults");
    struct buf b = build_fixture(i);
    ck_assert_uint_le(b.n, 64);
    size_t body = nav_body(b.p);
    uint16_t vts;
    memcpy(&vts, b.p + nav_vt(b.p, body), 2);
    ck_assert_uint_eq(vts, 4 + 2 * (F_REQUEST_PROMPT + 1)); /* only up to prompt */
    struct wire_request got;
    ck_assert_int_eq(wire_read_request(b.p, b.n, &got), 0);
    ck_assert(got.max_tokens == 256 && got.stream && got.n == 1);
    ck_assert(f32_eq(got.sampling.top_p, 0.95f) && got.sampling.seed == 0xfa11);
    ck_assert_ptr_nonnull(got.prompt.ptr);
    ck_assert_uint_eq(got.prompt.len, 0);
    ck_assert_ptr_null(got.stop.vec);
    ck_assert_uint_eq(got.stop.n, 0);
    free(b.p);

    /* A scalar equal to the default is not written; -0.0 is not 0.0. */
    struct wire_msg m = fixture_msg(i);
    m.u.request.sampling.frequency_penalty = -0.0f;
    struct wire_builder *bl = wire_builder_new(0);
    ck_assert_int_eq(wire_build(bl, &m), 0);
    const void *p;
    size_t n;
    ck_assert_int_eq(wire_builder_finish(bl, &p, &n), 0);
    ck_assert_int_eq(wire_read_request(p, n, &got), 0);
    ck_assert(signbit(got.sampling.frequency_penalty));
    wire_builder_free(bl);
}
END_TEST

START_TEST(test_builder_errors)
{
    struct wire_builder *b = wire_builder_new(0);
    ck_assert_ptr_nonnull(b);
    const void *p;
    size_t n;
    ck_assert_int_eq(wire_builder_finish(b, &p, &n), -EINVAL); /* nothing built */

    struct wire_request r;
    wire_request_default(&r);
    ck_assert_int_eq(wire_build_request(b, &r), -EINVAL); /* neither prompt */
    r.prompt = S("hi");
    r.prompt_tokens = request_tokens;
    r.n_prompt_tokens = 1;
    ck_assert_int_eq(wire_build_request(b, &r), -EINVAL); /* both */
    ck_assert_int_eq(wire_builder_finish(b, &p, &n), -EINVAL);
    r.prompt_tokens = NULL;
    r.n_prompt_tokens = 0;
    r.stop.n = 2; /* a count without an array */
    ck_assert_int_eq(wire_build_request(b, &r), -EINVAL);
    struct wire_str holes[] = {S("a"), {NULL, 0}};
    r.stop.items = holes; /* an absent string in a list */
    ck_assert_int_eq(wire_build_request(b, &r), -EINVAL);
    r.stop.n = 1;
    ck_assert_int_eq(wire_build_request(b, &r), 0);
    ck_assert_int_eq(wire_builder_finish(b, &p, &n), 0);

    struct wire_token_chunk c = {.tokens = NULL, .n_tokens = 3};
    ck_assert_int_eq(wire_build_token_chunk(b, &c), -EINVAL);
    struct wire_token_logprobs lp = {1, -1.0f, NULL, 2};
    c = (struct wire_token_chunk){.logprobs = {1, &lp, NULL}};
    ck_assert_int_eq(wire_build_token_chunk(b, &c), -EINVAL);
    c.logprobs = (struct wire_token_logprobs_list){1, NULL, NULL};
    ck_assert_int_eq(wire_build_token_chunk(b, &c), -EINVAL);
    struct wire_models ms = {{2, NULL, NULL}};
    ck_assert_int_eq(wire_build_models(b, &ms), -EINVAL);

    struct wire_msg m = {.type = WIRE_NONE};
    ck_assert_int_eq(wire_build(b, &m), -EINVAL);
    m.type = WIRE_TYPE_COUNT;
    ck_assert_int_eq(wire_build(b, &m), -EINVAL);
    struct wire_done d = {.finish_reason = (enum wire_finish_reason)300};
    ck_assert_int_eq(wire_build_done(b, &d), -EINVAL);
    struct wire_error e = {.code = (enum wire_error_code)70000};
    ck_assert_int_eq(wire_build_error(b, &e), -EINVAL);

    /* The builder is usable after every error. */
    ck_assert_int_eq(wire_build_list_models(b), 0);
    ck_assert_int_eq(wire_builder_finish(b, &p, &n), 0);
    struct wire_msg got;
    ck_assert_int_eq(wire_read(p, n, NULL, &got, NULL), 0);
    ck_assert_int_eq(got.type, WIRE_LIST_MODELS);
    ck_assert_int_eq(wire_build_stats_request(b), 0);
    wire_builder_free(b);
    wire_builder_free(NULL);

    /* Size limit: a small builder refuses a big message, then builds a
     * small one; the limit is the whole message. */
    b = wire_builder_new(64);
    ck_assert_ptr_nonnull(b);
    static char big[4096];
    memset(big, 'x', sizeof big);
    struct wire_error big_e = {.message = {big, sizeof big}};
    ck_assert_int_eq(wire_build_error(b, &big_e), -EMSGSIZE);
    ck_assert_int_eq(wire_builder_finish(b, &p, &n), -EINVAL);
    struct wire_cancel cn = {1};
    ck_assert_int_eq(wire_build_cancel(b, &cn), 0);
    ck_assert_int_eq(wire_builder_finish(b, &p, &n), 0);
    ck_assert_uint_le(n, 64);
    for (size_t len = 0; len < 80; len++) {
        struct wire_error e2 = {.message = {big, len}};
        int rc = wire_build_error(b, &e2);
        ck_assert(rc == 0 || rc == -EMSGSIZE);
        if (rc == 0) {
            ck_assert_int_eq(wire_builder_finish(b, &p, &n), 0);
            ck_assert_uint_le(n, 64);
        }
    }
    wire_builder_free(b);
}
END_TEST

START_TEST(test_lists)
{
    struct wire_str_list sl = {2, request_stop, NULL};
    struct wire_str s;
    ck_assert_int_eq(wire_str_at(&sl, 1, &s), 0);
    ck_assert_uint_eq(s.len, 0);
    ck_assert_int_eq(wire_str_at(&sl, 2, &s), -ERANGE);
    struct wire_str_list none = {0, NULL, NULL};
    ck_assert_int_eq(wire_str_at(&none, 0, &s), -ERANGE);
    struct wire_token_logprobs_list tl = {3, chunk_lps, NULL};
    struct wire_token_logprobs t;
    ck_assert_int_eq(wire_token_logprobs_at(&tl, 3, &t), -ERANGE);
    struct wire_model_info_list ml = {2, model_infos, NULL};
    struct wire_model_info mi;
    ck_assert_int_eq(wire_model_info_at(&ml, 2, &mi), -ERANGE);
    ck_assert_int_eq(wire_model_info_at(&ml, 0, &mi), 0);
    ck_assert_uint_eq(mi.n_ctx, 2048);

    ck_assert_str_eq(wire_type_name(WIRE_TOKEN_CHUNK), "TokenChunk");
    ck_assert_str_eq(wire_type_name(WIRE_TYPE_COUNT), "?");
    ck_assert_str_eq(wire_finish_reason_name(WIRE_FINISH_CANCELLED), "Cancelled");
    ck_assert_str_eq(wire_error_code_name(WIRE_ERR_NOT_PERMITTED), "NotPermitted");
    ck_assert_str_eq(wire_error_code_name((enum wire_error_code)999), "?");
}
END_TEST

/* A long TokenChunk: thousands of tables sharing one vtable. */
START_TEST(test_large_chunk)
{
    enum { N = 3000, TOP = 20 };
    static struct wire_top_logprob top[TOP];
    static struct wire_token_logprobs lps[N];
    static int32_t toks[N];
    for (int k = 0; k < TOP; k++)
        top[k] = (struct wire_top_logprob){k, -(float)k / 4.0f};
    for (int k = 0; k < N; k++) {
        toks[k] = k * 7;
        lps[k] = (struct wire_token_logprobs){k * 7, -1.0f - (float)k, top, TOP};
    }
    struct wire_msg m = {.type = WIRE_TOKEN_CHUNK};
    m.u.token_chunk = (struct wire_token_chunk){
        .client_request_id = 1, .tokens = toks, .n_tokens = N, .logprobs = {N, lps, NULL}};
    struct wire_builder *b = wire_builder_new(0);
    ck_assert_int_eq(wire_build(b, &m), 0);
    const void *p;
    size_t n;
    ck_assert_int_eq(wire_builder_finish(b, &p, &n), 0);
    /* Per element: table (4 + 4 + 4 + 4) + top vector (4 + 160) + its uoffset
     * in the list: no vtable of its own. */
    ck_assert_uint_lt(n, (size_t)N * (16 + 164 + 4 + 4) + 256);
    struct wire_msg got;
    struct wire_diag d;
    ck_assert_int_eq(wire_read(p, n, NULL, &got, &d), 0);
    struct why w;
    ck_assert_msg(msg_eq(&got, &m, &w), "%s", w.s);
    /* The object limit counts them: 1 + 1 + 2 vectors + N tables + N tops. */
    struct wire_verify_opts o = {.max_objects = 2 * N + 4};
    ck_assert_int_eq(wire_verify(p, n, &o, &d), 0);
    o.max_objects = 2 * N + 3;
    struct buf bb = copy_buf(p, n);
    expect_reject(&bb, &o, "more than");
    free(bb.p);
    wire_builder_free(b);
}
END_TEST

/* ---- the verifier against corruption ---- */

START_TEST(test_truncate_every_byte)
{
    struct buf full = build_fixture(_i);
    struct wire_msg want = fixture_msg(_i);
    size_t min_ok = full.n;
    for (size_t len = 0; len < full.n; len++) {
        struct buf t = copy_buf(full.p, len); /* exact size: ASan sees overreads */
        struct wire_diag d;
        struct wire_msg got;
        int rc = wire_read(t.p, t.n, NULL, &got, &d);
        if (rc == 0) {
            /* Only trailing padding was cut: the same message. */
            struct why w;
            ck_assert_msg(msg_eq(&got, &want, &w), "%s cut to %zu: %s", fixtures[_i].name, len,
                          w.s);
            if (len < min_ok)
                min_ok = len;
        } else {
            ck_assert_int_eq(rc, -EINVAL);
            ck_assert_msg(len < min_ok, "%s: rejected at %zu after accepting %zu",
                          fixtures[_i].name, len, min_ok);
        }
        free(t.p);
    }
    ck_assert_uint_ge(min_ok + 8, full.n); /* at most alignment padding at the end */
    free(full.p);
}
END_TEST

START_TEST(test_bad_header)
{
    struct buf b = build_fixture(fixture_index("cancel"));
    struct wire_diag d;
    ck_assert_int_eq(wire_verify(NULL, 16, NULL, &d), -EINVAL);
    ck_assert_ptr_nonnull(strstr(d.reason, "no buffer"));
    for (size_t len = 0; len < 8; len++) {
        struct buf t = copy_buf(b.p, len);
        expect_reject(&t, NULL, "shorter than the 8-byte header");
        free(t.p);
    }
    struct buf t = copy_buf(b.p, b.n);
    t.p[7] = 'X';
    expect_reject(&t, NULL, "file identifier");
    memcpy(t.p, b.p, b.n);

    uint32_t bad_roots[] = {0, 4, 7};
    for (size_t k = 0; k < 3; k++) {
        st32(t.p, bad_roots[k]);
        expect_reject(&t, NULL, "inside the header");
    }
    st32(t.p, (uint32_t)t.n + 4);
    expect_reject(&t, NULL, "past the end of the buffer");
    st32(t.p, UINT32_MAX);
    expect_reject(&t, NULL, "past the end of the buffer");
    st32(t.p, (uint32_t)t.n);
    expect_reject(&t, NULL, "table past the end");
    st32(t.p, (uint32_t)t.n - 2);
    expect_reject(&t, NULL, "misaligned");
    st32(t.p, ld32(b.p) + 1);
    expect_reject(&t, NULL, "table misaligned");
    memcpy(t.p, b.p, b.n);

    struct wire_verify_opts o = {.max_bytes = b.n - 1};
    expect_reject(&t, &o, "over the");
    o.max_bytes = b.n;
    expect_accept(&t, &o);
    /* The ceiling holds whatever the options say. */
    free(t.p);
    size_t huge = (size_t)WIRE_MAX_MESSAGE_BYTES + 8;
    t.p = calloc(1, huge);
    t.n = huge;
    memcpy(t.p, b.p, b.n);
    o.max_bytes = SIZE_MAX;
    expect_reject(&t, &o, "over the");
    free(t.p);
    free(b.p);
}
END_TEST

START_TEST(test_bad_vtable)
{
    struct buf b = build_fixture(fixture_index("cancel"));
    size_t body = nav_body(b.p), vt = nav_vt(b.p, body);
    struct buf t = copy_buf(b.p, b.n);
    int32_t soff;
    memcpy(&soff, b.p + body, 4);

    /* soffset pointing before the buffer, past it, or at an odd place. */
    int32_t bad_soff[] = {(int32_t)body + 4, (int32_t)body + 1000,
                          -(int32_t)t.n,     INT32_MIN,
                          INT32_MAX,         (int32_t)body - (int32_t)t.n + 2};
    for (size_t k = 0; k < sizeof bad_soff / sizeof bad_soff[0]; k++) {
        memcpy(t.p + body, &bad_soff[k], 4);
        expect_reject(&t, NULL, "vtable offset");
    }
    int32_t odd = soff + 1;
    memcpy(t.p + body, &odd, 4);
    expect_reject(&t, NULL, "vtable misaligned");
    memcpy(t.p, b.p, b.n);

    /* vtable sizes. */
    uint16_t bad_vts[] = {0, 2, 3, 5, 7};
    for (size_t k = 0; k < sizeof bad_vts / sizeof bad_vts[0]; k++) {
        st16(t.p + vt, bad_vts[k]);
        expect_reject(&t, NULL, "bad vtable size");
    }
    st16(t.p + vt, 0xfffe);
    expect_reject(&t, NULL, "vtable past the end");
    memcpy(t.p, b.p, b.n);

    /* table sizes. */
    for (uint16_t ts = 0; ts < 4; ts++) {
        st16(t.p + vt + 2, ts);
        expect_reject(&t, NULL, "below 4");
    }
    st16(t.p + vt + 2, 0xffff);
    expect_reject(&t, NULL, "past the end of the buffer");
    uint16_t tsize;
    memcpy(&tsize, b.p + vt + 2, 2);
    memcpy(t.p, b.p, b.n);

    /* A field offset past its table, across the soffset, misaligned. */
    size_t slot = nav_slot(b.p, body, F_CANCEL_CLIENT_REQUEST_ID);
    st16(t.p + slot, tsize);
    expect_reject(&t, NULL, "Cancel.client_request_id: field at");
    st16(t.p + slot, (uint16_t)(tsize - 7));
    expect_reject(&t, NULL, "past the end of its");
    for (uint16_t fo = 1; fo < 4; fo++) {
        st16(t.p + slot, fo);
        expect_reject(&t, NULL, "overlaps the vtable offset");
    }

    /* A vtable that stops before a field's slot: the field is absent. */
    memcpy(t.p, b.p, b.n);
    st16(t.p + vt, 4);
    expect_accept(&t, NULL);
    struct wire_cancel c;
    ck_assert_int_eq(wire_read_cancel(t.p, t.n, &c), 0);
    ck_assert_uint_eq(c.client_request_id, 0);
    free(t.p);
    free(b.p);

    /* A u64 field moved by 4 bytes, inside a table grown to the end of the
     * buffer so that only the alignment is wrong. */
    b = build_fixture(fixture_index("error"));
    t = copy_buf(b.p, b.n);
    body = nav_body(b.p);
    vt = nav_vt(b.p, body);
    slot = nav_slot(b.p, body, F_ERROR_CLIENT_REQUEST_ID);
    st16(t.p + vt + 2, (uint16_t)(t.n - body));
    expect_accept(&t, NULL);
    uint16_t fo;
    memcpy(&fo, b.p + slot, 2);
    st16(t.p + slot, (uint16_t)(fo + 4));
    expect_reject(&t, NULL, "Error.client_request_id: field misaligned");
    free(t.p);
    free(b.p);
}
END_TEST

START_TEST(test_bad_offsets)
{
    struct buf b = build_fixture(fixture_index("error"));
    struct buf t = copy_buf(b.p, b.n);
    size_t body = nav_body(b.p);
    size_t p = nav_field(b.p, body, F_ERROR_MESSAGE);
    uint32_t u = ld32(b.p + p);

    st32(t.p + p, 0);
    expect_reject(&t, NULL, "Error.message: null offset");
    st32(t.p + p, (uint32_t)(t.n - p));
    expect_reject(&t, NULL, "points past the end");
    st32(t.p + p, (uint32_t)(t.n - p - 2));
    expect_reject(&t, NULL, "points past the end");
    st32(t.p + p, UINT32_MAX);
    expect_reject(&t, NULL, "points past the end");
    st32(t.p + p, u + 1);
    expect_reject(&t, NULL, "misaligned object");
    memcpy(t.p, b.p, b.n);

    /* The union value and a sub-table. */
    size_t bp = nav_field(b.p, ld32(b.p), F_MESSAGE_BODY);
    st32(t.p + bp, (uint32_t)(t.n - bp) + 64);
    expect_reject(&t, NULL, "Message.body: offset");
    free(t.p);
    free(b.p);

    b = build_fixture(fixture_index("request"));
    t = copy_buf(b.p, b.n);
    body = nav_body(b.p);
    p = nav_field(b.p, body, F_REQUEST_SAMPLING);
    st32(t.p + p, 0x7ffffff0);
    expect_reject(&t, NULL, "Request.sampling: offset");
    memcpy(t.p, b.p, b.n);
    size_t sampling = nav_deref(b.p, p);
    st16(t.p + nav_slot(b.p, sampling, F_SAMPLING_SEED), 0);
    expect_accept(&t, NULL); /* an absent field reads as its default */
    struct wire_request r;
    ck_assert_int_eq(wire_read_request(t.p, t.n, &r), 0);
    ck_assert_uint_eq(r.sampling.seed, 0xfa11);
    free(t.p);
    free(b.p);
}
END_TEST

START_TEST(test_bad_strings)
{
    struct buf b = build_fixture(fixture_index("error"));
    struct buf t = copy_buf(b.p, b.n);
    size_t s = nav_deref(b.p, nav_field(b.p, nav_body(b.p), F_ERROR_MESSAGE));
    uint32_t len = ld32(b.p + s);
    ck_assert_uint_gt(len, 2);

    t.p[s + 4 + len] = 'x';
    expect_reject(&t, NULL, "Error.message: string not NUL-terminated");
    memcpy(t.p, b.p, b.n);
    st32(t.p + s, len - 1);
    expect_reject(&t, NULL, "not NUL-terminated");
    uint32_t bad_len[] = {(uint32_t)(t.n - s - 4), (uint32_t)t.n, 0x7fffffffu, UINT32_MAX,
                          UINT32_MAX - 3};
    for (size_t k = 0; k < sizeof bad_len / sizeof bad_len[0]; k++) {
        st32(t.p + s, bad_len[k]);
        expect_reject(&t, NULL, "runs past the end");
    }
    memcpy(t.p, b.p, b.n);
    /* A string whose length field itself is cut off. */
    size_t p = nav_field(b.p, nav_body(b.p), F_ERROR_MESSAGE);
    st32(t.p + p, (uint32_t)(t.n - 4 - p));
    expect_reject(&t, NULL, "Error.message");
    free(t.p);
    free(b.p);

    /* In a list: the reason names the element. */
    b = build_fixture(fixture_index("request"));
    t = copy_buf(b.p, b.n);
    size_t v = nav_deref(b.p, nav_field(b.p, nav_body(b.p), F_REQUEST_STOP));
    size_t e2 = nav_deref(b.p, v + 4 + 2 * 4);
    t.p[e2 + 4 + ld32(b.p + e2)] = '!';
    expect_reject(&t, NULL, "Request.stop[2]: string not NUL-terminated");
    memcpy(t.p, b.p, b.n);
    st32(t.p + v + 4 + 4, 0);
    expect_reject(&t, NULL, "Request.stop[1]: null offset");
    free(t.p);
    free(b.p);
}
END_TEST

START_TEST(test_bad_vectors)
{
    struct buf b = build_fixture(fixture_index("token_chunk"));
    struct buf t = copy_buf(b.p, b.n);
    size_t body = nav_body(b.p);
    size_t v = nav_deref(b.p, nav_field(b.p, body, F_TOKEN_CHUNK_TOKENS));
    uint32_t bad_n[] = {0x40000000u, 0x40000001u, UINT32_MAX, (uint32_t)(t.n / 4)};
    for (size_t k = 0; k < sizeof bad_n / sizeof bad_n[0]; k++) {
        st32(t.p + v, bad_n[k]);
        expect_reject(&t, NULL, "TokenChunk.tokens: vector of");
    }
    memcpy(t.p, b.p, b.n);
    size_t tv = nav_deref(b.p, nav_field(b.p, body, F_TOKEN_CHUNK_TEXT));
    st32(t.p + tv, (uint32_t)(t.n - tv - 3));
    expect_reject(&t, NULL, "TokenChunk.text: vector of");
    memcpy(t.p, b.p, b.n);

    /* Vector of tables: count, an element offset, an element's own vector. */
    size_t lv = nav_deref(b.p, nav_field(b.p, body, F_TOKEN_CHUNK_LOGPROBS));
    st32(t.p + lv, 0x20000000u);
    expect_reject(&t, NULL, "TokenChunk.logprobs: vector of");
    memcpy(t.p, b.p, b.n);
    st32(t.p + lv + 4 + 4, UINT32_MAX - 8);
    expect_reject(&t, NULL, "TokenChunk.logprobs[1]: offset");
    memcpy(t.p, b.p, b.n);
    size_t e0 = nav_deref(b.p, lv + 4);
    size_t top = nav_deref(b.p, nav_field(b.p, e0, F_TOKEN_LOGPROBS_TOP));
    st32(t.p + top, 0x10000000u);
    expect_reject(&t, NULL, "TokenLogprobs.top: vector of");
    memcpy(t.p, b.p, b.n);
    size_t tp = nav_field(b.p, e0, F_TOKEN_LOGPROBS_TOP);
    st32(t.p + tp, ld32(b.p + tp) + 2);
    expect_reject(&t, NULL, "TokenLogprobs.top: offset");
    free(t.p);
    free(b.p);
}
END_TEST

/* Stats' vectors within the schema's bounds (64 slots, 32 histograms, 32
 * finish counts): a count past a bound is refused even when the bytes are
 * there, and the builder never writes one. */
START_TEST(test_stats_bounds)
{
    struct buf b = build_fixture(fixture_index("stats_hists"));
    struct buf t = copy_buf(b.p, b.n);
    size_t body = nav_body(b.p);
    size_t hv = nav_deref(b.p, nav_field(b.p, body, F_STATS_HISTOGRAMS));
    ck_assert_uint_eq(ld32(b.p + hv), 5);
    st32(t.p + hv, WIRE_MAX_HISTOGRAMS + 1);
    expect_reject(&t, NULL, "Stats.histograms: vector of 33 elements over the schema's limit of 32");
    memcpy(t.p, b.p, b.n);
    size_t fv = nav_deref(b.p, nav_field(b.p, body, F_STATS_FINISHED_BY_REASON));
    ck_assert_uint_eq(ld32(b.p + fv), 6);
    ck_assert_uint_eq((fv + 4) % 8, 0); /* u64 elements, 8-aligned */
    st32(t.p + fv, WIRE_MAX_FINISH_COUNTS + 1);
    expect_reject(&t, NULL, "Stats.finished_by_reason: vector of 33 elements over");
    memcpy(t.p, b.p, b.n);
    st32(t.p + fv, UINT32_MAX);
    expect_reject(&t, NULL, "Stats.finished_by_reason: vector of");
    memcpy(t.p, b.p, b.n);
    /* Histogram 3 (Step) has all 64 slots: one more is refused. */
    size_t h3 = nav_deref(b.p, hv + 4 + 3 * 4);
    size_t sv = nav_deref(b.p, nav_field(b.p, h3, F_HISTOGRAM_SLOTS));
    ck_assert_uint_eq(ld32(b.p + sv), WIRE_HIST_SLOTS);
    st32(t.p + sv, WIRE_HIST_SLOTS + 1);
    expect_reject(&t, NULL, "Histogram.slots: vector of 65 elements over the schema's limit of 64");
    memcpy(t.p, b.p, b.n);
    /* A misaligned u64 vector (its elements 4 bytes off). */
    size_t sp = nav_field(b.p, h3, F_HISTOGRAM_SLOTS);
    st32(t.p + sp, ld32(b.p + sp) + 4);
    expect_reject(&t, NULL, "Histogram.slots: vector elements misaligned");
    free(t.p);
    free(b.p);

    /* The builder refuses what the verifier would. */
    struct wire_builder *wb = wire_builder_new(0);
    ck_assert_ptr_nonnull(wb);
    struct wire_histogram hs[WIRE_MAX_HISTOGRAMS + 1];
    memset(hs, 0, sizeof hs);
    struct wire_stats st = {.histograms = {WIRE_MAX_HISTOGRAMS + 1, hs, NULL}};
    ck_assert_int_eq(wire_build_stats(wb, &st), -EINVAL);
    st.histograms.n = WIRE_MAX_HISTOGRAMS;
    ck_assert_int_eq(wire_build_stats(wb, &st), 0);
    hs[0].n_slots = WIRE_HIST_SLOTS + 1;
    ck_assert_int_eq(wire_build_stats(wb, &st), -EINVAL);
    hs[0].n_slots = 0;
    hs[0].id = (enum wire_hist_id)256;
    ck_assert_int_eq(wire_build_stats(wb, &st), -EINVAL);
    hs[0].id = WIRE_HIST_TTFT;
    st.histograms = (struct wire_histogram_list){2, NULL, NULL};
    ck_assert_int_eq(wire_build_stats(wb, &st), -EINVAL);
    st.histograms.n = 0;
    st.n_finished_by_reason = WIRE_MAX_FINISH_COUNTS + 1;
    ck_assert_int_eq(wire_build_stats(wb, &st), -EINVAL);
    st.n_finished_by_reason = WIRE_MAX_FINISH_COUNTS;
    ck_assert_int_eq(wire_build_stats(wb, &st), 0);
    wire_builder_free(wb);

    struct wire_histogram_list hl = {5, stats_hists, NULL};
    struct wire_histogram h;
    ck_assert_int_eq(wire_histogram_at(&hl, 5, &h), -ERANGE);
    ck_assert_int_eq(wire_histogram_at(&hl, 3, &h), 0);
    ck_assert_uint_eq(h.slots[63], UINT64_MAX);
    ck_assert_str_eq(wire_hist_id_name(WIRE_HIST_BATCH), "Batch");
    ck_assert_str_eq(wire_hist_id_name((enum wire_hist_id)200), "?");
}
END_TEST

START_TEST(test_bad_union)
{
    struct buf b = build_fixture(fixture_index("cancel"));
    struct buf t = copy_buf(b.p, b.n);
    size_t root = ld32(b.p);
    size_t tp = nav_field(b.p, root, F_MESSAGE_BODY_TYPE);
    ck_assert_uint_eq(b.p[tp], WIRE_CANCEL);

    t.p[tp] = 0;
    expect_reject(&t, NULL, "union value without a type");
    t.p[tp] = WIRE_TYPE_COUNT;
    expect_reject(&t, NULL, "unknown body type 12");
    t.p[tp] = 255;
    expect_reject(&t, NULL, "unknown body type 255");
    memcpy(t.p, b.p, b.n);
    st16(t.p + nav_slot(b.p, root, F_MESSAGE_BODY), 0);
    expect_reject(&t, NULL, "body type Cancel without a value");
    st16(t.p + nav_slot(b.p, root, F_MESSAGE_BODY_TYPE), 0);
    expect_reject(&t, NULL, "Message.body_type: no body");
    memcpy(t.p, b.p, b.n);
    st16(t.p + nav_vt(b.p, root), 4); /* a vtable with no fields at all */
    expect_reject(&t, NULL, "no body");
    memcpy(t.p, b.p, b.n);
    /* A type that does not match its value is caught only when the value
     * does not fit the type: a Cancel taken as Error or Stats is a valid
     * one of those (all three have a u64 at id 0). */
    t.p[tp] = WIRE_ERROR;
    expect_accept(&t, NULL);
    t.p[tp] = WIRE_STATS;
    expect_accept(&t, NULL);
    struct wire_stats st;
    ck_assert_int_eq(wire_read_stats(t.p, t.n, &st), 0);
    ck_assert_uint_eq(st.requests_running, UINT64_MAX);
    free(t.p);
    free(b.p);
}
END_TEST

START_TEST(test_depth_and_objects)
{
    struct buf b = build_fixture(fixture_index("request")); /* Message > Request > Sampling */
    struct wire_verify_opts o = {.max_depth = 3};
    expect_accept(&b, &o);
    o.max_depth = 2;
    expect_reject(&b, &o, "Request.sampling: tables nested deeper than 2");
    o.max_depth = 1;
    expect_reject(&b, &o, "nested deeper than 1");
    free(b.p);
    b = build_fixture(fixture_index("token_chunk")); /* > TokenLogprobs */
    o.max_depth = 2;
    expect_reject(&b, &o, "TokenChunk.logprobs[0]: tables nested deeper");
    o.max_depth = 0; /* default */
    expect_accept(&b, &o);
    /* Message, TokenChunk, 3 vectors, 3 tables, 2 top vectors = 10. */
    o.max_objects = 10;
    expect_accept(&b, &o);
    o.max_objects = 9;
    expect_reject(&b, &o, "more than 9 objects");
    free(b.p);

    /* One table pointed at thousands of times costs every time. */
    enum { N = 5000 };
    struct wire_builder *bl = wire_builder_new(0);
    wb_ref name = wb_string(bl, "shared", 6);
    wb_table_start(bl);
    wb_add_ref(bl, F_MODEL_INFO_NAME, name);
    wb_ref info = wb_table_end(bl, false);
    static wb_ref refs[N];
    for (int k = 0; k < N; k++)
        refs[k] = info;
    wb_ref vec = wb_vector_refs(bl, refs, N);
    wb_table_start(bl);
    wb_add_ref(bl, F_MODELS_MODELS, vec);
    wb_ref models = wb_table_end(bl, false);
    wb_table_start(bl);
    wb_add_ref(bl, F_MESSAGE_BODY, models);
    wb_add_u8(bl, F_MESSAGE_BODY_TYPE, WIRE_MODELS, 0);
    wb_finish(bl, wb_table_end(bl, false));
    const void *p;
    size_t n;
    ck_assert_int_eq(wire_builder_finish(bl, &p, &n), 0);
    ck_assert_uint_lt(n, 4 * N + 128);
    struct wire_msg m;
    ck_assert_int_eq(wire_read(p, n, NULL, &m, NULL), 0);
    ck_assert_uint_eq(m.u.models.models.n, N);
    struct wire_model_info mi;
    ck_assert_int_eq(wire_model_info_at(&m.u.models.models, N - 1, &mi), 0);
    ck_assert_str_eq(mi.name.ptr, "shared");
    b = copy_buf(p, n);
    o = (struct wire_verify_opts){.max_objects = 2 * N + 3};
    expect_accept(&b, &o);
    o.max_objects = 2 * N + 2;
    expect_reject(&b, &o, "objects");
    free(b.p);
    wire_builder_free(bl);
}
END_TEST

/* A newer peer's fields (ids this code does not know) are skipped. */
START_TEST(test_unknown_fields)
{
    struct wire_builder *bl = wire_builder_new(0);
    wb_ref future = wb_string(bl, "from the future", 15);
    wb_table_start(bl);
    wb_add_u64(bl, F_CANCEL_CLIENT_REQUEST_ID, 99, 0);
    wb_add_u32(bl, 7, 0xdeadbeef, 0);
    wb_add_ref(bl, 9, future);
    wb_ref body = wb_table_end(bl, false);
    wb_table_start(bl);
    wb_add_ref(bl, F_MESSAGE_BODY, body);
    wb_add_u8(bl, F_MESSAGE_BODY_TYPE, WIRE_CANCEL, 0);
    wb_add_u32(bl, 5, 12345, 0);
    wb_finish(bl, wb_table_end(bl, false));
    const void *p;
    size_t n;
    ck_assert_int_eq(wire_builder_finish(bl, &p, &n), 0);
    struct wire_cancel c;
    ck_assert_int_eq(wire_read_cancel(p, n, &c), 0);
    ck_assert_uint_eq(c.client_request_id, 99);
    wire_builder_free(bl);
}
END_TEST

/* Random byte changes never crash anything: a buffer that verifies reads
 * safely (every view walked under the sanitizers) and builds back to a
 * message that reads the same. */
START_TEST(test_random_flips)
{
    unsigned long long seed = tu_rng_seed() + (unsigned long long)_i * 7919;
    unsigned long long st = seed;
    struct buf full = build_fixture(_i);
    struct wire_builder *bl = wire_builder_new(0);
    size_t accepted = 0, rejected = 0;
    for (int it = 0; it < 3000; it++) {
        struct buf t = copy_buf(full.p, full.n);
        int flips = 1 + (int)(tu_rand_uniform(&st) * 4);
        for (int f = 0; f < flips; f++) {
            size_t at = (size_t)(tu_rand_uniform(&st) * (double)t.n);
            double r = tu_rand_uniform(&st);
            if (r < 0.4)
                t.p[at] ^= (uint8_t)(1u << (int)(tu_rand_uniform(&st) * 8));
            else if (r < 0.7)
                t.p[at] = (uint8_t)(tu_rand_uniform(&st) * 256);
            else
                t.p[at] = r < 0.85 ? 0 : 0xff;
        }
        struct wire_msg m, again;
        struct wire_diag d;
        int rc = wire_read(t.p, t.n, NULL, &m, &d);
        if (rc != 0) {
            ck_assert_msg(rc == -EINVAL, "seed %llu: rc %d", seed, rc);
            ck_assert_msg(d.reason[0] != '\0', "seed %llu: no reason", seed);
            rejected++;
            free(t.p);
            continue;
        }
        accepted++;
        walk_msg(&m);
        rc = wire_build(bl, &m);
        ck_assert_msg(rc == 0, "seed %llu: rebuild %d", seed, rc);
        const void *p;
        size_t n;
        ck_assert_int_eq(wire_builder_finish(bl, &p, &n), 0);
        ck_assert_int_eq(wire_read(p, n, NULL, &again, &d), 0);
        struct why w;
        ck_assert_msg(msg_eq(&again, &m, &w), "seed %llu: %s", seed, w.s);
        free(t.p);
    }
    ck_assert_uint_gt(rejected, 0);
    (void)accepted;
    wire_builder_free(bl);
    free(full.p);
}
END_TEST

/* Random buffers with a valid header: all rejected or read safely. */
START_TEST(test_random_garbage)
{
    unsigned long long st = tu_rng_seed();
    for (int it = 0; it < 20000; it++) {
        size_t n = 8 + (size_t)(tu_rand_uniform(&st) * 120);
        struct buf t = {malloc(n), n};
        ck_assert_ptr_nonnull(t.p);
        for (size_t k = 0; k < n; k++) {
            double r = tu_rand_uniform(&st);
            /* Mostly small numbers, as offsets and sizes are. */
            t.p[k] = r < 0.5 ? (uint8_t)(r * 64) : r < 0.8 ? 0 : (uint8_t)(r * 256);
        }
        st32(t.p, 8 + 4 * (uint32_t)(tu_rand_uniform(&st) * 8));
        memcpy(t.p + 4, "INFD", 4);
        struct wire_msg m;
        if (wire_read(t.p, t.n, NULL, &m, NULL) == 0)
            walk_msg(&m);
        free(t.p);
    }
}
END_TEST

/* ---- interop with flatc and its generated Python ---- */

static char work_dir[4096];
static char *interop_log;

static const char *source_root(void)
{
    const char *env = getenv("INFERD_SOURCE_ROOT");
    return env && *env ? env : WIRE_SOURCE_ROOT;
}

static bool run_ok(const char *cmd)
{
    int rc = system(cmd);
    return rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0;
}

/* The Python with the flatbuffers module (INFERD_PYTHON overrides). */
static const char *find_python(void)
{
    static const char *candidates[] = {"/usr/bin/python3", "python3"};
    const char *env = getenv("INFERD_PYTHON");
    if (env && *env)
        return env;
    for (size_t i = 0; i < 2; i++) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "%s -c 'import flatbuffers' >/dev/null 2>&1", candidates[i]);
        if (run_ok(cmd))
            return candidates[i];
    }
    return NULL;
}

static const char *find_flatc(void)
{
    const char *env = getenv("INFERD_FLATC");
    const char *flatc = env && *env ? env : "flatc";
    char cmd[512];
    snprintf(cmd, sizeof cmd, "'%s' --version >/dev/null 2>&1", flatc);
    return run_ok(cmd) ? flatc : NULL;
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *fp = fopen(path, "wb");
    if (!fp || fwrite(p, 1, n, fp) != n) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    fclose(fp);
}

/* Builds every fixture into WORK/NAME.c.bin, runs the script, keeps its
 * output for the tests. Exits 77 (or 1 under CI) when a tool is missing. */
static void interop_prepare(void)
{
    const char *python = find_python(), *flatc = find_flatc();
    if (!python || !flatc) {
        const char *what = !flatc ? "flatc (flatbuffers-compiler)"
                                  : "a python3 with the flatbuffers module (python3-flatbuffers)";
        const char *ci = getenv("CI");
        if (ci && *ci) {
            fprintf(stderr, "FAIL: %s is missing (CI is set)\n", what);
            exit(1);
        }
        fprintf(stderr, "SKIP: %s is missing\n", what);
        exit(77);
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(work_dir, sizeof work_dir, "%s/wire-interop-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(work_dir)) {
        perror("mkdtemp");
        exit(1);
    }
    for (int i = 0; i < N_FIXTURES; i++) {
        struct wire_builder *b = wire_builder_new(0);
        struct wire_msg m = fixture_msg(i);
        const void *p;
        size_t n;
        if (!b || wire_build(b, &m) != 0 || wire_builder_finish(b, &p, &n) != 0) {
            fprintf(stderr, "cannot build fixture %s\n", fixtures[i].name);
            exit(1);
        }
        char path[4200];
        snprintf(path, sizeof path, "%s/%s.c.bin", work_dir, fixtures[i].name);
        write_file(path, p, n);
        wire_builder_free(b);
    }
    char cmd[16384];
    snprintf(cmd, sizeof cmd,
             "'%s' '%s/tests/wire_interop.py' --flatc '%s' --schema '%s/ipc/schema/inferd.fbs' "
             "--fixtures '%s/tests/wire_fixtures' --work '%s' > '%s/results.txt' 2>&1",
             python, source_root(), flatc, source_root(), source_root(), work_dir, work_dir);
    int rc = system(cmd);
    char path[4200];
    snprintf(path, sizeof path, "%s/results.txt", work_dir);
    interop_log = tu_read_file(path, NULL);
    if (!interop_log)
        interop_log = strdup("");
    printf("wire_interop.py exited with %d:\n%s", rc, interop_log);
}

static void interop_cleanup(void)
{
    if (!work_dir[0])
        return;
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", work_dir);
    if (!run_ok(cmd))
        fprintf(stderr, "could not remove %s\n", work_dir);
    free(interop_log);
}

/* The script's verdict on one check of one fixture. */
static void expect_result(const char *name, const char *check)
{
    char key[256];
    snprintf(key, sizeof key, "RESULT %s %s ", name, check);
    const char *line = strstr(interop_log, key);
    ck_assert_msg(line != NULL, "no %s result for %s in the script's output", check, name);
    const char *verdict = line + strlen(key);
    const char *end = strchr(verdict, '\n');
    int len = end ? (int)(end - verdict) : (int)strlen(verdict);
    ck_assert_msg(strncmp(verdict, "ok", 2) == 0, "%s/%s: %.*s", name, check, len, verdict);
}

static void read_and_compare(int i, const char *suffix)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/%s%s", work_dir, fixtures[i].name, suffix);
    size_t n;
    void *p = tu_read_file(path, &n);
    ck_assert_msg(p != NULL, "missing %s", path);
    struct buf exact = copy_buf(p, n);
    free(p);
    struct wire_msg got, want = fixture_msg(i);
    struct wire_diag d;
    int rc = wire_read(exact.p, exact.n, NULL, &got, &d);
    ck_assert_msg(rc == 0, "%s: %s at %zu", path, d.reason, d.offset);
    struct why w;
    ck_assert_msg(msg_eq(&got, &want, &w), "%s: %s", path, w.s);
    walk_msg(&got);
    free(exact.p);
}

/* (a) C-built bytes: the generated Python decodes every field; flatc
 * prints the fixture. */
START_TEST(test_c_to_flatc)
{
    expect_result(fixtures[_i].name, "c");
    expect_result(fixtures[_i].name, "cjson");
}
END_TEST

/* (b) bytes built by the generated Python: C reads every field. */
START_TEST(test_python_to_c)
{
    expect_result(fixtures[_i].name, "py");
    expect_result(fixtures[_i].name, "pyself");
    read_and_compare(_i, ".py.bin");
}
END_TEST

/* (c) flatc --binary of the JSON fixture: C reads every field. */
START_TEST(test_json_to_c)
{
    expect_result(fixtures[_i].name, "json");
    read_and_compare(_i, ".infd");
}
END_TEST

/* Every fixture file has its expected struct and the other way round; the
 * fixtures set every field of the schema somewhere. */
START_TEST(test_fixture_set)
{
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "ls '%s/tests/wire_fixtures'", source_root());
    FILE *fp = popen(cmd, "r");
    ck_assert_ptr_nonnull(fp);
    char line[512];
    int files = 0;
    while (fgets(line, sizeof line, fp)) {
        char *dot = strstr(line, ".json");
        if (!dot)
            continue;
        *dot = '\0';
        ck_assert_msg(fixture_index(line) >= 0, "fixture %s.json has no expected struct", line);
        files++;
    }
    pclose(fp);
    ck_assert_int_eq(files, N_FIXTURES);
    expect_result("-", "coverage");
    /* Every message type has a fixture. */
    for (int t = WIRE_HELLO; t < WIRE_TYPE_COUNT; t++) {
        bool found = false;
        for (int i = 0; i < N_FIXTURES; i++)
            found = found || (int)fixture_msg(i).type == t;
        ck_assert_msg(found, "no fixture of type %s", wire_type_name((enum wire_type)t));
    }
}
END_TEST

/* ---- the fuzz seed corpus ---- */

static int write_corpus(const char *dir)
{
    mkdir(dir, 0755);
    unsigned long long st = 12345;
    for (int i = 0; i < N_FIXTURES; i++) {
        struct wire_builder *b = wire_builder_new(0);
        struct wire_msg m = fixture_msg(i);
        const void *p;
        size_t n;
        if (!b || wire_build(b, &m) != 0 || wire_builder_finish(b, &p, &n) != 0)
            return 1;
        char path[4300];
        snprintf(path, sizeof path, "%s/%s.bin", dir, fixtures[i].name);
        write_file(path, p, n);
        /* One truncated and one flipped variant of each. */
        snprintf(path, sizeof path, "%s/%s-cut.bin", dir, fixtures[i].name);
        write_file(path, p, n / 2);
        uint8_t *c = malloc(n);
        memcpy(c, p, n);
        for (int f = 0; f < 3; f++)
            c[(size_t)(tu_rand_uniform(&st) * (double)n)] ^= 0x10;
        snprintf(path, sizeof path, "%s/%s-flip.bin", dir, fixtures[i].name);
        write_file(path, c, n);
        free(c);
        wire_builder_free(b);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "corpus") == 0)
        return write_corpus(argv[2]);
    if (argc == 2 && strcmp(argv[1], "interop") == 0) {
        interop_prepare();
        Suite *s = suite_create("wire_interop");
        TCase *tc = tcase_create("flatc");
        tcase_set_timeout(tc, 60);
        tcase_add_loop_test(tc, test_c_to_flatc, 0, N_FIXTURES);
        tcase_add_loop_test(tc, test_python_to_c, 0, N_FIXTURES);
        tcase_add_loop_test(tc, test_json_to_c, 0, N_FIXTURES);
        tcase_add_test(tc, test_fixture_set);
        suite_add_tcase(s, tc);
        int rc = tu_run_suite(s);
        interop_cleanup();
        return rc;
    }
    if (argc != 1) {
        fprintf(stderr, "usage: %s [interop | corpus DIR]\n", argv[0]);
        return 2;
    }
    Suite *s = suite_create("wire");
    TCase *tc = tcase_create("build_read");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_roundtrip, 0, N_FIXTURES);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_builder_errors);
    tcase_add_test(tc, test_lists);
    tcase_add_test(tc, test_large_chunk);
    suite_add_tcase(s, tc);
    TCase *tv = tcase_create("verifier");
    tcase_set_timeout(tv, 120);
    tcase_add_loop_test(tv, test_truncate_every_byte, 0, N_FIXTURES);
    tcase_add_test(tv, test_bad_header);
    tcase_add_test(tv, test_bad_vtable);
    tcase_add_test(tv, test_bad_offsets);
    tcase_add_test(tv, test_bad_strings);
    tcase_add_test(tv, test_bad_vectors);
    tcase_add_test(tv, test_stats_bounds);
    tcase_add_test(tv, test_bad_union);
    tcase_add_test(tv, test_depth_and_objects);
    tcase_add_test(tv, test_unknown_fields);
    tcase_add_loop_test(tv, test_random_flips, 0, N_FIXTURES);
    tcase_add_test(tv, test_random_garbage);
    suite_add_tcase(s, tv);
    return tu_run_suite(s);
}
