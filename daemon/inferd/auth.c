/* auth.c - the peer-credential policy (see auth.h). */
#include "auth.h"

#include "ipc/doorbell.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <unistd.h>

static void auth_add(uint32_t *ids, size_t *n, uint32_t id)
{
    for (size_t i = 0; i < *n; i++)
        if (ids[i] == id)
            return;
    if (*n < AUTH_MAX_IDS)
        ids[(*n)++] = id;
}

void auth_init(struct auth_policy *p, const uint32_t *uids, size_t n_uids, const uint32_t *gids,
               size_t n_gids)
{
    p->n_uids = 0;
    p->n_gids = 0;
    auth_add(p->uids, &p->n_uids, 0);
    auth_add(p->uids, &p->n_uids, (uint32_t)geteuid());
    for (size_t i = 0; i < n_uids; i++)
        auth_add(p->uids, &p->n_uids, uids[i]);
    for (size_t i = 0; i < n_gids; i++)
        auth_add(p->gids, &p->n_gids, gids[i]);
}

static bool auth_has(const uint32_t *ids, size_t n, uint32_t id)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] == id)
            return true;
    return false;
}

int auth_check(const struct auth_policy *p, int sock, struct ucred *cred, char *why,
               size_t whylen)
{
    int rc = doorbell_peer_cred(sock, cred);
    if (rc < 0) {
        snprintf(why, whylen, "cannot read the peer's credentials");
        return rc;
    }
    if (auth_has(p->uids, p->n_uids, (uint32_t)cred->uid) ||
        auth_has(p->gids, p->n_gids, (uint32_t)cred->gid))
        return 0;
    if (p->n_gids) {
        gid_t groups[256];
        socklen_t len = sizeof groups;
        if (getsockopt(sock, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == 0) {
            for (size_t i = 0; i < len / sizeof groups[0]; i++)
                if (auth_has(p->gids, p->n_gids, (uint32_t)groups[i]))
                    return 0;
        }
        /* ERANGE (more than 256 groups) or an old kernel: primary group only. */
    }
    snprintf(why, whylen, "uid %u (gid %u) is not allowed by the access policy",
             (unsigned)cred->uid, (unsigned)cred->gid);
    return -EACCES;
}
