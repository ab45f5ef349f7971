#!/bin/bash
# gateway_apis — every API of vLLM's server through the gateway, not only chat
# and completions: the official openai client and fetch run the same checks as
# against a simulator directly (tests/lib/vllm_apis.cjs:
# embeddings, the Responses API streamed as it is made, audio uploads,
# tokenize, score, rerank, pooling, classify). Then what the gateway itself
# decides:
#   1. the pool comes from the body's model (JSON or a multipart form field);
#   2. a stored response is found on whichever endpoint made it (a 404 moves on);
#   3. a route's extra_paths carries a server's own API; other paths are 404s;
#   4. methods (405 with Allow), the key on /tokenize as on /v1, /ping;
#   5. retries before the first byte and the access log cover these paths too.
. "${IG_TOP:-$(dirname "$0")/../..}/tests/lib/gateway/lib.sh"
gw_init gateway_apis
P=$base
[ -d "$top/tests/node/node_modules/openai" ] || { echo "tests/node/node_modules/openai is missing (make deps)"; exit 1; }
sim_start a $((P + 1)) --model gemma --region us-east5 --itl-ms 20 --ttft-ms 5
sim_start b $((P + 2)) --model gemma --region us-east5 --itl-ms 20 --ttft-ms 5
sim_start e $((P + 3)) --model embedder --region us-east5
cat >"$tmp/gw.yaml" <<YAML
region: us-east5
listen: 127.0.0.1:$P
api_keys: [k1]
access_log: $tmp/access.log
pools:
  - name: gemma-pool
    models: [gemma]
    endpoints:
      - { address: "127.0.0.1:$((P + 1))", region: us-east5 }
      - { address: "127.0.0.1:$((P + 2))", region: us-east5 }
    health: { interval: 200ms, timeout: 150ms }
  - name: embed-pool
    models: [embedder]
    endpoints:
      - { address: "127.0.0.1:$((P + 3))", region: us-east5 }
    health: { interval: 200ms, timeout: 150ms }
routes:
  - { path: /, pool: gemma-pool, extra_paths: [/generate] }
  - { path: /, pool: embed-pool }
YAML
gw_start "$tmp/gw.yaml"
U=$gw_url
wait_for "curl -fs $U/readyz >/dev/null" 5
if API_KEY=k1 MIN_GAP_MS=100 node "$top/tests/lib/vllm_apis.cjs" "$U" gemma >"$tmp/out" 2>&1; then
	cat "$tmp/out"; ok "the vLLM API checks pass through the gateway"
else
	cat "$tmp/out"; fail "the vLLM API checks through the gateway"
fi

echo "== 1. the pool from the model"
code=$(curl -s -o "$tmp/b" -D "$tmp/h" -w '%{http_code}' "$U/v1/embeddings" -H 'authorization: Bearer k1' \
	-H 'content-type: application/json' -d '{"model":"embedder","input":"a b c"}')
check '[ "$code" = 200 ] && [ "$(hdr x-infergate-endpoint)" = "127.0.0.1:$((P + 3))" ]' "embeddings for embedder go to the embed pool ($code, $(hdr x-infergate-endpoint))"
printf 'RIFF0000WAVEfmt ' >"$tmp/a.wav"
code=$(curl -s -o "$tmp/b" -D "$tmp/h" -w '%{http_code}' "$U/v1/audio/transcriptions" -H 'authorization: Bearer k1' \
	-F "file=@$tmp/a.wav;type=audio/wav" -F model=embedder)
check '[ "$code" = 200 ] && [ "$(hdr x-infergate-endpoint)" = "127.0.0.1:$((P + 3))" ]' "a form's model field picks the pool ($code, $(hdr x-infergate-endpoint))"
code=$(curl -s -o "$tmp/b" -w '%{http_code}' "$U/v1/audio/transcriptions" -H 'authorization: Bearer k1' \
	-F "file=@$tmp/a.wav;type=audio/wav" -F model=nope)
check '[ "$code" = 404 ] && grep -q "does not exist" $tmp/b' "an unknown model in a form: 404 ($code)"
code=$(curl -s -o "$tmp/b" -w '%{http_code}' "$U/v1/embeddings" -H 'authorization: Bearer k1' \
	-H 'content-type: application/json' -d '{"input":"a"}')
check '[ "$code" = 400 ] && grep -q "is required" $tmp/b' "no model, two pools on the path: 400 ($code)"
code=$(curl -s -o "$tmp/b" -w '%{http_code}' "$U/v1/embeddings" -H 'authorization: Bearer k1' \
	-H 'content-type: application/json' -d '{"model":"embedder","input":')
check '[ "$code" = 400 ] && grep -q "line 1" $tmp/b' "a broken JSON body: 400 with its position ($code)"

echo "== 2. a stored response, wherever it was made"
for i in 1 2 3 4; do
	id=$(curl -s "$U/v1/responses" -H 'authorization: Bearer k1' -H 'content-type: application/json' \
		-d "{\"model\":\"gemma\",\"input\":\"tell me $i\"}" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).id))')
	code=$(curl -s -o "$tmp/b" -w '%{http_code}' "$U/v1/responses/$id" -H 'authorization: Bearer k1')
	[ "$code" = 200 ] || break
done
check '[ "$code" = 200 ] && grep -q "\"id\":\"$id\"" $tmp/b' "GET /v1/responses/{id} finds each of 4 responses (last $code)"
code=$(curl -s -o "$tmp/b" -w '%{http_code}' "$U/v1/responses/resp_0000000000000000" -H 'authorization: Bearer k1')
check '[ "$code" = 404 ]' "an unknown id: 404 after every endpoint was asked ($code)"

echo "== 3. extra paths"
code=$(curl -s -o "$tmp/b" -D "$tmp/h" -w '%{http_code}' "$U/generate" -H 'authorization: Bearer k1' -H 'content-type: application/json' -d '{"text":"hi"}')
check '[ -n "$(hdr x-infergate-endpoint)" ] && [ "$code" = 404 ]' "/generate (a route's extra path) reaches a server, whose own 404 comes back ($code)"
code=$(curl -s -o "$tmp/b" -w '%{http_code}' "$U/generate" -H 'content-type: application/json' -d '{"text":"hi"}')
check '[ "$code" = 401 ]' "an extra path needs the key too ($code)"
code=$(curl -s -o "$tmp/b" -D "$tmp/h" -w '%{http_code}' "$U/elsewhere" -H 'content-type: application/json' -d '{}')
check '[ "$code" = 404 ] && [ -z "$(hdr x-infergate-endpoint)" ] && grep -q "Not found" $tmp/b' "another path is the gateway's 404 ($code)"

echo "== 4. methods, key, ping"
code=$(curl -s -o "$tmp/b" -D "$tmp/h" -w '%{http_code}' "$U/v1/embeddings" -H 'authorization: Bearer k1')
check '[ "$code" = 405 ] && [ "$(hdr allow)" = POST ]' "GET /v1/embeddings: 405, Allow: POST ($code)"
code=$(curl -s -o "$tmp/b" -w '%{http_code}' "$U/tokenize" -H 'content-type: application/json' -d '{"model":"gemma","prompt":"a"}')
check '[ "$code" = 401 ]' "/tokenize without the key: 401 ($code)"
code=$(curl -s -o /dev/null -w '%{http_code}' "$U/ping")
check '[ "$code" = 200 ]' "/ping: 200"

echo "== 5. retries and the access log"
kill -STOP "$sim_pid_a"
faults $((P + 2)) '{"error_status":503,"error_count":1}'
code=$(curl -s -o "$tmp/b" -D "$tmp/h" -w '%{http_code}' --max-time 20 "$U/v1/embeddings" -H 'authorization: Bearer k1' \
	-H 'content-type: application/json' -d '{"model":"gemma","input":"x"}')
kill -CONT "$sim_pid_a"
check '[ "$code" = 200 ]' "an embeddings request answered 503 by one endpoint is retried ($code via $(hdr x-infergate-endpoint))"
check 'grep -q "\"path\":\"/v1/embeddings\"" $tmp/access.log && grep -q "\"path\":\"/v1/audio/transcriptions\"" $tmp/access.log' \
	"embeddings and audio requests are in the access log"
finish
