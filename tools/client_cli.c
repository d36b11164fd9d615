/* client_cli.c - see client_cli.h. */
#include "client_cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *ccli_socket(const char *opt)
{
    if (opt && *opt)
        return opt;
    const char *env = getenv("INFERD_SOCKET");
    return env && *env ? env : "/run/inferd.sock";
}

int ccli_connect(const char *cmd, const char *path, const struct infer_connect_opts *opts,
                 struct infer_client **out)
{
    int rc = infer_connect(path, opts, out);
    if (rc == 0)
        return 0;
    const char *why = strerror(-rc);
    if (rc == -EACCES)
        why = "the daemon's access policy (or the socket's permissions) refuses this user";
    else if (rc == -ENOENT || rc == -ECONNREFUSED)
        why = "no daemon listens there";
    else if (rc == -EUSERS)
        why = "the daemon has too many sessions";
    else if (rc == -ESHUTDOWN)
        why = "the daemon is shutting down";
    fprintf(stderr, "inferctl %s: cannot connect to %s: %s\n", cmd, path, why);
    return rc;
}

const char *ccli_finish(enum infer_finish f)
{
    switch (f) {
    case INFER_FINISH_EOS: return "eos";
    case INFER_FINISH_STOP: return "stop";
    case INFER_FINISH_CANCELLED: return "cancelled";
    default: return "length";
    }
}

uint64_t ccli_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

