#!/bin/bash
# bench/proxy/tls.sh — HTTPS with HTTP/2 through HAProxy, nginx and infergate,
# side by side in one run, each terminating TLS with the same certificate (an
# ECDSA P-256 chain made here by openssl) in front of the same plaintext
# backend (nginx answering a fixed chat completion), as run.sh does for
# HTTP/1.1. One core for each proxy and the backend, another for the client.
#
#   1. h2 requests/s: h2load, CONNS connections x STREAMS streams, the 125-byte
#      JSON POST of post.lua to /v1/chat/completions (median of ROUNDS)
#   2. full TLS handshakes/s: openssl s_time -new (one handshake and one
#      small GET per connection, no resumption), median of ROUNDS
#   3. infergate's memory: RSS delta over IDLE idle TLS connections, and over
#      STREAMS_HELD HTTP/2 streams in flight (slow streams from infergate-sim)
#
#   sh bench/proxy/tls.sh                 N=20000 CONNS=10 STREAMS=10 ROUNDS=3
# Prints Markdown tables.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
here=$top/bench/proxy
N=${N:-20000}
CONNS=${CONNS:-10}
STREAMS=${STREAMS:-10}
ROUNDS=${ROUNDS:-3}
HS_SECONDS=${HS_SECONDS:-4}
IDLE=${IDLE:-1000}
STREAMS_HELD=${STREAMS_HELD:-500}
GW=${GW:-$top/bin/infergate}
SIM=${SIM:-$top/bin/infergate-sim}
for t in h2load haproxy nginx openssl python3 node; do
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
base=${BASE_PORT:-29200}
BACK=$base; HAP=$((base + 1)); NGX=$((base + 2)); IG=$((base + 3)); SIMP=$((base + 4)); IG2=$((base + 5))
if [ "$(nproc)" -ge 2 ]; then PIN_CLI="taskset -c 0"; PIN_SRV="taskset -c 1"; else PIN_CLI=""; PIN_SRV=""; fi

# ---- the certificate: a CA and an ECDSA P-256 server certificate
(
	cd "$tmp"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=bench-ca \
		-keyout ca.key -out ca.pem 2>/dev/null
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost -keyout srv.key -out srv.csr 2>/dev/null
	printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >ext
	openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -extfile ext -out srv.pem 2>/dev/null
	cat srv.pem srv.key >srv.both   # HAProxy takes chain and key in one file
)

# ---- the backend (plaintext), as in run.sh
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
	}
}
NGINX
$PIN_SRV "$NGINX" -c "$tmp/back/nginx.conf" -e "$tmp/back/error.log" &
pids="$pids $!"

# ---- HAProxy: TLS with ALPN h2,http/1.1, one thread
cat >"$tmp/haproxy.cfg" <<HAP
global
	nbthread 1
	maxconn 8000
	tune.ssl.default-dh-param 2048
defaults
	mode http
	timeout connect 5s
	timeout client 60s
	timeout server 300s
	option http-keep-alive
	http-reuse always
frontend fe
	bind 127.0.0.1:$HAP ssl crt $tmp/srv.both alpn h2,http/1.1
	default_backend be
backend be
	server b1 127.0.0.1:$BACK
HAP
$PIN_SRV "$HAPROXY" -f "$tmp/haproxy.cfg" -db >/dev/null 2>&1 &
pids="$pids $!"

# ---- nginx: TLS with http2, one worker, keep-alive upstream
cat >"$tmp/ngx/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $tmp/ngx/nginx.pid;
error_log $tmp/ngx/error.log warn;
events { worker_connections 20000; }
http {
	access_log off;
	client_body_temp_path $tmp/ngx;
	proxy_temp_path $tmp/ngx;
	keepalive_requests 1000000;
	ssl_session_cache shared:SSL:10m;
	upstream be { server 127.0.0.1:$BACK; keepalive 256; keepalive_requests 1000000; }
	server {
		listen 127.0.0.1:$NGX ssl http2;
		ssl_certificate $tmp/srv.pem;
		ssl_certificate_key $tmp/srv.key;
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

# ---- infergate: TLS listener (ALPN h2, http/1.1), one thread
cat >"$tmp/ig.yaml" <<YAML
region: local
listen:
  - { address: "127.0.0.1:$IG", tls: { cert: "$tmp/srv.pem", key: "$tmp/srv.key" } }
limits: { max_connections: 20000 }
pools:
  - name: bench
    models: [gemma]
    endpoints: [ { address: "127.0.0.1:$BACK" } ]
    health: { interval: 1s, timeout: 500ms }
    metrics: { enabled: false }
YAML
$PIN_SRV "$GW" -c "$tmp/ig.yaml" --log-level warn &
ig_pid=$!
pids="$pids $ig_pid"

for p in $HAP $NGX $IG; do
	for _ in $(seq 1 50); do
		curl -fsk -o /dev/null --http2 -X POST "https://127.0.0.1:$p/v1/chat/completions" -d '{"model":"gemma"}' && break
		sleep 0.1
	done
done
printf '{"model":"gemma","messages":[{"role":"user","content":"What is the capital of France? Answer briefly."}]}' >"$tmp/post.json"

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# ---- 1. h2 requests/s (MEMORY_ONLY=1 skips 1 and 2)
if [ -z "${MEMORY_ONLY:-}" ]; then
echo "== h2 requests/s: h2load -n $N -c $CONNS -m $STREAMS, POST" >&2
for r in $(seq 1 "$ROUNDS"); do
	for t in haproxy:$HAP nginx:$NGX infergate:$IG; do
		name=${t%%:*} port=${t##*:}
		$PIN_CLI h2load -n "$N" -c "$CONNS" -m "$STREAMS" -d "$tmp/post.json" -H 'content-type: application/json' \
			"https://127.0.0.1:$port/v1/chat/completions" >"$tmp/h2.$name.$r" 2>&1 || true
		rps=$(sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p' "$tmp/h2.$name.$r")
		ok=$(sed -n 's/.* \([0-9]*\) succeeded.*/\1/p' "$tmp/h2.$name.$r")
		echo "$name round $r: $rps req/s, $ok of $N succeeded" >&2
		echo "${rps:-0}" >>"$tmp/rps.$name"
	done
done

# ---- 2. full handshakes/s
echo "== TLS handshakes/s: openssl s_time -new -time $HS_SECONDS" >&2
for r in $(seq 1 "$ROUNDS"); do
	for t in haproxy:$HAP nginx:$NGX infergate:$IG; do
		name=${t%%:*} port=${t##*:}
		n=$($PIN_CLI openssl s_time -connect "127.0.0.1:$port" -new -time "$HS_SECONDS" -www /healthz 2>/dev/null |
			sed -n 's/^\([0-9]*\) connections in \([0-9.]*\)s.*/\1 \2/p' | head -n 1 | awk '{ printf "%.0f", $1 / '"$HS_SECONDS"' }')
		echo "$name round $r: ${n:-0} handshakes/s" >&2
		echo "${n:-0}" >>"$tmp/hs.$name"
	done
done

echo
echo "| target | h2 requests/s (median of $ROUNDS) | full TLS handshakes/s (median of $ROUNDS) |"
echo "|---|---:|---:|"
for name in haproxy nginx infergate; do
	echo "| $name | $(median <"$tmp/rps.$name") | $(median <"$tmp/hs.$name") |"
done
fi

# ---- 3. infergate's memory per idle TLS connection and per HTTP/2 stream
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
"$SIM" --port "$SIMP" --model gemma --itl-ms 1000 --max-num-seqs 4096 --log-level warn >/dev/null 2>&1 &
pids="$pids $!"
cat >"$tmp/ig2.yaml" <<YAML
region: local
listen:
  - { address: "127.0.0.1:$IG2", tls: { cert: "$tmp/srv.pem", key: "$tmp/srv.key" } }
limits: { max_connections: 20000 }
pools:
  - name: sim
    models: [gemma]
    endpoints: [ { address: "127.0.0.1:$SIMP" } ]
    health: { interval: 1s, timeout: 500ms }
YAML
"$GW" -c "$tmp/ig2.yaml" --log-level warn &
ig2=$!
pids="$pids $ig2"
for _ in $(seq 1 50); do curl -fsk -o /dev/null "https://127.0.0.1:$IG2/readyz" && break; sleep 0.1; done
sleep 1
r0=$(rss_kb $ig2)
python3 - "$IG2" "$IDLE" "$tmp/idle.go" <<'PY' &
import socket, ssl, sys, os, time
port, n, flag = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
conns = []
for i in range(n):
    c = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
    conns.append(c)
open(flag, "w").write("up")
time.sleep(30)
PY
idle_py=$!
for _ in $(seq 1 300); do [ -f "$tmp/idle.go" ] && break; sleep 0.1; done
sleep 1
r1=$(rss_kb $ig2)
kill $idle_py 2>/dev/null || true; wait $idle_py 2>/dev/null || true
sleep 1
# HTTP/2: 5 connections, STREAMS_HELD streams in flight (slow SSE from the sim).
NODE_PATH=$top/tests/node/node_modules node -e '
const http2 = require("http2"); const fs = require("fs");
const [port, total, flag] = process.argv.slice(1);
const sessions = []; for (let i = 0; i < 5; i++) sessions.push(http2.connect("https://localhost:" + port, { rejectUnauthorized: false }));
let started = 0;
for (let i = 0; i < Number(total); i++) {
  const s = sessions[i % 5];
  const q = s.request({ ":method": "POST", ":path": "/v1/chat/completions", "content-type": "application/json" });
  q.end(JSON.stringify({ model: "gemma", stream: true, max_tokens: 60, messages: [{ role: "user", content: "hi" }] }));
  q.on("data", () => { if (!q.seen) { q.seen = 1; if (++started === Number(total)) fs.writeFileSync(flag, "up"); } });
  q.on("error", () => {});
}
setTimeout(() => process.exit(0), 30000);
' "$IG2" "$STREAMS_HELD" "$tmp/h2.go" &
h2_js=$!
for _ in $(seq 1 300); do [ -f "$tmp/h2.go" ] && break; sleep 0.1; done
sleep 1
r2=$(rss_kb $ig2)
kill $h2_js 2>/dev/null || true; wait $h2_js 2>/dev/null || true
echo
echo "| infergate memory | RSS before | RSS with load | per unit |"
echo "|---|---:|---:|---:|"
echo "| $IDLE idle TLS connections (TLS 1.3, handshake done) | $r0 KiB | $r1 KiB | $(( (r1 - r0) * 1024 / IDLE )) bytes |"
echo "| $STREAMS_HELD HTTP/2 streams in flight on 5 TLS connections (each a proxied SSE request) | $r0 KiB | $r2 KiB | $(( (r2 - r0) * 1024 / STREAMS_HELD )) bytes |"
[ -f "$tmp/h2.go" ] || echo "(not every stream had started: the per-stream figure is an upper bound of fewer streams)"
