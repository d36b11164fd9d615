/* doorbell.c - eventfd doorbells, the io_uring waiter, SCM_RIGHTS descriptor
 * passing and SO_PEERCRED (see doorbell.h). */
#include "doorbell.h"

#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

int doorbell_create(void)
{
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    return fd < 0 ? -errno : fd;
}

int doorbell_ring(int fd)
{
    uint64_t one = 1;
    for (;;) {
        ssize_t n = write(fd, &one, sizeof one);
        if (n == (ssize_t)sizeof one)
            return 0;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return 0; /* the counter is at its maximum: it has rung */
        return n < 0 ? -errno : -EIO;
    }
}

int64_t doorbell_drain(int fd)
{
    uint64_t v;
    for (;;) {
        ssize_t n = read(fd, &v, sizeof v);
        if (n == (ssize_t)sizeof v)
            return v > INT64_MAX ? INT64_MAX : (int64_t)v;
        if (n < 0 && errno == EINTR)
            continue;
        return n < 0 ? -errno : -EIO;
    }
}

int doorbell_wait(int fd, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int rc;
    do
        rc = poll(&p, 1, timeout_ms);
    while (rc < 0 && errno == EINTR);
    if (rc < 0)
        return -errno;
    if (rc == 0)
        return -ETIME;
    int64_t v = doorbell_drain(fd);
    /* -EAGAIN: another reader took the count between poll and read; the
     * doorbell did ring. */
    return v < 0 && v != -EAGAIN ? (int)v : 0;
}

/* ---- io_uring waiter ---------------------------------------------------- */

enum { DOORBELL_TAG_WAIT = 1, DOORBELL_TAG_CANCEL = 2 };

struct doorbell_waiter {
    struct io_uring ring;
    int fd;
    bool armed;    /* a read (or poll) of fd is in flight */
    bool use_poll; /* the kernel refused to wait in a read: poll, then read */
    uint64_t value; /* the in-flight read's destination */
};

static int doorbell_waiter_arm(struct doorbell_waiter *w)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);
    if (!sqe)
        return -EBUSY;
    if (w->use_poll)
        io_uring_prep_poll_add(sqe, w->fd, POLLIN);
    else
        io_uring_prep_read(sqe, w->fd, &w->value, sizeof w->value, 0);
    io_uring_sqe_set_data64(sqe, DOORBELL_TAG_WAIT);
    int rc = io_uring_submit(&w->ring);
    if (rc < 0)
        return rc;
    w->armed = true;
    return 0;
}

int doorbell_waiter_new(struct doorbell_waiter **out, int fd)
{
    if (!out || fd < 0)
        return -EINVAL;
    *out = NULL;
    struct doorbell_waiter *w = calloc(1, sizeof *w);
    if (!w)
        return -ENOMEM;
    int rc = io_uring_queue_init(4, &w->ring, 0);
    if (rc < 0) {
        free(w);
        return rc;
    }
    w->fd = fd;
    *out = w;
    return 0;
}

int doorbell_waiter_wait(struct doorbell_waiter *w, int64_t timeout_ns)
{
    if (!w)
        return -EINVAL;
    if (!w->armed) {
        int rc = doorbell_waiter_arm(w);
        if (rc < 0)
            return rc;
    }
    for (;;) {
        struct io_uring_cqe *cqe;
        int rc;
        if (timeout_ns < 0) {
            rc = io_uring_wait_cqe(&w->ring, &cqe);
        } else {
            struct __kernel_timespec ts = {
                .tv_sec = timeout_ns / 1000000000,
                .tv_nsec = timeout_ns % 1000000000,
            };
            rc = io_uring_wait_cqe_timeout(&w->ring, &cqe, &ts);
        }
        if (rc < 0)
            return rc; /* -ETIME: the read stays armed for the next call */
        uint64_t tag = cqe->user_data;
        int res = cqe->res;
        io_uring_cqe_seen(&w->ring, cqe);
        if (tag != DOORBELL_TAG_WAIT)
            continue;
        w->armed = false;
        if (res == -EAGAIN && !w->use_poll) {
            /* Older kernels honour O_NONBLOCK in io_uring reads. */
            w->use_poll = true;
            rc = doorbell_waiter_arm(w);
            if (rc < 0)
                return rc;
            continue;
        }
        if (res < 0)
            return res;
        if (w->use_poll) {
            int64_t v = doorbell_drain(w->fd);
            if (v < 0 && v != -EAGAIN)
                return (int)v;
        }
        return 0;
    }
}

void doorbell_waiter_free(struct doorbell_waiter *w)
{
    if (!w)
        return;
    if (w->armed) {
        /* The read targets w->value: it must be over before w is freed. */
        struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);
        if (sqe) {
            io_uring_prep_cancel64(sqe, DOORBELL_TAG_WAIT, 0);
            io_uring_sqe_set_data64(sqe, DOORBELL_TAG_CANCEL);
            io_uring_submit(&w->ring);
        }
        while (w->armed) {
            struct io_uring_cqe *cqe;
            int rc = io_uring_wait_cqe(&w->ring, &cqe);
            if (rc == -EINTR)
                continue;
            if (rc < 0)
                break;
            if (cqe->user_data == DOORBELL_TAG_WAIT)
                w->armed = false;
            io_uring_cqe_seen(&w->ring, cqe);
        }
    }
    io_uring_queue_exit(&w->ring);
    free(w);
}

/* ---- descriptor passing and credentials -------------------------------- */

/* Control buffer with room for twice the limit, so that a peer sending
 * extras is seen doing so (their descriptors arrive and are closed). */
union doorbell_cmsg {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int) * DOORBELL_FDS_MAX * 2)];
};

int doorbell_fds_send(int sock, const void *payload, size_t len, const int *fds,
                      size_t nfds)
{
    if (!payload || len == 0 || nfds > DOORBELL_FDS_MAX || (nfds && !fds))
        return -EINVAL;
    union doorbell_cmsg u;
    memset(&u, 0, sizeof u);
    struct iovec iov = {.iov_base = (void *)payload, .iov_len = len};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds) {
        m.msg_control = u.buf;
        m.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    size_t done = 0;
    while (done < len) {
        ssize_t n = sendmsg(sock, &m, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        /* The descriptors travelled with the first byte; the rest of a
         * payload split by a stream socket goes alone. */
        done += (size_t)n;
        iov.iov_base = (char *)payload + done;
        iov.iov_len = len - done;
        m.msg_control = NULL;
        m.msg_controllen = 0;
    }
    return 0;
}

static void doorbell_close_all(const int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        close(fds[i]);
}

int doorbell_fds_recv(int sock, void *buf, size_t cap, size_t *len, int *fds,
                      size_t nfds)
{
    if (!buf || cap == 0 || !len || nfds > DOORBELL_FDS_MAX || (nfds && !fds))
        return -EINVAL;
    union doorbell_cmsg u;
    struct iovec iov = {.iov_base = buf, .iov_len = cap};
    struct msghdr m = {
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = u.buf,
        .msg_controllen = sizeof u.buf,
    };
    ssize_t n;
    do
        n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;

    int got[DOORBELL_FDS_MAX * 2];
    size_t ngot = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
            c->cmsg_len < CMSG_LEN(0))
            continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            if (ngot < sizeof got / sizeof got[0])
                got[ngot++] = fd;
            else
                close(fd); /* cannot happen with this buffer; never leak */
        }
    }
    int rc = 0;
    if (n == 0)
        rc = -ECONNRESET;
    else if (m.msg_flags & MSG_TRUNC)
        rc = -EMSGSIZE;
    else if ((m.msg_flags & MSG_CTRUNC) || ngot != nfds)
        rc = -EBADMSG;
    if (rc < 0) {
        doorbell_close_all(got, ngot);
        return rc;
    }
    if (nfds)
        memcpy(fds, got, sizeof(int) * nfds);
    *len = (size_t)n;
    return 0;
}

int doorbell_peer_cred(int sock, struct ucred *out)
{
    if (!out)
        return -EINVAL;
    socklen_t sl = sizeof *out;
    if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, out, &sl) < 0)
        return -errno;
    return sl == sizeof *out ? 0 : -EIO;
}
