#!/bin/bash
# gateway_resume — a stream cut after its first byte continues on another
# endpoint and the client never knows (docs/resume.md), over infergate-sim,
# whose text rule makes a continuation the rest of the uninterrupted text:
#   1. chat through the official openai client: one break (close after 10
#      events) is resumed on the other region's endpoint; the client gets one
#      role chunk, the uninterrupted text, one finish_reason, one usage chunk
#      with the uninterrupted totals, no error; raw: one [DONE], one id/model/
#      created; access log resumes 1, infergate_resumes_total;
#   2. two breaks in a row: the first resume stays in the region (the other
#      local endpoint), the second goes to europe-west4; the text still equals;
#   3. completions resume (prompt + text so far) with the same text and usage;
#   4. usage not asked by the client: the stream has none (the gateway's own
#      include_usage is stripped), text equal;
#   5. every endpoint dies (each attempt cut): an error event and one [DONE]
#      within 5 s (resumes bounded by the endpoints left, then by max_resumes);
#   6. not resumed: a pool with resume: false, and a request of best_of 2 (as
#      n > 1): the error event and [DONE] of a broken stream, no replay.
. "${IG_TOP:-$(dirname "$0")/../..}/tests/lib/gateway/lib.sh"
gw_init gateway_resume
P=$base
CLIENT="$top/tests/lib/gateway/resume_client.js"
M=m,m-off,m-dead,m-cap
sim_start a $((P + 1)) --model $M --region us-east5 --itl-ms 10
sim_start b $((P + 2)) --model $M --region us-east5 --itl-ms 10
sim_start c $((P + 3)) --model $M --region europe-west4 --itl-ms 10
cat >"$tmp/gw.yaml" <<YAML
region: us-east5
listen: 127.0.0.1:$P
regions: { europe-west4: 90ms }
pools:
  - name: main
    models: [m]
    endpoints:
      - { address: "127.0.0.1:$((P + 1))", region: us-east5 }
      - { address: "127.0.0.1:$((P + 2))", region: us-east5 }
      - { address: "127.0.0.1:$((P + 3))", region: europe-west4 }
    health: { interval: 200ms, timeout: 150ms }
    passive: { failures: 0 }
  - name: dead
    models: [m-dead]
    endpoints:
      - { address: "127.0.0.1:$((P + 1))", region: us-east5 }
      - { address: "127.0.0.1:$((P + 2))", region: us-east5 }
      - { address: "127.0.0.1:$((P + 3))", region: europe-west4 }
    health: { interval: 200ms, timeout: 150ms }
    passive: { failures: 0 }
    backend: { max_resumes: 5 }
  - name: cap
    models: [m-cap]
    endpoints:
      - { address: "127.0.0.1:$((P + 1))", region: us-east5 }
      - { address: "127.0.0.1:$((P + 2))", region: us-east5 }
      - { address: "127.0.0.1:$((P + 3))", region: europe-west4 }
    health: { interval: 200ms, timeout: 150ms }
    passive: { failures: 0 }
    backend: { max_resumes: 1 }
  - name: off
    models: [m-off]
    resume: false
    endpoints:
      - { address: "127.0.0.1:$((P + 1))", region: us-east5 }
      - { address: "127.0.0.1:$((P + 3))", region: europe-west4 }
    health: { interval: 200ms, timeout: 150ms }
YAML
gw_start "$tmp/gw.yaml" --access-log "$tmp/access.log"
U=$gw_url
wait_for "curl -fs $U/readyz >/dev/null" 5
wait_for "[ \"\$(metric $U 'infergate_healthy_endpoints{pool=\"main\",region=\"us-east5\"}')\" = 2 ]" 5
clear_faults() { for p in 1 2 3; do curl -fs -o /dev/null -X DELETE "http://127.0.0.1:$((P + p))/sim/faults"; done; }
chat_body() { # model max_tokens include_usage [extra]
	echo "{\"model\":\"$1\",\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},{\"role\":\"user\",\"content\":\"Tell me about the weather in Paris\"}],\"max_tokens\":$2,\"ignore_eos\":true,\"stream\":true${3:+,\"stream_options\":{\"include_usage\":$3\}}${4:-}}"
}
ref_of() { node "$CLIENT" raw "$U" "$1" >"$tmp/ref.json"; }
same() { [ "$(json "$1" d.text)" = "$(json "$2" d.text)" ]; }

echo "== 1. one break, the official openai client"
body=$(chat_body m 40 true)
ref_of "$body"
check '[ "$(json $tmp/ref.json "d.done === 1 && d.errors.length === 0 && d.finishes === 1 && d.usage.completion_tokens === 40")" = true ]' "reference run against healthy simulators: 40 tokens, [DONE]"
faults $((P + 1)) '{"close_after_chunks": 10, "close_count": 1}'
# The other local endpoint is taken out, so the resume goes to europe-west4.
curl -fs -o /dev/null -X POST "http://127.0.0.1:$((P + 2))/sim/faults" -d '{"health_fail": true}'
wait_for "[ \"\$(metric $U 'infergate_healthy_endpoints{pool=\"main\",region=\"us-east5\"}')\" = 1 ]" 5
node "$CLIENT" openai "$U" "$body" >"$tmp/r1.json"
cat "$tmp/r1.json" | head -c 600; echo
check '[ "$(json $tmp/r1.json "d.exception === null && d.errors.length === 0")" = true ]' "the openai client raised nothing and saw no error event"
check '[ "$(json $tmp/r1.json "d.roles === 1 && d.finishes === 1 && d.finish_reason === \"length\" && d.usages === 1")" = true ]' "one role chunk, one finish_reason (length), one usage chunk"
check 'same $tmp/r1.json $tmp/ref.json' "the text equals the uninterrupted text ($(json $tmp/r1.json 'd.text.length') characters)"
check '[ "$(json $tmp/r1.json "JSON.stringify(d.usage)")" = "$(json $tmp/ref.json "JSON.stringify(d.usage)")" ]' "usage equals the uninterrupted run's: $(json $tmp/r1.json 'JSON.stringify(d.usage)')"
check '[ "$(json $tmp/r1.json "d.ids.length === 1 && d.models.length === 1 && d.createds.length === 1 && d.models[0] === \"m\"")" = true ]' "one id, one created, one model across the splice"
check '[ "$(metric http://127.0.0.1:$((P + 3)) vllm:prompt_tokens_total)" -gt 0 ]' "the continuation went to europe-west4"
check 'wait_for "grep -q \"\\\"resumes\\\":1\" $tmp/access.log" 2' "the access log names one resume"
check '[ "$(metric $U "infergate_resumes_total{pool=\"main\",outcome=\"resumed\"}")" = 1 ] && [ "$(metric $U "infergate_resumes_total{pool=\"main\",outcome=\"completed\"}")" = 1 ]' "infergate_resumes_total: resumed 1, completed 1"
check 'grep -q "resuming elsewhere (resume 1 of 2)" $tmp/gw.log' "the resume is logged"
clear_faults
wait_for "[ \"\$(metric $U 'infergate_healthy_endpoints{pool=\"main\",region=\"us-east5\"}')\" = 2 ]" 5

echo "== 2. two breaks: the same region first, then the next region"
for p in 1 2; do faults $((P + p)) '{"close_after_chunks": 12, "close_count": 1}'; done
c_before=$(metric http://127.0.0.1:$((P + 3)) vllm:prompt_tokens_total)
node "$CLIENT" raw "$U" "$body" >"$tmp/r2.json"
cat "$tmp/r2.json" | head -c 400; echo
check '[ "$(json $tmp/r2.json "d.done === 1 && d.errors.length === 0 && d.roles === 1 && d.finishes === 1 && d.usages === 1")" = true ]' "one role chunk, one finish, one usage, one [DONE], no error"
check 'same $tmp/r2.json $tmp/ref.json' "the text equals the uninterrupted text"
check '[ "$(json $tmp/r2.json "JSON.stringify(d.usage)")" = "$(json $tmp/ref.json "JSON.stringify(d.usage)")" ]' "usage equals the uninterrupted run's"
check '[ "$(metric http://127.0.0.1:$((P + 1)) vllm:prompt_tokens_total)" -gt 0 ] && [ "$(metric http://127.0.0.1:$((P + 2)) vllm:prompt_tokens_total)" -gt 0 ]' "both local endpoints served a part (the first resume stayed in us-east5)"
check '[ "$(metric http://127.0.0.1:$((P + 3)) vllm:prompt_tokens_total)" -gt "$c_before" ]' "the second resume went to europe-west4"
check 'wait_for "grep -q \"\\\"resumes\\\":2\" $tmp/access.log" 2' "the access log names two resumes"
clear_faults

echo "== 3. completions"
cbody='{"model":"m","prompt":"Once upon a time in a small town","max_tokens":30,"stream":true,"stream_options":{"include_usage":true}}'
ref_of "$cbody"; cp "$tmp/ref.json" "$tmp/cref.json"
for p in 1 2; do faults $((P + p)) '{"close_after_chunks": 9, "close_count": 1}'; done
node "$CLIENT" openai "$U" "$cbody" >"$tmp/r3.json"
cat "$tmp/r3.json" | head -c 400; echo
check '[ "$(json $tmp/r3.json "d.exception === null && d.errors.length === 0 && d.finishes === 1 && d.usages === 1")" = true ]' "the openai client gets a complete completions stream"
check 'same $tmp/r3.json $tmp/cref.json' "the text equals the uninterrupted text"
check '[ "$(json $tmp/r3.json "JSON.stringify(d.usage)")" = "$(json $tmp/cref.json "JSON.stringify(d.usage)")" ]' "usage equals the uninterrupted run's: $(json $tmp/r3.json 'JSON.stringify(d.usage)')"
clear_faults

echo "== 4. the client asked no usage"
nbody=$(chat_body m 25)
ref_of "$nbody"; cp "$tmp/ref.json" "$tmp/nref.json"
for p in 1 2; do faults $((P + p)) '{"close_after_chunks": 6, "close_count": 1}'; done
node "$CLIENT" raw "$U" "$nbody" >"$tmp/r4.json"
check '[ "$(json $tmp/r4.json "d.done === 1 && d.errors.length === 0 && d.usages === 0 && d.roles === 1 && d.finishes === 1")" = true ]' "no usage chunk reaches the client, one role, one finish, one [DONE]"
check 'same $tmp/r4.json $tmp/nref.json' "the text equals the uninterrupted text"
clear_faults

echo "== 5. every endpoint dies"
for p in 1 2 3; do faults $((P + p)) '{"close_after_chunks": 4}'; done
node "$CLIENT" raw "$U" "$(chat_body m-dead 60 true)" >"$tmp/r5.json"
cat "$tmp/r5.json" | head -c 500; echo
check '[ "$(json $tmp/r5.json "d.errors.length === 1 && d.done === 1 && d.roles === 1 && d.finishes === 0")" = true ]' "the stream ends with one error event and one [DONE]"
check '[ "$(json $tmp/r5.json "d.ms < 5000")" = true ]' "promptly: $(json $tmp/r5.json d.ms) ms (bound 5 s)"
check '[ "$(metric $U "infergate_resumes_total{pool=\"dead\",outcome=\"resumed\"}")" = 2 ] && [ "$(metric $U "infergate_resumes_total{pool=\"dead\",outcome=\"no_endpoint\"}")" = 1 ]' "two resumes (one per endpoint left), then no_endpoint"
node "$CLIENT" raw "$U" "$(chat_body m-cap 60 true)" >"$tmp/r5b.json"
check '[ "$(json $tmp/r5b.json "d.errors.length === 1 && d.done === 1")" = true ] && [ "$(metric $U "infergate_resumes_total{pool=\"cap\",outcome=\"exhausted\"}")" = 1 ]' "max_resumes 1: one resume, then exhausted: error event and [DONE]"
clear_faults

echo "== 6. not resumed"
faults $((P + 1)) '{"close_after_chunks": 5, "close_count": 1}'
c_before=$(metric http://127.0.0.1:$((P + 3)) vllm:prompt_tokens_total)
node "$CLIENT" raw "$U" "$(chat_body m-off 30 true)" >"$tmp/r6.json"
check '[ "$(json $tmp/r6.json "d.errors.length === 1 && d.errors[0].code === 502 && d.done === 1")" = true ]' "resume: false: an error event, then [DONE]"
check '[ "$(metric http://127.0.0.1:$((P + 3)) vllm:prompt_tokens_total)" = "$c_before" ]' "... and the request was not sent elsewhere"
for p in 1 2; do faults $((P + p)) '{"close_after_chunks": 5, "close_count": 1}'; done
node "$CLIENT" raw "$U" "$(chat_body m 30 true ',"best_of":2')" >"$tmp/r7.json"
check '[ "$(json $tmp/r7.json "d.errors.length === 1 && d.done === 1")" = true ]' "best_of 2 (several sequences, as n > 1): an error event, then [DONE]"
check '[ "$(metric http://127.0.0.1:$((P + 3)) vllm:prompt_tokens_total)" = "$c_before" ]' "... not resumed"
clear_faults
finish
