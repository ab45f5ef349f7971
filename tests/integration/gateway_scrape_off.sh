#!/bin/bash
# gateway_scrape_off — a pool with `metrics: { enabled: false }`: its endpoints'
# load is unknown, not saturated. Two us-east5 simulators and one in
# europe-west4, all pinned at 90% KV usage, a max utilization of 60%:
#   1. scraping on: every region saturated, priority -1 gets 429;
#   2. reloaded with scraping off: no scrape is made or counted, /status says
#      scraping false and stale false, the pool is not saturated, priority -1
#      is served by the own region (no spill), a hung /metrics changes nothing;
#   3. reloaded with scraping on again: saturated again.
. "${IG_TOP:-$(dirname "$0")/../..}/tests/lib/gateway/lib.sh"
gw_init gateway_scrape_off
P=$base
sims_two_regions
for p in 1 2 3; do faults $((P + p)) '{"kv_usage":0.9}'; done

# config ENABLED: the gateway's configuration with scraping on or off.
config() {
	cat >"$tmp/gw.yaml" <<YAML
region: us-east5
listen: 127.0.0.1:$P
regions: { europe-west4: 95ms }
objectives:
  - { name: batch, priority: -1 }
pools:
  - name: gemma-pool
    models: [gemma]
    endpoints:
      - { address: "$A", region: us-east5 }
      - { address: "$B", region: us-east5 }
      - { address: "$C", region: europe-west4 }
    health: { interval: 200ms, timeout: 150ms, rise: 1, fall: 2 }
    metrics: { enabled: $1, interval: 100ms, timeout: 300ms, stale: 1s }
    picker: { max_utilization: 0.6, retry_after: 2s }
routes:
  - { path: /v1/, pool: gemma-pool }
YAML
}
# batch: one priority -1 chat; prints the serving region, or the status.
batch() {
	code=$(curl -s -o "$tmp/b" -D "$tmp/h" -w '%{http_code}' "$U/v1/chat/completions" -H 'x-infergate-objective: batch' \
		-d '{"model":"gemma","messages":[{"role":"user","content":"hi"}],"max_tokens":3}')
	if [ "$code" = 200 ]; then hdr x-infergate-region; else echo "$code"; fi
}
scrapes() { json "$(curl -fs "$U/status")" "d.pools[0].endpoints.reduce((s, e) => s + e.load.scrapes_total, 0)"; }
load_field() { json "$(curl -fs "$U/status")" "d.pools[0].endpoints.map(e => e.load.$1).join(',')"; }

config true
gw_start "$tmp/gw.yaml"
U=$gw_url
wait_for "[ \"\$(ep_state $U $C)\" = up ] && [ \"\$(ep_state $U $A)\" = up ]" 5

echo "== 1. scraping on, every endpoint at 90%"
wait_for "[ \"\$(json \"\$(curl -fs $U/status)\" d.pools[0].saturated)\" = true ]" 3
check '[ "$(json "$(curl -fs $U/status)" d.pools[0].saturated)" = true ]' "/status: pool saturated"
check '[ "$(batch)" = 429 ]' "priority -1: 429"

echo "== 2. reloaded with scraping off"
config false
kill -HUP "$gw_pid"
wait_for "[ \"\$(load_field scraping)\" = false,false,false ]" 3
check '[ "$(load_field scraping)" = false,false,false ]' "/status: scraping false on every endpoint"
n0=$(scrapes)
m0=$(metric $U "infergate_scrapes_total{pool=\"gemma-pool\",endpoint=\"$A\",result=\"ok\"}")
sleep 0.5
check '[ "$(scrapes)" = "$n0" ]' "no scrape in 0.5 s (scrapes_total stays $n0)"
check '[ "$(metric $U "infergate_scrapes_total{pool=\"gemma-pool\",endpoint=\"$A\",result=\"ok\"}")" = "$m0" ]' "infergate_scrapes_total does not move"
check '[ "$(load_field stale)" = false,false,false ] && [ "$(load_field utilization)" = 0,0,0 ]' "not stale, utilization 0 (unknown, not saturated)"
check '[ "$(json "$(curl -fs $U/status)" d.pools[0].saturated)" = false ]' "/status: pool not saturated"
: >"$tmp/r"
for _ in 1 2 3 4; do batch >>"$tmp/r"; done
check '[ "$(sort -u $tmp/r)" = us-east5 ]' "priority -1 served, by the own region: $(sort -u $tmp/r | tr '\n' ' ')"
faults $((P + 1)) '{"kv_usage":0.9,"hang":"request","hang_path":"/metrics"}'
sleep 1.2
check '[ "$(load_field stale)" = false,false,false ] && [ "$(batch)" = us-east5 ]' "a hung /metrics changes nothing, long past the stale limit"
curl -fs -o /dev/null -X DELETE "http://127.0.0.1:$((P + 1))/sim/faults"
faults $((P + 1)) '{"kv_usage":0.9}'

echo "== 3. reloaded with scraping on"
config true
kill -HUP "$gw_pid"
wait_for "[ \"\$(load_field scraping)\" = true,true,true ] && [ \"\$(json \"\$(curl -fs $U/status)\" d.pools[0].saturated)\" = true ]" 3
check '[ "$(scrapes)" -gt "$n0" ]' "scrapes counted again ($(scrapes))"
check '[ "$(batch)" = 429 ]' "saturated again: priority -1 gets 429"
finish
