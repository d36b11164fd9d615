/* dtest.c - see dtest.h. */
#include "dtest.h"

#include "client/inferclient.h"
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *dtest_bin(void)
{
    const char *b = getenv("INFERD_BIN");
    ck_assert_msg(b && *b, "INFERD_BIN is not set");
    return b;
}

void dtest_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

void dtest_start(struct dtest_daemon *d, bool with_model, const char *const *args)
{
    memset(d, 0, sizeof *d);
    snprintf(d->dir, sizeof d->dir, "/tmp/inferd-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(d->dir));
    chmod(d->dir, 0755); /* other users reach the socket (policy tests) */
    snprintf(d->sock, sizeof d->sock, "%s/inferd.sock", d->dir);
    snprintf(d->log, sizeof d->log, "%s/inferd.log", d->dir);
    char model[4200];
    snprintf(model, sizeof model, "stories=%s", tu_path("models/stories260K.gguf"));
    const char *argv[64];
    int n = 0;
    argv[n++] = dtest_bin();
    argv[n++] = "--socket";
    argv[n++] = d->sock;
    if (with_model) {
        argv[n++] = "--model";
        argv[n++] = model;
        argv[n++] = "--threads";
        argv[n++] = "1";
    }
    for (int i = 0; args && args[i] && n < 62; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    fflush(NULL);
    d->pid = fork();
    ck_assert_int_ge(d->pid, 0);
    if (d->pid == 0) {
        /* Dies with the test: a failed check never leaves a daemon behind
         * (it would also hold the test runner's stdout open). */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(d->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    for (int i = 0; i < 2000; i++) {
        struct infer_client *c;
        if (infer_connect(d->sock, NULL, &c) == 0) {
            infer_close(c);
            return;
        }
        int st;
        if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
            char *log = tu_read_file(d->log, NULL);
            ck_abort_msg("inferd exited at startup (status %d): %s", st, log ? log : "");
        }
        dtest_sleep_ms(10);
    }
    ck_abort_msg("inferd did not accept within 20 s");
}

bool dtest_alive(const struct dtest_daemon *d)
{
    int st;
    return d->pid > 0 && waitpid(d->pid, &st, WNOHANG) == 0;
}

int dtest_wait_exit(struct dtest_daemon *d, int timeout_ms)
{
    for (int i = 0; i <= timeout_ms / 10; i++) {
        int st;
        pid_t r = waitpid(d->pid, &st, WNOHANG);
        if (r == d->pid) {
            d->pid = -1;
            d->exit_status = st;
            return st;
        }
        dtest_sleep_ms(10);
    }
    return -1;
}

/* Fails the test when the daemon's log shows a sanitizer report. */
static void dtest_check_log(const struct dtest_daemon *d, int st)
{
    char *log = tu_read_file(d->log, NULL);
    if (!log)
        return;
    bool bad = strstr(log, "runtime error:") || strstr(log, "Sanitizer");
    if (bad || st != 0)
        fprintf(stderr, "--- inferd log (status %d) ---\n%s--- end of log ---\n", st, log);
    free(log);
    ck_assert_msg(!bad, "the daemon's log has a sanitizer report");
}

int dtest_stop(struct dtest_daemon *d, int timeout_ms)
{
    int st = d->exit_status;
    if (d->pid > 0) {
        kill(d->pid, SIGTERM);
        st = dtest_wait_exit(d, timeout_ms);
        if (st == -1 && d->pid > 0) {
            kill(d->pid, SIGKILL);
            waitpid(d->pid, NULL, 0);
            d->pid = -1;
        }
    }
    if (d->dir[0])
        dtest_check_log(d, st);
    if (d->dir[0]) {
        unlink(d->sock);
        unlink(d->log);
        rmdir(d->dir);
    }
    return st;
}
