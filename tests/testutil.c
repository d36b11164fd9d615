/* testutil.c - see testutil.h. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#ifndef INFERD_SOURCE_ROOT
#define INFERD_SOURCE_ROOT "."
#endif

const char *tu_shared(void)
{
    static char path[4096];
    if (path[0])
        return path;
    const char *env = getenv("INFERD_SHARED");
    if (env && *env)
        snprintf(path, sizeof path, "%s", env);
    else
        snprintf(path, sizeof path, "%s/../shared", INFERD_SOURCE_ROOT);
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        const char *ci = getenv("CI");
        if (ci && *ci) {
            fprintf(stderr, "FAIL: test data folder %s is missing (CI is set)\n", path);
            exit(1);
        }
        fprintf(stderr, "SKIP: test data folder %s is missing\n", path);
        exit(77);
    }
    return path;
}

const char *tu_path(const char *rel)
{
    static char bufs[8][4096];
    static unsigned slot;
    char *b = bufs[slot++ % 8];
    snprintf(b, 4096, "%s/%s", tu_shared(), rel);
    return b;
}

void *tu_read_file(const char *path, size_t *size)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    if (fseek(fp, 0, SEEK_END) != 0) {
        fclose(fp);
        return NULL;
    }
    long n = ftell(fp);
    if (n < 0 || fseek(fp, 0, SEEK_SET) != 0) {
        fclose(fp);
        return NULL;
    }
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, fp) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(fp);
    if (buf) {
        buf[n] = 0;
        if (size)
            *size = (size_t)n;
    }
    return buf;
}

int tu_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}

unsigned long long tu_rng_seed(void)
{
    const char *env = getenv("INFERD_TEST_SEED");
    if (env && *env)
        return strtoull(env, NULL, 0);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (unsigned long long)ts.tv_nsec ^ ((unsigned long long)ts.tv_sec << 20);
}

double tu_rand_uniform(unsigned long long *state)
{
    /* splitmix64 */
    unsigned long long z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

double tu_rand_normal(unsigned long long *state)
{
    double u1 = tu_rand_uniform(state), u2 = tu_rand_uniform(state);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
