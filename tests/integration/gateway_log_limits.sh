#!/bin/bash
# gateway_log_limits — a dead endpoint does not flood the log: an endpoint
# with nothing listening (and one killed with SIGKILL mid-run) next to a live
# one, scraped every 100 ms and checked every 200 ms, under a little traffic,
# for 5 s: a handful of lines about each (its state change and at most 3
# repeated warnings per 10 s, the count of the rest kept), and its scrapes
# backed off while it is down (far fewer than one per 100 ms).
. "${IG_TOP:-$(dirname "$0")/../..}/tests/lib/gateway/lib.sh"
gw_init gateway_log_limits
P=$base
A=127.0.0.1:$((P + 1)); B=127.0.0.1:$((P + 2)); DEAD=127.0.0.1:$((P + 3))
sim_start a $((P + 1)) --model gemma --region us-east5
sim_start b $((P + 2)) --model gemma --region us-east5
cat >"$tmp/gw.yaml" <<YAML
region: us-east5
listen: 127.0.0.1:$P
pools:
  - name: gemma-pool
    models: [gemma]
    endpoints:
      - { address: "$A", region: us-east5 }
      - { address: "$B", region: us-east5 }
      - { address: "$DEAD", region: us-east5 }
    health: { path: /health, interval: 200ms, fast_interval: 100ms, timeout: 150ms, rise: 2, fall: 2 }
    metrics: { interval: 100ms }
YAML
gw_start "$tmp/gw.yaml"
U=$gw_url
kill -9 "$sim_pid_b"
end=$((SECONDS + 5))
n=0; bad=0
while [ $SECONDS -lt $end ]; do
	code=$(chat $U gemma)
	n=$((n + 1)); [ "$code" = 200 ] || bad=$((bad + 1))
	sleep 0.1
done
check '[ $bad = 0 ]' "$n requests while two endpoints are dead, $bad failed"
for ep in $DEAD $B; do
	lines=$(grep -c "$ep" "$tmp/gw.log")
	check '[ "$lines" -le 8 ]' "$lines log lines about $ep in 5 s (at most 8)"
	scrapes=$(metric $U "infergate_scrapes_total{pool=\"gemma-pool\",endpoint=\"$ep\",result=\"failed\"}")
	check '[ "$scrapes" -le 15 ]' "$scrapes failed scrapes of $ep in 5 s (backed off: 50 at the interval)"
done
check 'grep -q "$DEAD (pool gemma-pool, region us-east5): unknown -> down" $tmp/gw.log' "the dead endpoint's state change is logged"
# B may be killed before its first check answered: then it goes from unknown, not up.
check 'grep -qE "$B \(pool gemma-pool, region us-east5\): (up|unknown) -> down" $tmp/gw.log' "the killed endpoint's state change is logged"
finish
