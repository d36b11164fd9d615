/* test_hostile.c - inferd against hostile clients. A raw client speaks the
 * handshake and the rings by hand (ipc/ring.h, ipc/shm.h) and writes what
 * a well-behaved one never would: garbage records, bad lengths, lengths
 * past the ring, corrupted indices, truncated and malformed FlatBuffers,
 * unknown and misdirected message types, messages before Hello, floods
 * beyond the quotas and a flood that never reads its replies, attempts to
 * resize the region, bytes on the socket, silence instead of Hello, and a
 * user the access policy refuses. Each gets an Error or a refusal; the
 * daemon stays up, a bystander session opened before the attack still gets
 * the golden tokens, and the daemon drains with status 0 and a clean log. */
#include "client/inferclient.h"
#include "daemon/inferd/handshake.h"
#include "dtest.h"
#include "ipc/doorbell.h"
#include "ipc/ring.h"
#include "ipc/shm.h"
#include "ipc/wire.h"
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* The first greedy tokens after "Once upon a time" (golden). */
static const int32_t golden8[8] = {432, 383, 286, 261, 376, 298, 315, 421};

/* ---- a raw client ------------------------------------------------------- */

struct raw {
    int sock, bell_daemon, bell_client, memfd;
    struct shm_region *shm;
    struct ring *sub, *comp;
    struct ring_ctl *sub_ctl, *comp_ctl;
    unsigned char *sub_data;
    struct ring_params sp;
    struct wire_builder *b;
    _Alignas(8) unsigned char rx[1 << 17];
    struct wire_msg m;
    bool hung_up;
};

static int raw_open(struct raw *r, const char *path)
{
    memset(r, 0, sizeof *r);
    r->sock = r->bell_daemon = r->bell_client = r->memfd = -1;
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    r->sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (r->sock < 0 || connect(r->sock, (struct sockaddr *)&a, sizeof a) < 0)
        return -errno;
    struct hs_msg m;
    ssize_t n = recv(r->sock, &m, sizeof m, 0);
    if (n != (ssize_t)sizeof m)
        return -EPROTO;
    if (m.status)
        return m.status;
    int fds[HS_NFDS];
    size_t len;
    int rc = doorbell_fds_recv(r->sock, &m, sizeof m, &len, fds, HS_NFDS);
    if (rc)
        return rc;
    r->memfd = fds[HS_FD_REGION];
    r->bell_daemon = fds[HS_FD_DAEMON_BELL];
    r->bell_client = fds[HS_FD_CLIENT_BELL];
    if ((rc = shm_attach(&r->shm, r->memfd)) ||
        (rc = shm_ring_open(r->shm, SHM_RING_SUBMIT, RING_PRODUCER, &r->sub)) ||
        (rc = shm_ring_open(r->shm, SHM_RING_COMPLETE, RING_CONSUMER, &r->comp)))
        return rc;
    ring_set_doorbell(r->sub, r->bell_daemon);
    ring_set_doorbell(r->comp, r->bell_daemon);
    struct shm_header h;
    ck_assert_int_eq(shm_layout(shm_get_params(r->shm), &h), 0);
    unsigned char *base = shm_base(r->shm);
    r->sub_ctl = (struct ring_ctl *)(base + h.ring[SHM_RING_SUBMIT].ctl_offset);
    r->comp_ctl = (struct ring_ctl *)(base + h.ring[SHM_RING_COMPLETE].ctl_offset);
    r->sub_data = base + h.ring[SHM_RING_SUBMIT].data_offset;
    r->sp = shm_get_params(r->shm)->ring[SHM_RING_SUBMIT];
    r->b = wire_builder_new(0);
    return r->b ? 0 : -ENOMEM;
}

static void raw_close(struct raw *r)
{
    ring_close(r->sub);
    ring_close(r->comp);
    shm_free(r->shm);
    wire_builder_free(r->b);
    int fds[] = {r->sock, r->bell_daemon, r->bell_client, r->memfd};
    for (size_t i = 0; i < 4; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    memset(r, 0, sizeof *r);
}

static void raw_send(struct raw *r, const void *buf, size_t len)
{
    for (int i = 0; i < 100000; i++) {
        int rc = ring_send(r->sub, buf, len);
        if (rc == 0)
            return;
        ck_assert_int_eq(rc, -EAGAIN);
        if (ring_wait_prepare(r->sub) == 0)
            doorbell_wait(r->bell_client, 100);
    }
    ck_abort_msg("the daemon never made room");
}

static void raw_send_built(struct raw *r)
{
    const void *buf;
    size_t len;
    ck_assert_int_eq(wire_builder_finish(r->b, &buf, &len), 0);
    raw_send(r, buf, len);
}

/* The next message into r->m: its type, -ECONNRESET after a hang-up (once
 * the ring is empty), -ETIMEDOUT. */
static int raw_next(struct raw *r, int timeout_ms)
{
    for (int waited = 0;;) {
        size_t len;
        int rc = ring_recv(r->comp, r->rx, sizeof r->rx, &len);
        if (rc == 0) {
            ck_assert_msg(wire_read(r->rx, len, NULL, &r->m, NULL) == 0,
                          "the daemon sent a malformed message");
            return (int)r->m.type;
        }
        ck_assert_int_eq(rc, -EAGAIN);
        if (ring_wait_prepare(r->comp))
            continue;
        if (r->hung_up)
            return -ECONNRESET;
        if (waited >= timeout_ms)
            return -ETIMEDOUT;
        struct pollfd p[2] = {{.fd = r->bell_client, .events = POLLIN},
                              {.fd = r->sock, .events = POLLIN | POLLRDHUP}};
        poll(p, 2, 20);
        waited += 20;
        (void)doorbell_drain(r->bell_client);
        char c;
        if (p[1].revents && recv(r->sock, &c, 1, MSG_DONTWAIT) <= 0)
            r->hung_up = true;
    }
}

static void raw_hello(struct raw *r)
{
    struct wire_hello h = {.protocol_version = WIRE_PROTOCOL_VERSION};
    ck_assert_int_eq(wire_build_hello(r->b, &h), 0);
    raw_send_built(r);
    ck_assert_int_eq(raw_next(r, 5000), WIRE_WELCOME);
}

/* Expects Error(code) about the session or a request. */
static void raw_expect_error(struct raw *r, enum wire_error_code code, const char *what)
{
    int t = raw_next(r, 5000);
    ck_assert_msg(t == WIRE_ERROR, "%s: expected Error, got %d", what, t);
    ck_assert_msg(r->m.u.error.code == code, "%s: expected %s, got %s (%s)", what,
                  wire_error_code_name(code), wire_error_code_name(r->m.u.error.code),
                  r->m.u.error.message.ptr);
}

/* The session still works: ListModels gets Models (after whatever replies
 * were still on their way). */
static void raw_expect_alive(struct raw *r)
{
    ck_assert_int_eq(wire_build_list_models(r->b), 0);
    raw_send_built(r);
    int t;
    while ((t = raw_next(r, 10000)) == WIRE_TOKEN_CHUNK || t == WIRE_DONE || t == WIRE_ERROR)
        ;
    ck_assert_int_eq(t, WIRE_MODELS);
}

/* Expects an Error (when the ring still allows one) and then a hang-up. */
static void raw_expect_dropped(struct raw *r, const char *what)
{
    int t;
    int errors = 0;
    while ((t = raw_next(r, 5000)) == WIRE_ERROR)
        errors++;
    ck_assert_msg(t == -ECONNRESET, "%s: expected a hang-up, got %d", what, t);
    (void)errors;
}

/* Writes a record header (and payload) by hand at the producer's tail and
 * publishes tail + advance. */
static void raw_poke(struct raw *r, uint32_t len, uint32_t flags, const void *payload,
                     uint32_t payload_len, uint32_t advance)
{
    uint32_t tail = atomic_load(&r->sub_ctl->tail);
    uint32_t mask = r->sp.capacity - 1;
    struct ring_rec h = {len, flags};
    for (uint32_t i = 0; i < sizeof h; i++)
        r->sub_data[(tail + i) & mask] = ((unsigned char *)&h)[i];
    for (uint32_t i = 0; i < payload_len; i++)
        r->sub_data[(tail + 8 + i) & mask] = ((const unsigned char *)payload)[i];
    atomic_store(&r->sub_ctl->tail, tail + advance);
    doorbell_ring(r->bell_daemon);
}

/* ---- the daemon and the bystander --------------------------------------- */

struct env {
    struct dtest_daemon d;
    struct infer_client *bystander;
};

static void env_start(struct env *e, const char *const *extra)
{
    const char *args[32] = {"--ctx-size", "4096", "--max-concurrent", "4", "--socket-mode",
                            "0666", "--hello-timeout-ms", "300"};
    int n = 8;
    for (int i = 0; extra && extra[i] && n < 31; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    dtest_start(&e->d, true, args);
    ck_assert_int_eq(infer_connect(e->d.sock, NULL, &e->bystander), 0);
}

static void greedy8(struct infer_client *c)
{
    struct infer_request q;
    infer_request_init(&q);
    q.prompt = "Once upon a time";
    q.sampling.temperature = 0;
    q.max_tokens = 8;
    uint64_t id;
    ck_assert_int_eq(infer_submit(c, &q, &id), 0);
    int32_t got[8];
    size_t n = 0;
    for (;;) {
        struct infer_event ev;
        ck_assert_int_eq(infer_next_event(c, &ev, 10000), 0);
        ck_assert_uint_eq(ev.request_id, id);
        if (ev.type != INFER_EV_TOKENS) {
            ck_assert_int_eq(ev.type, INFER_EV_DONE);
            break;
        }
        for (size_t i = 0; i < ev.n_tokens && n < 8; i++)
            got[n++] = ev.tokens[i];
    }
    ck_assert_uint_eq(n, 8);
    for (size_t i = 0; i < 8; i++)
        ck_assert_int_eq(got[i], golden8[i]);
}

/* The daemon is up, the bystander and a new session both generate, and
 * the daemon drains cleanly. */
static void env_finish(struct env *e)
{
    ck_assert(dtest_alive(&e->d));
    greedy8(e->bystander);
    struct infer_client *c;
    ck_assert_int_eq(infer_connect(e->d.sock, NULL, &c), 0);
    greedy8(c);
    struct infer_stats s;
    ck_assert_int_eq(infer_stats(c, &s), 0);
    infer_close(c);
    infer_close(e->bystander);
    int st = dtest_stop(&e->d, 10000);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "daemon exit status %d", st);
}

/* ---- the attacks -------------------------------------------------------- */

START_TEST(test_garbage_records)
{
    struct env e;
    env_start(&e, NULL);
    struct raw r;
    static const struct {
        const char *what;
        uint32_t len, flags, advance;
    } cases[] = {
        {"unknown record flags", 8, 0x80, 16},
        {"length over the record limit", 0x7fffffff, 0, 16},
        {"length past the published bytes", 4000, 0, 16},
        {"continuation without a start", 8, RING_REC_CONT, 16},
        {"empty fragment", 0, RING_REC_MORE, 8},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        ck_assert_int_eq(raw_open(&r, e.d.sock), 0);
        raw_hello(&r);
        unsigned char junk[8] = {1, 2, 3, 4, 5, 6, 7, 8};
        raw_poke(&r, cases[k].len, cases[k].flags, junk, 8, cases[k].advance);
        raw_expect_dropped(&r, cases[k].what);
        raw_close(&r);
    }
    env_finish(&e);
}
END_TEST

START_TEST(test_index_corruption)
{
    struct env e;
    env_start(&e, NULL);
    struct raw r;
    /* Tail beyond head + capacity, and an unaligned tail. */
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(raw_open(&r, e.d.sock), 0);
        raw_hello(&r);
        uint32_t head = atomic_load(&r.sub_ctl->head);
        atomic_store(&r.sub_ctl->tail, k ? head + 3 : head + r.sp.capacity + 64);
        doorbell_ring(r.bell_daemon);
        raw_expect_dropped(&r, k ? "unaligned tail" : "tail past the ring");
        raw_close(&r);
    }
    /* The completion ring's head moved by the client: once the daemon needs
     * the head (its cached view is full), it finds it impossible and ends
     * the session. */
    ck_assert_int_eq(raw_open(&r, e.d.sock), 0);
    raw_hello(&r);
    atomic_store(&r.comp_ctl->head, 0x12345677u);
    for (int i = 0; i < 5000 && !r.hung_up; i++) {
        ck_assert_int_eq(wire_build_list_models(r.b), 0);
        const void *b;
        size_t l;
        ck_assert_int_eq(wire_builder_finish(r.b, &b, &l), 0);
        int rc;
        while ((rc = ring_send(r.sub, b, l)) == -EAGAIN && !r.hung_up) {
            char c;
            struct pollfd p = {.fd = r.sock, .events = POLLIN | POLLRDHUP};
            if (poll(&p, 1, 1) == 1 && recv(r.sock, &c, 1, MSG_DONTWAIT) <= 0)
                r.hung_up = true;
        }
    }
    for (int i = 0; i < 250 && !r.hung_up; i++) {
        struct pollfd p = {.fd = r.sock, .events = POLLIN | POLLRDHUP};
        char c;
        if (poll(&p, 1, 20) == 1 && recv(r.sock, &c, 1, MSG_DONTWAIT) <= 0)
            r.hung_up = true;
    }
    ck_assert_msg(r.hung_up, "the session lived on with a corrupt completion ring");
    raw_close(&r);
    env_finish(&e);
}
END_TEST

/* Patches the body type of a built message (root table field 0). */
static void patch_body_type(unsigned char *buf, uint8_t type)
{
    uint32_t root;
    memcpy(&root, buf, 4);
    int32_t vt;
    memcpy(&vt, buf + root, 4);
    uint32_t vtable = (uint32_t)((int64_t)root - vt);
    uint16_t off;
    memcpy(&off, buf + vtable + 4, 2);
    ck_assert_uint_gt(off, 0);
    buf[root + off] = type;
}

START_TEST(test_bad_messages)
{
    struct env e;
    env_start(&e, NULL);
    struct raw r;
    ck_assert_int_eq(raw_open(&r, e.d.sock), 0);
    /* Before Hello, anything else is refused; the session lives. */
    ck_assert_int_eq(wire_build_list_models(r.b), 0);
    raw_send_built(&r);
    raw_expect_error(&r, WIRE_ERR_BAD_MESSAGE, "a message before Hello");
    raw_hello(&r);
    struct wire_hello h = {.protocol_version = 1};
    ck_assert_int_eq(wire_build_hello(r.b, &h), 0);
    raw_send_built(&r);
    raw_expect_error(&r, WIRE_ERR_BAD_MESSAGE, "Hello twice");

    /* Truncated FlatBuffers: every prefix of a valid Request. */
    struct wire_request q;
    wire_request_default(&q);
    q.client_request_id = 5;
    q.prompt = (struct wire_str){"Once upon a time", 16};
    const char *stops[] = {"a", "bb"};
    struct wire_str st[2] = {{stops[0], 1}, {stops[1], 2}};
    q.stop = (struct wire_str_list){.n = 2, .items = st};
    ck_assert_int_eq(wire_build_request(r.b, &q), 0);
    const void *buf;
    size_t len;
    ck_assert_int_eq(wire_builder_finish(r.b, &buf, &len), 0);
    unsigned char full[1024];
    ck_assert_uint_lt(len, sizeof full);
    memcpy(full, buf, len);
    int truncated = 0;
    for (size_t cut = 1; cut < len; cut += 3) {
        if (wire_verify(full, cut, NULL, NULL) == 0)
            continue; /* only padding was cut: still a valid message */
        raw_send(&r, full, cut);
        raw_expect_error(&r, WIRE_ERR_BAD_MESSAGE, "a truncated Request");
        truncated++;
    }
    ck_assert_int_gt(truncated, (int)len / 6);
    /* Random bytes, and random bytes behind a valid identifier. */
    unsigned long long seed = tu_rng_seed();
    for (int k = 0; k < 200; k++) {
        unsigned char junk[256];
        size_t n = 1 + (size_t)(tu_rand_uniform(&seed) * 255);
        for (size_t i = 0; i < n; i++)
            junk[i] = (unsigned char)(tu_rand_uniform(&seed) * 256);
        if (k & 1 && n > 8)
            memcpy(junk + 4, "INFD", 4);
        raw_send(&r, junk, n);
        int t = raw_next(&r, 5000);
        ck_assert_msg(t == WIRE_ERROR, "random message %d (seed %llu): got %d", k, seed, t);
    }
    /* Flipped bytes of the valid Request: verified or refused, never a
     * crash; the daemon answers each (a Request that still verifies may
     * run: cancel whatever it starts). */
    for (size_t i = 0; i < len; i += 3) {
        unsigned char m[1024];
        memcpy(m, full, len);
        m[i] ^= 0xff;
        raw_send(&r, m, len);
    }
    /* An unknown body type, and types only the daemon may send. */
    wire_build_cancel(r.b, &(struct wire_cancel){.client_request_id = 1});
    ck_assert_int_eq(wire_builder_finish(r.b, &buf, &len), 0);
    memcpy(full, buf, len);
    patch_body_type(full, 99);
    raw_send(&r, full, len);
    struct wire_welcome w = {.protocol_version = 1};
    ck_assert_int_eq(wire_build_welcome(r.b, &w), 0);
    raw_send_built(&r);
    struct wire_done dn = {.client_request_id = 1};
    ck_assert_int_eq(wire_build_done(r.b, &dn), 0);
    raw_send_built(&r);
    /* Drain the replies of the flipped requests: whatever they were, the
     * last three are BadMessage errors about the session. */
    int bad_session = 0;
    for (;;) {
        int t = raw_next(&r, 1000);
        if (t == -ETIMEDOUT)
            break;
        ck_assert_int_ge(t, 0);
        if (t == WIRE_ERROR && r.m.u.error.client_request_id == 0 &&
            r.m.u.error.code == WIRE_ERR_BAD_MESSAGE)
            bad_session++;
        if (t == WIRE_TOKEN_CHUNK || t == WIRE_DONE || t == WIRE_ERROR)
            continue;
    }
    ck_assert_int_ge(bad_session, 3);
    raw_expect_alive(&r);
    raw_close(&r);

    /* Protocol version 0: refused, and the session ends. */
    ck_assert_int_eq(raw_open(&r, e.d.sock), 0);
    h.protocol_version = 0;
    ck_assert_int_eq(wire_build_hello(r.b, &h), 0);
    raw_send_built(&r);
    raw_expect_error(&r, WIRE_ERR_UNSUPPORTED_VERSION, "version 0");
    ck_assert_int_eq(raw_next(&r, 5000), -ECONNRESET);
    raw_close(&r);
    env_finish(&e);
}
END_TEST

START_TEST(test_oversized_message)
{
    struct env e;
    env_start(&e, NULL);
    struct raw r;
    ck_assert_int_eq(raw_open(&r, e.d.sock), 0);
    raw_hello(&r);
    /* Fragments adding up past the session's message limit: the consumer
     * refuses the ring (the producer side of ring.h would never do it). */
    const uint32_t rec = shm_get_params(r.shm)->ring[SHM_RING_SUBMIT].record_max;
    const uint32_t msg_max = shm_get_params(r.shm)->ring[SHM_RING_SUBMIT].msg_max;
    uint32_t total = msg_max + rec;
    static unsigned char big[1 << 17];
    memset(big, 'x', sizeof big);
    uint32_t sent = 0;
    while (sent < total && !r.hung_up) {
        uint32_t n = total - sent < rec ? total - sent : rec;
        uint32_t flags = (sent ? RING_REC_CONT : 0) | (sent + n < total ? RING_REC_MORE : 0);
        /* Wait for room as a producer would. */
        for (int i = 0; i < 500; i++) {
            uint32_t head = atomic_load(&r.sub_ctl->head), tail = atomic_load(&r.sub_ctl->tail);
            if (r.sp.capacity - (tail - head) >= ring_rec_size(n))
                break;
            dtest_sleep_ms(2);
        }
        raw_poke(&r, n, flags, big, n, ring_rec_size(n));
        sent += n;
        char c;
        if (recv(r.sock, &c, 1, MSG_DONTWAIT) == 0)
            r.hung_up = true;
    }
    raw_expect_dropped(&r, "a message over the limit");
    raw_close(&r);
    /* A message over the limit through the ring's own producer is refused
     * at the client's end. */
    ck_assert_int_eq(raw_open(&r, e.d.sock), 0);
    ck_assert_int_eq(ring_send(r.sub, big, msg_max + 1), -EMSGSIZE);
    raw_hello(&r);
    raw_close(&r);
    env_finish(&e);
}
END_TEST

START_TEST(test_quotas)
{
    struct env e;
    env_start(&e, NULL);
    struct raw r;
    ck_assert_int_eq(raw_open(&r, e.d.sock), 0);
    raw_hello(&r);
    struct wire_request q;
    wire_request_default(&q);
    q.prompt = (struct wire_str){"", 0};
    q.max_tokens = 3000;
    q.stream = false;
    /* Ten at once: four run, six are refused. */
    for (uint64_t id = 1; id <= 10; id++) {
        q.client_request_id = id;
        ck_assert_int_eq(wire_build_request(r.b, &q), 0);
        raw_send_built(&r);
    }
    int quota = 0;
    for (int i = 0; i < 6; i++) {
        raw_expect_error(&r, WIRE_ERR_QUOTA_EXCEEDED, "the fifth request");
        ck_assert_uint_gt(r.m.u.error.client_request_id, 4);
        quota++;
    }
    ck_assert_int_eq(quota, 6);
    /* A duplicate id, the reserved id 0, n > 1, and a foreign id. */
    q.client_request_id = 2;
    ck_assert_int_eq(wire_build_request(r.b, &q), 0);
    raw_send_built(&r);
    raw_expect_error(&r, WIRE_ERR_DUPLICATE_REQUEST, "a duplicate id");
    q.client_request_id = 0;
    ck_assert_int_eq(wire_build_request(r.b, &q), 0);
    raw_send_built(&r);
    raw_expect_error(&r, WIRE_ERR_INVALID_PARAMS, "id 0");
    /* Cancel them all: four Done(Cancelled). */
    for (uint64_t id = 1; id <= 4; id++) {
        ck_assert_int_eq(wire_build_cancel(r.b, &(struct wire_cancel){.client_request_id = id}), 0);
        raw_send_built(&r);
    }
    int cancelled = 0;
    while (cancelled < 4) {
        int t = raw_next(&r, 10000);
        ck_assert_int_ge(t, 0);
        if (t == WIRE_DONE) {
            ck_assert_int_eq(r.m.u.done.finish_reason, WIRE_FINISH_CANCELLED);
            cancelled++;
        }
    }
    /* Another session cannot cancel this one's requests. */
    struct raw o;
    ck_assert_int_eq(raw_open(&o, e.d.sock), 0);
    raw_hello(&o);
    q.client_request_id = 77;
    ck_assert_int_eq(wire_build_request(r.b, &q), 0);
    raw_send_built(&r);
    ck_assert_int_eq(wire_build_cancel(o.b, &(struct wire_cancel){.client_request_id = 77}), 0);
    raw_send_built(&o);
    raw_expect_error(&o, WIRE_ERR_UNKNOWN_REQUEST, "a foreign request id");
    raw_close(&o);
    ck_assert_int_eq(wire_build_cancel(r.b, &(struct wire_cancel){.client_request_id = 77}), 0);
    raw_send_built(&r);
    int t;
    while ((t = raw_next(&r, 10000)) == WIRE_TOKEN_CHUNK) /* what it made so far */
        ;
    ck_assert_int_eq(t, WIRE_DONE);
    ck_assert_int_eq(r.m.u.done.finish_reason, WIRE_FINISH_CANCELLED);
    raw_close(&r);
    env_finish(&e);
}
END_TEST

/* A client that floods requests and never reads: its backlog is bounded,
 * then its session goes; the others do not notice. */
START_TEST(test_flood_no_read)
{
    struct env e;
    env_start(&e, NULL);
    struct raw r;
    ck_assert_int_eq(raw_open(&r, e.d.sock), 0);
    raw_hello(&r);
    unsigned char junk[512];
    memset(junk, 0xab, sizeof junk);
    int sent = 0;
    for (; sent < 400000 && !r.hung_up; sent++) {
        int rc;
        while ((rc = ring_send(r.sub, junk, sizeof junk)) == -EAGAIN) {
            struct pollfd p = {.fd = r.sock, .events = POLLIN | POLLRDHUP};
            char c;
            if (poll(&p, 1, 1) == 1 && recv(r.sock, &c, 1, MSG_DONTWAIT) <= 0) {
                r.hung_up = true;
                break;
            }
        }
        if (sent % 1000 == 0)
            ck_assert(dtest_alive(&e.d));
    }
    ck_assert_msg(r.hung_up, "%d unread errors later the session is still open", sent);
    raw_close(&r);
    env_finish(&e);
}
END_TEST

START_TEST(test_region_and_socket)
{
    struct env e;
    env_start(&e, NULL);
    struct raw r;
    ck_assert_int_eq(raw_open(&r, e.d.sock), 0);
    raw_hello(&r);
    /* The region cannot grow, shrink, be resealed or unsealed. */
    off_t size = (off_t)shm_size(r.shm);
    ck_assert_int_eq(ftruncate(r.memfd, size * 2), -1);
    ck_assert_int_eq(errno, EPERM);
    ck_assert_int_eq(ftruncate(r.memfd, 4096), -1);
    ck_assert_int_eq(errno, EPERM);
    ck_assert_int_eq(fallocate(r.memfd, 0, size, 4096), -1);
    ck_assert_int_eq(fcntl(r.memfd, F_ADD_SEALS, F_SEAL_WRITE), -1);
    raw_expect_alive(&r);
    /* Bytes on the socket after the handshake end the session. */
    ck_assert_int_eq(send(r.sock, "hi", 2, MSG_NOSIGNAL), 2);
    raw_expect_dropped(&r, "bytes on the socket");
    raw_close(&r);
    /* Silence instead of Hello: dropped after the hello timeout. */
    ck_assert_int_eq(raw_open(&r, e.d.sock), 0);
    int t = raw_next(&r, 5000);
    if (t == WIRE_ERROR)
        t = raw_next(&r, 5000);
    ck_assert_int_eq(t, -ECONNRESET);
    raw_close(&r);
    env_finish(&e);
}
END_TEST

/* Connects from a child running as nobody: 0 when accepted, 13 when the
 * policy refused it, other values on other failures. */
static int as_nobody(const char *sock)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        if (setgroups(0, NULL) || setgid(65534) || setuid(65534))
            _exit(100);
        struct infer_client *c;
        int rc = infer_connect(sock, NULL, &c);
        if (rc == 0) {
            infer_close(c);
            _exit(0);
        }
        _exit(rc == -EACCES ? 13 : 101);
    }
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(test_policy)
{
    if (geteuid() != 0) {
        fprintf(stderr, "test_policy: skipped, setuid to nobody needs root\n");
        return;
    }
    struct env e;
    env_start(&e, NULL);
    ck_assert_int_eq(as_nobody(e.d.sock), 13); /* refused by the policy */
    env_finish(&e);
    const char *const allow[] = {"--allow-uid", "65534", NULL};
    env_start(&e, allow);
    ck_assert_int_eq(as_nobody(e.d.sock), 0); /* allowed when listed */
    env_finish(&e);
}
END_TEST

/* Sessions are a client-controlled resource too: per user and in all. */
START_TEST(test_session_limits)
{
    struct env e;
    const char *const extra[] = {"--max-sessions-per-uid", "3", NULL};
    env_start(&e, extra); /* the bystander is the first */
    struct raw r[2];
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(raw_open(&r[i], e.d.sock), 0);
        raw_hello(&r[i]);
    }
    struct infer_client *c;
    ck_assert_int_eq(infer_connect(e.d.sock, NULL, &c), -EUSERS);
    struct raw x;
    ck_assert_int_eq(raw_open(&x, e.d.sock), -EUSERS);
    raw_close(&x);
    for (int i = 0; i < 2; i++)
        raw_close(&r[i]);
    /* Hung-up sessions give their places back. */
    int rc = -EUSERS;
    for (int i = 0; i < 200 && rc == -EUSERS; i++) {
        rc = infer_connect(e.d.sock, NULL, &c);
        if (rc == -EUSERS)
            dtest_sleep_ms(10);
    }
    ck_assert_int_eq(rc, 0);
    infer_close(c);
    env_finish(&e);
}
END_TEST

static Suite *hostile_suite(void)
{
    Suite *s = suite_create("hostile");
    TCase *tc = tcase_create("hostile");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_garbage_records);
    tcase_add_test(tc, test_index_corruption);
    tcase_add_test(tc, test_bad_messages);
    tcase_add_test(tc, test_oversized_message);
    tcase_add_test(tc, test_quotas);
    tcase_add_test(tc, test_flood_no_read);
    tcase_add_test(tc, test_region_and_socket);
    tcase_add_test(tc, test_session_limits);
    tcase_add_test(tc, test_policy);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    tu_shared();
    return tu_run_suite(hostile_suite());
}
