#!/usr/bin/env bash
# server_openai_node: the official OpenAI client (npm openai) against
# infergate-server (sanitizer build): chat and completions, whole and streamed,
# with usage and logprobs, and typed errors; again with an API key.
. "$(dirname "$0")/../lib/server/lib.sh"
command -v node >/dev/null || fail "node not installed"
[ -d "$IG_TOP/tests/node/node_modules/openai" ] || fail "tests/node/node_modules/openai missing (make deps)"
make_model "$T/m" tiny 2
start_server P --model "$T/m" --served-model-name tiny
PORT=$P IG_TOP=$IG_TOP node "$IG_TOP/tests/lib/server/openai_client.cjs" || fail "openai client checks"
stop_server "$P_PID"
# With a key (VLLM_API_KEY, as vLLM reads it): /v1 needs it, health and metrics do not.
VLLM_API_KEY=k-123 start_server P --model "$T/m" --served-model-name tiny
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P/metrics")" = 200 ] || fail "/metrics with a key set"
[ "$(curl -s -o "$T/u" -w '%{http_code}' "http://127.0.0.1:$P/v1/models")" = 401 ] && grep -q '"AuthenticationError"' "$T/u" || fail "/v1/models without the key: $(cat "$T/u")"
ok "--api-key (from VLLM_API_KEY): /v1/models without it 401 AuthenticationError; /health, /metrics open"
API_KEY=k-123 PORT=$P IG_TOP=$IG_TOP node "$IG_TOP/tests/lib/server/openai_client.cjs" || fail "openai client checks with a key"
stop_server "$P_PID"
