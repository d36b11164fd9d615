/* client.c - libinferclient: the connection, the session's rings, waiting
 * and the event queue. Requests, events and the synchronous queries are
 * built and decoded in client_msg.c. See inferclient.h. */
#include "client_impl.h"

#include "daemon/inferd/handshake.h"
#include "ipc/doorbell.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

uint64_t cl_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline void cl_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

void infer_connect_opts_init(struct infer_connect_opts *o)
{
    memset(o, 0, sizeof *o);
    o->spin_us = 50;
    o->timeout_ms = 5000;
}

/* ---- waiting ------------------------------------------------------------ */

/* Reads whatever the socket says (it only ever says "gone"). */
static void cl_check_socket(struct infer_client *c)
{
    char b[16];
    ssize_t n = recv(c->sock, b, sizeof b, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
        c->gone = true;
}

void cl_disarm(struct infer_client *c)
{
    if (!c->armed)
        return;
    c->armed = false;
    (void)doorbell_drain(c->bell_client);
}

/* Sleeps until the daemon rings (or hangs up) or deadline_ns passes (0:
 * forever). The caller has announced the wait with ring_wait_prepare(). */
static int cl_sleep(struct infer_client *c, uint64_t deadline_ns)
{
    c->armed = true;
    int timeout = -1;
    if (deadline_ns) {
        uint64_t now = cl_now_ns();
        if (now >= deadline_ns)
            return -ETIMEDOUT;
        uint64_t ms = (deadline_ns - now + 999999) / 1000000;
        timeout = ms > 1000000 ? 1000000 : (int)ms;
    }
    struct epoll_event evs[2];
    int n;
    do
        n = epoll_wait(c->epfd, evs, 2, timeout);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    if (n == 0)
        return -ETIMEDOUT;
    for (int i = 0; i < n; i++)
        if (evs[i].data.u32 == 1)
            cl_check_socket(c);
    cl_disarm(c);
    return 0;
}

/* Waits until the completion ring may hold something new. Spinning is
 * adaptive: it pays when messages follow each other within the spin time
 * (ping-pong), and only burns CPU when they come further apart (a token
 * every few milliseconds). So after a wait longer than spin_ns the next
 * spin is halved, and any wait shorter than spin_ns restores it. */
int cl_wait_complete(struct infer_client *c, uint64_t deadline_ns)
{
    uint64_t t0 = cl_now_ns();
    while (cl_now_ns() - t0 < c->spin_cur_ns) {
        if (ring_used(c->comp)) {
            c->spin_cur_ns = c->spin_ns;
            return 0;
        }
        cl_relax();
    }
    if (ring_wait_prepare(c->comp))
        return 0;
    int rc = cl_sleep(c, deadline_ns);
    c->spin_cur_ns = cl_now_ns() - t0 <= c->spin_ns ? c->spin_ns : c->spin_cur_ns / 2;
    return rc;
}

/* ---- raw messages ------------------------------------------------------- */

/* The next message off the completion ring into c->rx. 0, -EAGAIN,
 * -EPROTO. */
int cl_recv(struct infer_client *c, size_t *len)
{
    if (c->broken)
        return -EPROTO;
    int rc = ring_recv(c->comp, c->rx, c->rx_cap, len);
    if (rc == -EMSGSIZE || rc == -EPROTO) {
        c->broken = true;
        return -EPROTO;
    }
    return rc;
}

/* Keeps a copy of the message in c->rx for infer_*_event. */
int cl_queue_rx(struct infer_client *c, size_t len)
{
    struct cl_msg *m = malloc(sizeof *m + len);
    if (!m)
        return -ENOMEM;
    m->next = NULL;
    m->len = len;
    memcpy(m->data, c->rx, len);
    if (c->q_tail)
        c->q_tail->next = m;
    else
        c->q_head = m;
    c->q_tail = m;
    return 0;
}

/* Moves every message waiting in the completion ring into the queue (so
 * the daemon's backlog never grows because we are busy sending). */
static int cl_pull(struct infer_client *c)
{
    for (;;) {
        size_t len;
        int rc = cl_recv(c, &len);
        if (rc == -EAGAIN)
            return 0;
        if (rc)
            return rc;
        if ((rc = cl_queue_rx(c, len)))
            return rc;
    }
}

/* Sends one built message, waiting while the submission ring is full. */
int cl_send(struct infer_client *c, const void *buf, size_t len)
{
    for (;;) {
        if (c->gone)
            return -ECONNRESET;
        int rc = ring_send(c->sub, buf, len);
        if (rc == 0)
            return 0;
        if (rc == -EPROTO) {
            c->broken = true;
            return rc;
        }
        if (rc != -EAGAIN)
            return rc;
        if ((rc = cl_pull(c)))
            return rc;
        if (ring_wait_prepare(c->sub))
            continue;
        if ((rc = cl_sleep(c, 0)) < 0)
            return rc;
    }
}

/* ---- connecting --------------------------------------------------------- */

static int cl_recv_timeout(int sock, int timeout_ms)
{
    struct pollfd p = {.fd = sock, .events = POLLIN};
    int n;
    do
        n = poll(&p, 1, timeout_ms);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    return n == 0 ? -ETIMEDOUT : 0;
}

static int cl_handshake(struct infer_client *c, int timeout_ms)
{
    struct hs_msg m;
    int rc = cl_recv_timeout(c->sock, timeout_ms);
    if (rc)
        return rc;
    ssize_t n = recv(c->sock, &m, sizeof m, 0);
    if (n == 0)
        return -ECONNRESET;
    if (n < 0)
        return -errno;
    if ((size_t)n != sizeof m || m.magic != HS_MAGIC || m.version != HS_VERSION)
        return -EPROTO;
    if (m.status < 0)
        return m.status >= -4095 ? m.status : -EPROTO;
    c->session_id = m.session_id;
    if ((rc = cl_recv_timeout(c->sock, timeout_ms)))
        return rc;
    int fds[HS_NFDS];
    size_t len;
    rc = doorbell_fds_recv(c->sock, &m, sizeof m, &len, fds, HS_NFDS);
    if (rc)
        return rc == -EBADMSG || rc == -EMSGSIZE ? -EPROTO : rc;
    c->bell_daemon = fds[HS_FD_DAEMON_BELL];
    c->bell_client = fds[HS_FD_CLIENT_BELL];
    rc = shm_attach(&c->shm, fds[HS_FD_REGION]);
    close(fds[HS_FD_REGION]);
    if (len != sizeof m || m.magic != HS_MAGIC || m.session_id != c->session_id)
        return -EPROTO;
    if (rc)
        return rc == -ENOMEM ? rc : -EPROTO;
    if ((rc = shm_ring_open(c->shm, SHM_RING_SUBMIT, RING_PRODUCER, &c->sub)) ||
        (rc = shm_ring_open(c->shm, SHM_RING_COMPLETE, RING_CONSUMER, &c->comp)))
        return rc == -ENOMEM ? rc : -EPROTO;
    /* Both of our handles wake the daemon: the producer when it may read,
     * the consumer when it waits for room in the completion ring. */
    ring_set_doorbell(c->sub, c->bell_daemon);
    ring_set_doorbell(c->comp, c->bell_daemon);
    const struct shm_params *sp = shm_get_params(c->shm);
    c->rx_cap = sp->ring[SHM_RING_COMPLETE].msg_max;
    c->rx = malloc(c->rx_cap);
    c->b = wire_builder_new(sp->ring[SHM_RING_SUBMIT].msg_max);
    if (!c->rx || !c->b)
        return -ENOMEM;
    c->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (c->epfd < 0)
        return -errno;
    struct epoll_event e1 = {.events = EPOLLIN, .data.u32 = 0};
    struct epoll_event e2 = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = 1};
    if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->bell_client, &e1) < 0 ||
        epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->sock, &e2) < 0)
        return -errno;
    return 0;
}

int infer_connect(const char *socket_path, const struct infer_connect_opts *opts,
                  struct infer_client **out)
{
    if (!socket_path || !out)
        return -EINVAL;
    *out = NULL;
    struct infer_connect_opts o;
    if (opts)
        o = *opts;
    else
        infer_connect_opts_init(&o);
    if (o.timeout_ms <= 0)
        o.timeout_ms = 5000;
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(socket_path) >= sizeof a.sun_path)
        return -ENAMETOOLONG;
    strcpy(a.sun_path, socket_path);

    struct infer_client *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->sock = c->bell_daemon = c->bell_client = c->epfd = -1;
    c->spin_ns = (uint64_t)o.spin_us * 1000ull;
    c->spin_cur_ns = c->spin_ns;
    int rc;
    c->sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (c->sock < 0 || connect(c->sock, (struct sockaddr *)&a, sizeof a) < 0) {
        rc = -errno;
        goto fail;
    }
    if ((rc = cl_handshake(c, o.timeout_ms)))
        goto fail;
    if ((rc = cl_hello(c, &o)))
        goto fail;
    *out = c;
    return 0;
fail:
    infer_close(c);
    return rc;
}

void infer_close(struct infer_client *c)
{
    if (!c)
        return;
    ring_close(c->sub);
    ring_close(c->comp);
    shm_free(c->shm);
    if (c->sock >= 0)
        close(c->sock);
    if (c->bell_daemon >= 0)
        close(c->bell_daemon);
    if (c->bell_client >= 0)
        close(c->bell_client);
    if (c->epfd >= 0)
        close(c->epfd);
    while (c->q_head) {
        struct cl_msg *n = c->q_head->next;
        free(c->q_head);
        c->q_head = n;
    }
    free(c->cur);
    free(c->rx);
    free(c->text);
    free(c->lp);
    free(c->top);
    wire_builder_free(c->b);
    free(c);
}

int infer_fd(const struct infer_client *c)
{
    return c ? c->epfd : -EINVAL;
}

uint64_t infer_session_id(const struct infer_client *c)
{
    return c ? c->session_id : 0;
}

int infer_get_limits(const struct infer_client *c, struct infer_limits *out)
{
    if (!c || !out)
        return -EINVAL;
    *out = (struct infer_limits){
        .max_concurrent_requests = c->lim.max_concurrent_requests,
        .max_queued_tokens = c->lim.max_queued_tokens,
        .submit_ring_bytes = c->lim.submit_ring_bytes,
        .completion_ring_bytes = c->lim.completion_ring_bytes,
        .max_message_bytes = c->lim.max_message_bytes,
    };
    return 0;
}

/* ---- events ------------------------------------------------------------- */

int infer_poll_event(struct infer_client *c, struct infer_event *ev)
{
    if (!c || !ev)
        return -EINVAL;
    cl_disarm(c);
    for (;;) {
        /* Queued first: they arrived before anything still in the ring. */
        if (c->q_head) {
            struct cl_msg *m = c->q_head;
            c->q_head = m->next;
            if (!c->q_head)
                c->q_tail = NULL;
            free(c->cur);
            c->cur = (unsigned char *)m; /* m->data is 8-byte aligned in it */
            int rc = cl_decode_event(c, m->data, m->len, ev);
            if (rc != -ENOMSG)
                return rc;
            continue;
        }
        size_t len;
        int rc = cl_recv(c, &len);
        if (rc == 0) {
            rc = cl_decode_event(c, c->rx, len, ev);
            if (rc != -ENOMSG)
                return rc;
            continue;
        }
        if (rc != -EAGAIN)
            return rc;
        if (ring_wait_prepare(c->comp))
            continue;
        c->armed = true;
        if (!c->gone)
            cl_check_socket(c);
        /* Gone: the ring holds all the daemon ever wrote; one more look. */
        if (c->gone && ring_used(c->comp) == 0)
            return -ECONNRESET;
        if (c->gone)
            continue;
        return -EAGAIN;
    }
}

int infer_next_event(struct infer_client *c, struct infer_event *ev, int timeout_ms)
{
    if (!c || !ev)
        return -EINVAL;
    uint64_t deadline = timeout_ms < 0 ? 0 : cl_now_ns() + (uint64_t)timeout_ms * 1000000ull;
    for (;;) {
        cl_disarm(c);
        if (c->q_head) {
            int rc = infer_poll_event(c, ev);
            if (rc != -EAGAIN)
                return rc;
        }
        size_t len;
        int rc = cl_recv(c, &len);
        if (rc == 0) {
            rc = cl_decode_event(c, c->rx, len, ev);
            if (rc != -ENOMSG)
                return rc;
            continue;
        }
        if (rc != -EAGAIN)
            return rc;
        if (c->gone)
            return -ECONNRESET;
        rc = cl_wait_complete(c, deadline);
        if (rc)
            return rc;
    }
}
