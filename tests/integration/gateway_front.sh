#!/bin/bash
# gateway_front — the front door: routing by model and by path to three pools
# (a catch-all pool learns its models from its server), /v1/models, the admin
# paths, and every bad input answered with its status and an OpenAI-shaped
# JSON error: 431, 413, 408, Content-Length with Transfer-Encoding (400 and the
# connection closed), malformed 400, invalid JSON 400, missing model 400,
# unknown model 404, wrong method 405, unknown path 404.
. "${IG_TOP:-$(dirname "$0")/../..}/tests/lib/gateway/lib.sh"
gw_init gateway_front
P=$base
sim_start chat $((P + 1)) --model m-chat --region us-east5
sim_start small $((P + 2)) --model m-small --region us-east5
sim_start any $((P + 3)) --model m-any,m-other --region us-east5
cat >"$tmp/gw.yaml" <<YAML
region: us-east5
listen: 127.0.0.1:$P
limits: { max_header_bytes: 4KiB, max_body_bytes: 64KiB, header_timeout: 500ms }
pools:
  - name: chat
    models: [m-chat]
    endpoints: [ { address: "127.0.0.1:$((P + 1))" } ]
    health: { interval: 200ms, timeout: 150ms }
  - name: small
    models: [m-small]
    endpoints: [ { address: "127.0.0.1:$((P + 2))" } ]
    health: { interval: 200ms, timeout: 150ms }
  - name: any
    endpoints: [ { address: "127.0.0.1:$((P + 3))" } ]
    health: { interval: 200ms, timeout: 150ms }
routes:
  - { path: /v1/chat/completions, model: m-chat, pool: chat }
  - { path: /v1/completions, model: m-small, pool: small }
  - { path: /v1/chat/completions, pool: any }
YAML
gw_start "$tmp/gw.yaml"
U=$gw_url
wait_for "curl -fs $U/readyz >/dev/null" 5

echo "== routing"
check '[ "$(chat $U m-chat)" = 200 ] && [ "$(hdr x-infergate-endpoint)" = 127.0.0.1:$((P + 1)) ]' "m-chat on chat completions goes to pool chat"
check '[ "$(hdr x-infergate-region)" = us-east5 ] && [ "$(hdr x-sim-region)" = us-east5 ]' "x-infergate-region names the serving region"
code=$(curl -s -o "$tmp/b" -D "$tmp/h" -w '%{http_code}' $U/v1/completions -d '{"model":"m-small","prompt":"hi","max_tokens":3}')
check '[ $code = 200 ] && [ "$(hdr x-infergate-endpoint)" = 127.0.0.1:$((P + 2)) ]' "m-small on completions goes to pool small"
check '[ "$(json $tmp/b d.object)" = text_completion ]' "the completion body is relayed as is"
code=$(chat $U m-small)
check '[ "$(hdr x-infergate-endpoint)" = 127.0.0.1:$((P + 3)) ]' "m-small on chat completions has no route of its own there: the catch-all pool (whose server answers $code)"
check '[ "$(chat $U m-any)" = 200 ] && [ "$(hdr x-infergate-endpoint)" = 127.0.0.1:$((P + 3)) ]' "m-any goes to the catch-all pool"
code=$(chat $U nope)
check '[ $code = 404 ]' "a model the catch-all's server does not know: its own 404 is relayed ($code)"
wait_for "curl -fs $U/v1/models | grep -q m-other" 5
curl -fs $U/v1/models >"$tmp/models"
check '[ "$(json $tmp/models "d.data.map(m => m.id).sort().join()")" = "m-any,m-chat,m-other,m-small" ]' "/v1/models lists configured and learned models"
check '[ "$(json $tmp/models d.object)" = list ]' "/v1/models is an OpenAI list"

echo "== admin paths"
check '[ "$(curl -s -o /dev/null -w %{http_code} $U/healthz)" = 200 ]' "/healthz 200"
check '[ "$(curl -s -o /dev/null -w %{http_code} $U/readyz)" = 200 ]' "/readyz 200 with healthy endpoints"
check '[ "$(json "$(curl -fs $U/status)" d.pools.length)" = 3 ]' "/status lists the three pools"

# err_check STATUS FILE WHAT: the answer is an OpenAI-style error with this code.
err_check() {
	check "[ \"\$(json $2 'd.error.code === $1 && typeof d.error.message === \"string\" && typeof d.error.type === \"string\"')\" = true ]" "$3: OpenAI-shaped error body"
}
# raw REQUEST: sends bytes on a fresh connection, prints the answer (head and body).
raw() { timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$P; printf '%b' \"\$1\" >&3; cat <&3" _ "$1" | tr -d '\r'; }
body_of() { sed -n '/^$/,$p' | sed 1d; }

echo "== bad input"
big=$(head -c 6000 /dev/zero | tr '\0' a)
code=$(curl -s -o "$tmp/e" -w '%{http_code}' $U/v1/chat/completions -H "x-big: $big" -d '{"model":"m-chat"}')
check '[ $code = 431 ]' "header over max_header_bytes: 431"; err_check 431 "$tmp/e" 431
head -c 70000 /dev/zero | tr '\0' ' ' >"$tmp/bigbody"
code=$(curl -s -o "$tmp/e" -w '%{http_code}' $U/v1/chat/completions -H 'content-type: application/json' --data-binary @"$tmp/bigbody")
check '[ $code = 413 ]' "body over max_body_bytes: 413"; err_check 413 "$tmp/e" 413
raw "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Le" >"$tmp/r"
check 'head -n 1 $tmp/r | grep -q " 408 "' "head not finished within header_timeout: 408"
body_of <"$tmp/r" >"$tmp/e"; err_check 408 "$tmp/e" 408
raw "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" >"$tmp/r"
check 'head -n 1 $tmp/r | grep -q " 400 " && grep -qi "^connection: close" $tmp/r' "Content-Length with Transfer-Encoding: 400 and Connection: close"
body_of <"$tmp/r" >"$tmp/e"; err_check 400 "$tmp/e" "CL+TE"
raw "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n" >"$tmp/r"
check 'head -n 1 $tmp/r | grep -q " 400 "' "malformed head: 400"
body_of <"$tmp/r" >"$tmp/e"; err_check 400 "$tmp/e" malformed
code=$(curl -s -o "$tmp/e" -w '%{http_code}' $U/v1/chat/completions -d '{"model": "m-chat",')
check '[ $code = 400 ] && grep -q "Invalid JSON" $tmp/e' "invalid JSON: 400"; err_check 400 "$tmp/e" "invalid JSON"
code=$(curl -s -o "$tmp/e" -w '%{http_code}' $U/v1/chat/completions -d '{"messages":[]}')
check '[ $code = 400 ] && [ "$(json $tmp/e d.error.param)" = model ]' "missing model: 400 naming param model"; err_check 400 "$tmp/e" "missing model"
code=$(curl -s -o "$tmp/e" -w '%{http_code}' $U/v1/completions -d '{"model":"m-chat","prompt":"x"}')
check '[ $code = 404 ] && [ "$(json $tmp/e d.error.message)" = "The model \`m-chat\` does not exist." ]' "no route serves m-chat on /v1/completions: 404 The model \`m-chat\` does not exist."; err_check 404 "$tmp/e" "unknown model"
code=$(curl -s -o "$tmp/e" -w '%{http_code}' -X GET $U/v1/chat/completions)
check '[ $code = 405 ]' "GET on chat completions: 405"; err_check 405 "$tmp/e" 405
code=$(curl -s -o "$tmp/e" -w '%{http_code}' $U/v2/nothing)
check '[ $code = 404 ]' "unknown path: 404"; err_check 404 "$tmp/e" "unknown path"
code=$(curl -s -o "$tmp/e" -w '%{http_code}' -X POST $U/metrics)
check '[ $code = 405 ]' "POST on /metrics: 405"
finish
