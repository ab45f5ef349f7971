#!/bin/bash
# gateway_llamacpp — failover with servers we did not write: two regions of
# simulators in llama.cpp's dialect (its metric names, any model name, a final
# assistant message continued as a prefill, its /health) behind the gateway,
# the pool's dialect left to auto (read from the metrics):
#   1. a stream whose last message is the client's assistant prefill, cut
#      after 5 events: resumed with the text on that message (llama.cpp
#      refuses a second assistant message at the end), one clean stream;
#   2. steady ~4 requests/s, half streaming, half without `model`; the local
#      server killed (SIGKILL) after 3 s: 0 failed, 0 broken streams.
. "${IG_TOP:-$(dirname "$0")/../..}/tests/lib/gateway/lib.sh"
gw_init gateway_llamacpp
P=$base
A=127.0.0.1:$((P + 1)); C=127.0.0.1:$((P + 2))
sim_start a $((P + 1)) --dialect llamacpp --model local.gguf --region us-east5 --itl-ms 25
sim_start c $((P + 2)) --dialect llamacpp --model remote.gguf --region europe-west4 --itl-ms 25
cat >"$tmp/gw.yaml" <<YAML
region: us-east5
listen: 127.0.0.1:$P
regions: { europe-west4: 95ms }
pools:
  - name: llama
    endpoints:
      - { address: "$A", region: us-east5 }
      - { address: "$C", region: europe-west4 }
    health: { path: /health, interval: 200ms, fast_interval: 100ms, timeout: 150ms, rise: 2, fall: 2 }
YAML
gw_start "$tmp/gw.yaml"
U=$gw_url
check 'curl -fs http://$A/metrics | grep -q "^llamacpp:requests_processing "' "the simulator writes llama.cpp's metric names"
check '[ "$(curl -fs http://$A/health)" = "{\"status\":\"ok\"}" ]' "its /health answers as llama.cpp's"
wait_for "[ \"\$(metric $U 'infergate_scrapes_total{pool=\"llama\",endpoint=\"$A\",result=\"ok\"}')\" -gt 0 ]" 5
check '[ "$(json "$(curl -fs $U/status)" "d.pools[0].dialect")" = llamacpp ]' "the pool's dialect, auto, is read from the metrics: llamacpp"

echo "== 1. a prefill stream cut mid-way is resumed on the client's message"
prefill='{"messages":[{"role":"user","content":"Name a colour."},{"role":"assistant","content":"The colour is"}],"max_tokens":30,"stream":true}'
curl -s -m 20 -N $U/v1/chat/completions -H 'content-type: application/json' -d "$prefill" >"$tmp/ref.sse"
faults $((P + 1)) '{"close_after_chunks": 5, "close_count": 1}'
curl -s -m 20 -N $U/v1/chat/completions -H 'content-type: application/json' -d "$prefill" >"$tmp/cut.sse"
text() { sed -n 's/^data: //p' "$1" | grep -v '^\[DONE\]' | node -e '
let t = ""; for (const l of require("fs").readFileSync(0, "utf8").split("\n")) { if (!l) continue;
const d = JSON.parse(l); for (const c of d.choices || []) t += (c.delta && c.delta.content) || ""; } console.log(t)'; }
check '[ "$(metric $U "infergate_resumes_total{pool=\"llama\",outcome=\"resumed\"}")" = 1 ]' "the cut stream was resumed"
check 'grep -q "^data: \[DONE\]" $tmp/cut.sse && ! grep -q "\"error\"" $tmp/cut.sse' "one clean stream: [DONE], no error event"
check '[ -n "$(text $tmp/cut.sse)" ] && [ "$(text $tmp/cut.sse)" = "$(text $tmp/ref.sse)" ]' "its text equals the uncut stream's"
check '[ "$(metric $U "infergate_resumes_total{pool=\"llama\",outcome=\"completed\"}")" = 1 ]' "the continuation completed (accepted by the llama.cpp dialect)"

echo "== 2. the local server killed under steady load"
n=0; cpids=""
start=$(date +%s%N)
for i in $(seq 1 28); do   # 4 per second for 7 s
	s=false; [ $((i % 2)) = 0 ] && s=true
	m=""; [ $((i % 4)) -lt 2 ] && m='"model":"anything",'
	curl -s -m 30 -o "$tmp/o.$i" -w '%{http_code}' $U/v1/chat/completions -H 'content-type: application/json' \
		-d "{$m\"messages\":[{\"role\":\"user\",\"content\":\"Request $i about rivers.\"}],\"max_tokens\":40,\"stream\":$s}" >"$tmp/c.$i" &
	cpids="$cpids $!"
	[ $i = 12 ] && kill -9 "$sim_pid_a"   # after 3 s
	sleep 0.25
done
for p in $cpids; do wait "$p"; done
failed=0; broken=0
for i in $(seq 1 28); do
	if [ "$(cat $tmp/c.$i)" != 200 ]; then failed=$((failed + 1)); echo "  $i: $(cat $tmp/c.$i) $(head -c 200 $tmp/o.$i)"; continue; fi
	if [ $((i % 2)) = 0 ] && { ! grep -q '^data: \[DONE\]' $tmp/o.$i || grep -q '"error"' $tmp/o.$i; }; then
		broken=$((broken + 1)); echo "  stream $i broken: $(tail -c 200 $tmp/o.$i)"
	fi
done
check '[ $failed = 0 ]' "28 requests, $failed failed"
check '[ $broken = 0 ]' "14 streams, $broken broken"
lines=$(grep -c "$A" "$tmp/gw.log")
check '[ "$lines" -le 10 ]' "$lines log lines about the killed server"
finish
