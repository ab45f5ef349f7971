#!/usr/bin/env bash
# server_batching: continuous batching in infergate-server, on a tiny random
# checkpoint (the release build when present: many steps). Parallel clients get
# the same greedy outputs as one at a time, in far fewer engine steps (steps
# are shared); a long prompt is prefilled in chunks while another stream keeps
# decoding; a KV cache far too small for the load queues requests, preempts
# (recompute) and still completes every one with the same greedy text; a client
# that disconnects frees its sequence and blocks at once.
. "$(dirname "$0")/../lib/server/lib.sh"
[ -x "$IG_TOP/bin/infergate-server" ] && SERVER_BIN="$IG_TOP/bin/infergate-server"
L="$IG_TOP/tests/lib/server/load.py"
make_model "$T/m" tiny 3
start_server P --model "$T/m" --max-num-seqs 8 --max-num-batched-tokens 64

echo "== 4 parallel clients = 4 sequential ones, in far fewer steps"
s0=$(metric "$P" infergate:engine_steps_total)
python3 "$L" gen "$P" "$T/seq.json" 4 32 0 || fail "sequential requests"
s1=$(metric "$P" infergate:engine_steps_total)
python3 "$L" gen "$P" "$T/par.json" 4 32 1 || fail "parallel requests"
s2=$(metric "$P" infergate:engine_steps_total)
seq_steps=$(python3 -c "print(int($s1 - $s0))"); par_steps=$(python3 -c "print(int($s2 - $s1))")
[ "$(jget "$T/seq.json" 'd["texts"]')" = "$(jget "$T/par.json" 'd["texts"]')" ] || fail "parallel greedy outputs differ from sequential"
jcheck "$T/par.json" 'd["tokens"]==[32]*4' "32 tokens each"
ok "same greedy texts one at a time and 4 at once"
[ "$par_steps" -le $((seq_steps / 2)) ] || fail "parallel took $par_steps steps, sequential $seq_steps: not batched"
ok "steps: sequential $seq_steps, parallel $par_steps (shared steps)"
big=$(curl -s "http://127.0.0.1:$P/metrics" | awk '/^infergate:engine_batch_size_bucket/ && /le="2"/ {a=$2} /^infergate:engine_batch_size_count/ {c=$2} END {print c - a}')
[ "${big%.*}" -ge 20 ] || fail "only $big steps ran more than 2 sequences"
ok "$big steps ran 3 or more sequences at once (infergate:engine_batch_size)"

echo "== a cap on prompt tokens beside decodes: the same greedy texts, phases accounted"
start_server R --model "$T/m" --max-num-seqs 8 --max-num-batched-tokens 64 --max-prefill-tokens 8
python3 "$L" gen "$R" "$T/cap.json" 4 32 1 || fail "parallel requests under --max-prefill-tokens 8"
[ "$(jget "$T/seq.json" 'd["texts"]')" = "$(jget "$T/cap.json" 'd["texts"]')" ] || fail "greedy outputs differ under --max-prefill-tokens 8"
for ph in schedule prefill decode output_projection sample publish; do
	v=$(metric "$R" infergate:step_phase_seconds_total "phase=\"$ph\"")
	[ -n "$v" ] || fail "no infergate:step_phase_seconds_total{phase=\"$ph\"}"
	case $ph in prefill|decode|output_projection)
		python3 -c "import sys; sys.exit(0 if float('$v') > 0 else 1)" || fail "phase $ph took no time: $v";;
	esac
done
ok "same greedy texts with 8 prompt tokens a step beside decodes; step time by phase exported"
stop_server "$R_PID"

echo "== a token budget below --max-num-seqs is raised to it: every sequence decodes each step"
start_server S --model "$T/m" --max-num-seqs 8 --max-num-batched-tokens 4
python3 "$L" gen "$S" "$T/small.json" 8 32 1 || fail "parallel requests under --max-num-batched-tokens 4"
jcheck "$T/small.json" 'd["tokens"]==[32]*8' "32 tokens each"
wide=$(curl -s "http://127.0.0.1:$S/metrics" | awk '/^infergate:engine_batch_size_bucket/ && /le="4"/ {a=$2} /^infergate:engine_batch_size_count/ {c=$2} END {print c - a}')
[ "${wide%.*}" -ge 8 ] || fail "only $wide steps ran more than 4 sequences with --max-num-seqs 8 --max-num-batched-tokens 4"
ok "$wide steps ran 5 to 8 sequences under a 4-token budget (raised to the 8 sequences)"
stop_server "$S_PID"

echo "== chunked prefill: a long prompt does not stall another stream's decoding"
read -r during secs < <(python3 "$L" chunked "$P" 300)
[ "$during" -ge 4 ] || fail "the stream got only $during tokens while a 300-word prompt was prefilled"
ok "the stream received $during tokens during the ${secs}s prefill of a 300-word prompt (64-token chunks)"

echo "== a disconnect frees the sequence and its blocks at once"
idle=$(metric "$P" vllm:kv_cache_usage_perc)
aborts0=$(metric "$P" vllm:request_success_total 'finished_reason="abort"')
python3 "$L" hold "$P" 30 "$T/leave" >"$T/held" &
hp=$!
BG_PIDS="$BG_PIDS $hp"
for _ in $(seq 1 100); do
	r=$(metric "$P" vllm:num_requests_running); [ "${r%.*}" -ge 1 ] && break; sleep 0.02
done
busy=$(metric "$P" vllm:kv_cache_usage_perc)
touch "$T/leave"
wait "$hp"
read -r _ held_state <"$T/held"
[ "$held_state" = open ] || fail "the held stream ended before its client left: nothing to abort"
for _ in $(seq 1 100); do
	r=$(metric "$P" vllm:num_requests_running); [ "${r%.*}" = 0 ] && break; sleep 0.05
done
[ "${r%.*}" = 0 ] || fail "the sequence still runs after its client left"
after=$(metric "$P" vllm:kv_cache_usage_perc)
aborts1=$(metric "$P" vllm:request_success_total 'finished_reason="abort"')
python3 -c "import sys; sys.exit(0 if float('$busy') > float('$idle') and float('$after') == float('$idle') and float('$aborts1') == float('$aborts0') + 1 else 1)" ||
	fail "kv usage idle $idle, streaming $busy, after the disconnect $after; aborts $aborts0 -> $aborts1"
ok "kv usage $idle -> $busy while streaming -> $after after the client left; one abort counted"
stop_server "$P_PID"

echo "== a KV cache too small: requests queue, the newest is preempted, all complete"
start_server Q --model "$T/m" --max-num-seqs 8 --num-kv-blocks 16 --max-num-batched-tokens 64
python3 "$L" gen "$Q" "$T/big.json" 8 100 1 || fail "requests under a full cache"
jcheck "$T/big.json" 'd["tokens"]==[100]*8 and d["finish"]==["length"]*8' "every request completes"
pre=$(metric "$Q" vllm:num_preemptions_total)
python3 -c "import sys; sys.exit(0 if float('$pre') > 0 else 1)" || fail "no preemption counted"
ok "8 requests x ~110 tokens on 16 blocks (256 tokens): all 100 tokens each, $pre preemptions"
stop_server "$Q_PID"
start_server R --model "$T/m" --max-num-seqs 8
python3 "$L" gen "$R" "$T/ref.json" 8 100 1 || fail "reference run"
[ "$(jget "$T/big.json" 'd["texts"]')" = "$(jget "$T/ref.json" 'd["texts"]')" ] || fail "preempted (recomputed) outputs differ from an uncontended run"
ok "preempted and recomputed sequences give the same greedy text as with a large cache"
stop_server "$R_PID"
