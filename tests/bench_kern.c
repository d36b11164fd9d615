/* bench_kern.c - micro-benchmark of kern_matmul: GMAC/s (and weight GB/s)
 * per weight type and token count on a TinyLlama-like FFN shape.
 *
 *   bench_kern [-t threads] [-r rows] [-c cols] [-m MiB of weights]
 *              [-s seconds] [-R repeats, best kept] [-p row padding bytes] [types...] -- [n...]
 *
 * Several matrices of the same shape (about -m MiB in all) are cycled so
 * that decode (n = 1) streams from memory as it does in a model. Types:
 * f32 f16 bf16 q4_0 q8_0 q4_k q6_k.
 */
#include "kern.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int type_of(const char *s, enum dt_type *t)
{
    static const struct {
        const char *name;
        enum dt_type t;
    } map[] = {
        { "f32", DT_F32 },   { "f16", DT_F16 },   { "bf16", DT_BF16 }, { "q4_0", DT_Q4_0 },
        { "q8_0", DT_Q8_0 }, { "q4_k", DT_Q4_K }, { "q6_k", DT_Q6_K },
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        if (!strcmp(s, map[i].name)) {
            *t = map[i].t;
            return 0;
        }
    }
    return -1;
}

int main(int argc, char **argv)
{
    unsigned threads = 2;
    size_t rows = 5632, cols = 2048, mib = 256;
    double secs = 0.5;
    int reps = 1;
    size_t pad = 0;
    enum dt_type types[16];
    size_t nt = 0, ns[32], nn = 0;
    int i = 1;
    for (; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc)
            threads = (unsigned)atoi(argv[++i]);
        else if (!strcmp(argv[i], "-r") && i + 1 < argc)
            rows = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "-c") && i + 1 < argc)
            cols = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "-m") && i + 1 < argc)
            mib = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "-p") && i + 1 < argc)
            pad = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "-R") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-s") && i + 1 < argc)
            secs = atof(argv[++i]);
        else if (!strcmp(argv[i], "--")) {
            i++;
            break;
        } else if (nt < 16 && type_of(argv[i], &types[nt]) == 0)
            nt++;
        else {
            fprintf(stderr, "bench_kern: bad argument %s\n", argv[i]);
            return 2;
        }
    }
    for (; i < argc && nn < 32; i++)
        ns[nn++] = (size_t)atol(argv[i]);
    if (nt == 0) {
        types[nt++] = DT_Q4_0;
        types[nt++] = DT_Q8_0;
    }
    if (nn == 0) {
        const size_t d[] = { 1, 2, 4, 8, 16, 64 };
        for (; nn < 6; nn++)
            ns[nn] = d[nn];
    }
    struct tp_pool *pool = NULL;
    if (tp_create(threads, &pool)) {
        fprintf(stderr, "bench_kern: no thread pool\n");
        return 1;
    }
    struct kern_ctx ctx;
    if (kern_ctx_init(&ctx, kern_isa_best(), pool)) {
        fprintf(stderr, "bench_kern: no kernel context\n");
        return 1;
    }
    size_t nmax = 1;
    for (size_t k = 0; k < nn; k++)
        nmax = ns[k] > nmax ? ns[k] : nmax;
    float *x = malloc(nmax * cols * sizeof(float)), *y = malloc(nmax * rows * sizeof(float));
    float *row = malloc(cols * sizeof(float));
    if (!x || !y || !row)
        return 1;
    unsigned long long s = 88172645463325252ull;
    for (size_t k = 0; k < nmax * cols; k++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        x[k] = (float)((double)(s >> 11) / 9007199254740992.0 - 0.5);
    }
    printf("isa %s, %u threads, %zux%zu\n", kern_isa_name(ctx.isa), threads, rows, cols);
    for (size_t ti = 0; ti < nt; ti++) {
        const enum dt_type t = types[ti];
        const size_t rb = dt_row_size(t, cols) + pad;
        const size_t mat_bytes = rb * rows;
        size_t nmat = mib * 1024 * 1024 / mat_bytes;
        nmat = nmat < 1 ? 1 : nmat;
        uint8_t *w = aligned_alloc(4096, (nmat * mat_bytes + 4095) / 4096 * 4096);
        if (!w)
            return 1;
        /* a few distinct quantized rows, repeated */
        for (size_t r = 0; r < 16 && r < rows * nmat; r++) {
            for (size_t k = 0; k < cols; k++) {
                s ^= s << 13, s ^= s >> 7, s ^= s << 17;
                row[k] = (float)((double)(s >> 11) / 9007199254740992.0 - 0.5);
            }
            memset(w + r * rb, 0, rb);
            dt_get(t)->from_float(row, w + r * rb, cols);
        }
        for (size_t r = 16; r < rows * nmat; r++)
            memcpy(w + r * rb, w + (r % 16) * rb, rb);
        printf("%-5s", dt_name(t));
        for (size_t k = 0; k < nn; k++) {
            const size_t n = ns[k];
            struct kern_mat m = { t, rows, cols, rb, w };
            double best = 0.0, best_gbs = 0.0;
            for (int rep = 0; rep < reps; rep++) {
                size_t iters = 0;
                const double t0 = now();
                double t1;
                do {
                    m.data = w + (iters % nmat) * mat_bytes;
                    kern_matmul(&ctx, &m, n, x, cols, y, rows);
                    iters++;
                    t1 = now();
                } while (t1 - t0 < secs);
                const double macs = (double)iters * (double)rows * (double)cols * (double)n;
                if (macs / (t1 - t0) > best) {
                    best = macs / (t1 - t0);
                    best_gbs = (double)iters * (double)mat_bytes / (t1 - t0) * 1e-9;
                }
            }
            const double gbs = best_gbs;
            printf("  n=%zu %.1f GMAC/s", n, best * 1e-9);
            if (n == 1)
                printf(" (%.1f GB/s)", gbs);
            fflush(stdout);
        }
        printf("\n");
        free(w);
    }
    kern_ctx_free(&ctx);
    tp_free(pool);
    free(x);
    free(y);
    free(row);
    return 0;
}
