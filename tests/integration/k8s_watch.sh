#!/bin/bash
# k8s_watch — an endpoint entry with resolve: kubernetes follows the
# EndpointSlices of a Service through the API server's list and watch, over
# HTTPS with the pod's service account, against a recorded session replayed by
# tests/lib/k8s/apiserver.js (a self-signed certificate made here; no cluster can
# run on this machine). The session (tests/lib/k8s/endpointslices-session.json):
#   list rv 1000: pods .31 and .32 ready, .33 not ready yet, and an FQDN slice
#   watch 1: .33 becomes ready (scale-up); .31 terminating (scale-down); a
#            BOOKMARK to 1010; the server ends the watch
#   watch 2 (must start from 1010): a second slice with .31 ADDED, then
#            DELETED; then ERROR 410 Gone
#   list rv 1200 (after the 410): only .32; watch 3 stays open
# Checks: each set, how soon each change reaches the pool (under a second),
# the versions the gateway asked for, a steady request stream with no failure;
# then a rotated token file with a wrong token (401): failures
# counted, the last set kept.
. "${IG_TOP:-$(dirname "$0")/../..}/tests/lib/gateway/lib.sh"
gw_init k8s_watch
P=$base
SIM_PORT=$((P + 1))
A=127.0.0.31:$SIM_PORT; B=127.0.0.32:$SIM_PORT; C=127.0.0.33:$SIM_PORT
sa="$tmp/sa"
mkdir -p "$sa"

echo "== a self-signed API server certificate for 127.0.0.1, a token, the session"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=kube-apiserver \
	-addext "subjectAltName=IP:127.0.0.1,DNS:kubernetes.default.svc" \
	-keyout "$tmp/api.key" -out "$sa/ca.crt" >/dev/null 2>&1 || { echo "FAIL openssl"; exit 1; }
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$sa/token"
echo default >"$sa/namespace"
sed "s/18000/$SIM_PORT/g" "$top/tests/lib/k8s/endpointslices-session.json" >"$tmp/session.json"

for n in 31 32 33; do
	"$SIM" --host "127.0.0.$n" --port "$SIM_PORT" --model gemma --ttft-ms 2 --itl-ms 1 --log-level warn \
		>"$tmp/sim$n.log" 2>&1 &
	pids="$pids $!"
	wait_for "curl -fs -o /dev/null http://127.0.0.$n:$SIM_PORT/health" 10 || exit 1
done

# api_start: the replaying API server; API_PORT, its log in $tmp/api.log.
api_start() {
	node "$top/tests/lib/k8s/apiserver.js" --key "$tmp/api.key" --cert "$sa/ca.crt" --token-file "$sa/token" \
		--session "$tmp/session.json" >"$tmp/api.log" 2>&1 &
	api_pid=$!
	pids="$pids $api_pid"
	wait_for "grep -q '^listening' $tmp/api.log" 10 || { cat "$tmp/api.log"; exit 1; }
	API_PORT=$(sed -n 's/^listening //p' "$tmp/api.log")
}
api_start

cat >"$tmp/gw.yaml" <<EOF
region: us-east5
listen: 127.0.0.1:$P
shutdown_grace: 5s
pools:
  - name: gemma-pool
    models: [gemma]
    endpoints:
      - { address: "vllm-gemma.default:8000", resolve: kubernetes, region: us-east5 }
    health: { path: /health, interval: 500ms, fast_interval: 100ms, timeout: 400ms, rise: 1, fall: 2 }
    backend: { tries: 3 }
EOF
export KUBERNETES_SERVICE_HOST=127.0.0.1 KUBERNETES_SERVICE_PORT=$API_PORT INFERGATE_K8S_SA_DIR=$sa
gw_start "$tmp/gw.yaml"
U=$gw_url
: >"$tmp/stream"
(
	while [ ! -e "$tmp/stop" ]; do
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$U/v1/chat/completions" \
			-H 'content-type: application/json' \
			-d '{"model":"gemma","messages":[{"role":"user","content":"hi"}],"max_tokens":3}')
		echo "$code" >>"$tmp/stream"
	done
) &
stream_pid=$!
pids="$pids $stream_pid"

set_is() { # expected addresses (sorted, space-separated) vs /status
	local got
	got=$(json "$(curl -fs --max-time 3 "$U/status")" "d.pools[0].endpoints.map(e => e.address).sort().join(' ')")
	[ "$got" = "$*" ]
}
echo "== list: the ready endpoints of the Service"
check 'wait_for "set_is $A $B" 5' "after the list: .31 and .32 (.33 not ready, the FQDN slice skipped)"
check 'wait_for "set_is $A $B $C" 5' "watch 1: .33 ready joins"
check 'wait_for "set_is $B $C" 5' "watch 1: .31 terminating leaves"
check 'wait_for "grep -q \"watch 2 from rv=1010\" $tmp/api.log" 5' "the next watch starts from the bookmark's version 1010"
check 'wait_for "set_is $A $B $C" 5' "watch 2: a second slice ADDED brings .31 back"
check 'wait_for "set_is $B $C" 5' "watch 2: the slice DELETED takes it away"
check 'wait_for "set_is $B" 6' "410 Gone: listed again (rv 1200): only .32"
check 'wait_for "grep -q \"watch 3 from rv=1200\" $tmp/api.log" 5' "and watched from 1200"
check '! grep -q "auth=bad" $tmp/api.log' "every request carried the service account token"

echo "== how soon each change reached the pool"
python3 - "$tmp/api.log" "$tmp/gw.log" >"$tmp/latency" <<'PY'
import sys, re, datetime
sent = [int(l.split()[0]) for l in open(sys.argv[1]) if re.search(r" event \d+ (ADDED|MODIFIED|DELETED)", l)]
seen = []
for l in open(sys.argv[2]):
    m = re.match(r"(\S+)Z \S+ info: discovery of kubernetes:default/vllm-gemma: \d+ addresses", l)
    if m:
        t = datetime.datetime.fromisoformat(m.group(1)).replace(tzinfo=datetime.timezone.utc)
        seen.append(int(t.timestamp() * 1000))
worst = 0
for s in sent:
    after = [x - s for x in seen if x >= s - 5]
    worst = max(worst, after[0] if after else 10**9)
print(len(sent), worst)
PY
read -r n_events worst <"$tmp/latency"
check '[ "$n_events" = 4 ] && [ "$worst" -lt 1000 ]' "$n_events watch events, each applied within ${worst} ms of being sent"

echo "== a wrong token: failures counted, the set stays"
f0=$(metric $U 'infergate_discovery_failures_total{pool="gemma-pool"')
echo "not-the-token" >"$sa/token.new"; mv "$sa/token.new" "$sa/token"
kill "$api_pid"; wait "$api_pid" 2>/dev/null
# The next connection (after the watch breaks) reads the rotated token file.
echo "$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$tmp/real.token"
node "$top/tests/lib/k8s/apiserver.js" --key "$tmp/api.key" --cert "$sa/ca.crt" --token-file "$tmp/real.token" \
	--session "$tmp/session.json" --port "$API_PORT" >"$tmp/api2.log" 2>&1 &
pids="$pids $!"
check 'wait_for "grep -q \"auth=bad\" $tmp/api2.log" 10' "the gateway reconnects with the rotated (wrong) token"
check 'wait_for "grep -q \"HTTP 401 (check the token and RBAC)\" $tmp/gw.log" 5' "the 401 is logged with a hint"
check 'set_is $B' "the last known set stays"
check '[ "$(metric $U infergate_discovery_failures_total{pool=\"gemma-pool\")" -gt "$f0" ]' \
	"infergate_discovery_failures_total counts it ($f0 -> $(metric $U 'infergate_discovery_failures_total{pool="gemma-pool"'))"

touch "$tmp/stop"
wait_for "! kill -0 $stream_pid 2>/dev/null" 15
total=$(wc -l <"$tmp/stream"); bad=$(grep -vc '^200$' "$tmp/stream")
check '[ "$total" -ge 20 ] && [ "$bad" = 0 ]' "$total requests while the set changed, $bad failed"
[ "$bad" = 0 ] || { grep -v '^200$' "$tmp/stream" | sort | uniq -c; grep -E '"status":[^2]' "$tmp/gw.out" | head -5; }
finish
