#!/usr/bin/env bash
# infergate-sim's other vLLM APIs (embeddings, responses, audio, tokenize,
# score, rerank, pooling, classify) through the official OpenAI client and
# fetch (tests/lib/vllm_apis.cjs), then the key on the paths
# outside /v1 that vLLM guards too.
. "$(dirname "$0")/../lib/sim.sh"
command -v node >/dev/null || fail "node not installed"
[ -d "$IG_TOP/tests/node/node_modules/openai" ] || fail "tests/node/node_modules/openai missing (make deps)"
start_sim P --model sim-model --itl-ms 20 --ttft-ms 5
if node "$IG_TOP/tests/lib/vllm_apis.cjs" "http://127.0.0.1:$P" sim-model >"$SIM_TMP/node.out" 2>&1; then
	cat "$SIM_TMP/node.out"
else
	cat "$SIM_TMP/node.out"
	fail "the vLLM API checks failed"
fi
start_sim K --model sim-model --api-key sekret
for path in /tokenize /detokenize /rerank /v2/rerank /score /pooling /classify /v1/embeddings; do
	code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$K$path" -H 'content-type: application/json' -d '{}')
	[ "$code" = 401 ] || fail "$path without the key answered $code, not 401"
done
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$K/tokenize" -H 'authorization: Bearer sekret' \
	-H 'content-type: application/json' -d '{"prompt":"a b"}')
[ "$code" = 200 ] || fail "/tokenize with the key answered $code"
echo "ok   the key guards /tokenize, /detokenize, /score, /rerank, /pooling, /classify as /v1"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$K/ping")
[ "$code" = 200 ] || fail "/ping answered $code"
exit 0
