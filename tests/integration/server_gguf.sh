#!/bin/bash
# server_gguf — infergate-server --model FILE.gguf (and a folder holding one),
# through the gateway: a tiny random GGUF file from infergate-mkmodel --format
# gguf; /v1/models names it with max_model_len from gemma3.context_length
# (capped as for a folder), chat completions render its tokenizer.chat_template
# with its own vocabulary (prompt_tokens as the template and llama.cpp's
# tokenizer count them), greedy text is the same as infergate-run's, the
# gateway routes to it by its served name, and files the engine cannot run
# (another architecture, a truncated file) are refused at load with the file
# and the key named (tests/unit/test_gguf.c has the rest of the refusals).
. "${IG_TOP:-$(dirname "$0")/../..}/tests/lib/gateway/lib.sh"
SERVER=$bin/infergate-server
MKMODEL=$bin/infergate-mkmodel
RUN=$bin/infergate-run
gw_init server_gguf
P=$base
"$MKMODEL" --format gguf --type bf16 --shape tiny "$tmp/tiny.gguf" >"$tmp/mkmodel.log" 2>&1 || { cat "$tmp/mkmodel.log"; echo "FAIL mkmodel"; exit 1; }
mkdir "$tmp/folder" && cp "$tmp/tiny.gguf" "$tmp/folder/gemma-3-tiny-bf16.gguf"

# server_start NAME PORT MODEL [flags]
server_start() {
	local name=$1 port=$2 model=$3
	shift 3
	"$SERVER" --model "$model" --host 127.0.0.1 --port "$port" --threads 1 --disable-log-requests "$@" \
		>"$tmp/$name.out" 2>"$tmp/$name.log" &
	pids="$pids $!"
	eval "srv_pid_$name=$!"
	wait_for "curl -fs -o /dev/null http://127.0.0.1:$port/health" 60 || { echo "FAIL server $name not healthy"; cat "$tmp/$name.log"; exit 1; }
}

cat >"$tmp/gw.yaml" <<YAML
region: us-east5
listen: 127.0.0.1:$P
pools:
  - name: gemma
    models: [tiny-gguf]
    endpoints:
      - { address: "127.0.0.1:$((P + 1))", region: us-east5 }
    health: { interval: 200ms, timeout: 150ms }
YAML
gw_start "$tmp/gw.yaml"
server_start file $((P + 1)) "$tmp/tiny.gguf" --served-model-name tiny-gguf
server_start dir $((P + 2)) "$tmp/folder" --max-model-len 512
S=http://127.0.0.1:$((P + 1))
D=http://127.0.0.1:$((P + 2))

curl -fs "$S/v1/models" >"$tmp/models.json"
check '[ "$(json $tmp/models.json "d.data[0].id + \" \" + d.data[0].max_model_len")" = "tiny-gguf 2048" ]' \
	"/v1/models: the served name, max_model_len 2048 (gemma3.context_length)"
curl -fs "$D/v1/models" >"$tmp/models2.json"
check '[ "$(json $tmp/models2.json "d.data[0].id + \" \" + d.data[0].max_model_len")" = "$tmp/folder 512" ]' \
	"a folder holding one .gguf: loaded, --max-model-len 512 applied"

body='{"model":"tiny-gguf","messages":[{"role":"user","content":"What is the capital of France?"}],"max_tokens":12,"temperature":0,"ignore_eos":true}'
curl -fs "$S/v1/chat/completions" -H 'content-type: application/json' -d "$body" >"$tmp/chat.json"
# <bos> <start_of_turn> user \n What ▁is ▁the ▁capital ▁of ▁France ? <end_of_turn> \n <start_of_turn> model \n
check '[ "$(json $tmp/chat.json d.usage.prompt_tokens)" = 16 ] && [ "$(json $tmp/chat.json d.usage.completion_tokens)" = 12 ]' \
	"chat completion: the file's template and vocabulary give 16 prompt tokens; 12 generated"
"$RUN" --model "$tmp/tiny.gguf" --chat "What is the capital of France?" --max-tokens 12 --ignore-eos --temperature 0 --json --threads 1 >"$tmp/run.json" 2>/dev/null
check '[ "$(json $tmp/chat.json d.choices[0].message.content)" = "$(json $tmp/run.json d.text)" ]' \
	"the server's greedy text equals infergate-run's on the same file: $(json $tmp/chat.json 'JSON.stringify(d.choices[0].message.content)')"

code=$(chat "$gw_url" tiny-gguf)
check '[ "$code" = 200 ] && [ "$(json $tmp/b d.model)" = tiny-gguf ]' "through the gateway: 200 from the GGUF server"

# files the engine cannot run: refused at load, the reason in the log
bad_start() {
	"$SERVER" --model "$1" --host 127.0.0.1 --port "$2" --threads 1 >"$tmp/bad.out" 2>"$tmp/bad.log" &
	local p=$!
	pids="$pids $p"
	wait_for "grep -q \"$3\" $tmp/bad.log $tmp/bad.out" 30
	local rc=$?
	kill "$p" 2>/dev/null
	return $rc
}
head -c 100000 "$tmp/tiny.gguf" >"$tmp/trunc.gguf"
check 'bad_start "$tmp/trunc.gguf" $((P + 3)) "runs past the end"' "a truncated file is refused, the file named"
# the architecture string "gemma3" becomes "gemmaX" (same length: the file stays valid)
sed 's/\x06\x00\x00\x00\x00\x00\x00\x00gemma3/\x06\x00\x00\x00\x00\x00\x00\x00gemmaX/' "$tmp/tiny.gguf" >"$tmp/arch.gguf"
check 'bad_start "$tmp/arch.gguf" $((P + 4)) "general.architecture .gemmaX. is not supported"' "another architecture is refused by name"

finish
