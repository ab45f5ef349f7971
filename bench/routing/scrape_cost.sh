#!/bin/bash
# bench/routing/scrape_cost.sh — what scraping costs the gateway: N endpoints
# (nginx serving a static copy of infergate-sim's /metrics page on N loopback
# ports) scraped every INTERVAL; the gateway's CPU time (/proc/PID/schedstat)
# over SECONDS, as a share of one core and per scrape. Then the same gateway
# with scraping off (health checks still on): what it costs without scraping,
# so that the difference is scraping's own cost. FLOOR=1 also runs
# scrape_floor.c, the same requests with nothing but the system calls.
# IO_URING=off measures the gateway with `io_uring: off`.
#
#   bash bench/routing/scrape_cost.sh [BIN_DIR]      N=100 INTERVAL=100ms SECONDS_=10 FLOOR=0 PEER=1 BASE=1
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
gw_config() { # ENABLED: the gateway's configuration, scraping on or off
	echo "region: local"
	echo "listen: 127.0.0.1:$PORT_BASE"
	[ -n "${IO_URING:-}" ] && echo "io_uring: $IO_URING"
	echo "pools:"
	echo "  - name: many"
	echo "    metrics: { interval: $INTERVAL, enabled: $1 }"
	echo "    endpoints:"
	for i in $(seq 1 "$N"); do echo "      - address: 127.0.0.1:$((PORT_BASE + i))"; done
}
gw_config true >"$OUT/gw.yaml"
gw_config false >"$OUT/gw-base.yaml"
"$bin/infergate" -c "$OUT/gw.yaml" --log-level warn >"$OUT/gw.log" 2>&1 &
gw=$!
pids+=($gw)
sleep 2
# CPU time: /proc/PID/schedstat (ns on a CPU, exact) for the total, /proc/PID/stat
# (clock ticks) for the user/system split.
run_ns() { awk '{print $1}' "/proc/$1/schedstat"; }
ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }
scrapes() { curl -s "http://127.0.0.1:$PORT_BASE/metrics" | awk -v want="$1" '/^infergate_scrapes_total/ && (want == "ok") == /result="ok"/ {s += $NF} END {print s + 0}'; }
n0=$(run_ns $gw); k0=$(ticks $gw); s0=$(scrapes ok); w0=$(date +%s.%N)
sleep "$SECS"
n1=$(run_ns $gw); k1=$(ticks $gw); s1=$(scrapes ok); w1=$(date +%s.%N)
fails=$(scrapes failed)
base=
if [ "${BASE:-1}" = 1 ]; then
	# The same gateway, health checks and all, with scraping off.
	kill $gw 2>/dev/null; wait $gw 2>/dev/null
	"$bin/infergate" -c "$OUT/gw-base.yaml" --log-level warn >"$OUT/gw-base.log" 2>&1 &
	gw=$!
	pids+=($gw)
	sleep 2
	b0=$(run_ns $gw); bw0=$(date +%s.%N)
	sleep "$SECS"
	b1=$(run_ns $gw); bw1=$(date +%s.%N)
	base=$(python3 -c "import sys; b0,b1,w0,w1=map(float,sys.argv[1:]); print(f'{(b1-b0)/1e9/(w1-w0):.6f}')" "$b0" "$b1" "$bw0" "$bw1")
fi
floor=
case "$INTERVAL" in *ms) interval_ms=${INTERVAL%ms} ;; *s) interval_ms=$((${INTERVAL%s} * 1000)) ;; *) interval_ms=$INTERVAL ;; esac
if [ "${FLOOR:-0}" = 1 ]; then
	kill $gw 2>/dev/null; wait $gw 2>/dev/null
	# The same traffic from a program that does nothing but send, epoll_wait and
	# read (bench/routing/scrape_floor.c): what the kernel costs alone.
	cc -O2 -o "$OUT/scrape_floor" "$top/bench/routing/scrape_floor.c" &&
		floor=$("$OUT/scrape_floor" "$N" $((PORT_BASE + 1)) "$interval_ms" "$SECS")
fi
python3 - "$n0" "$n1" "$w0" "$w1" "$s0" "$s1" "$fails" "$N" "$INTERVAL" "$(wc -c <"$OUT/www/metrics")" $k0 $k1 "$(getconf CLK_TCK)" "${base:-}" <<'PY'
import sys
n0, n1, w0, w1, s0, s1, fails = (float(x) for x in sys.argv[1:8])
n, interval, page = sys.argv[8], sys.argv[9], sys.argv[10]
u0, y0, u1, y1, hz = (float(x) for x in sys.argv[11:16])
base = sys.argv[16] if len(sys.argv) > 16 else ""
cpu = (n1 - n0) / 1e9; wall = w1 - w0; rate = (s1 - s0) / wall
user = (u1 - u0) / max(1.0, (u1 - u0) + (y1 - y0))
print(f"{n} endpoints every {interval} ({page}-byte page): {rate:.0f} scrapes/s, {fails:.0f} failed; "
      f"gateway CPU {cpu:.3f} s over {wall:.1f} s = {100 * cpu / wall:.2f}% of one core, "
      f"{1e6 * cpu / max(1.0, s1 - s0):.1f} us per scrape ({100 * user:.0f}% user)")
if base:
    b = float(base)
    own = cpu / wall - b
    print(f"without scraping (health checks only): {100 * b:.2f}% of one core; "
          f"scraping's own cost: {100 * own:.2f}% of one core, {1e6 * own * wall / max(1.0, s1 - s0):.1f} us per scrape")
PY
[ -n "$floor" ] && echo "floor (send/epoll_wait/read only): $floor"
if [ "${PEER:-1}" = 1 ] && command -v prometheus >/dev/null; then
	# The peer: Prometheus (Debian's) scraping the same pages at the same
	# interval (it also stores every sample: the job it exists for). CPU of
	# all its threads, from /proc/PID/task/*/schedstat.
	kill $gw 2>/dev/null; wait $gw 2>/dev/null
	{
		echo "global: { scrape_interval: $INTERVAL, scrape_timeout: $INTERVAL }"
		echo "scrape_configs:"
		echo "  - job_name: many"
		echo "    static_configs:"
		echo "      - targets:"
		for i in $(seq 1 "$N"); do echo "        - 127.0.0.1:$((PORT_BASE + i))"; done
	} >"$OUT/prom.yml"
	prometheus --config.file="$OUT/prom.yml" --storage.tsdb.path="$OUT/tsdb" \
		--web.listen-address="127.0.0.1:$PORT_BASE" --log.level=warn >"$OUT/prom.log" 2>&1 &
	pr=$!
	pids+=($pr)
	sleep 4
	pcpu() { cat /proc/$pr/task/*/schedstat 2>/dev/null | awk '{s += $1} END {print s + 0}'; }
	pscr() { curl -s "http://127.0.0.1:$PORT_BASE/metrics" | awk '/^prometheus_target_interval_length_seconds_count/ {s += $2} END {print s + 0}'; }
	a=$(pcpu); q0=$(pscr); t0=$(date +%s.%N)
	sleep "$SECS"
	b=$(pcpu); q1=$(pscr); t1=$(date +%s.%N)
	python3 -c "import sys; a,b,q0,q1,t0,t1=map(float,sys.argv[1:]); w=t1-t0; print(f'peer: Prometheus {(q1-q0)/w:.0f} scrapes/s, CPU {100*(b-a)/1e9/w:.2f}% of one core, {1e6*(b-a)/1e9/max(1,q1-q0):.1f} us per scrape')" \
		"$a" "$b" "$q0" "$q1" "$t0" "$t1"
fi
exit 0
