#!/usr/bin/env bash
# test_daemon.sh - inferd through inferctl: `submit` reproduces the golden
# greedy tokens and matches `run` under sampling, --cancel-after, `models`,
# `stats`, the load generator (`bench --socket`), `bench-ipc`, a submit
# killed with SIGKILL mid-stream (its KV released), the SIGTERM drain, a
# config file, and the error exits (bad settings, a metrics port in use).
# Usage:
#   test_daemon.sh PATH/TO/inferd PATH/TO/inferctl
# Needs ../shared (models and goldens); skips (77) without it unless CI is set.
set -u
inferd=$1
bin=$2
. "$(dirname "$0")/lib.sh"
g=$shared/golden/greedy/stories260K.json

start_inferd

# 1. Greedy submit reproduces the golden runs (F16 KV), the text streamed
#    before the JSON line.
"$bin" submit --socket "$sock" --prompt "Once upon a time" --temperature 0 --max-tokens 48 --json --quiet >"$tmp/s1.out"
check "submit exit status" test $? -eq 0
"$bin" submit --socket "$sock" --temperature 0 --max-tokens 48 --json --quiet >"$tmp/s2.out"
"$bin" submit --socket "$sock" --tokens 1,403,407,261,378 --temperature 0 --max-tokens 48 --json --quiet --no-stream >"$tmp/s3.out"
check "submit golden" $py - "$tmp" "$g" <<'EOF'
import json, sys
d, g = sys.argv[1], json.load(open(sys.argv[2]))["runs"]
def last(name):
    lines = open(d + "/" + name, encoding="utf-8").read().splitlines()
    return lines, json.loads(lines[-1])
lines, o = last("s1.out")
assert set(["prompt_tokens", "tokens", "text", "top_probs", "finish_reason"]) <= set(o), o.keys()
assert o["tokens"] == g[0]["generated_ids"], o["tokens"]
assert o["text"] == g[0]["generated_text"]
assert o["n_prompt_tokens"] == len(g[0]["prompt_ids"])
assert o["finish_reason"] == "length"
assert "".join(lines[:-1]).startswith(g[0]["generated_text"][:40])
_, o = last("s2.out")
assert g[3]["prompt"] == "" and o["tokens"] == g[3]["generated_ids"], "from BOS"
_, o = last("s3.out")
assert o["prompt_tokens"] == g[0]["prompt_ids"] and o["tokens"] == g[0]["generated_ids"], "token prompt"
EOF

# 2. Sampling: the same flags give the same sequences as `inferctl run`
#    (sample j of --parallel uses seed + j in both).
flags=(--prompt "The little dog" --prompt "Lily and Ben" --temperature 0.9 --top-k 20 --top-p 0.9 --min-p 0.02 --seed 7 --parallel 2 --max-tokens 30 --top-probs 3 --json --quiet)
"$bin" submit --socket "$sock" "${flags[@]}" >"$tmp/p1.out" 2>/dev/null
"$bin" run --model "$m" "${flags[@]}" >"$tmp/p2.out" 2>/dev/null
check "submit matches run" $py - "$tmp/p1.out" "$tmp/p2.out" <<'EOF'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1]).read().splitlines()]
b = [json.loads(l) for l in open(sys.argv[2]).read().splitlines()]
assert len(a) == len(b) == 4, (len(a), len(b))
for x, y in zip(a, b):
    assert x["tokens"] == y["tokens"], (x["tokens"], y["tokens"])
    assert x["text"] == y["text"]
    assert x["finish_reason"] == y["finish_reason"]
    assert [[t for t, _ in s] for s in x["top_probs"]] == [[t for t, _ in s] for s in y["top_probs"]]
    for s, u in zip(x["top_probs"], y["top_probs"]):
        for (_, p), (_, q) in zip(s, u):
            assert abs(p - q) < 1e-4, (p, q)
EOF

# 3. --cancel-after: the request ends early, cancelled.
"$bin" submit --socket "$sock" --temperature 0 --max-tokens 3000 --cancel-after 5 --json --quiet >"$tmp/c.out" 2>/dev/null
check "submit --cancel-after" $py -c "
import json,sys
o=json.loads(open(sys.argv[1]).read().splitlines()[-1])
assert o['finish_reason']=='cancelled' and 5<=len(o['tokens'])<3000, o['finish_reason']" "$tmp/c.out"

# 4. models and stats.
"$bin" models --socket "$sock" --json >"$tmp/models.out"
check "models --json" $py -c "
import json,sys
o=json.load(open(sys.argv[1]))['models']
assert len(o)==1 and o[0]['name']=='stories' and o[0]['arch']=='llama' and o[0]['n_ctx']==4096, o" "$tmp/models.out"
"$bin" stats --socket "$sock" --json >"$tmp/stats.out"
check "stats --json" $py -c "
import json,sys
o=json.load(open(sys.argv[1]))
for k in ['requests_running','requests_waiting','requests_finished','prompt_tokens','generated_tokens','kv_blocks_total','kv_blocks_used','prefix_cache_queries','prefix_cache_hits','preemptions']:
    assert k in o, k
assert o['requests_finished']>=6 and o['kv_blocks_total']>0 and o['kv_blocks_used']==0, o" "$tmp/stats.out"
"$bin" models --socket "$sock" | grep -q stories
check "models (text)" test $? -eq 0

# 5. The load generator.
"$bin" bench --socket "$sock" --concurrency 4 --requests 16 --max-tokens 16 --rate 200 --json >"$tmp/bench.out"
check "bench --socket exit status" test $? -eq 0
check "bench --socket --json" $py -c "
import json,sys
o=json.loads(open(sys.argv[1]).read().splitlines()[-1])
assert o['completed']==16 and o['failed']==0, o
for k in ['request_throughput','output_tok_s','ttft_ms_mean','ttft_ms_p50','ttft_ms_p99','tpot_ms_mean','tpot_ms_p50','tpot_ms_p99','itl_ms_mean','itl_ms_p50','itl_ms_p99','e2e_ms_mean','e2e_ms_p50','e2e_ms_p99']:
    assert o[k]>0, k" "$tmp/bench.out"

# 6. bench-ipc (its own echo daemon) prints the figures for 1 and 8 clients.
"$bin" bench-ipc --daemon "$inferd" --iterations 300 --json >"$tmp/ipc.out"
check "bench-ipc exit status" test $? -eq 0
check "bench-ipc --json" $py -c "
import json,sys
ls=[json.loads(l) for l in open(sys.argv[1]).read().splitlines()]
assert [o['clients'] for o in ls]==[1,8], ls
for o in ls:
    for k in ['rtt_us_p50','rtt_us_p99','rtt_us_p999','msgs_per_s','uds_rtt_us_p50','uds_msgs_per_s']:
        assert o[k]>0, k" "$tmp/ipc.out"

# 7. A submit killed with SIGKILL mid-stream: its request ends and every KV
#    block comes back.
"$bin" submit --socket "$sock" --temperature 0 --max-tokens 4000 --quiet >"$tmp/k.out" 2>/dev/null &
kpid=$!
for _ in $(seq 1 500); do [ -s "$tmp/k.out" ] && break; sleep 0.01; done
"$bin" stats --socket "$sock" --json >"$tmp/k1.json"
{ kill -9 $kpid; wait $kpid; } 2>/dev/null
check "killed client was generating" $py -c "
import json,sys
o=json.load(open(sys.argv[1]))
assert o['requests_running']+o['requests_waiting']>=1 and o['kv_blocks_used']>0, o" "$tmp/k1.json"
released=1
for _ in $(seq 1 150); do
  "$bin" stats --socket "$sock" --json >"$tmp/k2.json"
  if $py -c "
import json,sys
o=json.load(open(sys.argv[1]))
sys.exit(0 if o['requests_running']==0 and o['requests_waiting']==0 and o['kv_blocks_used']==0 else 1)" "$tmp/k2.json"; then released=0; break; fi
  sleep 0.02
done
check "killed client's KV released" test $released -eq 0

# 8. SIGTERM: a running submit gets its terminal event, the daemon exits 0
#    and removes its socket.
"$bin" submit --socket "$sock" --temperature 0 --max-tokens 4000 --json --quiet >"$tmp/d.out" 2>"$tmp/d.err" &
cpid=$!
for _ in $(seq 1 500); do [ -s "$tmp/d.out" ] && break; sleep 0.01; done
kill -TERM $pid
wait $pid
check "SIGTERM exit status 0" test $? -eq 0
pid=
wait $cpid
check "in-flight submit completes" test $? -eq 0
check "in-flight submit got its end" $py -c "
import json,sys
o=json.loads(open(sys.argv[1]).read().splitlines()[-1])
assert o['finish_reason'] in ('length','cancelled'), o['finish_reason']" "$tmp/d.out"
check "socket removed" test ! -e "$sock"
check "no sanitizer report" bash -c "! grep -qE 'runtime error|Sanitizer' '$tmp/inferd.log'"

# 9. A config file (echo engine, metrics on a free port), then errors:
#    among them a metrics port that the running daemon holds.
cat >"$tmp/inferd.conf" <<EOF2
# inferd settings
socket = $tmp/echo.sock
echo = true
max-concurrent 8
metrics-port = 0
metrics-address = 127.0.0.1
EOF2
"$inferd" --config "$tmp/inferd.conf" 2>"$tmp/echo.log" &
pid=$!
check "inferd --config starts" wait_ready "$tmp/echo.sock"
"$bin" models --socket "$tmp/echo.sock" | grep -q echo
check "echo daemon lists its model" test $? -eq 0
"$bin" submit --socket "$tmp/echo.sock" --tokens 5,6,7 --json --quiet >"$tmp/e.out"
check "echo submit" $py -c "
import json,sys
o=json.loads(open(sys.argv[1]).read().splitlines()[-1])
assert o['tokens']==[5,6,7], o" "$tmp/e.out"
mport=$(sed -n 's|^inferd: metrics on http://127\.0\.0\.1:\([0-9]*\)/metrics$|\1|p' "$tmp/echo.log")
check "metrics-port from the config file" test -n "$mport"
"$inferd" --echo --socket "$tmp/echo2.sock" --metrics-port "$mport" >/dev/null 2>"$tmp/e4"
check "inferd with a metrics port in use exits 1" test $? -eq 1
check "metrics port in use message" grep -q "cannot serve metrics: 127.0.0.1 port $mport: Address already in use" "$tmp/e4"
check "no socket left by the failed start" test ! -e "$tmp/echo2.sock"
kill -TERM $pid; wait $pid
check "echo daemon exit 0" test $? -eq 0
pid=

"$bin" submit --socket "$tmp/none.sock" --prompt x >/dev/null 2>"$tmp/e1"
check "submit without a daemon exits 1" test $? -eq 1
check "submit without a daemon says so" grep -q "no daemon" "$tmp/e1"
"$bin" submit --socket "$sock" --top-p 7 >/dev/null 2>&1
check "submit bad flag exits 2" test $? -eq 2
"$inferd" >/dev/null 2>&1
check "inferd without arguments exits 2" test $? -eq 2
"$inferd" --socket "$tmp/x.sock" --model "m=$tmp/missing.gguf" >/dev/null 2>"$tmp/e2"
check "inferd with a missing model exits 1" test $? -eq 1
check "missing model message" grep -q "missing.gguf" "$tmp/e2"
for v in abc 65536 -1 99999999999 ""; do
  "$inferd" --echo --socket "$tmp/x.sock" --metrics-port "$v" >/dev/null 2>"$tmp/e5"
  check "inferd --metrics-port '$v' exits 2" test $? -eq 2
  check "bad --metrics-port '$v' message" grep -q "metrics-port: expected an integer in \[0, 65535\]" "$tmp/e5"
done
"$inferd" --echo --socket "$tmp/x.sock" --metrics-port 0 --metrics-address localhost >/dev/null 2>"$tmp/e6"
check "inferd --metrics-address localhost exits 2" test $? -eq 2
check "bad --metrics-address message" grep -q "expected an IPv4 or IPv6 address, got 'localhost'" "$tmp/e6"
"$inferd" --echo --socket "$tmp/x.sock" --metrics-address 127.0.0.1 >/dev/null 2>"$tmp/e7"
check "inferd --metrics-address without a port exits 2" test $? -eq 2
check "--metrics-address without a port message" grep -q "needs --metrics-port" "$tmp/e7"
# An address of no local interface (TEST-NET-1), unless the kernel allows
# binding those.
if [ "$(cat /proc/sys/net/ipv4/ip_nonlocal_bind 2>/dev/null)" = 0 ]; then
  "$inferd" --echo --socket "$tmp/x.sock" --metrics-port 0 --metrics-address 192.0.2.1 >/dev/null 2>"$tmp/e8"
  check "inferd with an address it cannot bind exits 1" test $? -eq 1
  check "unbindable address message" grep -q "cannot serve metrics: 192.0.2.1 port 0:" "$tmp/e8"
fi
"$inferd" --help | grep -q -- "--metrics-port PORT"
check "--help documents --metrics-port" test $? -eq 0
"$inferd" --help | grep -q -- "--metrics-address ADDR"
check "--help documents --metrics-address" test $? -eq 0
echo "bad = 1" >"$tmp/bad.conf"
"$inferd" --config "$tmp/bad.conf" >/dev/null 2>"$tmp/e3"
check "bad config exits 2" test $? -eq 2
check "bad config message" grep -q "bad.conf:1" "$tmp/e3"

summary
