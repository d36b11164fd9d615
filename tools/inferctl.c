/* inferctl.c - the inferd command-line tool: dispatches to subcommands. */
#include <stdio.h>
#include <string.h>

#include "cmds.h"

struct inferctl_cmd {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
};

static const struct inferctl_cmd inferctl_cmds[] = {
    {"run", cmd_run, "generate text in-process (no daemon)"},
    {"eval", cmd_eval, "teacher-forced evaluation, raw logits to a file"},
    {"perplexity", cmd_perplexity, "perplexity of a model over a text file"},
    {"bench", cmd_bench, "prefill/decode speed against the machine's read bandwidth"},
    {"synth", cmd_synth, "write a random-weight GGUF of a real model's shape"},
    {"inspect", cmd_inspect, "print a GGUF file's metadata and tensors"},
    {"submit", cmd_submit, "generate text through a running inferd"},
    {"models", cmd_models, "list the models a running inferd serves"},
    {"stats", cmd_stats, "a running inferd's counters"},
    {"bpf", cmd_bpf, "attach/detach the eBPF programs to a running inferd's probes"},
    {"top", cmd_top, "live view of a running inferd (BPF maps or its stats)"},
    {"metrics", cmd_metrics, "Prometheus metrics of a running inferd"},
    {"bench-ipc", cmd_bench_ipc, "IPC round trips (echo daemon) against a Unix-socket baseline"},
};

static void inferctl_usage(FILE *fp)
{
    fprintf(fp, "usage: inferctl COMMAND [OPTIONS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof inferctl_cmds / sizeof inferctl_cmds[0]; i++)
        fprintf(fp, "  %-12s %s\n", inferctl_cmds[i].name, inferctl_cmds[i].help);
    fprintf(fp, "\n'inferctl COMMAND --help' describes a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        inferctl_usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        inferctl_usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof inferctl_cmds / sizeof inferctl_cmds[0]; i++)
        if (!strcmp(argv[1], inferctl_cmds[i].name))
            return inferctl_cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "inferctl: unknown command '%s'\n", argv[1]);
    inferctl_usage(stderr);
    return 2;
}
