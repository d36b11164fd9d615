/* metrics.c - GET /metrics over HTTP with libmicrohttpd (see metrics.h). */
#include "metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "prom.h"

/* Scrapers are few; these bound what a misbehaving client can hold. */
#define METRICS_MAX_CONNECTIONS 32
#define METRICS_TIMEOUT_S       10

struct metrics_srv {
    struct MHD_Daemon *d;
    struct dstats_src *src;
};

int metrics_listen(const char *addr, uint16_t port, char *url, size_t urllen, char *msg,
                   size_t msglen)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, addr, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(port);
        sl = sizeof *a4;
    } else if (inet_pton(AF_INET6, addr, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(port);
        sl = sizeof *a6;
    } else {
        snprintf(msg, msglen, "'%s' is not an IPv4 or IPv6 address", addr);
        return -EINVAL;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        int rc = -errno;
        snprintf(msg, msglen, "socket: %s", strerror(errno));
        return rc;
    }
    /* A restarted daemon rebinds its port at once (connections of the
     * previous one may linger in TIME_WAIT); a live listener still makes
     * bind fail with EADDRINUSE. An IPv6 address means IPv6 only. */
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ss.ss_family == AF_INET6)
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 64) < 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
        int rc = -errno;
        snprintf(msg, msglen, "%s port %u: %s", addr, (unsigned)port, strerror(errno));
        close(fd);
        return rc;
    }
    if (ss.ss_family == AF_INET6)
        snprintf(url, urllen, "http://[%s]:%u/metrics", addr, (unsigned)ntohs(a6->sin6_port));
    else
        snprintf(url, urllen, "http://%s:%u/metrics", addr, (unsigned)ntohs(a4->sin_port));
    return fd;
}

static void metrics_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    /* One line per message: libmicrohttpd's own end with a newline. */
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && line[n - 1] == '\n')
        line[--n] = 0;
    fprintf(stderr, "inferd: metrics: %s\n", line);
}

/* A short text/plain answer (404, 405, 500). */
static enum MHD_Result metrics_reply(struct MHD_Connection *c, unsigned status, const char *text,
                                     bool allow)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), (void *)(uintptr_t)text,
                                                             MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    enum MHD_Result ok =
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    if (ok == MHD_YES && allow)
        ok = MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    if (ok == MHD_YES)
        ok = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ok;
}

/* The exposition of the daemon's figures now, in a malloc'd buffer. */
static int metrics_render(struct metrics_srv *m, char **body, size_t *len)
{
    struct prom_stats *st = malloc(sizeof *st);
    if (!st)
        return -ENOMEM;
    dstats_collect(m->src, st);
    struct prom_input in = {.model = dstats_model_label(m->src), .stats = st};
    *body = NULL;
    *len = 0;
    FILE *fp = open_memstream(body, len);
    int rc = fp ? prom_write(fp, &in) : -ENOMEM;
    if (fp && fclose(fp) != 0 && rc == 0)
        rc = -ENOMEM;
    free(st);
    if (rc) {
        free(*body);
        *body = NULL;
    }
    return rc;
}

static enum MHD_Result metrics_on_request(void *cls, struct MHD_Connection *c, const char *url,
                                          const char *method, const char *version,
                                          const char *upload_data, size_t *upload_data_size,
                                          void **req_cls)
{
    struct metrics_srv *m = cls;
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)req_cls;
    /* Answered at the first call: nothing here reads a request body. */
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return metrics_reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD are served\n",
                             true);
    if (strcmp(url, "/metrics") != 0)
        return metrics_reply(c, MHD_HTTP_NOT_FOUND, "not found; the metrics are at /metrics\n",
                             false);
    char *body;
    size_t len;
    if (metrics_render(m, &body, &len) != 0)
        return metrics_reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n", false);
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    enum MHD_Result ok =
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, PROM_CONTENT_TYPE);
    if (ok == MHD_YES)
        ok = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ok;
}

int metrics_start(struct metrics_srv **out, int lfd, struct dstats_src *src, char *msg,
                  size_t msglen)
{
    *out = NULL;
    struct metrics_srv *m = calloc(1, sizeof *m);
    if (!m) {
        close(lfd);
        snprintf(msg, msglen, "out of memory");
        return -ENOMEM;
    }
    m->src = src;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    unsigned flags =
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (getsockname(lfd, (struct sockaddr *)&ss, &sl) == 0 && ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* The logger first, so that startup messages go through it too. The
     * port argument is unused with a listening socket given. */
    /* One option and its arguments per line: */
    /* clang-format off */
    m->d = MHD_start_daemon(flags, 0, NULL, NULL, metrics_on_request, m,
                            MHD_OPTION_EXTERNAL_LOGGER, metrics_log, NULL,
                            MHD_OPTION_LISTEN_SOCKET, (MHD_socket)lfd,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)METRICS_MAX_CONNECTIONS,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)METRICS_TIMEOUT_S,
                            MHD_OPTION_END);
    /* clang-format on */
    if (!m->d) {
        close(lfd);
        free(m);
        snprintf(msg, msglen, "libmicrohttpd could not start");
        return -EIO;
    }
    *out = m;
    return 0;
}

void metrics_stop(struct metrics_srv *m)
{
    if (!m)
        return;
    MHD_stop_daemon(m->d); /* joins its thread, closes the listening socket */
    free(m);
}
