#!/bin/bash
# bench/engine/prefill.sh — prefill of one long prompt (compute-bound), as a
# share of this machine's own peak measured in the same run (peak.c), and
# side by side with llama.cpp's llama-bench on the same GGUF files.
#
#   bash bench/engine/prefill.sh [BIN_DIR]
#   MODELS=/dir/with/gemma-3-270m-{bf16,q8_0,q4_0}.gguf LLAMA_BENCH=/path/to/llama-bench \
#     bash bench/engine/prefill.sh
#   THREADS=N PROMPT=N REPEAT=N TYPES="bf16 q8_0 q4_0" override the defaults
#   (THREADS: all CPUs; PROMPT 512; REPEAT 3).
#
# Both engines read the same file (infergate-run --model F.gguf, llama-bench
# -m F.gguf -p PROMPT -n 0). Without MODELS the 270m-shaped random checkpoint
# is written (infergate-mkmodel) and quantized on load, and llama.cpp is
# skipped. A figure is the best of REPEAT rounds: a busy machine only lowers
# them (peak.c times each thread by its own CPU clock, the engines by the
# wall clock, so on a busy machine the shares of peak read low).
# Prints a Markdown table; FLOPs of a prefill are counted from the model's
# shapes: 2 per weight of every layer's matrices per token, plus attention's
# 4 x heads x head_dim per visible key (the output projection runs for the
# last token only and is left out).
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:-$top/bin}
threads=${THREADS:-$(nproc)}
prompt=${PROMPT:-512}
repeat=${REPEAT:-3}
types=${TYPES:-bf16 q8_0 q4_0}
models=${MODELS:-}
work=${BENCH_DIR:-/tmp/infergate-bench-engine}
mkdir -p "$work"
shape_dir="$work/gemma3-270m-random"
if [ ! -f "$shape_dir/config.json" ]; then
	echo "writing a random 270m checkpoint to $shape_dir" >&2
	"$bin/infergate-mkmodel" --shape 270m --seed 1 --no-tokenizer "$shape_dir" >&2
fi
cc -O2 -pthread "$top/bench/engine/peak.c" -o "$work/peak"
llama=${LLAMA_BENCH:-}
[ -n "$llama" ] && [ ! -x "$llama" ] && { echo "LLAMA_BENCH=$llama is not executable: skipped" >&2; llama=; }
[ -n "$llama" ] && export LD_LIBRARY_PATH="$(dirname "$llama")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

load_start=$(cut -d' ' -f1 /proc/loadavg)
out="$work/prefill-results.jsonl"
: >"$out"
for _ in $(seq "$repeat"); do
	echo "{\"peak\": $("$work/peak" "$threads" 1)}" >>"$out"
	for q in $types; do
		gguf=
		[ -n "$models" ] && gguf="$models/gemma-3-270m-$q.gguf" && [ ! -f "$gguf" ] && gguf=
		if [ -n "$gguf" ]; then
			args=(--model "$gguf")
		else
			args=(--model "$shape_dir")
			[ "$q" != bf16 ] && args+=(--quantization "$q")
		fi
		r=$(timeout 900 "$bin/infergate-run" "${args[@]}" --threads "$threads" \
			--bench 1 --bench-prompt "$prompt" --bench-gen 1 2>/dev/null) || r=null
		echo "{\"type\": \"$q\", \"gguf\": \"$gguf\", \"infergate\": $r}" >>"$out"
		if [ -n "$llama" ] && [ -n "$gguf" ]; then
			lr=$(timeout 900 "$llama" -m "$gguf" -t "$threads" -p "$prompt" -n 0 -r 1 -o json 2>/dev/null) || lr=null
			echo "{\"type\": \"$q\", \"llama\": $(echo "$lr" | tr -d '\n')}" >>"$out"
		fi
	done
done

/usr/bin/python3 - "$out" "$threads" "$prompt" "$shape_dir/config.json" "$(nproc)" "$load_start" \
	"$(cut -d' ' -f1 /proc/loadavg)" "$repeat" <<'PY'
import json, sys
path, threads, prompt, cfg_path, ncpu, load0, load1, repeat = sys.argv[1:9]
threads, prompt = int(threads), int(prompt)
c = json.load(open(cfg_path))
H, I, L = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
nh, nkv, D = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
win = c.get("sliding_window") or 0
kinds = c.get("layer_types") or ["full_attention"] * L
per_tok = 2 * L * (H * nh * D + 2 * H * nkv * D + nh * D * H + 3 * H * I)
att = 0
for k in kinds:
    for p in range(prompt):
        seen = p + 1 if k != "sliding_attention" or not win else min(p + 1, win)
        att += 4 * nh * D * seen
flops = prompt * per_tok + att
lines = [json.loads(l) for l in open(path) if l.strip()]
peaks = [l["peak"] for l in lines if "peak" in l]
best = lambda key: max(p[key] for p in peaks)
print("## Prefill of one %d-token prompt, 270m, %d threads on %s CPUs, best of %s rounds (load average %s at the start, %s at the end)"
      % (prompt, threads, ncpu, repeat, load0, load1))
print()
print("Peak (peak.c, %d threads): f32 FMA %.1f GFLOP/s, bf16 %.1f GFLOP/s, int8 %.1f Gop/s; prefill work %.1f GFLOP (%.0f%% in attention)"
      % (threads, best("f32_peak_gflops_n"), best("bf16_peak_gflops_n"), best("int8_peak_gops_n"), flops / 1e9, 100 * att / flops))
print()
print("| weights | file | infergate tok/s | GFLOP/s | of peak | llama.cpp tok/s | vs llama.cpp |")
print("|---|---|---:|---:|---:|---:|---:|")
for q in dict.fromkeys(l["type"] for l in lines if "type" in l):
    ig = [l for l in lines if l.get("type") == q and l.get("infergate")]
    if not ig:
        print("| %s | | failed | | | | |" % q)
        continue
    pf = max(l["infergate"]["prefill_tok_s"] for l in ig)
    peak = best("bf16_peak_gflops_n") if q in ("bf16", "f16", "f32") else best("int8_peak_gops_n")
    gfs = pf * flops / prompt / 1e9
    lp = None
    for l in lines:
        if l.get("type") == q and l.get("llama"):
            for t in l["llama"]:
                if t.get("n_prompt", 0) > 0 and t.get("n_gen", 0) == 0: lp = max(lp or 0, t["avg_ts"])
    src = ig[0]["gguf"].rsplit("/", 1)[-1] if ig[0]["gguf"] else "random, quantized on load" if q != "bf16" else "random safetensors"
    print("| %s | %s | %.1f | %.1f | %.0f%% | %s | %s |" % (q, src, pf, gfs, 100 * gfs / peak,
          "-" if lp is None else "%.1f" % lp, "-" if lp is None else "x%.2f" % (pf / lp)))
print()
print("infergate kernels %s; the share of peak is against bf16 (f32 FMA on AVX2) for bf16 weights, int8 for the quantized ones"
      % [l["infergate"]["kernels"] for l in lines if l.get("infergate")][0])
PY
