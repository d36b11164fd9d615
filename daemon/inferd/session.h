/* session.h - one connected client, as the IPC thread sees it: its sealed
 * shared-memory region and rings, its doorbells, its live requests and
 * quotas, and the messages waiting for room in its completion ring.
 *
 * Everything here runs on the IPC thread. Shared memory is hostile input:
 * messages are copied out by ring_recv() into the session's private buffer
 * and verified by wire_read() before anything looks at them; a malformed
 * message gets Error(BadMessage) and the session lives on; an impossible
 * ring (-EPROTO) ends the session. Nothing a client sends can block the
 * thread: rings never wait, replies that do not fit go to a bounded
 * backlog, and each pump handles a bounded number of messages.
 */
#ifndef INFERD_SESSION_H
#define INFERD_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "dstats.h"
#include "ipc/ring.h"
#include "ipc/shm.h"
#include "ipc/wire.h"
#include "worker.h"

/* Messages handled per session per pump (fairness between sessions). */
#define SESS_PUMP_BUDGET 64
/* Request validation limits. */
#define SESS_MAX_STOP 16
#define SESS_MAX_STOP_BYTES 256
#define SESS_MAX_SALT_BYTES 256
#define SESS_MAX_LOGPROBS 100
/* The ceiling of the max-n setting (parallel samples per request). */
#define SESS_MAX_N_CAP 1024

/* What the sessions share: settings, engines, the message builder, and
 * the daemon's figures (the echo engine counts its requests there). */
struct sess_ctx {
    const struct inferd_config *cfg;
    struct worker **workers; /* one per model; none in echo mode */
    size_t n_workers;
    struct dstats_src *stats; /* the Stats message's source */
    struct wire_builder *b;  /* one builder: the IPC thread is alone */
    uint64_t next_ticket;
    uint64_t next_session;
    bool draining;           /* SIGTERM: new requests are refused */
    uint64_t live_requests;  /* over all sessions */
};

enum sess_state {
    SESS_NEW = 0, /* waiting for Hello */
    SESS_READY,
    SESS_CLOSING, /* requests dropped; io_uring operations being cancelled */
};

/* An io_uring operation owned by a session or the server. */
struct srv_op {
    int kind;
    struct sess *s;
};

struct sess_req;
struct sess_out;

struct sess {
    uint64_t id;
    uint32_t index; /* in the server's table */
    enum sess_state state;
    int sock;
    int bell_daemon; /* the client rings it; we read it */
    int bell_client; /* we ring it */
    struct shm_region *shm;
    struct ring *sub, *comp;
    struct ucred cred;
    uint64_t created_ns;
    uint32_t version;
    struct wire_limits lim;

    struct sess_req *reqs; /* lim.max_concurrent entries, n_reqs used */
    uint32_t n_reqs;
    uint32_t n_seqs; /* samples over the live requests (each request has n) */
    uint64_t queued_tokens;

    struct sess_out *out_head, *out_tail; /* backlog, in order */
    size_t out_bytes;
    bool overflowed; /* backlog past its limit: requests cancelled */

    unsigned char *rx; /* private copy of the message being handled */
    size_t rx_cap;

    /* io_uring bookkeeping (server.c) */
    struct srv_op op_bell, op_sock;
    uint64_t bell_val;
    bool bell_armed, sock_armed, bell_poll;
    const char *close_reason;
};

/* The granted limits for a new session, from the settings. */
void sess_default_limits(const struct inferd_config *cfg, struct wire_limits *lim);

/* A new session on an accepted socket: region, rings, doorbells. The
 * socket is the session's from then on (also on failure: closed). */
int sess_new(struct sess_ctx *ctx, int sock, const struct ucred *cred, struct sess **out);
/* Unmaps and closes everything. The session's requests must be gone
 * (sess_close_begin) and no io_uring operation may be in flight. */
void sess_free(struct sess *s);

/* Handles up to SESS_PUMP_BUDGET messages and flushes the backlog.
 * Returns how much it did (0: nothing), or -EPROTO / -EPIPE when the
 * session must end (its close_reason says why). */
int sess_pump(struct sess_ctx *ctx, struct sess *s);

/* Routes one engine event to its request; unknown ones are dropped. */
int sess_on_event(struct sess_ctx *ctx, struct sess *s, const struct wk_event *ev);

/* Before sleeping: announces the wait on the submission ring (and on the
 * completion ring when the backlog waits for room). 1: do not sleep. */
int sess_wait_prepare(struct sess *s);

/* Ends the session's requests in the engines (within one step). Idempotent. */
void sess_close_begin(struct sess_ctx *ctx, struct sess *s, const char *reason);

/* Sends Error(code) about the session (request id 0); best effort. */
void sess_send_session_error(struct sess_ctx *ctx, struct sess *s, enum wire_error_code code,
                             const char *msg);

/* Cancels every live request (drain timeout). */
void sess_cancel_all(struct sess_ctx *ctx, struct sess *s);

static inline bool sess_backlog_empty(const struct sess *s)
{
    return s->out_head == NULL;
}

#endif
