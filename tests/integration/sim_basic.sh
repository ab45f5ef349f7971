#!/usr/bin/env bash
# infergate-sim speaks vLLM's OpenAI API: /health, /v1/models, chat and
# completions (whole and streamed, line by line), the deterministic text and
# its continuation rule, stop strings, /metrics names and values, 404 and 400s.
. "$(dirname "$0")/../lib/sim.sh"
M="google/gemma-3-1b-it"
start_sim P --model "$M,alias-b" --model extra-c --region us-east5 --max-model-len 4096 \
	--ttft-ms 5 --itl-ms 2
U="http://127.0.0.1:$P"
T=$SIM_TMP

# /health: 200, empty body, region header
curl -s -D "$T/h" -o "$T/b" "$U/health"
head -1 "$T/h" | grep -q ' 200 ' || fail "/health status"
[ ! -s "$T/b" ] || fail "/health body not empty"
grep -qi '^x-sim-region: us-east5' "$T/h" || fail "x-sim-region header"
ok "/health 200, empty body, x-sim-region"

curl -s "$U/v1/models" >"$T/m"
jcheck "$T/m" 'd["object"]=="list" and [m["id"] for m in d["data"]]==["'$M'","alias-b","extra-c"] and all(m["object"]=="model" and m["max_model_len"]==4096 and m["owned_by"]=="vllm" and m["parent"] is None and "created" in m and "root" in m for m in d["data"])' "/v1/models lists every served name with max_model_len"

# Non-streaming chat
CHAT='{"model":"'$M'","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"tell me about the weather"}],"max_tokens":7}'
[ "$(post $P /v1/chat/completions "$CHAT" "$T/c1")" = 200 ] || fail "chat status"
jcheck "$T/c1" 'd["id"].startswith("chatcmpl-") and d["object"]=="chat.completion" and isinstance(d["created"],int) and d["model"]=="'$M'" and len(d["choices"])==1 and d["choices"][0]["index"]==0 and d["choices"][0]["message"]["role"]=="assistant" and d["choices"][0]["finish_reason"]=="length" and d["choices"][0]["stop_reason"] is None and d["choices"][0]["logprobs"] is None' "chat completion shape"
jcheck "$T/c1" 'd["usage"]["completion_tokens"]==7==len(d["choices"][0]["message"]["content"].split()) and d["usage"]["prompt_tokens"]==10 and d["usage"]["total_tokens"]==17' "usage counts words: 7 generated; 10 prompt (2 role markers + 7 words + the generation prompt)"
post $P /v1/chat/completions "$CHAT" "$T/c2" >/dev/null
python3 -c 'import json,sys; a,b=(json.load(open(f))["choices"][0]["message"]["content"] for f in sys.argv[1:]); sys.exit(a!=b)' "$T/c1" "$T/c2" || fail "same request, same text"
ok "deterministic: the same request gives the same text"
post $P /v1/chat/completions '{"model":"alias-b","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":3,"max_tokens":9}' "$T/c3" >/dev/null
jcheck "$T/c3" 'd["model"]=="alias-b" and d["usage"]["completion_tokens"]==3' "alias served; max_completion_tokens wins over max_tokens"
post $P /v1/chat/completions '{"messages":[{"role":"user","content":"hi"}]}' "$T/c4" >/dev/null
jcheck "$T/c4" 'd["model"]=="'$M'" and d["choices"][0]["finish_reason"]=="stop" and d["usage"]["completion_tokens"]>=1 and d["choices"][0]["message"]["content"].endswith(".")' "no model and no max_tokens: first model, ends at a natural stop"

# Non-streaming completions
post $P /v1/completions '{"model":"'$M'","prompt":"Once upon a time","max_tokens":5}' "$T/p1" >/dev/null
jcheck "$T/p1" 'd["id"].startswith("cmpl-") and d["object"]=="text_completion" and d["choices"][0]["text"].startswith(" ") and len(d["choices"][0]["text"].split())==5 and d["choices"][0]["finish_reason"]=="length" and d["usage"]=={"prompt_tokens":4,"total_tokens":9,"completion_tokens":5}' "text completion shape and usage"
post $P /v1/completions '{"prompt":"Once upon a time"}' "$T/p2" >/dev/null
jcheck "$T/p2" 'd["usage"]["completion_tokens"]==16' "completions default to 16 tokens"

# Continuation rule: P + its first k tokens continues with the rest of P's text.
FULL=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["choices"][0]["text"])' "$T/p2")
HEAD=$(python3 -c 'import sys; t=sys.argv[1]; w=t.split(" "); print(" ".join(w[:7]))' "$FULL")
python3 -c 'import json,sys; print(json.dumps({"prompt":"Once upon a time"+sys.argv[1],"max_tokens":10}))' "$HEAD" >"$T/req"
post $P /v1/completions "$(cat "$T/req")" "$T/p3" >/dev/null
python3 - "$T/p2" "$T/p3" "$HEAD" <<'PY' || fail "completions continuation"
import json, sys
full = json.load(open(sys.argv[1]))["choices"][0]["text"]
rest = json.load(open(sys.argv[2]))["choices"][0]["text"]
assert sys.argv[3] + rest == full, (sys.argv[3], rest, full)
PY
ok "completions: prompt + first 6 tokens continues with the remaining 10"
python3 - "$T/c1" "$M" >"$T/req" <<'PY'
import json, sys
full = json.load(open(sys.argv[1]))["choices"][0]["message"]["content"]
toks = full.split(" ")
print(json.dumps({"model": sys.argv[2], "messages": [{"role":"system","content":"be brief"},
  {"role":"user","content":"tell me about the weather"},{"role":"assistant","content":" ".join(toks[:3])}],
  "continue_final_message": True, "add_generation_prompt": False, "max_tokens": 4}))
PY
post $P /v1/chat/completions "$(cat "$T/req")" "$T/c5" >/dev/null
python3 - "$T/c1" "$T/c5" <<'PY' || fail "chat continuation"
import json, sys
full = json.load(open(sys.argv[1]))["choices"][0]["message"]["content"]
rest = json.load(open(sys.argv[2]))
t = rest["choices"][0]["message"]["content"]
head = " ".join(full.split(" ")[:3])
assert head + t == full, (head, t, full)
PY
ok "chat: continue_final_message continues the assistant text exactly"

# stop strings: cut before the stop, finish_reason stop, stop_reason the string
WORD=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["choices"][0]["text"].split()[3])' "$T/p2")
post $P /v1/completions '{"prompt":"Once upon a time","stop":["'"$WORD"'"]}' "$T/p4" >/dev/null
jcheck "$T/p4" 'd["choices"][0]["finish_reason"]=="stop" and d["choices"][0]["stop_reason"]=="'"$WORD"'" and "'"$WORD"'" not in d["choices"][0]["text"] and d["usage"]["completion_tokens"]>=1' "stop string cuts the text, stop_reason names it"

# Streaming chat, line by line
curl -sN -m 20 "$U/v1/chat/completions" -d '{"model":"'$M'","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"tell me about the weather"}],"max_tokens":7,"stream":true,"stream_options":{"include_usage":true}}' -D "$T/sh" >"$T/s1"
grep -qi '^content-type: text/event-stream' "$T/sh" || fail "stream content type"
python3 - "$T/s1" "$T/c1" <<'PY' || fail "chat stream shape"
import json, sys
raw = open(sys.argv[1]).read()
assert raw.endswith("data: [DONE]\n\n"), raw[-60:]
events = raw.split("\n\n")[:-1]
assert all(e.startswith("data: ") and "\n" not in e for e in events), "one data line per event"
js = [json.loads(e[6:]) for e in events[:-1]]
ids = {j["id"] for j in js}
assert len(ids) == 1 and ids.pop().startswith("chatcmpl-")
assert all(j["object"] == "chat.completion.chunk" for j in js)
first = js[0]["choices"][0]
assert first["delta"] == {"role": "assistant", "content": ""} and first["finish_reason"] is None
content = js[1:-1]
assert len(content) == 7, len(content)
for j in content[:-1]:
    c = j["choices"][0]
    assert set(c["delta"]) == {"content"} and c["finish_reason"] is None
last = content[-1]["choices"][0]
assert last["finish_reason"] == "length" and "stop_reason" in last and last["stop_reason"] is None
usage = js[-1]
assert usage["choices"] == [] and usage["usage"] == {"prompt_tokens": 10, "total_tokens": 17, "completion_tokens": 7}
text = "".join(j["choices"][0]["delta"]["content"] for j in content)
assert text == json.load(open(sys.argv[2]))["choices"][0]["message"]["content"], text
PY
ok "chat stream: role chunk, 7 content chunks, finish on the last, usage chunk, [DONE]; same text as whole"

curl -sN -m 20 "$U/v1/completions" -d '{"prompt":"Once upon a time","max_tokens":5,"stream":true}' >"$T/s2"
python3 - "$T/s2" "$T/p1" <<'PY' || fail "completion stream shape"
import json, sys
raw = open(sys.argv[1]).read()
events = raw.split("\n\n")[:-1]
assert events[-1] == "data: [DONE]"
js = [json.loads(e[6:]) for e in events[:-1]]
assert len(js) == 5 and all(j["object"] == "text_completion" and "usage" not in j for j in js)
assert js[-1]["choices"][0]["finish_reason"] == "length" and all(j["choices"][0]["finish_reason"] is None for j in js[:-1])
assert "".join(j["choices"][0]["text"] for j in js) == json.load(open(sys.argv[2]))["choices"][0]["text"]
PY
ok "completion stream: 5 text chunks, no role chunk, no usage without include_usage, [DONE]"

# Errors: 404 for an unknown model, 400s for bad fields, OpenAI error JSON
[ "$(post $P /v1/chat/completions '{"model":"nope","messages":[{"role":"user","content":"x"}]}' "$T/e")" = 404 ] || fail "unknown model status"
jcheck "$T/e" 'd["error"]["message"]=="The model `nope` does not exist." and d["error"]["type"]=="NotFoundError" and d["error"]["code"]==404' "404 The model \`nope\` does not exist."
bad() { # body, what
	code=$(post $P /v1/chat/completions "$1" "$T/e")
	[ "$code" = 400 ] || fail "$2: status $code"
	python3 -c 'import json,sys; e=json.load(open(sys.argv[1]))["error"]; sys.exit(not(e["type"]=="BadRequestError" and e["code"]==400 and e["message"]))' "$T/e" || fail "$2: error body"
	ok "400 $2: $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["error"]["message"][:90])' "$T/e")"
}
MSG='"messages":[{"role":"user","content":"x"}]'
bad '{"messages": [' "invalid JSON"
bad '[1,2]' "body not an object"
bad '{"model":"'$M'"}' "messages missing"
bad '{'"$MSG"',"stream_options":{"include_usage":true}}' "stream_options without stream"
bad '{'"$MSG"',"max_tokens":0}' "max_tokens 0"
bad '{'"$MSG"',"max_tokens":"ten"}' "max_tokens not an integer"
bad '{'"$MSG"',"temperature":-1}' "negative temperature"
bad '{'"$MSG"',"top_p":0}' "top_p 0"
bad '{'"$MSG"',"n":0}' "n 0"
bad '{'"$MSG"',"top_logprobs":2}' "top_logprobs without logprobs"
bad '{'"$MSG"',"max_tokens":5000}' "prompt + max_tokens over the context"
bad '{'"$MSG"',"continue_final_message":true}' "continue_final_message with add_generation_prompt"
bad '{'"$MSG"',"stream":"yes"}' "stream not a boolean"
bad '{"messages":[{"content":"x"}]}' "message without a role"
[ "$(post $P /v1/completions '{"max_tokens":3}' "$T/e")" = 400 ] || fail "completions without prompt"
ok "400 completions without a prompt"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$U/v1/chat/completions")" = 405 ] || fail "GET on completions"
ok "405 for GET on /v1/chat/completions"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$U/nowhere")" = 404 ] || fail "unknown path"
ok "404 for an unknown path"

# /metrics: vLLM names and labels, values that moved
curl -s "$U/metrics" >"$T/metrics"
L='{engine="0",model_name="'$M'"}'
for n in vllm:num_requests_running vllm:num_requests_waiting vllm:kv_cache_usage_perc \
	vllm:prefix_cache_queries_total vllm:prefix_cache_hits_total vllm:prompt_tokens_total \
	vllm:generation_tokens_total; do
	grep -qF "$n$L " "$T/metrics" || fail "metric $n$L missing"
done
for h in vllm:time_to_first_token_seconds vllm:inter_token_latency_seconds vllm:e2e_request_latency_seconds; do
	grep -qF "# TYPE $h histogram" "$T/metrics" || fail "histogram $h"
	grep -qF "${h}_bucket{engine=\"0\",model_name=\"$M\",le=\"+Inf\"}" "$T/metrics" || fail "$h +Inf bucket"
done
grep -qF 'vllm:time_to_first_token_seconds_bucket{engine="0",model_name="'$M'",le="0.001"}' "$T/metrics" || fail "ttft buckets"
grep -qF 'vllm:time_to_first_token_seconds_bucket{engine="0",model_name="'$M'",le="2560"}' "$T/metrics" || fail "ttft last bucket"
grep -qF 'vllm:e2e_request_latency_seconds_bucket{engine="0",model_name="'$M'",le="7680"}' "$T/metrics" || fail "e2e buckets"
grep -q '^vllm:cache_config_info{block_size="16",.*num_gpu_blocks="8192"} 1$' "$T/metrics" || fail "cache_config_info"
ok "metric names, labels, buckets and cache_config_info present"
gen=$(awk -v k="vllm:generation_tokens_total$L" 'index($0,k)==1 {print $NF}' "$T/metrics")
len=$(awk -v k='vllm:request_success_total{engine="0",finished_reason="length",model_name="'$M'"}' 'index($0,k)==1 {print $NF}' "$T/metrics")
[ "${gen:-0}" -ge 60 ] && [ "${len:-0}" -ge 8 ] || fail "counters did not move (generation $gen, length $len)"
post $P /v1/completions '{"prompt":"more","max_tokens":4}' "$T/x" >/dev/null
gen2=$(metric $P "vllm:generation_tokens_total$L")
[ "$gen2" -eq $((gen + 4)) ] || fail "generation_tokens_total $gen -> $gen2, expected +4"
ok "generation_tokens_total $gen -> $gen2 after 4 more tokens; request_success_total{length} $len"
