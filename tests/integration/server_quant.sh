#!/usr/bin/env bash
# server_quant: infergate-server with --quantization q8_0 and q4_0 (weights
# quantized on load) and --kv-cache-dtype f32/bf16 serves completions; a greedy
# completion with a bf16 KV cache is the same text as with an f32 one; Q8_0's
# greedy text is the same as bf16 weights' on the tiny model, repacked 8 rows
# together in 2 MB pages (the default, said in the load line) or read in place
# (--no-repack); bad values of both flags are refused at start with a message
# naming the accepted ones, and a model whose rows are not whole blocks is
# refused at load.
. "$(dirname "$0")/../lib/server/lib.sh"
make_model "$T/m" tiny 5

echo "== flags"
SRV="${SERVER_BIN:-$IG_BIN/infergate-server}"
"$SRV" --model "$T/m" --quantization q5_1 2>"$T/q.err" && fail "--quantization q5_1 was accepted"
grep -q 'q8_0 or q4_0' "$T/q.err" || fail "--quantization message: $(cat "$T/q.err")"
"$SRV" --model "$T/m" --kv-cache-dtype fp8 2>"$T/k.err" && fail "--kv-cache-dtype fp8 was accepted"
grep -q 'auto, bf16 or f32' "$T/k.err" || fail "--kv-cache-dtype message: $(cat "$T/k.err")"
ok "refused: $(head -1 "$T/q.err"); $(head -1 "$T/k.err")"
# a hidden size of 72 cannot be cut into blocks of 32: a load error, no crash
make_model "$T/odd" tiny 3 --hidden 72 --head-dim 24 --intermediate 200 --no-tokenizer
"$IG_BIN/infergate-run" --model "$T/odd" --quantization q8_0 --prompt x --max-tokens 1 2>"$T/odd.err" &&
	fail "quantizing rows of 72 elements was accepted"
grep -q 'not a multiple of 32' "$T/odd.err" || fail "odd row message: $(cat "$T/odd.err")"
ok "refused at load: $(head -1 "$T/odd.err")"

req='{"prompt":"The capital of France is","max_tokens":24,"temperature":0,"ignore_eos":true}'
run() {   # run NAME flags...: one greedy completion, its text in $T/NAME.txt
	local name=$1; shift
	start_server P --model "$T/m" "$@"
	[ "$(post "$P" /v1/completions "$req" "$T/$name.json")" = 200 ] || fail "$name: $(cat "$T/$name.json")"
	jget "$T/$name.json" 'd["choices"][0]["text"]' >"$T/$name.txt"
	jcheck "$T/$name.json" 'd["usage"]["completion_tokens"] == 24' "$name: 24 tokens"
	stop_server "$P_PID"
}

echo "== completions"
run f32 --kv-cache-dtype f32
run bf16 --kv-cache-dtype bf16
run auto
run q8 --quantization q8_0 --kv-cache-dtype f32
grep -q "weights q8_0, Q4_0/Q8_0 repacked 8 rows together, in 2 MB pages" "$T/srv$SRV_N.err" || fail "load line: $(grep loaded "$T/srv$SRV_N.err")"
run q8n --quantization q8_0 --kv-cache-dtype f32 --no-repack
grep -q "weights q8_0, read in place (" "$T/srv$SRV_N.err" || fail "--no-repack load line: $(grep loaded "$T/srv$SRV_N.err")"
run q4 --quantization q4_0
cmp -s "$T/f32.txt" "$T/bf16.txt" || fail "bf16 KV text differs from f32: $(cat "$T/f32.txt") / $(cat "$T/bf16.txt")"
cmp -s "$T/bf16.txt" "$T/auto.txt" || fail "auto KV is not bf16"
cmp -s "$T/f32.txt" "$T/q8.txt" || fail "Q8_0 text differs from bf16 weights: $(cat "$T/f32.txt") / $(cat "$T/q8.txt")"
cmp -s "$T/q8.txt" "$T/q8n.txt" || fail "Q8_0 --no-repack text differs: $(cat "$T/q8.txt") / $(cat "$T/q8n.txt")"
[ -s "$T/q4.txt" ] || fail "Q4_0 gave no text"
ok "greedy text identical for f32 / bf16 KV and Q8_0 weights (repacked or not): $(head -c 60 "$T/f32.txt" | tr '\n' ' ')"
ok "Q4_0 serves: $(head -c 60 "$T/q4.txt" | tr '\n' ' ')"
echo "PASS"
