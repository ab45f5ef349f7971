#!/bin/bash
# gateway_stream — the proxy relays streams as they are produced and lets go
# when it must:
#   1. chunk by chunk: 12 tokens 200 ms apart; the first data line reaches the
#      client within 0.5 s while the whole stream takes over 2 s;
#   2. a client that disconnects closes the upstream: the simulator's
#      vllm:num_requests_running drops back to 0 promptly; the gateway logs 499;
#   3. a stream the upstream cuts after 3 chunks, in a pool with resume: false,
#      ends with an error event and [DONE], and no other endpoint ever saw the
#      request (no replay; resumes: gateway_resume);
#   4. timeouts: a silent upstream before the head is a 504; an upstream that
#      goes silent mid-stream ends the stream with an error event and [DONE].
. "${IG_TOP:-$(dirname "$0")/../..}/tests/lib/gateway/lib.sh"
gw_init gateway_stream
P=$base
sim_start slow $((P + 1)) --model m-slow --region us-east5 --itl-ms 200 --itl-growth 0
sim_start cut $((P + 2)) --model m-cut --region us-east5 --itl-ms 20
sim_start other $((P + 3)) --model m-cut --region europe-west4 --itl-ms 20
sim_start stall $((P + 4)) --model m-stall --region us-east5 --itl-ms 20
cat >"$tmp/gw.yaml" <<YAML
region: us-east5
listen: 127.0.0.1:$P
regions: { europe-west4: 90ms }
pools:
  - name: slow
    models: [m-slow]
    endpoints: [ { address: "127.0.0.1:$((P + 1))" } ]
    health: { interval: 200ms, timeout: 150ms }
  - name: cut
    models: [m-cut]
    resume: false
    endpoints:
      - { address: "127.0.0.1:$((P + 2))", region: us-east5 }
      - { address: "127.0.0.1:$((P + 3))", region: europe-west4 }
    health: { interval: 200ms, timeout: 150ms }
  - name: stall
    models: [m-stall]
    endpoints: [ { address: "127.0.0.1:$((P + 4))" } ]
    health: { interval: 1s, timeout: 500ms }
    backend: { idle_timeout: 700ms, tries: 1 }
YAML
gw_start "$tmp/gw.yaml" --access-log "$tmp/access.log"
U=$gw_url
wait_for "curl -fs $U/readyz >/dev/null" 5
body() { echo "{\"model\":\"$1\",\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story\"}],\"max_tokens\":$2,\"stream\":true,\"ignore_eos\":true}"; }

echo "== 1. chunk by chunk"
node "$NODE_READER" "$U/v1/chat/completions" "$(body m-slow 12)" >"$tmp/s1"
cat "$tmp/s1" | head -c 300; echo
check '[ "$(json $tmp/s1 "d.status === 200 && d.done && d.errors.length === 0")" = true ]' "the stream completes with [DONE] and no error"
check '[ "$(json $tmp/s1 "d.first_data_ms < 500")" = true ]' "the first data line arrives within 0.5 s ($(json $tmp/s1 'Math.round(d.first_data_ms)') ms)"
check '[ "$(json $tmp/s1 "d.total_ms >= 2000")" = true ]' "while the whole stream takes over 2 s ($(json $tmp/s1 'Math.round(d.total_ms)') ms)"
check '[ "$(json $tmp/s1 "d.headers[\"content-type\"].startsWith(\"text/event-stream\") && d.headers[\"transfer-encoding\"] === \"chunked\"")" = true ]' "text/event-stream relayed, chunked"
check '[ "$(json $tmp/s1 "d.headers[\"x-infergate-endpoint\"]")" = 127.0.0.1:$((P + 1)) ]' "x-infergate-endpoint on the stream"

echo "== 2. a client that leaves closes the upstream"
node "$NODE_READER" "$U/v1/chat/completions" "$(body m-slow 100)" --abort-after 3 >"$tmp/s2"
check '[ "$(json $tmp/s2 d.aborted)" = true ]' "the client read 3 events and closed its connection"
check 'wait_for "[ \"\$(metric http://127.0.0.1:$((P + 1)) vllm:num_requests_running)\" = 0 ]" 2' "the simulator's running requests drop back to 0 within 2 s"
check 'wait_for "grep -q \"\\\"status\\\":499\" $tmp/access.log" 2' "the access log says 499 (client left)"
check '[ "$(metric $U "infergate_requests_total{pool=\"slow\",region=\"us-east5\",endpoint=\"127.0.0.1:$((P + 1))\",code=\"499\"}")" = 1 ]' "infergate_requests_total counts it as 499"

echo "== 3. a stream cut by the upstream is not replayed"
faults $((P + 2)) '{"close_after_chunks": 3, "close_count": 1}'
node "$NODE_READER" "$U/v1/chat/completions" "$(body m-cut 20)" >"$tmp/s3"
cat "$tmp/s3" | head -c 600; echo
check '[ "$(json $tmp/s3 "d.status === 200 && d.headers[\"x-infergate-endpoint\"]")" = 127.0.0.1:$((P + 2)) ]' "served by the local endpoint"
check '[ "$(json $tmp/s3 "d.errors.length === 1 && d.errors[0].code === 502 && d.done")" = true ]' "the stream ends with one error event, then [DONE]"
check '[ "$(metric http://127.0.0.1:$((P + 3)) vllm:prompt_tokens_total)" = 0 ]' "the other endpoint never saw the request"
check '[ "$(metric $U infergate_retries_total)" = 0 ]' "no retry was counted"

echo "== 4. timeouts"
faults $((P + 4)) '{"hang": "request", "hang_path": "/v1/"}'
code=$(curl -s -o "$tmp/e" -w '%{http_code}' -m 10 $U/v1/chat/completions -d "$(body m-stall 5)")
check '[ $code = 504 ] && [ "$(json $tmp/e d.error.code)" = 504 ]' "no head within idle_timeout: 504 with an OpenAI error"
faults $((P + 4)) '{"hang": "head", "hang_path": "/v1/"}'
node "$NODE_READER" "$U/v1/chat/completions" "$(body m-stall 5)" >"$tmp/s4"
cat "$tmp/s4" | head -c 400; echo
check '[ "$(json $tmp/s4 "d.status === 200 && d.errors.length === 1 && d.errors[0].code === 504 && d.done")" = true ]' "silence mid-stream over idle_timeout: an error event (504), then [DONE]"
finish
