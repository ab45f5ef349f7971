#!/bin/bash
# gateway_failover — health, locality, failover and retries, with two local
# (us-east5) and two remote (europe-west4) simulators behind one pool:
#   1. requests stay in the gateway's own region;
#   2. health fall and rise: fail_health takes an endpoint out (seen in /status
#      and /metrics) and clearing it brings it back;
#   3. failover when every local endpoint fails its health check, refuses
#      connections, or is killed with SIGKILL: every request still succeeds,
#      served by europe-west4 (x-infergate-region);
#   4. retries never go to the same endpoint twice: three endpoints answering
#      503 are each tried once, then the client gets the 503.
. "${IG_TOP:-$(dirname "$0")/../..}/tests/lib/gateway/lib.sh"
gw_init gateway_failover
P=$base
sims_two_regions
D=127.0.0.1:$((P + 4))
sim_start d $((P + 4)) --model gemma --region europe-west4
for i in 5 6 7; do sim_start r$i $((P + i)) --model m-retry --region us-east5; done
cat >"$tmp/gw.yaml" <<YAML
region: us-east5
listen: 127.0.0.1:$P
regions: { europe-west4: 95ms }
pools:
  - name: gemma-pool
    models: [gemma]
    endpoints:
      - { address: "$A", region: us-east5 }
      - { address: "$B", region: us-east5 }
      - { address: "$C", region: europe-west4 }
      - { address: "$D", region: europe-west4 }
    health: { path: /health, interval: 200ms, fast_interval: 100ms, timeout: 150ms, rise: 2, fall: 2 }
    backend: { connect_timeout: 500ms, tries: 3 }
  - name: retry
    models: [m-retry]
    endpoints:
      - { address: "127.0.0.1:$((P + 5))" }
      - { address: "127.0.0.1:$((P + 6))" }
      - { address: "127.0.0.1:$((P + 7))" }
    health: { interval: 1s, timeout: 500ms }
    backend: { tries: 5 }
YAML
gw_start "$tmp/gw.yaml"
U=$gw_url
wait_for "[ \"\$(ep_state $U $D)\" = up ]" 5

# burst N: N requests; prints the regions that served them, one per line; a failure prints FAILED.
burst() {
	for i in $(seq 1 "$1"); do
		code=$(chat $U gemma)
		if [ "$code" = 200 ]; then hdr x-infergate-region; else echo "FAILED $code"; fi
	done
}

echo "== 1. locality"
burst 6 >"$tmp/r"
check '[ "$(sort -u $tmp/r)" = us-east5 ]' "6 requests, all served by us-east5"
check '[ "$(metric $U infergate_requests_outside_region_total)" = 0 ]' "none counted outside the region"

echo "== 2. health fall and rise"
faults $((P + 1)) '{"health_fail": true}'
check 'wait_for "[ \"\$(ep_state $U $A)\" = down ]" 3' "fail_health on A: A is down in /status"
check '[ "$(metric $U "infergate_endpoint_up{pool=\"gemma-pool\",endpoint=\"$A\"")" = 0 ]' "infergate_endpoint_up of A is 0"
check '[ "$(metric $U "infergate_endpoint_state_changes_total{pool=\"gemma-pool\",endpoint=\"$A\",region=\"us-east5\",to=\"down\"}")" = 1 ]' "one state change to down counted"
burst 4 >"$tmp/r"
check '[ "$(sort -u $tmp/r)" = us-east5 ]' "requests still served locally (by B)"
faults $((P + 1)) '{"health_fail": false}'
check 'wait_for "[ \"\$(ep_state $U $A)\" = up ]" 3' "cleared: A is up again"
check '[ "$(metric $U "infergate_endpoint_up{pool=\"gemma-pool\",endpoint=\"$A\"")" = 1 ]' "infergate_endpoint_up of A is 1"
check 'grep -q "$A (pool gemma-pool, region us-east5): down -> up" $tmp/gw.log' "the change is logged"

echo "== 3a. failover: every local endpoint fails its health check"
faults $((P + 1)) '{"health_fail": true}'; faults $((P + 2)) '{"health_fail": true}'
check 'wait_for "[ \"\$(ep_state $U $A)\$(ep_state $U $B)\" = downdown ]" 3' "A and B down"
burst 6 >"$tmp/r"
check '[ "$(sort -u $tmp/r)" = europe-west4 ]' "6 requests, all 200, all served by europe-west4"
check '[ "$(metric $U "infergate_requests_outside_region_total{pool=\"gemma-pool\",region=\"europe-west4\"}")" = 6 ]' "6 counted outside the region"
check '[ "$(curl -s -o /dev/null -w %{http_code} $U/readyz)" = 200 ]' "/readyz stays 200 (Europe is healthy)"
faults $((P + 1)) '{"health_fail": false}'; faults $((P + 2)) '{"health_fail": false}'
wait_for "[ \"\$(ep_state $U $A)\$(ep_state $U $B)\" = upup ]" 3
# Traffic comes back once the region has been healthy for region_hold (2 s).
check 'wait_for "[ \"\$(chat $U gemma)\" = 200 ] && [ \"\$(hdr x-infergate-region)\" = us-east5 ]" 5' "healthy again: back to us-east5 after the region hold"
burst 3 >"$tmp/r"
check '[ "$(sort -u $tmp/r)" = us-east5 ]' "and it stays there: 3 more, all us-east5"

echo "== 3b. failover: local endpoints refuse connections"
faults $((P + 1)) '{"refuse": true}'; faults $((P + 2)) '{"refuse": true}'
burst 6 >"$tmp/r"
check '[ "$(sort -u $tmp/r)" = europe-west4 ]' "6 requests at once after the refusal, all 200 from europe-west4 (retried)"
kill -USR1 $sim_pid_a $sim_pid_b
wait_for "[ \"\$(ep_state $U $A)\$(ep_state $U $B)\" = upup ]" 5
check 'wait_for "[ \"\$(chat $U gemma)\" = 200 ] && [ \"\$(hdr x-infergate-region)\" = us-east5 ]" 5' "listening again: back to us-east5"

echo "== 3c. failover: local endpoints killed (SIGKILL)"
kill -9 $sim_pid_a $sim_pid_b
burst 8 >"$tmp/r"
check '[ "$(sort -u $tmp/r)" = europe-west4 ]' "8 requests right after the kill, all 200 from europe-west4"
check 'wait_for "[ \"\$(ep_state $U $A)\$(ep_state $U $B)\" = downdown ]" 3' "the health checks mark A and B down"
check '[ "$(curl -s -o /dev/null -w %{http_code} $U/readyz)" = 200 ]' "/readyz 200"

echo "== 4. retries never go to the same endpoint twice"
for i in 5 6 7; do faults $((P + i)) '{"error_status": 503, "error_count": 2}'; done
code=$(chat $U m-retry)
check '[ $code = 503 ]' "three endpoints answering 503: the client gets 503"
for i in 5 6 7; do
	left=$(json "$(curl -fs http://127.0.0.1:$((P + i))/sim/faults)" d.error_count)
	check '[ "$left" = 1 ]' "endpoint $((P + i)) was tried exactly once (error budget 2 -> $left)"
done
check '[ "$(metric $U "infergate_retries_total{pool=\"retry\",reason=\"status_503\"}")" = 2 ]' "2 retries counted"
# Only the retry pool counts here: A and B, killed in 3c, may still be ejected.
ejected=$(json "$(curl -fs $U/status)" "d.pools.filter(p => p.name === 'retry').flatMap(p => p.endpoints).filter(e => e.ejected).length")
check '[ "$ejected" = 0 ]' "one 503 each ejects nobody in the retry pool"
finish
