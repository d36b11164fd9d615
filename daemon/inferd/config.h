/* config.h - inferd's settings: one declarative table (name, kind, default,
 * range, help) read from the command line and from a config file.
 *
 * Config file syntax: one setting per line, `key = value` (or `key value`),
 * keys spelled as the long options without the dashes; blank lines and
 * lines starting with '#' are ignored; repeatable keys (model, allow-uid,
 * allow-gid) may appear several times. Command-line options are applied
 * after the file, so they win (repeatable ones add to the file's).
 */
#ifndef INFERD_CONFIG_H
#define INFERD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CFG_MAX_MODELS 16
#define CFG_MAX_IDS 64

struct cfg_model {
    char *name; /* what clients ask for (Request.model) */
    char *path; /* GGUF file */
};

struct inferd_config {
    char *socket_path;
    struct cfg_model models[CFG_MAX_MODELS];
    size_t n_models;            /* the first one is the default model */
    uint32_t threads;           /* per model; 0: one per online CPU */
    uint64_t kv_memory;         /* bytes of KV cache per model; 0: 8 full contexts */
    uint32_t ctx_size;          /* 0: the model's, at most 4096 */
    uint32_t allow_uids[CFG_MAX_IDS];
    size_t n_allow_uids;
    uint32_t allow_gids[CFG_MAX_IDS];
    size_t n_allow_gids;
    uint32_t socket_mode;       /* permission bits of the socket file */
    uint32_t max_sessions;
    uint32_t max_sessions_per_uid;
    uint32_t max_concurrent;    /* requests per session */
    uint32_t max_queued_tokens; /* (prompt + max_tokens) x n over a session's live requests */
    uint32_t max_n;             /* parallel samples (Request.n) per request */
    uint32_t submit_ring_bytes;
    uint32_t completion_ring_bytes;
    uint32_t max_message_bytes;
    uint32_t spin_us;           /* busy-poll this long after the last activity */
    uint32_t drain_timeout_ms;  /* SIGTERM: let requests finish this long, then cancel */
    uint32_t hello_timeout_ms;  /* a session that sends no Hello is dropped */
    bool echo;                  /* null engine: answer every Request at once */
    bool verbose;
    uint32_t metrics_port;      /* HTTP GET /metrics; CFG_NO_PORT: off, 0: any free port */
    char *metrics_address;      /* NULL: CFG_METRICS_ADDRESS */
};

#define CFG_NO_PORT UINT32_MAX
#define CFG_METRICS_ADDRESS "127.0.0.1"

/* Fills the defaults. */
void cfg_default(struct inferd_config *c);
/* Frees the strings (the struct itself is the caller's). */
void cfg_free(struct inferd_config *c);

/* Parses argv (argv[0] is the program name): --config FILE is read first,
 * then the other options. 0; 1 when --help was printed to out; -EINVAL
 * with a message in err otherwise. Also checks the result is usable
 * (socket given, a model or --echo, ring sizes powers of two, ...). */
int cfg_parse_args(struct inferd_config *c, int argc, char **argv, FILE *out, char *err,
                   size_t errlen);

/* Reads one config file. 0 or -errno/-EINVAL with "file:line: ..." in err. */
int cfg_parse_file(struct inferd_config *c, const char *path, char *err, size_t errlen);

/* The --help text. */
void cfg_usage(FILE *fp);

#endif
