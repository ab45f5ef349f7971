#!/bin/bash
# gateway_reload_queue — requests waiting in an admission queue outlive the
# configuration they were queued under: SIGHUP several times while they wait
# (each reload frees the old configuration, its objectives among it), then
# let some wait out their queue_timeout (shed: 429 naming their objective)
# and queue more (counted against the queue by objective name). Under the
# sanitizers nothing may read the freed configuration; every request gets
# its answer and the gateway exits clean.
. "${IG_TOP:-$(dirname "$0")/../..}/tests/lib/gateway/lib.sh"
gw_init gateway_reload_queue
P=$base
sims_two_regions
write_cfg() {
	cat >"$tmp/gw.yaml" <<YAML
region: us-east5
listen: 127.0.0.1:$P
regions: { europe-west4: 95ms }
objectives:
  - { name: batch-queued-$1, priority: -1, queue: 8, queue_timeout: 1500ms }
  - { name: batch-queued, priority: -1, queue: 8, queue_timeout: 1500ms }
pools:
  - name: gemma-pool
    models: [gemma]
    endpoints:
      - { address: "$A", region: us-east5 }
      - { address: "$B", region: us-east5 }
      - { address: "$C", region: europe-west4 }
    health: { interval: 200ms, fast_interval: 100ms, timeout: 150ms, rise: 1, fall: 2 }
    metrics: { interval: 100ms, timeout: 300ms, stale: 1s }
    picker: { max_utilization: 0.6, return_margin: 0.1, region_hold: 1s, retry_after: 1s }
YAML
}
write_cfg 0
gw_start "$tmp/gw.yaml"
U=$gw_url
wait_for "[ \"\$(ep_state $U $C)\" = up ]" 5
for p in 1 2 3; do faults $((P + p)) '{"kv_usage":0.9}'; done
wait_for "[ \"\$(json \"\$(curl -fs $U/status)\" d.pools[0].saturated)\" = true ]" 5
check '[ "$(json "$(curl -fs $U/status)" d.pools[0].saturated)" = true ]' "every region saturated"

ask() { # ask N: a queued chat; its status into $tmp/q$N
	curl -s -o "$tmp/b$1" -w '%{http_code}\n' "$U/v1/chat/completions" -H 'x-infergate-objective: batch-queued' \
		-d '{"model":"gemma","messages":[{"role":"user","content":"hi"}],"max_tokens":2}' >"$tmp/q$1"
}
qpids=""
for i in 1 2 3 4; do ask $i & qpids="$qpids $!"; done
wait_for "[ \"\$(metric $U infergate_admission_queued_requests)\" = 4 ]" 3
check '[ "$(metric $U infergate_admission_queued_requests)" = 4 ]' "4 requests wait in the queue"
for r in 1 2 3 4 5; do
	write_cfg $r
	kill -HUP "$gw_pid"
	sleep 0.15
done
ok_reloads() { metric $U 'infergate_config_reloads_total{result="ok"}'; }
wait_for '[ "$(ok_reloads)" = 5 ]' 3
check '[ "$(ok_reloads)" = 5 ] && kill -0 $gw_pid' "five reloads while they wait ($(ok_reloads) ok); the gateway runs"
# More requests queued after the reloads: counted against the queue by name.
for i in 5 6; do ask $i & qpids="$qpids $!"; done
for p in $qpids; do wait "$p"; done
codes=$(cat "$tmp"/q[1-6] | sort | uniq -c | tr -s ' ' | tr '\n' ';')
check '[ "$(cat "$tmp"/q[1-6] | sort -u)" = 429 ]' "each waited out its queue_timeout: 429 ($codes)"
check 'grep -q "objective \`batch-queued\`" "$tmp/b1"' "the 429 names its objective: $(json "$tmp/b1" d.error.message | cut -c1-90)"
# Capacity returns: a queued request goes on after yet another reload.
write_cfg 9
kill -HUP "$gw_pid"
ask 7 & q7=$!
sleep 0.4
faults $((P + 3)) '{"kv_usage":0.2}'
wait $q7
check '[ "$(cat "$tmp/q7")" = 200 ]' "queued across a reload, served when capacity returns: $(cat "$tmp/q7")"
finish
