#!/usr/bin/env bash
# test_metrics.sh - the Prometheus exposition of `inferctl metrics` and of
# the daemon's own GET /metrics (inferd --metrics-port 0; the port is read
# from its log, the page fetched with Python's urllib): both follow the
# text exposition grammar (checked by a small parser below: HELP/TYPE
# lines, metric and label names, values, one TYPE per family declared
# before its samples, histograms with cumulative buckets ending in +Inf =
# _count), carry the same samples, and agree with `inferctl stats --json`;
# the daemon's own histograms counted each of the N requests of known
# lengths once (TTFT, E2E, queue, prefill: N; inter-token latency: the
# tokens generated minus N) and the finish reasons exactly; the endpoint
# answers 404 elsewhere, 405 to other methods, and HEAD; an echo daemon
# counts its requests there too; under a 1 KiB message limit Stats drops
# its histograms but /metrics keeps them. As root with BPF, `metrics --bpf` is
# checked too (grammar, and every histogram equal to the daemon's own).
# Usage: test_metrics.sh PATH/TO/inferd PATH/TO/inferctl
set -u
inferd=$1
bin=$2
. "$(dirname "$0")/lib.sh"
pin=/sys/fs/bpf/inferd-mtest-$$

# The port the daemon chose (--metrics-port 0), from its log line
# "inferd: metrics on http://127.0.0.1:PORT/metrics".
metrics_url() { # log
  for _ in $(seq 1 500); do
    u=$(sed -n 's|^inferd: metrics on \(http://[^ ]*\)$|\1|p' "$1" | head -n 1)
    [ -n "$u" ] && { echo "$u"; return 0; }
    sleep 0.02
  done
  return 1
}
# GET (or another method) of a URL: the status, the Content-Type and the
# body into $2.status, $2.type and $2.
http_get() { # url out [method]
  $py - "$1" "$2" "${3:-GET}" <<'EOF3'
import sys, urllib.error, urllib.request
url, out, method = sys.argv[1:4]
req = urllib.request.Request(url, method=method, data=b"x" if method == "POST" else None)
try:
    r = urllib.request.urlopen(req, timeout=10)
    status, ctype, body = r.status, r.headers.get("Content-Type", ""), r.read()
except urllib.error.HTTPError as e:
    status, ctype, body = e.code, e.headers.get("Content-Type", ""), e.read()
open(out, "wb").write(body)
open(out + ".status", "w").write(str(status))
open(out + ".type", "w").write(ctype)
EOF3
}

start_inferd --metrics-port 0
url=$(metrics_url "$tmp/inferd.log")
check "inferd logs its metrics URL" test -n "$url"
base=${url%/metrics}

bpf=0
if [ "$(id -u)" = 0 ] && "$bin" bpf attach --pid "$pid" --pin-dir "$pin" >/dev/null 2>&1; then
  bpf=1
else
  echo "NOTE: metrics --bpf not checked (needs root and a BPF build)"
fi
N=4
for i in $(seq 1 $N); do
  "$bin" submit --socket "$sock" --tokens "1,403,407,261,378,300,301,302,303,304,305,306,307,308,309,310,311,312" \
    --temperature 0 --max-tokens $((i * 5)) --json --quiet --no-stream >"$tmp/r$i.json" || ko "submit $i"
done
"$bin" metrics --socket "$sock" >"$tmp/m.txt"
check "metrics exit status" test $? -eq 0
"$bin" stats --socket "$sock" --json >"$tmp/stats.json"
http_get "$url" "$tmp/h.txt"
check "GET /metrics: 200" grep -qx 200 "$tmp/h.txt.status"
check "GET /metrics: Content-Type" grep -qx "text/plain; version=0.0.4; charset=utf-8" "$tmp/h.txt.type"
http_get "$url" "$tmp/head.txt" HEAD
check "HEAD /metrics: 200, no body" bash -c "grep -qx 200 '$tmp/head.txt.status' && test ! -s '$tmp/head.txt'"
http_get "$base/other" "$tmp/404.txt"
check "GET /other: 404" grep -qx 404 "$tmp/404.txt.status"
http_get "$base/" "$tmp/404b.txt"
check "GET /: 404" grep -qx 404 "$tmp/404b.txt.status"
http_get "$url" "$tmp/405.txt" POST
check "POST /metrics: 405" grep -qx 405 "$tmp/405.txt.status"
if [ $bpf = 1 ]; then
  "$bin" metrics --socket "$sock" --bpf --pin-dir "$pin" >"$tmp/mb.txt"
  check "metrics --bpf exit status" test $? -eq 0
fi
"$bin" metrics --socket "$tmp/nonexistent.sock" >/dev/null 2>&1
check "metrics without a daemon fails" test $? -eq 1

check "metrics parse and agree with stats" $py - "$tmp" "$N" "$bpf" "$root/tests" <<'EOF2'
import json, math, sys
d, n, bpf = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
sys.path.insert(0, sys.argv[4])
from promtext import parse

def val(samples, name, **lab):
    r = [s[2] for s in samples if s[0] == name and all(s[1].get(k) == v for k, v in lab.items())]
    assert len(r) == 1, f"{name} {lab}: {len(r)} samples"
    return r[0]

def samples_by_key(s):
    return {(x[0], tuple(sorted(x[1].items()))): x[2] for x in s}

st = json.load(open(d + "/stats.json"))
types, s = parse(open(d + "/m.txt").read())
assert all(x[1].get("model_name") == "stories" for x in s), "model_name label"
# The daemon's own /metrics: the same renderer on the same figures (no
# request ran in between), so the same families and samples.
htypes, hs = parse(open(d + "/h.txt").read())
assert htypes == types, "families of GET /metrics and inferctl metrics differ"
assert samples_by_key(hs) == samples_by_key(s), "samples of GET /metrics and inferctl metrics differ"
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
reqs = [json.loads(open(f"{d}/r{i}.json").read().splitlines()[-1]) for i in range(1, n + 1)]
gen = [len(r["tokens"]) for r in reqs]
assert gen == [5 * i for i in range(1, n + 1)], gen
assert all(r["finish_reason"] == "length" for r in reqs)
assert st["requests_finished"] == n and st["generated_tokens"] == sum(gen), st
assert types["vllm:num_requests_running"] == "gauge"

# The daemon's own histograms: each request once, each later token once.
HIST = {"vllm:time_to_first_token_seconds": ("ttft", n),
        "vllm:e2e_request_latency_seconds": ("e2e", n),
        "vllm:request_queue_time_seconds": ("queue", n),
        "vllm:request_prefill_time_seconds": ("prefill", n),
        "vllm:inter_token_latency_seconds": ("itl", sum(g - 1 for g in gen)),
        "vllm:time_per_output_token_seconds": ("itl", sum(g - 1 for g in gen)),
        "vllm:iteration_tokens_total": ("batch_tokens", st["histograms"]["step"]["count"]),
        "inferd:engine_step_seconds": ("step", st["histograms"]["step"]["count"])}
for fam, (key, want) in HIST.items():
    h = st["histograms"][key]
    assert types[fam] == "histogram", fam
    assert val(s, fam + "_count") == want == h["count"], f"{fam}: {val(s, fam + '_count')} != {want}"
    assert sum(h["slots"]) == h["count"], key
    scale = 1.0 if key == "batch_tokens" else 1e-9
    assert math.isclose(val(s, fam + "_sum"), h["sum"] * scale, rel_tol=1e-12), fam
    # Every finite bucket holds the slots up to its bound (le = 2^i).
    for x in s:
        if x[0] == fam + "_bucket" and x[1]["le"] != "+Inf":
            i = round(math.log2(float(x[1]["le"]) / scale))
            assert x[2] == sum(h["slots"][: i + 1]), f"{fam} le={x[1]['le']}"
assert st["histograms"]["step"]["count"] >= max(gen), "one step per decoded token at least"
# Through the forward pass: the prompts less what the prefix cache held,
# then each generated token but the last.
cached = sum(r["cached_prompt_tokens"] for r in reqs)
assert cached == 16 * st["prefix_cache_hits"], (cached, st["prefix_cache_hits"])
assert st["histograms"]["batch_tokens"]["sum"] == \
    sum(r["n_prompt_tokens"] for r in reqs) - cached + sum(gen) - n, "batch tokens"
fin = st["finished_by_reason"]
assert fin == {"length": n, "eos": 0, "stop": 0, "cancelled": 0, "error": 0}, fin
assert val(s, "vllm:request_success_total", finished_reason="length") == n
assert val(s, "vllm:request_success_total", finished_reason="stop") == 0
assert val(s, "vllm:request_success_total", finished_reason="abort") == 0
for r, v in fin.items():
    assert val(s, "inferd:requests_by_reason_total", reason=r) == v, r

if bpf:
    types, b = parse(open(d + "/mb.txt").read())
    for h in ("vllm:time_to_first_token_seconds", "vllm:e2e_request_latency_seconds",
              "vllm:request_queue_time_seconds", "vllm:request_prefill_time_seconds"):
        assert types[h] == "histogram" and val(b, h + "_count") == n, h
    assert val(b, "vllm:inter_token_latency_seconds_count") == st["generated_tokens"] - n
    for k in ("vllm:prompt_tokens_total", "vllm:generation_tokens_total",
              "inferd:requests_finished_total", "vllm:num_preemptions_total",
              "inferd:prefix_cache_block_queries_total", "inferd:prefix_cache_block_hits_total"):
        assert val(b, k) == checks[k], f"--bpf {k}: {val(b, k)} != {checks[k]}"
    assert val(b, "vllm:request_success_total", finished_reason="length") + \
        val(b, "vllm:request_success_total", finished_reason="stop") == n
    # Attached before any request: the BPF histograms and the daemon's own
    # are the same, bucket for bucket, sums included.
    for fam in HIST:
        for suf in ("_bucket", "_sum", "_count"):
            a = {k: v for k, v in samples_by_key(s).items() if k[0] == fam + suf}
            c = {k: v for k, v in samples_by_key(b).items() if k[0] == fam + suf}
            assert a and a == c, f"{fam}{suf}: daemon {a} != bpf {c}"
EOF2

# The dashboard in the repository: every series its queries and variables
# name (histograms through _bucket/_sum/_count) is one the daemon exports,
# with the labels they select on.
check "grafana dashboard names exported series" $py - "$root/bpf/grafana-inferd.json" "$tmp/h.txt" "$root/tests" <<'EOF2'
import json, re, sys
sys.path.insert(0, sys.argv[3])
from promtext import parse
dash = json.load(open(sys.argv[1]))
_, samples = parse(open(sys.argv[2]).read())
queries = []
def walk(o):
    if isinstance(o, dict):
        for k, v in o.items():
            if k in ("expr", "query") and isinstance(v, str):
                queries.append(v)
            else:
                walk(v)
    elif isinstance(o, list):
        for v in o:
            walk(v)
walk(dash)
assert queries, "no queries in the dashboard"
series = {x[0] for x in samples}
labels = {k for x in samples for k in x[1]}
missing = []
for q in queries:
    for name in re.findall(r"(?:vllm|inferd):[a-zA-Z0-9_:]+", q):
        if name not in series:
            missing.append(f"series {name} (in {q!r})")
    for sel in re.findall(r"\{([^}]*)\}", q):
        for lab in re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", sel):
            if lab not in labels:
                missing.append(f"label {lab} (in {q!r})")
    for lab in re.findall(r"by \(([^)]*)\)", q):
        for l in re.split(r"\s*,\s*", lab.strip()):
            if l and l not in labels:
                missing.append(f"label {l} (in {q!r})")
if missing:
    print("\n".join(missing))
    sys.exit(1)
print(f"{len(queries)} queries, every series and label exported")
EOF2

# An echo daemon (no engine) counts its requests on /metrics too.
"$inferd" --socket "$tmp/echo.sock" --echo --metrics-port 0 --metrics-address 127.0.0.1 \
  2>"$tmp/echo.log" &
epid=$!
check "echo inferd starts" wait_ready "$tmp/echo.sock"
eurl=$(metrics_url "$tmp/echo.log")
for i in 1 2 3; do
  "$bin" submit --socket "$tmp/echo.sock" --tokens 5,6,7 --json --quiet >/dev/null || ko "echo submit $i"
done
http_get "$eurl" "$tmp/e.txt"
check "echo daemon's /metrics" $py - "$tmp/e.txt" <<'EOF2'
import re, sys
t = open(sys.argv[1]).read()
def v(name):
    m = re.search("^" + re.escape(name) + r" (\S+)$", t, re.M)
    assert m, name
    return float(m.group(1))
assert v('inferd:requests_finished_total{model_name="echo"}') == 3
assert v('vllm:request_success_total{model_name="echo",finished_reason="length"}') == 3
assert v('vllm:time_to_first_token_seconds_count{model_name="echo"}') == 0
EOF2
kill -TERM "$epid"; wait "$epid"
check "echo daemon exits cleanly" test $? -eq 0
epid=

# Messages limited to 1 KiB: Stats comes without its histograms (too large)
# but with the finish counts; GET /metrics, not bound by the rings, has all.
"$inferd" --socket "$tmp/small.sock" --model "stories=$m" --threads 1 --max-message-bytes 1024 \
  --metrics-port 0 2>"$tmp/small.log" &
spid=$!
check "inferd --max-message-bytes 1024 starts" wait_ready "$tmp/small.sock"
surl=$(metrics_url "$tmp/small.log")
"$bin" submit --socket "$tmp/small.sock" --tokens 1,403,407 --temperature 0 --max-tokens 40 \
  --json --quiet >/dev/null || ko "small submit"
"$bin" stats --socket "$tmp/small.sock" --json >"$tmp/small.json"
check "small messages: stats without histograms" $py -c "
import json,sys
o=json.load(open(sys.argv[1]))
assert 'histograms' not in o and o['finished_by_reason']['length']==1, o" "$tmp/small.json"
http_get "$surl" "$tmp/small.txt"
check "small messages: GET /metrics has the histograms" \
  grep -q '^vllm:inter_token_latency_seconds_count{model_name="stories"} 39$' "$tmp/small.txt"
kill -TERM "$spid"; wait "$spid"
check "small-message daemon exits cleanly" test $? -eq 0
spid=

kill -TERM "$pid"; wait "$pid"
check "daemon exits cleanly (metrics thread stopped)" test $? -eq 0
pid=
check "the metrics port is closed after exit" bash -c "! $py -c 'import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=5)' '$url' 2>/dev/null"
check "no sanitizer report" bash -c "! grep -qE 'runtime error|Sanitizer' '$tmp/inferd.log' '$tmp/echo.log' '$tmp/small.log'"
summary
