#!/bin/bash
# bench/proxy/cpu_per_request.sh — the gateway's own CPU time per proxied
# request (user + system, from /proc/PID/stat), for one or more gateway
# builds in the same run, alternating: a figure that a busy shared machine
# disturbs much less than requests/s. Backend: nginx answering a fixed JSON
# body; load: wrk with bench/proxy/post.lua.
#
#   sh bench/proxy/cpu_per_request.sh [GATEWAY...]    default: bin/infergate
#   ROUNDS=5 DURATION=3s sh bench/proxy/cpu_per_request.sh /tmp/before/bin/infergate bin/infergate
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
here=$top/bench/proxy
[ $# -gt 0 ] || set -- "$top/bin/infergate"
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-3s}
CONNS=${CONNS:-50}
tmp=$(mktemp -d)
pids=""
cleanup() { for p in $pids; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
base=${BASE_PORT:-29400}
BACK=$base
. "$here/backend.sh"
bp=$(backend_start "$tmp" "$BACK")
pids="$pids $bp"
i=0
for gw in "$@"; do
	i=$((i + 1))
	cat >"$tmp/g$i.yaml" <<YAML
region: local
listen: 127.0.0.1:$((base + i))
pools:
  - name: bench
    models: [gemma]
    endpoints: [ { address: "127.0.0.1:$BACK" } ]
    health: { interval: 1s, timeout: 500ms }
    metrics: { enabled: false }
YAML
	"$gw" -c "$tmp/g$i.yaml" --log-level warn &
	eval "gp$i=$!"
	pids="$pids $!"
	for _ in $(seq 1 50); do curl -fs -o /dev/null -X POST "http://127.0.0.1:$((base + i))/v1/chat/completions" -d '{"model":"gemma"}' && break; sleep 0.1; done
done
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
for r in $(seq 1 "$ROUNDS"); do
	i=0
	for gw in "$@"; do
		i=$((i + 1))
		eval "p=\$gp$i"
		t0=$(ticks "$p")
		n=$(wrk -t1 -c"$CONNS" -d"$DURATION" -s "$here/post.lua" "http://127.0.0.1:$((base + i))" 2>/dev/null |
			awk '/requests in/ { print $1 }')
		t1=$(ticks "$p")
		echo "$i $n $((t1 - t0))" >>"$tmp/res"
	done
done
echo "| gateway | requests | CPU µs per request (median of $ROUNDS rounds of $DURATION) |"
echo "|---|---:|---:|"
i=0
for gw in "$@"; do
	i=$((i + 1))
	awk -v i=$i -v hz="$hz" '$1 == i && $2 > 0 { printf "%s %.2f\n", $2, ($3 / hz) * 1e6 / $2 }' "$tmp/res" | sort -k2 -n |
		awk -v g="$gw" '{ n[NR] = $1; v[NR] = $2 } END { m = int((NR + 1) / 2); printf "| %s | %d | %.1f |\n", g, n[m], v[m] }'
done
