/* cmd_bench_ipc.c - `inferctl bench-ipc`: the cost of the IPC path alone.
 * An inferd with the null engine (`inferd --echo`, spawned here unless
 * --socket names a running one) answers every Request at once with a
 * TokenChunk echoing its tokens and a Done. Each client thread, with its own
 * session, does round trips: submit, wait for the first event (the
 * round-trip time), then for the Done. Beside it, in the same run, a Unix
 * socket baseline does the same exchange with the same FlatBuffers (a
 * forked echo server on SOCK_SEQPACKET socket pairs, one epoll loop,
 * blocking reads on the client side, every message verified).
 *
 * msgs_per_s counts round trips (one request and its two replies) per
 * second over all clients. JSON (one line per client count): clients,
 * rtt_us_p50, rtt_us_p99, rtt_us_p999, msgs_per_s, uds_rtt_us_p50,
 * uds_rtt_us_p99, uds_rtt_us_p999, uds_msgs_per_s, p50_speedup. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "client_cli.h"
#include "cmds.h"
#include "ipc/wire.h"

#define BI_PROMPT 16 /* tokens per request */
#define BI_MSG_MAX 4096

struct bi_run {
    const char *path;
    uint32_t iters, warmup, spin_us;
    pthread_barrier_t start;
    int *uds_fds; /* baseline: client ends */
};

struct bi_thread {
    struct bi_run *run;
    uint32_t idx;
    double *rtt;
    size_t n;
    uint64_t t0, t1;
    int rc;
};

static const int32_t bi_tokens[BI_PROMPT] = {1, 403, 407, 261, 378, 432, 383, 286,
                                             261, 376, 298, 315, 421, 395, 317, 426};

static void *bi_ipc_client(void *arg)
{
    struct bi_thread *t = arg;
    struct bi_run *run = t->run;
    struct infer_connect_opts o;
    infer_connect_opts_init(&o);
    o.spin_us = run->spin_us;
    o.client_name = "bench-ipc";
    struct infer_client *c = NULL;
    t->rc = infer_connect(run->path, &o, &c);
    struct infer_request r;
    infer_request_init(&r);
    r.prompt_tokens = bi_tokens;
    r.n_prompt_tokens = BI_PROMPT;
    r.max_tokens = BI_PROMPT;
    uint32_t total = run->warmup + run->iters;
    pthread_barrier_wait(&run->start);
    for (uint32_t i = 0; i < total && !t->rc; i++) {
        if (i == run->warmup)
            t->t0 = ccli_now_ns();
        uint64_t ts = ccli_now_ns(), id;
        struct infer_event ev;
        if ((t->rc = infer_submit(c, &r, &id)) || (t->rc = infer_next_event(c, &ev, 10000)))
            break;
        uint64_t te = ccli_now_ns();
        if (ev.type != INFER_EV_TOKENS || ev.n_tokens != BI_PROMPT) {
            t->rc = -EPROTO;
            break;
        }
        if ((t->rc = infer_next_event(c, &ev, 10000)))
            break;
        if (ev.type != INFER_EV_DONE) {
            t->rc = -EPROTO;
            break;
        }
        if (i >= run->warmup)
            t->rtt[t->n++] = (double)(te - ts) * 1e-3;
    }
    t->t1 = ccli_now_ns();
    infer_close(c);
    return NULL;
}

/* Receives one message and verifies it; its type or -errno. */
static int bi_uds_recv(int fd, unsigned char *buf, struct wire_msg *m)
{
    ssize_t n;
    do
        n = recv(fd, buf, BI_MSG_MAX, 0);
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return n == 0 ? -ECONNRESET : -errno;
    return wire_read(buf, (size_t)n, NULL, m, NULL) ? -EPROTO : (int)m->type;
}

static int bi_uds_send(int fd, struct wire_builder *b)
{
    const void *p;
    size_t len;
    if (wire_builder_finish(b, &p, &len))
        return -EINVAL;
    return send(fd, p, len, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -errno;
}

static void *bi_uds_client(void *arg)
{
    struct bi_thread *t = arg;
    struct bi_run *run = t->run;
    int fd = run->uds_fds[t->idx];
    struct wire_builder *b = wire_builder_new(BI_MSG_MAX);
    _Alignas(8) unsigned char buf[BI_MSG_MAX];
    struct wire_request q;
    wire_request_default(&q);
    q.prompt_tokens = bi_tokens;
    q.n_prompt_tokens = BI_PROMPT;
    q.max_tokens = BI_PROMPT;
    t->rc = b ? 0 : -ENOMEM;
    uint32_t total = run->warmup + run->iters;
    pthread_barrier_wait(&run->start);
    for (uint32_t i = 0; i < total && !t->rc; i++) {
        if (i == run->warmup)
            t->t0 = ccli_now_ns();
        q.client_request_id = i + 1;
        uint64_t ts = ccli_now_ns();
        struct wire_msg m;
        if ((t->rc = wire_build_request(b, &q)) || (t->rc = bi_uds_send(fd, b)))
            break;
        int ty = bi_uds_recv(fd, buf, &m);
        uint64_t te = ccli_now_ns();
        if (ty != WIRE_TOKEN_CHUNK || m.u.token_chunk.n_tokens != BI_PROMPT ||
            bi_uds_recv(fd, buf, &m) != WIRE_DONE) {
            t->rc = ty < 0 ? ty : -EPROTO;
            break;
        }
        if (i >= run->warmup)
            t->rtt[t->n++] = (double)(te - ts) * 1e-3;
    }
    t->t1 = ccli_now_ns();
    wire_builder_free(b);
    return NULL;
}

/* The baseline's echo server (a child process): one epoll loop over the
 * server ends, the same replies as inferd --echo. */
static void bi_uds_server(const int *fds, uint32_t n)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct wire_builder *b = wire_builder_new(BI_MSG_MAX);
    if (ep < 0 || !b)
        _exit(1);
    for (uint32_t i = 0; i < n; i++) {
        struct epoll_event e = {.events = EPOLLIN, .data.fd = fds[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &e);
    }
    _Alignas(8) unsigned char buf[BI_MSG_MAX];
    uint32_t open = n;
    while (open) {
        struct epoll_event evs[16];
        int k = epoll_wait(ep, evs, 16, -1);
        for (int i = 0; i < k; i++) {
            int fd = evs[i].data.fd;
            struct wire_msg m;
            int ty = bi_uds_recv(fd, buf, &m);
            if (ty != WIRE_REQUEST) {
                epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
                close(fd);
                open--;
                continue;
            }
            const struct wire_request *q = &m.u.request;
            uint64_t t = ccli_now_ns();
            struct wire_token_chunk c = {.client_request_id = q->client_request_id,
                                         .tokens = q->prompt_tokens,
                                         .n_tokens = q->n_prompt_tokens};
            struct wire_done d = {.client_request_id = q->client_request_id,
                                  .usage = {(uint32_t)q->n_prompt_tokens, 0,
                                            (uint32_t)q->n_prompt_tokens},
                                  .timings = {t, t, t, t}};
            if (wire_build_token_chunk(b, &c) || bi_uds_send(fd, b) ||
                wire_build_done(b, &d) || bi_uds_send(fd, b))
                _exit(1);
        }
    }
    _exit(0);
}

struct bi_figures {
    double p50, p99, p999, msgs_per_s;
};

static int bi_measure(struct bi_run *run, uint32_t n, bool uds, struct bi_figures *f)
{
    struct bi_thread *t = calloc(n, sizeof *t);
    pthread_t *th = calloc(n, sizeof *th);
    double *all = calloc((size_t)n * run->iters + 1, sizeof *all);
    int rc = -ENOMEM;
    pid_t srv = -1;
    int *srv_fds = NULL;
    if (!t || !th || !all)
        goto out;
    if (uds) {
        run->uds_fds = calloc(n, sizeof *run->uds_fds);
        srv_fds = calloc(n, sizeof *srv_fds);
        if (!run->uds_fds || !srv_fds)
            goto out;
        for (uint32_t i = 0; i < n; i++)
            run->uds_fds[i] = -1;
        for (uint32_t i = 0; i < n; i++) {
            int sv[2];
            if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
                rc = -errno;
                goto out;
            }
            run->uds_fds[i] = sv[0];
            srv_fds[i] = sv[1];
        }
        fflush(NULL);
        srv = fork();
        if (srv == 0) {
            for (uint32_t i = 0; i < n; i++)
                close(run->uds_fds[i]);
            bi_uds_server(srv_fds, n);
        }
        for (uint32_t i = 0; i < n; i++)
            close(srv_fds[i]);
        if (srv < 0) {
            rc = -errno;
            goto out;
        }
    }
    pthread_barrier_init(&run->start, NULL, n);
    uint32_t started = 0;
    for (; started < n; started++) {
        t[started] = (struct bi_thread){.run = run, .idx = started};
        t[started].rtt = all + (size_t)started * run->iters;
        if (pthread_create(&th[started], NULL, uds ? bi_uds_client : bi_ipc_client, &t[started]))
            break;
    }
    if (started < n) {
        fprintf(stderr, "inferctl bench-ipc: cannot start %u threads\n", n);
        exit(1); /* the barrier would never open */
    }
    for (uint32_t i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&run->start);
    uint64_t t0 = UINT64_MAX, t1 = 0;
    size_t total = 0;
    rc = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (t[i].rc && !rc)
            rc = t[i].rc;
        t0 = t[i].t0 && t[i].t0 < t0 ? t[i].t0 : t0;
        t1 = t[i].t1 > t1 ? t[i].t1 : t1;
        memmove(all + total, t[i].rtt, t[i].n * sizeof *all);
        total += t[i].n;
    }
    if (!rc) {
        f->p50 = cli_quantile(all, total, 0.5);
        f->p99 = cli_quantile(all, total, 0.99);
        f->p999 = cli_quantile(all, total, 0.999);
        f->msgs_per_s = t1 > t0 ? (double)total / ((double)(t1 - t0) * 1e-9) : 0;
    }
out:
    if (uds && run->uds_fds) {
        for (uint32_t i = 0; i < n; i++)
            if (run->uds_fds[i] >= 0)
                close(run->uds_fds[i]);
        free(run->uds_fds);
        run->uds_fds = NULL;
    }
    if (srv > 0)
        waitpid(srv, NULL, 0);
    free(srv_fds);
    free(t);
    free(th);
    free(all);
    return rc;
}

/* The inferd binary next to this inferctl (build tree or install), else
 * "inferd" from PATH. */
static void bi_find_daemon(char *out, size_t cap)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = 0;
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = 0;
            const char *cands[] = {"/../daemon/inferd", "/inferd"};
            for (size_t i = 0; i < 2; i++) {
                size_t a = strlen(self), b = strlen(cands[i]);
                if (a + b >= cap)
                    continue;
                memcpy(out, self, a);
                memcpy(out + a, cands[i], b + 1);
                if (access(out, X_OK) == 0)
                    return;
            }
        }
    }
    snprintf(out, cap, "inferd");
}

static pid_t bi_spawn(const char *bin, const char *sock, uint32_t clients)
{
    char max_sess[16];
    snprintf(max_sess, sizeof max_sess, "%u", clients + 4);
    fflush(NULL);
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (devnull >= 0)
        dup2(devnull, 2);
    execlp(bin, bin, "--echo", "--socket", sock, "--spin-us", "200", "--max-sessions", max_sess,
           (char *)NULL);
    _exit(127);
}

static int bi_wait_socket(const char *path, pid_t pid)
{
    for (int i = 0; i < 500; i++) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            return -ECHILD;
        struct infer_client *c;
        if (infer_connect(path, NULL, &c) == 0) {
            infer_close(c);
            return 0;
        }
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    return -ETIMEDOUT;
}

int cmd_bench_ipc(int argc, char **argv)
{
    static const char usage[] =
        "usage: inferctl bench-ipc [--clients N] [--iterations K] [--socket PATH | --daemon BIN]\n"
        "                          [--spin-us U] [--json]\n"
        "Round trips through an echo inferd (spawned from BIN unless --socket names a running\n"
        "`inferd --echo`) next to a Unix-socket baseline: 1 and 8 clients unless --clients.\n";
    enum { O_CLIENTS = 256, O_ITERS, O_SOCKET, O_DAEMON, O_SPIN, O_JSON, O_HELP };
    static const struct option opts[] = {
        {"clients", required_argument, 0, O_CLIENTS},
        {"iterations", required_argument, 0, O_ITERS},
        {"socket", required_argument, 0, O_SOCKET},
        {"daemon", required_argument, 0, O_DAEMON},
        {"spin-us", required_argument, 0, O_SPIN},
        {"json", no_argument, 0, O_JSON},
        {"help", no_argument, 0, O_HELP},
        {0, 0, 0, 0},
    };
    uint32_t clients[2] = {1, 8}, n_cfg = 2, iters = 0, spin = 200;
    const char *sock = NULL, *daemon = NULL;
    bool json = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case O_CLIENTS:
            bad = cli_u32("--clients", optarg, 1, 256, &clients[0]);
            n_cfg = 1;
            break;
        case O_ITERS: bad = cli_u32("--iterations", optarg, 1, 10000000, &iters); break;
        case O_SOCKET: sock = optarg; break;
        case O_DAEMON: daemon = optarg; break;
        case O_SPIN: bad = cli_u32("--spin-us", optarg, 0, 1000000, &spin); break;
        case O_JSON: json = true; break;
        case O_HELP: fputs(usage, stdout); return 0;
        default: bad = 1; break;
        }
        if (bad)
            return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "inferctl bench-ipc: unexpected argument '%s'\n%s", argv[optind], usage);
        return 2;
    }
    char dir[64] = "", path[128], bin[PATH_MAX];
    pid_t pid = -1;
    int rc = 1;
    if (!sock) {
        snprintf(dir, sizeof dir, "/tmp/inferd-bench-XXXXXX");
        if (!mkdtemp(dir)) {
            fprintf(stderr, "inferctl bench-ipc: mkdtemp: %s\n", strerror(errno));
            return 1;
        }
        snprintf(path, sizeof path, "%s/sock", dir);
        if (daemon)
            snprintf(bin, sizeof bin, "%s", daemon);
        else
            bi_find_daemon(bin, sizeof bin);
        uint32_t most = clients[0] > clients[n_cfg - 1] ? clients[0] : clients[n_cfg - 1];
        pid = bi_spawn(bin, path, most);
        int r = pid < 0 ? -errno : bi_wait_socket(path, pid);
        if (r) {
            fprintf(stderr, "inferctl bench-ipc: cannot start '%s --echo': %s\n", bin,
                    strerror(-r));
            goto out;
        }
        sock = path;
    }
    for (uint32_t k = 0; k < n_cfg; k++) {
        uint32_t n = clients[k];
        struct bi_run run = {.path = sock, .spin_us = spin};
        run.iters = iters ? iters : (n == 1 ? 20000 : 40000 / n);
        run.warmup = run.iters / 10 + 10;
        struct bi_figures ipc = {0}, uds = {0};
        int r = bi_measure(&run, n, false, &ipc);
        if (r) {
            fprintf(stderr, "inferctl bench-ipc: shared-memory run failed: %s\n", strerror(-r));
            goto out;
        }
        if ((r = bi_measure(&run, n, true, &uds))) {
            fprintf(stderr, "inferctl bench-ipc: socket baseline failed: %s\n", strerror(-r));
            goto out;
        }
        double speed = ipc.p50 > 0 ? uds.p50 / ipc.p50 : 0;
        if (json) {
            json_t *o = json_object();
            json_object_set_new(o, "clients", json_integer(n));
            json_object_set_new(o, "iterations", json_integer(run.iters));
            json_object_set_new(o, "rtt_us_p50", json_real(ipc.p50));
            json_object_set_new(o, "rtt_us_p99", json_real(ipc.p99));
            json_object_set_new(o, "rtt_us_p999", json_real(ipc.p999));
            json_object_set_new(o, "msgs_per_s", json_real(ipc.msgs_per_s));
            json_object_set_new(o, "uds_rtt_us_p50", json_real(uds.p50));
            json_object_set_new(o, "uds_rtt_us_p99", json_real(uds.p99));
            json_object_set_new(o, "uds_rtt_us_p999", json_real(uds.p999));
            json_object_set_new(o, "uds_msgs_per_s", json_real(uds.msgs_per_s));
            json_object_set_new(o, "p50_speedup", json_real(speed));
            cli_print_json(o, JSON_COMPACT | JSON_REAL_PRECISION(6));
        } else {
            printf("clients %-3u shared memory: rtt p50 %8.2f us  p99 %8.2f us  p999 %8.2f us  "
                   "%10.0f msgs/s\n",
                   n, ipc.p50, ipc.p99, ipc.p999, ipc.msgs_per_s);
            printf("            unix socket:   rtt p50 %8.2f us  p99 %8.2f us  p999 %8.2f us  "
                   "%10.0f msgs/s   (p50 %.1fx)\n",
                   uds.p50, uds.p99, uds.p999, uds.msgs_per_s, speed);
        }
        fflush(stdout);
    }
    rc = 0;
out:
    if (pid > 0) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
    }
    if (dir[0]) {
        unlink(path);
        rmdir(dir);
    }
    return rc;
}
