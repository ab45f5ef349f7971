#!/bin/bash
# bench/engine/run.sh — the engine's speed on a random-weight 270m-shaped
# Gemma 3 checkpoint: prefill and decode tokens/s at batch 1, 4 and 16, the
# machine's memory bandwidth measured in the same run (bench/engine/membw.c),
# the bytes a decode step reads, batch-1 decode against the bandwidth bound,
# and peak resident memory (VmHWM). Prints a Markdown table.
#
#   bash bench/engine/run.sh [BIN_DIR]       BIN_DIR defaults to bin/
#   THREADS=N PROMPT=N GEN=N SHAPE=270m bash bench/engine/run.sh
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:-$top/bin}
threads=${THREADS:-$(nproc)}
prompt=${PROMPT:-128}
gen=${GEN:-32}
shape=${SHAPE:-270m}
work=${BENCH_DIR:-/tmp/infergate-bench-engine}
mkdir -p "$work"
model="$work/gemma3-$shape-random"
if [ ! -f "$model/model.safetensors" ]; then
	echo "writing a random $shape checkpoint to $model" >&2
	"$bin/infergate-mkmodel" --shape "$shape" --seed 1 --no-tokenizer "$model" >&2
fi
cc -O2 -mavx2 -pthread "$top/bench/engine/membw.c" -o "$work/membw"
# warm the page cache with the weights, so every run reads them from memory
cat "$model/model.safetensors" >/dev/null

bw=$("$work/membw" "$threads" 1024)
results=()
for b in 1 4 16; do
	results+=("$(timeout 900 "$bin/infergate-run" --model "$model" --threads "$threads" \
		--bench "$b" --bench-prompt "$prompt" --bench-gen "$gen" 2>/dev/null)")
done
bw2=$("$work/membw" "$threads" 1024)

/usr/bin/python3 - "$bw" "$bw2" "$threads" "$prompt" "$gen" "$shape" "$(nproc)" "$(cat /proc/loadavg)" "${results[@]}" <<'PY'
import json, sys
bw1, bw2 = json.loads(sys.argv[1]), json.loads(sys.argv[2])
threads, prompt, gen, shape, ncpu, load = sys.argv[3:9]
rows = [json.loads(r) for r in sys.argv[9:]]
read_gbs = max(bw1["read_gb_s"], bw2["read_gb_s"])
w = rows[0]["step_weight_bytes"]
# KV bytes a decode step reads per sequence (f32 K and V, all layers, mean context)
print("## %s random-weight checkpoint, %s threads on %s CPUs (load average at the end: %s)" % (shape, threads, ncpu, load.split()[0]))
print()
print("Memory bandwidth (membw, %s threads, 1 GB buffer): read %.1f / %.1f GB/s (before / after), triad %.1f GB/s" %
      (threads, bw1["read_gb_s"], bw2["read_gb_s"], bw1["triad_gb_s"]))
print("Bytes a decode step reads: %.1f MB of weights (every matrix once; the 262144 x 640 embedding as the output projection)" % (w / 1e6))
print()
print("| batch | prefill tok/s | decode tok/s | decode step ms | weight GB/s at decode | peak RSS MB |")
print("|---:|---:|---:|---:|---:|---:|")
for r in rows:
    steps_s = 1000.0 / r["decode_step_ms"]
    print("| %d | %.1f | %.2f | %.1f | %.1f | %.0f |" % (r["batch"], r["prefill_tok_s"], r["decode_tok_s"],
          r["decode_step_ms"], w * steps_s / 1e9, r["vm_hwm_kb"] / 1024))
b1 = rows[0]
bound = read_gbs * 1e9 / w
print()
print("Batch-1 decode: %.2f tok/s; bandwidth bound %.1f tok/s (%.1f GB/s / %.1f MB); ratio %.0f%% (target >= 70%%)" %
      (b1["decode_tok_s"], bound, read_gbs, w / 1e6, 100 * b1["decode_tok_s"] / bound))
print("Batch scaling of decode: x%.2f at 4, x%.2f at 16 (tokens/s over batch 1)" %
      (rows[1]["decode_tok_s"] / b1["decode_tok_s"], rows[2]["decode_tok_s"] / b1["decode_tok_s"]))
print("Prompt %s tokens per sequence, %s decode steps; kernels %s" % (prompt, gen, b1["kernels"]))
PY
