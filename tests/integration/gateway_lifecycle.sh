#!/bin/bash
# gateway_lifecycle — reload (SIGHUP) and drain (SIGTERM):
#   1. an endpoint added to the file joins and gets traffic;
#   2. an endpoint removed while it streams: the stream finishes, then it is gone;
#   3. a bad file is refused with a log line naming file:line, the old
#      configuration keeps serving;
#   4. SIGTERM during a long stream: the stream completes, new connections are
#      refused, the process exits within the grace period.
. "${IG_TOP:-$(dirname "$0")/../..}/tests/lib/gateway/lib.sh"
gw_init gateway_lifecycle
P=$base
A=127.0.0.1:$((P + 1)); B=127.0.0.1:$((P + 2))
sim_start a $((P + 1)) --model gemma --region us-east5 --itl-ms 100 --itl-growth 0
sim_start b $((P + 2)) --model gemma --region us-east5 --itl-ms 100 --itl-growth 0
write_cfg() { # endpoints...
	{
		echo "region: us-east5"
		echo "listen: 127.0.0.1:$P"
		echo "shutdown_grace: 10s"
		echo "pools:"
		echo "  - name: p"
		echo "    models: [gemma]"
		echo "    health: { interval: 200ms, timeout: 150ms }"
		echo "    endpoints:"
		for e in "$@"; do echo "      - { address: \"$e\" }"; done
	} >"$tmp/gw.yaml"
}
write_cfg "$A"
gw_start "$tmp/gw.yaml"
U=$gw_url
wait_for "[ \"\$(ep_state $U $A)\" = up ]" 5
stream_body='{"model":"gemma","messages":[{"role":"user","content":"a long story"}],"max_tokens":25,"stream":true,"ignore_eos":true}'

echo "== 1. reload adds an endpoint"
write_cfg "$A" "$B"
kill -HUP $gw_pid
check 'wait_for "[ \"\$(ep_state $U $B)\" = up ]" 3' "after SIGHUP, B is in /status and up"
for i in 1 2 3 4; do chat $U gemma >/dev/null; hdr x-infergate-endpoint; done >"$tmp/served"
check 'grep -q "$B" $tmp/served' "B gets traffic ($(sort $tmp/served | uniq -c | tr '\n' ' '))"
check 'grep -q "reload: .*1 pools, 2 endpoints" $tmp/gw.log' "the reload is logged"

echo "== 2. reload removes an endpoint that is streaming"
node "$NODE_READER" "$U/v1/chat/completions" "$stream_body" >"$tmp/s2" &
reader=$!
wait_for "[ \"\$(json \"\$(curl -fs $U/status)\" d.in_flight)\" = 1 ]" 10
busy=$(json "$(curl -fs $U/status)" "d.pools[0].endpoints.find(e => e.in_flight === 1).address")
if [ "$busy" = "$A" ]; then keep=$B; else keep=$A; fi
echo "streaming on $busy; removing it"
write_cfg "$keep"
kill -HUP $gw_pid
check 'wait_for "curl -fs $U/status | grep -q draining_endpoints.*$busy" 2' "$busy is listed as draining"
check '[ "$(json "$(curl -fs $U/status)" "d.pools[0].endpoints.length")" = 1 ]' "the pool has one endpoint left"
code=$(chat $U gemma)
check '[ $code = 200 ] && [ "$(hdr x-infergate-endpoint)" = $keep ]' "new requests go to $keep"
wait $reader
check '[ "$(json $tmp/s2 "d.status === 200 && d.done && d.errors.length === 0 && d.events === 26")" = true ]' "the stream on the removed endpoint finished whole (26 events and [DONE])"
check 'wait_for "grep -q \"$busy of pool p: drained, gone\" $tmp/gw.log" 2' "then the removed endpoint is gone"

echo "== 3. a bad configuration is refused"
printf 'region: us-east5\nlisten: 127.0.0.1:%s\npools:\n  - name: p\n    endpoints:\n      - { address: "%s", wieght: 2 }\n' $P "$A" >"$tmp/gw.yaml"
kill -HUP $gw_pid
check 'wait_for "grep -q \"reload refused: $tmp/gw.yaml:6: pools\\[0\\].endpoints\\[0\\].wieght: unknown key\" $tmp/gw.log" 2' "refused with a log line naming file:line: field"
code=$(chat $U gemma)
check '[ $code = 200 ] && [ "$(hdr x-infergate-endpoint)" = $keep ]' "the old configuration still serves"
check '[ "$(metric $U "infergate_config_reloads_total{result=\"refused\"}")" = 1 ]' "infergate_config_reloads_total{result=refused} is 1"

echo "== 4. SIGTERM drains"
node "$NODE_READER" "$U/v1/chat/completions" "$stream_body" >"$tmp/s4" &
reader=$!
check 'wait_for "[ \"\$(json \"\$(curl -fs $U/status)\" d.in_flight)\" = 1 ]" 10' "the stream is in flight"
t0=$(date +%s%N)
kill -TERM $gw_pid
sleep 0.3
check '! curl -s -m 2 -o /dev/null $U/healthz' "new connections are refused while draining"
check 'kill -0 $gw_pid' "the gateway is still running while the stream goes on"
wait $reader
check '[ "$(json $tmp/s4 "d.status === 200 && d.done && d.errors.length === 0 && d.events === 26")" = true ]' "the stream in flight completed (26 events and [DONE])"
[ "$(json $tmp/s4 "d.status === 200 && d.done && d.errors.length === 0 && d.events === 26")" = true ] || echo "   the reader saw: $(head -c 600 $tmp/s4)"
check 'wait_for "! kill -0 $gw_pid 2>/dev/null" 3' "then the gateway exits"
took=$(( ($(date +%s%N) - t0) / 1000000 ))
check '[ $took -lt 10000 ]' "within the 10 s grace ($took ms after SIGTERM)"
check 'grep -q "drained: every request finished" $tmp/gw.log' "the drain is logged"
finish
