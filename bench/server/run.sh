#!/usr/bin/env bash
# bench/server/run.sh — infergate-server on the 270m-shaped random checkpoint:
# the engine's own batch-1 (and batch-4/16) decode speed from infergate-run,
# then infergate-bench at 1, 4 and 16 concurrent streams against the server
# (output tokens/s, TTFT and inter-token latency percentiles), and the
# server's resident memory (VmRSS = RssFile + RssAnon + RssShmem, from
# /proc/PID/status) read while 16 streams run.
#
#   bash bench/server/run.sh [WORKDIR]     (release build in bin/; make build first)
#
# Environment: INPUT_LEN (128 words), OUTPUT_LEN (64), THREADS (all CPUs),
# REQUESTS_PER_STREAM (3).
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
bin="$top/bin"
# The default work folder is this user's (a fixed name in /tmp could be made
# first by another user, with a model or programs of theirs in it).
work=${1:-${XDG_CACHE_HOME:-${HOME:?set HOME or give a work folder}/.cache}/infergate/bench-server}
in_len=${INPUT_LEN:-128}; out_len=${OUTPUT_LEN:-64}; per=${REQUESTS_PER_STREAM:-3}
threads=${THREADS:-0}
mkdir -p "$work" || exit 1
[ -O "$work" ] || { echo "$work is not owned by this user: give another work folder" >&2; exit 1; }
chmod go-w "$work"
[ -f "$work/m270/model.safetensors" ] || "$bin/infergate-mkmodel" --shape 270m --seed 1 "$work/m270" >&2
tflag=""; [ "$threads" != 0 ] && tflag="--threads $threads"

echo "## engine alone (infergate-run --bench B --bench-prompt $in_len --bench-gen $out_len)"
for b in 1 4 16; do
	"$bin/infergate-run" --model "$work/m270" $tflag --bench "$b" --bench-prompt "$in_len" --bench-gen "$out_len" 2>/dev/null |
		tee "$work/engine_$b.json"
done

"$bin/infergate-server" --model "$work/m270" --served-model-name m270 --host 127.0.0.1 --port 0 \
	--max-num-seqs 16 --disable-log-requests $tflag >"$work/server.out" 2>"$work/server.err" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
port=""
for _ in $(seq 1 200); do
	port=$(sed -n 's/.*listening on [^ ]*:\([0-9][0-9]*\) .*/\1/p' "$work/server.out"); [ -n "$port" ] && break; sleep 0.05
done
for _ in $(seq 1 600); do [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health")" = 200 ] && break; sleep 0.1; done
grep -E 'loaded|ready' "$work/server.err" | sed 's/^/# /'
mem() { awk '/^(VmRSS|RssAnon|RssFile|RssShmem):/ {printf "%s %d MiB  ", $1, $2/1024} END {print ""}' "/proc/$pid/status"; }
echo "## idle server: $(mem)"

for c in 1 4 16; do
	n=$((c * per)); [ "$n" -lt 4 ] && n=4
	"$bin/infergate-bench" --url "http://127.0.0.1:$port" --endpoint completions --concurrency "$c" \
		--requests "$n" --warmup "$c" --input-len "$in_len" --output-len "$out_len" --temperature 0 \
		--json "$work/bench_$c.json" >"$work/bench_$c.txt" 2>&1 &
	bp=$!
	if [ "$c" = 16 ]; then sleep 4; echo "## 16 streams running: $(mem)"; fi
	wait "$bp" || { cat "$work/bench_$c.txt"; exit 1; }
done
curl -s "http://127.0.0.1:$port/metrics" | grep -E '^vllm:(num_preemptions_total|prefix_cache_hits_total|prefix_cache_queries_total)|^infergate:engine_steps_total' | sed 's/^/# /'

python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
eng = {b: json.load(open(f"{w}/engine_{b}.json")) for b in (1, 4, 16)}
base = eng[1]["decode_tok_s"]
print("\n| streams | output tok/s | x engine batch-1 | TTFT p50 / p99 (ms) | ITL p50 / p99 (ms) | engine alone at that batch (decode tok/s) |")
print("|---|---|---|---|---|---|")
for c in (1, 4, 16):
    b = json.load(open(f"{w}/bench_{c}.json"))
    t, i = b["ttft_ms"], b["itl_ms"]
    print(f"| {c} | {b['throughput']['output_tokens_per_s']:.1f} | {b['throughput']['output_tokens_per_s'] / base:.2f} | "
          f"{t['p50']:.0f} / {t['p99']:.0f} | {i['p50']:.1f} / {i['p99']:.1f} | {eng[c]['decode_tok_s']:.1f} |")
print(f"\nengine batch-1: decode {base:.1f} tok/s ({eng[1]['decode_step_ms']:.1f} ms/step), prefill {eng[1]['prefill_tok_s']:.0f} tok/s, "
      f"{eng[1]['threads']} threads, {eng[1]['kernels']} kernels, {eng[1]['step_weight_bytes'] / 1e6:.0f} MB of weights read per step")
PY
