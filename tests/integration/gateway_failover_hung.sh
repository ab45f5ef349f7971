#!/bin/bash
# gateway_failover_hung — requests already sent to a server that then goes
# silent are moved elsewhere as soon as the server is seen hard down, instead
# of waiting for the idle timeout (60 s here).
#
# A stopped process (SIGSTOP) keeps its sockets open: the kernel still accepts
# connections for it and holds what is sent, but nothing comes back — what a
# network partition looks like from a kept-alive connection. A (us-east5) is
# slow (1 s to the first token); E (europe-west4) is fast. With requests in
# flight on A, A is stopped:
#   1. a non-streamed request and a stream that had no head yet are retried on
#      E (x-infergate-region: europe-west4);
#   2. a stream whose head and first tokens went out is resumed on E: one
#      stream, [DONE], no error event;
#   all within 8 s of the stop (the checks take A down in about 1 s), none
#   failed; the retries counted as reason endpoint_down, the move logged.
#   3. connect failures that eject an endpoint move its attempts too: A
#      refuses connections; the next request's refused connect ejects A and
#      the request in flight on A goes to E.
. "${IG_TOP:-$(dirname "$0")/../..}/tests/lib/gateway/lib.sh"
gw_init gateway_failover_hung
P=$base
A=127.0.0.1:$((P + 1)); E=127.0.0.1:$((P + 2))
sim_start a $((P + 1)) --model gemma --region us-east5 --ttft-ms 1000 --itl-ms 100
sim_start e $((P + 2)) --model gemma --region europe-west4 --ttft-ms 50 --itl-ms 10
cat >"$tmp/gw.yaml" <<YAML
region: us-east5
listen: 127.0.0.1:$P
regions: { europe-west4: 45ms }
pools:
  - name: gemma-pool
    models: [gemma]
    endpoints:
      - { address: "$A", region: us-east5 }
      - { address: "$E", region: europe-west4 }
    health: { path: /health, interval: 300ms, fast_interval: 100ms, timeout: 300ms, rise: 2, fall: 2 }
    passive: { failures: 1, backoff: 1s }
    backend: { connect_timeout: 300ms, idle_timeout: 60s, request_timeout: 120s, tries: 3 }
YAML
gw_start "$tmp/gw.yaml"
U=$gw_url
wait_for "[ \"\$(ep_state $U $A)\$(ep_state $U $E)\" = upup ]" 10 || fail "A and E up"

# ask NAME STREAM MAX_TOKENS: a chat request in the background; head in
# $tmp/NAME.h, body in $tmp/NAME.b, "status seconds" in $tmp/NAME.w.
ask() {
	curl -s -N -m 30 -o "$tmp/$1.b" -D "$tmp/$1.h" -w '%{http_code} %{time_total}' "$U/v1/chat/completions" \
		-H 'content-type: application/json' \
		-d "{\"model\":\"gemma\",\"stream\":$2,\"max_tokens\":$3,\"messages\":[{\"role\":\"user\",\"content\":\"What is the capital of France?\"}]}" \
		>"$tmp/$1.w" &
	bg="$bg $!"
}
region_of() { tr -d '\r' <"$tmp/$1.h" | sed -n 's/^x-infergate-region: //Ip' | head -n 1; }
now() { date +%s.%N; }

code=$(chat $U gemma)
check '[ "$code" = 200 ] && [ "$(hdr x-infergate-region)" = us-east5 ]' "warm-up served by us-east5 (a kept-alive connection to A)"

echo "== 1, 2. A stops answering with requests in flight"
bg=""
ask resumed true 30                 # head at ~1 s, then a token every 100 ms
sleep 1.5
ask plain false 5                   # no byte yet when A stops
ask unstarted true 5                # no head yet when A stops
sleep 0.3
kill -STOP $sim_pid_a
t0=$(now)
echo "A stopped"
for p in $bg; do wait "$p"; done
t1=$(now)
secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
echo "all three answered $secs s after the stop"
check 'awk -v s=$secs "BEGIN { exit !(s < 8) }"' "within 8 s of the stop (the idle timeout is 60 s): $secs s"
check '[ "$(cut -d" " -f1 $tmp/plain.w)" = 200 ] && [ "$(region_of plain)" = europe-west4 ]' \
	"the non-streamed request: 200 from europe-west4"
check 'grep -q "\"content\"" $tmp/plain.b' "  with a chat completion body"
check '[ "$(cut -d" " -f1 $tmp/unstarted.w)" = 200 ] && [ "$(region_of unstarted)" = europe-west4 ]' \
	"the stream without a head yet: 200 from europe-west4"
check '[ "$(grep -c "^data: \[DONE\]" $tmp/unstarted.b)" = 1 ] && ! grep -q "\"error\"" $tmp/unstarted.b' \
	"  one [DONE], no error event"
check '[ "$(cut -d" " -f1 $tmp/resumed.w)" = 200 ] && [ "$(region_of resumed)" = us-east5 ]' \
	"the stream that had started: its head came from us-east5"
check '[ "$(grep -c "^data: \[DONE\]" $tmp/resumed.b)" = 1 ] && ! grep -q "\"error\"" $tmp/resumed.b' \
	"  it ends with one [DONE] and no error event (resumed, not broken)"
check '[ "$(metric $U "infergate_resumes_total{pool=\"gemma-pool\",outcome=\"resumed\"}")" -ge 1 ]' \
	"  infergate_resumes_total{outcome=resumed} counted it"
check '[ "$(metric $U "infergate_retries_total{pool=\"gemma-pool\",reason=\"endpoint_down\"}")" = 2 ]' \
	"2 retries counted with reason endpoint_down"
check 'grep -q "$A (pool gemma-pool, region us-east5) is down (.*): 2 attempts in flight retried elsewhere, 1 streams resumed" $tmp/gw.log' \
	"the move is logged"
check '[ "$(ep_state $U $A)" = down ]' "A is down in /status"
kill -CONT $sim_pid_a
check 'wait_for "[ \"\$(ep_state $U $A)\" = up ]" 10' "A continued: up again"

echo "== 3. connect failures eject A: its requests in flight move"
# The picker keeps traffic in Europe for a hold after the region came back.
check 'wait_for "[ \"\$(chat $U gemma)\" = 200 ] && [ \"\$(hdr x-infergate-region)\" = us-east5 ]" 15' \
	"requests are served by us-east5 again"
bg=""
ask held false 5                    # in flight on A (1 s to its first token)
sleep 0.3
faults $((P + 1)) '{"refuse": true}'
code=$(chat $U gemma)               # A refuses: ejected, retried on E
check '[ "$code" = 200 ] && [ "$(hdr x-infergate-region)" = europe-west4 ]' "a new request: A refuses, E answers"
for p in $bg; do wait "$p"; done
check '[ "$(cut -d" " -f1 $tmp/held.w)" = 200 ] && [ "$(region_of held)" = europe-west4 ]' \
	"the request in flight on A was moved: 200 from europe-west4"
check 'grep -q "is down (ejected after connect_refused): 1 attempts in flight retried elsewhere" $tmp/gw.log' \
	"the move is logged"
kill -USR1 $sim_pid_a 2>/dev/null
finish
