#!/bin/bash
# gateway_dashboard — the live dashboard (/dashboard and its event stream
# /dashboard/events) in front of simulators in two regions:
#   1. the stream: a snapshot on connect, a sample every second; the viewer
#      cap answers 503; other methods 405;
#   2. in headless Chromium (tests/lib/gateway/dashboard_browser.js): the page
#      loads with no console errors, shows the regions and endpoints, a health
#      fault within two seconds without a reload, a KV-usage fault moving the
#      bar and the spill, two tenants' traffic (one over its
#      requests_per_second: sheds) in the Tenants table, and reconnects after
#      the gateway restarts; screenshots in tests/out/dashboard/;
#   3. a viewer that stops reading while a storm of events goes out (sheds of
#      two objectives in turn: no two in a row fold) is dropped at its cap of
#      unsent output, counted; a viewer that reads stays;
#   4. dashboard.enabled: false (reload) -> 404.
. "${IG_TOP:-$(dirname "$0")/../..}/tests/lib/gateway/lib.sh"
gw_init gateway_dashboard
P=$base
sims_two_regions
write_cfg() {
	cat >"$tmp/gw.yaml" <<YAML
region: us-east5
listen: 127.0.0.1:$P
regions: { europe-west4: 95ms }
shutdown_grace: 20s
dashboard: { enabled: $1, max_viewers: 2 }
objectives:
  - { name: batch, priority: -1 }
  - { name: batch2, priority: -1 }
  - { name: waiter, priority: -1, queue: 2, queue_timeout: 3s }
tenants:
  - { name: alpha, api_keys: [key-alpha] }
  - { name: beta, api_keys: [key-beta], limits: { requests_per_second: 1 } }
${2:-}pools:
  - name: gemma-pool
    models: [gemma]
    endpoints:
      - { address: "$A", region: us-east5 }
      - { address: "$B", region: us-east5 }
      - { address: "$C", region: europe-west4 }
    health: { interval: 200ms, fast_interval: 100ms, timeout: 150ms, rise: 1, fall: 2 }
    metrics: { interval: 100ms, timeout: 300ms, stale: 1s }
    picker: { max_utilization: 0.6, return_margin: 0.1, region_hold: 1s }
routes:
  - { path: /v1/, pool: gemma-pool }
YAML
}
write_cfg true
gw_start "$tmp/gw.yaml"
U=$gw_url
wait_for "[ \"\$(ep_state $U $C)\" = up ]" 5

echo "== 1. the event stream"
curl -s -N --max-time 2.5 -D "$tmp/sh" "$U/dashboard/events" >"$tmp/s1" &
c1=$!
curl -s -N --max-time 2.5 "$U/dashboard/events" >"$tmp/s2" &
c2=$!
wait_for "[ -s $tmp/s1 ] && [ -s $tmp/s2 ]" 5
sleep 0.3
code=$(curl -s -o "$tmp/b" -w '%{http_code}' "$U/dashboard/events")
check '[ "$code" = 503 ]' "a third viewer over max_viewers 2 gets 503 ($code)"
check '[ "$(json $tmp/b d.error.code)" = 503 ]' "... with an OpenAI-style error"
check '[ "$(metric $U "infergate_dashboard_viewers ")" = 2 ]' "infergate_dashboard_viewers is 2"
wait $c1 $c2
check 'tr -d "\r" <$tmp/sh | grep -qi "^content-type: text/event-stream"' "the stream is text/event-stream"
check 'grep -q "^event: snapshot" $tmp/s1' "a snapshot on connect"
check '[ "$(grep -c "^event: sample" $tmp/s1)" -ge 2 ]' "then a sample every second ($(grep -c "^event: sample" $tmp/s1) in 2.5 s)"
snap=$(awk '/^event: snapshot/ { getline; sub(/^data: /, ""); print; exit }' "$tmp/s1")
check '[ "$(json "$snap" "d.state.region")" = us-east5 ]' "the snapshot names the region"
check '[ "$(json "$snap" "d.state.pools[0].endpoints.length")" = 3 ]' "... and the pool's three endpoints"
check '[ "$(json "$snap" "Array.isArray(d.history.t) && Array.isArray(d.events)")" = true ]' "... the history and the events"
check '[ "$(json "$snap" "d.state.tenants_configured + \" \" + d.state.tenants.map(t => t.name).join(\",\")")" = "2 alpha,beta" ]' \
	"... and the two tenants (the anonymous one left out: no api_keys let a request in without a tenant)"
wait_for "[ \"\$(metric $U 'infergate_dashboard_viewers ')\" = 0 ]" 3
check '[ "$(metric $U "infergate_dashboard_viewers ")" = 0 ]' "viewers that left are counted out"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$U/dashboard")
check '[ "$code" = 405 ]' "POST /dashboard is 405"
code=$(curl -s -o "$tmp/page" -w '%{http_code}' "$U/dashboard")
check '[ "$code" = 200 ] && grep -q "/dashboard/events" $tmp/page' "GET /dashboard serves the page"
check '! grep -Eq "(src|href)=\"https?:" $tmp/page' "the page loads nothing from elsewhere"
check '[ "$(json "$(curl -fs $U/status)" d.region)" = us-east5 ]' "/status stays"

echo "== 2. in the browser"
if [ ! -x /usr/bin/chromium ] || [ ! -d "$top/tests/node/node_modules/puppeteer-core" ]; then
	fail "chromium (/usr/bin/chromium) and puppeteer-core (tests/node) are needed: make deps"
else
	out="$top/tests/out/dashboard"
	GW_URL=$U SIM_A=$A SIM_B=$B SIM_C=$C OUT="$out" GW_PID=$gw_pid GW_LOG="$tmp/gw.log" \
	GW_CMD="[\"$GW\", \"-c\", \"$tmp/gw.yaml\"]" NEW_PID_FILE="$tmp/gw2.pid" TMPDIR="$tmp" \
	DOC_SHOT=${DASHBOARD_DOC_SHOT:-} timeout 120 node "$top/tests/lib/gateway/dashboard_browser.js" >"$tmp/browser.out" 2>&1
	rc=$?
	cat "$tmp/browser.out"
	failures=$((failures + $(grep -c '^FAIL' "$tmp/browser.out")))
	[ $rc = 0 ] || grep -q '^FAIL' "$tmp/browser.out" || fail "the browser run exited $rc"
	if [ -s "$tmp/gw2.pid" ]; then
		wait "$gw_pid" 2>/dev/null
		gw_pid=$(cat "$tmp/gw2.pid")
		pids="$pids $gw_pid"
	fi
fi

echo "== 2b. per-tenant traffic in the stream"
# beta (requests_per_second: 1) three times in a row: one admitted, the next shed.
for i in 1 2 3; do
	curl -s -o /dev/null -w '%{http_code}\n' "$U/v1/chat/completions" -H 'Authorization: Bearer key-beta' \
		-d '{"model":"gemma","messages":[{"role":"user","content":"x"}],"max_tokens":1}'
done >"$tmp/beta.codes"
check 'grep -q 429 $tmp/beta.codes' "beta over its requests_per_second gets 429 ($(tr '\n' ' ' <$tmp/beta.codes))"
curl -s -N --max-time 1.5 "$U/dashboard/events" >"$tmp/s2b"
snap=$(awk '/^event: snapshot/ { getline; sub(/^data: /, ""); print; exit }' "$tmp/s2b")
b_shed=$(json "$snap" 'd.state.tenants.find(t => t.name === "beta").shed_total')
b_req=$(json "$snap" 'd.state.tenants.find(t => t.name === "beta").requests_total')
check '[ "$b_shed" -ge 1 ] && [ "$b_req" -ge 3 ] && [ "$b_shed" = "$(grep -c 429 $tmp/beta.codes)" ]' \
	"the stream counts beta's requests ($b_req) and its sheds ($b_shed, as many as the 429s it got)"
check '[ "$(json "$snap" "d.events.some(e => e.kind === \"shed\" && e.subject === \"beta\" && /over its requests_per_second limit/.test(e.text))")" = true ]' \
	"the shed event names the tenant and its limit"
check '[ "$(json "$snap" "Array.isArray(d.history.tenants.beta.req_s) && d.history.tenants.beta.req_s.length > 0")" = true ]' \
	"the snapshot carries the tenants' last minute"

# More tenants than a message carries (24): the busiest go out, the count says how many qualify.
extra=""
for i in $(seq 3 30); do extra="$extra  - { name: t$i, api_keys: [key-t$i] }
"; done
write_cfg true "$extra"
kill -HUP "$gw_pid"
last_state() { # the newest state of a stream read for 1.2 s
	curl -s -N --max-time 1.2 "$U/dashboard/events" | awk '/^event: (snapshot|sample|state)/ { getline; sub(/^data: /, ""); l = $0 } END { print l }'
}
wait_for "[ \"\$(json \"\$(last_state)\" d.state.tenants_configured)\" = 30 ]" 8
for i in 1 2; do curl -s -o /dev/null "$U/v1/chat/completions" -H 'Authorization: Bearer key-t30' \
	-d '{"model":"gemma","messages":[{"role":"user","content":"x"}],"max_tokens":1}'; done
st=$(last_state)
check '[ "$(json "$st" "d.state.tenants.length + \" of \" + d.state.tenants_total + \" max \" + d.state.tenants_max")" = "24 of 30 max 24" ]' \
	"30 tenants: a message carries 24 ($(json "$st" "d.state.tenants.length + \" of \" + d.state.tenants_total"))"
check '[ "$(json "$st" "d.state.tenants.map(t => t.name).filter(n => [\"alpha\", \"beta\", \"t29\", \"t30\"].includes(n)).join(\",\")")" = alpha,beta,t30 ]' \
	"... the busiest: beta and t30 (the last in the file) had traffic; among the idle, the first in the file (alpha in, t29 out)"
check '[ "$(json "$st" "d.state.tenants.find(t => t.name === \"beta\").shed_total")" = "$b_shed" ]' \
	"... a reload keeps a tenant's totals (beta's sheds: $b_shed)"
if [ -x /usr/bin/chromium ] && [ -d "$top/tests/node/node_modules/puppeteer-core" ]; then
	GW_URL=$U OUT="$top/tests/out/dashboard" TMPDIR="$tmp" ONLY_TENANTS_CAPPED=1 \
		timeout 60 node "$top/tests/lib/gateway/dashboard_browser.js" >"$tmp/browser2.out" 2>&1
	cat "$tmp/browser2.out"
	failures=$((failures + $(grep -c '^FAIL' "$tmp/browser2.out")))
fi
write_cfg true
kill -HUP "$gw_pid"
wait_for "[ \"\$(json \"\$(last_state)\" d.state.tenants_configured)\" = 2 ]" 8

echo "== 3. a viewer that does not read is dropped"
for p in 1 2 3; do faults $((P + p)) '{"kv_usage":0.9}'; done
sleep 0.5
# One request of a queued objective waits for capacity: the stream shows it.
curl -s -o /dev/null --max-time 10 "$U/v1/chat/completions" -H 'x-infergate-objective: waiter' -H 'Authorization: Bearer key-alpha' \
	-d '{"model":"gemma","messages":[{"role":"user","content":"x"}],"max_tokens":1}' &
waiter=$!
sleep 0.5
curl -s -N --max-time 1.5 "$U/dashboard/events" >"$tmp/s3"
last=$(awk '/^event: (sample|state)/ { getline; sub(/^data: /, ""); l = $0 } END { print l }' "$tmp/s3")
check '[ "$(json "$last" "d.state.objectives.find(o => o.name === \"waiter\").queued")" = 1 ]' "the stream shows the objective's queue: 1 waiting"
check '[ "$(json "$last" "d.state.tenants.find(t => t.name === \"alpha\").queued")" = 1 ]' "... and its tenant's: alpha has 1 waiting"
wait $waiter
curl -s -N --max-time 150 "$U/dashboard/events" >/dev/null &
reader=$!
# A client with a small receive window that never reads after its head.
python3 - "$P" "$tmp/stalled.ok" <<'PY' &
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /dashboard/events HTTP/1.1\r\nHost: x\r\n\r\n")
open(sys.argv[2], "w").write("connected\n")
time.sleep(150)
PY
stalled=$!
pids="$pids $reader $stalled"
wait_for "[ -s $tmp/stalled.ok ]" 5
# Sheds (429 at once: every region over max_utilization), objectives in turn.
python3 - "$P" "$U" <<'PY' >"$tmp/storm.out" &
import http.client, sys, time, urllib.request
port = int(sys.argv[1])
c = http.client.HTTPConnection("127.0.0.1", port)
body = b'{"model":"gemma","messages":[{"role":"user","content":"x"}],"max_tokens":1}'
t_end = time.time() + 120  # about 25 s here: the kernel holds megabytes before the gateway does
n = codes429 = 0
while time.time() < t_end:
    c.request("POST", "/v1/chat/completions", body, {"content-type": "application/json", "authorization": "Bearer key-alpha",
              "x-infergate-objective": "batch" if n % 2 else "batch2"})
    r = c.getresponse(); r.read()
    n += 1
    codes429 += r.status == 429
    if n % 500 == 0:
        m = urllib.request.urlopen(sys.argv[2] + "/metrics").read().decode()
        if any(l.startswith("infergate_dashboard_viewers_dropped_total ") and float(l.split()[1]) >= 1 for l in m.splitlines()):
            break
print(n, codes429)
PY
storm=$!
wait $storm
read -r n_req n_429 <"$tmp/storm.out"
check '[ "${n_429:-0}" -gt 0 ] && [ "$n_429" = "$n_req" ]' "the storm: $n_req requests, all shed with 429"
check '[ "$(metric $U "infergate_dashboard_viewers_dropped_total ")" = 1 ]' "the viewer that stopped reading was dropped (infergate_dashboard_viewers_dropped_total 1)"
check 'kill -0 $reader 2>/dev/null' "the viewer that reads is still connected"
check '[ "$(metric $U "infergate_dashboard_viewers ")" = 1 ]' "one viewer left"
kill $reader $stalled 2>/dev/null
for p in 1 2 3; do faults $((P + p)) '{"kv_usage":null}'; done

echo "== 4. dashboard.enabled: false"
write_cfg false
kill -HUP "$gw_pid"
wait_for "[ \"\$(curl -s -o /dev/null -w '%{http_code}' $U/dashboard)\" = 404 ]" 5
check '[ "$(curl -s -o /dev/null -w "%{http_code}" $U/dashboard)" = 404 ]' "GET /dashboard is 404 once turned off"
check '[ "$(curl -s -o /dev/null -w "%{http_code}" $U/dashboard/events)" = 404 ]' "... and the stream too"
finish
