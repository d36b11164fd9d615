#!/usr/bin/env bash
# test_metrics.sh - `inferctl metrics`: the output follows the Prometheus
# text exposition grammar (checked by a small parser below: HELP/TYPE lines,
# metric and label names, values, one TYPE per family declared before its
# samples, histograms with cumulative buckets ending in +Inf = _count) and
# its values agree with `inferctl stats`. As root with BPF, `metrics --bpf`
# is checked too (grammar, and histogram counts = requests served).
# Usage: test_metrics.sh PATH/TO/inferd PATH/TO/inferctl
set -u
inferd=$1
bin=$2
root=${INFERD_SOURCE_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
shared=${INFERD_SHARED:-$root/../shared}
if [ ! -d "$shared/models" ]; then
  if [ -n "${CI:-}" ]; then echo "FAIL: $shared is missing (CI is set)"; exit 1; fi
  echo "SKIP: $shared is missing"; exit 77
fi
py=/usr/bin/python3
tmp=$(mktemp -d)
pin=/sys/fs/bpf/inferd-mtest-$$
pid=
cleanup() {
  [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
  [ -d "$pin" ] && "$bin" bpf detach --pin-dir "$pin" >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "PASS: $1"; }
ko() { fail=$((fail + 1)); echo "FAIL: $1"; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else ko "$name"; fi; }

m=$shared/models/stories260K.gguf
sock=$tmp/inferd.sock
wait_ready() {
  for _ in $(seq 1 1000); do
    "$bin" stats --socket "$1" >/dev/null 2>&1 && return 0
    sleep 0.02
  done
  return 1
}
"$inferd" --socket "$sock" --model "stories=$m" --threads 1 --ctx-size 4096 --drain-timeout-ms 500 2>"$tmp/inferd.log" &
pid=$!
check "inferd starts" wait_ready "$sock"

bpf=0
if [ "$(id -u)" = 0 ] && "$bin" bpf attach --pid "$pid" --pin-dir "$pin" >/dev/null 2>&1; then
  bpf=1
else
  echo "NOTE: metrics --bpf not checked (needs root and a BPF build)"
fi
N=4
for i in $(seq 1 $N); do
  "$bin" submit --socket "$sock" --tokens "1,403,407,261,378,300,301,302,303,304,305,306,307,308,309,310,311,312" \
    --temperature 0 --max-tokens $((i * 5)) --json --quiet --no-stream >/dev/null || ko "submit $i"
done
"$bin" metrics --socket "$sock" >"$tmp/m.txt"
check "metrics exit status" test $? -eq 0
"$bin" stats --socket "$sock" --json >"$tmp/stats.json"
if [ $bpf = 1 ]; then
  "$bin" metrics --socket "$sock" --bpf --pin-dir "$pin" >"$tmp/mb.txt"
  check "metrics --bpf exit status" test $? -eq 0
fi
"$bin" metrics --socket "$tmp/nonexistent.sock" >/dev/null 2>&1
check "metrics without a daemon fails" test $? -eq 1

check "metrics parse and agree with stats" $py - "$tmp" "$N" "$bpf" <<'EOF2'
import json, math, re, sys
d, n, bpf = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(rf"^({NAME})(?:\{{((?:{LABEL})(?:,{LABEL})*)?\}})? (\S+)(?: (-?\d+))?$")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}

def parse(text):
    assert text.endswith("\n"), "exposition must end with a newline"
    types, samples, helps = {}, [], set()
    for ln, line in enumerate(text.split("\n")[:-1], 1):
        if line.startswith("#"):
            p = line.split(" ", 3)
            if len(p) >= 3 and p[1] in ("HELP", "TYPE"):
                assert re.fullmatch(NAME, p[2]), f"{ln}: bad name {p[2]}"
                if p[1] == "TYPE":
                    assert len(p) == 4 and p[3] in TYPES, f"{ln}: bad TYPE line"
                    assert p[2] not in types, f"{ln}: second TYPE for {p[2]}"
                    assert not any(s[0] == p[2] for s in samples), f"{ln}: TYPE after samples"
                    types[p[2]] = p[3]
                else:
                    assert p[2] not in helps, f"{ln}: second HELP for {p[2]}"
                    helps.add(p[2])
            continue
        assert line.strip(), f"{ln}: empty line"
        mt = SAMPLE.match(line)
        assert mt, f"{ln}: not a sample: {line!r}"
        name, labels, value = mt.group(1), mt.group(2) or "", mt.group(3)
        v = float(value) if value not in ("+Inf", "-Inf", "NaN") else float(value.replace("Inf", "inf"))
        lab = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', labels))
        fam = name
        for suf in ("_bucket", "_sum", "_count"):
            if name.endswith(suf) and types.get(name[: -len(suf)]) == "histogram":
                fam = name[: -len(suf)]
        assert fam in types, f"{ln}: sample {name} of an undeclared family"
        if types[fam] == "histogram":
            assert name != fam, f"{ln}: bare histogram sample"
        if types[fam] == "counter":
            assert v >= 0 and name.endswith("_total"), f"{ln}: counter {name}"
        samples.append((name, lab, v, fam))
    # histograms: cumulative buckets, +Inf last and equal to _count
    for fam, t in types.items():
        if t != "histogram":
            continue
        b = [(s[1]["le"], s[2]) for s in samples if s[0] == fam + "_bucket"]
        assert b and b[-1][0] == "+Inf", f"{fam}: no +Inf bucket"
        les = [float(x.replace("+Inf", "inf")) for x, _ in b]
        assert les == sorted(les) and len(set(les)) == len(les), f"{fam}: le not increasing"
        assert all(b[i][1] <= b[i + 1][1] for i in range(len(b) - 1)), f"{fam}: not cumulative"
        cnt = [s[2] for s in samples if s[0] == fam + "_count"]
        assert cnt == [b[-1][1]], f"{fam}: _count != +Inf bucket"
        assert len([s for s in samples if s[0] == fam + "_sum"]) == 1, f"{fam}: _sum"
    return types, samples

def val(samples, name, **lab):
    r = [s[2] for s in samples if s[0] == name and all(s[1].get(k) == v for k, v in lab.items())]
    assert len(r) == 1, f"{name} {lab}: {len(r)} samples"
    return r[0]

st = json.load(open(d + "/stats.json"))
types, s = parse(open(d + "/m.txt").read())
assert all(x[1].get("model_name") == "stories" for x in s), "model_name label"
checks = {
    "vllm:num_requests_running": st["requests_running"],
    "vllm:num_requests_waiting": st["requests_waiting"],
    "vllm:kv_cache_usage_perc": st["kv_blocks_used"] / st["kv_blocks_total"],
    "vllm:prefix_cache_queries_total": 16 * st["prefix_cache_queries"],
    "vllm:prefix_cache_hits_total": 16 * st["prefix_cache_hits"],
    "inferd:prefix_cache_block_queries_total": st["prefix_cache_queries"],
    "inferd:prefix_cache_block_hits_total": st["prefix_cache_hits"],
    "vllm:num_preemptions_total": st["preemptions"],
    "vllm:prompt_tokens_total": st["prompt_tokens"],
    "vllm:generation_tokens_total": st["generated_tokens"],
    "inferd:requests_finished_total": st["requests_finished"],
    "inferd:kv_blocks_used": st["kv_blocks_used"],
    "inferd:kv_blocks_total": st["kv_blocks_total"],
}
for k, want in checks.items():
    assert math.isclose(val(s, k), want), f"{k}: {val(s, k)} != {want}"
assert st["requests_finished"] == n and st["generated_tokens"] == 5 * n * (n + 1) // 2, st
assert types["vllm:num_requests_running"] == "gauge"
if bpf:
    types, s = parse(open(d + "/mb.txt").read())
    for h in ("vllm:time_to_first_token_seconds", "vllm:e2e_request_latency_seconds",
              "vllm:request_queue_time_seconds", "vllm:request_prefill_time_seconds"):
        assert types[h] == "histogram" and val(s, h + "_count") == n, h
    assert val(s, "vllm:inter_token_latency_seconds_count") == st["generated_tokens"] - n
    for k in ("vllm:prompt_tokens_total", "vllm:generation_tokens_total",
              "inferd:requests_finished_total", "vllm:num_preemptions_total",
              "inferd:prefix_cache_block_queries_total", "inferd:prefix_cache_block_hits_total"):
        assert val(s, k) == checks[k], f"--bpf {k}: {val(s, k)} != {checks[k]}"
    assert val(s, "vllm:request_success_total", finished_reason="length") + \
        val(s, "vllm:request_success_total", finished_reason="stop") == n
EOF2

kill "$pid"; wait "$pid"
pid=
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
