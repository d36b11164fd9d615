#!/usr/bin/env bash
# test_inferctl.sh - the command-line contract of inferctl: flags, exit
# codes, and the JSON shapes that other tools drive. Usage:
#   test_inferctl.sh PATH/TO/inferctl
# Needs ../shared (models and goldens); skips (77) without it unless CI is set.
set -u
bin=$1
. "$(dirname "$0")/lib.sh"

# 1. Greedy run from BOS reproduces the 200-token story, JSON on the last line.
"$bin" run --model "$m" --temperature 0 --max-tokens 200 --kv-type f32 --json --quiet >"$tmp/run.out" 2>"$tmp/run.err"
check "run --json exit status" test $? -eq 0
check "run --json story" $py - "$tmp/run.out" "$shared/golden/greedy/stories260K.kvf32.json" <<'EOF'
import json, sys
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
out = json.loads(lines[-1])
g = json.load(open(sys.argv[2]))["long_run"]
assert set(["prompt_tokens", "tokens", "text", "top_probs"]) <= set(out), out.keys()
assert out["prompt_tokens"] == [1], out["prompt_tokens"]
assert out["tokens"] == g["generated_ids"], "tokens differ from the golden story"
assert out["text"] == g["generated_text"], (out["text"][:80], g["generated_text"][:80])
# the streamed text precedes the JSON line
assert "".join(lines[:-1]).startswith(g["generated_text"][:40])
EOF

# 2. --top-probs K: K pairs [id, p] per generated token, probabilities sorted.
"$bin" run --model "$m" --prompt "Once upon a time" --temperature 0 --max-tokens 12 --top-probs 10 --json --quiet >"$tmp/tp.out" 2>/dev/null
check "run --top-probs" $py - "$tmp/tp.out" "$shared/golden/greedy/stories260K.json" <<'EOF'
import json, sys
out = json.loads(open(sys.argv[1], encoding="utf-8").read().splitlines()[-1])
g = json.load(open(sys.argv[2]))["runs"][0]
assert out["prompt_tokens"] == g["prompt_ids"], out["prompt_tokens"]
assert len(out["top_probs"]) == len(out["tokens"]) == 12
for step, gs in zip(out["top_probs"], g["steps"]):
    assert len(step) == 10
    ps = [p for _, p in step]
    assert ps == sorted(ps, reverse=True)
    gt = {t["id"]: t["prob"] for t in gs["top"]}
    for tid, p in step[:3]:
        assert tid in gt and abs(gt[tid] - p) < 0.01, (tid, p, gt.get(tid))
EOF

# 3. Same seed, same output; sampling flags accepted.
a=$("$bin" run --model "$m" --prompt "The little dog" --temperature 0.9 --top-k 20 --top-p 0.9 --min-p 0.02 --seed 7 --max-tokens 30 --json --quiet 2>/dev/null | tail -n 1)
b=$("$bin" run --model "$m" --prompt "The little dog" --temperature 0.9 --top-k 20 --top-p 0.9 --min-p 0.02 --seed 7 --max-tokens 30 --json --quiet 2>/dev/null | tail -n 1)
check "run seed determinism" test -n "$a" -a "$a" = "$b"

# 4. eval writes [n_tokens][n_vocab] float32 logits matching the golden.
ids=$($py -c "import json,sys; r=json.load(open(sys.argv[1]))['runs'][0]; print(','.join(map(str, r['prompt_ids']+r['generated_ids'][:-1])))" "$shared/golden/greedy/stories260K.kvf32.json")
"$bin" eval --model "$m" --tokens "$ids" --kv-type f32 --threads 2 --logits-out "$tmp/l.f32"
check "eval exit status" test $? -eq 0
check "eval logits" $py - "$tmp/l.f32" "$shared/golden/greedy" "$ids" <<'EOF'
import json, struct, sys
n = len(sys.argv[3].split(","))
g = json.load(open(sys.argv[2] + "/stories260K.kvf32.json"))["runs"][0]
nv = 512
data = open(sys.argv[1], "rb").read()
assert len(data) == n * nv * 4, (len(data), n)
ours = struct.unpack("<%df" % (n * nv), data)
ref = open(sys.argv[2] + "/" + g["logits_file"], "rb").read()
steps = len(ref) // (nv * 4)
ref = struct.unpack("<%df" % (steps * nv), ref)
p0 = len(g["prompt_ids"]) - 1
worst = max(abs(ours[(p0 + s) * nv + v] - ref[s * nv + v]) for s in range(steps) for v in range(nv))
assert worst < 1e-3, worst
EOF

# 5. perplexity over a text file.
$py -c "
import json,sys
g=json.load(open(sys.argv[1]))
print(' '.join([g['long_run']['generated_text']]*3))" "$shared/golden/greedy/stories260K.json" >"$tmp/text.txt"
"$bin" perplexity --model "$m" --file "$tmp/text.txt" --ctx-size 128 >"$tmp/ppl.out" 2>&1
check "perplexity" grep -q "Final estimate: PPL = " "$tmp/ppl.out"
check "perplexity value" $py -c "
import re,sys
v=float(re.search(r'PPL = ([0-9.]+)', open(sys.argv[1]).read()).group(1))
assert 1.0 < v < 20.0, v" "$tmp/ppl.out"

# 6. inspect lists metadata and tensors.
"$bin" inspect "$shared/models/synth256-q4_k_m.gguf" >"$tmp/inspect.out"
check "inspect exit status" test $? -eq 0
check "inspect content" grep -q "blk.3.ffn_down.weight" "$tmp/inspect.out"
check "inspect types" grep -q "Q6_K" "$tmp/inspect.out"

# 7. synth writes a model that loads and runs.
"$bin" synth --preset tiny --type q4_k --out "$tmp/tiny.gguf" --seed 3 >/dev/null 2>&1
check "synth exit status" test $? -eq 0
"$bin" run --model "$tmp/tiny.gguf" --prompt "hello" --max-tokens 8 --temperature 0 --quiet >/dev/null 2>&1
check "run on a synth model" test $? -eq 0

# 8. bench --json keys.
"$bin" bench --model "$m" --threads 2 --prompt-tokens 16 --gen-tokens 8 --reps 1 --json >"$tmp/bench.out" 2>/dev/null
check "bench --json" $py - "$tmp/bench.out" <<'EOF'
import json, sys
o = json.loads(open(sys.argv[1]).read().splitlines()[-1])
for k in ["prefill_tok_s", "decode_tok_s", "model_bytes", "decode_gbs", "mem_read_gbs", "roofline_pct"]:
    assert k in o and o[k] > 0, k
EOF

# 9. Errors: usage -> 2, bad files -> 1 with a message, never a crash.
"$bin" run >/dev/null 2>&1; check "run without --model exits 2" test $? -eq 2
"$bin" run --model "$m" --top-p 7 >/dev/null 2>&1; check "bad --top-p exits 2" test $? -eq 2
"$bin" frobnicate >/dev/null 2>&1; check "unknown command exits 2" test $? -eq 2
"$bin" run --model "$tmp/missing.gguf" >/dev/null 2>"$tmp/e1"; rc=$?
check "missing model exits 1" test $rc -eq 1
check "missing model message" grep -q "missing.gguf" "$tmp/e1"
head -c 3000 "$m" >"$tmp/trunc.gguf"
"$bin" run --model "$tmp/trunc.gguf" >/dev/null 2>"$tmp/e2"; rc=$?
check "truncated model exits 1" test $rc -eq 1
check "truncated model message" test -s "$tmp/e2"
"$bin" eval --model "$m" --tokens 1,99999 --logits-out "$tmp/x" >/dev/null 2>&1
check "eval bad token exits 1" test $? -eq 1

summary
