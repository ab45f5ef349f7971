#!/bin/bash
# gateway_sessions — session affinity and weighted model rewrites end to end:
# three simulators serving two model names; requests of one session stay on
# one endpoint (the picker's explanation says "kept") while others spread;
# the session moves when its endpoint goes down and comes back after; a
# 90/10 split of 1,000 requests lands within ±3% on the two targets (counted
# by the gateway's per-model metrics), the answers name the target, and the body's
# other fields arrive untouched; a session keeps its target.
. "${IG_TOP:-$(dirname "$0")/../..}/tests/lib/gateway/lib.sh"
gw_init gateway_sessions
P=$base
A=127.0.0.1:$((P + 1)); B=127.0.0.1:$((P + 2)); C=127.0.0.1:$((P + 3))
for s in 1 2 3; do sim_start s$s $((P + s)) --model gemma-3-27b-it,gemma-3-27b-it-v2 --ttft-ms 1 --itl-ms 1; done
cat >"$tmp/gw.yaml" <<YAML
region: us-east5
listen: 127.0.0.1:$P
model_rewrites:
  - model: gemma
    targets:
      - { model: gemma-3-27b-it, weight: 90 }
      - { model: gemma-3-27b-it-v2, weight: 10 }
pools:
  - name: p
    models: [gemma-3-27b-it, gemma-3-27b-it-v2]
    endpoints:
      - { address: "$A", region: us-east5 }
      - { address: "$B", region: us-east5 }
      - { address: "$C", region: us-east5 }
    health: { interval: 200ms, fast_interval: 100ms, timeout: 150ms, rise: 1, fall: 1 }
    metrics: { interval: 100ms }
YAML
gw_start "$tmp/gw.yaml"
U=$gw_url
wait_for "[ \"\$(ep_state $U $C)\" = up ] && [ \"\$(ep_state $U $A)\" = up ] && [ \"\$(ep_state $U $B)\" = up ]" 5
ask() { # ask MODEL [session]: status; endpoint into $tmp/ep, body $tmp/b
	curl -s -o "$tmp/b" -D "$tmp/h" -w '%{http_code}' "$U/v1/chat/completions" -H 'x-infergate-explain: 1' \
		${2:+-H "x-session-id: $2"} \
		-d "{\"model\":\"$1\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello there, how are you today?\"}],\"max_tokens\":2,\"temperature\":0.25}"
	hdr x-infergate-endpoint >"$tmp/ep"
}

echo "== session affinity"
eps="" pick=""
for i in $(seq 1 8); do ask gemma-3-27b-it conv-42 >/dev/null; eps="$eps $(cat "$tmp/ep")"; pick=$(hdr x-infergate-pick); done
first=$(echo $eps | cut -d' ' -f1)
check '[ "$(echo $eps | tr " " "\n" | sort -u | wc -l)" = 1 ]' "8 requests of session conv-42 on one endpoint ($first)"
check 'echo "$pick" | grep -q "session=kept"' "the explanation says so: ${pick##*; }"
others=""
for i in $(seq 1 12); do ask gemma-3-27b-it "user-$i" >/dev/null; others="$others $(cat "$tmp/ep")"; done
check '[ "$(echo $others | tr " " "\n" | sort -u | wc -l)" -ge 2 ]' "other sessions spread ($(echo $others | tr " " "\n" | sort | uniq -c | tr -s " " | tr "\n" ";"))"
port=${first##*:}
faults $port '{"health_fail":true}'
wait_for "[ \"\$(ep_state $U $first)\" = down ]" 5
ask gemma-3-27b-it conv-42 >/dev/null
moved=$(cat "$tmp/ep")
ask gemma-3-27b-it conv-42 >/dev/null
check '[ "$moved" != "$first" ] && [ "$(cat "$tmp/ep")" = "$moved" ]' "its endpoint down: the session moves, to one place ($moved)"
faults $port '{"health_fail":false}'
wait_for "[ \"\$(ep_state $U $first)\" = up ]" 5
ask gemma-3-27b-it conv-42 >/dev/null
check '[ "$(cat "$tmp/ep")" = "$first" ]' "back up: the session returns ($(cat "$tmp/ep"))"
check '! grep -q "conv-42" "$tmp/gw.log"' "the session key is not in the gateway's log"

echo "== a 90/10 split over 1,000 requests"
sim_count() { # successful answers for model $1, as the gateway counts them
	metric $U "infergate_model_request_duration_seconds_count{model=\"$1\",tenant=\"anonymous\"}"
}
a0=$(sim_count gemma-3-27b-it) b0=$(sim_count gemma-3-27b-it-v2)
"$bin/infergate-bench" --url "$U" --model gemma --requests 1000 --concurrency 16 --no-stream --max-tokens 1 \
	--input-len 4 --timeout 30s --quiet --json "$tmp/split.json" >"$tmp/split.txt" 2>&1
a=$(( $(sim_count gemma-3-27b-it) - a0 )) b=$(( $(sim_count gemma-3-27b-it-v2) - b0 ))
check '[ $((a + b)) = 1000 ]' "1,000 answered ($a + $b)"
check '[ $b -ge 70 ] && [ $b -le 130 ]' "the canary got $b of 1,000 (10% ± 3%)"
ask gemma >/dev/null
m=$(json "$tmp/b" d.model)
check '[ "$m" = gemma-3-27b-it ] || [ "$m" = gemma-3-27b-it-v2 ]' "the answer names the target ($m)"
targets=""
for i in 1 2 3 4 5 6; do ask gemma canary-user-7 >/dev/null; targets="$targets $(json "$tmp/b" d.model)"; done
check '[ "$(echo $targets | tr " " "\n" | sort -u | wc -l)" = 1 ]' "a session keeps its target ($(echo $targets | cut -d" " -f1))"
# Another field of the body arrives as sent: the simulator echoes the prompt's token count.
ask gemma-3-27b-it >/dev/null; p1=$(json "$tmp/b" d.usage.prompt_tokens)
ask gemma >/dev/null; p2=$(json "$tmp/b" d.usage.prompt_tokens)
check '[ "$p1" = "$p2" ] && [ -n "$p1" ]' "the rewritten body's messages arrive whole ($p1 = $p2 prompt tokens)"
bad=$(curl -s -o /dev/null -w '%{http_code}' "$U/v1/chat/completions" -d '{"model":"gemma","messages":[{"role":"user","content":"x"}],"stream":3}')
check '[ "$bad" = 400 ]' "a bad body naming a rewritten model is still a 400 ($bad)"
finish
