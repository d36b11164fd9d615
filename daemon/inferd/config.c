/* config.c - the settings table of inferd and its two readers (command line
 * and config file). See config.h. */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

enum cfg_kind {
    CFG_STR,    /* char * */
    CFG_U32,    /* uint32_t, decimal or 0x */
    CFG_U64,    /* uint64_t, with an optional K/M/G suffix */
    CFG_MODE,   /* uint32_t, octal */
    CFG_FLAG,   /* bool, no argument on the command line; "true/false" in a file */
    CFG_MODEL,  /* NAME=PATH or PATH, appended */
    CFG_UID,    /* user name or number, appended */
    CFG_GID,    /* group name or number, appended */
    CFG_CONFIG, /* --config FILE (command line only) */
    CFG_HELP,
};

struct cfg_opt {
    const char *name;
    enum cfg_kind kind;
    size_t off;
    uint64_t lo, hi;
    const char *help;
};

#define OFF(f) offsetof(struct inferd_config, f)

static const struct cfg_opt cfg_opts[] = {
    {"socket", CFG_STR, OFF(socket_path), 0, 0, "PATH  the Unix socket to listen on (required)"},
    {"model", CFG_MODEL, 0, 0, 0, "NAME=PATH  a GGUF model (repeatable; the first is the default)"},
    {"echo", CFG_FLAG, OFF(echo), 0, 0, "      null engine: answer each Request at once (IPC benchmarks)"},
    {"threads", CFG_U32, OFF(threads), 0, 1024, "N  compute threads per model (default: all CPUs)"},
    {"kv-memory", CFG_U64, OFF(kv_memory), 0, UINT64_MAX, "BYTES  KV cache per model (default: 8 contexts)"},
    {"ctx-size", CFG_U32, OFF(ctx_size), 0, 1u << 20, "N  context length (default: the model's, at most 4096)"},
    {"allow-uid", CFG_UID, 0, 0, 0, "USER  may connect (repeatable; default: the daemon's uid and root)"},
    {"allow-gid", CFG_GID, 0, 0, 0, "GROUP  members may connect (repeatable)"},
    {"socket-mode", CFG_MODE, OFF(socket_mode), 0, 0777, "MODE  permissions of the socket file (default 0660)"},
    {"max-sessions", CFG_U32, OFF(max_sessions), 1, 4096, "N  connected clients at most (default 256)"},
    {"max-sessions-per-uid", CFG_U32, OFF(max_sessions_per_uid), 1, 4096, "N  connected clients of one user at most (default 128)"},
    {"max-concurrent", CFG_U32, OFF(max_concurrent), 1, 4096, "N  live requests per session (default 16)"},
    {"max-n", CFG_U32, OFF(max_n), 1, 1024, "N  parallel samples (Request.n) per request at most (default 16)"},
    {"max-queued-tokens", CFG_U32, OFF(max_queued_tokens), 1, 1u << 30, "N  prompt + max tokens over a session's requests (default 65536)"},
    {"submit-ring-bytes", CFG_U32, OFF(submit_ring_bytes), 4096, 64u << 20, "N  client -> daemon ring, power of two (default 65536)"},
    {"completion-ring-bytes", CFG_U32, OFF(completion_ring_bytes), 4096, 64u << 20, "N  daemon -> client ring, power of two (default 262144)"},
    {"max-message-bytes", CFG_U32, OFF(max_message_bytes), 1024, 16u << 20, "N  largest message either side may send (default 65536)"},
    {"spin-us", CFG_U32, OFF(spin_us), 0, 1000000, "N  busy-poll the rings this long before sleeping (default 50)"},
    {"drain-timeout-ms", CFG_U32, OFF(drain_timeout_ms), 0, 3600000, "N  on SIGTERM, let requests finish this long (default 10000)"},
    {"hello-timeout-ms", CFG_U32, OFF(hello_timeout_ms), 10, 3600000, "N  drop a session that sends no Hello (default 5000)"},
    {"metrics-port", CFG_U32, OFF(metrics_port), 0, 65535, "PORT  serve Prometheus metrics at http://ADDR:PORT/metrics (0: any free port, logged; default: off)"},
    {"metrics-address", CFG_STR, OFF(metrics_address), 0, 0, "ADDR  the IPv4 or IPv6 address of --metrics-port (default " CFG_METRICS_ADDRESS ")"},
    {"verbose", CFG_FLAG, OFF(verbose), 0, 0, "      log sessions to stderr"},
    {"config", CFG_CONFIG, 0, 0, 0, "FILE  read settings from FILE (key = value lines)"},
    {"help", CFG_HELP, 0, 0, 0, "      this text"},
};

#define CFG_N_OPTS (sizeof cfg_opts / sizeof cfg_opts[0])

static int cfg_fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

void cfg_default(struct inferd_config *c)
{
    memset(c, 0, sizeof *c);
    c->socket_mode = 0660;
    c->max_sessions = 256;
    c->max_sessions_per_uid = 128;
    c->max_concurrent = 16;
    c->max_queued_tokens = 65536;
    c->max_n = 16;
    c->submit_ring_bytes = 65536;
    c->completion_ring_bytes = 262144;
    c->max_message_bytes = 65536;
    c->spin_us = 50;
    c->drain_timeout_ms = 10000;
    c->hello_timeout_ms = 5000;
    c->metrics_port = CFG_NO_PORT;
}

void cfg_free(struct inferd_config *c)
{
    if (!c)
        return;
    free(c->socket_path);
    free(c->metrics_address);
    c->metrics_address = NULL;
    for (size_t i = 0; i < c->n_models; i++) {
        free(c->models[i].name);
        free(c->models[i].path);
    }
    c->socket_path = NULL;
    c->n_models = 0;
}

void cfg_usage(FILE *fp)
{
    fprintf(fp, "usage: inferd --socket PATH (--model NAME=PATH... | --echo) [options]\n\n");
    for (size_t i = 0; i < CFG_N_OPTS; i++)
        fprintf(fp, "  --%s %s\n", cfg_opts[i].name, cfg_opts[i].help);
}

static int cfg_u64(const char *s, uint64_t lo, uint64_t hi, bool suffix, int base, uint64_t *out)
{
    while (isspace((unsigned char)*s))
        s++;
    if (!*s || *s == '-')
        return -EINVAL;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, base);
    if (errno || end == s)
        return -EINVAL;
    if (suffix && *end) {
        unsigned shift = 0;
        switch (toupper((unsigned char)*end)) {
        case 'K': shift = 10; break;
        case 'M': shift = 20; break;
        case 'G': shift = 30; break;
        default: return -EINVAL;
        }
        end++;
        if (toupper((unsigned char)*end) == 'I')
            end++;
        if (toupper((unsigned char)*end) == 'B')
            end++;
        if (v > (UINT64_MAX >> shift))
            return -EINVAL;
        v <<= shift;
    }
    if (*end || v < lo || v > hi)
        return -EINVAL;
    *out = v;
    return 0;
}

static int cfg_id(const char *s, bool group, uint32_t *out)
{
    uint64_t v;
    if (cfg_u64(s, 0, UINT32_MAX - 1, false, 10, &v) == 0) {
        *out = (uint32_t)v;
        return 0;
    }
    char buf[4096];
    if (group) {
        struct group g, *res = NULL;
        if (getgrnam_r(s, &g, buf, sizeof buf, &res) != 0 || !res)
            return -ENOENT;
        *out = (uint32_t)res->gr_gid;
    } else {
        struct passwd p, *res = NULL;
        if (getpwnam_r(s, &p, buf, sizeof buf, &res) != 0 || !res)
            return -ENOENT;
        *out = (uint32_t)res->pw_uid;
    }
    return 0;
}

static int cfg_add_model(struct inferd_config *c, const char *v, char *err, size_t errlen)
{
    if (c->n_models == CFG_MAX_MODELS)
        return cfg_fail(err, errlen, "--model: at most %d models", CFG_MAX_MODELS);
    const char *eq = strchr(v, '=');
    const char *path = eq ? eq + 1 : v;
    char *name;
    if (eq) {
        name = strndup(v, (size_t)(eq - v));
    } else { /* the file name without directory and .gguf */
        const char *b = strrchr(v, '/');
        b = b ? b + 1 : v;
        size_t n = strlen(b);
        if (n > 5 && !strcmp(b + n - 5, ".gguf"))
            n -= 5;
        name = strndup(b, n);
    }
    if (!name)
        return -ENOMEM;
    if (!*name || !*path || strlen(name) > 128) {
        free(name);
        return cfg_fail(err, errlen, "--model: expected NAME=PATH, got '%s'", v);
    }
    for (size_t i = 0; i < c->n_models; i++)
        if (!strcmp(c->models[i].name, name)) {
            free(name);
            return cfg_fail(err, errlen, "--model: the name '%s' is given twice", c->models[i].name);
        }
    char *p = strdup(path);
    if (!p) {
        free(name);
        return -ENOMEM;
    }
    c->models[c->n_models].name = name;
    c->models[c->n_models].path = p;
    c->n_models++;
    return 0;
}

/* Applies one setting; value is NULL for a flag given on the command line. */
static int cfg_apply(struct inferd_config *c, const struct cfg_opt *o, const char *value,
                     char *err, size_t errlen)
{
    char *base = (char *)c;
    uint64_t v;
    int rc;
    switch (o->kind) {
    case CFG_STR: {
        char *s = strdup(value);
        if (!s)
            return -ENOMEM;
        free(*(char **)(base + o->off));
        *(char **)(base + o->off) = s;
        return 0;
    }
    case CFG_U32:
    case CFG_U64:
    case CFG_MODE:
        rc = cfg_u64(value, o->lo, o->hi, o->kind == CFG_U64, o->kind == CFG_MODE ? 8 : 0, &v);
        if (rc)
            return cfg_fail(err, errlen, "--%s: expected %s in [%llu, %llu], got '%s'", o->name,
                            o->kind == CFG_MODE ? "an octal mode" : "an integer",
                            (unsigned long long)o->lo, (unsigned long long)o->hi, value);
        if (o->kind == CFG_U64)
            *(uint64_t *)(base + o->off) = v;
        else
            *(uint32_t *)(base + o->off) = (uint32_t)v;
        return 0;
    case CFG_FLAG:
        if (!value || !strcmp(value, "true") || !strcmp(value, "1") || !strcmp(value, "yes"))
            *(bool *)(base + o->off) = true;
        else if (!strcmp(value, "false") || !strcmp(value, "0") || !strcmp(value, "no"))
            *(bool *)(base + o->off) = false;
        else
            return cfg_fail(err, errlen, "%s: expected true or false, got '%s'", o->name, value);
        return 0;
    case CFG_MODEL:
        return cfg_add_model(c, value, err, errlen);
    case CFG_UID:
    case CFG_GID: {
        bool g = o->kind == CFG_GID;
        size_t *n = g ? &c->n_allow_gids : &c->n_allow_uids;
        uint32_t *ids = g ? c->allow_gids : c->allow_uids;
        if (*n == CFG_MAX_IDS)
            return cfg_fail(err, errlen, "--%s: at most %d entries", o->name, CFG_MAX_IDS);
        uint32_t id;
        if (cfg_id(value, g, &id))
            return cfg_fail(err, errlen, "--%s: no such %s '%s'", o->name, g ? "group" : "user",
                            value);
        ids[(*n)++] = id;
        return 0;
    }
    case CFG_CONFIG:
    case CFG_HELP:
        break;
    }
    return cfg_fail(err, errlen, "%s: not allowed here", o->name);
}

static const struct cfg_opt *cfg_find(const char *name)
{
    for (size_t i = 0; i < CFG_N_OPTS; i++)
        if (!strcmp(cfg_opts[i].name, name))
            return &cfg_opts[i];
    return NULL;
}

int cfg_parse_file(struct inferd_config *c, const char *path, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "re");
    if (!fp) {
        int rc = -errno;
        cfg_fail(err, errlen, "%s: %s", path, strerror(errno));
        return rc;
    }
    char line[4096];
    unsigned ln = 0;
    int rc = 0;
    while (fgets(line, sizeof line, fp)) {
        ln++;
        size_t n = strlen(line);
        if (n == sizeof line - 1 && line[n - 1] != '\n') {
            rc = cfg_fail(err, errlen, "%s:%u: line too long", path, ln);
            break;
        }
        while (n && isspace((unsigned char)line[n - 1]))
            line[--n] = 0;
        char *k = line;
        while (isspace((unsigned char)*k))
            k++;
        if (!*k || *k == '#')
            continue;
        char *e = k;
        while (*e && *e != '=' && !isspace((unsigned char)*e))
            e++;
        char *v = e;
        while (isspace((unsigned char)*v))
            v++;
        if (*v == '=')
            v++;
        while (isspace((unsigned char)*v))
            v++;
        *e = 0;
        const struct cfg_opt *o = cfg_find(k);
        if (!o || o->kind == CFG_CONFIG || o->kind == CFG_HELP) {
            rc = cfg_fail(err, errlen, "%s:%u: unknown setting '%s'", path, ln, k);
            break;
        }
        if (!*v && o->kind != CFG_FLAG) {
            rc = cfg_fail(err, errlen, "%s:%u: '%s' needs a value", path, ln, k);
            break;
        }
        char sub[512] = "";
        rc = cfg_apply(c, o, *v ? v : NULL, sub, sizeof sub);
        if (rc) {
            cfg_fail(err, errlen, "%s:%u: %s", path, ln, sub);
            break;
        }
    }
    if (!rc && ferror(fp))
        rc = cfg_fail(err, errlen, "%s: read error", path);
    fclose(fp);
    return rc;
}

static bool cfg_pow2(uint32_t v)
{
    return v && (v & (v - 1)) == 0;
}

static int cfg_check(const struct inferd_config *c, char *err, size_t errlen)
{
    if (!c->socket_path || !*c->socket_path)
        return cfg_fail(err, errlen, "--socket is required");
    if (strlen(c->socket_path) >= 108)
        return cfg_fail(err, errlen, "--socket: the path is longer than a Unix socket allows");
    if (!c->echo && c->n_models == 0)
        return cfg_fail(err, errlen, "at least one --model (or --echo) is required");
    if (c->echo && c->n_models)
        return cfg_fail(err, errlen, "--echo serves no models; drop --model");
    if (c->metrics_address) {
        unsigned char a[16];
        if (c->metrics_port == CFG_NO_PORT)
            return cfg_fail(err, errlen, "--metrics-address needs --metrics-port");
        if (inet_pton(AF_INET, c->metrics_address, a) != 1 &&
            inet_pton(AF_INET6, c->metrics_address, a) != 1)
            return cfg_fail(err, errlen,
                            "--metrics-address: expected an IPv4 or IPv6 address, got '%s'",
                            c->metrics_address);
    }
    if (!cfg_pow2(c->submit_ring_bytes) || !cfg_pow2(c->completion_ring_bytes))
        return cfg_fail(err, errlen, "ring sizes must be powers of two");
    if (c->max_message_bytes > c->completion_ring_bytes / 2 ||
        c->max_message_bytes > c->submit_ring_bytes * 4u)
        return cfg_fail(err, errlen,
                        "--max-message-bytes must be at most half the completion ring and four "
                        "times the submission ring");
    return 0;
}

int cfg_parse_args(struct inferd_config *c, int argc, char **argv, FILE *out, char *err,
                   size_t errlen)
{
    struct option lopts[CFG_N_OPTS + 1];
    for (size_t i = 0; i < CFG_N_OPTS; i++) {
        enum cfg_kind k = cfg_opts[i].kind;
        lopts[i] = (struct option){cfg_opts[i].name,
                                   k == CFG_FLAG || k == CFG_HELP ? no_argument : required_argument,
                                   NULL, (int)(256 + i)};
    }
    lopts[CFG_N_OPTS] = (struct option){0, 0, 0, 0};

    /* Pass 1: the config file and --help. */
    int ch, rc;
    opterr = 0;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
        if (ch < 256)
            continue;
        const struct cfg_opt *o = &cfg_opts[ch - 256];
        if (o->kind == CFG_HELP) {
            cfg_usage(out);
            return 1;
        }
        if (o->kind == CFG_CONFIG && (rc = cfg_parse_file(c, optarg, err, errlen)))
            return rc;
    }
    /* Pass 2: everything else, reporting unknown options. */
    optind = 1;
    while ((ch = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
        if (ch < 256)
            return cfg_fail(err, errlen, "unknown or incomplete option '%s'",
                            argv[optind - 1] ? argv[optind - 1] : "?");
        const struct cfg_opt *o = &cfg_opts[ch - 256];
        if (o->kind == CFG_CONFIG || o->kind == CFG_HELP)
            continue;
        if ((rc = cfg_apply(c, o, optarg, err, errlen)))
            return rc;
    }
    if (optind < argc)
        return cfg_fail(err, errlen, "unexpected argument '%s'", argv[optind]);
    return cfg_check(c, err, errlen);
}
