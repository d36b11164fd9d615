/* testutil.h - helpers shared by the Check test programs.
 *
 * Test data lives in ../shared beside the repository root (models, goldens,
 * vocab fixtures). A test that needs it calls tu_shared() first: when the
 * folder is absent the test program is skipped (exit 77) with a message,
 * except under CI (the CI variable set), where missing data is a failure so
 * that a wrong path can never hide behind a skip.
 */
#ifndef INFERD_TESTUTIL_H
#define INFERD_TESTUTIL_H

#include <check.h>
#include <stddef.h>

/* Absolute path of the shared data folder (INFERD_SHARED overrides). Exits
 * 77 (skip) or 1 (under CI) when it is missing. */
const char *tu_shared(void);
/* tu_shared() + "/" + rel, in a static rotating buffer (8 slots). */
const char *tu_path(const char *rel);
/* Whole file into a malloc'd buffer (NUL-terminated past size). NULL on
 * error. */
void *tu_read_file(const char *path, size_t *size);
/* Run a suite with CK_FORK, print Check's summary, return the exit code. */
int tu_run_suite(Suite *s);
/* Deterministic per-test RNG for fresh random data (seed printed on failure
 * paths by the caller). */
unsigned long long tu_rng_seed(void);
double tu_rand_uniform(unsigned long long *state); /* [0, 1) */
double tu_rand_normal(unsigned long long *state);

#endif
