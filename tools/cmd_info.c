/* cmd_info.c - `inferctl models` and `inferctl stats`: what a running
 * inferd serves, and its counters, finish reasons and latency histograms
 * (text, or one JSON object with --json). */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "client_cli.h"
#include "cmds.h"
#include "obs.h"

/* Parses --socket / --json / --help; 0 to go on, else the exit status + 1. */
static int info_args(const char *cmd, int argc, char **argv, const char **sock, bool *json)
{
    enum { O_SOCKET = 256, O_JSON, O_HELP };
    static const struct option opts[] = {
        {"socket", required_argument, 0, O_SOCKET},
        {"json", no_argument, 0, O_JSON},
        {"help", no_argument, 0, O_HELP},
        {0, 0, 0, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_SOCKET: *sock = optarg; break;
        case O_JSON: *json = true; break;
        case O_HELP:
            printf("usage: inferctl %s [--socket PATH] [--json]\n", cmd);
            return 1;
        default: return 3;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "inferctl %s: unexpected argument '%s'\n", cmd, argv[optind]);
        return 3;
    }
    return 0;
}

int cmd_models(int argc, char **argv)
{
    const char *sock = NULL;
    bool json = false;
    int a = info_args("models", argc, argv, &sock, &json);
    if (a)
        return a - 1;
    struct infer_client *c;
    const char *path = ccli_socket(sock);
    if (ccli_connect("models", path, NULL, &c))
        return 1;
    struct infer_model m[64];
    size_t n = 0;
    int rc = infer_list_models(c, m, 64, &n);
    infer_close(c);
    if (rc) {
        fprintf(stderr, "inferctl models: %s\n", strerror(-rc));
        return 1;
    }
    if (n > 64)
        n = 64;
    if (json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++) {
            json_t *o = json_object();
            json_object_set_new(o, "name", json_string(m[i].name));
            json_object_set_new(o, "arch", json_string(m[i].arch));
            json_object_set_new(o, "quant", json_string(m[i].quant));
            json_object_set_new(o, "n_params", json_integer((json_int_t)m[i].n_params));
            json_object_set_new(o, "n_ctx", json_integer(m[i].n_ctx));
            json_array_append_new(arr, o);
        }
        json_t *o = json_object();
        json_object_set_new(o, "models", arr);
        cli_print_json(o, JSON_COMPACT);
        return 0;
    }
    printf("%-24s %-10s %-8s %14s %8s\n", "NAME", "ARCH", "QUANT", "PARAMS", "CONTEXT");
    for (size_t i = 0; i < n; i++)
        printf("%-24s %-10s %-8s %14llu %8u\n", m[i].name, m[i].arch, m[i].quant,
               (unsigned long long)m[i].n_params, m[i].n_ctx);
    return 0;
}

int cmd_stats(int argc, char **argv)
{
    const char *sock = NULL;
    bool json = false;
    int a = info_args("stats", argc, argv, &sock, &json);
    if (a)
        return a - 1;
    struct infer_client *c;
    const char *path = ccli_socket(sock);
    if (ccli_connect("stats", path, NULL, &c))
        return 1;
    struct infer_stats s;
    struct infer_stats_detail *d = malloc(sizeof *d);
    struct prom_stats *st = malloc(sizeof *st);
    int rc = d && st ? infer_stats_detail(c, &s, d) : -ENOMEM;
    infer_close(c);
    if (rc) {
        fprintf(stderr, "inferctl stats: %s\n", strerror(-rc));
        free(d);
        free(st);
        return 1;
    }
    obs_stats_from_client(&s, d, st);
    free(d);
    if (json) {
        cli_print_json(obs_stats_json(st), JSON_COMPACT);
        free(st);
        return 0;
    }
    struct obs_counter rows[OBS_N_COUNTERS];
    obs_stats_counters(st, rows);
    for (size_t i = 0; i < OBS_N_COUNTERS; i++)
        printf("%-22s %llu\n", rows[i].name, (unsigned long long)rows[i].v);
    for (int i = 0; st->have_reasons && i < INFERD_PROBE_REASON_COUNT; i++)
        printf("finished_%-13s %llu\n", obs_reason_names[i],
               (unsigned long long)st->obs.finished[i]);
    if (st->have_hists) {
        putchar('\n');
        obs_print_hists(stdout, st->obs.h);
    }
    free(st);
    return 0;
}
