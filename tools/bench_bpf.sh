#!/usr/bin/env bash
# bench_bpf.sh - the cost of the BPF programs: one daemon, the same fixed
# workload (inferctl bench --socket) run alternately with the programs
# detached and attached, several rounds; prints generated tokens/s of each
# and the overhead. Not a test (timings are noisy here; compare within one
# run). Needs root and a BPF build.
#   tools/bench_bpf.sh [BUILD_DIR] [ROUNDS]
set -eu
cd "$(dirname "$0")/.."
dir=${1:-build}
rounds=${2:-3}
inferd=$dir/daemon/inferd
bin=$dir/tools/inferctl
m=${INFERD_SHARED:-../shared}/models/stories260K.gguf
tmp=$(mktemp -d)
pin=/sys/fs/bpf/inferd-bench-$$
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  [ -d "$pin" ] && "$bin" bpf detach --pin-dir "$pin" >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT
"$inferd" --socket "$tmp/s" --model "stories=$m" --threads 1 --ctx-size 4096 2>"$tmp/log" &
pid=$!
for _ in $(seq 1 500); do "$bin" stats --socket "$tmp/s" >/dev/null 2>&1 && break; sleep 0.02; done
run() {
  "$bin" bench --socket "$tmp/s" --concurrency 8 --requests 256 --max-tokens 64 --temperature 0 --json |
    /usr/bin/python3 -c 'import json,sys; o=json.loads(sys.stdin.read().splitlines()[-1]); print(o["output_tok_s"])'
}
run >/dev/null # warm-up
off=() on=()
for r in $(seq 1 "$rounds"); do
  off+=("$(run)")
  "$bin" bpf attach --pid "$pid" --pin-dir "$pin" >/dev/null
  on+=("$(run)")
  "$bin" bpf detach --pin-dir "$pin" >/dev/null
done
/usr/bin/python3 - "${off[*]}" "${on[*]}" <<'PY'
import sys, statistics as s
off = [float(x) for x in sys.argv[1].split()]
on = [float(x) for x in sys.argv[2].split()]
mo, mn = s.median(off), s.median(on)
print("detached tok/s:", " ".join(f"{x:.0f}" for x in off), f"(median {mo:.0f})")
print("attached tok/s:", " ".join(f"{x:.0f}" for x in on), f"(median {mn:.0f})")
print(f"overhead: {100 * (mo - mn) / mo:+.2f}% (median of {len(off)} rounds)")
PY
