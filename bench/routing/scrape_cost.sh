#!/bin/bash
# bench/routing/scrape_cost.sh — what scraping costs the gateway: N endpoints
# (nginx serving a static copy of infergate-sim's /metrics page on N loopback
# ports) scraped every INTERVAL; the gateway's CPU time (utime + stime from
# /proc/PID/stat) over SECONDS, as a share of one core.
#
#   bash bench/routing/scrape_cost.sh [BIN_DIR]      N=100 INTERVAL=100ms SECONDS_=10
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:-$top/bin}
case "$bin" in /*) ;; *) bin=$top/$bin ;; esac
N=${N:-100}
INTERVAL=${INTERVAL:-100ms}
SECS=${SECONDS_:-10}
PORT_BASE=${PORT_BASE:-19600}
OUT=$(mktemp -d "${TMPDIR:-/tmp}/ig-scrape.XXXXXX")
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$OUT"' EXIT
command -v nginx >/dev/null || { echo "nginx not installed" >&2; exit 1; }

# The page: a real one from the simulator.
"$bin/infergate-sim" --port 0 --log-level warn >"$OUT/sim.out" 2>/dev/null &
pids+=($!)
for _ in $(seq 1 100); do a=$(grep -o 'listening on [0-9.]*:[0-9]*' "$OUT/sim.out" | awk '{print $3}'); [ -n "$a" ] && break; sleep 0.05; done
mkdir -p "$OUT/www"
curl -s "http://$a/metrics" >"$OUT/www/metrics"
: >"$OUT/www/health"
{
	echo "worker_processes 1; daemon off; pid $OUT/nginx.pid; error_log $OUT/nginx.err warn;"
	echo "events { worker_connections 4096; }"
	echo "http { access_log off; keepalive_requests 1000000; keepalive_timeout 300s; default_type text/plain;"
	echo "  client_body_temp_path $OUT; proxy_temp_path $OUT; fastcgi_temp_path $OUT; uwsgi_temp_path $OUT; scgi_temp_path $OUT;"
	echo "  server {"
	for i in $(seq 1 "$N"); do echo "    listen 127.0.0.1:$((PORT_BASE + i));"; done
	echo "    root $OUT/www; location / { try_files \$uri =404; } }"
	echo "}"
} >"$OUT/nginx.conf"
nginx -c "$OUT/nginx.conf" -e "$OUT/nginx.err" &
pids+=($!)
{
	echo "region: local"
	echo "listen: 127.0.0.1:$PORT_BASE"
	echo "pools:"
	echo "  - name: many"
	echo "    metrics: { interval: $INTERVAL }"
	echo "    endpoints:"
	for i in $(seq 1 "$N"); do echo "      - address: 127.0.0.1:$((PORT_BASE + i))"; done
} >"$OUT/gw.yaml"
"$bin/infergate" -c "$OUT/gw.yaml" --log-level warn >"$OUT/gw.log" 2>&1 &
gw=$!
pids+=($gw)
sleep 2
ticks() { awk '{print $14 + $15}' "/proc/$gw/stat"; }
hz=$(getconf CLK_TCK)
t0=$(ticks); s0=$(curl -s "http://127.0.0.1:$PORT_BASE/metrics" | awk '/^infergate_scrapes_total/ && /result="ok"/ {s += $NF} END {print s + 0}')
w0=$(date +%s.%N)
sleep "$SECS"
t1=$(ticks); s1=$(curl -s "http://127.0.0.1:$PORT_BASE/metrics" | awk '/^infergate_scrapes_total/ && /result="ok"/ {s += $NF} END {print s + 0}')
w1=$(date +%s.%N)
fails=$(curl -s "http://127.0.0.1:$PORT_BASE/metrics" | awk '/^infergate_scrapes_total/ && !/result="ok"/ {s += $NF} END {print s + 0}')
python3 - "$t0" "$t1" "$hz" "$w0" "$w1" "$s0" "$s1" "$fails" "$N" "$INTERVAL" "$(wc -c <"$OUT/www/metrics")" <<'PY'
import sys
t0, t1, hz, w0, w1, s0, s1, fails = (float(x) for x in sys.argv[1:9])
n, interval, page = sys.argv[9], sys.argv[10], sys.argv[11]
cpu = (t1 - t0) / hz; wall = w1 - w0
print(f"{n} endpoints every {interval} ({page}-byte page): {(s1 - s0) / wall:.0f} scrapes/s, {fails:.0f} failed; "
      f"gateway CPU {cpu:.2f} s over {wall:.1f} s = {100 * cpu / wall:.2f}% of one core")
PY
