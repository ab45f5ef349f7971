#!/bin/bash
# bench/engine/run.sh — the engine's speed on a random-weight 270m-shaped
# Gemma 3 checkpoint: prefill and decode tokens/s at batch 1, 4 and 16, the
# machine's memory bandwidth measured in the same run (bench/engine/membw.c),
# the bytes a decode step reads, batch-1 decode against the bandwidth bound,
# and peak resident memory (VmHWM). Prints a Markdown table.
#
# On a shared machine every figure is a lower bound, so the whole round
# (bandwidth, then batch 1, 4, 16) runs REPEAT times and the best of each
# figure is kept: the bandwidth bound then comes from the best bandwidth seen,
# not from a moment when someone else's build held the memory bus.
#
#   bash bench/engine/run.sh [BIN_DIR]       BIN_DIR defaults to bin/
#   THREADS=N PROMPT=N GEN=N SHAPE=270m REPEAT=N bash bench/engine/run.sh
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:-$top/bin}
threads=${THREADS:-$(nproc)}
prompt=${PROMPT:-128}
gen=${GEN:-32}
shape=${SHAPE:-270m}
repeat=${REPEAT:-3}
# The default work folder is this user's: it holds a program this script
# builds and runs, and a fixed name in /tmp could be made first by another user.
work=${BENCH_DIR:-${XDG_CACHE_HOME:-${HOME:?set HOME or BENCH_DIR}/.cache}/infergate/bench-engine}
mkdir -p "$work"
[ -O "$work" ] || { echo "$work is not owned by this user: set BENCH_DIR to another folder" >&2; exit 1; }
chmod go-w "$work"
model="$work/gemma3-$shape-random"
if [ ! -f "$model/model.safetensors" ]; then
	echo "writing a random $shape checkpoint to $model" >&2
	"$bin/infergate-mkmodel" --shape "$shape" --seed 1 --no-tokenizer "$model" >&2
fi
cc -O2 -mavx2 -pthread "$top/bench/engine/membw.c" -o "$work/membw"
# warm the page cache with the weights, so every run reads them from memory
cat "$model/model.safetensors" >/dev/null

load_start=$(cut -d' ' -f1 /proc/loadavg)
bws=()
results=()
for _ in $(seq "$repeat"); do
	bws+=("$("$work/membw" "$threads" 1024)")
	for b in 1 4 16; do
		results+=("$(timeout 900 "$bin/infergate-run" --model "$model" --threads "$threads" \
			--bench "$b" --bench-prompt "$prompt" --bench-gen "$gen" 2>/dev/null)")
	done
done
bws+=("$("$work/membw" "$threads" 1024)")

/usr/bin/python3 - "$threads" "$prompt" "$gen" "$shape" "$(nproc)" "$load_start" "$(cut -d' ' -f1 /proc/loadavg)" \
	"$repeat" "${bws[@]}" "${results[@]}" <<'PY'
import json, sys
threads, prompt, gen, shape, ncpu, load0, load1, repeat = sys.argv[1:9]
repeat = int(repeat)
bws = [json.loads(a) for a in sys.argv[9:9 + repeat + 1]]
runs = [json.loads(r) for r in sys.argv[9 + repeat + 1:]]
read = [b["read_gb_s"] for b in bws]
read_gbs = max(read)
rows = []
for batch in (1, 4, 16):
    rs = [r for r in runs if r["batch"] == batch]
    rows.append({"batch": batch, "prefill_tok_s": max(r["prefill_tok_s"] for r in rs),
                 "decode_tok_s": max(r["decode_tok_s"] for r in rs),
                 "decode_step_ms": min(r["decode_step_ms"] for r in rs),
                 "vm_hwm_kb": max(r["vm_hwm_kb"] for r in rs),
                 "kernels": rs[0]["kernels"], "step_weight_bytes": rs[0]["step_weight_bytes"],
                 "all_decode": [r["decode_tok_s"] for r in rs]})
w = rows[0]["step_weight_bytes"]
print("## %s random-weight checkpoint, %s threads on %s CPUs, best of %d rounds (load average %s at the start, %s at the end)" %
      (shape, threads, ncpu, repeat, load0, load1))
print()
print("Memory bandwidth (membw, %s threads, 1 GB buffer, read-only stream): best %.1f GB/s; every round: %s GB/s; triad best %.1f GB/s" %
      (threads, read_gbs, " / ".join("%.1f" % x for x in read), max(b["triad_gb_s"] for b in bws)))
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
print("Decode tok/s of every round: " + "; ".join("batch %d: %s" % (r["batch"], ", ".join("%.1f" % x for x in r["all_decode"])) for r in rows))
print("Prompt %s tokens per sequence, %s decode steps; kernels %s" % (prompt, gen, b1["kernels"]))
PY
