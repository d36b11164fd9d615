# lib.sh - sourced by the shell tests after they set bin (inferctl) and,
# for those that start daemons, inferd. It finds the sources (root) and
# ../shared (models and goldens: without it a test skips with 77, or fails
# when CI is set), makes $tmp, and on exit kills the daemons in $pid, $epid
# and $spid (a test empties each once it has reaped it), detaches BPF
# programs pinned at $pin and removes $tmp.
root=${INFERD_SOURCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
shared=${INFERD_SHARED:-$root/../shared}

skip() { echo "SKIP: $*"; exit 77; }

if [ ! -d "$shared/models" ]; then
  if [ -n "${CI:-}" ]; then echo "FAIL: $shared is missing (CI is set)"; exit 1; fi
  skip "$shared is missing"
fi

py=/usr/bin/python3
m=$shared/models/stories260K.gguf
tmp=$(mktemp -d)
sock=$tmp/inferd.sock
pid= epid= spid= pin=
cleanup() {
  for p in $pid $epid $spid; do kill -9 "$p" 2>/dev/null; done
  if [ -n "$pin" ] && [ -d "$pin" ]; then "$bin" bpf detach --pin-dir "$pin" >/dev/null 2>&1; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

pass=0 fail=0
ok() { pass=$((pass + 1)); echo "PASS: $1"; }
ko() { fail=$((fail + 1)); echo "FAIL: $1"; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else ko "$name"; fi; }
# The counts, and the exit status: 0 when nothing failed.
summary() { echo "$pass passed, $fail failed"; [ "$fail" -eq 0 ]; }

# Whether the daemon at socket $1 answers Stats (within 20 s).
wait_ready() {
  for _ in $(seq 1 1000); do
    "$bin" stats --socket "$1" >/dev/null 2>&1 && return 0
    sleep 0.02
  done
  return 1
}

# Starts inferd serving stories260K on $sock with one thread (extra flags
# appended; stderr in $tmp/inferd.log), its id in $pid, and checks that it
# answers.
start_inferd() {
  "$inferd" --socket "$sock" --model "stories=$m" --threads 1 --ctx-size 4096 \
    --drain-timeout-ms 500 "$@" 2>"$tmp/inferd.log" &
  pid=$!
  check "inferd starts" wait_ready "$sock"
}
