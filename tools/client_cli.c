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

static int ccli_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double ccli_quantile(double *v, size_t n, double p)
{
    if (!n)
        return 0;
    qsort(v, n, sizeof *v, ccli_cmp);
    double pos = p * (double)(n - 1);
    size_t i = (size_t)pos;
    if (i + 1 >= n)
        return v[n - 1];
    double f = pos - (double)i;
    return v[i] * (1 - f) + v[i + 1] * f;
}

double ccli_mean(const double *v, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += v[i];
    return n ? s / (double)n : 0;
}
