/* server.h - inferd's IPC thread: one io_uring event loop that accepts
 * clients on a SOCK_SEQPACKET Unix socket, checks them against the access
 * policy, hands each its session (sealed memfd + two eventfds), watches the
 * doorbells and the sockets (hang-up), routes engine events back into the
 * completion rings, keeps house on a timer and drains on SIGTERM/SIGINT.
 *
 * Waiting: after the last activity the loop busy-polls every session's
 * submission ring and the engine outbox for cfg->spin_us; then it announces
 * NEED_WAKEUP on every ring (ring_wait_prepare) and sleeps in
 * io_uring_submit_and_wait() on the armed doorbell reads, socket polls, the
 * outbox eventfd, the signalfd and a timeout.
 */
#ifndef INFERD_SERVER_H
#define INFERD_SERVER_H

#include <stddef.h>

#include "config.h"
#include "dstats.h"
#include "worker.h"

/* Creates the listening socket at cfg->socket_path (a stale socket file is
 * replaced; anything else there is an error) with cfg->socket_mode. The
 * listening fd or -errno (msg filled). */
int srv_listen(const struct inferd_config *cfg, char *msg, size_t msglen);

/* Runs the loop until a drain completes. SIGTERM and SIGINT must already be
 * blocked in every thread (the loop reads them from a signalfd). Takes the
 * listening socket (closes it and unlinks the path when draining starts).
 * stats: the daemon's figures (the Stats message; the echo engine counts
 * its requests there). 0 on a clean drain, -errno when the loop could not
 * start. */
int srv_run(const struct inferd_config *cfg, int lfd, struct worker **workers, size_t n_workers,
            struct wk_outbox *ob, struct dstats_src *stats);

#endif
