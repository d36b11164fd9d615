/* metrics.h - inferd's HTTP endpoint for Prometheus (libmicrohttpd):
 * GET /metrics answers the text exposition of the daemon's figures
 * (daemon/obs/prom.h, the renderer of `inferctl metrics` too).
 *
 * The listening socket is bound at startup (metrics_listen), before the
 * models load, so that a bad address or a port in use is a clear startup
 * error. The server (metrics_start) runs on libmicrohttpd's internal
 * polling thread, apart from the io_uring loop and the engines: a scrape
 * copies the workers' published statistics (dstats_collect, a copy under
 * each worker's mutex) and renders them with no lock held, so it never
 * holds an engine up.
 *
 * Routes: GET or HEAD /metrics -> 200 with Content-Type
 * PROM_CONTENT_TYPE; another path -> 404; another method -> 405 (with
 * Allow: GET, HEAD).
 */
#ifndef INFERD_METRICS_H
#define INFERD_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "dstats.h"

struct metrics_srv;

/* A listening TCP socket on addr (a numeric IPv4 or IPv6 address) and
 * port (0: any free one). The socket, with the bound address written as
 * "http://ADDR:PORT/metrics" into url; or -errno with msg filled. */
int metrics_listen(const char *addr, uint16_t port, char *url, size_t urllen, char *msg,
                   size_t msglen);

/* Serves lfd (taken: closed by metrics_stop, or here on failure) from
 * libmicrohttpd's thread. src must outlive the server. 0 or -errno with
 * msg filled. */
int metrics_start(struct metrics_srv **out, int lfd, struct dstats_src *src, char *msg,
                  size_t msglen);

/* Stops the thread (an answer in progress completes) and closes the
 * socket. NULL is fine. */
void metrics_stop(struct metrics_srv *m);

#endif
