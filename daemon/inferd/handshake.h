/* handshake.h - the first two messages on an inferd socket, shared by the
 * daemon and libinferclient.
 *
 * The socket is SOCK_SEQPACKET. After connect() the daemon sends:
 *   1. struct hs_msg with status 0 (accepted) or a negative errno and a
 *      message (refused: the policy, too many sessions, shutting down), no
 *      descriptors; on refusal the daemon then closes the socket;
 *   2. when accepted, struct hs_msg again carrying exactly HS_NFDS
 *      descriptors with SCM_RIGHTS, in the order of enum hs_fd.
 * From then on everything goes through the shared-memory rings (the first
 * message on the submission ring is Hello); the socket only tells either
 * side that the other one has gone (hang-up). A client that writes on the
 * socket after the handshake is dropped.
 */
#ifndef INFERD_HANDSHAKE_H
#define INFERD_HANDSHAKE_H

#include <assert.h>
#include <stdint.h>

#define HS_MAGIC 0x48464e49u /* "INFH", little-endian */
#define HS_VERSION 1u

enum hs_fd {
    HS_FD_REGION = 0,      /* the sealed memfd (ipc/shm.h) */
    HS_FD_DAEMON_BELL = 1, /* eventfd the daemon waits on */
    HS_FD_CLIENT_BELL = 2, /* eventfd the client waits on */
    HS_NFDS = 3,
};

struct hs_msg {
    uint32_t magic;   /* HS_MAGIC */
    uint32_t version; /* HS_VERSION */
    int32_t status;   /* 0 or -errno (-EACCES: refused by the policy) */
    uint32_t reserved;
    uint64_t session_id;
    char message[112]; /* NUL-terminated reason on refusal */
};

static_assert(sizeof(struct hs_msg) == 136, "handshake layout");

#endif
