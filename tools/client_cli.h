/* client_cli.h - helpers shared by the inferctl commands that talk to a
 * running inferd through libinferclient (submit, models, stats, bench
 * --socket, bench-ipc). */
#ifndef INFERD_CLIENT_CLI_H
#define INFERD_CLIENT_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "inferclient.h"

/* The socket to use: the option, else $INFERD_SOCKET, else
 * /run/inferd.sock. */
const char *ccli_socket(const char *opt);
/* Connects with opts (NULL: defaults); prints "inferctl CMD: ..." on
 * failure and returns the negative errno. */
int ccli_connect(const char *cmd, const char *path, const struct infer_connect_opts *opts,
                 struct infer_client **out);
/* "length", "eos", "stop", "cancelled" (as `inferctl run` spells them). */
const char *ccli_finish(enum infer_finish f);
/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t ccli_now_ns(void);

#endif
