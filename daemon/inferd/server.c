/* server.c - the IPC event loop of inferd (see server.h). */
#include "server.h"

#include "auth.h"
#include "handshake.h"
#include "ipc/doorbell.h"
#include "session.h"

#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

enum srv_op_kind {
    OP_IGNORE = 0, /* completions of cancel requests */
    OP_ACCEPT,
    OP_SIGNAL,
    OP_TIMER,
    OP_OUTBOX,
    OP_BELL,
    OP_SOCK,
};

#define SRV_TICK_NS 100000000ll    /* housekeeping period */
#define SRV_FLUSH_NS 2000000000ull /* drain: how long backlogs may take to empty */
#define SRV_ID_BITS 16             /* low bits of a session id: its table index */

struct srv {
    const struct inferd_config *cfg;
    struct sess_ctx ctx;
    struct auth_policy pol;
    struct io_uring ring;
    struct wk_outbox *ob;
    int lfd, sfd;

    struct sess **slots; /* max_sessions; NULL: free */
    uint32_t n_sessions; /* allocated, closing ones included */
    struct sess **live;  /* not closing, dense, for the pump */
    uint32_t n_live;

    struct srv_op op_accept, op_signal, op_timer, op_outbox;
    bool accept_armed, accept_paused, signal_armed, timer_armed, outbox_armed;
    struct __kernel_timespec tick;

    bool stopping;
    bool cancelled_all;
    uint64_t drain_deadline, flush_deadline;
};

static void srv_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("inferd: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static inline void srv_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* ---- the listening socket ----------------------------------------------- */

int srv_listen(const struct inferd_config *cfg, char *msg, size_t msglen)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", cfg->socket_path);
    struct stat st;
    if (lstat(a.sun_path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(msg, msglen, "%s exists and is not a socket", a.sun_path);
            return -EEXIST;
        }
        /* A socket file: live if someone accepts on it. */
        int probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (probe >= 0) {
            int live = connect(probe, (struct sockaddr *)&a, sizeof a) == 0;
            close(probe);
            if (live) {
                snprintf(msg, msglen, "another daemon listens on %s", a.sun_path);
                return -EADDRINUSE;
            }
        }
        unlink(a.sun_path);
    }
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(msg, msglen, "socket: %s", strerror(errno));
        return -errno;
    }
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        chmod(a.sun_path, (mode_t)cfg->socket_mode) < 0 || listen(fd, 128) < 0) {
        int rc = -errno;
        snprintf(msg, msglen, "%s: %s", a.sun_path, strerror(errno));
        close(fd);
        return rc;
    }
    return fd;
}

/* ---- io_uring operations ------------------------------------------------ */

static struct io_uring_sqe *srv_sqe(struct srv *v)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&v->ring);
    if (!sqe) {
        io_uring_submit(&v->ring);
        sqe = io_uring_get_sqe(&v->ring);
    }
    return sqe;
}

static void srv_arm_poll(struct srv *v, int fd, unsigned events, struct srv_op *op, bool *armed)
{
    struct io_uring_sqe *sqe = srv_sqe(v);
    if (!sqe)
        return; /* retried by the housekeeping tick */
    io_uring_prep_poll_add(sqe, fd, events);
    io_uring_sqe_set_data(sqe, op);
    *armed = true;
}

static void srv_arm_bell(struct srv *v, struct sess *s)
{
    if (s->bell_poll) {
        srv_arm_poll(v, s->bell_daemon, POLLIN, &s->op_bell, &s->bell_armed);
        return;
    }
    struct io_uring_sqe *sqe = srv_sqe(v);
    if (!sqe)
        return;
    io_uring_prep_read(sqe, s->bell_daemon, &s->bell_val, sizeof s->bell_val, 0);
    io_uring_sqe_set_data(sqe, &s->op_bell);
    s->bell_armed = true;
}

static void srv_arm_accept(struct srv *v)
{
    if (v->lfd < 0 || v->accept_armed || v->stopping)
        return;
    struct io_uring_sqe *sqe = srv_sqe(v);
    if (!sqe)
        return;
    io_uring_prep_accept(sqe, v->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    io_uring_sqe_set_data(sqe, &v->op_accept);
    v->accept_armed = true;
}

static void srv_arm_timer(struct srv *v)
{
    struct io_uring_sqe *sqe = srv_sqe(v);
    if (!sqe)
        return;
    io_uring_prep_timeout(sqe, &v->tick, 0, 0);
    io_uring_sqe_set_data(sqe, &v->op_timer);
    v->timer_armed = true;
}

static void srv_cancel_op(struct srv *v, struct srv_op *op)
{
    struct io_uring_sqe *sqe = srv_sqe(v);
    if (!sqe)
        return;
    io_uring_prep_cancel(sqe, op, 0);
    io_uring_sqe_set_data(sqe, NULL);
}

/* ---- sessions ----------------------------------------------------------- */

static struct sess *srv_find(struct srv *v, uint64_t id)
{
    uint64_t idx = id & ((1u << SRV_ID_BITS) - 1);
    if (idx >= v->cfg->max_sessions)
        return NULL;
    struct sess *s = v->slots[idx];
    return s && s->id == id ? s : NULL;
}

static void srv_maybe_free(struct srv *v, struct sess *s)
{
    if (s->state != SESS_CLOSING || s->bell_armed || s->sock_armed)
        return;
    v->slots[s->index] = NULL;
    v->n_sessions--;
    sess_free(s);
}

/* Ends a session: its requests are dropped in the engines now; the memory
 * goes once its io_uring operations have completed. */
static void srv_close(struct srv *v, struct sess *s, const char *reason)
{
    if (s->state == SESS_CLOSING)
        return;
    if (v->cfg->verbose)
        srv_log("session %llu (uid %u pid %d) closed: %s", (unsigned long long)s->id,
                (unsigned)s->cred.uid, (int)s->cred.pid, reason);
    sess_close_begin(&v->ctx, s, reason);
    for (uint32_t i = 0; i < v->n_live; i++)
        if (v->live[i] == s) {
            v->live[i] = v->live[--v->n_live];
            break;
        }
    if (s->bell_armed)
        srv_cancel_op(v, &s->op_bell);
    if (s->sock_armed)
        srv_cancel_op(v, &s->op_sock);
    srv_maybe_free(v, s);
}

static void srv_refuse(int fd, int status, const char *why)
{
    struct hs_msg m = {.magic = HS_MAGIC, .version = HS_VERSION, .status = status};
    size_t n = strlen(why);
    if (n >= sizeof m.message)
        n = sizeof m.message - 1;
    memcpy(m.message, why, n);
    (void)send(fd, &m, sizeof m, MSG_NOSIGNAL | MSG_DONTWAIT);
    close(fd);
}

static void srv_accept(struct srv *v, int fd)
{
    struct ucred cred;
    char why[128];
    int rc = auth_check(&v->pol, fd, &cred, why, sizeof why);
    if (rc) {
        if (v->cfg->verbose)
            srv_log("refused a client: %s", why);
        srv_refuse(fd, rc, why);
        return;
    }
    if (v->stopping) {
        srv_refuse(fd, -ESHUTDOWN, "the daemon is shutting down");
        return;
    }
    uint32_t idx = 0, same_uid = 0;
    for (uint32_t i = 0; i < v->cfg->max_sessions; i++)
        same_uid += v->slots[i] && v->slots[i]->cred.uid == cred.uid;
    if (same_uid >= v->cfg->max_sessions_per_uid) {
        snprintf(why, sizeof why, "too many sessions for uid %u (the limit is %u)",
                 (unsigned)cred.uid, v->cfg->max_sessions_per_uid);
        srv_refuse(fd, -EUSERS, why);
        return;
    }
    while (idx < v->cfg->max_sessions && v->slots[idx])
        idx++;
    if (idx == v->cfg->max_sessions) {
        snprintf(why, sizeof why, "too many sessions (the limit is %u)", v->cfg->max_sessions);
        srv_refuse(fd, -EUSERS, why);
        return;
    }
    struct sess *s;
    if ((rc = sess_new(&v->ctx, fd, &cred, &s))) {
        srv_log("cannot create a session: %s", strerror(-rc));
        return; /* sess_new closed fd */
    }
    s->index = idx;
    s->id = (++v->ctx.next_session << SRV_ID_BITS) | idx;
    s->op_bell = (struct srv_op){OP_BELL, s};
    s->op_sock = (struct srv_op){OP_SOCK, s};
    struct hs_msg m = {.magic = HS_MAGIC, .version = HS_VERSION, .session_id = s->id};
    int fds[HS_NFDS];
    fds[HS_FD_REGION] = shm_fd(s->shm);
    fds[HS_FD_DAEMON_BELL] = s->bell_daemon;
    fds[HS_FD_CLIENT_BELL] = s->bell_client;
    if (send(fd, &m, sizeof m, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)sizeof m ||
        (rc = doorbell_fds_send(fd, &m, sizeof m, fds, HS_NFDS)) < 0) {
        if (v->cfg->verbose)
            srv_log("handshake with pid %d failed", (int)cred.pid);
        sess_free(s);
        return;
    }
    v->slots[idx] = s;
    v->n_sessions++;
    v->live[v->n_live++] = s;
    srv_arm_bell(v, s);
    srv_arm_poll(v, s->sock, POLLIN | POLLRDHUP, &s->op_sock, &s->sock_armed);
    if (v->cfg->verbose)
        srv_log("session %llu: uid %u pid %d", (unsigned long long)s->id, (unsigned)cred.uid,
                (int)cred.pid);
}

/* The socket became readable: a hang-up, or bytes a client may not send. */
static void srv_sock_event(struct srv *v, struct sess *s, int res)
{
    char b[64];
    ssize_t n = res < 0 ? -1 : recv(s->sock, b, sizeof b, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR) && res >= 0) {
        srv_arm_poll(v, s->sock, POLLIN | POLLRDHUP, &s->op_sock, &s->sock_armed);
        return;
    }
    if (n > 0) {
        sess_send_session_error(&v->ctx, s, WIRE_ERR_BAD_MESSAGE,
                                "data on the socket after the handshake; closing the session");
        srv_close(v, s, "data on the socket");
        return;
    }
    srv_close(v, s, "hang-up");
}

/* ---- engine events ------------------------------------------------------ */

static int srv_outbox(struct srv *v)
{
    struct wk_event *l = wk_outbox_take(v->ob);
    int n = 0;
    for (struct wk_event *ev = l; ev; ev = ev->next, n++) {
        struct sess *s = srv_find(v, ev->sess_id);
        if (s && s->state != SESS_CLOSING && sess_on_event(&v->ctx, s, ev) < 0)
            srv_close(v, s, s->close_reason ? s->close_reason : "protocol error");
    }
    wk_event_free_list(l);
    return n;
}

/* ---- draining ----------------------------------------------------------- */

static void srv_begin_drain(struct srv *v)
{
    if (v->stopping) {
        /* A second signal: cancel what still runs. */
        if (!v->cancelled_all) {
            srv_log("second signal: cancelling %llu requests",
                    (unsigned long long)v->ctx.live_requests);
            v->drain_deadline = 0;
        }
        return;
    }
    srv_log("draining: %llu requests in flight, %u sessions",
            (unsigned long long)v->ctx.live_requests, v->n_sessions);
    v->stopping = true;
    v->ctx.draining = true;
    v->drain_deadline = sched_now_ns() + (uint64_t)v->cfg->drain_timeout_ms * 1000000ull;
    if (v->accept_armed)
        srv_cancel_op(v, &v->op_accept);
    if (v->lfd >= 0) {
        close(v->lfd);
        v->lfd = -1;
        unlink(v->cfg->socket_path);
    }
}

/* One drain step; true when the loop may end. */
static bool srv_drain_step(struct srv *v)
{
    uint64_t now = sched_now_ns();
    if (v->ctx.live_requests) {
        if (now < v->drain_deadline || v->cancelled_all)
            return false;
        for (size_t i = 0; i < v->ctx.n_workers; i++)
            (void)wk_cancel_all(v->ctx.workers[i]);
        v->cancelled_all = true;
        return false;
    }
    /* Every request has its terminal event queued: let the backlogs reach
     * the rings, then close. */
    if (!v->flush_deadline)
        v->flush_deadline = now + SRV_FLUSH_NS;
    bool pending = false;
    for (uint32_t i = 0; i < v->n_live; i++)
        pending |= !sess_backlog_empty(v->live[i]);
    if (pending && now < v->flush_deadline)
        return false;
    while (v->n_live)
        srv_close(v, v->live[0], "the daemon is shutting down");
    return v->n_sessions == 0 && !v->accept_armed;
}

/* ---- housekeeping ------------------------------------------------------- */

static void srv_tick(struct srv *v)
{
    uint64_t now = sched_now_ns();
    uint64_t hello_ns = (uint64_t)v->cfg->hello_timeout_ms * 1000000ull;
    for (uint32_t i = 0; i < v->n_live;) {
        struct sess *s = v->live[i];
        if (s->state == SESS_NEW && now - s->created_ns > hello_ns) {
            sess_send_session_error(&v->ctx, s, WIRE_ERR_BAD_MESSAGE, "no Hello in time");
            srv_close(v, s, "no Hello in time");
            continue; /* live[i] is another session now */
        }
        /* Re-arm what a full submission queue may have left unarmed. */
        if (!s->bell_armed)
            srv_arm_bell(v, s);
        if (!s->sock_armed)
            srv_arm_poll(v, s->sock, POLLIN | POLLRDHUP, &s->op_sock, &s->sock_armed);
        i++;
    }
    if (v->accept_paused) {
        v->accept_paused = false;
        srv_arm_accept(v);
    }
    if (!v->outbox_armed)
        srv_arm_poll(v, v->ob->efd, POLLIN, &v->op_outbox, &v->outbox_armed);
    if (!v->signal_armed)
        srv_arm_poll(v, v->sfd, POLLIN, &v->op_signal, &v->signal_armed);
}

/* ---- completions -------------------------------------------------------- */

static void srv_complete(struct srv *v, struct srv_op *op, int res)
{
    if (!op)
        return;
    struct sess *s = op->s;
    switch (op->kind) {
    case OP_ACCEPT:
        v->accept_armed = false;
        if (res >= 0) {
            srv_accept(v, res);
        } else if (res != -ECANCELED && res != -EAGAIN && res != -EINTR &&
                   res != -ECONNABORTED) {
            srv_log("accept: %s", strerror(-res));
            v->accept_paused = true; /* e.g. out of descriptors: retry on the tick */
            return;
        }
        srv_arm_accept(v);
        break;
    case OP_SIGNAL: {
        v->signal_armed = false;
        struct signalfd_siginfo si;
        while (read(v->sfd, &si, sizeof si) == (ssize_t)sizeof si)
            if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
                srv_begin_drain(v);
        srv_arm_poll(v, v->sfd, POLLIN, &v->op_signal, &v->signal_armed);
        break;
    }
    case OP_TIMER:
        v->timer_armed = false;
        srv_tick(v);
        srv_arm_timer(v);
        break;
    case OP_OUTBOX:
        v->outbox_armed = false;
        (void)doorbell_drain(v->ob->efd);
        srv_outbox(v);
        srv_arm_poll(v, v->ob->efd, POLLIN, &v->op_outbox, &v->outbox_armed);
        break;
    case OP_BELL:
        s->bell_armed = false;
        if (s->state == SESS_CLOSING) {
            srv_maybe_free(v, s);
            return;
        }
        /* -ECANCELED on a live session: a cancellation aimed at an earlier
         * session at this address; the operation is simply re-armed. */
        if (res == -EAGAIN && !s->bell_poll)
            s->bell_poll = true; /* the kernel will not wait in a read of it */
        else if (s->bell_poll)
            (void)doorbell_drain(s->bell_daemon);
        srv_arm_bell(v, s); /* the pump looks at the rings */
        break;
    case OP_SOCK:
        s->sock_armed = false;
        if (s->state == SESS_CLOSING) {
            srv_maybe_free(v, s);
            return;
        }
        if (res == -ECANCELED) /* aimed at an earlier session (see OP_BELL) */
            srv_arm_poll(v, s->sock, POLLIN | POLLRDHUP, &s->op_sock, &s->sock_armed);
        else
            srv_sock_event(v, s, res);
        break;
    default:
        break;
    }
}

static int srv_reap(struct srv *v)
{
    struct io_uring_cqe *cqe;
    int n = 0;
    while (io_uring_peek_cqe(&v->ring, &cqe) == 0) {
        struct srv_op *op = io_uring_cqe_get_data(cqe);
        int res = cqe->res;
        io_uring_cqe_seen(&v->ring, cqe);
        srv_complete(v, op, res);
        n++;
    }
    return n;
}

static int srv_pump_all(struct srv *v)
{
    int work = 0;
    for (uint32_t i = 0; i < v->n_live;) {
        struct sess *s = v->live[i];
        int rc = sess_pump(&v->ctx, s);
        if (rc < 0) {
            srv_close(v, s, s->close_reason ? s->close_reason : "protocol error");
            work++;
            continue; /* live[i] is another session now */
        }
        work += rc;
        i++;
    }
    return work;
}

/* Announces NEED_WAKEUP everywhere; false when something arrived meanwhile. */
static bool srv_may_sleep(struct srv *v)
{
    for (uint32_t i = 0; i < v->n_live; i++)
        if (sess_wait_prepare(v->live[i]))
            return false;
    /* Acquire: pairs with the worker's release store after its push. */
    return !atomic_load_explicit(&v->ob->pending, memory_order_acquire);
}

static int srv_loop(struct srv *v)
{
    /* Adaptive spin (as in the client): after an idle gap longer than
     * spin_ns that was slept through, the next spin is halved; a gap
     * shorter than spin_ns restores it. */
    const uint64_t spin_max = (uint64_t)v->cfg->spin_us * 1000ull;
    uint64_t spin_ns = spin_max;
    bool slept = false;
    uint64_t last = sched_now_ns();
    for (;;) {
        int work = srv_reap(v);
        /* Acquire: pairs with the worker's release store after its push. */
        if (atomic_load_explicit(&v->ob->pending, memory_order_acquire))
            work += srv_outbox(v);
        work += srv_pump_all(v);
        if (v->stopping && srv_drain_step(v))
            break;
        if (io_uring_sq_ready(&v->ring))
            io_uring_submit(&v->ring);
        uint64_t now = sched_now_ns();
        if (work) {
            if (slept)
                spin_ns = now - last <= spin_max ? spin_max : spin_ns / 2;
            slept = false;
            last = now;
            continue;
        }
        if (now - last < spin_ns) {
            srv_relax();
            continue;
        }
        if (!srv_may_sleep(v))
            continue;
        slept = true;
        int rc = io_uring_submit_and_wait(&v->ring, 1);
        if (rc < 0 && rc != -EINTR && rc != -ETIME && rc != -EBUSY) {
            srv_log("io_uring: %s", strerror(-rc));
            return rc;
        }
    }
    return 0;
}

int srv_run(const struct inferd_config *cfg, int lfd, struct worker **workers, size_t n_workers,
            struct wk_outbox *ob, struct dstats_src *stats)
{
    struct srv *v = calloc(1, sizeof *v);
    if (!v) {
        close(lfd);
        return -ENOMEM;
    }
    v->cfg = cfg;
    v->lfd = lfd;
    v->sfd = -1;
    v->ob = ob;
    v->ctx.cfg = cfg;
    v->ctx.workers = workers;
    v->ctx.n_workers = n_workers;
    v->ctx.stats = stats;
    v->op_accept = (struct srv_op){OP_ACCEPT, NULL};
    v->op_signal = (struct srv_op){OP_SIGNAL, NULL};
    v->op_timer = (struct srv_op){OP_TIMER, NULL};
    v->op_outbox = (struct srv_op){OP_OUTBOX, NULL};
    v->tick = (struct __kernel_timespec){.tv_sec = 0, .tv_nsec = SRV_TICK_NS};
    auth_init(&v->pol, cfg->allow_uids, cfg->n_allow_uids, cfg->allow_gids, cfg->n_allow_gids);
    int rc = -ENOMEM;
    v->slots = calloc(cfg->max_sessions, sizeof *v->slots);
    v->live = calloc(cfg->max_sessions, sizeof *v->live);
    v->ctx.b = wire_builder_new(cfg->max_message_bytes);
    if (!v->slots || !v->live || !v->ctx.b)
        goto out;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    v->sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (v->sfd < 0) {
        rc = -errno;
        goto out;
    }
    /* Entries: per session a doorbell read and a socket poll, plus the
     * server's own and room for the cancellations of closing sessions. */
    unsigned entries = 64;
    while (entries < 4 * cfg->max_sessions + 64 && entries < 16384)
        entries *= 2;
    if ((rc = io_uring_queue_init(entries, &v->ring, 0)) < 0)
        goto out;
    srv_arm_accept(v);
    srv_arm_timer(v);
    srv_arm_poll(v, ob->efd, POLLIN, &v->op_outbox, &v->outbox_armed);
    srv_arm_poll(v, v->sfd, POLLIN, &v->op_signal, &v->signal_armed);
    io_uring_submit(&v->ring);
    srv_log("listening on %s (%s)", cfg->socket_path, cfg->echo ? "echo engine" : "ready");
    rc = srv_loop(v);
    /* Whatever is left (an error exit) goes now; the sessions' in-flight
     * operations end with the ring. */
    while (v->n_live)
        srv_close(v, v->live[0], "exit");
    io_uring_queue_exit(&v->ring);
    for (uint32_t i = 0; i < cfg->max_sessions; i++)
        sess_free(v->slots[i]);
out:
    if (v->lfd >= 0) {
        close(v->lfd);
        unlink(cfg->socket_path);
    }
    if (v->sfd >= 0)
        close(v->sfd);
    wire_builder_free(v->ctx.b);
    free(v->slots);
    free(v->live);
    free(v);
    return rc;
}
