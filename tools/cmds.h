/* cmds.h - inferctl subcommands. Each takes the arguments after the program
 * name (argv[0] is the subcommand name), prints its own usage errors to
 * stderr and returns the process exit status (0 ok, 2 usage, 1 failure). */
#ifndef INFERD_CMDS_H
#define INFERD_CMDS_H

int cmd_run(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_bench(int argc, char **argv);
/* Commands that talk to a running inferd (libinferclient). */
int cmd_submit(int argc, char **argv);
int cmd_models(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_bench_ipc(int argc, char **argv);
/* `inferctl bench --socket PATH ...`: the load generator (cmd_loadgen.c). */
int cmd_bench_serve(int argc, char **argv);
int cmd_bench_sched(int argc, char **argv);
/* Observability (cmd_bpf.c, cmd_top.c): BPF programs on the USDT probes,
 * a live view, the Prometheus exposition. */
int cmd_bpf(int argc, char **argv);
int cmd_top(int argc, char **argv);
int cmd_metrics(int argc, char **argv);

#endif
