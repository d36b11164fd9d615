/* cmd_eval.c - `inferctl eval` (teacher-forced logits to a file) and
 * `inferctl perplexity` (perplexity over a text file, chunked by the
 * context length). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmds.h"
#include "engine.h"

enum { O_MODEL = 256, O_TOKENS, O_KV, O_THREADS, O_OUT, O_FILE, O_CTX, O_CHUNKS, O_HELP };

static const struct option eval_opts[] = {
    {"model", required_argument, 0, O_MODEL},
    {"tokens", required_argument, 0, O_TOKENS},
    {"kv-type", required_argument, 0, O_KV},
    {"threads", required_argument, 0, O_THREADS},
    {"logits-out", required_argument, 0, O_OUT},
    {"file", required_argument, 0, O_FILE},
    {"ctx-size", required_argument, 0, O_CTX},
    {"chunks", required_argument, 0, O_CHUNKS},
    {"help", no_argument, 0, O_HELP},
    {0, 0, 0, 0},
};

struct eval_args {
    struct engine_params ep;
    const char *tokens, *out, *file;
    uint32_t chunks;
};

/* Parse the options both commands share; returns -1 on a usage error, 1 for
 * --help, 0 otherwise. */
static int eval_parse(int argc, char **argv, struct eval_args *a, const char *usage)
{
    engine_params_default(&a->ep);
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", eval_opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case O_MODEL: a->ep.model_path = optarg; break;
        case O_TOKENS: a->tokens = optarg; break;
        case O_KV: bad = cli_kv_type(optarg, &a->ep.kv_type); break;
        case O_THREADS: bad = cli_u32("--threads", optarg, 1, 1024, &a->ep.n_threads); break;
        case O_OUT: a->out = optarg; break;
        case O_FILE: a->file = optarg; break;
        case O_CTX: bad = cli_u32("--ctx-size", optarg, 16, 1u << 20, &a->ep.n_ctx); break;
        case O_CHUNKS: bad = cli_u32("--chunks", optarg, 1, 1u << 30, &a->chunks); break;
        case O_HELP: fputs(usage, stdout); return 1;
        default: bad = 1; break;
        }
        if (bad)
            return -1;
    }
    if (optind < argc) {
        fprintf(stderr, "inferctl: unexpected argument '%s'\n%s", argv[optind], usage);
        return -1;
    }
    if (!a->ep.model_path) {
        fprintf(stderr, "inferctl: --model is required\n%s", usage);
        return -1;
    }
    return 0;
}

int cmd_eval(int argc, char **argv)
{
    static const char usage[] =
        "usage: inferctl eval --model PATH --tokens ID,ID,... --logits-out FILE\n"
        "                     [--kv-type f32|f16|bf16] [--threads N] [--ctx-size N]\n"
        "Writes little-endian float32 logits [n_tokens][n_vocab]; row i follows token i.\n";
    struct eval_args a = {0};
    int p = eval_parse(argc, argv, &a, usage);
    if (p)
        return p > 0 ? 0 : 2;
    if (!a.tokens || !a.out) {
        fprintf(stderr, "inferctl eval: --tokens and --logits-out are required\n%s", usage);
        return 2;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    if (cli_ids(a.tokens, &ids, &n))
        return 2;
    if (!a.ep.n_ctx)
        a.ep.n_ctx = (uint32_t)(n < 16 ? 16 : n);
    char err[512] = "";
    struct engine *e = NULL;
    float *logits = NULL;
    FILE *fp = NULL;
    int rc = 1;
    int r = engine_open(&a.ep, &e, err, sizeof err);
    if (r) {
        fprintf(stderr, "inferctl eval: %s: %s\n", a.ep.model_path, err);
        goto out;
    }
    uint32_t nv = e->model->hp.n_vocab;
    for (size_t i = 0; i < n; i++)
        if ((uint32_t)ids[i] >= nv) {
            fprintf(stderr, "inferctl eval: token id %d is outside the vocabulary (%u)\n", ids[i],
                    nv);
            goto out;
        }
    if (n > e->n_ctx) {
        fprintf(stderr, "inferctl eval: %zu tokens exceed the context (%u)\n", n, e->n_ctx);
        goto out;
    }
    logits = malloc(n * nv * sizeof *logits);
    if (!logits) {
        fprintf(stderr, "inferctl eval: out of memory\n");
        goto out;
    }
    r = engine_eval(e, ids, n, logits);
    if (r) {
        fprintf(stderr, "inferctl eval: evaluation failed: %s\n", strerror(-r));
        goto out;
    }
    fp = fopen(a.out, "wb");
    if (!fp || fwrite(logits, sizeof *logits, n * nv, fp) != n * nv || fclose(fp) != 0) {
        fprintf(stderr, "inferctl eval: cannot write %s: %s\n", a.out, strerror(errno));
        fp = NULL;
        goto out;
    }
    fp = NULL;
    rc = 0;
out:
    free(ids);
    free(logits);
    engine_close(e);
    return rc;
}

int cmd_perplexity(int argc, char **argv)
{
    static const char usage[] =
        "usage: inferctl perplexity --model PATH --file TEXT [--ctx-size N] [--chunks N]\n"
        "                           [--kv-type f32|f16|bf16] [--threads N]\n"
        "Splits the tokenized text into chunks of the context length; each chunk starts with\n"
        "BOS and the second half of its tokens is scored.\n";
    struct eval_args a = {0};
    int p = eval_parse(argc, argv, &a, usage);
    if (p)
        return p > 0 ? 0 : 2;
    if (!a.file) {
        fprintf(stderr, "inferctl perplexity: --file is required\n%s", usage);
        return 2;
    }
    char err[512] = "";
    struct engine *e = NULL;
    char *text = NULL;
    int32_t *ids = NULL;
    float *logits = NULL;
    int rc = 1;
    FILE *fp = fopen(a.file, "rb");
    if (!fp) {
        fprintf(stderr, "inferctl perplexity: cannot open %s: %s\n", a.file, strerror(errno));
        return 1;
    }
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 65536;
            char *nt = realloc(text, cap);
            if (!nt)
                break;
            text = nt;
        }
        size_t got = fread(text + len, 1, cap - len, fp);
        len += got;
        if (!got)
            break;
    }
    fclose(fp);
    if (!text) {
        fprintf(stderr, "inferctl perplexity: out of memory\n");
        return 1;
    }
    int r = engine_open(&a.ep, &e, err, sizeof err);
    if (r) {
        fprintf(stderr, "inferctl perplexity: %s: %s\n", a.ep.model_path, err);
        goto out;
    }
    size_t n = 0;
    r = engine_tokenize(e, text, len, &ids, &n);
    if (r) {
        fprintf(stderr, "inferctl perplexity: cannot tokenize: %s\n", strerror(-r));
        goto out;
    }
    size_t ctx = e->n_ctx;
    size_t n_chunks = n / ctx;
    if (a.chunks && a.chunks < n_chunks)
        n_chunks = a.chunks;
    if (n_chunks == 0) {
        fprintf(stderr, "inferctl perplexity: the text has %zu tokens, fewer than one context (%zu)\n",
                n, ctx);
        goto out;
    }
    uint32_t nv = e->model->hp.n_vocab;
    logits = malloc(ctx * nv * sizeof *logits);
    if (!logits) {
        fprintf(stderr, "inferctl perplexity: out of memory\n");
        goto out;
    }
    int32_t bos = tok_bos(e->tok);
    double nll = 0, nll2 = 0;
    size_t count = 0, first = ctx / 2;
    for (size_t ch = 0; ch < n_chunks; ch++) {
        int32_t *chunk = ids + ch * ctx;
        int32_t saved = chunk[0];
        if (bos >= 0)
            chunk[0] = bos;
        r = engine_eval(e, chunk, ctx, logits);
        chunk[0] = saved;
        if (r) {
            fprintf(stderr, "inferctl perplexity: evaluation failed: %s\n", strerror(-r));
            goto out;
        }
        for (size_t i = first; i + 1 < ctx; i++) {
            double lp = smp_logprob(logits + i * nv, nv, chunk[i + 1]);
            nll -= lp;
            nll2 += lp * lp;
            count++;
        }
        printf("[%zu]%.4f%s", ch + 1, exp(nll / (double)count), ch + 1 < n_chunks ? "," : "\n");
        fflush(stdout);
    }
    double mean = nll / (double)count;
    double var = nll2 / (double)count - mean * mean;
    double ppl = exp(mean);
    double unc = count > 1 && var > 0 ? ppl * sqrt(var / (double)(count - 1)) : 0;
    printf("Final estimate: PPL = %.4f +/- %.5f (%zu chunks of %zu tokens, %zu scored)\n", ppl, unc,
           n_chunks, ctx, count);
    rc = 0;
out:
    free(text);
    free(ids);
    free(logits);
    engine_close(e);
    return rc;
}
