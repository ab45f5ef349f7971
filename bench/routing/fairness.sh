#!/bin/bash
# bench/routing/fairness.sh — one tenant's flood against another's trickle on a
# saturated pool: the light tenant's time to first token alone, under the
# heavy tenant's flood with fair queuing (the default), and under the same
# flood with `fair_queuing: false`, in one run.
#
#   bash bench/routing/fairness.sh [BIN_DIR]      (default: bin; build with `make build`)
#   HEAVY=48 LIGHT_N=20 bash bench/routing/fairness.sh
#
# One infergate-sim (TTFT 200 ms, 5 ms per token, a KV cache of 96 blocks)
# behind the gateway; every request's objective has priority -1 and a queue,
# so when the simulator's KV usage passes max_utilization (0.25: about 8
# requests running) requests wait in the gateway's admission queue. The heavy
# tenant keeps HEAVY requests in flight (closed loop); the light one sends
# LIGHT_N requests one after the other. Prints a Markdown table; the JSON
# reports stay in $OUT. Loopback only; every process started here is killed on exit.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:-$top/bin}
case "$bin" in /*) ;; *) bin=$top/$bin ;; esac
HEAVY=${HEAVY:-48}
LIGHT_N=${LIGHT_N:-20}
TTFT_MS=${TTFT_MS:-200}
ITL_MS=${ITL_MS:-5}
KV_BLOCKS=${KV_BLOCKS:-96}
OUTPUT_LEN=${OUTPUT_LEN:-32}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/ig-fairness.XXXXXX")}
PORT_BASE=${PORT_BASE:-19390}
MODEL=google/gemma-3-1b-it
mkdir -p "$OUT"
for p in infergate infergate-sim infergate-bench; do
	[ -x "$bin/$p" ] || { echo "missing $bin/$p (run make build)" >&2; exit 1; }
done

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT
wait_port() { for _ in $(seq 1 100); do curl -fs -o /dev/null "http://127.0.0.1:$1/health" 2>/dev/null && return 0;
	curl -fs -o /dev/null "http://127.0.0.1:$1/healthz" 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 did not open" >&2; return 1; }

SIM=$((PORT_BASE + 1)) GW=$((PORT_BASE + 2))
run() { # name fair(true|false) flood(0|1)
	"$bin/infergate-sim" --port $SIM --log-level warn --model $MODEL --ttft-ms "$TTFT_MS" --itl-ms "$ITL_MS" \
		--itl-growth 0 --kv-blocks "$KV_BLOCKS" >"$OUT/sim-$1.log" 2>&1 &
	local sp=$!
	pids+=($sp)
	wait_port $SIM || exit 1
	cat >"$OUT/gw-$1.yaml" <<YAML
region: local
listen: 127.0.0.1:$GW
fair_queuing: $2
objectives:
  - { name: shared, priority: -1, queue: 10000, queue_timeout: 120s }
tenants:
  - { name: heavy, api_keys: [HEAVY-KEY] }
  - { name: light, api_keys: [LIGHT-KEY] }
pools:
  - name: sims
    endpoints: [ { address: "127.0.0.1:$SIM" } ]
    metrics: { interval: 50ms, timeout: 200ms, stale: 2s }
    picker: { max_utilization: 0.25, return_margin: 0, region_hold: 0s }
routes:
  - { path: /v1/, pool: sims, objective: shared }
YAML
	"$bin/infergate" -c "$OUT/gw-$1.yaml" --log-level warn >"$OUT/gw-$1.log" 2>&1 &
	local gp=$!
	pids+=($gp)
	wait_port $GW || exit 1
	sleep 0.5 # first scrapes
	local hp=""
	if [ "$3" = 1 ]; then
		"$bin/infergate-bench" --url "http://127.0.0.1:$GW" --model $MODEL --header 'Authorization: Bearer HEAVY-KEY' \
			--concurrency "$HEAVY" --duration 600s --input-len 8 --output-len "$OUTPUT_LEN" --seed 3 --timeout 120s \
			--quiet --json "$OUT/heavy-$1.json" >"$OUT/heavy-$1.txt" 2>&1 &
		hp=$!
		sleep 3 # the flood fills the queue
	fi
	"$bin/infergate-bench" --url "http://127.0.0.1:$GW" --model $MODEL --header 'Authorization: Bearer LIGHT-KEY' \
		--concurrency 1 --requests "$LIGHT_N" --input-len 8 --output-len "$OUTPUT_LEN" --seed 5 --timeout 120s \
		--quiet --json "$OUT/light-$1.json" >"$OUT/light-$1.txt" 2>&1 || echo "bench light-$1 failed (see $OUT/light-$1.txt)" >&2
	curl -fs "http://127.0.0.1:$GW/metrics" >"$OUT/metrics-$1.txt"
	[ -n "$hp" ] && kill -INT "$hp" 2>/dev/null && wait "$hp" 2>/dev/null
	kill "$gp" "$sp" 2>/dev/null
	wait "$gp" "$sp" 2>/dev/null
}

echo "fairness: infergate-sim ttft $TTFT_MS ms, itl $ITL_MS ms, kv-blocks $KV_BLOCKS; heavy concurrency $HEAVY, light $LIGHT_N requests one at a time; results in $OUT" >&2
run alone true 0
run fair true 1
run unfair false 1

python3 - "$OUT" <<'PY'
import json, sys, re
out = sys.argv[1]
def rep(name):
    try:
        return json.load(open(f"{out}/{name}.json"))
    except Exception:
        return None
def p50(r):
    t = r.get("ttft_ms") or r.get("ttft") or {}
    return t.get("p50")
def queued(name, tenant):
    s = c = 0.0
    try:
        for line in open(f"{out}/metrics-{name}.txt"):
            m = re.match(r'infergate_tenant_queue_seconds_(sum|count)\{tenant="%s"\} (\S+)' % tenant, line)
            if m:
                if m.group(1) == "sum": s = float(m.group(2))
                else: c = float(m.group(2))
    except Exception:
        pass
    return s / c * 1000 if c else 0.0
base = None
print("| run | light TTFT p50 ms | x alone | light ok/err | light mean queue ms | heavy requests ok |")
print("|---|---|---|---|---|---|")
for name, label in (("alone", "light alone"), ("fair", "flood, fair_queuing: true"), ("unfair", "flood, fair_queuing: false")):
    r = rep("light-" + name)
    if not r:
        print(f"| {label} | failed | | | | |"); continue
    v = p50(r)
    if name == "alone": base = v
    h = rep("heavy-" + name)
    hok = h.get("ok", "?") if h else "-"
    ratio = f"{v / base:.2f}" if base and v is not None else "?"
    print(f"| {label} | {v:.1f} | {ratio} | {r.get('requests_ok', r.get('ok', '?'))}/{r.get('requests_failed', r.get('errors', '?'))} | {queued(name, 'light'):.1f} | {hok} |")
PY
