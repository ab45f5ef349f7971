#!/bin/bash
# gateway_h2 — HTTP/2 on the front door, over TLS (ALPN h2) and in cleartext
# with prior knowledge (h2c, the preface detected on the HTTP/1.1 port):
# curl --http2 and --http2-prior-knowledge, the settings the gateway announces
# (nghttp), Node's http2 module streaming SSE from infergate-sim through the
# gateway, 60 concurrent streams on one connection, RST_STREAM cancelling the
# upstream generation, an oversized header list refused while the connection
# goes on, a stalled stream not holding up another (flow control, per-stream
# backpressure) and then delivered whole, GOAWAY on SIGTERM with the open stream finished, and h2load.
. "${IG_TOP:-$(dirname "$0")/../..}/tests/lib/gateway/lib.sh"
. "$top/tests/lib/tls.sh"
gw_init gateway_h2
P=$base
C=$tmp/certs
tls_certs "$C"
M=google/gemma-3-1b-it
H2="$top/tests/lib/gateway/h2_client.js"
command -v nghttp >/dev/null && command -v h2load >/dev/null || { echo "nghttp2-client is missing (make deps)"; exit 1; }
sim_start up $((P + 1)) --model $M --itl-ms 20
sim_start fast $((P + 2)) --model m-fast --itl-ms 1 --ttft-ms 1
cat >"$tmp/gw.yaml" <<YAML
region: r1
listen:
  - 127.0.0.1:$P
  - { address: "127.0.0.1:$((P + 4))", tls: { cert: "$C/srv.pem", key: "$C/srv.key" } }
limits: { max_header_bytes: 16KiB }
pools:
  - name: p
    models: [$M]
    endpoints: [ { address: "127.0.0.1:$((P + 1))" } ]
    health: { interval: 300ms, timeout: 250ms }
  - name: fast
    models: [m-fast]
    endpoints: [ { address: "127.0.0.1:$((P + 2))" } ]
    health: { interval: 300ms, timeout: 250ms }
YAML
"$GW" -c "$tmp/gw.yaml" >"$tmp/gw.out" 2>"$tmp/gw.log" &
gw_pid=$!
pids="$pids $gw_pid"
A=http://127.0.0.1:$P
wait_for "curl -fs $A/healthz >/dev/null" 10 || { echo "gateway did not start"; cat "$tmp/gw.log"; exit 1; }
T=https://localhost:$((P + 4))
wait_for "[ \"\$(ep_state $A 127.0.0.1:$((P + 1)))\" = up ]" 5
body='{"model":"'$M'","messages":[{"role":"user","content":"hi"}],"max_tokens":4}'

echo "== curl"
out=$(curl -s --cacert "$C/ca.pem" --http2 -o "$tmp/b" -w '%{http_code} %{http_version}' $T/v1/chat/completions -H 'content-type: application/json' -d "$body")
check '[ "$out" = "200 2" ] && [ "$(json $tmp/b d.object)" = chat.completion ]' "curl --http2 over TLS: a chat over HTTP/2 ($out)"
out=$(curl -s --http2-prior-knowledge -o "$tmp/b" -w '%{http_code} %{http_version}' $A/v1/chat/completions -H 'content-type: application/json' -d "$body")
check '[ "$out" = "200 2" ] && [ "$(json $tmp/b d.object)" = chat.completion ]' "curl --http2-prior-knowledge in cleartext (h2c): a chat ($out)"
out=$(curl -s -o /dev/null -w '%{http_code} %{http_version}' $A/v1/chat/completions -H 'content-type: application/json' -d "$body")
check '[ "$out" = "200 1.1" ]' "HTTP/1.1 on the same port still works ($out)"
out=$(curl -s --http2-prior-knowledge -o "$tmp/b" -w '%{http_code}' $A/v1/nope)
check '[ "$out" = 404 ] && [ "$(json $tmp/b d.error.code)" = 404 ]' "an unknown path over h2: the same OpenAI-style 404"
out=$(curl -s --http2-prior-knowledge -o "$tmp/b" -w '%{http_code}' $A/v1/chat/completions -H 'content-type: application/json' -d '{"model":')
check '[ "$out" = 400 ] && [ "$(json $tmp/b d.error.type)" != unparsable ]' "invalid JSON over h2: 400 with a JSON error"
head -c 100000 /dev/zero | tr '\0' 'x' >"$tmp/big"
out=$(curl -s --http2-prior-knowledge -o "$tmp/b" -w '%{http_code}' $A/v1/chat/completions -H 'content-type: application/json' --data-binary @"$tmp/big")
check '[ "$out" = 400 ]' "a 100 kB body over h2 is received whole (flow control): 400 for its content ($out)"
curl -sN --http2-prior-knowledge $A/v1/chat/completions -H 'content-type: application/json' \
	-d '{"model":"'$M'","stream":true,"messages":[{"role":"user","content":"hi"}],"max_tokens":8}' >"$tmp/sse"
check '[ "$(grep -c "^data: {" "$tmp/sse")" -ge 8 ] && tail -n 2 "$tmp/sse" | grep -q "data: \[DONE\]"' "a streamed chat over h2c ends with [DONE]"

echo "== settings"
nghttp -nv $A/healthz >"$tmp/ng" 2>&1
check 'grep -q "SETTINGS_MAX_CONCURRENT_STREAMS(0x03):100" "$tmp/ng"' "the gateway announces max_concurrent_streams 100"
check 'grep -q "SETTINGS_MAX_HEADER_LIST_SIZE(0x06):16384" "$tmp/ng"' "and its header-list cap (limits.max_header_bytes)"

echo "== Node's http2 module"
for u in "$T $C/ca.pem" "$A"; do
	set -- $u
	r=$(node "$H2" stream $1 $M ${2:-})
	check '[ "$(json "$r" d.status)" = 200 ] && [ "$(json "$r" d.events)" -ge 12 ] && [ "$(json "$r" d.done)" = true ]' "SSE through the gateway from infergate-sim over $(json "$r" d.alpn): $r"
done
r=$(node "$H2" many $T $M 60 "$C/ca.pem")
check '[ "$(json "$r" d.ok)" = 60 ]' "60 concurrent streams on one TLS connection all answered: $r"
running() { metric "http://127.0.0.1:$((P + 1))" 'vllm:num_requests_running{'; }
node "$H2" cancel $T $M "$C/ca.pem" >"$tmp/cancel" 2>&1 &
cp=$!
wait_for "grep -q 'stream started' $tmp/cancel" 10
wait_for '[ "$(running)" = 0 ]' 3
check 'grep -q "stream started" $tmp/cancel && [ "$(running)" = 0 ]' "RST_STREAM cancels the upstream generation within 3 s (2000 tokens at 20 ms would take 40 s)"
wait $cp
check '[ "$(curl -s --http2-prior-knowledge -o /dev/null -w %{http_code} $A/healthz)" = 200 ]' "the gateway goes on"
r=$(node "$H2" slow $A m-fast 4000)
check '[ "$(json "$r" d.b_done)" = true ] && [ "$(json "$r" d.b_ms)" -lt 2000 ]' "a stream whose reader stalls (window full, ~800 kB behind) does not hold up another on its connection"
check '[ "$(json "$r" d.a_events)" = 4001 ] && [ "$(json "$r" d.a_done)" = true ]' "and once read, the stalled stream delivers every event and [DONE]: $r"
r=$(node "$H2" bigheaders $T "$C/ca.pem")
check '[ "$(json "$r" d.status)" != 200 ] && [ "$(json "$r" d.after)" = 200 ]' "a 200 KiB header list is refused, the connection serves the next request: $r"
r=$(curl -s --http2-prior-knowledge -o "$tmp/b" -w '%{http_code}' $A/healthz $(for i in $(seq 1 40); do printf -- "-H x-f$i:%0500d " 0; done))
check '[ "$r" = 431 ] && [ "$(json $tmp/b d.error.code)" = 431 ]' "20 kB of headers from curl over h2c: 431 with a JSON error ($r)"

echo "== h2load"
h2load -n 400 -c 4 -m 8 $A/healthz >"$tmp/h2l" 2>&1
check 'grep -q "400 succeeded" "$tmp/h2l"' "h2load: 400 h2c requests on 4 connections, 8 streams each: $(grep -o '[0-9]* succeeded, [0-9]* failed' "$tmp/h2l")"
check '[ "$(metric $A infergate_client_http2_connections_total)" -ge 8 ]' "HTTP/2 connections are counted ($(metric $A infergate_client_http2_connections_total))"

echo "== GOAWAY on SIGTERM"
H2_TOKENS=100 node "$H2" hold $T $M "$C/ca.pem" >"$tmp/hold" 2>&1 &
hp=$!
wait_for "grep -q started $tmp/hold" 10
kill -TERM $gw_pid
wait $hp
r=$(tail -n 1 "$tmp/hold")
check '[ "$(json "$r" d.goaway)" = true ] && [ "$(json "$r" d.done)" = true ] && [ "$(json "$r" d.events)" -ge 100 ]' "the client gets GOAWAY and its open stream still ends with [DONE]: $r"
wait_for "! kill -0 $gw_pid 2>/dev/null" 10
check '! kill -0 $gw_pid 2>/dev/null' "the gateway exits once the stream is done"

finish
