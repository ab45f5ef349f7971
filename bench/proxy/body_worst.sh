#!/bin/bash
# bench/proxy/body_worst.sh — the worst request body for the gateway's
# reading of it: 15 MiB of small array elements ({"model":...,"x":[1,1,...]},
# one JSON value per two bytes), for an unknown model (the gateway answers 404
# itself, so only its reading is measured). For each gateway binary: the time
# to the answer, the growth of the gateway's peak RSS, and the longest wait of
# a GET /healthz sent every 10 ms meanwhile (how long the loop stalled).
#
#   sh bench/proxy/body_worst.sh [GATEWAY...]     default: bin/infergate
#   sh bench/proxy/body_worst.sh /tmp/before/bin/infergate bin/infergate
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
[ $# -gt 0 ] || set -- "$top/bin/infergate"
tmp=$(mktemp -d)
gpid=""
cleanup() { [ -n "$gpid" ] && kill "$gpid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
port=${BASE_PORT:-29150}
python3 - "$tmp/body.json" <<'PY'
import sys
n = 15 * 1024 * 1024
head = b'{"model":"nope","messages":[{"role":"user","content":"hi"}],"x":['
open(sys.argv[1], "wb").write(head + b'1,' * ((n - len(head)) // 2) + b'1]}')
PY
cat >"$tmp/gw.yaml" <<YAML
region: local
listen: 127.0.0.1:$port
pools:
  - name: p
    models: [gemma]
    endpoints: [ { address: "127.0.0.1:$((port + 1))" } ]
    metrics: { enabled: false }
YAML
echo "| gateway | answer | time to answer | peak RSS growth | longest /healthz wait |"
echo "|---|---:|---:|---:|---:|"
for gw in "$@"; do
	"$gw" -c "$tmp/gw.yaml" --log-level error &
	gpid=$!
	for _ in $(seq 1 50); do curl -fs -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.1; done
	before=$(awk '/^VmHWM/ { print $2 }' /proc/$gpid/status)
	# /healthz every 10 ms while the body is read; each wait in ms
	( while [ ! -f "$tmp/done" ]; do
		curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$port/healthz"; sleep 0.01
	  done >"$tmp/health" ) &
	hp=$!
	t0=$(date +%s%N)
	code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v1/chat/completions" --data-binary @"$tmp/body.json")
	ms=$((($(date +%s%N) - t0) / 1000000))
	touch "$tmp/done"; wait $hp; rm -f "$tmp/done"
	after=$(awk '/^VmHWM/ { print $2 }' /proc/$gpid/status)
	stall=$(sort -n "$tmp/health" | tail -n 1 | awk '{ printf "%.0f ms", $1 * 1000 }')
	kill "$gpid"; wait "$gpid" 2>/dev/null || true; gpid=""
	printf '| %s | %s | %d ms | %d MiB | %s |\n' "$gw" "$code" "$ms" $(((after - before) / 1024)) "$stall"
done
