/* doorbell.h - how the two sides of a session wake and find each other:
 * eventfd doorbells, a small io_uring waiter on one doorbell, passing file
 * descriptors over a Unix socket (SCM_RIGHTS) and reading the peer's
 * credentials (SO_PEERCRED).
 *
 * Every function returns a negative errno on failure and never prints.
 * Every descriptor it creates or receives is close-on-exec.
 */
#ifndef INFERD_IPC_DOORBELL_H
#define INFERD_IPC_DOORBELL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Most descriptors one doorbell_fds_send / _recv moves. */
#define DOORBELL_FDS_MAX 8

/* A new doorbell: eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK). fd or -errno. */
int doorbell_create(void);
/* Adds 1 to the doorbell's counter. A full counter already means "rung":
 * 0 then too. */
int doorbell_ring(int fd);
/* Reads and clears the counter without blocking: its value (> 0), or
 * -EAGAIN when nothing has rung. */
int64_t doorbell_drain(int fd);
/* Blocks in poll() until the doorbell rings or timeout_ms passes (-1:
 * forever), then drains it. 0 when rung, -ETIME on timeout. */
int doorbell_wait(int fd, int timeout_ms);

/* A waiter on one doorbell through its own io_uring: a read of the eventfd
 * stays armed between calls (so a ring is never missed), and each wait
 * bounds itself with a timeout. The daemon's loop will own its ring; this is
 * the client-side / test helper. */
struct doorbell_waiter;
int doorbell_waiter_new(struct doorbell_waiter **out, int fd);
/* 0 when the doorbell rang (the counter is consumed), -ETIME when
 * timeout_ns (< 0: forever) passed first. */
int doorbell_waiter_wait(struct doorbell_waiter *w, int64_t timeout_ns);
/* Cancels the armed read, waits for it to finish, frees. NULL is fine. */
void doorbell_waiter_free(struct doorbell_waiter *w);

/* Sends payload[0..len) (1 byte at least) with nfds descriptors
 * (<= DOORBELL_FDS_MAX) over a connected Unix socket, in one message. */
int doorbell_fds_send(int sock, const void *payload, size_t len, const int *fds,
                      size_t nfds);
/* Receives one message: the payload into buf[0..cap) (its size in *len)
 * and exactly nfds descriptors into fds (close-on-exec). Any other number of
 * descriptors (extras, too few, truncated control data) closes every one
 * that arrived and returns -EBADMSG; a truncated payload is -EMSGSIZE (the
 * descriptors are closed too); the peer's hang-up is -ECONNRESET. */
int doorbell_fds_recv(int sock, void *buf, size_t cap, size_t *len, int *fds,
                      size_t nfds);

/* The credentials of the process at the other end of a Unix socket, as of
 * connect() / socketpair(). */
int doorbell_peer_cred(int sock, struct ucred *out);

#endif
