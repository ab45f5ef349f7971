#!/bin/bash
# bench/proxy/run.sh — the proxy benchmark: wrk (keep-alive, small JSON POST
# bodies to /v1/chat/completions) against one small backend (nginx answering a
# fixed JSON body), directly and through HAProxy (one thread, round robin),
# nginx (one worker, keep-alive upstream) and infergate (one thread, parsing
# every JSON body). With 2 or more cores, wrk runs on core 0 and the proxy
# and backend on core 1 (taskset), so each proxy gets the same single core.
# Prints a Markdown table (requests/s, p50, p99, added p99 over direct, and
# each proxy's own CPU time per request from /proc/PID/stat, user + system,
# over all rounds: the figure a busy machine's scheduling disturbs least).
#
#   sh bench/proxy/run.sh            DURATION=10s CONNS=50 ROUNDS=3 by default
#   DURATION=30s CONNS=100 sh bench/proxy/run.sh
#   GW_BEFORE=/path/to/other/infergate sh bench/proxy/run.sh
#                                   adds that gateway binary as a fifth target
#                                   (infergate-before), to compare two builds
#                                   in the same run
#   DASHBOARD_VIEWERS=4 sh bench/proxy/run.sh
#                                    adds "infergate+dashboard": a second
#                                    gateway like the first with that many live
#                                    dashboard streams (/dashboard/events) open
#                                    all along, measured in the same rounds
#   TARGETS="direct infergate infergate+dashboard" ...   only these targets
# The four targets are measured in turn, ROUNDS times, and each figure is the
# median of its rounds: on a shared machine one run is mostly noise.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
here=$top/bench/proxy
. "$here/backend.sh"
DURATION=${DURATION:-10s}
CONNS=${CONNS:-50}
ROUNDS=${ROUNDS:-3}
DASHBOARD_VIEWERS=${DASHBOARD_VIEWERS:-0}
TARGETS=${TARGETS:-direct haproxy nginx infergate$([ "$DASHBOARD_VIEWERS" -gt 0 ] && echo " infergate+dashboard" || true)}
GW=${GW:-$top/bin/infergate}
for t in wrk haproxy nginx; do
	command -v $t >/dev/null 2>&1 || [ -x /usr/sbin/$t ] || { echo "$t is missing (make deps)"; exit 1; }
done
[ -x "$GW" ] || { echo "build first: make build"; exit 1; }
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
tmp=$(mktemp -d)
pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	for p in $pids; do wait "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT

base=${BASE_PORT:-29100}
BACK=$base; HAP=$((base + 1)); NGX=$((base + 2)); IG=$((base + 3)); IGB=$((base + 4)); IGD=$((base + 5))
GW_BEFORE=${GW_BEFORE:-}
if [ "$(nproc)" -ge 2 ]; then
	PIN_WRK="taskset -c 0"; PIN_SRV="taskset -c 1"
else
	PIN_WRK=""; PIN_SRV=""
fi

# ---- the backend: nginx, one worker, a fixed small JSON answer to any POST
mkdir -p "$tmp/back" "$tmp/ngx"
cat >"$tmp/back/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $tmp/back/nginx.pid;
error_log $tmp/back/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $tmp/back;
	keepalive_requests 1000000;
	server {
		listen 127.0.0.1:$BACK;
		location / {
			default_type application/json;
			return 200 '{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gemma","choices":[{"index":0,"message":{"role":"assistant","content":"Paris."},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}';
		}
		location = /health { return 200 ''; }
	}
}
NGINX
$PIN_SRV "$NGINX" -c "$tmp/back/nginx.conf" -e "$tmp/back/error.log" &
pids="$pids $!"

# ---- HAProxy 2.6, one thread, round robin, keep-alive to the backend
haproxy_conf "$tmp/haproxy.cfg" $HAP "$BACK"
$PIN_SRV "$HAPROXY" -f "$tmp/haproxy.cfg" -db &
pids="$pids $!"
pid_haproxy=$!

# ---- nginx as a proxy, one worker, keep-alive upstream
cat >"$tmp/ngx/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $tmp/ngx/nginx.pid;
error_log $tmp/ngx/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $tmp/ngx;
	proxy_temp_path $tmp/ngx;
	keepalive_requests 1000000;
	upstream be { server 127.0.0.1:$BACK; keepalive 256; keepalive_requests 1000000; }
	server {
		listen 127.0.0.1:$NGX;
		location / {
			proxy_pass http://be;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
		}
	}
}
NGINX
$PIN_SRV "$NGINX" -c "$tmp/ngx/nginx.conf" -e "$tmp/ngx/error.log" &
pids="$pids $!"
ngx_master=$!

# ---- infergate, one thread (always), access log off, checks on; the backend
# serves no /metrics, so scraping is off (as HAProxy and nginx do none)
cat >"$tmp/ig.yaml" <<YAML
region: local
listen: 127.0.0.1:$IG
pools:
  - name: bench
    models: [gemma]
    endpoints: [ { address: "127.0.0.1:$BACK" } ]
    health: { interval: 1s, timeout: 500ms }
    metrics: { enabled: false }
YAML
$PIN_SRV "$GW" -c "$tmp/ig.yaml" --log-level warn &
pids="$pids $!"
pid_infergate=$!
ports="$BACK $HAP $NGX $IG"
if [ -n "$GW_BEFORE" ]; then
	sed "s/127.0.0.1:$IG/127.0.0.1:$IGB/" "$tmp/ig.yaml" >"$tmp/igb.yaml"
	$PIN_SRV "$GW_BEFORE" -c "$tmp/igb.yaml" --log-level warn &
	pids="$pids $!"
	pid_before=$!
	ports="$ports $IGB"
	TARGETS="$TARGETS infergate-before"
fi
# ---- the same gateway with live dashboard viewers connected all along
if [ "$DASHBOARD_VIEWERS" -gt 0 ]; then
	sed "s/^listen: .*/listen: 127.0.0.1:$IGD/" "$tmp/ig.yaml" >"$tmp/igd.yaml"
	echo "dashboard: { max_viewers: $DASHBOARD_VIEWERS }" >>"$tmp/igd.yaml"
	$PIN_SRV "$GW" -c "$tmp/igd.yaml" --log-level warn &
	pids="$pids $!"
	pid_dashboard=$!
	ports="$ports $IGD"
fi

for p in $ports; do
	for _ in $(seq 1 50); do
		curl -fs -o /dev/null -X POST "http://127.0.0.1:$p/v1/chat/completions" -d '{"model":"gemma"}' && break
		sleep 0.1
	done
done

pid_nginx=$(pgrep -P "$ngx_master" | head -n 1 || true) # its one worker

for _ in $(seq 1 "$DASHBOARD_VIEWERS"); do
	$PIN_WRK curl -s -N -o /dev/null "http://127.0.0.1:$IGD/dashboard/events" &
	pids="$pids $!"
done
if [ "$DASHBOARD_VIEWERS" -gt 0 ]; then
	sleep 1
	open=$(curl -fs "http://127.0.0.1:$IGD/metrics" | awk '$1 == "infergate_dashboard_viewers" { print $2 }')
	[ "$open" = "$DASHBOARD_VIEWERS" ] || { echo "only ${open:-0} of $DASHBOARD_VIEWERS dashboard viewers connected"; exit 1; }
fi

# cpu_ticks PID: user + system clock ticks the process used so far
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# run NAME PORT: one wrk run; appends "name rps p50 p99" to $tmp/results
# (and, for the proxies, "name ticks requests" to $tmp/cpu: their own CPU time)
run() {
	echo "== $1 (port $2)" >&2
	local pid=""
	case $1 in
	haproxy) pid=${pid_haproxy:-} ;; nginx) pid=${pid_nginx:-} ;; infergate) pid=${pid_infergate:-} ;;
	infergate-before) pid=${pid_before:-} ;; infergate+dashboard) pid=${pid_dashboard:-} ;;
	esac
	$PIN_WRK wrk -t1 -c"$CONNS" -d2s -s "$here/post.lua" "http://127.0.0.1:$2" >/dev/null 2>&1 || true   # warm-up
	local t0=0
	[ -n "$pid" ] && t0=$(cpu_ticks "$pid")
	$PIN_WRK wrk -t1 -c"$CONNS" -d"$DURATION" --latency -s "$here/post.lua" "http://127.0.0.1:$2" >"$tmp/$1.txt" 2>&1 || true
	[ -n "$pid" ] && echo "$1 $(( $(cpu_ticks "$pid") - t0 )) $(awk '/requests in/ { print $1 }' "$tmp/$1.txt")" >>"$tmp/cpu"
	cat "$tmp/$1.txt" >&2
	local rps p50 p99 non2xx
	rps=$(sed -n 's/^Requests\/sec: *//p' "$tmp/$1.txt")
	p50=$(awk '$1 == "50%" { print $2 }' "$tmp/$1.txt")
	p99=$(awk '$1 == "99%" { print $2 }' "$tmp/$1.txt")
	non2xx=$(sed -n 's/^ *Non-2xx or 3xx responses: *//p' "$tmp/$1.txt")
	echo "$1 $rps $p50 $p99 ${non2xx:-0}" >>"$tmp/results"
}
for r in $(seq 1 "$ROUNDS"); do
	for t in $TARGETS; do
		case $t in
		direct) run direct $BACK ;;
		haproxy) run haproxy $HAP ;;
		nginx) run nginx $NGX ;;
		infergate) run infergate $IG ;;
		infergate-before) run infergate-before $IGB ;;
		infergate+dashboard) run infergate+dashboard $IGD ;;
		esac
	done
done
# median NAME COLUMN: the median of a column over the rounds (latencies in us)
median() {
	awk -v n="$1" -v c="$2" '$1 == n { print $c }' "$tmp/results" | while read -r v; do to_us "$v"; done |
		sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}

# to_us 1.23ms -> 1230
to_us() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) print n; else if (v ~ /ms$/) print n * 1000; else if (v ~ /s$/) print n * 1000000; else print n }'; }
direct_p99=$(median direct 4)
echo
[ "$DASHBOARD_VIEWERS" -gt 0 ] && echo "infergate+dashboard: $DASHBOARD_VIEWERS live dashboard streams open during its runs (curl -N /dashboard/events)"
echo "wrk -t1 -c$CONNS -d$DURATION --latency, small JSON POST, keep-alive; median of $ROUNDS rounds; $(nproc) cores${PIN_WRK:+, wrk on core 0, proxy and backend on core 1}; load average $(cut -d' ' -f1 /proc/loadavg)"
echo
echo "| target | requests/s | p50 | p99 | added p99 over direct | non-2xx (all rounds) | proxy CPU µs per request (all rounds) |"
echo "|---|---:|---:|---:|---:|---:|---:|"
hz=$(getconf CLK_TCK)
for name in $TARGETS; do
	rps=$(awk -v n=$name '$1 == n { print $2 }' "$tmp/results" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
	p50=$(median $name 3); p99=$(median $name 4)
	bad=$(awk -v n=$name '$1 == n { s += $5 } END { print s + 0 }' "$tmp/results")
	added="—"
	[ $name != direct ] && [ -n "$direct_p99" ] && added="$(awk -v a="$p99" -v b="$direct_p99" 'BEGIN { printf "%+.2f ms", (a - b) / 1000 }')"
	cpu=$(awk -v n=$name -v hz="$hz" '$1 == n { t += $2; k += $3 } END { if (k > 0) printf "%.1f", t / hz * 1e6 / k; else print "—" }' "$tmp/cpu" 2>/dev/null || echo "—")
	printf '| %s | %.0f | %.2f ms | %.2f ms | %s | %s | %s |\n' $name "$rps" "$(awk -v v="$p50" 'BEGIN { print v / 1000 }')" "$(awk -v v="$p99" 'BEGIN { print v / 1000 }')" "$added" "$bad" "$cpu"
done
if echo " $TARGETS " | grep -q " infergate+dashboard " && echo " $TARGETS " | grep -q " infergate "; then
	a=$(awk '$1 == "infergate+dashboard" { print $2 }' "$tmp/results" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
	b=$(awk '$1 == "infergate" { print $2 }' "$tmp/results" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
	echo
	awk -v a="$a" -v b="$b" 'BEGIN { printf "infergate with the dashboard open / without: %.3f of the requests/s\n", a / b }'
	# CPU time per request, summed over the rounds: what the gateway itself
	# spent, which a busy machine's scheduling disturbs less than requests/s.
	awk -v hz="$hz" '{ t[$1] += $2; n[$1] += $3 } END {
		a = t["infergate"] / hz * 1e6 / n["infergate"]; b = t["infergate+dashboard"] / hz * 1e6 / n["infergate+dashboard"];
		printf "gateway CPU per request: %.1f us without, %.1f us with the dashboard open (%.3fx)\n", a, b, b / a }' "$tmp/cpu"
fi
