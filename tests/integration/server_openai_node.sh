#!/usr/bin/env bash
# server_openai_node: the official OpenAI client (npm openai) against
# infergate-server (sanitizer build): chat and completions, whole and streamed,
# with usage and logprobs, and typed errors.
. "$(dirname "$0")/../server/lib.sh"
command -v node >/dev/null || fail "node not installed"
[ -d "$IG_TOP/tests/node/node_modules/openai" ] || fail "tests/node/node_modules/openai missing (make deps)"
make_model "$T/m" tiny 2
start_server P --model "$T/m" --served-model-name tiny
PORT=$P IG_TOP=$IG_TOP node "$IG_TOP/tests/server/openai_client.cjs" || fail "openai client checks"
stop_server "$P_PID"
