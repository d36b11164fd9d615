/* cli.h - small helpers shared by the inferctl subcommands: strict number
 * parsing, KV type names, JSON-safe text and JSON output. */
#ifndef INFERD_CLI_H
#define INFERD_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "dtype.h"

/* Each returns 0 on success, -1 (after printing "inferctl: --flag: ...")
 * when the text is not a number of the kind or is out of [lo, hi]. */
int cli_u32(const char *flag, const char *s, uint32_t lo, uint32_t hi, uint32_t *out);
int cli_u64(const char *flag, const char *s, uint64_t *out);
int cli_f32(const char *flag, const char *s, float lo, float hi, float *out);
/* A memory size: bytes with an optional K, M or G suffix (powers of 1024),
 * or "N%" of the memory available now. */
int cli_mem_size(const char *flag, const char *s, uint64_t *out);
/* "f32" | "f16" | "bf16" */
int cli_kv_type(const char *s, enum dt_type *out);
/* Parse "1,2,3" into a malloc'd array. */
int cli_ids(const char *s, int32_t **out, size_t *n);
/* Copy of bytes with invalid UTF-8 sequences replaced by U+FFFD, as a
 * NUL-terminated malloc'd string (JSON strings must be valid UTF-8). */
char *cli_utf8_sanitize(const char *s, size_t len);
/* Sorts v[0..n) in ascending order. */
void cli_sort(double *v, size_t n);
/* Sorts v[0..n) and returns its p-quantile (p in [0, 1]) by linear
 * interpolation; 0 when n == 0. */
double cli_quantile(double *v, size_t n, double p);
/* The p-quantile of the sorted v[0..n) by nearest rank; 0 when n == 0. */
double cli_rank(const double *v, size_t n, double p);
double cli_mean(const double *v, size_t n);
/* Prints o as one line of JSON (json_dumps flags) and frees it; 0 or
 * -ENOMEM. */
int cli_print_json(json_t *o, size_t flags);

#endif
