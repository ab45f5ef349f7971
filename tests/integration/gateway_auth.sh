#!/bin/bash
# gateway_auth — API keys: the gateway's api_keys guard the API (paths under
# /v1, as vLLM's --api-key) while the admin paths stay open; a pool's
# backend.api_key replaces the client's Authorization toward servers that
# have their own key (and fetches their /v1/models with it); without one the
# client's header passes through; a reload changes the keys; a bad key in the
# file is refused with its line.
. "${IG_TOP:-$(dirname "$0")/../..}/tests/lib/gateway/lib.sh"
gw_init gateway_auth
P=$base
sim_start held $((P + 1)) --model m-held --region us-east5 --api-key server-key-1
sim_start passed $((P + 2)) --model m-passed --region us-east5 --api-key client-key-1
write_cfg() { # KEYS
	cat >"$tmp/gw.yaml" <<YAML
region: us-east5
listen: 127.0.0.1:$P
api_keys: $1
pools:
  - name: held
    endpoints: [ { address: "127.0.0.1:$((P + 1))" } ]
    health: { interval: 200ms, timeout: 150ms }
    backend: { api_key: server-key-1 }
  - name: passed
    models: [m-passed]
    endpoints: [ { address: "127.0.0.1:$((P + 2))" } ]
    health: { interval: 200ms, timeout: 150ms }
routes:
  - { path: /v1/, model: m-passed, pool: passed }
  - { path: /v1/, pool: held }
YAML
}
write_cfg '[client-key-1, client-key-2]'
gw_start "$tmp/gw.yaml"
U=$gw_url
wait_for "curl -fs $U/readyz >/dev/null" 5

# call MODEL [KEY]: a chat through the gateway; prints the status, body in $tmp/b.
call() {
	curl -s -o "$tmp/b" -w '%{http_code}' "$U/v1/chat/completions" -H 'content-type: application/json' \
		${2:+-H "Authorization: Bearer $2"} \
		-d "{\"model\":\"$1\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":3}"
}

echo "== the gateway's own keys"
check '[ "$(call m-held)" = 401 ] && [ "$(json $tmp/b d.error.type)" = AuthenticationError ] && [ "$(json $tmp/b d.error.code)" = 401 ]' \
	"no key: 401, an OpenAI AuthenticationError"
check '[ "$(call m-held client-key-3)" = 401 ]' "a wrong key: 401"
check '[ "$(curl -s -o /dev/null -w %{http_code} $U/v1/chat/completions -H "Authorization: Basic client-key-1" -d {})" = 401 ]' "another scheme: 401"
check '[ "$(call m-held client-key-1)" = 200 ] && [ "$(call m-held client-key-2)" = 200 ]' "either configured key: 200"
check '[ "$(curl -s -o /dev/null -w %{http_code} $U/v1/models)" = 401 ]' "/v1/models needs a key too"
for p in /healthz /readyz /metrics /status; do
	check '[ "$(curl -s -o /dev/null -w %{http_code} $U$p)" = 200 ]' "$p open without a key"
done

echo "== keys toward the servers"
check '[ "$(call m-held client-key-2)" = 200 ]' "backend.api_key: the server holding server-key-1 answers a client that never saw it"
check 'wait_for "curl -fs -H \"Authorization: Bearer client-key-1\" $U/v1/models | grep -q m-held" 5' \
	"the held pool's models were learned from its /v1/models with the backend key"
check '[ "$(call m-passed client-key-1)" = 200 ]' "no backend.api_key: the client's Authorization passes through (the server's key is client-key-1)"
check '[ "$(call m-passed client-key-2)" = 401 ] && grep -q Unauthorized $tmp/b' "with the other gateway key the server itself refuses, and its 401 is relayed"

echo "== reload"
write_cfg 'client-key-9'
kill -HUP "$gw_pid"
check 'wait_for "[ \"\$(call m-held client-key-1)\" = 401 ]" 5' "after SIGHUP the old key is refused"
check '[ "$(call m-held client-key-9)" = 200 ]' "and the new one accepted"

echo "== bad keys in the file"
write_cfg '["has space"]'
out=$("$GW" --check -c "$tmp/gw.yaml" 2>&1)
check 'echo "$out" | grep -q "gw.yaml:3: api_keys\[0\]: a key is visible ASCII characters only"' "a key with a space: $out"
write_cfg '[]'
out=$("$GW" --check -c "$tmp/gw.yaml" 2>&1)
check 'echo "$out" | grep -q "api_keys: must be a key or a list of 1 to 16 keys"' "an empty list: $out"
finish
