#!/usr/bin/env bash
# bench/server/run.sh — infergate-server side by side with llama.cpp's
# llama-server on the same GGUF file, driven by infergate-bench with one
# workload: completions, 128-word prompts, 64 output tokens, greedy,
# ignore_eos, closed loop at 1, 4 and 16 concurrent streams, each level after
# a warm-up of one request per stream. Prints output tok/s, TTFT and
# inter-token latency (p50 / p99) of both and the ratio, then the share of
# infergate-server's step time by phase (from its /metrics) and its resident
# memory while 16 streams run.
#
#   bash bench/server/run.sh [WORKDIR]     (release build in bin/: make -j2 first)
#
# Environment:
#   MODEL                 GGUF file both servers load
#                         (default /work/peers/models/gemma-3-270m-bf16.gguf)
#   LLAMA_SERVER          path to llama-server; that side is skipped when unset
#                         or not executable (its folder goes in LD_LIBRARY_PATH)
#   THREADS (2)           threads of each server (llama-server -t, infergate --threads)
#   STREAMS ("1 4 16")    concurrency levels
#   INPUT_LEN (128 words), OUTPUT_LEN (64), REQUESTS_PER_STREAM (3)
#   SERVER_ARGS           extra infergate-server flags (e.g. "--max-num-batched-tokens 256")
#   BIN_DIR (bin/)        where infergate-server and infergate-bench are (another build, for A/B)
#
# Both servers are started once and stay up, idle while the other is measured;
# the levels alternate between them (infergate, then llama-server, at each
# level) so that a machine whose load drifts during the run hits both alike.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
bin="${BIN_DIR:-$top/bin}"
work=${1:-${XDG_CACHE_HOME:-${HOME:?set HOME or give a work folder}/.cache}/infergate/bench-server}
model=${MODEL:-/work/peers/models/gemma-3-270m-bf16.gguf}
llama=${LLAMA_SERVER:-}
threads=${THREADS:-2}
streams=${STREAMS:-1 4 16}
in_len=${INPUT_LEN:-128}; out_len=${OUTPUT_LEN:-64}; per=${REQUESTS_PER_STREAM:-3}
mkdir -p "$work" || exit 1
[ -O "$work" ] || { echo "$work is not owned by this user: give another work folder" >&2; exit 1; }
chmod go-w "$work"
[ -f "$model" ] || { echo "no model file $model (set MODEL)" >&2; exit 1; }
[ -x "$bin/infergate-server" ] && [ -x "$bin/infergate-bench" ] || { echo "build first: make -j2" >&2; exit 1; }
if [ -n "$llama" ] && [ ! -x "$llama" ]; then
	echo "# LLAMA_SERVER=$llama is not executable: llama-server skipped" >&2; llama=""
fi
rm -f "$work"/ig_*.json "$work"/ll_*.json

pids=""
cleanup() { for p in $pids; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free loopback port: bound by the kernel, then released for the server.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Waits (at most 120 s) for GET /health to answer 200.
wait_health() {
	for _ in $(seq 1 1200); do
		[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/health")" = 200 ] && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}
# Resident memory, and how much of it sits in 2 MB pages (a decode step reads
# its weights 7-12% slower from 4 KB pages: when the kernel has no free 2 MB
# pages to give, figures drop for that reason alone).
mem() {
	awk '/^(VmRSS|RssAnon|RssFile):/ {printf "%s %d MiB  ", $1, $2/1024}' "/proc/$1/status"
	awk '/^AnonHugePages:/ {printf "%s %d MiB", $1, $2/1024}' "/proc/$1/smaps_rollup" 2>/dev/null
	echo
}

ig_port=$(free_port)
# shellcheck disable=SC2086
"$bin/infergate-server" --model "$model" --served-model-name m270 --host 127.0.0.1 --port "$ig_port" \
	--max-num-seqs 16 --threads "$threads" --disable-log-requests ${SERVER_ARGS:-} \
	>"$work/ig_server.out" 2>"$work/ig_server.err" &
ig_pid=$!; pids="$pids $ig_pid"
wait_health "$ig_port" "$ig_pid" || { echo "infergate-server did not start:" >&2; tail -5 "$work/ig_server.err" >&2; exit 1; }

if [ -n "$llama" ]; then
	ll_port=$(free_port)
	LD_LIBRARY_PATH="$(dirname "$llama")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
		"$llama" -m "$model" -np 16 -c 8192 -t "$threads" --host 127.0.0.1 --port "$ll_port" \
		>"$work/ll_server.out" 2>"$work/ll_server.err" &
	ll_pid=$!; pids="$pids $ll_pid"
	wait_health "$ll_port" "$ll_pid" || { echo "llama-server did not start:" >&2; tail -5 "$work/ll_server.err" >&2; exit 1; }
fi

# bench SIDE PORT C: one level against one server.
bench() {
	local n=$(($3 * per)); [ "$n" -lt 4 ] && n=4
	"$bin/infergate-bench" --url "http://127.0.0.1:$2" --endpoint completions --concurrency "$3" \
		--requests "$n" --warmup "$3" --input-len "$in_len" --output-len "$out_len" --temperature 0 \
		--ignore-eos --no-progress --quiet --json "$work/$1_$3.json" >"$work/$1_$3.txt" 2>&1
}
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for c in $streams; do
	bench ig "$ig_port" "$c" &
	bp=$!
	if [ "$c" = 16 ]; then sleep 4; echo "# infergate-server with 16 streams running: $(mem "$ig_pid")"; fi
	wait "$bp" || { echo "infergate-bench against infergate-server failed:" >&2; cat "$work/ig_$c.txt" >&2; exit 1; }
	if [ -n "$llama" ]; then
		bench ll "$ll_port" "$c" &
		bp=$!
		if [ "$c" = 16 ]; then sleep 4; echo "# llama-server with 16 streams running: $(mem "$ll_pid")"; fi
		wait "$bp" || { echo "infergate-bench against llama-server failed:" >&2; cat "$work/ll_$c.txt" >&2; exit 1; }
	fi
done
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
curl -s "http://127.0.0.1:$ig_port/metrics" >"$work/ig_metrics.txt"

python3 - "$work" "$streams" "$model" <<'PY'
import json, os, re, sys
w, streams, model = sys.argv[1], [int(x) for x in sys.argv[2].split()], sys.argv[3]
def load(side, c):
    p = f"{w}/{side}_{c}.json"
    return json.load(open(p)) if os.path.exists(p) else None
print(f"\nmodel {os.path.basename(model)}; completions, closed loop, output tok/s aggregate\n")
print("| streams | infergate-server tok/s | llama-server tok/s | ratio | TTFT p50 / p99 ms (infergate) | TTFT p50 / p99 ms (llama) | ITL p50 / p99 ms (infergate) | ITL p50 / p99 ms (llama) |")
print("|---|---|---|---|---|---|---|---|")
def cols(b):
    if not b: return ("-", "-", "-")
    t, i = b["ttft_ms"], b["itl_ms"]
    return (f"{b['throughput']['output_tokens_per_s']:.1f}", f"{t['p50']:.0f} / {t['p99']:.0f}", f"{i['p50']:.1f} / {i['p99']:.1f}")
for c in streams:
    a, b = load("ig", c), load("ll", c)
    ca, cb = cols(a), cols(b)
    ratio = "-"
    if a and b and b["throughput"]["output_tokens_per_s"] > 0:
        ratio = f"{a['throughput']['output_tokens_per_s'] / b['throughput']['output_tokens_per_s']:.2f}x"
    print(f"| {c} | {ca[0]} | {cb[0]} | {ratio} | {ca[1]} | {cb[1]} | {ca[2]} | {cb[2]} |")
# The share of infergate-server's step time by phase, over the whole run.
phases, steps = {}, {}
for line in open(f"{w}/ig_metrics.txt"):
    m = re.match(r'infergate:step_phase_seconds_total\{[^}]*phase="([a-z_]+)"[^}]*\} ([0-9.eE+-]+)', line)
    if m: phases[m.group(1)] = float(m.group(2))
    m = re.match(r'(infergate:engine_steps_total|vllm:num_preemptions_total|vllm:prefix_cache_hits_total|vllm:prefix_cache_queries_total)\{[^}]*\} ([0-9.eE+-]+)', line)
    if m: steps[m.group(1)] = float(m.group(2))
if phases:
    tot = sum(phases.values())
    print(f"\ninfergate-server step time by phase ({tot:.1f} s in all, warm-ups included):\n")
    print("| phase | seconds | share |")
    print("|---|---|---|")
    for k, v in sorted(phases.items(), key=lambda kv: -kv[1]):
        print(f"| {k} | {v:.2f} | {100 * v / tot:.1f}% |")
    m = re.search(r'^infergate:server_output_seconds_total\{[^}]*\} ([0-9.eE+-]+)', open(f"{w}/ig_metrics.txt").read(), re.M)
    if m:
        print(f"\nbeside the steps, on the HTTP thread: {float(m.group(1)):.2f} s turning tokens into response bytes (detokenization, JSON, SSE, writes)")
if steps:
    print("\n" + ", ".join(f"{k} {v:.0f}" for k, v in steps.items()))
PY
