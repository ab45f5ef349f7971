#!/bin/bash
# bench/engine/cpu_token.sh — CPU time per decoded token, infergate beside
# llama.cpp on the same GGUF file: each side runs twice, generating 1 and
# 1 + N tokens after a 1-token prompt, and the difference of the two runs'
# user + system CPU time over N is the cost of a decode step (load, mapping
# and warm-up cancel out). CPU time, unlike tok/s, hardly moves when other
# processes share the machine, so A/B decisions can be made on a busy one;
# it says nothing about memory-bandwidth limits (run quant.sh for those).
#
#   GGUF=/work/peers/models/gemma-3-270m-q4_0.gguf \
#   LLAMA_BENCH=/work/peers/llama.cpp/build/bin/llama-bench \
#   LD_LIBRARY_PATH=/work/peers/llama.cpp/build/bin \
#     bash bench/engine/cpu_token.sh [INFERGATE_RUN ...]
#   THREADS=1 GEN=128 ROUNDS=3 override the defaults.
#   BATCH=B (infergate only, default 1): B sequences of 32 prompt tokens decode
#   together, and the figure is the CPU time of one step of all B.
#
# Prints one line per program and round: "NAME: X.XX ms cpu/token" (with
# BATCH, "ms cpu/step of B sequences").
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
gguf=${GGUF:?GGUF=FILE.gguf}
threads=${THREADS:-1}
gen=${GEN:-128}
batch=${BATCH:-1}
rounds=${ROUNDS:-3}
llama=${LLAMA_BENCH:-}
runs=("$@")
[ ${#runs[@]} -eq 0 ] && runs=("$top/bin/infergate-run")

cpu() { # command... -> user + system seconds
	/usr/bin/time -f "%U %S" "$@" 2>&1 >/dev/null | tail -n 1 | awk '{ print $1 + $2 }'
}
per_token() { # seconds for 1 token, seconds for 1 + gen tokens
	python3 -c "import sys; print('%.2f' % ((float(sys.argv[2]) - float(sys.argv[1])) / int(sys.argv[3]) * 1e3))" "$1" "$2" "$gen"
}
for _ in $(seq "$rounds"); do
	if [ -n "$llama" ]; then
		a=$(cpu timeout 600 "$llama" -m "$gguf" -t "$threads" -p 0 -n 1 -r 1)
		b=$(cpu timeout 600 "$llama" -m "$gguf" -t "$threads" -p 0 -n $((gen + 1)) -r 1)
		echo "llama-bench: $(per_token "$a" "$b") ms cpu/token"
	fi
	for r in "${runs[@]}"; do
		if [ "$batch" = 1 ]; then
			a=$(cpu timeout 600 "$r" --model "$gguf" --threads "$threads" --bench 1 --bench-prompt 1 --bench-gen 1)
			b=$(cpu timeout 600 "$r" --model "$gguf" --threads "$threads" --bench 1 --bench-prompt 1 --bench-gen $((gen + 1)))
			echo "$r: $(per_token "$a" "$b") ms cpu/token"
		else
			a=$(cpu timeout 600 "$r" --model "$gguf" --threads "$threads" --bench "$batch" --bench-prompt 32 --bench-gen 1)
			b=$(cpu timeout 600 "$r" --model "$gguf" --threads "$threads" --bench "$batch" --bench-prompt 32 --bench-gen $((gen + 1)))
			echo "$r: $(per_token "$a" "$b") ms cpu/step of $batch sequences"
		fi
	done
done
