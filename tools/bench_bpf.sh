#!/usr/bin/env bash
# bench_bpf.sh - the cost of the BPF programs on a running inferd. One
# daemon serves the same fixed workload (inferctl bench --socket) in rounds,
# alternately with the programs detached and attached; the order flips every
# round (off-on, on-off, ...) so that a drift of the machine's speed weighs
# on both sides alike. Per run it records
#   - generated tokens/s (what a client sees), and
#   - the daemon's CPU time per generated token (utime + stime of all its
#     threads from /proc/PID/stat: a uprobe's cost is charged to the task
#     that hits it,
#     and CPU time is far less sensitive than wall time to other jobs),
# and from the attached runs' BPF counters the probe firings per token, so
# the extra CPU time divides into a cost per probe firing.
# Prints the medians and the overhead of each measure. Not a test (timings
# are noisy; compare only figures of one run). Needs root and a BPF build.
#   tools/bench_bpf.sh [BUILD_DIR] [ROUNDS] [MODEL.gguf] [THREADS]
# Environment: CONC (8), REQUESTS (2048), MAX_TOKENS (64).
set -eu
cd "$(dirname "$0")/.."
dir=${1:-build}
rounds=${2:-5}
m=${3:-${INFERD_SHARED:-../shared}/models/stories260K.gguf}
threads=${4:-1}
conc=${CONC:-8}
requests=${REQUESTS:-2048}
max_tokens=${MAX_TOKENS:-64}
inferd=$dir/daemon/inferd
bin=$dir/tools/inferctl
py=/usr/bin/python3
tmp=$(mktemp -d)
pin=/sys/fs/bpf/inferd-bench-$$
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  [ -d "$pin" ] && "$bin" bpf detach --pin-dir "$pin" >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT
"$inferd" --socket "$tmp/s" --model "m=$m" --threads "$threads" --ctx-size 4096 2>"$tmp/log" &
pid=$!
for _ in $(seq 1 1500); do "$bin" stats --socket "$tmp/s" >/dev/null 2>&1 && break; sleep 0.02; done

# CPU time of the daemon (all its threads: utime + stime), ns; in clock
# ticks (10 ms), so runs should last seconds.
hz=$(getconf CLK_TCK)
cpu_ns() { awk -v hz="$hz" '{printf "%.0f\n", ($14 + $15) * 1e9 / hz}' "/proc/$pid/stat"; }
# Prints "tok_s cpu_us_per_token generated_tokens"
run() {
  local c0 c1 out
  c0=$(cpu_ns)
  out=$("$bin" bench --socket "$tmp/s" --concurrency "$conc" --requests "$requests" \
    --max-tokens "$max_tokens" --temperature 0 --json | tail -n 1)
  c1=$(cpu_ns)
  "$py" - "$out" "$c0" "$c1" <<'PY'
import json, sys
o = json.loads(sys.argv[1])
ns = int(sys.argv[3]) - int(sys.argv[2])
gen = o["output_tokens"]
print(o["output_tok_s"], 1e-3 * ns / gen, gen)
PY
}
# Probe firings so far, from the pinned maps: the 11 probes the programs
# attach to (bpf/inferd.bpf.c; step_begin is not attached), each counted
# once per firing (admission and prefix_query fire once per admission:
# first ones plus readmissions after preemption).
firings() {
  "$bin" top --once --json --pin-dir "$pin" --socket "$tmp/s" | "$py" -c '
import json, sys
b = json.load(sys.stdin)["bpf"]
c, h = b["counters"], b["hists"]
fin = sum(c[k] for k in ("finished_length", "finished_eos", "finished_stop",
                         "finished_cancelled", "finished_error"))
adm = c["requests_queued"] + c["preemptions"]
print(c["requests_queued"] + 2 * adm + h["ttft"]["count"] + c["token_events"] + fin
      + c["cancels"] + c["preemptions"] + c["steps"] + c["kv_allocs"] + c["kv_frees"])'
}

run >/dev/null # warm-up
: >"$tmp/off"
: >"$tmp/on"
: >"$tmp/fire"
on_run() {
  "$bin" bpf attach --pid "$pid" --pin-dir "$pin" >/dev/null
  local f0 f1 r
  f0=$(firings)
  r=$(run)
  f1=$(firings)
  "$bin" bpf detach --pin-dir "$pin" >/dev/null
  echo "$r" >>"$tmp/on"
  echo "$((f1 - f0)) $(echo "$r" | awk '{print $3}')" >>"$tmp/fire"
}
for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) = 1 ]; then
    run >>"$tmp/off"
    on_run
  else
    on_run
    run >>"$tmp/off"
  fi
done
echo "model $m, $threads thread(s), concurrency $conc, $requests requests x $max_tokens tokens, $rounds rounds"
"$py" - "$tmp/off" "$tmp/on" "$tmp/fire" <<'PY'
import sys, statistics as st
def rows(p):
    return [[float(x) for x in l.split()] for l in open(p) if l.strip()]
off, on, fire = rows(sys.argv[1]), rows(sys.argv[2]), rows(sys.argv[3])
def med(rs, i): return st.median(r[i] for r in rs)
def show(name, rs):
    print(f"{name} tok/s: " + " ".join(f"{r[0]:.0f}" for r in rs) + f"  (median {med(rs, 0):.0f})")
    print(f"{name} daemon CPU us/token: " + " ".join(f"{r[1]:.2f}" for r in rs)
          + f"  (median {med(rs, 1):.2f})")
show("detached", off)
show("attached", on)
t_off, t_on = med(off, 0), med(on, 0)
c_off, c_on = med(off, 1), med(on, 1)
per_tok = st.median(f / g for f, g in fire)
print(f"throughput overhead: {100 * (t_off - t_on) / t_off:+.2f}%")
print(f"CPU time overhead:   {100 * (c_on - c_off) / c_off:+.2f}%")
print(f"probe firings per generated token: {per_tok:.2f}; "
      f"implied cost per firing: {1000 * (c_on - c_off) / per_tok:.0f} ns")
PY
