/* auth.h - who may connect to inferd: a policy over the peer credentials of
 * a Unix socket (SO_PEERCRED, and SO_PEERGROUPS for supplementary groups).
 *
 * Allowed: root, the daemon's own effective uid, every uid the policy lists,
 * and any process whose primary or supplementary group is listed. The
 * socket file's mode and directory are the first gate; this is the second.
 */
#ifndef INFERD_AUTH_H
#define INFERD_AUTH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define AUTH_MAX_IDS 66

struct auth_policy {
    uint32_t uids[AUTH_MAX_IDS];
    size_t n_uids;
    uint32_t gids[AUTH_MAX_IDS];
    size_t n_gids;
};

/* The default policy (root and the daemon's euid) plus the given ids
 * (extra entries beyond AUTH_MAX_IDS are ignored). */
void auth_init(struct auth_policy *p, const uint32_t *uids, size_t n_uids, const uint32_t *gids,
               size_t n_gids);

/* Checks the peer of a connected Unix socket. 0 when allowed (*cred
 * filled), -EACCES when the policy refuses it (why says so), -errno when
 * the credentials cannot be read. */
int auth_check(const struct auth_policy *p, int sock, struct ucred *cred, char *why,
               size_t whylen);

#endif
