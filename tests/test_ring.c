/* test_ring.c - tests of the shared-memory transport: the SPSC record ring
 * (ipc/ring.h), the sealed session region (ipc/shm.h) and the doorbells
 * (ipc/doorbell.h). Single-thread framing and wrap-around, the NEED_WAKEUP
 * / NEED_SPACE protocol between threads and between processes, a hostile
 * producer and a hostile region header, and (printed, not asserted) the
 * ping-pong latency when spinning and when sleeping on eventfds. */
#include "ipc/doorbell.h"
#include "ipc/ring.h"
#include "ipc/shm.h"
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------ */

/* A ring in private memory with both ends open. The data area is malloc'd
 * at exactly its capacity so that ASan sees any access outside it. */
struct tring {
    struct ring_ctl *ctl;
    unsigned char *data;
    struct ring_params p;
    struct ring *prod, *cons;
};

static void tring_init(struct tring *t, uint32_t cap, uint32_t rec, uint32_t msg,
                       uint32_t start)
{
    memset(t, 0, sizeof *t);
    t->p = (struct ring_params){cap, rec, msg};
    t->ctl = aligned_alloc(64, sizeof *t->ctl);
    t->data = malloc(cap);
    ck_assert_ptr_nonnull(t->ctl);
    ck_assert_ptr_nonnull(t->data);
    memset(t->data, 0xa5, cap);
    ring_ctl_init(t->ctl);
    atomic_store(&t->ctl->head, start);
    atomic_store(&t->ctl->tail, start);
    ck_assert_int_eq(ring_open(&t->prod, t->ctl, t->data, &t->p, RING_PRODUCER), 0);
    ck_assert_int_eq(ring_open(&t->cons, t->ctl, t->data, &t->p, RING_CONSUMER), 0);
}

static void tring_free(struct tring *t)
{
    ring_close(t->prod);
    ring_close(t->cons);
    free(t->ctl);
    free(t->data);
}

static uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void fill(unsigned char *b, size_t n, uint64_t seed)
{
    uint64_t h = mix64(seed);
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)((h >> (8 * (i & 7))) ^ i ^ (i >> 8));
}

static uint32_t fnv1a(const unsigned char *b, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 16777619u;
    return h;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* The waiting loops of a real user. recv_wait: spin for spin_ns (< 0:
 * forever) then sleep on fd (through w when given); send_wait: retry a
 * little, then sleep on fd. A sleep of 10 s means a lost wake-up: -ETIME. */
static int recv_wait(struct ring *r, void *buf, size_t cap, size_t *len, int fd,
                     struct doorbell_waiter *w, int64_t spin_ns, unsigned *sleeps)
{
    uint64_t spin_until = 0;
    for (;;) {
        int rc = ring_recv(r, buf, cap, len);
        if (rc != -EAGAIN)
            return rc;
        if (spin_ns > 0) {
            uint64_t t = now_ns();
            if (!spin_until)
                spin_until = t + (uint64_t)spin_ns;
            if (t >= spin_until)
                spin_ns = 0;
        }
        if (spin_ns != 0) {
            cpu_relax();
            continue;
        }
        if (ring_wait_prepare(r))
            continue;
        ++*sleeps;
        rc = w ? doorbell_waiter_wait(w, 10000000000LL) : doorbell_wait(fd, 10000);
        if (rc < 0)
            return rc;
    }
}

static int send_wait(struct ring *r, const void *m, size_t len, int fd, unsigned *sleeps)
{
    for (unsigned spins = 0;;) {
        int rc = ring_send(r, m, len);
        if (rc != -EAGAIN)
            return rc;
        if (spins++ < 64 || ring_wait_prepare(r))
            continue;
        ++*sleeps;
        rc = doorbell_wait(fd, 10000);
        if (rc < 0)
            return rc;
    }
}

/* Moves one message through t in a single thread, draining as needed, and
 * checks that it comes out equal. Bounded: fails instead of looping. */
static void xfer_check(struct tring *t, const unsigned char *msg, size_t len)
{
    unsigned char *out = malloc(t->p.msg_max ? t->p.msg_max : 1);
    ck_assert_ptr_nonnull(out);
    int sent = 0;
    size_t got = 0;
    for (unsigned iter = 0;; iter++) {
        ck_assert_uint_lt(iter, 4 * (len / 8 + 8));
        if (!sent) {
            int rc = ring_send(t->prod, msg, len);
            ck_assert(rc == 0 || rc == -EAGAIN);
            sent = rc == 0;
        }
        int rc = ring_recv(t->cons, out, t->p.msg_max, &got);
        if (rc == 0)
            break;
        ck_assert_int_eq(rc, -EAGAIN);
    }
    ck_assert(sent);
    ck_assert_uint_eq(got, len);
    ck_assert(len == 0 || memcmp(out, msg, len) == 0);
    free(out);
}

/* ---- framing ------------------------------------------------------------ */

START_TEST(test_params_check)
{
    struct ring_params ok = {64, 24, 200};
    ck_assert_int_eq(ring_params_check(&ok), 0);
    struct ring_params bad[] = {
        {48, 24, 200},            /* not a power of two */
        {8, 0, 8},                /* too small */
        {64, 0, 200},             /* empty records */
        {64, 57, 200},            /* a record could not fit */
        {64, 24, 23},             /* message limit below the record limit */
        {64, 24, RING_MSG_MAX_LIMIT + 1u},
        {1u << 31, 24, 200},      /* above RING_CAPACITY_MAX */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_int_eq(ring_params_check(&bad[i]), -EINVAL);
    struct ring_ctl ctl;
    unsigned char data[64];
    struct ring *r;
    ring_ctl_init(&ctl);
    atomic_store(&ctl.tail, 72); /* tail - head > capacity */
    ck_assert_int_eq(ring_open(&r, &ctl, data, &ok, RING_CONSUMER), -EPROTO);
    atomic_store(&ctl.tail, 4); /* unaligned */
    ck_assert_int_eq(ring_open(&r, &ctl, data, &ok, RING_PRODUCER), -EPROTO);
}
END_TEST

/* Every start offset of a small ring (and the 2^32 index wrap), every
 * single-record size, then multi-record messages larger than the ring. */
START_TEST(test_wrap_every_offset)
{
    const uint32_t cap = 64, rec = 24, msgmax = 200;
    const uint32_t bases[] = {0, 0xffffffc0u, 0xfffffff8u};
    unsigned char msg[200];
    for (size_t b = 0; b < sizeof bases / sizeof bases[0]; b++) {
        for (uint32_t o = 0; o < cap; o += 8) {
            for (uint32_t len = 0; len <= msgmax; len++) {
                struct tring t;
                tring_init(&t, cap, rec, msgmax, bases[b] + o);
                fill(msg, len, len * 977u + o);
                xfer_check(&t, msg, len);
                /* and a second one right behind it */
                fill(msg, len, len + 1);
                xfer_check(&t, msg, len);
                ck_assert_uint_eq(ring_used(t.cons), 0);
                tring_free(&t);
            }
        }
    }
}
END_TEST

/* Every size from 0 to past several record limits, back to back in one
 * ring, including messages whose records exceed the whole capacity. */
START_TEST(test_sizes_continuation)
{
    struct tring t;
    tring_init(&t, 4096, 100, 20000, 0);
    unsigned char *msg = malloc(20000);
    ck_assert_ptr_nonnull(msg);
    for (size_t len = 0; len <= 1200; len++) {
        fill(msg, len, len);
        xfer_check(&t, msg, len);
    }
    for (size_t len = 3900; len <= 20000; len += 997) {
        fill(msg, len, len);
        xfer_check(&t, msg, len);
    }
    fill(msg, 20000, 7);
    xfer_check(&t, msg, 20000);
    ck_assert_int_eq(ring_send(t.prod, msg, 20001), -EMSGSIZE);
    free(msg);
    tring_free(&t);
}
END_TEST

START_TEST(test_full_empty)
{
    struct tring t;
    tring_init(&t, 64, 24, 100, 0);
    unsigned char m[100], out[100];
    size_t len = 1234;
    ck_assert_int_eq(ring_recv(t.cons, out, sizeof out, &len), -EAGAIN);
    /* 8-byte messages take 16 bytes: exactly four fit. */
    for (int i = 0; i < 4; i++) {
        memset(m, i, 8);
        ck_assert_int_eq(ring_send(t.prod, m, 8), 0);
    }
    ck_assert_uint_eq(ring_used(t.prod), 64);
    uint32_t tail = atomic_load(&t.ctl->tail);
    ck_assert_int_eq(ring_send(t.prod, m, 8), -EAGAIN);
    ck_assert_int_eq(ring_send(t.prod, m, 0), -EAGAIN);
    ck_assert_uint_eq(atomic_load(&t.ctl->tail), tail); /* nothing written */
    /* Too small a buffer: told the size, message stays queued. */
    ck_assert_int_eq(ring_recv(t.cons, out, 4, &len), -EMSGSIZE);
    ck_assert_uint_eq(len, 8);
    ck_assert_int_eq(ring_recv(t.cons, NULL, 0, &len), -EMSGSIZE);
    ck_assert_int_eq(ring_recv(t.cons, out, sizeof out, &len), 0);
    ck_assert_uint_eq(len, 8);
    ck_assert_uint_eq(out[0], 0);
    /* One freed slot: one more 8-byte message, a 9..24-byte one does not
     * fit in 16 bytes and is refused whole. */
    ck_assert_int_eq(ring_send(t.prod, m, 17), -EAGAIN);
    ck_assert_uint_eq(atomic_load(&t.ctl->tail), tail);
    ck_assert_int_eq(ring_send(t.prod, m, 8), 0);
    for (int i = 1; i < 5; i++) {
        ck_assert_int_eq(ring_recv(t.cons, out, sizeof out, &len), 0);
        ck_assert_uint_eq(len, 8);
        ck_assert_uint_eq(out[7], i < 4 ? i : 3);
    }
    ck_assert_int_eq(ring_recv(t.cons, out, sizeof out, &len), -EAGAIN);
    /* A fragmented message into a too-small buffer, then a big enough one. */
    fill(m, 40, 3);
    ck_assert_int_eq(ring_send(t.prod, m, 40), 0); /* 24 + 16: 56 bytes */
    ck_assert_int_eq(ring_recv(t.cons, out, 10, &len), -EMSGSIZE);
    ck_assert_uint_eq(len, 40);
    ck_assert_int_eq(ring_wait_prepare(t.cons), 1); /* it is ready */
    ck_assert_int_eq(ring_recv(t.cons, out, 40, &len), 0);
    ck_assert_uint_eq(len, 40);
    ck_assert_mem_eq(out, m, 40);
    /* Streaming a message larger than the ring: other sends are -EBUSY. */
    fill(m, 100, 4);
    ck_assert_int_eq(ring_send(t.prod, m, 100), -EAGAIN); /* 2 records in */
    ck_assert_int_eq(ring_send(t.prod, m, 8), -EBUSY);
    ck_assert_int_eq(ring_recv(t.cons, out, sizeof out, &len), -EAGAIN);
    ck_assert_int_eq(ring_send(t.prod, m, 100), -EAGAIN);
    ck_assert_int_eq(ring_recv(t.cons, out, sizeof out, &len), -EAGAIN);
    ck_assert_int_eq(ring_send(t.prod, m, 100), 0);
    ck_assert_int_eq(ring_recv(t.cons, out, sizeof out, &len), 0);
    ck_assert_uint_eq(len, 100);
    ck_assert_mem_eq(out, m, 100);
    ck_assert_int_eq(ring_send(t.prod, m, 8), 0);
    tring_free(&t);
}
END_TEST

/* ---- the wake-up protocol, deterministic -------------------------------- */

START_TEST(test_wakeup_protocol)
{
    struct tring t;
    tring_init(&t, 64, 24, 100, 0);
    int cfd = doorbell_create(), pfd = doorbell_create();
    ck_assert_int_ge(cfd, 0);
    ck_assert_int_ge(pfd, 0);
    unsigned char m[24] = {1}, out[100];
    size_t len;

    /* Without a doorbell the producer never writes one: the sleeping
     * consumer would not wake (this is what a lost wake-up looks like). */
    ck_assert_int_eq(ring_wait_prepare(t.cons), 0);
    ck_assert_uint_eq(atomic_load(&t.ctl->cons_flags), RING_F_NEED_WAKEUP);
    ck_assert_int_eq(ring_send(t.prod, m, 8), 0);
    ck_assert_int_eq(doorbell_wait(cfd, 20), -ETIME);
    ck_assert_int_eq(ring_recv(t.cons, out, sizeof out, &len), 0);
    ck_assert_uint_eq(atomic_load(&t.ctl->cons_flags), 0); /* withdrawn */

    ring_set_doorbell(t.prod, cfd);
    ring_set_doorbell(t.cons, pfd);
    /* Nobody asleep: no doorbell write under load. */
    ck_assert_int_eq(ring_send(t.prod, m, 8), 0);
    ck_assert_int_eq(doorbell_drain(cfd), -EAGAIN);
    /* Data already there: do not sleep. */
    ck_assert_int_eq(ring_wait_prepare(t.cons), 1);
    ck_assert_int_eq(ring_recv(t.cons, out, sizeof out, &len), 0);
    /* Asleep: the next publish rings exactly once. */
    ck_assert_int_eq(ring_wait_prepare(t.cons), 0);
    ck_assert_int_eq(ring_send(t.prod, m, 8), 0);
    ck_assert_int_eq(doorbell_wait(cfd, 1000), 0);
    ck_assert_int_eq(ring_recv(t.cons, out, sizeof out, &len), 0);
    ck_assert_int_eq(ring_send(t.prod, m, 8), 0);
    ck_assert_int_eq(doorbell_drain(cfd), -EAGAIN);
    ck_assert_int_eq(ring_recv(t.cons, out, sizeof out, &len), 0);

    /* The producer's side: full ring, NEED_SPACE, the consumer rings. */
    ck_assert_int_eq(ring_wait_prepare(t.prod), 1); /* nothing lacking */
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(ring_send(t.prod, m, 8), 0);
    ck_assert_int_eq(ring_send(t.prod, m, 24), -EAGAIN);
    ck_assert_int_eq(ring_wait_prepare(t.prod), 0);
    ck_assert_uint_eq(atomic_load(&t.ctl->prod_flags), RING_F_NEED_SPACE);
    ck_assert_int_eq(ring_recv(t.cons, out, sizeof out, &len), 0);
    ck_assert_int_eq(doorbell_drain(pfd), 1);
    /* 16 bytes free, 32 wanted: still not enough, so prepare says sleep. */
    ck_assert_int_eq(ring_wait_prepare(t.prod), 0);
    ck_assert_int_eq(ring_recv(t.cons, out, sizeof out, &len), 0);
    ck_assert_int_eq(doorbell_wait(pfd, 1000), 0);
    ck_assert_int_eq(ring_wait_prepare(t.prod), 1);
    ck_assert_int_eq(ring_send(t.prod, m, 24), 0);
    ck_assert_uint_eq(atomic_load(&t.ctl->prod_flags), 0);
    close(cfd);
    close(pfd);
    tring_free(&t);
}
END_TEST

/* ---- the wake-up protocol between threads ------------------------------- */

struct wake_arg {
    struct tring *t;
    int cfd, pfd;
    unsigned n;
    int use_uring;
    unsigned long long seed;
    /* results */
    unsigned received, bad, timeouts, sleeps, producer_sleeps;
};

#define WAKE_MAXLEN 300

static void *wake_consumer(void *p)
{
    struct wake_arg *a = p;
    struct doorbell_waiter *w = NULL;
    if (a->use_uring && doorbell_waiter_new(&w, a->cfd) < 0) {
        a->bad++;
        return NULL;
    }
    unsigned char out[WAKE_MAXLEN], want[WAKE_MAXLEN];
    while (a->received < a->n) {
        size_t len;
        int rc = recv_wait(a->t->cons, out, sizeof out, &len, a->cfd, w, 0, &a->sleeps);
        if (rc < 0) {
            a->timeouts += rc == -ETIME;
            a->bad += rc != -ETIME;
            break;
        }
        size_t wl = mix64(a->received) % WAKE_MAXLEN;
        fill(want, wl, a->received);
        a->bad += len != wl || memcmp(out, want, wl) != 0;
        a->received++;
    }
    doorbell_waiter_free(w);
    return NULL;
}

static void wake_run(int use_uring)
{
    struct tring t;
    tring_init(&t, 1024, 128, 4096, 0);
    struct wake_arg a = {.t = &t, .n = 20000, .use_uring = use_uring};
    a.seed = tu_rng_seed();
    a.cfd = doorbell_create();
    a.pfd = doorbell_create();
    ck_assert_int_ge(a.cfd, 0);
    ck_assert_int_ge(a.pfd, 0);
    ring_set_doorbell(t.prod, a.cfd);
    ring_set_doorbell(t.cons, a.pfd);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, wake_consumer, &a), 0);
    unsigned char msg[WAKE_MAXLEN];
    unsigned long long rng = a.seed;
    int failed = 0;
    for (unsigned i = 0; i < a.n && !failed; i++) {
        size_t len = mix64(i) % WAKE_MAXLEN;
        fill(msg, len, i);
        failed = send_wait(t.prod, msg, len, a.pfd, &a.producer_sleeps) != 0;
        /* Random pauses so that the consumer keeps falling asleep at
         * every point of the handshake. */
        double u = tu_rand_uniform(&rng);
        if (u < 0.05) {
            struct timespec ts = {0, (long)(tu_rand_uniform(&rng) * 50000)};
            nanosleep(&ts, NULL);
        } else if (u < 0.3) {
            for (unsigned k = (unsigned)(tu_rand_uniform(&rng) * 2000); k; k--)
                cpu_relax();
        }
    }
    pthread_join(th, NULL);
    if (a.received != a.n || a.bad || a.timeouts || failed)
        fprintf(stderr, "wake test seed %llu: received %u/%u bad %u timeouts %u\n",
                a.seed, a.received, a.n, a.bad, a.timeouts);
    ck_assert_int_eq(failed, 0);
    ck_assert_uint_eq(a.timeouts, 0);
    ck_assert_uint_eq(a.bad, 0);
    ck_assert_uint_eq(a.received, a.n);
    ck_assert_uint_gt(a.sleeps, 0); /* the sleeping path was exercised */
    printf("wake-up (%s): %u messages, consumer slept %u times, producer %u\n",
           use_uring ? "io_uring" : "poll", a.n, a.sleeps, a.producer_sleeps);
    close(a.cfd);
    close(a.pfd);
    tring_free(&t);
}

/* _i: 0 sleeps in poll(), 1 through the io_uring waiter. */
START_TEST(test_wakeup_threads)
{
    wake_run(_i);
}
END_TEST

/* ---- two processes over a sealed region --------------------------------- */

#define PROC_MSGS 1000000u
#define PROC_RECMAX 1024u

static size_t proc_msg(unsigned char *b, uint64_t seq)
{
    uint64_t h = mix64(seq ^ 0x5eed);
    size_t len = 12 + (size_t)(h % 240);
    if (seq % 4099 == 0)
        len = 3 * PROC_RECMAX + 17; /* fragmented */
    memcpy(b, &seq, 8);
    fill(b + 8, len - 12, seq);
    uint32_t sum = fnv1a(b, len - 4);
    memcpy(b + len - 4, &sum, 4);
    return len;
}

/* The client: attach, prove the seals, stream the messages. Exit codes say
 * what went wrong. */
static int proc_child(int sock)
{
    char tag[8];
    size_t tl;
    int fds[3];
    if (doorbell_fds_recv(sock, tag, sizeof tag, &tl, fds, 3) != 0 || tl != 1)
        return 2;
    int memfd = fds[0], dfd = fds[1], cfd = fds[2];
    struct shm_region *s;
    if (shm_attach(&s, memfd) != 0)
        return 3;
    if (ftruncate(memfd, (off_t)shm_size(s) * 2) == 0 || errno != EPERM)
        return 4;
    if (ftruncate(memfd, 4096) == 0 || errno != EPERM)
        return 4;
    if (pwrite(memfd, "", 1, (off_t)shm_size(s)) >= 0 || errno != EPERM)
        return 4;
    if (fcntl(memfd, F_ADD_SEALS, F_SEAL_WRITE) == 0 || errno != EPERM)
        return 4;
    close(memfd);
    struct ring *sq;
    if (shm_ring_open(s, SHM_RING_SUBMIT, RING_PRODUCER, &sq) != 0)
        return 5;
    ring_set_doorbell(sq, dfd);
    static unsigned char msg[4 * PROC_RECMAX];
    unsigned sleeps = 0;
    for (uint64_t seq = 0; seq < PROC_MSGS; seq++) {
        int rc = send_wait(sq, msg, proc_msg(msg, seq), cfd, &sleeps);
        if (rc != 0)
            return rc == -ETIME ? 7 : 6;
    }
    ring_close(sq);
    shm_free(s);
    return 0;
}

START_TEST(test_two_process)
{
    struct shm_params sp = {{{1u << 16, PROC_RECMAX, 1u << 16},
                             {1u << 16, PROC_RECMAX, 1u << 16}}};
    struct shm_region *s;
    ck_assert_int_eq(shm_create(&s, &sp), 0);
    int dfd = doorbell_create(), cfd = doorbell_create();
    /* A listening socket (abstract name), as the daemon's: SO_PEERCRED then
     * names the connecting child. */
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int sl = snprintf(sa.sun_path + 1, sizeof sa.sun_path - 1, "inferd-test-ring-%d",
                      (int)getpid());
    socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)sl);
    int lsock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(lsock, 0);
    ck_assert_int_eq(bind(lsock, (struct sockaddr *)&sa, salen), 0);
    ck_assert_int_eq(listen(lsock, 1), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(lsock);
        int c = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (c < 0 || connect(c, (struct sockaddr *)&sa, salen) != 0)
            _exit(1);
        _exit(proc_child(c));
    }
    int conn = accept4(lsock, NULL, NULL, SOCK_CLOEXEC);
    ck_assert_int_ge(conn, 0);
    close(lsock);
    struct ucred uc;
    ck_assert_int_eq(doorbell_peer_cred(conn, &uc), 0);
    ck_assert_int_eq(uc.pid, pid);
    ck_assert_int_eq(uc.uid, getuid());
    int fds[3] = {shm_fd(s), dfd, cfd};
    ck_assert_int_eq(doorbell_fds_send(conn, "S", 1, fds, 3), 0);
    struct ring *sq;
    ck_assert_int_eq(shm_ring_open(s, SHM_RING_SUBMIT, RING_CONSUMER, &sq), 0);
    ring_set_doorbell(sq, cfd);
    static unsigned char out[1u << 16], want[4 * PROC_RECMAX];
    uint64_t t0 = now_ns();
    const char *fail = NULL;
    uint64_t seq = 0;
    unsigned sleeps = 0;
    for (; seq < PROC_MSGS && !fail; seq++) {
        size_t len;
        int rc = recv_wait(sq, out, sizeof out, &len, dfd, NULL, 0, &sleeps);
        if (rc < 0) {
            fail = rc == -ETIME ? "lost wake-up (or the child died)" : "ring_recv error";
            break;
        }
        uint32_t sum;
        memcpy(&sum, out + len - 4, 4);
        size_t wl = proc_msg(want, seq);
        if (len != wl || memcmp(out, want, wl) != 0)
            fail = "message differs (order or content)";
        else if (fnv1a(out, len - 4) != sum)
            fail = "checksum";
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    if (fail)
        kill(pid, SIGKILL);
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    if (fail)
        fprintf(stderr, "two-process: %s near message %llu\n", fail,
                (unsigned long long)seq);
    ck_assert_msg(!fail, "%s", fail ? fail : "");
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
    printf("two-process: %u messages in %.2f s (%.2f M/s), consumer slept %u times\n",
           PROC_MSGS, secs, PROC_MSGS / secs / 1e6, sleeps);
    ring_close(sq);
    shm_free(s);
    close(dfd);
    close(cfd);
    close(conn);
}
END_TEST

/* ---- the session region ------------------------------------------------- */

static const struct shm_params shm_small = {{{4096, 512, 8192}, {8192, 1024, 8192}}};

START_TEST(test_shm_roundtrip)
{
    struct shm_region *d, *c;
    ck_assert_int_eq(shm_create(&d, &shm_small), 0);
    int fd = shm_fd(d);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_ne(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
    int seals = fcntl(fd, F_GET_SEALS);
    ck_assert_int_eq(seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
                     F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
    ck_assert_uint_eq(shm_size(d), SHM_DATA_OFFSET + 4096 + 8192);
    int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    ck_assert_int_ge(dup_fd, 0);
    ck_assert_int_eq(shm_attach(&c, dup_fd), 0);
    close(dup_fd); /* the mapping stays */
    ck_assert_int_eq(shm_fd(c), -1);
    ck_assert_mem_eq(shm_get_params(c), &shm_small, sizeof shm_small);
    /* (the attached side cannot resize it: see proc_child) */
    struct ring *sq_p, *sq_c, *cq_p, *cq_c;
    ck_assert_int_eq(shm_ring_open(c, SHM_RING_SUBMIT, RING_PRODUCER, &sq_p), 0);
    ck_assert_int_eq(shm_ring_open(d, SHM_RING_SUBMIT, RING_CONSUMER, &sq_c), 0);
    ck_assert_int_eq(shm_ring_open(d, SHM_RING_COMPLETE, RING_PRODUCER, &cq_p), 0);
    ck_assert_int_eq(shm_ring_open(c, SHM_RING_COMPLETE, RING_CONSUMER, &cq_c), 0);
    ck_assert_int_eq(shm_ring_open(c, SHM_RING_COUNT, RING_CONSUMER, &cq_c), -EINVAL);
    unsigned char m[3000], out[8192];
    size_t len;
    for (unsigned i = 0; i < 200; i++) {
        size_t n = (i * 37) % sizeof m;
        fill(m, n, i);
        ck_assert_int_eq(ring_send(sq_p, m, n), 0);
        ck_assert_int_eq(ring_recv(sq_c, out, sizeof out, &len), 0);
        ck_assert_uint_eq(len, n);
        ck_assert(n == 0 || memcmp(out, m, n) == 0);
        ck_assert_int_eq(ring_send(cq_p, out, len), 0);
        ck_assert_int_eq(ring_recv(cq_c, m, sizeof m, &len), 0);
        ck_assert_uint_eq(len, n);
    }
    ring_close(sq_p);
    ring_close(sq_c);
    ring_close(cq_p);
    ring_close(cq_c);
    shm_free(c);
    shm_free(d);
}
END_TEST

/* A memfd of size bytes starting with hdr, with the given seals. */
static int hostile_memfd(const struct shm_header *hdr, off_t size, int seals)
{
    int fd = memfd_create("hostile", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, size), 0);
    if (hdr)
        ck_assert_int_eq(pwrite(fd, hdr, sizeof *hdr, 0), (ssize_t)sizeof *hdr);
    if (seals)
        ck_assert_int_eq(fcntl(fd, F_ADD_SEALS, seals), 0);
    return fd;
}

START_TEST(test_shm_attach_hostile)
{
    const int all = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
    struct shm_header good;
    ck_assert_int_eq(shm_layout(&shm_small, &good), 0);
    off_t size = (off_t)good.total_size;
    struct shm_region *s = NULL;
    int fd = hostile_memfd(&good, size, all);
    ck_assert_int_eq(shm_attach(&s, fd), 0); /* the control case */
    shm_free(s);
    close(fd);

    /* One hostile mutation per case. */
    for (int k = 0; k < 22; k++) {
        struct shm_header h = good;
        off_t sz = size;
        int want = -EPROTO;
        switch (k) {
        case 0: h.magic ^= 1; break;
        case 1: h.version = 2; want = -EPROTONOSUPPORT; break;
        case 2: h.header_size = 64; break;
        case 3: h.total_size += 4096; break;
        case 4: h.total_size = UINT64_MAX; break;
        case 5: h.ring_count = 3; break;
        case 6: h.flags = 1; break;
        case 7: h.ring[0].capacity = 6000; break;
        case 8: h.ring[0].capacity = 1u << 31; break;
        case 9: h.ring[1].capacity = 0; break;
        case 10: h.ring[0].ctl_offset = 0; break;
        case 11: h.ring[1].data_offset = 4096; break; /* over the header */
        case 12: h.ring[1].data_offset = UINT64_MAX - 100; break;
        case 13: h.ring[0].record_max = 4096; break;
        case 14: h.ring[0].record_max = 0; break;
        case 15: h.ring[1].msg_max = 100; break;
        case 16: h.ring[1].msg_max = UINT32_MAX; break;
        case 17: h.ring[0].reserved = 1; break;
        /* Capacities swapped but sizes consistent: the layout is refused
         * only if the offsets disagree, which they do. */
        case 18: h.ring[0].capacity = 8192; h.ring[1].capacity = 4096; break;
        case 19: sz = size + 4096; break;   /* file larger than the header says */
        case 20: sz = 4096; break;          /* only a header page */
        case 21: memset(&h, 0xff, sizeof h); break;
        }
        fd = hostile_memfd(&h, sz, all);
        s = (struct shm_region *)1;
        int rc = shm_attach(&s, fd);
        ck_assert_msg(rc == want, "case %d: %d", k, rc);
        ck_assert_ptr_null(s);
        close(fd);
    }
    /* Seals missing or partial: the file could shrink under the mapping. */
    const int partial[] = {0, F_SEAL_SHRINK, F_SEAL_GROW | F_SEAL_SHRINK,
                           F_SEAL_GROW | F_SEAL_SEAL};
    for (size_t i = 0; i < sizeof partial / sizeof partial[0]; i++) {
        fd = hostile_memfd(&good, size, partial[i]);
        ck_assert_int_eq(shm_attach(&s, fd), -EPERM);
        close(fd);
    }
    /* Not a memfd at all. */
    char path[] = "/tmp/test_ring_XXXXXX";
    fd = mkostemp(path, O_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    unlink(path);
    ck_assert_int_eq(ftruncate(fd, size), 0);
    ck_assert_int_eq(pwrite(fd, &good, sizeof good, 0), (ssize_t)sizeof good);
    int rc = shm_attach(&s, fd);
    ck_assert(rc == -EINVAL || rc == -EPERM);
    close(fd);
    /* Huge sparse file, sealed: refused before mapping. */
    fd = hostile_memfd(&good, (off_t)SHM_SIZE_MAX + 4096, all);
    ck_assert_int_eq(shm_attach(&s, fd), -EPROTO);
    close(fd);
    /* Short buffer to the checker. */
    struct shm_params p;
    ck_assert_int_eq(shm_header_check(&good, sizeof good - 1, good.total_size, &p), -EPROTO);
    ck_assert_int_eq(shm_header_check(&good, sizeof good, good.total_size, &p), 0);
    /* Unusable parameters for the creator. */
    struct shm_params bad = shm_small;
    bad.ring[1].capacity = 2048;
    ck_assert_int_eq(shm_create(&s, &bad), -EINVAL);
}
END_TEST

/* ---- a hostile producer ------------------------------------------------- */

/* Writes a record header (and len payload bytes, capped at what the ring
 * holds) at free-running position pos, as a malicious producer would. */
static void raw_rec(struct tring *t, uint32_t pos, uint32_t len, uint32_t flags)
{
    struct ring_rec h = {len, flags};
    uint32_t mask = t->p.capacity - 1;
    memcpy(t->data + (pos & mask), &h, sizeof h);
    uint32_t n = len < t->p.capacity - 8 ? len : t->p.capacity - 8;
    for (uint32_t i = 0; i < n; i++)
        t->data[(pos + 8 + i) & mask] = (unsigned char)(i + 1);
}

static int hostile_recv(struct tring *t, size_t *len)
{
    /* Exactly msg_max bytes so that ASan sees any write past the message
     * limit. */
    unsigned char *out = malloc(t->p.msg_max);
    ck_assert_ptr_nonnull(out);
    int rc = ring_recv(t->cons, out, t->p.msg_max, len);
    free(out);
    return rc;
}

START_TEST(test_hostile_ring)
{
    const uint32_t cap = 256, rec = 64, msgmax = 300, none = UINT32_MAX - 1;
    /* One or two raw records at start, then the tail at start + tail. */
    static const struct {
        const char *what;
        uint32_t start, len1, fl1, len2, fl2, tail;
        int want;
    } cases[] = {
        {"more published than the ring holds", 0, 8, 0, none, 0, 256 + 8, -EPROTO},
        {"tail moved backwards", 0, 8, 0, none, 0, (uint32_t)-8, -EPROTO},
        {"unaligned tail", 0, 4, 0, none, 0, 12, -EPROTO},
        {"huge length", 0, UINT32_MAX, 0, none, 0, 256, -EPROTO},
        {"over the record limit", 0, 65, 0, none, 0, 256, -EPROTO},
        {"length past the published bytes", 0, 40, 0, none, 0, 16, -EPROTO},
        {"continuation without a start", 0, 8, RING_REC_CONT, none, 0, 16, -EPROTO},
        {"new message inside a message", 0, 8, RING_REC_MORE, 8, 0, 32, -EPROTO},
        {"second start inside a message", 0, 8, RING_REC_MORE, 8, RING_REC_MORE, 32, -EPROTO},
        {"unknown flag", 0, 8, 4, none, 0, 16, -EPROTO},
        {"empty fragment", 0, 0, RING_REC_MORE, none, 0, 8, -EPROTO},
        {"record across the end, legal", 256 - 16, 40, 0, none, 0, 48, 0},
        {"record across the end, past the tail", 256 - 16, 40, 0, none, 0, 40, -EPROTO},
        {"the same at the 2^32 wrap", 0xfffffff0u, 40, 0, none, 0, 40, -EPROTO},
    };
    size_t len;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        struct tring t;
        uint32_t h = cases[k].start;
        tring_init(&t, cap, rec, msgmax, h);
        raw_rec(&t, h, cases[k].len1, cases[k].fl1);
        if (cases[k].len2 != none)
            raw_rec(&t, h + ring_rec_size(cases[k].len1), cases[k].len2, cases[k].fl2);
        atomic_store(&t.ctl->tail, h + cases[k].tail);
        int rc = hostile_recv(&t, &len);
        ck_assert_msg(rc == cases[k].want, "%s: got %d", cases[k].what, rc);
        if (rc == 0) {
            ck_assert_uint_eq(len, 40);
        } else {
            /* Dead for good, even once the ring looks sane again. */
            atomic_store(&t.ctl->tail, h);
            ck_assert_int_eq(hostile_recv(&t, &len), -EPROTO);
            ck_assert_int_eq(ring_wait_prepare(t.cons), 1);
        }
        tring_free(&t);
    }

    /* An endless fragmented message fed in steps (also across the 2^32
     * wrap): each call ends (-EAGAIN), then over msg_max it is -EPROTO. */
    for (int w = 0; w < 2; w++) {
        struct tring t;
        uint32_t h = w ? 0xfffffff0u : 0;
        tring_init(&t, cap, rec, msgmax, h);
        for (int step = 0;; step++) {
            for (uint32_t i = 0; i < 3; i++)
                raw_rec(&t, h + i * 72, 64,
                        RING_REC_MORE | (step || i ? RING_REC_CONT : 0));
            h += 3 * 72;
            atomic_store(&t.ctl->tail, h);
            int rc = hostile_recv(&t, &len);
            if (rc == -EPROTO)
                break;
            ck_assert_int_eq(rc, -EAGAIN);
            ck_assert_int_lt(step, 2);
        }
        tring_free(&t);
    }

    /* The producer's view: a full ring, then the consumer's head ahead of
     * the tail, or unaligned; the producer has to look and must refuse. */
    for (uint32_t bad = 0; bad < 2; bad++) {
        struct tring t;
        tring_init(&t, cap, rec, msgmax, 0);
        static const char m56[56] = "x";
        for (int i = 0; i < 4; i++)
            ck_assert_int_eq(ring_send(t.prod, m56, 56), 0);
        ck_assert_int_eq(ring_send(t.prod, "x", 1), -EAGAIN);
        atomic_store(&t.ctl->head, bad ? 4 : cap + 64);
        ck_assert_int_eq(ring_send(t.prod, "x", 1), -EPROTO);
        ck_assert_int_eq(ring_wait_prepare(t.prod), 1);
        atomic_store(&t.ctl->head, cap);
        ck_assert_int_eq(ring_send(t.prod, "x", 1), -EPROTO); /* dead */
        tring_free(&t);
    }
}
END_TEST

/* ---- descriptors, credentials, the io_uring waiter ---------------------- */

static int fd_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

START_TEST(test_fds_passing)
{
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    int e[5];
    for (int i = 0; i < 5; i++)
        ck_assert_int_ge(e[i] = doorbell_create(), 0);
    char buf[16];
    size_t len;
    int got[DOORBELL_FDS_MAX];

    ck_assert_int_eq(doorbell_fds_send(sv[0], "hello", 5, e, 3), 0);
    ck_assert_int_eq(doorbell_fds_recv(sv[1], buf, sizeof buf, &len, got, 3), 0);
    ck_assert_uint_eq(len, 5);
    ck_assert_mem_eq(buf, "hello", 5);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_ne(fcntl(got[i], F_GETFD) & FD_CLOEXEC, 0);
        /* the same eventfd: ringing one is seen through the other */
        ck_assert_int_eq(doorbell_ring(e[i]), 0);
        ck_assert_int_eq(doorbell_drain(got[i]), 1);
        close(got[i]);
    }

    /* Extras: all of them closed, -EBADMSG. The lowest free descriptor
     * numbers show whether anything leaked. */
    int probe = dup(0);
    close(probe);
    ck_assert_int_eq(doorbell_fds_send(sv[0], "x", 1, e, 5), 0);
    ck_assert_int_eq(doorbell_fds_recv(sv[1], buf, sizeof buf, &len, got, 3), -EBADMSG);
    ck_assert(!fd_open(probe));
    /* Too few, and none at all. */
    ck_assert_int_eq(doorbell_fds_send(sv[0], "x", 1, e, 1), 0);
    ck_assert_int_eq(doorbell_fds_recv(sv[1], buf, sizeof buf, &len, got, 2), -EBADMSG);
    ck_assert(!fd_open(probe));
    ck_assert_int_eq(doorbell_fds_send(sv[0], "x", 1, NULL, 0), 0);
    ck_assert_int_eq(doorbell_fds_recv(sv[1], buf, sizeof buf, &len, got, 1), -EBADMSG);
    /* Payload too big for the buffer (SEQPACKET reports the truncation). */
    ck_assert_int_eq(doorbell_fds_send(sv[0], "0123456789", 10, e, 1), 0);
    ck_assert_int_eq(doorbell_fds_recv(sv[1], buf, 4, &len, got, 1), -EMSGSIZE);
    ck_assert(!fd_open(probe));
    /* Limits and hang-up. */
    ck_assert_int_eq(doorbell_fds_send(sv[0], "x", 1, e, DOORBELL_FDS_MAX + 1), -EINVAL);
    ck_assert_int_eq(doorbell_fds_send(sv[0], "", 0, e, 1), -EINVAL);
    struct ucred uc;
    ck_assert_int_eq(doorbell_peer_cred(sv[1], &uc), 0);
    ck_assert_int_eq(uc.pid, getpid());
    ck_assert_int_eq(uc.uid, geteuid());
    ck_assert_int_eq(uc.gid, getegid());
    close(sv[0]);
    ck_assert_int_eq(doorbell_fds_recv(sv[1], buf, sizeof buf, &len, got, 1), -ECONNRESET);
    close(sv[1]);
    for (int i = 0; i < 5; i++)
        close(e[i]);
}
END_TEST

START_TEST(test_uring_waiter)
{
    int fd = doorbell_create();
    ck_assert_int_ge(fd, 0);
    ck_assert_int_ne(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
    ck_assert_int_ne(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
    struct doorbell_waiter *w;
    ck_assert_int_eq(doorbell_waiter_new(&w, fd), 0);
    uint64_t t0 = now_ns();
    ck_assert_int_eq(doorbell_waiter_wait(w, 20000000), -ETIME);
    ck_assert_uint_ge(now_ns() - t0, 15000000);
    ck_assert_int_eq(doorbell_ring(fd), 0); /* rung while the read is armed */
    ck_assert_int_eq(doorbell_waiter_wait(w, 1000000000), 0);
    ck_assert_int_eq(doorbell_drain(fd), -EAGAIN); /* consumed */
    ck_assert_int_eq(doorbell_ring(fd), 0); /* rung before the read is armed */
    ck_assert_int_eq(doorbell_ring(fd), 0);
    ck_assert_int_eq(doorbell_waiter_wait(w, 1000000000), 0);
    ck_assert_int_eq(doorbell_waiter_wait(w, 10000000), -ETIME);
    doorbell_waiter_free(w); /* with a read still armed */
    ck_assert_int_eq(doorbell_ring(fd), 0);
    ck_assert_int_eq(doorbell_drain(fd), 1); /* the cancelled read took nothing */
    ck_assert_int_eq(doorbell_wait(fd, 10), -ETIME);
    close(fd);
}
END_TEST

/* ---- ping-pong latency (printed, not asserted) -------------------------- */

/* How long a receiver spins before sleeping, per mode (< 0: never sleeps). */
static const struct {
    const char *name;
    int64_t spin_ns;
    int uring;
} lat_modes[] = {
    {"spin", -1, 0},
    {"eventfd+poll", 0, 0},
    {"eventfd+io_uring", 0, 1},
    {"spin 20 us, then io_uring", 20000, 1},
};

struct lat_side {
    struct ring *in, *out;
    int own_fd, mode;
    unsigned n, sleeps;
    int err;
};

/* Receives one 256-byte message on s->in, then (echo) sends it back. */
static void lat_exchange(struct lat_side *s, struct doorbell_waiter *w, int echo)
{
    unsigned char buf[256] = {0};
    size_t len;
    if (!echo && ring_send(s->out, buf, sizeof buf) != 0)
        s->err = 1;
    if (recv_wait(s->in, buf, sizeof buf, &len, s->own_fd, w, lat_modes[s->mode].spin_ns,
                  &s->sleeps) != 0 || len != sizeof buf)
        s->err = 1;
    if (echo && ring_send(s->out, buf, sizeof buf) != 0)
        s->err = 1;
}

static void *lat_echo(void *p)
{
    struct lat_side *s = p;
    struct doorbell_waiter *w = NULL;
    if (lat_modes[s->mode].uring && doorbell_waiter_new(&w, s->own_fd) < 0)
        s->err = 1;
    for (unsigned i = 0; i < s->n && !s->err; i++)
        lat_exchange(s, w, 1);
    doorbell_waiter_free(w);
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void lat_run(int mode, unsigned n)
{
    struct tring ab, ba;
    tring_init(&ab, 4096, 512, 4096, 0);
    tring_init(&ba, 4096, 512, 4096, 0);
    int fa = doorbell_create(), fb = doorbell_create();
    if (lat_modes[mode].spin_ns >= 0) {
        ring_set_doorbell(ab.prod, fb);
        ring_set_doorbell(ba.cons, fb);
        ring_set_doorbell(ba.prod, fa);
        ring_set_doorbell(ab.cons, fa);
    }
    struct lat_side a = {ba.cons, ab.prod, fa, mode, n, 0, 0};
    struct lat_side b = {ab.cons, ba.prod, fb, mode, n, 0, 0};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, lat_echo, &b), 0);
    struct doorbell_waiter *w = NULL;
    if (lat_modes[mode].uring)
        ck_assert_int_eq(doorbell_waiter_new(&w, fa), 0);
    uint64_t *rtt = malloc(n * sizeof *rtt);
    ck_assert_ptr_nonnull(rtt);
    for (unsigned i = 0; i < n && !a.err; i++) {
        uint64_t t0 = now_ns();
        lat_exchange(&a, w, 0);
        rtt[i] = now_ns() - t0;
    }
    pthread_join(th, NULL);
    ck_assert_int_eq(a.err, 0);
    ck_assert_int_eq(b.err, 0);
    qsort(rtt, n, sizeof *rtt, cmp_u64);
    printf("ping-pong %-26s 256 B, %6u round trips: p50 %7.2f us  p99 %7.2f us"
           "  (sleeps %u)\n", lat_modes[mode].name, n, rtt[n / 2] / 1e3,
           rtt[(size_t)n * 99 / 100] / 1e3, a.sleeps + b.sleeps);
    fflush(stdout);
    free(rtt);
    doorbell_waiter_free(w);
    close(fa);
    close(fb);
    tring_free(&ab);
    tring_free(&ba);
}

START_TEST(test_latency_report)
{
    for (int mode = 0; mode < 4; mode++)
        lat_run(mode, mode == 0 ? 100000 : 20000);
}
END_TEST

/* ---- runner ------------------------------------------------------------- */

static Suite *ring_suite(void)
{
    Suite *s = suite_create("ring");
    TCase *tc = tcase_create("framing");
    tcase_add_test(tc, test_params_check);
    tcase_add_test(tc, test_wrap_every_offset);
    tcase_add_test(tc, test_sizes_continuation);
    tcase_add_test(tc, test_full_empty);
    tcase_add_test(tc, test_wakeup_protocol);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);

    tc = tcase_create("hostile");
    tcase_add_test(tc, test_hostile_ring);
    tcase_add_test(tc, test_shm_roundtrip);
    tcase_add_test(tc, test_shm_attach_hostile);
    tcase_add_test(tc, test_fds_passing);
    tcase_add_test(tc, test_uring_waiter);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);

    tc = tcase_create("concurrent");
    tcase_add_loop_test(tc, test_wakeup_threads, 0, 2);
    tcase_add_test(tc, test_two_process);
    tcase_add_test(tc, test_latency_report);
    tcase_set_timeout(tc, 300);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(ring_suite());
}
