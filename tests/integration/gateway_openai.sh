#!/bin/bash
# gateway_openai — the official OpenAI client (npm `openai`) through the
# gateway, streaming and not (tests/lib/gateway/openai_client.js).
. "${IG_TOP:-$(dirname "$0")/../..}/tests/lib/gateway/lib.sh"
gw_init gateway_openai
P=$base
[ -d "$top/tests/node/node_modules/openai" ] || { echo "tests/node/node_modules/openai is missing (make deps)"; exit 1; }
sim_start a $((P + 1)) --model google/gemma-3-27b-it --region us-east5
sim_start b $((P + 2)) --model google/gemma-3-27b-it --region europe-west4
cat >"$tmp/gw.yaml" <<YAML
region: us-east5
listen: 127.0.0.1:$P
pools:
  - name: gemma-pool
    models: [google/gemma-3-27b-it]
    endpoints:
      - { address: "127.0.0.1:$((P + 1))", region: us-east5 }
      - { address: "127.0.0.1:$((P + 2))", region: europe-west4 }
    health: { interval: 200ms, timeout: 150ms }
YAML
gw_start "$tmp/gw.yaml"
wait_for "curl -fs $gw_url/readyz >/dev/null" 5
if node "$top/tests/lib/gateway/openai_client.js" "$gw_url" google/gemma-3-27b-it >"$tmp/out" 2>&1; then
	cat "$tmp/out"; ok "the openai client's checks pass"
else
	cat "$tmp/out"; fail "the openai client's checks"
fi
finish
