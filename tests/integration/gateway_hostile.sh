#!/bin/bash
# gateway_hostile — clients and upstreams that break HTTP's rules, against the
# real gateway in front of a simulator and a hand-made upstream (hostile.js):
#   1. a client pipelining requests and never reading: once its output is
#      paused and its input full, the gateway and the simulator sleep (CPU time
#      from /proc/PID/stat over 2 s) instead of spinning a core;
#   2. a client that pipelined more than the buffer holds, then leaves: its
#      streamed generation is cancelled at once (access log 499, the
#      simulator's running count back to 0), not run to the end as a 200;
#   3. an upstream's 204 and 304 are relayed with no framing and the next
#      answer on the same keep-alive connection is intact (Node's parser); a
#      103 is skipped; an unsolicited 101, a status of 600 and a body in
#      "gzip, chunked" are a 502;
#   4. upstream headers named x, X-I, x-inferg are relayed (only x-infergate-*
#      are dropped);
#   5. absolute-form request targets route by their path; HTTP/2.0 is a 505;
#      Transfer-Encoding "gzip, chunked" is a 501; a model name holding \u0000
#      is a 400 at the gateway and at the simulator.
. "${IG_TOP:-$(dirname "$0")/../..}/tests/lib/gateway/lib.sh"
gw_init gateway_hostile
P=$base
HOSTILE="$top/tests/lib/gateway/hostile.js"
sim_start gen $((P + 1)) --model gemma --region us-east5 --itl-ms 20
node "$HOSTILE" upstream $((P + 2)) >"$tmp/up.log" 2>&1 &
pids="$pids $!"
wait_for "(exec 3<>/dev/tcp/127.0.0.1/$((P + 2))) 2>/dev/null" 10 || { echo "the hostile upstream did not start"; exit 1; }
cat >"$tmp/gw.yaml" <<YAML
region: us-east5
listen: 127.0.0.1:$P
access_log: $tmp/access.log
pools:
  - name: gen
    models: [gemma]
    endpoints: [ { address: "127.0.0.1:$((P + 1))" } ]
    health: { interval: 200ms, timeout: 150ms }
  - name: hostile
    models: [s204, s304, s101, s600, hints, hdrs, gzipte, plain]
    endpoints: [ { address: "127.0.0.1:$((P + 2))" } ]
    health: { interval: 200ms, timeout: 150ms }
    metrics: { enabled: false }
    backend: { tries: 1 }
routes:
  - { path: /v1/, model: gemma, pool: gen }
  - { path: /v1/, pool: hostile }
YAML
gw_start "$tmp/gw.yaml"
U=$gw_url
wait_for "curl -fs $U/readyz >/dev/null" 5

# cpu_ticks PID: user + system CPU time of a process, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

echo "== 1. a pipelining client that never reads"
# idle_cpu PORT PID PATH COUNT: the lowest share of a core (percent) PID used
# over a 2 s window, within 14 s of a client pipelining COUNT GETs of PATH and
# never reading. Once the answers fill the socket buffers and the output
# buffer, the pipeline pauses and the server must sleep; spinning, no window
# is quiet.
idle_cpu() {
	node "$HOSTILE" noread "$1" "$4" "$3" 16 &
	local cl=$! best=100 t0 t1 p
	sleep 2
	t0=$(cpu_ticks "$2")
	for _ in 1 2 3 4 5 6; do
		sleep 2
		t1=$(cpu_ticks "$2")
		p=$(((t1 - t0) * 100 / hz / 2))
		[ "$p" -lt "$best" ] && best=$p
		[ "$best" -lt 5 ] && break
		t0=$t1
	done
	kill "$cl" 2>/dev/null; wait "$cl" 2>/dev/null
	echo "$best"
}
pct=$(idle_cpu "$P" "$gw_pid" /metrics 20000)
check '[ "$pct" -lt 5 ]' "the gateway sleeps behind a paused pipeline ($pct% of a core over 2 s)"
pct=$(idle_cpu $((P + 1)) "$sim_pid_gen" /metrics 20000)
check '[ "$pct" -lt 5 ]' "the simulator sleeps behind a paused pipeline ($pct% of a core over 2 s)"
check '[ "$(curl -s -o /dev/null -w %{http_code} $U/healthz)" = 200 ]' "the gateway still answers"

echo "== 2. a client that leaves with its buffer full"
running() { metric "http://127.0.0.1:$((P + 1))" 'vllm:num_requests_running{'; }
# leave PORT OUT: the client sends, reads the first event, half-closes and
# stays (reading) for 10 s: only its FIN can tell the server it left, as no
# write to it fails meanwhile.
leave() {
	node "$HOSTILE" leave "$1" gemma 60000 >"$2" 2>&1 &
	leave_pid=$!
	wait_for "grep -q 'stream started' $2" 5
}
: >"$tmp/access.log"
leave "$P" "$tmp/leave.out"
check 'grep -q "stream started" $tmp/leave.out' "the streamed generation started before the client left"
wait_for "grep -q '\"status\":499' $tmp/access.log" 3
check 'grep -q "\"status\":499" $tmp/access.log' "the access log says 499 within 3 s (a 2000-token generation at 20 ms a token would take 40 s)"
wait_for '[ "$(running)" = 0 ]' 3
check '[ "$(running)" = 0 ]' "the simulator's generation was cancelled (running $(running))"
kill "$leave_pid" 2>/dev/null; wait "$leave_pid" 2>/dev/null
# The same client straight against the simulator (its own httpd).
leave $((P + 1)) "$tmp/leave2.out"
sleep 0.5
wait_for '[ "$(running)" = 0 ]' 3
check '[ "$(running)" = 0 ] && grep -q "stream started" $tmp/leave2.out' "the simulator cancels a client that leaves with its buffer full"
kill "$leave_pid" 2>/dev/null; wait "$leave_pid" 2>/dev/null

echo "== 3. bodiless and odd statuses from the upstream"
node "$HOSTILE" keepalive "$P" s204 plain s304 plain hints s101 s600 plain gzipte >"$tmp/ka.out" 2>&1
cat "$tmp/ka.out" | cut -c1-160
line() { sed -n "${1}p" "$tmp/ka.out"; }
check '[ "$(line 1 | cut -d" " -f1-2)" = "s204 204" ] && [ "$(line 2 | cut -d" " -f1-2)" = "plain 200" ]' "a 204 and the next answer on the same connection"
check '! line 1 | grep -qi "transfer-encoding\|content-length"' "the 204 carries no framing"
check '[ "$(line 3 | cut -d" " -f1-2)" = "s304 304" ] && [ "$(line 4 | cut -d" " -f1-2)" = "plain 200" ]' "a 304 and the next answer on the same connection"
check '! line 3 | grep -qi "transfer-encoding"' "the 304 is not chunked"
check '[ "$(line 5 | cut -d" " -f1-2)" = "hints 200" ]' "103 Early Hints skipped: the final 200 is relayed"
check '[ "$(line 6 | cut -d" " -f1-2)" = "s101 502" ]' "an unsolicited 101 is a 502"
check '[ "$(line 7 | cut -d" " -f1-2)" = "s600 502" ]' "a status of 600 is a 502"
check '[ "$(line 8 | cut -d" " -f1-2)" = "plain 200" ]' "the connection is still good after them"
check '[ "$(line 9 | cut -d" " -f1-2)" = "gzipte 502" ]' "a response in gzip under chunked is a 502, not gzip bytes passed off as the body"
check '! grep -q error $tmp/ka.out' "no parse error in Node's client"

echo "== 4. upstream header names"
code=$(chat "$U" hdrs)
check '[ $code = 200 ] && [ "$(hdr x)" = 1 ] && [ "$(hdr x-i)" = 2 ] && [ "$(hdr x-inferg)" = 3 ]' "headers x, X-I and x-inferg are relayed"
check '[ -z "$(hdr x-infergate-foo)" ] && [ "$(hdr x-infergate-endpoint)" = 127.0.0.1:$((P + 2)) ]' "x-infergate-* from the upstream are dropped, the gateway's own stand"

echo "== 5. request lines and model names"
# raw PORT REQUEST: bytes on a fresh connection; prints the status line.
raw() { timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1; printf '%b' \"\$2\" >&3; head -n 1 <&3" _ "$1" "$2" | tr -d '\r'; }
body='{"model":"gemma","messages":[{"role":"user","content":"hi"}],"max_tokens":2}'
st=$(raw "$P" "POST http://gw.example/v1/chat/completions HTTP/1.1\r\nHost: gw.example\r\nContent-Type: application/json\r\nContent-Length: ${#body}\r\nConnection: close\r\n\r\n$body")
check '[ "$st" = "HTTP/1.1 200 OK" ]' "absolute-form target routed by its path ($st)"
st=$(raw "$P" "GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n")
check '[ "${st:0:12}" = "HTTP/1.1 505" ]' "HTTP/2.0 on an HTTP/1 port: 505 ($st)"
st=$(raw "$P" "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
check '[ "${st:0:12}" = "HTTP/1.1 501" ]' "Transfer-Encoding gzip, chunked: 501 ($st)"
nul='{"model":"gemma\u0000x","messages":[{"role":"user","content":"hi"}],"max_tokens":2}'
code=$(curl -s -o "$tmp/e" -w '%{http_code}' "$U/v1/chat/completions" -H 'content-type: application/json' -d "$nul")
check '[ $code = 400 ] && [ "$(json $tmp/e d.error.param)" = model ]' "a model name with \\u0000 at the gateway: 400 ($code)"
code=$(curl -s -o "$tmp/e" -w '%{http_code}' "http://127.0.0.1:$((P + 1))/v1/chat/completions" -H 'content-type: application/json' -d "$nul")
check '[ $code = 400 ]' "a model name with \\u0000 at the simulator: 400 ($code)"

finish
