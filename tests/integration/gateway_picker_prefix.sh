#!/bin/bash
# gateway_picker_prefix — prefix-cache affinity with its load guard, three
# simulators in one region:
#   1. a conversation's follow-ups (the messages so far, in order) go to the
#      endpoint that served its first turn, and the simulator's prefix cache
#      confirms the hits;
#   2. other conversations spread over the endpoints;
#   3. once the holder saturates (KV over the max), the next turn goes
#      elsewhere; the explain header says why.
. "${IG_TOP:-$(dirname "$0")/../..}/tests/lib/gateway/lib.sh"
gw_init gateway_picker_prefix
P=$base
for i in 1 2 3; do sim_start s$i $((P + i)) --model gemma --region us-east5 --kv-blocks 4096; done
cat >"$tmp/gw.yaml" <<YAML
region: us-east5
listen: 127.0.0.1:$P
pools:
  - name: chat
    models: [gemma]
    endpoints:
      - { address: "127.0.0.1:$((P + 1))" }
      - { address: "127.0.0.1:$((P + 2))" }
      - { address: "127.0.0.1:$((P + 3))" }
    health: { interval: 200ms, timeout: 150ms, rise: 1 }
    metrics: { interval: 100ms }
    picker: { max_utilization: 0.6 }
YAML
gw_start "$tmp/gw.yaml"
U=$gw_url
sleep 0.5
sys=$(python3 -c 'print(("You are a careful assistant for conversation %s. " % "SEED") * 40)')

# turn CONV N: the conversation's first N user turns (earlier answers as fixed
# text); prints the serving endpoint; the explain header in $tmp/h.
turn() {
	python3 - "$1" "$2" "$sys" >"$tmp/req.json" <<'PY'
import json, sys
conv, n, sysmsg = sys.argv[1], int(sys.argv[2]), sys.argv[3].replace("SEED", sys.argv[1])
m = [{"role": "system", "content": sysmsg}]
for i in range(n):
    m.append({"role": "user", "content": "question %d of conversation %s, about the weather" % (i, conv)})
    if i < n - 1:
        m.append({"role": "assistant", "content": "answer %d: it is sunny in the north and raining in the south" % i})
print(json.dumps({"model": "gemma", "messages": m, "max_tokens": 2}))
PY
	curl -s -o /dev/null -D "$tmp/h" -H 'x-infergate-explain: 1' "$U/v1/chat/completions" --data-binary @"$tmp/req.json"
	hdr x-infergate-endpoint
}
hits() { curl -fs "http://$1/metrics" | awk '$1 ~ /^vllm:prefix_cache_hits_total/ {print $NF}'; }

echo "== 1. follow-ups stay with the endpoint that holds the prefix"
first=$(turn alpha 1)
h0=$(hits "$first")
for n in 2 3 4; do echo "$(turn alpha $n)"; done >"$tmp/r"
check '[ "$(sort -u $tmp/r)" = "$first" ]' "turns 2-4 of conversation alpha all went to $first"
check 'hdr x-infergate-pick | grep -q "prefix_blocks=[1-9]"' "explain: $(hdr x-infergate-pick | grep -o 'prefix=[^;]*; prefix_blocks=[0-9/]*')"
h1=$(hits "$first")
check '[ "$(python3 -c "print(int(float($h1) - float($h0) > 0))")" = 1 ]' "the simulator's prefix cache hit ($h0 -> $h1 tokens)"

echo "== 2. other conversations spread"
for c in beta gamma delta epsilon zeta; do turn $c 1; done >"$tmp/r"
check '[ "$(sort -u $tmp/r | wc -l)" -ge 2 ]' "5 new conversations over $(sort -u $tmp/r | wc -l) endpoints"

echo "== 3. the holder saturates: elsewhere"
faults "${first##*:}" '{"kv_usage":0.8}'
sleep 0.4
next=$(turn alpha 5)
check '[ "$next" != "$first" ]' "turn 5 went to $next, not the saturated $first"
check 'hdr x-infergate-pick | grep -q "candidates=3"' "explain: $(hdr x-infergate-pick | grep -o 'decision=[^;]*; util=[^;]*')"
faults "${first##*:}" '{"kv_usage":0.1}'
sleep 0.4
back=$(turn alpha 6)
check '[ "$back" = "$first" ] || [ "$back" = "$next" ]' "with room again, turn 6 goes to an endpoint holding the conversation ($back)"
finish
