#!/bin/sh
# bench/proxy/instructions.sh — user-space instructions per proxied request,
# for one or more gateway builds: each runs under callgrind in front of nginx
# (a fixed JSON answer), metrics scraping off as in cpu_per_request.sh; after
# a warm-up, instrumentation is on for exactly REQUESTS keep-alive POSTs of
# bench/proxy's body on one connection. A count that a busy machine does not
# disturb: what to compare two builds by when requests/s is noise.
#
#   sh bench/proxy/instructions.sh [GATEWAY...]        default: bin/infergate
#   REQUESTS=2000 sh bench/proxy/instructions.sh /tmp/before/bin/infergate bin/infergate
# Needs valgrind, nginx and python3; free loopback ports are picked.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
here=$top/bench/proxy
[ $# -gt 0 ] || set -- "$top/bin/infergate"
REQUESTS=${REQUESTS:-1000}
tmp=$(mktemp -d)
pids=""
cleanup() { for p in $pids; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; [ -n "${KEEP:-}" ] && cp -r "$tmp" "$KEEP"; rm -rf "$tmp"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
BACK=$(free_port)
. "$here/backend.sh"
bp=$(backend_start "$tmp" "$BACK")
pids="$pids $bp"
# The body wrk sends in run.sh (post.lua), on one keep-alive connection.
body=$(sed -n 's/^wrk.body *= *\(.*\)$/\1/p' "$top/bench/proxy/post.lua" | python3 -c 'import sys,ast; print(ast.literal_eval(sys.stdin.read().strip()))')
send() { # port count: COUNT POSTs, exit non-zero unless every answer is 200
	python3 - "$1" "$2" "$body" <<'PY'
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=60)
for _ in range(int(sys.argv[2])):
    c.request("POST", "/v1/chat/completions", sys.argv[3], {"Content-Type": "application/json"})
    r = c.getresponse(); r.read()
    if r.status != 200: sys.exit("status %d" % r.status)
PY
}
echo "| gateway | requests | instructions per request |"
echo "|---|---:|---:|"
i=0
for gw in "$@"; do
	i=$((i + 1))
	port=$(free_port)
	cat >"$tmp/g$i.yaml" <<YAML
region: local
listen: 127.0.0.1:$port
pools:
  - name: bench
    models: [gemma]
    endpoints: [ { address: "127.0.0.1:$BACK" } ]
    health: { interval: 30s, fast_interval: 30s, timeout: 1s }
    metrics: { enabled: false }
YAML
	valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$tmp/cg$i.out" \
		"$gw" -c "$tmp/g$i.yaml" --log-level warn 2>"$tmp/vg$i.log" &
	p=$!
	pids="$pids $p"
	n=0
	until send "$port" 1 2>/dev/null; do
		n=$((n + 1)); [ $n -lt 100 ] || { echo "$gw did not answer"; cat "$tmp/vg$i.log"; exit 1; }
		sleep 0.3
	done
	send "$port" 200
	callgrind_control -i on "$p" >/dev/null
	send "$port" "$REQUESTS"
	callgrind_control -i off "$p" >/dev/null
	kill -INT "$p"; wait "$p" 2>/dev/null || true
	ir=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$tmp/cg$i.out" | head -n 1)
	echo "| $gw | $REQUESTS | $((ir / REQUESTS)) |"
done
