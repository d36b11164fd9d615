#!/usr/bin/env bash
# test_bpf.sh - the BPF programs against a live inferd: attach them to the
# daemon's USDT probes (inferctl bpf attach --pid), serve N requests of known
# lengths, then read the pinned maps with bpftool (BTF-formatted JSON) and
# check that every histogram counted each request once, that the token
# counters are exact, and that they agree with the daemon's own Stats (its
# own histograms and finish counts included: the same slots, counts and
# sums, as both are fed the same values at the same points) and with
# `inferctl top --json`; detach and check nothing stays pinned.
# Usage: test_bpf.sh PATH/TO/inferd PATH/TO/inferctl
# Skips (77) without root, without BPF support in the build, or without
# ../shared (models) unless CI is set.
set -u
inferd=$1
bin=$2
. "$(dirname "$0")/lib.sh"
if [ "$(id -u)" != 0 ]; then
  skip "attaching uprobes needs root (CAP_SYS_ADMIN); running as uid $(id -u)"
fi
if "$bin" bpf detach --pin-dir /nonexistent/x 2>&1 | grep -q "built without BPF"; then
  skip "inferctl was built without BPF (clang, bpftool, libbpf or kernel BTF missing)"
fi
pin=/sys/fs/bpf/inferd-test-$$

start_inferd
"$bin" bpf attach --pid "$pid" --pin-dir "$pin" >"$tmp/attach.out" 2>&1
rc=$?
cat "$tmp/attach.out"
check "bpf attach" test $rc -eq 0
if [ $rc -ne 0 ]; then echo "$pass passed, $fail failed"; exit 1; fi
check "maps pinned" test -e "$pin/hists" -a -e "$pin/counters"

# N requests of known prompt lengths (token prompts; the 2nd repeats the
# 1st so the prefix cache hits) and max_tokens; greedy.
N=0
prompts=("1,403,407,261,378,300,301,302,303,304,305,306,307,308,309,310,311,312,313,314,315"
         "1,403,407,261,378,300,301,302,303,304,305,306,307,308,309,310,311,312,313,314,315"
         "1,403,407" "1,500" "1,403,407,261,378,290,291,292")
maxt=(12 7 20 1 33)
for i in "${!prompts[@]}"; do
  "$bin" submit --socket "$sock" --tokens "${prompts[$i]}" --temperature 0 --max-tokens "${maxt[$i]}" \
    --json --quiet --no-stream >"$tmp/r$i.json" 2>>"$tmp/submit.err" || ko "submit $i"
  N=$((N + 1))
done
"$bin" stats --socket "$sock" --json >"$tmp/stats.json"
bpftool map dump pinned "$pin/hists" -j >"$tmp/hists.json"
bpftool map dump pinned "$pin/counters" -j >"$tmp/counters.json"
"$bin" top --once --json --socket "$sock" --pin-dir "$pin" >"$tmp/top.json"

check "maps agree with the requests and the daemon's stats" $py - "$tmp" "$N" <<'EOF2'
import json, sys
d, n = sys.argv[1], int(sys.argv[2])
reqs = [json.loads(open(f"{d}/r{i}.json").read().splitlines()[-1]) for i in range(n)]
prompt = sum(r["n_prompt_tokens"] for r in reqs)
gen = sum(len(r["tokens"]) for r in reqs)
st = json.load(open(d + "/stats.json"))
H = ["ttft", "itl", "e2e", "queue", "prefill", "step", "batch_tokens"]
C = ["finished_length", "finished_eos", "finished_stop", "finished_cancelled", "finished_error",
     "requests_queued", "prompt_tokens", "generated_tokens", "token_events",
     "prefix_query_tokens", "prefix_hit_tokens", "prefix_query_blocks", "prefix_hit_blocks",
     "preemptions", "kv_blocks_in_use", "kv_allocs", "kv_frees", "steps", "cached_prompt_tokens",
     "cancels"]
hd = json.load(open(d + "/hists.json"))
cd = json.load(open(d + "/counters.json"))
# bpftool -j gives raw bytes plus, with BTF, "formatted": a struct with
# slots/count/sum.
def fmt(e):
    return e.get("formatted", e)
h = {H[fmt(e)["key"]]: fmt(e)["value"] for e in hd}
c = {C[fmt(e)["key"]]: fmt(e)["value"] for e in cd}
assert set(h["ttft"]) == {"slots", "count", "sum"}, h["ttft"].keys()
errs = []
def eq(name, a, b):
    if a != b:
        errs.append(f"{name}: {a} != {b}")
for k in H:
    eq(k + " slots sum to count", sum(h[k]["slots"]), h[k]["count"])
for k in ["ttft", "e2e", "queue", "prefill"]:
    eq(k + " count", h[k]["count"], n)
eq("itl count", h["itl"]["count"], gen - n)
eq("requests finished", sum(c[k] for k in C[:5]), n)
eq("finished = stats", sum(c[k] for k in C[:5]), st["requests_finished"])
eq("queued", c["requests_queued"], n)
eq("prompt tokens", c["prompt_tokens"], prompt)
eq("prompt tokens = stats", c["prompt_tokens"], st["prompt_tokens"])
eq("generated tokens", c["generated_tokens"], gen)
eq("generated tokens = stats", c["generated_tokens"], st["generated_tokens"])
eq("token events", c["token_events"], gen)
eq("prefix query blocks = stats", c["prefix_query_blocks"], st["prefix_cache_queries"])
eq("prefix hit blocks = stats", c["prefix_hit_blocks"], st["prefix_cache_hits"])
eq("prefix query tokens", c["prefix_query_tokens"], 16 * c["prefix_query_blocks"])
eq("prefix hit tokens", c["prefix_hit_tokens"], 16 * c["prefix_hit_blocks"])
eq("cached prompt = prefix hit tokens", c["cached_prompt_tokens"], c["prefix_hit_tokens"])
if st["prefix_cache_hits"] < 1:
    errs.append("the repeated prompt did not hit the prefix cache")
eq("preemptions = stats", c["preemptions"], st["preemptions"])
eq("kv blocks in use = stats", c["kv_blocks_in_use"], st["kv_blocks_used"])
eq("kv allocs - frees", c["kv_allocs"] - c["kv_frees"], c["kv_blocks_in_use"])
eq("steps", c["steps"], h["step"]["count"])
eq("steps = batch count", h["batch_tokens"]["count"], h["step"]["count"])
# Every token through the forward pass: the uncached prompt, then each
# generated token but the last.
eq("batch tokens", h["batch_tokens"]["sum"], prompt - c["cached_prompt_tokens"] + gen - n)
eq("finish reasons", c["finished_length"] + c["finished_eos"] + c["finished_stop"], n)
# The daemon's own histograms and finish counts (Stats): attached before
# any request, the maps saw exactly what the daemon counted, value for
# value, so slots, counts and sums are equal for every histogram (the
# request-level ones and the step ones alike).
sh = st["histograms"]
for k in H:
    eq("daemon " + k + " count = bpf", sh[k]["count"], h[k]["count"])
    eq("daemon " + k + " sum = bpf", sh[k]["sum"], h[k]["sum"])
    eq("daemon " + k + " slots = bpf", sh[k]["slots"], h[k]["slots"])
for k in ["ttft", "e2e", "queue", "prefill"]:
    eq("daemon " + k + " count", sh[k]["count"], n)
eq("daemon itl count", sh["itl"]["count"], gen - n)
R = ["length", "eos", "stop", "cancelled", "error"]
for i, r in enumerate(R):
    eq("daemon finished " + r + " = bpf", st["finished_by_reason"][r], c[C[i]])
top = json.load(open(d + "/top.json"))
eq("top source", top["source"], "bpf")
eq("top stats", top["stats"], st)
for k in C:
    eq("top counter " + k, top["bpf"]["counters"][k], c[k])
for k in H:
    eq("top hist " + k, top["bpf"]["hists"][k]["count"], h[k]["count"])
    eq("top view " + k, top["hists"][k]["count"], h[k]["count"])
eq("top view finished", top["finished"], st["finished_by_reason"])
if errs:
    print("\n".join(errs))
    sys.exit(1)
EOF2

"$bin" bpf detach --pin-dir "$pin"
check "bpf detach" test $? -eq 0
check "nothing pinned after detach" test ! -e "$pin"
"$bin" submit --socket "$sock" --tokens 1,403 --temperature 0 --max-tokens 3 --json --quiet >/dev/null 2>&1
check "daemon serves after detach" test $? -eq 0
# Without the maps, top shows the daemon's own histograms.
"$bin" top --once --json --socket "$sock" --pin-dir "$pin" >"$tmp/top2.json"
check "top without BPF maps uses the daemon's histograms" $py -c "
import json,sys
t=json.load(open(sys.argv[1]))
assert t['source']=='stats' and t['bpf'] is None, t['source']
assert t['hists']['ttft']['count']==t['stats']['histograms']['ttft']['count']==$((N + 1)), t['hists']['ttft']
assert t['finished']==t['stats']['finished_by_reason']" "$tmp/top2.json"
kill "$pid"; wait "$pid"
check "daemon exits cleanly" test $? -eq 0
pid=
summary
