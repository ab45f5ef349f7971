#!/bin/bash
# gateway_tenants — tenants with different limits, end to end with a simulator:
# keys name tenants (no key or a wrong one: 401; the anonymous api_keys still
# work); team-a over its requests_per_second and team-b over its
# tokens_per_minute get 429 rate_limit_exceeded with Retry-After, and the
# refused requests never reach the simulator; tokens are counted from the
# answers' usage (unstreamed and streamed: a stream that asked none gets it
# asked by the gateway and dropped again), per tenant and per model; a reload
# that drops a tenant while its stream is in flight keeps its state alive until
# the stream ends (under the sanitizers: no use after free), and one that keeps
# it carries its in-flight count by name.
. "${IG_TOP:-$(dirname "$0")/../..}/tests/lib/gateway/lib.sh"
gw_init gateway_tenants
P=$base
A=127.0.0.1:$((P + 1))
sim_start a $((P + 1)) --model gemma --itl-ms 20
write_cfg() { # write_cfg RPS_OF_TEAM_A [drop-a]
	{
		cat <<YAML
region: us-east5
listen: 127.0.0.1:$P
api_keys: [ANON-KEY]
access_log: $tmp/access.log
tenants:
YAML
		[ "${2:-}" = drop-a ] || echo "  - { name: team-a, api_keys: [KEY-A], limits: { requests_per_second: $1, max_in_flight: 4 } }"
		cat <<YAML
  - { name: team-b, api_keys: [KEY-B1, KEY-B2], limits: { tokens_per_minute: 60 } }
pools:
  - name: p
    models: [gemma]
    endpoints: [ { address: "$A", region: us-east5 } ]
    health: { interval: 200ms, timeout: 150ms }
YAML
	} >"$tmp/gw.yaml"
}
write_cfg 2
gw_start "$tmp/gw.yaml"
U=$gw_url
ask() { # ask KEY [extra]: a chat; status printed, body in $tmp/b, head in $tmp/h
	curl -s -o "$tmp/b" -D "$tmp/h" -w '%{http_code}' "$U/v1/chat/completions" ${1:+-H "authorization: Bearer $1"} \
		-d "{\"model\":\"gemma\",\"messages\":[{\"role\":\"user\",\"content\":\"Tell me about Paris\"}],\"max_tokens\":5${2:-}}"
}
sim_done() { curl -fs "http://$A/metrics" | awk '/^vllm:request_success_total/ { s += $NF } END { print s + 0 }'; }

echo "== keys"
check '[ "$(ask "")" = 401 ]' "no key: 401"
check '[ "$(ask WRONG)" = 401 ]' "an unknown key: 401"
check '[ "$(ask ANON-KEY)" = 200 ]' "the anonymous api_keys still work"
check '[ "$(ask KEY-B2)" = 200 ]' "a tenant's second key works"

echo "== requests_per_second (team-a: 2)"
before=$(sim_done)
codes=""
for i in 1 2 3 4; do codes="$codes $(ask KEY-A)"; [ "$i" = 4 ] && cp "$tmp/b" "$tmp/b429" && cp "$tmp/h" "$tmp/h429"; done
after=$(sim_done)
check '[ "$codes" = " 200 200 429 429" ]' "a burst of 4: two served, two refused ($codes)"
check '[ "$(json "$tmp/b429" d.error.type)" = rate_limit_exceeded ] && [ "$(json "$tmp/b429" d.error.code)" = 429 ]' \
	"OpenAI's shape: type rate_limit_exceeded, code 429"
check 'grep -q "tenant team-a on requests per second" "$tmp/b429"' "the message names the tenant and the limit: $(json "$tmp/b429" d.error.message)"
ra=$(tr -d '\r' <"$tmp/h429" | sed -n 's/^retry-after: //Ip')
check '[ "$ra" = 1 ]' "Retry-After: $ra"
check '[ $((after - before)) = 2 ]' "only the served ones reached the simulator ($((after - before)))"
check '[ "$(metric $U "infergate_tenant_rate_limited_total{tenant=\"team-a\",limit=\"requests_per_second\"}")" = 2 ]' \
	"counted by tenant and limit"
sleep 1.1
check '[ "$(ask KEY-A)" = 200 ]' "a second later team-a is served again"

echo "== tokens_per_minute (team-b: 60) from the answers' usage"
prompt_sum=0 comp_sum=0 n200=0 last=""
for i in $(seq 1 12); do
	last=$(ask KEY-B1)
	[ "$last" = 429 ] && break
	n200=$((n200 + 1))
	prompt_sum=$((prompt_sum + $(json "$tmp/b" d.usage.prompt_tokens)))
	comp_sum=$((comp_sum + $(json "$tmp/b" d.usage.completion_tokens)))
done
check '[ "$last" = 429 ] && [ $n200 -ge 2 ]' "served while the minute's budget lasted ($n200), then 429"
check 'grep -q "tokens per minute" "$tmp/b"' "the 429 names tokens per minute: $(json "$tmp/b" d.error.message)"
# the key-B2 request of "keys" was team-b's too
mp=$(metric $U 'infergate_tenant_tokens_total{tenant="team-b",kind="prompt"}')
mc=$(metric $U 'infergate_tenant_tokens_total{tenant="team-b",kind="completion"}')
check '[ "$mp" -gt "$prompt_sum" ] && [ "$mc" -gt "$comp_sum" ]' "tokens counted from usage: prompt $mp, completion $mc (this loop alone: $prompt_sum, $comp_sum)"
check '[ "$(metric $U "infergate_model_prompt_tokens_total{model=\"gemma\",tenant=\"team-b\"}")" = "$mp" ]' "the same by model and tenant"
line=$(grep '"tenant":"team-b"' "$tmp/access.log" | grep '"status":200' | tail -n 1)
check 'echo "$line" | grep -q "\"completion_tokens\":5"' "the access log names the tenant and the tokens: $(echo "$line" | grep -o '"tenant.*"stream"' | head -c 60) … $(echo "$line" | grep -o '"prompt_tokens.*')"

echo "== streams: tokens from the usage chunk, time to first token"
curl -s -N "$U/v1/chat/completions" -H 'authorization: Bearer ANON-KEY' -o "$tmp/s1" \
	-d '{"model":"gemma","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}],"max_tokens":7}'
check 'grep -q "\"completion_tokens\":7" "$tmp/s1"' "the client got its usage chunk"
curl -s -N "$U/v1/chat/completions" -H 'authorization: Bearer ANON-KEY' -o "$tmp/s2" \
	-d '{"model":"gemma","stream":true,"messages":[{"role":"user","content":"hi"}],"max_tokens":6}'
check '! grep -q usage "$tmp/s2" && grep -q "\[DONE\]" "$tmp/s2"' "a client that asked no usage gets none (the gateway asked for it and dropped it)"
ac=$(metric $U 'infergate_model_completion_tokens_total{model="gemma",tenant="anonymous"}')
check '[ "$ac" = 18 ]' "completion tokens of the anonymous tenant from the usage: $ac (5 + 7 + 6)"
ap=$(metric $U 'infergate_model_prompt_tokens_total{model="gemma",tenant="anonymous"}')
check '[ "$ap" -gt 0 ]' "prompt tokens of the streams counted too ($ap)"
tt=$(metric $U 'infergate_model_time_to_first_token_seconds_count{model="gemma",tenant="anonymous"}')
check '[ "$tt" = 2 ]' "time to first token observed for both streams ($tt)"
tp=$(metric $U 'infergate_model_time_per_output_token_seconds_count{model="gemma",tenant="anonymous"}')
check '[ "$tp" = 3 ]' "time per output token for the three answers ($tp)"

echo "== reload: state kept by name; a dropped tenant lives until its stream ends"
sleep 1.1
curl -s -N "$U/v1/chat/completions" -H 'authorization: Bearer KEY-A' -o "$tmp/long" \
	-d '{"model":"gemma","stream":true,"messages":[{"role":"user","content":"hi"}],"max_tokens":60}' & lp=$!
wait_for "[ \"\$(metric $U 'infergate_tenant_in_flight_requests{tenant=\"team-a\"}')\" = 1 ]" 3
check '[ "$(metric $U "infergate_tenant_in_flight_requests{tenant=\"team-a\"}")" = 1 ]' "team-a has one stream in flight"
st=$(curl -fs $U/status)
check '[ "$(json "$st" "d.tenants.find(t => t.name === \"team-a\").in_flight")" = 1 ] && [ "$(json "$st" "d.tenants.find(t => t.name === \"team-b\").tokens_per_minute")" = 60 ]' \
	"/status shows the tenants: $(json "$st" "d.tenants.map(t => t.name + ' ' + t.in_flight).join(', ')")"
write_cfg 50
kill -HUP "$gw_pid"
wait_for '[ "$(metric $U "infergate_config_reloads_total{result=\"ok\"}")" = 1 ]' 3
check '[ "$(metric $U "infergate_tenant_in_flight_requests{tenant=\"team-a\"}")" = 1 ]' "after a reload the stream still counts for team-a"
write_cfg 50 drop-a
kill -HUP "$gw_pid"
wait_for '[ "$(metric $U "infergate_config_reloads_total{result=\"ok\"}")" = 2 ]' 3
check '[ "$(ask KEY-A)" = 401 ]' "team-a dropped: its key is refused"
wait $lp
check 'grep -q "\[DONE\]" "$tmp/long"' "its stream still ended whole"
check 'kill -0 $gw_pid' "the gateway runs"
write_cfg 5
kill -HUP "$gw_pid"
wait_for '[ "$(metric $U "infergate_config_reloads_total{result=\"ok\"}")" = 3 ]' 3
check '[ "$(ask KEY-A)" = 200 ]' "team-a back: served"
finish
