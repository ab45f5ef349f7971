#!/bin/bash
# gateway_config — the configuration is strict and documented:
#   1. every example passes --check; the quick-start flags work;
#   2. bad files are refused with file:line: field: what (a table of cases);
#   3. every key the loader knows is documented in docs/CONFIG.md, and every
#      metric the gateway writes is documented in docs/METRICS.md.
. "${IG_TOP:-$(dirname "$0")/../..}/tests/lib/gateway/lib.sh"
gw_init gateway_config
P=$base

echo "== 1. examples and flags"
for f in "$top"/examples/*.yaml; do
	check '"$GW" --check -c "$f" >/dev/null' "$(basename "$f") passes --check"
done
out=$("$GW" --check --listen 127.0.0.1:1 --region us-east5 --endpoint 127.0.0.1:2@us-east5 --endpoint 127.0.0.1:3@europe-west4#3 2>&1)
check '[ $? = 0 ] && echo "$out" | grep -q "1 pools, 2 endpoints"' "quick-start flags pass --check: $out"
out=$("$GW" --region us-east5 --endpoint 127.0.0.1@us-east5 2>&1); rc=$?
check '[ $rc != 0 ] && echo "$out" | grep -q "expected host:port@region"' "a bad --endpoint is refused: $out"

echo "== 2. bad files"
n=0
# bad 'yaml text' 'expected message (grep -F)'
bad() {
	n=$((n + 1))
	printf '%b' "$1" >"$tmp/c$n.yaml"
	local out rc expect="$tmp/c$n.yaml:$2"
	out=$("$GW" --check -c "$tmp/c$n.yaml" 2>&1); rc=$?
	check '[ $rc = 1 ] && echo "$out" | grep -qF -- "$expect"' "refused: $(echo "$out" | sed "s|$tmp/||")"
}
head="region: us-east5\npools:\n  - name: p\n    endpoints:\n      - address: 127.0.0.1:8001\n"
bad "regoin: x\n" "1: regoin: unknown key"
bad "pools: []\n" "1: region: is required"
bad "${head}        wieght: 2\n" "6: pools[0].endpoints[0].wieght: unknown key"
bad "${head}        weight: 0\n" "6: pools[0].endpoints[0].weight:"
bad "${head}      - address: 127.0.0.1\n" "6: pools[0].endpoints[1].address: \"127.0.0.1\" is not host:port"
bad "${head}      - address: 127.0.0.1:8001\n" "6: pools[0].endpoints[1]: address 127.0.0.1:8001 is listed twice"
bad "${head}    health: { interval: soon }\n" "6: pools[0].health.interval: must be a duration"
bad "${head}    health: { rise: 0 }\n" "6: pools[0].health.rise:"
bad "${head}    health: { interval: 1s, timeout: 2s }\n" "6: pools[0].health.timeout: is longer than health.interval"
bad "${head}    backend: { tries: 99 }\n" "6: pools[0].backend.tries:"
bad "${head}    backend: { retry_budget: 2 }\n" "6: pools[0].backend.retry_budget:"
bad "${head}routes:\n  - { path: /v1/, pool: q }\n" "7: routes[0].pool: no pool is named \"q\""
bad "${head}routes:\n  - { path: v1, pool: p }\n" "7: routes[0].path:"
bad "${head}    models: [a]\nroutes:\n  - { model: b, pool: p }\n" "8: routes[0].model: pool \"p\" does not list model \"b\""
bad "${head}  - name: p\n    endpoints: [ { address: \"127.0.0.1:9\" } ]\n" "6: pools[1]: pool name \"p\" is used twice"
bad "${head}listen: [1, 2]\n" "6: listen[0]: must be a \"host:port\" string"
bad "${head}limits: { max_body_bytes: lots }\n" "6: limits.max_body_bytes:"
bad "${head}listen: { address: 127.0.0.1:1, tls: { cert: a.pem } }\n" "6: listen.tls.key: is required"
bad "${head}listen: [ { address: 127.0.0.1:1, tls: { cert: a.pem, key: b.pem, crt: c } } ]\n" "6: listen[0].tls.crt: unknown key"
bad "${head}    backend: { tls: { ca: x.pem, verfy: false } }\n" "6: pools[0].backend.tls.verfy: unknown key"
bad "${head}    backend: { tls: { cert: c.pem } }\n" "6: pools[0].backend.tls: cert and key go together"
bad "${head}regions: { europe-west4: far }\n" "6: regions.europe-west4: must be a duration"
bad "region: us-east5\npools:\n  - name: p\n    endpoints: []\n" "4: pools[0].endpoints: needs at least one endpoint"
bad "region: [x\n" "2:1:"
bad "${head}tenants:\n  - { name: anonymous, api_keys: [K1] }\n" "7: tenants[0].name: \"anonymous\" is not a tenant name"
bad "${head}tenants:\n  - { name: a, api_keys: [K1] }\n  - { name: b, api_keys: [K1] }\n" "8: tenants[1].api_keys[0]: this key is used twice"
bad "${head}api_keys: [K1]\ntenants:\n  - { name: a, api_keys: [K1] }\n" "8: tenants[0].api_keys[0]: this key is used twice"
bad "${head}tenants:\n  - { name: a }\n" "7: tenants[0].api_keys: is required"
bad "${head}tenants:\n  - { name: a, api_keys: [K1], limits: { requests_per_minute: 5 } }\n" "7: tenants[0].limits.requests_per_minute: unknown key"
bad "${head}tenants:\n  - { name: a, api_keys: [K1], limits: { tokens_per_minute: -1 } }\n" "7: tenants[0].limits.tokens_per_minute:"
bad "${head}fair_queuing: maybe\n" "6: fair_queuing:"
bad "${head}session_header: \"x session\"\n" "6: session_header: must be a header name"
bad "${head}model_rewrites:\n  - { model: m, targets: [] }\n" "7: model_rewrites[0].targets: must be a list of 1 to 8"
bad "${head}model_rewrites:\n  - { model: m, targets: [ { model: a, weight: 0 } ] }\n" "7: model_rewrites[0].targets: the weights add up to 0"

echo "== 3. documentation"
keys=$(sed -n 's/.*static const char \*const keys\[\] = {\(.*\)/\1/p; /static const char \*const keys/,/NULL}/p' "$top/src/gateway/config.c" |
	grep -o '"[a-z_]*"' | tr -d '"' | sort -u)
missing=""
for k in $keys; do grep -q "\`$k\`" "$top/docs/CONFIG.md" || missing="$missing $k"; done
check '[ -z "$missing" ]' "every configuration key is documented in docs/CONFIG.md ($(echo $keys | wc -w) keys)${missing:+; missing:$missing}"

sim_start a $((P + 1)) --model m --region us-east5
cat >"$tmp/gw.yaml" <<YAML
region: us-east5
listen: 127.0.0.1:$P
pools:
  - name: p
    endpoints: [ { address: "127.0.0.1:$((P + 1))" }, { address: "127.0.0.1:$((P + 2))", region: eu } ]
    health: { interval: 200ms, timeout: 150ms }
    backend: { tries: 2 }
YAML
gw_start "$tmp/gw.yaml"
chat $gw_url m >/dev/null
chat $gw_url m >/dev/null
names=$(curl -fs "$gw_url/metrics" | sed -n 's/^# TYPE \([^ ]*\) .*/\1/p' | sort -u)
missing=""
for m in $names; do grep -q "\`$m\`" "$top/docs/METRICS.md" || missing="$missing $m"; done
check '[ -n "$names" ] && [ -z "$missing" ]' "every metric the gateway writes is documented in docs/METRICS.md ($(echo $names | wc -w) families)${missing:+; missing:$missing}"
bad_names=$(echo "$names" | grep -v '^infergate_' || true)
check '[ -z "$bad_names" ]' "every metric name starts with infergate_"

echo "== 4. io_uring: auto and off"
# auto (the default): where the kernel has io_uring, the upstream sends go
# through it (counted); where it has none, the log says so. Either way the
# requests are served.
mval() { curl -fs "$gw_url/metrics" | awk -v n="$1" '$1 == n {print $2}'; }
if grep -q "upstream socket I/O batched through io_uring" "$tmp/gw.log"; then
	curl -fs "$gw_url/metrics" >"$tmp/m"   # one page: the checks keep sending between two
	sends=$(awk '$1 == "infergate_io_uring_sends_total" {print $2}' "$tmp/m")
	submits=$(awk '$1 == "infergate_io_uring_submits_total" {print $2}' "$tmp/m")
	check '[ "${sends%.*}" -ge 2 ] && [ "${submits%.*}" -ge 1 ] && [ "${submits%.*}" -le "${sends%.*}" ]' \
		"auto: upstream sends issued through io_uring ($sends sends in $submits system calls)"
else
	check 'grep -q "io_uring unavailable (.*): plain system calls" "$tmp/gw.log"' "auto without io_uring: said at start"
fi
check '[ "$(chat $gw_url m)" = 200 ]' "auto: a chat is served"
kill -TERM $gw_pid; wait $gw_pid 2>/dev/null; gw_pid=
{ echo "io_uring: off"; cat "$tmp/gw.yaml"; } >"$tmp/gw-off.yaml"
gw_start "$tmp/gw-off.yaml"
check '[ "$(chat $gw_url m)" = 200 ] && [ "$(chat $gw_url m)" = 200 ]' "off: chats are served"
check '[ "$(mval infergate_io_uring_sends_total)" = 0 ]' "off: no send through io_uring"
check '! grep -q "io_uring" "$tmp/gw.log"' "off: nothing said about it"
finish
