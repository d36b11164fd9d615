/* dtest.h - helpers for the daemon tests (test_client.c, test_hostile.c):
 * start an inferd on a socket in a fresh temporary folder, wait until it
 * accepts, stop it and collect its exit status.
 *
 * The daemon binary comes from $INFERD_BIN (meson sets it); the model from
 * ../shared via tu_path(). */
#ifndef INFERD_DTEST_H
#define INFERD_DTEST_H

#include <stdbool.h>
#include <sys/types.h>

struct dtest_daemon {
    pid_t pid;
    char dir[64];   /* temporary folder (mode 0755) */
    char sock[128]; /* dir + "/inferd.sock" */
    char log[128];  /* dir + "/inferd.log": the daemon's stderr */
    int exit_status; /* once it exited (dtest_wait_exit) */
};

/* Starts `inferd --socket SOCK [--model stories=stories260K.gguf] ARGS...`
 * (args NULL-terminated; with_model false for --echo or custom models) and
 * waits up to 20 s for it to accept. Fails the test on error. */
void dtest_start(struct dtest_daemon *d, bool with_model, const char *const *args);
/* SIGTERM and wait: the exit status (as from waitpid), or -1 if it had to
 * be killed after timeout_ms. Fails the test when the daemon's log holds a
 * sanitizer report (printing the log), and prints the log when the status
 * is not 0. Removes the folder. */
int dtest_stop(struct dtest_daemon *d, int timeout_ms);
/* Whether the process is still running. */
bool dtest_alive(const struct dtest_daemon *d);
/* Waits for the process to exit by itself: its status, or -1. */
int dtest_wait_exit(struct dtest_daemon *d, int timeout_ms);
/* The daemon binary. */
const char *dtest_bin(void);
/* Sleeps ms milliseconds. */
void dtest_sleep_ms(int ms);

#endif
