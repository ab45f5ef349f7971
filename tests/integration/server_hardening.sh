#!/usr/bin/env bash
# server_hardening: infergate-server against a hostile client (under the
# sanitizer build, tiny random checkpoint, max_model_len 512, an API key):
#  - /tokenize and /detokenize need the key, as /v1 does;
#  - a 60 MiB prompt and an 8 MB /tokenize are refused with vLLM's
#    context-length 400 before anything is tokenized, while /health keeps
#    answering at once;
#  - every integer field beyond 32 or 64 bits meets its range check and
#    vLLM's message (4294967301 is not token 5), a table of cases;
#  - prompt_logprobs with n choices is computed once per prompt, bounded by
#    SERVER_MAX_PROMPT_LOGPROBS_ROWS, and a one-token request sent while such
#    a request runs is answered promptly.
. "$(dirname "$0")/../lib/server/lib.sh"
make_model "$T/m" tiny 1
start_server P --model "$T/m" --served-model-name tiny --max-model-len 512 --api-key sekrit
K='Authorization: Bearer sekrit'
# kpost PATH JSON OUT [max seconds]: post with the key; prints the status.
kpost() { curl -s -m "${4:-120}" -o "$3" -w '%{http_code}' -H "$K" -H 'Content-Type: application/json' --data-binary "$2" "http://127.0.0.1:$P$1"; }

echo "== the key guards /tokenize and /detokenize"
[ "$(post "$P" /tokenize '{"prompt":"Hello"}' "$T/t0")" = 401 ] || fail "/tokenize without the key: $(cat "$T/t0")"
[ "$(post "$P" /detokenize '{"tokens":[2]}' "$T/t1")" = 401 ] || fail "/detokenize without the key: $(cat "$T/t1")"
[ "$(kpost /tokenize '{"prompt":"Hello"}' "$T/t2")" = 200 ] || fail "/tokenize with the key: $(cat "$T/t2")"
[ "$(kpost /detokenize '{"tokens":[2,9259]}' "$T/t3")" = 200 ] || fail "/detokenize with the key: $(cat "$T/t3")"
[ "$(get "$P" /health "$T/h")" = 200 ] || fail "/health needs no key"
ok "401 on /tokenize and /detokenize without the key; 200 with it; /health open"

echo "== huge prompts are refused before tokenizing; /health answers meanwhile"
python3 -c 'import json; print(json.dumps({"model":"tiny","prompt":"hello world "*((60<<20)//12),"max_tokens":1}))' >"$T/huge.json"
python3 -c 'import json; print(json.dumps({"prompt":"x y "*(2<<20)}))' >"$T/tok8.json"
python3 -c 'import json; print(json.dumps({"model":"tiny","messages":[{"role":"user","content":"abc "*8000}]}))' >"$T/chat.json"
python3 -c 'import json; print(json.dumps({"messages":[{"role":["user","assistant"][i%2],"content":""} for i in range(20001)]}))' >"$T/many.json"
curl -s -m 120 -o "$T/huge.out" -w '%{http_code} %{time_total}' -H "$K" -H 'Content-Type: application/json' \
	--data-binary @"$T/huge.json" "http://127.0.0.1:$P/v1/completions" >"$T/huge.code" &
HUGE=$!
BG_PIDS="$BG_PIDS $HUGE"
slow=0
for _ in $(seq 1 20); do
	# Every /health must answer within a second while the huge body is handled.
	code=$(curl -s -m 1 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P/health")
	[ "$code" = 200 ] || slow=$((slow + 1))
	kill -0 "$HUGE" 2>/dev/null || break
	sleep 0.2
done
wait "$HUGE"
[ "$slow" = 0 ] || fail "/health went unanswered $slow times while a 60 MiB prompt was handled"
read -r code secs <"$T/huge.code"
[ "$code" = 400 ] || fail "60 MiB prompt: $code $(head -c 300 "$T/huge.out")"
grep -q "This model's maximum context length is 512 tokens" "$T/huge.out" || fail "60 MiB prompt message: $(head -c 300 "$T/huge.out")"
jcheck "$T/huge.out" 'd["error"]["code"]==400 and d["error"]["type"]=="BadRequestError"' "vLLM's error shape"
ok "60 MiB prompt: 400 in ${secs}s, /health answered throughout"
start=$(date +%s%N)
[ "$(curl -s -m 30 -o "$T/tok8.out" -w '%{http_code}' -H "$K" --data-binary @"$T/tok8.json" "http://127.0.0.1:$P/tokenize")" = 400 ] ||
	fail "8 MB /tokenize: $(head -c 300 "$T/tok8.out")"
ms=$(( ($(date +%s%N) - start) / 1000000 ))
grep -q "maximum context length is 512 tokens" "$T/tok8.out" || fail "8 MB /tokenize message: $(cat "$T/tok8.out")"
[ "$ms" -lt 3000 ] || fail "8 MB /tokenize took $ms ms"
[ "$(curl -s -m 30 -o "$T/chat.out" -w '%{http_code}' -H "$K" --data-binary @"$T/chat.json" "http://127.0.0.1:$P/v1/chat/completions")" = 400 ] ||
	fail "32 KB chat message: $(head -c 300 "$T/chat.out")"
grep -q "maximum context length is 512 tokens" "$T/chat.out" || fail "long chat message: $(cat "$T/chat.out")"
start=$(date +%s%N)
[ "$(curl -s -m 30 -o "$T/many.out" -w '%{http_code}' -H "$K" --data-binary @"$T/many.json" "http://127.0.0.1:$P/v1/chat/completions")" = 400 ] ||
	fail "20001 empty messages: $(head -c 300 "$T/many.out")"
grep -q "maximum context length is 512 tokens" "$T/many.out" || fail "20001 empty messages: $(head -c 300 "$T/many.out")"
ok "8 MB /tokenize refused in $ms ms; a chat prompt over 512 x 32 bytes, and 20001 empty messages, refused in $(( ($(date +%s%N) - start) / 1000000 )) ms"

echo "== a long context: prompts within the bound are tokenized off the loop"
# 131072 positions: a 2 MiB prompt is within 131072 x 32 bytes, so it is
# tokenized (about half a million tokens, seconds under the sanitizers), both
# by completions (then refused for its length) and by /tokenize; /health
# must answer throughout.
make_model "$T/m128k" tiny 1 --max-pos 131072
start_server P2 --model "$T/m128k" --served-model-name tiny --max-model-len 131072 --num-kv-blocks 8200
python3 -c 'import json; print(json.dumps({"prompt":"hello world, this is some text "*((2<<20)//31),"max_tokens":1}))' >"$T/long.json"
curl -s -m 300 -o "$T/long.out" -w '%{http_code} %{time_total}' --data-binary @"$T/long.json" \
	"http://127.0.0.1:$P2/v1/completions" >"$T/long.code" &
LONG=$!
python3 -c 'import json; print(json.dumps({"prompt":"hello world, this is some text "*((2<<20)//31)}))' >"$T/ltok.json"
curl -s -m 300 -o "$T/ltok.out" -w '%{http_code}' --data-binary @"$T/ltok.json" "http://127.0.0.1:$P2/tokenize" >"$T/ltok.code" &
LTOK=$!
BG_PIDS="$BG_PIDS $LONG $LTOK"
slow=0 polls=0
for _ in $(seq 1 600); do
	kill -0 "$LONG" 2>/dev/null || kill -0 "$LTOK" 2>/dev/null || break
	code=$(curl -s -m 1 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P2/health")
	[ "$code" = 200 ] || slow=$((slow + 1))
	polls=$((polls + 1))
	sleep 0.2
done
wait "$LONG" "$LTOK"
[ "$(cat "$T/ltok.code")" = 200 ] || fail "/tokenize of 2 MiB: $(head -c 300 "$T/ltok.out")"
jcheck "$T/ltok.out" 'd["count"]==len(d["tokens"])>400000 and d["max_model_len"]==131072' "/tokenize of 2 MiB"
read -r code secs <"$T/long.code"
[ "$code" = 400 ] && grep -q "maximum context length is 131072 tokens" "$T/long.out" || fail "2 MiB prompt at 131072: $code $(head -c 300 "$T/long.out")"
[ "$slow" = 0 ] || fail "/health went unanswered $slow of $polls times while a 2 MiB prompt was tokenized"
ok "2 MiB prompt and /tokenize tokenized off the loop (${secs}s, then the context 400); /health answered all $polls polls"
stop_server "$P2_PID"

echo "== integer fields beyond 32 and 64 bits"
# status | body | a substring of the message (or of the answer)
while IFS='|' read -r want body msg; do
	[ -n "$want" ] || continue
	got=$(kpost /v1/completions "$body" "$T/int.out")
	[ "$got" = "$want" ] && grep -qF -- "$msg" "$T/int.out" || fail "$body: $got $(head -c 400 "$T/int.out") (wanted $want, \"$msg\")"
done <<'CASES'
400|{"prompt":[4294967301],"max_tokens":1}|Token id 4294967301 is out of vocabulary
400|{"prompt":[[2,4294967301]],"max_tokens":1}|Token id 4294967301 is out of vocabulary
400|{"prompt":[2,99999999999999999999],"max_tokens":1}|Token id 100000000000000000000 is out of vocabulary
400|{"prompt":[2,-4294967301],"max_tokens":1}|token ids must be non-negative integers
400|{"prompt":"Hi","max_tokens":99999999999999999999}|100000000000000000000 in the completion
400|{"prompt":"Hi","max_tokens":9223372036854775807}|9223372036854775807 in the completion
400|{"prompt":"Hi","max_tokens":-99999999999999999999}|max_tokens must be at least 1, got -100000000000000000000.
400|{"prompt":"Hi","max_tokens":2.5}|max_tokens: Input should be a valid integer
400|{"prompt":"Hi","n":4294967297}|n must be at most 128, got 4294967297.
400|{"prompt":"Hi","seed":9223372036854775808}|seed: Input should be less than or equal to 9223372036854775807
400|{"prompt":"Hi","top_k":-4294967296}|top_k must be -1 (disable), or at least 1, got -4294967296.
400|{"prompt":"Hi","logprobs":4294967297}|Requested sample logprobs of 4294967297, which is greater than max allowed: 20
400|{"prompt":"Hi","logit_bias":{"4294967301":5}}|token_id(s) [4294967301] in logit_bias contain out-of-vocab token ids
400|{"prompt":"Hi","logit_bias":{"99999999999999999999999":5}}|token_id(s) [99999999999999999999999] in logit_bias
400|{"prompt":"Hi","stop_token_ids":[4294967297]}|stop_token_ids: each must be a token id of the vocabulary
400|{"prompt":"Hi","stop_token_ids":[1e30]}|stop_token_ids: each must be a token id of the vocabulary
400|{"prompt":"Hi","max_tokens":5,"min_tokens":99999999999999999999}|min_tokens must be less than or equal to max_tokens=5, got 100000000000000000000.
400|{"prompt":"Hi","min_tokens":-1e20}|min_tokens must be greater than or equal to 0, got -100000000000000000000.
400|{"prompt":"Hi","prompt_logprobs":4294967296}|prompt_logprobs must be between 0 and 20, got 4294967296.
400|{"prompt":"Hi","truncate_prompt_tokens":99999999999999999999}|truncate_prompt_tokens value (100000000000000000000) is greater than max_model_len (512)
400|{"prompt":"Hi","truncate_prompt_tokens":-2}|truncate_prompt_tokens: Input should be greater than or equal to -1
200|{"prompt":[2,9259,1902,4495],"truncate_prompt_tokens":2,"max_tokens":1}|"prompt_tokens":2,
200|{"prompt":[2,9259],"max_tokens":1.0,"n":2.0,"seed":4294967301}|"completion_tokens":2,
CASES
[ "$(kpost /detokenize '{"tokens":[4294967301]}' "$T/dt")" = 400 ] || fail "/detokenize 4294967301: $(cat "$T/dt")"
[ "$(kpost /v1/chat/completions '{"messages":[{"role":"user","content":"Hi"}],"max_completion_tokens":99999999999999999999}' "$T/cm")" = 400 ] &&
	grep -qF '100000000000000000000 in the completion' "$T/cm" || fail "chat max_completion_tokens 1e20: $(cat "$T/cm")"
[ "$(kpost /v1/chat/completions '{"messages":[{"role":"user","content":"Hi"}],"logprobs":true,"top_logprobs":4294967296}' "$T/cl")" = 400 ] &&
	grep -qF 'Requested sample logprobs of 4294967296' "$T/cl" || fail "chat top_logprobs 2^32: $(cat "$T/cl")"
ok "every integer field range-checked before narrowing, with vLLM's message"

echo "== prompt_logprobs with n: once per prompt, bounded, and nobody starves"
python3 -c 'import json; print(json.dumps({"prompt":[2]+[1000+(i*7919)%20000 for i in range(199)],"n":16,"max_tokens":1,"prompt_logprobs":20,"temperature":1}))' >"$T/heavy.json"
python3 -c 'import json; print(json.dumps({"prompt":[2]+[1000+(i*7919)%20000 for i in range(199)],"n":64,"max_tokens":1,"prompt_logprobs":20}))' >"$T/over.json"
[ "$(curl -s -m 30 -o "$T/over.out" -w '%{http_code}' -H "$K" --data-binary @"$T/over.json" "http://127.0.0.1:$P/v1/completions")" = 400 ] &&
	grep -q 'at most 8192 rows' "$T/over.out" || fail "n=64 x 200 prompt tokens with prompt_logprobs: $(head -c 300 "$T/over.out")"
start=$(date +%s%N)
curl -s -m 300 -o "$T/heavy.out" -w '%{http_code}' -H "$K" -H 'Content-Type: application/json' \
	--data-binary @"$T/heavy.json" "http://127.0.0.1:$P/v1/completions" >"$T/heavy.code" &
HEAVY=$!
BG_PIDS="$BG_PIDS $HEAVY"
sleep 0.5
s0=$(date +%s%N)
[ "$(kpost /v1/completions '{"prompt":[2,9259],"max_tokens":1}' "$T/short.out" 60)" = 200 ] || fail "short request: $(cat "$T/short.out")"
short_ms=$(( ($(date +%s%N) - s0) / 1000000 ))
wait "$HEAVY"
heavy_ms=$(( ($(date +%s%N) - start) / 1000000 ))
[ "$(cat "$T/heavy.code")" = 200 ] || fail "heavy request: $(head -c 300 "$T/heavy.out")"
python3 - "$T/heavy.out" <<'PY' || fail "prompt_logprobs of the n choices"
import json, sys
d = json.load(open(sys.argv[1]))
ch = d["choices"]
assert len(ch) == 16
p0 = ch[0]["prompt_logprobs"]
assert len(p0) == 200 and p0[0] is None and all(len(e) >= 20 for e in p0[1:]), len(p0)
assert all(c["prompt_logprobs"] == p0 for c in ch), "choices disagree"
PY
echo "short request ${short_ms} ms while the heavy one ran (${heavy_ms} ms in all)"
# Relative to the heavy request's own time, so that a loaded machine does not
# decide: before, the short one waited for every choice's prompt rows (n times
# the work), finishing with or after the heavy one.
[ $((short_ms * 3)) -lt "$heavy_ms" ] || fail "a one-token request waited ${short_ms} ms behind prompt_logprobs x n (${heavy_ms} ms)"
ok "prompt_logprobs shared by 16 choices, n x prompt bounded; a concurrent one-token request in ${short_ms} ms"
stop_server "$P_PID"
