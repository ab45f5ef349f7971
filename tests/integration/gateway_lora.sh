#!/bin/bash
# gateway_lora — LoRA adapters end to end: three simulators, two of which
# serve adapters (one with sql, one with sql and chat; one slot each, a 400 ms
# load); the pool learns them from /v1/models. A request for an adapter goes
# only where it is listed; once it runs somewhere (the scraped
# vllm:lora_requests_info), the next requests go there and skip the load
# delay; an adapter nobody runs goes where a slot is free; the explanation
# header says which.
. "${IG_TOP:-$(dirname "$0")/../..}/tests/lib/gateway/lib.sh"
gw_init gateway_lora
P=$base
A=127.0.0.1:$((P + 1)); B=127.0.0.1:$((P + 2)); C=127.0.0.1:$((P + 3))
sim_start a $((P + 1)) --model base --ttft-ms 5 --itl-ms 20
sim_start b $((P + 2)) --model base --ttft-ms 5 --itl-ms 20 --lora-adapters sql --max-loras 1 --lora-load-ms 400
sim_start c $((P + 3)) --model base --ttft-ms 5 --itl-ms 20 --lora-adapters sql,chat --max-loras 2 --lora-load-ms 400
cat >"$tmp/gw.yaml" <<YAML
region: us-east5
listen: 127.0.0.1:$P
pools:
  - name: p
    endpoints:
      - { address: "$A", region: us-east5 }
      - { address: "$B", region: us-east5 }
      - { address: "$C", region: us-east5 }
    health: { interval: 200ms, timeout: 150ms, rise: 1 }
    metrics: { interval: 50ms, timeout: 200ms }
YAML
gw_start "$tmp/gw.yaml"
U=$gw_url
wait_for "curl -fs $U/v1/models | grep -q '\"chat\"'" 5
check 'curl -fs $U/v1/models | grep -q "\"sql\""' "the gateway lists the adapters it learned"
ask() { # ask MODEL [max_tokens]: status; endpoint $tmp/ep, pick header $tmp/pick, time to head $tmp/t
	curl -s -o "$tmp/b" -D "$tmp/h" -w '%{http_code} %{time_starttransfer}' "$U/v1/chat/completions" -H 'x-infergate-explain: 1' \
		-d "{\"model\":\"$1\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":${2:-2}}" >"$tmp/st"
	hdr x-infergate-endpoint >"$tmp/ep"
	hdr x-infergate-pick >"$tmp/pick"
	cut -d' ' -f1 "$tmp/st"
}
echo "== only where it is listed"
eps=""
for i in 1 2 3 4 5 6; do ask sql >/dev/null; eps="$eps $(cat "$tmp/ep")"; done
check '! echo "$eps" | grep -q "$A"' "sql never goes to the endpoint without adapters ($eps)"
for i in 1 2 3; do ask chat >/dev/null; check '[ "$(cat "$tmp/ep")" = "$C" ]' "chat goes to the only endpoint that lists it"; done

echo "== affinity: where the adapter runs"
# A long sql stream keeps sql running on one endpoint; the scrapes see it.
curl -s -N "$U/v1/chat/completions" -d '{"model":"sql","stream":true,"messages":[{"role":"user","content":"hi"}],"max_tokens":150}' \
	-D "$tmp/lh" -o /dev/null & lp=$!
wait_for "[ -s $tmp/lh ]" 5
sleep 0.3
runs_on=$(tr -d '\r' <"$tmp/lh" | sed -n 's/^x-infergate-endpoint: //Ip')
hits=0
for i in 1 2 3 4; do
	ask sql >/dev/null
	[ "$(cat "$tmp/ep")" = "$runs_on" ] && hits=$((hits + 1))
done
check '[ $hits = 4 ]' "4 of 4 sql requests go where sql runs ($runs_on; $hits)"
check 'grep -q "adapter=running" "$tmp/pick"' "the explanation says so: $(grep -o "adapter=.*" "$tmp/pick")"
t=$(cut -d' ' -f2 "$tmp/st")
check 'awk "BEGIN { exit !($t < 0.35) }"' "no adapter load on the way (${t}s to the head, the load takes 0.4 s)"
wait $lp
finish
