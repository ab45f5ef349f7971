#!/bin/bash
# gateway_picker_regions — the picker's decisions under pinned load, with two
# us-east5 simulators (the gateway's region) and one in europe-west4:
#   1. local at 30% -> local;
#   2. local at 80% with a max of 60% -> spill to europe-west4;
#   3. local at 55% (under the max, not under max - margin) -> still Europe;
#      local back at 30% -> back after the hold, one spill and one return only;
#   4. every region saturated -> priority -1 gets 429 with Retry-After while
#      priority 10 is served; an unknown objective is a 400; a queued request
#      goes on when capacity returns, another is shed when its wait ends;
#   5. stale metrics: a scrape that hangs, a page of garbage -> counted, the
#      endpoints count as saturated (traffic spills); cleared -> back;
#   6. the autoscaling gauges and the explain header.
. "${IG_TOP:-$(dirname "$0")/../..}/tests/lib/gateway/lib.sh"
gw_init gateway_picker_regions
P=$base
sims_two_regions
cat >"$tmp/gw.yaml" <<YAML
region: us-east5
listen: 127.0.0.1:$P
regions: { europe-west4: 95ms }
objectives:
  - { name: critical, priority: 10 }
  - { name: batch, priority: -1 }
  - { name: batch-queued, priority: -1, queue: 4, queue_timeout: 1s }
pools:
  - name: gemma-pool
    models: [gemma]
    endpoints:
      - { address: "$A", region: us-east5 }
      - { address: "$B", region: us-east5 }
      - { address: "$C", region: europe-west4 }
    health: { interval: 200ms, fast_interval: 100ms, timeout: 150ms, rise: 1, fall: 2 }
    metrics: { interval: 100ms, timeout: 300ms, stale: 1s, metric: tpu-cache }
    picker: { max_utilization: 0.6, return_margin: 0.1, region_hold: 1s, retry_after: 2s }
routes:
  - { path: /v1/, pool: gemma-pool }
YAML
gw_start "$tmp/gw.yaml"
U=$gw_url
wait_for "[ \"\$(ep_state $U $C)\" = up ]" 5
for p in 1 2 3; do faults $((P + p)) '{"kv_usage":0.3}'; done
sleep 0.4

# burst N [header]: N chats; prints the serving region (or the status) per line.
burst() {
	for _ in $(seq 1 "$1"); do
		code=$(curl -s -o "$tmp/b" -D "$tmp/h" -w '%{http_code}' "$U/v1/chat/completions" ${2:+-H "$2"} \
			-d '{"model":"gemma","messages":[{"role":"user","content":"What is the capital of France?"}],"max_tokens":3}')
		if [ "$code" = 200 ]; then hdr x-infergate-region; else echo "$code"; fi
	done
}
region_field() { json "$(curl -fs "$U/status")" "d.pools[0].regions.find(r => r.region === '$1').$2"; }

echo "== 1. local at 30%"
burst 6 >"$tmp/r"
check '[ "$(sort -u $tmp/r)" = us-east5 ]' "6 requests served by us-east5"

echo "== 2. local at 80%, max 60%: spill"
faults $((P + 1)) '{"kv_usage":0.8}'; faults $((P + 2)) '{"kv_usage":0.8}'
sleep 0.4
burst 6 >"$tmp/r"
check '[ "$(sort -u $tmp/r)" = europe-west4 ]' "6 requests served by europe-west4"
check '[ "$(region_field us-east5 spilled)" = true ]' "/status: us-east5 spilled"
check '[ "$(metric $U "infergate_picks_total{pool=\"gemma-pool\",region=\"europe-west4\",decision=\"spill\"}")" = 6 ]' "infergate_picks_total counts 6 spills"

echo "== 3. hysteresis"
faults $((P + 1)) '{"kv_usage":0.55}'; faults $((P + 2)) '{"kv_usage":0.55}'
sleep 1.3
burst 4 >"$tmp/r"
check '[ "$(sort -u $tmp/r)" = europe-west4 ]' "at 55% (under the max, over max - margin) traffic stays in europe-west4"
faults $((P + 1)) '{"kv_usage":0.3}'; faults $((P + 2)) '{"kv_usage":0.3}'
sleep 0.4
burst 6 >"$tmp/r"
check '[ "$(sort -u $tmp/r)" = us-east5 ]' "back at 30%: served by us-east5 again"
check '[ "$(region_field us-east5 spills_total)" = 1 ] && [ "$(region_field us-east5 returns_total)" = 1 ]' "one spill and one return: no flapping"

echo "== 4. every region saturated: priorities"
for p in 1 2 3; do faults $((P + p)) '{"kv_usage":0.9}'; done
sleep 0.4
check '[ "$(json "$(curl -fs $U/status)" d.pools[0].saturated)" = true ]' "/status: pool saturated"
code=$(curl -s -o "$tmp/b" -D "$tmp/h" -w '%{http_code}' "$U/v1/chat/completions" -H 'x-infergate-objective: batch' \
	-d '{"model":"gemma","messages":[{"role":"user","content":"hi"}],"max_tokens":3}')
check '[ "$code" = 429 ]' "priority -1 (batch): 429"
check '[ "$(hdr retry-after)" = 2 ]' "Retry-After: 2"
check '[ "$(json $tmp/b d.error.type)" = RateLimitError ] && [ "$(json $tmp/b d.error.code)" = 429 ]' "an OpenAI-style RateLimitError"
burst 3 'x-infergate-objective: critical' >"$tmp/r"
check '[ "$(sort -u $tmp/r)" = us-east5 ]' "priority 10 (critical): served (by the nearest region)"
burst 1 >"$tmp/r"
check '[ "$(cat $tmp/r)" = us-east5 ]' "no objective (priority 0): served"
burst 1 'x-infergate-objective: nope' >"$tmp/r"
check '[ "$(cat $tmp/r)" = 400 ]' "an unknown objective: 400"
check '[ "$(metric $U "infergate_shed_total{pool=\"gemma-pool\",objective=\"batch\",reason=\"saturated\"}")" = 1 ]' "infergate_shed_total counts the 429"
# A queued request: capacity returns while it waits.
( t0=$(date +%s%N); burst 1 'x-infergate-objective: batch-queued' >"$tmp/q1"; echo $((($(date +%s%N) - t0) / 1000000)) >"$tmp/q1t" ) &
qp=$!
sleep 0.3
check '[ "$(metric $U infergate_admission_queued_requests)" = 1 ]' "batch-queued waits in the queue"
faults $((P + 3)) '{"kv_usage":0.2}'
wait $qp
check '[ "$(cat $tmp/q1)" = europe-west4 ] && [ "$(cat $tmp/q1t)" -ge 250 ]' "it goes on when europe-west4 has room ($(cat $tmp/q1t) ms)"
faults $((P + 3)) '{"kv_usage":0.9}'
sleep 0.3
t0=$(date +%s%N); burst 1 'x-infergate-objective: batch-queued' >"$tmp/q2"; ms=$((($(date +%s%N) - t0) / 1000000))
check '[ "$(cat $tmp/q2)" = 429 ] && [ $ms -ge 900 ] && [ $ms -lt 3000 ]' "still saturated: shed after its queue_timeout ($ms ms)"

echo "== 5. stale metrics"
for p in 1 2 3; do faults $((P + p)) '{"kv_usage":0.3}'; done
faults $((P + 1)) '{"hang":"request","hang_path":"/metrics"}'
faults $((P + 2)) '{"metrics_garbage":true}'
sleep 1.5
st=$(curl -fs $U/status)
check '[ "$(json "$st" "d.pools[0].endpoints[0].load.stale")" = true ] && [ "$(json "$st" "d.pools[0].endpoints[0].load.scrape_timeouts_total > 0")" = true ]' "a hung scrape: timeouts counted, metrics stale"
check '[ "$(json "$st" "d.pools[0].endpoints[1].load.stale")" = true ] && [ "$(json "$st" "d.pools[0].endpoints[1].load.scrape_garbage_total > 0")" = true ]' "a garbage page: counted, metrics stale"
check '[ "$(json "$st" "d.pools[0].endpoints[1].load.last_scrape_error")" != "" ]' "the last error is shown: $(json "$st" "d.pools[0].endpoints[1].load.last_scrape_error")"
check '[ "$(metric $U "infergate_scrapes_total{pool=\"gemma-pool\",endpoint=\"$B\",result=\"garbage\"}")" -gt 0 ]' "infergate_scrapes_total{result=garbage} counts"
burst 4 >"$tmp/r"
check '[ "$(sort -u $tmp/r)" = europe-west4 ]' "stale local endpoints count as saturated: europe-west4 serves"
check 'grep -q "scrape of /metrics failed" $tmp/gw.log' "the failures are logged"
curl -fs -o /dev/null -X DELETE "http://127.0.0.1:$((P + 1))/sim/faults"; curl -fs -o /dev/null -X DELETE "http://127.0.0.1:$((P + 2))/sim/faults"
faults $((P + 1)) '{"kv_usage":0.3}'; faults $((P + 2)) '{"kv_usage":0.3}'
wait_for "[ \"\$(region_field us-east5 spilled)\" = false ] || { curl -s -o /dev/null $U/v1/chat/completions -d '{\"model\":\"gemma\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":1}'; false; }" 5
burst 3 >"$tmp/r"
check '[ "$(sort -u $tmp/r)" = us-east5 ]' "fresh again: back to us-east5"

echo "== 6. autoscaling signal, explain"
sleep 0.4
check '[ "$(metric $U "infergate_pool_kv_usage_avg{pool=\"gemma-pool\",region=\"us-east5\"}")" = 0.3 ]' "infergate_pool_kv_usage_avg{region=us-east5} = 0.3"
check '[ "$(metric $U "infergate_pool_kv_usage_avg{pool=\"gemma-pool\",region=\"europe-west4\"}")" = 0.3 ]' "infergate_pool_kv_usage_avg{region=europe-west4} = 0.3"
curl -s -o /dev/null -D "$tmp/h" "$U/v1/chat/completions" -H 'x-infergate-explain: 1' -d '{"model":"gemma","messages":[{"role":"user","content":"hi"}],"max_tokens":2}'
check 'hdr x-infergate-pick | grep -q "decision=local; util=0.300"' "x-infergate-pick: $(hdr x-infergate-pick | cut -c1-100)..."
curl -s -o /dev/null -D "$tmp/h" "$U/v1/chat/completions" -d '{"model":"gemma","messages":[{"role":"user","content":"hi"}],"max_tokens":2}'
check '[ -z "$(hdr x-infergate-pick)" ]' "no explain header unless asked"
st=$(curl -fs $U/status)
check '[ "$(json "$st" "typeof d.pools[0].endpoints[0].picker.scores.prefix")" = number ] && [ "$(json "$st" "d.pools[0].endpoints[0].load.dialect")" = vllm ]' "/status shows scraped values and last scores"
finish
