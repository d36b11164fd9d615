/* cmd_synth.c - `inferctl synth`: write a GGUF model of a known shape with
 * random weights (see synth.h).
 *
 *   inferctl synth --preset NAME --type TYPE --out PATH [--seed S]
 *                  [--vocab-from GGUF] [--pure] [--threads N]
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmds.h"
#include "dtype.h"
#include "synth.h"

static const char *const cs_types =
    "F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K Q4_K Q5_K Q6_K";

static void cs_usage(FILE *f)
{
    fprintf(f,
            "usage: inferctl synth --preset NAME --type TYPE --out PATH [--seed S]\n"
            "                      [--vocab-from GGUF] [--pure] [--threads N]\n"
            "Write a llama-architecture GGUF file with deterministic random weights.\n"
            "  --type       %s (any case)\n"
            "  --seed       weight seed (default 1)\n"
            "  --vocab-from copy the tokenizer.* keys of this GGUF (vocab size follows)\n"
            "  --pure       no Q6_K output.weight for the low-bit types\n"
            "  --threads    worker threads (default: one per CPU)\n"
            "presets:\n",
            cs_types);
    for (size_t i = 0; i < synth_n_presets(); i++) {
        const struct synth_preset *p = synth_preset_at(i);
        fprintf(f, "  %-16s %s\n", p->name, p->desc);
    }
}

static int cs_usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "inferctl synth: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(see inferctl synth --help)\n");
    return 2;
}

static int cs_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    if (!s || !*s || *s == '-' || *s == '+')
        return -EINVAL;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || *end || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

static void cs_note(void *ctx, const char *msg)
{
    (void)ctx;
    fprintf(stderr, "inferctl synth: note: %s\n", msg);
}

static double cs_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int cmd_synth(int argc, char **argv)
{
    enum { OPT_PRESET = 1, OPT_TYPE, OPT_OUT, OPT_SEED, OPT_VOCAB, OPT_PURE, OPT_THREADS,
           OPT_HELP };
    static const struct option opts[] = {
        {"preset", required_argument, NULL, OPT_PRESET},
        {"type", required_argument, NULL, OPT_TYPE},
        {"out", required_argument, NULL, OPT_OUT},
        {"seed", required_argument, NULL, OPT_SEED},
        {"vocab-from", required_argument, NULL, OPT_VOCAB},
        {"pure", no_argument, NULL, OPT_PURE},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    struct synth_params p = {.seed = 1, .note = cs_note};
    const char *preset = NULL, *type = NULL, *out = NULL;
    uint64_t v;

    optind = 0; /* GNU: full reset, in case getopt ran before */
    opterr = 0;
    for (;;) {
        int c = getopt_long(argc, argv, ":", opts, NULL);
        if (c == -1)
            break;
        switch (c) {
        case OPT_PRESET: preset = optarg; break;
        case OPT_TYPE: type = optarg; break;
        case OPT_OUT: out = optarg; break;
        case OPT_SEED:
            if (cs_parse_u64(optarg, UINT64_MAX, &v))
                return cs_usage_error("bad --seed '%s' (an unsigned integer)", optarg);
            p.seed = v;
            break;
        case OPT_VOCAB: p.vocab_from = optarg; break;
        case OPT_PURE: p.pure = true; break;
        case OPT_THREADS:
            if (cs_parse_u64(optarg, 1024, &v))
                return cs_usage_error("bad --threads '%s' (0..1024)", optarg);
            p.n_threads = (unsigned)v;
            break;
        case OPT_HELP:
            cs_usage(stdout);
            return 0;
        case ':':
            return cs_usage_error("option %s needs a value", argv[optind - 1]);
        default:
            return cs_usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cs_usage_error("unexpected argument '%s'", argv[optind]);
    if (!preset || !type || !out) {
        fprintf(stderr, "inferctl synth: --preset, --type and --out are required\n");
        cs_usage(stderr);
        return 2;
    }
    p.preset = synth_preset_find(preset);
    if (!p.preset)
        return cs_usage_error("unknown preset '%s'", preset);
    int t = dt_from_name(type);
    if (t < 0 || !synth_type_ok((enum dt_type)t)) {
        fprintf(stderr, "inferctl synth: unsupported --type '%s' (one of %s)\n", type, cs_types);
        return 2;
    }
    p.type = (enum dt_type)t;

    char err[512];
    struct synth_stats st;
    double t0 = cs_now();
    int rc = synth_write(out, &p, &st, err, sizeof err);
    double secs = cs_now() - t0;
    if (rc) {
        fprintf(stderr, "inferctl synth: %s\n", err[0] ? err : strerror(-rc));
        return 1;
    }
    printf("wrote %s: preset %s, type %s%s, %llu bytes, %llu params, %u tokens, %.2f s\n", out,
           p.preset->name, dt_name(p.type), p.pure ? " (pure)" : "",
           (unsigned long long)st.bytes, (unsigned long long)st.n_params, st.n_vocab, secs);
    return 0;
}
