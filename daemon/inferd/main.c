/* main.c - inferd: the inference daemon. Reads its settings, opens every
 * model on its own engine thread, listens on a Unix socket and serves
 * clients through shared-memory rings until SIGTERM or SIGINT; with
 * --metrics-port, serves GET /metrics over HTTP as well.
 *
 * Exit status: 0 after a clean drain, 1 when a model, a socket or the
 * event loop cannot start, 2 on a usage error. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "dstats.h"
#include "metrics.h"
#include "server.h"
#include "worker.h"

int main(int argc, char **argv)
{
    static struct inferd_config cfg;
    char err[1024] = "";
    cfg_default(&cfg);
    int rc = cfg_parse_args(&cfg, argc, argv, stdout, err, sizeof err);
    if (rc) {
        cfg_free(&cfg);
        if (rc > 0)
            return 0;
        fprintf(stderr, "inferd: %s\n", err);
        cfg_usage(stderr);
        return 2;
    }

    /* SIGTERM/SIGINT are read from a signalfd by the event loop: block them
     * before any thread starts so that every thread inherits the mask. A
     * client that hangs up must never kill us with SIGPIPE. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* The metrics socket first: a port in use fails before the models
     * load. */
    int mfd = -1;
    char murl[160] = "";
    if (cfg.metrics_port != CFG_NO_PORT) {
        const char *addr = cfg.metrics_address ? cfg.metrics_address : CFG_METRICS_ADDRESS;
        mfd = metrics_listen(addr, (uint16_t)cfg.metrics_port, murl, sizeof murl, err, sizeof err);
        if (mfd < 0) {
            fprintf(stderr, "inferd: cannot serve metrics: %s\n", err);
            cfg_free(&cfg);
            return 1;
        }
    }

    struct wk_outbox ob;
    if ((rc = wk_outbox_init(&ob))) {
        fprintf(stderr, "inferd: cannot create the engine outbox: %s\n", strerror(-rc));
        if (mfd >= 0)
            close(mfd);
        cfg_free(&cfg);
        return 1;
    }
    struct worker *workers[CFG_MAX_MODELS] = {0};
    static struct dstats_src stats; /* the metrics thread reads it until it stops */
    size_t n_workers = 0;
    struct metrics_srv *metrics = NULL;
    int status = 1;
    for (size_t i = 0; i < cfg.n_models; i++) {
        struct wk_params p = {
            .name = cfg.models[i].name,
            .path = cfg.models[i].path,
            .n_threads = cfg.threads,
            .kv_bytes = cfg.kv_memory,
            .n_ctx = cfg.ctx_size,
        };
        rc = wk_start(&workers[n_workers], &p, &ob, err, sizeof err);
        if (rc) {
            fprintf(stderr, "inferd: model '%s' (%s): %s\n", p.name, p.path, err);
            goto out;
        }
        const struct engine *e = wk_engine(workers[n_workers]);
        fprintf(stderr, "inferd: model '%s': %s, context %u, %u KV blocks\n", p.name, p.path,
                e->n_ctx, e->kv.n_blocks);
        n_workers++;
    }
    stats.workers = workers;
    stats.n_workers = n_workers;
    int lfd = srv_listen(&cfg, err, sizeof err);
    if (lfd < 0) {
        fprintf(stderr, "inferd: cannot listen: %s\n", err);
        goto out;
    }
    if (mfd >= 0) {
        rc = metrics_start(&metrics, mfd, &stats, err, sizeof err);
        mfd = -1; /* taken */
        if (rc) {
            fprintf(stderr, "inferd: cannot serve metrics: %s\n", err);
            close(lfd);
            unlink(cfg.socket_path);
            goto out;
        }
        fprintf(stderr, "inferd: metrics on %s\n", murl);
    }
    rc = srv_run(&cfg, lfd, workers, n_workers, &ob, &stats);
    if (rc) {
        fprintf(stderr, "inferd: the event loop failed: %s\n", strerror(-rc));
        goto out;
    }
    fprintf(stderr, "inferd: drained, exiting\n");
    status = 0;
out:
    /* The metrics thread reads the workers: it stops first. */
    metrics_stop(metrics);
    if (mfd >= 0)
        close(mfd);
    for (size_t i = 0; i < n_workers; i++)
        wk_stop(workers[i]);
    wk_outbox_destroy(&ob);
    cfg_free(&cfg);
    return status;
}
