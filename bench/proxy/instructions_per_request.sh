#!/bin/bash
# bench/proxy/instructions_per_request.sh — user-space instructions each proxy
# executes per proxied request, counted by valgrind --tool=callgrind while
# h2load sends a fixed number of HTTP/1.1 keep-alive POSTs (the body of
# post.lua), for HAProxy and one or more infergate builds in the same setup
# as run.sh. Counters are zeroed after a warm-up and dumped after the load, so
# start-up is not counted; health checks during the load are. A count that a
# busy shared machine does not disturb, so it decides between two builds where
# requests/s cannot. Kernel work (syscalls) is not counted.
#
#   bash bench/proxy/instructions_per_request.sh [GATEWAY...]   default: bin/infergate
#   N=5000 bash bench/proxy/instructions_per_request.sh /tmp/before/bin/infergate bin/infergate
#   PEER=0 ...   skips HAProxy (only the gateways)
#   KEEP=1 ...   keeps the callgrind.out.* files in the current directory
#                (callgrind_annotate --inclusive=yes callgrind.out.g1)
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
here=$top/bench/proxy
[ $# -gt 0 ] || set -- "$top/bin/infergate"
N=${N:-5000}
CONNS=${CONNS:-50}
KEEP=${KEEP:-0}
PEER=${PEER:-1}
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
for t in h2load valgrind callgrind_control; do command -v $t >/dev/null 2>&1 || { echo "$t is missing"; exit 1; }; done
tmp=$(mktemp -d)
pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	for p in $pids; do wait "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT
base=${BASE_PORT:-29500}
BACK=$base
# the request body of post.lua, sent by h2load
sed -n "s/^wrk.body = '\(.*\)'$/\1/p" "$here/post.lua" | tr -d '\n' >"$tmp/body.json"

. "$here/backend.sh"
bp=$(backend_start "$tmp" "$BACK")
pids="$pids $bp"

wait_up() {
	for _ in $(seq 1 300); do
		curl -fs -o /dev/null -X POST "http://127.0.0.1:$1/v1/chat/completions" -d '{"model":"gemma"}' && return 0
		sleep 0.1
	done
	echo "nothing answers on port $1"; exit 1
}
load() { # PORT COUNT: COUNT keep-alive POSTs; prints the number answered 2xx
	h2load --h1 -n "$2" -c "$CONNS" -d "$tmp/body.json" -H 'content-type: application/json' \
		"http://127.0.0.1:$1/v1/chat/completions" 2>&1 | awk '/^status codes:/ { print $3 }'
}
# measure NAME PORT PID: warm up, zero the counters, N requests, dump; prints
# "NAME requests instructions"
measure() {
	load "$2" 500 >/dev/null
	callgrind_control -z "$3" >/dev/null 2>&1
	local ok
	ok=$(load "$2" "$N")
	callgrind_control -d "$1" "$3" >/dev/null 2>&1
	local f
	for _ in $(seq 1 100); do
		f=$(ls "$tmp"/callgrind.out.$1.* 2>/dev/null | head -1)
		[ -n "$f" ] && grep -q '^totals:' "$f" && break
		sleep 0.1
	done
	[ "$KEEP" = 1 ] && cp "$f" "callgrind.out.$1"
	echo "$1 $ok $(awk '/^totals:/ { print $2 }' "$f")"
}

haproxy_conf "$tmp/haproxy.cfg" $((base + 1)) "$BACK"
if [ "$PEER" = 1 ]; then
	valgrind --tool=callgrind --callgrind-out-file="$tmp/callgrind.out.haproxy" "$HAPROXY" -f "$tmp/haproxy.cfg" -db 2>"$tmp/vg.haproxy" &
	vp=$!
	pids="$pids $vp"
	wait_up $((base + 1))
	measure haproxy $((base + 1)) $vp >>"$tmp/res"
	kill -TERM $vp; wait $vp 2>/dev/null || true
fi

i=0
for gw in "$@"; do
	i=$((i + 1))
	port=$((base + 1 + i))
	cat >"$tmp/g$i.yaml" <<YAML
region: local
listen: 127.0.0.1:$port
pools:
  - name: bench
    models: [gemma]
    endpoints: [ { address: "127.0.0.1:$BACK" } ]
    health: { interval: 1s, timeout: 500ms }
    metrics: { enabled: false }
YAML
	valgrind --tool=callgrind --callgrind-out-file="$tmp/callgrind.out.g$i" "$gw" -c "$tmp/g$i.yaml" --log-level warn 2>"$tmp/vg.g$i" &
	vp=$!
	pids="$pids $vp"
	wait_up $port
	measure g$i $port $vp >>"$tmp/res"
	kill -TERM $vp; wait $vp 2>/dev/null || true
done

echo "h2load --h1 -n $N -c $CONNS (small JSON POST, keep-alive); valgrind --tool=callgrind on the proxy; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| target | requests (2xx) | instructions per request |"
echo "|---|---:|---:|"
while read -r n ok ins; do
	label=$n
	case $n in g*) label=$(eval "echo \${${n#g}}") ;; esac
	awk -v g="$label" -v ok="$ok" -v ins="$ins" 'BEGIN { printf "| %s | %d | %.0f |\n", g, ok, (ok > 0 ? ins / ok : 0) }'
done <"$tmp/res"
