#!/bin/bash
# bench/routing/run.sh — infergate's endpoint picker against round robin and
# least-connections (HAProxy, one thread) on a shared-prefix chat workload over
# infergate-sim endpoints with a small KV cache, in one run.
#
#   bash bench/routing/run.sh [BIN_DIR]        (default: bin; build with `make build`)
#   RATE=24 ENDPOINTS=4 KV_BLOCKS=400 bash bench/routing/run.sh
#
# For each balancer: fresh simulators (cold caches), the same seeded workload
# (infergate-bench --workload shared-prefix), then the simulators' own prefix-
# cache counters. Prints a Markdown table (TTFT mean/p50/p90, throughput,
# errors, prefix-cache hit rate); the JSON reports stay in $OUT.
# Loopback only; every process started here is killed on exit.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:-$top/bin}
case "$bin" in /*) ;; *) bin=$top/$bin ;; esac
RATE=${RATE:-24}
ENDPOINTS=${ENDPOINTS:-4}
KV_BLOCKS=${KV_BLOCKS:-400}
PREFILL_MS=${PREFILL_MS:-1.0}
TTFT_MS=${TTFT_MS:-20}
ITL_MS=${ITL_MS:-10}
GROUPS_N=${GROUPS_N:-16}
USERS=${USERS:-8}
TURNS=${TURNS:-4}
INPUT_LEN=${INPUT_LEN:-32}
OUTPUT_LEN=${OUTPUT_LEN:-32}
MODEL=google/gemma-3-1b-it
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/ig-routing.XXXXXX")}
PORT_BASE=${PORT_BASE:-19370}
mkdir -p "$OUT"

for p in infergate infergate-sim infergate-bench; do
	[ -x "$bin/$p" ] || { echo "missing $bin/$p (run make build)" >&2; exit 1; }
done
command -v haproxy >/dev/null || { echo "haproxy not installed (apt-get install haproxy)" >&2; exit 1; }

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT
trap 'exit 130' INT TERM

sim_addrs=()
start_sims() {
	sim_addrs=()
	for i in $(seq 1 "$ENDPOINTS"); do
		local f="$OUT/sim$i.out"
		"$bin/infergate-sim" --port 0 --model "$MODEL" --region local --kv-blocks "$KV_BLOCKS" \
			--ttft-ms "$TTFT_MS" --prefill-ms-per-token "$PREFILL_MS" --itl-ms "$ITL_MS" \
			--log-level warn >"$f" 2>"$OUT/sim$i.err" &
		pids+=($!)
	done
	for i in $(seq 1 "$ENDPOINTS"); do
		local a=""
		for _ in $(seq 1 100); do
			a=$(grep -o 'listening on [0-9.]*:[0-9]*' "$OUT/sim$i.out" 2>/dev/null | awk '{print $3}')
			[ -n "$a" ] && break
			sleep 0.05
		done
		[ -n "$a" ] || { echo "sim $i did not start" >&2; exit 1; }
		sim_addrs+=("$a")
	done
}

stop_all() {
	cleanup
	pids=()
}

# Sum of a sim counter over every endpoint.
sim_counter() {
	local name=$1 sum=0
	for a in "${sim_addrs[@]}"; do
		v=$(curl -s --max-time 2 "http://$a/metrics" | awk -v n="$name" '$1 ~ "^"n"[{ ]" || $1 == n {print $NF}' | head -1)
		sum=$(awk -v a="$sum" -v b="${v:-0}" 'BEGIN{print a+b}')
	done
	echo "$sum"
}

wait_port() {
	for _ in $(seq 1 100); do
		curl -s --max-time 1 -o /dev/null "http://127.0.0.1:$1/v1/models" && return 0
		sleep 0.05
	done
	echo "port $1 did not answer" >&2
	return 1
}

run_bench() { # name port
	"$bin/infergate-bench" --url "http://127.0.0.1:$2" --model "$MODEL" --rate "$RATE" \
		--workload shared-prefix --groups "$GROUPS_N" --system-len 2000 --users "$USERS" --turns "$TURNS" \
		--input-len "$INPUT_LEN" --output-len "$OUTPUT_LEN" --seed 7 --timeout 60s \
		--json "$OUT/$1.json" >"$OUT/$1.txt" 2>&1 || echo "bench $1 failed (see $OUT/$1.txt)" >&2
	local q h
	q=$(sim_counter 'vllm:prefix_cache_queries_total')
	h=$(sim_counter 'vllm:prefix_cache_hits_total')
	echo "$q $h" >"$OUT/$1.cache"
}

haproxy_run() { # name balance port
	local cfg="$OUT/haproxy-$1.cfg"
	{
		printf 'global\n  nbthread 1\n  maxconn 4000\n'
		printf 'defaults\n  mode http\n  timeout connect 5s\n  timeout client 120s\n  timeout server 120s\n  option http-keep-alive\n'
		printf 'frontend fe\n  bind 127.0.0.1:%s\n  default_backend be\n' "$3"
		printf 'backend be\n  balance %s\n' "$2"
		local i=0
		for a in "${sim_addrs[@]}"; do i=$((i + 1)); printf '  server s%d %s maxconn 1000\n' "$i" "$a"; done
	} >"$cfg"
	haproxy -f "$cfg" -db >"$OUT/haproxy-$1.log" 2>&1 &
	pids+=($!)
	wait_port "$3" || exit 1
	run_bench "$1" "$3"
}

infergate_run() { # name port
	local cfg="$OUT/infergate.yaml"
	{
		printf 'region: local\nlisten: 127.0.0.1:%s\npools:\n  - name: sims\n    endpoints:\n' "$2"
		for a in "${sim_addrs[@]}"; do printf '      - address: %s\n' "$a"; done
		# PICKER='{prefix: {index_blocks: 800}}' tries other picker settings.
		[ -n "${PICKER:-}" ] && printf '    picker: %s\n' "$PICKER"
	} >"$cfg"
	"$bin/infergate" -c "$cfg" --log-level warn >"$OUT/infergate.log" 2>&1 &
	pids+=($!)
	wait_port "$2" || exit 1
	sleep 0.5 # first scrapes and health checks
	run_bench "$1" "$2"
}

echo "routing benchmark: $ENDPOINTS x infergate-sim (kv-blocks $KV_BLOCKS, ttft $TTFT_MS ms + $PREFILL_MS ms per uncached token, itl $ITL_MS ms)," >&2
echo "shared-prefix: $GROUPS_N groups x $USERS users x $TURNS turns, system 2000 chars, input $INPUT_LEN, output $OUTPUT_LEN words, Poisson $RATE req/s; results in $OUT" >&2

ONLY=${ONLY:-infergate roundrobin leastconn}
case " $ONLY " in *" infergate "*) start_sims; infergate_run infergate $((PORT_BASE + 1)); stop_all ;; esac
case " $ONLY " in *" roundrobin "*) start_sims; haproxy_run roundrobin roundrobin $((PORT_BASE + 2)); stop_all ;; esac
case " $ONLY " in *" leastconn "*) start_sims; haproxy_run leastconn leastconn $((PORT_BASE + 3)); stop_all ;; esac

python3 - "$OUT" <<'EOF'
import json, sys
out = sys.argv[1]
rows = [("infergate picker", "infergate"), ("HAProxy roundrobin", "roundrobin"), ("HAProxy leastconn", "leastconn")]
print("| balancer | requests ok/err | TTFT mean ms | TTFT p50 ms | TTFT p90 ms | e2e mean ms | req/s | output tok/s | prefix-cache hit rate |")
print("|---|---|---|---|---|---|---|---|---|")
base = None
for label, name in rows:
    try:
        r = json.load(open(f"{out}/{name}.json"))
        q, h = (float(x) for x in open(f"{out}/{name}.cache").read().split())
    except Exception as e:
        print(f"| {label} | failed: {e} |"); continue
    t = r["ttft_ms"]; e = r["e2e_ms"]; th = r["throughput"]
    hit = h / q if q else 0
    print(f"| {label} | {r['ok']}/{r['errors']} | {t['mean']:.1f} | {t['p50']:.1f} | {t['p90']:.1f} | {e['mean']:.1f} | {th['requests_per_s']:.2f} | {th['output_tokens_per_s']:.1f} | {hit*100:.1f}% |")
EOF
