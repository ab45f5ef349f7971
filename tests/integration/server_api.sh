#!/usr/bin/env bash
# server_api: infergate-server's OpenAI/vLLM API on a tiny random checkpoint
# (under the sanitizer build): the small endpoints, completions (string, list
# of strings, token ids, lists of token ids, echo), chat (whole and streamed,
# with usage), logprobs in both shapes, echo with logprobs (the prompt's
# log-probabilities), n > 1, seeds, stop strings (whole and streamed alike),
# stop token ids, logit_bias and min_tokens, continue_final_message (and greedy
# resumes reproducing an uninterrupted run), and every bad input (tools, guided
# decoding and images among them: refused, not ignored) with vLLM's status and
# message in the nested OpenAI error shape.
. "$(dirname "$0")/../lib/server/lib.sh"
make_model "$T/m" tiny 1
start_server P --model "$T/m" --served-model-name tiny --max-model-len 512
U="http://127.0.0.1:$P"

echo "== small endpoints"
[ "$(get "$P" /health "$T/h")" = 200 ] && [ ! -s "$T/h" ] || fail "/health not 200 with an empty body"
ok "/health 200, empty body"
[ "$(get "$P" /version "$T/v")" = 200 ] && jcheck "$T/v" '"version" in d' "/version"
[ "$(get "$P" /v1/models "$T/m.json")" = 200 ] || fail "/v1/models"
jcheck "$T/m.json" 'd["object"]=="list" and d["data"][0]["id"]=="tiny" and d["data"][0]["max_model_len"]==512 and d["data"][0]["parent"] is None' "/v1/models shape"
[ "$(get "$P" /v1/models/tiny "$T/m1")" = 200 ] || fail "/v1/models/tiny"
jcheck "$T/m1" 'd["id"]=="tiny" and d["object"]=="model" and d["max_model_len"]==512' "/v1/models/tiny shape"
[ "$(get "$P" /v1/models/ti%6Ey "$T/m2")" = 200 ] || fail "/v1/models/ti%6Ey (percent-encoded)"
[ "$(get "$P" /v1/models/nope "$T/m3")" = 404 ] && grep -q 'The model `nope` does not exist.' "$T/m3" || fail "/v1/models/nope: $(cat "$T/m3")"
ok "/v1/models/{id}: the card (percent-encoded id too), 404 for an unknown id"
ok "/version, /v1/models (id tiny, max_model_len 512)"
[ "$(post "$P" /tokenize '{"prompt":"Hello world"}' "$T/t")" = 200 ] || fail "/tokenize"
jcheck "$T/t" 'd["tokens"][0]==2 and d["count"]==len(d["tokens"]) and d["max_model_len"]==512' "/tokenize shape"
toks=$(jget "$T/t" 'd["tokens"][1:]')
[ "$(post "$P" /detokenize "{\"tokens\":$toks}" "$T/d")" = 200 ] || fail "/detokenize"
jcheck "$T/d" 'd["prompt"]=="Hello world"' "/detokenize round trip"
[ "$(post "$P" /tokenize '{"messages":[{"role":"user","content":"Hi"}]}' "$T/t2")" = 200 ] || fail "/tokenize messages"
jcheck "$T/t2" 'd["tokens"][:2]==[2,105] and d["tokens"][-3:][0]==105' "/tokenize of messages renders the template"
ok "/tokenize (prompt and messages) and /detokenize round trip"

echo "== completions"
[ "$(post "$P" /v1/completions '{"model":"tiny","prompt":"Hello world","temperature":0}' "$T/c1")" = 200 ] || fail "completion"
jcheck "$T/c1" 'd["id"].startswith("cmpl-") and d["object"]=="text_completion" and d["model"]=="tiny" and d["choices"][0]["finish_reason"]=="length" and d["choices"][0]["stop_reason"] is None and d["usage"]["completion_tokens"]==16 and d["usage"]["prompt_tokens"]==3 and d["usage"]["total_tokens"]==19' "completion shape, default 16 tokens"
ok "string prompt: 16 tokens by default, usage $(jget "$T/c1" 'd["usage"]')"
text1=$(jget "$T/c1" 'd["choices"][0]["text"]')
ids=$(jget "$T/t" 'd["tokens"]')
[ "$(post "$P" /v1/completions "{\"prompt\":$ids,\"temperature\":0}" "$T/c2")" = 200 ] || fail "token-id prompt"
jcheck "$T/c2" "d['choices'][0]['text']==$(python3 -c 'import json,sys;print(repr(sys.argv[1]))' "$text1")" "token ids give the same greedy text as the string"
[ "$(post "$P" /v1/completions "{\"prompt\":[\"Hello world\",\"Other prompt here\"],\"max_tokens\":4,\"temperature\":0}" "$T/c3")" = 200 ] || fail "list of prompts"
jcheck "$T/c3" 'len(d["choices"])==2 and [c["index"] for c in d["choices"]]==[0,1] and d["usage"]["completion_tokens"]==8' "two prompts, two choices"
[ "$(post "$P" /v1/completions "{\"prompt\":[$ids,$ids],\"max_tokens\":4,\"temperature\":0}" "$T/c4")" = 200 ] || fail "list of token-id lists"
jcheck "$T/c4" 'len(d["choices"])==2 and d["choices"][0]["text"]==d["choices"][1]["text"] and d["usage"]["prompt_tokens"]==6' "token-id lists"
[ "$(post "$P" /v1/completions '{"prompt":"Hello world","max_tokens":3,"echo":true,"temperature":0}' "$T/c5")" = 200 ] || fail "echo"
jcheck "$T/c5" 'd["choices"][0]["text"].startswith("Hello world") and len(d["choices"][0]["text"])>11' "echo"
ok "token ids = string; a list of strings and of token-id lists give one choice each; echo"
[ "$(post "$P" /v1/completions '{"prompt":"Hello","max_tokens":4,"logprobs":3,"temperature":0}' "$T/c6")" = 200 ] || fail "logprobs"
jcheck "$T/c6" 'all(len(d["choices"][0]["logprobs"][k])==4 for k in ("tokens","token_logprobs","text_offset","top_logprobs")) and all(len(t)>=3 for t in d["choices"][0]["logprobs"]["top_logprobs"]) and d["choices"][0]["logprobs"]["token_logprobs"][0]<=0' "completion logprobs shape"
ok "completions logprobs: tokens, token_logprobs, text_offset, top_logprobs (3+)"
# echo with logprobs: the prompt's tokens get theirs (null for the first), the
# values a generation reported for the same tokens; prompts over one 16-row chunk.
LONG="Once upon a time, in a land far away, there lived a very old king who had three sons and a"
[ "$(post "$P" /v1/completions "{\"prompt\":\"$LONG\",\"max_tokens\":6,\"temperature\":0,\"logprobs\":0,\"return_tokens_as_token_ids\":true}" "$T/pl1")" = 200 ] || fail "generation for prompt logprobs"
[ "$(post "$P" /tokenize "{\"prompt\":\"$LONG\"}" "$T/pl0")" = 200 ] || fail "tokenize for prompt logprobs"
ptoks=$(python3 -c 'import json,sys; t=json.load(open(sys.argv[1]))["tokens"]; g=[int(x.split(":")[1]) for x in json.load(open(sys.argv[2]))["choices"][0]["logprobs"]["tokens"]]; print(json.dumps(t+g[:5]))' "$T/pl0" "$T/pl1")
for k in 2 3; do
	[ "$(post "$P" /v1/completions "{\"prompt\":$ptoks,\"max_tokens\":1,\"temperature\":0,\"echo\":true,\"logprobs\":2,\"return_tokens_as_token_ids\":true}" "$T/pl$k")" = 200 ] || fail "echo with logprobs: $(cat "$T/pl$k")"
done
python3 - "$T/pl0" "$T/pl1" "$T/pl2" "$T/pl3" <<'PY' || fail "prompt logprobs"
import json, sys
p = json.load(open(sys.argv[1]))["tokens"]
gen = json.load(open(sys.argv[2]))["choices"][0]["logprobs"]
a = json.load(open(sys.argv[3]))["choices"][0]["logprobs"]
b = json.load(open(sys.argv[4]))["choices"][0]["logprobs"]
n = len(p) + 5 + 1
assert len(p) > 16, len(p)
assert all(len(a[k]) == n for k in ("tokens", "token_logprobs", "text_offset", "top_logprobs")), {k: len(a[k]) for k in a}
assert a["token_logprobs"][0] is None and a["top_logprobs"][0] is None
assert a["tokens"][:len(p)] == ["token_id:%d" % t for t in p]
assert all(x <= 0 for x in a["token_logprobs"][1:])
for i in range(1, n):
    top = a["top_logprobs"][i]
    assert a["tokens"][i] in top and len(top) >= 2, (i, top)
    assert abs(top[a["tokens"][i]] - a["token_logprobs"][i]) < 1e-6
for k in range(6):   # the generated tokens: 5 in the prompt now, then the 6th generated again
    want, got = gen["token_logprobs"][k], a["token_logprobs"][len(p) + k]
    assert a["tokens"][len(p) + k] == gen["tokens"][k], (k, a["tokens"][len(p) + k], gen["tokens"][k])
    assert abs(want - got) <= 1e-3 * max(1, abs(want)), (k, want, got)
assert a["token_logprobs"] == b["token_logprobs"], "a second run (prefix cache warm) differs"
assert a["text_offset"] == sorted(a["text_offset"])
PY
[ "$(post "$P" /v1/completions "{\"prompt\":$ptoks,\"max_tokens\":1,\"temperature\":0,\"prompt_logprobs\":2}" "$T/pl4")" = 200 ] || fail "prompt_logprobs: $(cat "$T/pl4")"
[ "$(post "$P" /v1/chat/completions '{"messages":[{"role":"user","content":"Hi there"}],"max_tokens":1,"prompt_logprobs":1}' "$T/pl5")" = 200 ] || fail "chat prompt_logprobs: $(cat "$T/pl5")"
python3 - "$T/pl2" "$T/pl4" "$T/pl5" <<'PY' || fail "prompt_logprobs shape"
import json, sys
a = json.load(open(sys.argv[1]))["choices"][0]["logprobs"]
c = json.load(open(sys.argv[2]))["choices"][0]["prompt_logprobs"]
ch = json.load(open(sys.argv[3]))
assert c[0] is None and len(c) == len(a["tokens"]) - 1
for i in range(1, len(c)):
    tok = a["tokens"][i].split(":")[1]
    assert list(c[i])[0] == tok and abs(c[i][tok]["logprob"] - a["token_logprobs"][i]) < 1e-6, (i, c[i])
    ranks = sorted(v["rank"] for v in c[i].values())   # the token itself, then the top 2
    assert c[i][tok]["rank"] >= 1 and ranks[:2] == [1, 2] and len(c[i]) in (2, 3), c[i]
    assert all("decoded_token" in v for v in c[i].values())
p = ch["prompt_logprobs"]
assert p[0] is None and len(p) == ch["usage"]["prompt_tokens"] and all(len(x) in (1, 2) for x in p[1:]), p
PY
ok "prompt_logprobs (vLLM's field): the same values as echo, each token's rank and the top alternatives; chat too"
ok "echo + logprobs: $(jget "$T/pl2" 'len(d["choices"][0]["logprobs"]["tokens"])') tokens, the first null, each prompt token's logprob = the one its generation reported; the same with the prefix cached"
[ "$(post "$P" /v1/completions '{"prompt":"Hello","max_tokens":8,"n":3,"temperature":1,"seed":7}' "$T/s1")" = 200 ] || fail "seed 1"
[ "$(post "$P" /v1/completions '{"prompt":"Hello","max_tokens":8,"n":3,"temperature":1,"seed":7}' "$T/s2")" = 200 ] || fail "seed 2"
[ "$(jget "$T/s1" '[c["text"] for c in d["choices"]]')" = "$(jget "$T/s2" '[c["text"] for c in d["choices"]]')" ] || fail "same seed, different samples"
jcheck "$T/s1" 'len(d["choices"])==3 and d["usage"]["completion_tokens"]==24' "n=3"
ok "n=3 with a seed: three choices, the same samples twice"

echo "== penalties (vLLM's: repetition on prompt and output, frequency and presence on output)"
pen() { post "$P" /v1/completions "{\"prompt\":\"Story: the cat and the dog\",\"max_tokens\":24,\"temperature\":0,\"logprobs\":0,\"return_tokens_as_token_ids\":true$1}" "$T/$2"; }
[ "$(pen '' p0)" = 200 ] && [ "$(pen ',"repetition_penalty":1,"frequency_penalty":0,"presence_penalty":0' p1)" = 200 ] || fail "neutral penalties"
[ "$(jget "$T/p0" 'd["choices"][0]["text"]')" = "$(jget "$T/p1" 'd["choices"][0]["text"]')" ] || fail "neutral penalties change the greedy text"
[ "$(post "$P" /tokenize '{"prompt":"Story: the cat and the dog"}' "$T/pt")" = 200 ] || fail "/tokenize"
[ "$(pen ',"repetition_penalty":1000000' p2)" = 200 ] || fail "repetition_penalty"
python3 - "$T/p0" "$T/p2" "$T/pt" <<'PY' || fail "repetition_penalty: a seen token was picked again"
import json, sys
ids = lambda f: [int(t.split(":")[1]) for t in json.load(open(f))["choices"][0]["logprobs"]["tokens"]]
plain, pen = ids(sys.argv[1]), ids(sys.argv[2])
prompt = json.load(open(sys.argv[3]))["tokens"]
# A random model has many unseen tokens with a positive logit: divided by 1e6,
# every seen one falls below them, so greedy never repeats a token.
assert len(pen) == 24 and len(set(pen)) == 24 and not set(pen) & set(prompt), (pen, prompt)
print(f"   plain greedy: {len(set(plain))} distinct of 24, {len(set(plain) & set(prompt))} from the prompt; with repetition_penalty 1e6: 24 distinct, none from the prompt")
PY
[ "$(pen ',"presence_penalty":2,"frequency_penalty":2' p3)" = 200 ] || fail "presence/frequency"
jcheck "$T/p3" 'all(x <= 0 for x in d["choices"][0]["logprobs"]["token_logprobs"])' "penalised logprobs"
ok "neutral penalties change nothing; repetition_penalty steers greedy off every seen token; presence/frequency accepted"

echo "== stop strings and stop token ids"
[ "$(post "$P" /v1/completions '{"prompt":"Story:","max_tokens":24,"temperature":0,"logprobs":0,"return_tokens_as_token_ids":true}' "$T/g")" = 200 ] || fail "greedy"
full=$(jget "$T/g" 'd["choices"][0]["text"]')
stop=$(python3 -c 'import sys; t=sys.argv[1]; print(t[len(t)//2:len(t)//2+3])' "$full")
body=$(python3 -c 'import json,sys; print(json.dumps({"prompt":"Story:","max_tokens":24,"temperature":0,"stop":[sys.argv[1]]}))' "$stop")
[ "$(post "$P" /v1/completions "$body" "$T/st")" = 200 ] || fail "stop string"
python3 - "$T/st" "$full" "$stop" <<'PY' || fail "stop string: text not cut before it"
import json, sys
d = json.load(open(sys.argv[1])); full, stop = sys.argv[2], sys.argv[3]
c = d["choices"][0]
assert c["text"] == full[:full.index(stop)], (c["text"], full, stop)
assert c["finish_reason"] == "stop" and c["stop_reason"] == stop
PY
sbody=$(python3 -c 'import json,sys; b=json.loads(sys.argv[1]); b["stream"]=True; print(json.dumps(b))' "$body")
curl -sN -m 60 "$U/v1/completions" -H 'Content-Type: application/json' -d "$sbody" >"$T/st.sse"
python3 - "$T/st.sse" "$T/st" <<'PY' || fail "streamed stop string differs from the whole answer"
import json, sys
ev = [l[6:] for l in open(sys.argv[1]).read().split("\n") if l.startswith("data: ")]
assert ev[-1] == "[DONE]"
chunks = [json.loads(e) for e in ev[:-1]]
text = "".join(c["choices"][0]["text"] for c in chunks)
whole = json.load(open(sys.argv[2]))["choices"][0]
assert text == whole["text"], (text, whole["text"])
assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and chunks[-1]["choices"][0]["stop_reason"] == whole["stop_reason"]
assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
PY
ok "stop string \"$stop\": text cut before it, stop_reason the string, streamed (held back) = whole"
third=$(jget "$T/g" 'int(d["choices"][0]["logprobs"]["tokens"][2].split(":")[1])')
[ "$(post "$P" /v1/completions "{\"prompt\":\"Story:\",\"max_tokens\":24,\"temperature\":0,\"stop_token_ids\":[$third]}" "$T/sti")" = 200 ] || fail "stop_token_ids"
jcheck "$T/sti" "d['choices'][0]['finish_reason']=='stop' and d['choices'][0]['stop_reason']==$third and d['usage']['completion_tokens'] <= 3" "stop_token_ids"
ok "stop_token_ids [$third]: finish stop, stop_reason $third, $(jget "$T/sti" 'd["usage"]["completion_tokens"]') tokens"

echo "== logit_bias and min_tokens"
[ "$(post "$P" /tokenize '{"prompt":"Hello"}' "$T/hid")" = 200 ] || fail "tokenize Hello"
hid=$(jget "$T/hid" 'd["tokens"][-1]')
first=$(jget "$T/g" 'int(d["choices"][0]["logprobs"]["tokens"][0].split(":")[1])')
[ "$(post "$P" /v1/completions "{\"prompt\":\"Story:\",\"max_tokens\":4,\"temperature\":0,\"logit_bias\":{\"$hid\":100}}" "$T/lb1")" = 200 ] || fail "logit_bias +100"
jcheck "$T/lb1" 'd["choices"][0]["text"]=="Hello"*4' "logit_bias +100: every token the biased one"
[ "$(post "$P" /v1/completions "{\"prompt\":\"Story:\",\"max_tokens\":2,\"temperature\":0,\"logprobs\":0,\"return_tokens_as_token_ids\":true,\"logit_bias\":{\"$first\":-100}}" "$T/lb2")" = 200 ] || fail "logit_bias -100"
jcheck "$T/lb2" "d['choices'][0]['logprobs']['tokens'][0]!='token_id:$first' and d['choices'][0]['logprobs']['token_logprobs'][0] <= 0" "logit_bias -100: greedy's first token avoided"
ok "logit_bias: +100 on \"Hello\" ($hid) writes it 4 times; -100 on greedy's first token ($first) avoids it"
EOS='"logit_bias":{"1":100,"106":100}'
[ "$(post "$P" /v1/chat/completions "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":10,$EOS}" "$T/mt0")" = 200 ] || fail "EOS biased"
jcheck "$T/mt0" 'd["usage"]["completion_tokens"]==1 and d["choices"][0]["finish_reason"]=="stop"' "EOS biased: stops at once"
[ "$(post "$P" /v1/chat/completions "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":10,\"min_tokens\":4,$EOS}" "$T/mt1")" = 200 ] || fail "min_tokens"
jcheck "$T/mt1" 'd["usage"]["completion_tokens"]==5 and d["choices"][0]["finish_reason"]=="stop" and len(d["choices"][0]["message"]["content"])>0' "min_tokens 4: EOS only as the 5th token"
[ "$(post "$P" /v1/completions "{\"prompt\":\"Story:\",\"max_tokens\":8,\"temperature\":0,\"min_tokens\":3,\"stop\":[\"Hello\"],\"logit_bias\":{\"$hid\":100}}" "$T/mt2")" = 200 ] || fail "min_tokens with a stop string"
jcheck "$T/mt2" 'd["choices"][0]["text"]=="HelloHello" and d["usage"]["completion_tokens"]==3 and d["choices"][0]["stop_reason"]=="Hello"' "min_tokens 3: the stop string counts from the 3rd token"
ok "min_tokens: EOS (biased to +100) held back until token 5 of 10; stop string \"Hello\" only from the 3rd token"

echo "== chat"
M='[{"role":"system","content":"Be brief."},{"role":"user","content":"Hello there"}]'
[ "$(post "$P" /v1/chat/completions "{\"model\":\"tiny\",\"messages\":$M,\"max_tokens\":6,\"temperature\":0,\"logprobs\":true,\"top_logprobs\":2}" "$T/ch")" = 200 ] || fail "chat"
jcheck "$T/ch" 'd["id"].startswith("chatcmpl-") and d["object"]=="chat.completion" and d["choices"][0]["message"]["role"]=="assistant" and d["choices"][0]["finish_reason"]=="length" and "stop_reason" in d["choices"][0] and d["usage"]["completion_tokens"]==6' "chat shape"
jcheck "$T/ch" 'len(d["choices"][0]["logprobs"]["content"])==6 and all(len(t["top_logprobs"])==2 and "bytes" in t for t in d["choices"][0]["logprobs"]["content"])' "chat logprobs shape"
curl -sN -m 60 "$U/v1/chat/completions" -H 'Content-Type: application/json' \
	-d "{\"messages\":$M,\"max_tokens\":6,\"temperature\":0,\"stream\":true,\"stream_options\":{\"include_usage\":true}}" >"$T/ch.sse"
python3 - "$T/ch.sse" "$T/ch" <<'PY' || fail "chat stream shape"
import json, sys
ev = [l[6:] for l in open(sys.argv[1]).read().split("\n") if l.startswith("data: ")]
whole = json.load(open(sys.argv[2]))
assert ev[-1] == "[DONE]" and ev.count("[DONE]") == 1
ch = [json.loads(e) for e in ev[:-1]]
assert all(c["object"] == "chat.completion.chunk" and c["id"] == ch[0]["id"] for c in ch)
assert ch[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
assert ch[-1]["choices"] == [] and ch[-1]["usage"]["completion_tokens"] == 6
fin = ch[-2]["choices"][0]
assert fin["finish_reason"] == "length" and "stop_reason" in fin
text = "".join(c["choices"][0]["delta"].get("content", "") for c in ch[1:-1])
assert text == whole["choices"][0]["message"]["content"], (text, whole)
assert len(ch) == 1 + 6 + 1 or len(ch) <= 8, len(ch)
PY
ok "chat whole and streamed: role chunk, one chunk per token, finish with stop_reason, usage chunk, [DONE]; same text"
[ "$(post "$P" /v1/chat/completions "{\"messages\":$M,\"max_tokens\":4,\"n\":2,\"temperature\":0}" "$T/ch2")" = 200 ] || fail "chat n=2"
jcheck "$T/ch2" 'len(d["choices"])==2 and d["choices"][0]["message"]["content"]==d["choices"][1]["message"]["content"]' "greedy n=2"
ok "chat n=2 (greedy: equal choices)"
A='[{"role":"user","content":"Hello there"},{"role":"assistant","content":"Sure, here"}]'
[ "$(post "$P" /v1/chat/completions "{\"messages\":$A,\"max_tokens\":4,\"continue_final_message\":true,\"add_generation_prompt\":false}" "$T/cf")" = 200 ] || fail "continue_final_message: $(cat "$T/cf")"
ok "continue_final_message with add_generation_prompt false: 200"
python3 "$IG_TOP/tests/lib/server/resume_check.py" "$P" 3 || fail "greedy resume"

echo "== bad inputs"
bad() { # status body path what [message substring]
	code=$(post "$P" "${3:-/v1/chat/completions}" "$2" "$T/bad")
	[ "$code" = "$1" ] || fail "$4: status $code, want $1: $(cat "$T/bad")"
	jcheck "$T/bad" "set(d['error'])>={'message','type','param','code'} and d['error']['code']==$1" "$4: error shape"
	if [ -n "${5:-}" ]; then grep -qF -- "$5" "$T/bad" || fail "$4: message $(cat "$T/bad")"; fi
	ok "$4 -> $1 $(jget "$T/bad" 'd["error"]["type"]'): $(jget "$T/bad" 'd["error"]["message"]' | head -c 110)"
}
U1='[{"role":"user","content":"Hi"}]'
bad 400 '{"messages": [' /v1/chat/completions "invalid JSON"
bad 400 '{"model":"tiny"}' /v1/chat/completions "missing messages"
bad 400 '{"messages":[{"role":"user","content":"a"},{"role":"user","content":"b"}]}' /v1/chat/completions "roles that do not alternate" "alternate"
bad 400 '{"messages":[{"role":"wizard","content":"a"}]}' /v1/chat/completions "an unknown role"
bad 400 "{\"messages\":$U1,\"temperature\":-1}" /v1/chat/completions "temperature < 0"
bad 400 "{\"messages\":$U1,\"top_p\":0}" /v1/chat/completions "top_p 0"
bad 400 "{\"messages\":$U1,\"top_p\":1.5}" /v1/chat/completions "top_p 1.5"
bad 400 "{\"messages\":$U1,\"n\":0}" /v1/chat/completions "n 0"
bad 400 "{\"messages\":$U1,\"max_tokens\":0}" /v1/chat/completions "max_tokens 0"
bad 400 '{"prompt":"Hi","max_tokens":0}' /v1/completions "completions max_tokens 0"
bad 400 "{\"messages\":$U1,\"max_tokens\":600}" /v1/chat/completions "prompt + max_tokens over the context" \
	"This model's maximum context length is 512 tokens. However, you requested 610 tokens (10 in the messages, 600 in the completion). Please reduce the length of the messages or completion."
long=$(python3 -c 'print("word " * 700)')
bad 400 "{\"prompt\":\"$long\"}" /v1/completions "prompt over the context" "This model's maximum context length is 512 tokens. However, you requested"
bad 404 "{\"model\":\"nope\",\"messages\":$U1}" /v1/chat/completions "unknown model" 'The model `nope` does not exist.'
bad 404 '{"model":"nope","prompt":"x"}' /v1/completions "unknown model (completions)" 'The model `nope` does not exist.'
bad 400 "{\"messages\":$U1,\"stream_options\":{\"include_usage\":true}}" /v1/chat/completions "stream_options without stream" "stream=True"
bad 400 "{\"messages\":$U1,\"top_logprobs\":2}" /v1/chat/completions "top_logprobs without logprobs" "logprobs"
bad 400 "{\"messages\":$A,\"continue_final_message\":true}" /v1/chat/completions "continue_final_message with add_generation_prompt" \
	'Cannot set both `continue_final_message` and `add_generation_prompt` to True.'
bad 400 '{"prompt":[1,2,99999999]}' /v1/completions "token id out of the vocabulary"
bad 400 '{"prompt":[]}' /v1/completions "empty prompt"
bad 400 "{\"messages\":$U1,\"top_k\":-5}" /v1/chat/completions "top_k -5"
bad 400 "{\"messages\":$U1,\"logprobs\":true,\"top_logprobs\":50}" /v1/chat/completions "top_logprobs over 20"
bad 400 "{\"messages\":$U1,\"logit_bias\":{\"99999999\":5}}" /v1/chat/completions "logit_bias id out of the vocabulary" "out-of-vocab token ids"
bad 400 "{\"messages\":$U1,\"logit_bias\":{\"abc\":5}}" /v1/chat/completions "logit_bias key not a token id"
bad 400 "{\"messages\":$U1,\"logit_bias\":[1]}" /v1/chat/completions "logit_bias not an object"
bad 400 "{\"messages\":$U1,\"max_tokens\":3,\"min_tokens\":5}" /v1/chat/completions "min_tokens over max_tokens" "min_tokens must be less than or equal to max_tokens=3, got 5."
bad 400 "{\"messages\":$U1,\"min_tokens\":-1}" /v1/chat/completions "min_tokens -1"
TOOLS='"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]'
bad 400 "{\"messages\":$U1,$TOOLS}" /v1/chat/completions "tools (tool_choice auto by default)" "tool-call parser"
bad 400 "{\"messages\":$U1,$TOOLS,\"tool_choice\":\"required\"}" /v1/chat/completions "tool_choice required" "guided decoding"
bad 404 "{\"model\":\"nope\",\"messages\":$U1,$TOOLS,\"logit_bias\":{\"99999999\":1}}" /v1/chat/completions "an unknown model with tools: the model first, as vLLM" 'The model `nope` does not exist.'
bad 400 "{\"messages\":$U1,$TOOLS,\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"f\"}}}" /v1/chat/completions "tool_choice naming a function" "guided decoding"
bad 400 "{\"messages\":$U1,\"response_format\":{\"type\":\"json_object\"}}" /v1/chat/completions "response_format json_object" "guided decoding"
bad 400 '{"prompt":"x","response_format":{"type":"json_schema","json_schema":{"name":"a","schema":{}}}}' /v1/completions "response_format json_schema (completions)" "guided decoding"
bad 400 '{"messages":[{"role":"user","content":[{"type":"text","text":"Hi"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AA=="}}]}]}' /v1/chat/completions "an image part" "text model only"
[ "$(post "$P" /v1/chat/completions "{\"messages\":$U1,\"max_tokens\":2,$TOOLS,\"tool_choice\":\"none\",\"response_format\":{\"type\":\"text\"}}" "$T/tn")" = 200 ] || fail "tool_choice none: $(cat "$T/tn")"
ok "tool_choice \"none\" with tools and response_format text: 200, plain text"
bad 400 '{"prompt":"x","echo":true,"logprobs":1,"stream":true}' /v1/completions "echo with logprobs streamed" "not supported with stream"
bad 400 "{\"messages\":$U1,\"prompt_logprobs\":1,\"stream\":true}" /v1/chat/completions "prompt_logprobs streamed" "not available when"
bad 400 "{\"messages\":$U1,\"prompt_logprobs\":21}" /v1/chat/completions "prompt_logprobs over 20"
bad 400 '{"prompt":"x","suffix":"y"}' /v1/completions "suffix" "suffix is not currently supported"
bad 404 '{}' /v1/nothing "unknown path"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$U/v1/chat/completions")" = 405 ] || fail "GET on a POST path"
ok "GET /v1/chat/completions -> 405"

echo "== metrics"
curl -s "$U/metrics" >"$T/metrics"
for m in vllm:num_requests_running vllm:num_requests_waiting vllm:kv_cache_usage_perc vllm:prefix_cache_queries_total \
	vllm:prefix_cache_hits_total vllm:prompt_tokens_total vllm:generation_tokens_total vllm:request_success_total \
	vllm:num_preemptions_total vllm:time_to_first_token_seconds_bucket vllm:inter_token_latency_seconds_bucket \
	vllm:time_per_output_token_seconds_bucket vllm:e2e_request_latency_seconds_bucket vllm:request_queue_time_seconds_bucket \
	vllm:cache_config_info; do
	grep -q "^$m{" "$T/metrics" || fail "metric $m missing"
done
grep -q 'vllm:time_to_first_token_seconds_bucket{engine="0",model_name="tiny",le="2560"}' "$T/metrics" || fail "ttft buckets"
grep -q 'vllm:e2e_request_latency_seconds_bucket{engine="0",model_name="tiny",le="7680"}' "$T/metrics" || fail "e2e buckets"
grep -q 'vllm:cache_config_info{block_size="16",.*enable_prefix_caching="True"' "$T/metrics" || fail "cache_config_info"
grep -q 'vllm:request_success_total{engine="0",finished_reason="length",model_name="tiny"} [1-9]' "$T/metrics" || fail "request_success_total"
hits=$(metric "$P" vllm:prefix_cache_hits_total)
python3 -c "import sys; sys.exit(0 if float('$hits') > 0 else 1)" || fail "no prefix cache hits after repeated prompts"
ok "every vLLM metric present with engine/model_name labels and vLLM's buckets; prefix cache hits $hits tokens"
stop_server "$P_PID"
ok "SIGTERM: clean exit 0 (no sanitizer report)"
