#!/bin/bash
# gguf_llama_cpp — infergate on GGUF files against llama.cpp itself (the npm
# package node-llama-cpp, its prebuilt CPU build; nothing downloaded or
# compiled): files written by infergate-mkmodel --format gguf (tiny shape:
# 6 layers, sliding window 8, so the long prompt, 70-odd tokens, crosses it), then
#   - tokenization identical to llama.cpp's on tests/tokenizer/corpus.jsonl and
#     a seeded random corpus (scripts, emoji, code, whitespace runs, specials);
#   - for each weight type (f32 bf16 f16 q8_0 q4_0 q4_k q6_k; the K types on a
#     256-wide tiny shape, their rows needing whole 256-element blocks), 16
#     greedy tokens identical after a prompt shorter and one longer than the
#     window, and the largest difference of the top-5 log-probabilities of the
#     first generated token printed (f32 KV caches on both sides);
#   - the same on an f32 file with a window of 24 positions, which is not a
#     multiple of the KV cache's 16-position blocks and spans three of them,
#     so the sliding layers free blocks from the middle of their window pool.
# GGUF_TYPES overrides the list of types. Needs node and tests/node/node_modules.
set -eu
top=${IG_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
bin=${IG_BIN:-$top/build/san/bin}
tool="${bin%/bin}/tests/test_tokenizer"
[ -x "$tool" ] || { echo "missing $tool (make SAN=1 unit-bins)"; exit 1; }
[ -d "$top/tests/node/node_modules/node-llama-cpp" ] || { echo "missing node-llama-cpp (npm packages not installed)"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
types=${GGUF_TYPES:-"f32 bf16 f16 q8_0 q4_0 q4_k q6_k"}

# the K types need rows of whole 256-element blocks: a wider tiny shape
mk() {
	case $1 in
	q4_k|q6_k) extra="--hidden 256 --intermediate 512" ;;
	*) extra="" ;;
	esac
	timeout 120 "$bin/infergate-mkmodel" --format gguf --type "$1" --shape tiny $extra "$tmp/tiny-$1.gguf" 2>/dev/null
}

mk f32
echo "tokenization: corpus.jsonl ($(wc -l < "$top/tests/tokenizer/corpus.jsonl") lines) and 300 random lines"
timeout 120 "$tool" --encode-jsonl "$tmp/tiny-f32.gguf" "$top/tests/tokenizer/corpus.jsonl" > "$tmp/ours.jsonl"
timeout 60 node "$top/tests/tokenizer/gen_random.js" "${TOKENIZER_SEED:-20261207}" 300 > "$tmp/random.jsonl"
timeout 120 "$tool" --encode-jsonl "$tmp/tiny-f32.gguf" "$tmp/random.jsonl" > "$tmp/ours_random.jsonl"
timeout 300 node "$top/tests/lib/gguf/llama_cpp.mjs" tokenize "$tmp/tiny-f32.gguf" "$top/tests/tokenizer/corpus.jsonl" "$tmp/ours.jsonl" \
	"$tmp/random.jsonl" "$tmp/ours_random.jsonl"

long="Once upon a time, in a land far away, there lived a king who had three daughters. The youngest was the most beautiful of all, and the sun itself, which has seen so much, was astonished whenever it shone on her face. Close by the castle lay a great dark forest, and under an old lime-tree in the forest was a well"
files=""
for t in $types; do
	[ -f "$tmp/tiny-$t.gguf" ] || mk "$t"
	files="$files${files:+,}$tmp/tiny-$t.gguf"
done
timeout 120 "$bin/infergate-mkmodel" --format gguf --type f32 --shape tiny --window 24 "$tmp/tiny-f32-w24.gguf" 2>/dev/null
files="$files,$tmp/tiny-f32-w24.gguf"
# one node process for every file: llama.cpp loads once
timeout 600 node "$top/tests/lib/gguf/llama_cpp.mjs" generate "$files" "$bin/infergate-run" 16 \
	"The capital of France is" "$long"
echo "infergate matches llama.cpp"
