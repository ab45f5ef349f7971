#!/bin/bash
# bench/engine/quant.sh — batch-1 prefill and decode of a 270m-shaped random
# model with its weights in bf16, Q8_0 and Q4_0, each against the
# memory-bandwidth bound measured in the same run (membw.c) and, when
# llama.cpp's llama-bench is given, against llama.cpp. Prints a Markdown table.
#
# When a type's GGUF file is named (LLAMA_GGUF_BF16, _Q8_0, _Q4_0), both sides
# read that very file, so they decode the same tensors. A type without a file
# runs infergate alone on the random safetensors checkpoint (bf16 as stored,
# Q8_0/Q4_0 quantized on load, the embedding kept at Q8_0); the table's
# "file" column says which.
#
#   bash bench/engine/quant.sh [BIN_DIR]
#   m=/work/peers/models; LD_LIBRARY_PATH=/work/peers/llama.cpp/build/bin \
#   LLAMA_BENCH=/work/peers/llama.cpp/build/bin/llama-bench LLAMA_GGUF_BF16=$m/gemma-3-270m-bf16.gguf \
#   LLAMA_GGUF_Q8_0=$m/gemma-3-270m-q8_0.gguf LLAMA_GGUF_Q4_0=$m/gemma-3-270m-q4_0.gguf \
#     bash bench/engine/quant.sh
#   THREADS=N PROMPT=N GEN=N SHAPE=270m REPEAT=N TYPES="bf16 q8_0 q4_0" override
#   the defaults.
#
# llama-bench runs only for the types whose GGUF file is named; without
# LLAMA_BENCH (or when it is not executable) its columns say "-". Every figure
# is the best of REPEAT rounds (a shared machine gives lower bounds).
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:-$top/bin}
threads=${THREADS:-$(nproc)}
prompt=${PROMPT:-128}
gen=${GEN:-32}
shape=${SHAPE:-270m}
repeat=${REPEAT:-3}
types=${TYPES:-bf16 q8_0 q4_0}
work=${BENCH_DIR:-/tmp/infergate-bench-engine}
mkdir -p "$work"
model="$work/gemma3-$shape-random"
gguf_of() { local v="LLAMA_GGUF_$(echo "$1" | tr a-z A-Z)"; echo "${!v:-}"; }
need_checkpoint=0
for q in $types; do [ -f "$(gguf_of "$q")" ] || need_checkpoint=1; done
if [ "$need_checkpoint" = 1 ]; then
	if [ ! -f "$model/model.safetensors" ]; then
		echo "writing a random $shape checkpoint to $model" >&2
		"$bin/infergate-mkmodel" --shape "$shape" --seed 1 --no-tokenizer "$model" >&2
	fi
	cat "$model/model.safetensors" >/dev/null
fi
for q in $types; do
	f=$(gguf_of "$q")
	if [ -f "$f" ]; then cat "$f" >/dev/null; fi
done
cc -O2 -mavx2 -pthread "$top/bench/engine/membw.c" -o "$work/membw"

llama=${LLAMA_BENCH:-}
[ -n "$llama" ] && [ ! -x "$llama" ] && { echo "LLAMA_BENCH=$llama is not executable: skipped" >&2; llama=; }

load_start=$(cut -d' ' -f1 /proc/loadavg)
out="$work/quant-results.jsonl"
: >"$out"
for _ in $(seq "$repeat"); do
	echo "{\"membw\": $("$work/membw" "$threads" 1024)}" >>"$out"
	for q in $types; do
		gguf=$(gguf_of "$q")
		[ -n "$gguf" ] && [ ! -f "$gguf" ] && { echo "the $q file $gguf is not a file: ignored" >&2; gguf=; }
		qa=(--model "$model")
		if [ -n "$gguf" ]; then
			qa=(--model "$gguf"); src=gguf
		elif [ "$q" != bf16 ]; then
			qa+=(--quantization "$q"); src=safetensors-on-load
		else
			src=safetensors
		fi
		r=$(timeout 900 "$bin/infergate-run" "${qa[@]}" --threads "$threads" \
			--bench 1 --bench-prompt "$prompt" --bench-gen "$gen" 2>/dev/null) || r=null
		echo "{\"type\": \"$q\", \"src\": \"$src\", \"infergate\": $r}" >>"$out"
		if [ -n "$llama" ] && [ -n "$gguf" ]; then
			lr=$(timeout 900 "$llama" -m "$gguf" -t "$threads" -p "$prompt" -n "$gen" -r 1 -o json 2>/dev/null) || lr=null
			echo "{\"type\": \"$q\", \"llama\": $(echo "$lr" | tr -d '\n')}" >>"$out"
		fi
	done
done

/usr/bin/python3 - "$out" "$threads" "$prompt" "$gen" "$shape" "$(nproc)" "$load_start" "$(cut -d' ' -f1 /proc/loadavg)" "$repeat" "$types" <<'PY'
import json, sys
path, threads, prompt, gen, shape, ncpu, load0, load1, repeat, types = sys.argv[1:11]
lines = [json.loads(l) for l in open(path) if l.strip()]
bw = max(l["membw"]["read_gb_s"] for l in lines if "membw" in l)
print("## %s random-weight model, weight types, %s threads on %s CPUs, best of %s rounds (load average %s at the start, %s at the end)"
      % (shape, threads, ncpu, repeat, load0, load1))
print()
print("Memory bandwidth (membw, read-only stream): best %.1f GB/s" % bw)
print()
print("| weights | file | prefill tok/s | decode tok/s | MB read per decode step | bound tok/s | of bound | llama.cpp prefill | llama.cpp decode | decode vs llama.cpp | prefill vs llama.cpp | peak RSS MB |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for q in types.split():
    ig = [l["infergate"] for l in lines if l.get("type") == q and l.get("infergate")]
    src = ([l["src"] for l in lines if l.get("type") == q and "src" in l] or ["-"])[0]
    if not ig:
        print("| %s | failed |" % q)
        continue
    pf = max(r["prefill_tok_s"] for r in ig); dc = max(r["decode_tok_s"] for r in ig)
    wb = ig[0]["step_weight_bytes"]; rss = max(r["vm_hwm_kb"] for r in ig) / 1024
    bound = bw * 1e9 / wb
    lp = ld = None
    for l in lines:
        if l.get("type") == q and l.get("llama"):
            for t in l["llama"]:
                if t.get("n_prompt", 0) > 0 and t.get("n_gen", 0) == 0: lp = max(lp or 0, t["avg_ts"])
                if t.get("n_gen", 0) > 0 and t.get("n_prompt", 0) == 0: ld = max(ld or 0, t["avg_ts"])
    f = lambda v: "-" if v is None else "%.1f" % v
    print("| %s | %s | %.1f | %.2f | %.1f | %.1f | %.0f%% | %s | %s | %s | %s | %.0f |" % (
        q, src, pf, dc, wb / 1e6, bound, 100 * dc / bound, f(lp), f(ld),
        "-" if ld is None else "x%.2f" % (dc / ld), "-" if lp is None else "x%.2f" % (pf / lp), rss))
print()
ks = [l["infergate"]["kernels"] for l in lines if l.get("infergate")]
print("Prompt %s tokens, %s decode steps; infergate kernels %s; file gguf: both sides read the same GGUF file"
      % (prompt, gen, ks[0] if ks else "-"))
PY
