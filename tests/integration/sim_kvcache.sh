#!/usr/bin/env bash
# infergate-sim's KV-cache model: pinned usage visible in /metrics; requests
# queue (num_requests_waiting) when blocks or sequence slots run out and run
# in order as others finish; a client that leaves frees its blocks at once;
# a repeated long prompt hits the prefix cache and gets a shorter TTFT.
. "$(dirname "$0")/../lib/sim.sh"
T=$SIM_TMP
L='{engine="0",model_name="google/gemma-3-1b-it"}'

# Pinned usage and waiting count, then honest again.
start_sim A --kv-blocks 100
curl -s -m 5 -X POST "http://127.0.0.1:$A/sim/faults" -d '{"kv_usage":0.8,"waiting":7}' >/dev/null
[ "$(metric $A "vllm:kv_cache_usage_perc$L")" = 0.8 ] || fail "pinned kv usage"
[ "$(metric $A "vllm:num_requests_waiting$L")" = 7 ] || fail "pinned waiting"
ok "pinned kv_cache_usage_perc 0.8 and num_requests_waiting 7 in /metrics"
curl -s -m 5 -X DELETE "http://127.0.0.1:$A/sim/faults" >/dev/null
[ "$(metric $A "vllm:kv_cache_usage_perc$L")" = 0 ] || fail "honest kv usage after clear"
ok "after DELETE /sim/faults: kv_cache_usage_perc 0 (honest)"

# 8 blocks; each request needs ceil((4 + 100) / 16) = 7: one runs, the rest wait.
start_sim B --kv-blocks 8 --itl-ms 20 --ttft-ms 10
for i in 1 2 3; do
	curl -sN -m 30 -o "$T/q$i" "http://127.0.0.1:$B/v1/completions" \
		-d '{"prompt":"queued request number '$i'","max_tokens":100,"stream":true}' &
	BG_PIDS="$BG_PIDS $!"
	sleep 0.05
done
sleep 0.4
run=$(metric $B "vllm:num_requests_running$L"); wait_n=$(metric $B "vllm:num_requests_waiting$L")
kv=$(metric $B "vllm:kv_cache_usage_perc$L")
[ "$run" = 1 ] && [ "$wait_n" = 2 ] || fail "running $run waiting $wait_n, expected 1 and 2"
fcmp "$kv > 0.2 && $kv <= 1" || fail "kv usage $kv while one request runs"
ok "blocks exhausted: running 1, waiting 2, kv_cache_usage_perc $kv"
# Clients leave: everything is freed at once.
for p in $BG_PIDS; do kill "$p" 2>/dev/null; done
for p in $BG_PIDS; do wait "$p" 2>/dev/null; done
BG_PIDS=""
sleep 0.3
run=$(metric $B "vllm:num_requests_running$L"); wait_n=$(metric $B "vllm:num_requests_waiting$L")
kv=$(metric $B "vllm:kv_cache_usage_perc$L")
ab=$(metric $B 'vllm:request_success_total{engine="0",finished_reason="abort"')
[ "$run" = 0 ] && [ "$wait_n" = 0 ] && [ "$kv" = 0 ] || fail "after disconnects: running $run waiting $wait_n kv $kv"
[ "$ab" = 3 ] || fail "aborts counted $ab, expected 3"
ok "clients gone: running 0, waiting 0, kv 0, request_success_total{abort} 3"
# Queued requests complete in order once blocks free up.
for i in 1 2; do
	curl -s -m 30 -o "$T/r$i" "http://127.0.0.1:$B/v1/completions" \
		-d '{"prompt":"in turn '$i'","max_tokens":20}' &
	BG_PIDS="$BG_PIDS $!"
done
for p in $BG_PIDS; do wait "$p" || fail "queued request failed"; done
BG_PIDS=""
jcheck "$T/r2" 'd["usage"]["completion_tokens"]==20' "queued requests finish when blocks are free"
code=$(post $B /v1/completions '{"prompt":"too big","max_tokens":200}' "$T/big")
[ "$code" = 400 ] || fail "a request larger than the cache: $code"
ok "a request that needs more blocks than the cache holds: 400"

# --max-num-seqs 1: the second request waits for the slot.
start_sim C --max-num-seqs 1 --itl-ms 20
curl -sN -m 30 -o /dev/null "http://127.0.0.1:$C/v1/completions" -d '{"prompt":"a","max_tokens":30,"stream":true}' &
BG_PIDS="$BG_PIDS $!"
sleep 0.1
curl -sN -m 30 -o /dev/null "http://127.0.0.1:$C/v1/completions" -d '{"prompt":"b","max_tokens":30,"stream":true}' &
BG_PIDS="$BG_PIDS $!"
sleep 0.2
[ "$(metric $C "vllm:num_requests_waiting$L")" = 1 ] || fail "max-num-seqs 1: nothing waiting"
ok "--max-num-seqs 1: the second request waits"
for p in $BG_PIDS; do wait "$p"; done
BG_PIDS=""

# Prefix cache: a 400-word prompt (25 blocks) at 2 ms per uncached token.
start_sim D --kv-blocks 200 --ttft-ms 20 --prefill-ms-per-token 2 --itl-ms 5
PROMPT=$(python3 -c 'print(" ".join("w%d" % i for i in range(400)))')
body='{"prompt":"'"$PROMPT"'","max_tokens":2,"stream":true}'
t1=$(curl -sN -m 30 -o /dev/null -w '%{time_starttransfer}' "http://127.0.0.1:$D/v1/completions" -d "$body")
h1=$(metric $D "vllm:prefix_cache_hits_total$L")
t2=$(curl -sN -m 30 -o /dev/null -w '%{time_starttransfer}' "http://127.0.0.1:$D/v1/completions" -d "$body")
h2=$(metric $D "vllm:prefix_cache_hits_total$L")
q2=$(metric $D "vllm:prefix_cache_queries_total$L")
[ "$h1" = 0 ] && [ "$h2" = 384 ] && [ "$q2" = 800 ] || fail "prefix hits $h1 -> $h2 (queries $q2), expected 0 -> 384 of 800"
fcmp "$t1 > 0.7 && $t2 < 0.3" || fail "TTFT cold $t1 s, warm $t2 s"
ok "repeated 400-token prompt: 384 tokens hit (24 blocks; the last token is always computed); TTFT $t1 s -> $t2 s"
# A follow-up turn shares the prefix (prompt + previous output).
PROMPT2="$PROMPT$(python3 -c 'print(" x" * 40)')"
curl -s -m 30 -o /dev/null "http://127.0.0.1:$D/v1/completions" -d '{"prompt":"'"$PROMPT2"'","max_tokens":1}'
h3=$(metric $D "vllm:prefix_cache_hits_total$L")
[ "$h3" = $((384 + 400)) ] || fail "follow-up hits $((h3 - 384)), expected 400"
ok "a longer prompt with the same 400-token prefix hits 400 tokens (25 blocks)"
