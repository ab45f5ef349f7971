#!/usr/bin/env bash
# infergate-sim's latency model: TTFT = ttft_ms + prefill_ms_per_token x
# uncached prompt tokens; ITL = itl_ms x (1 + itl_growth x (running - 1));
# the slow_factor fault multiplies both. Measured with curl's timings on
# streams (the head goes out with the first token) and with /metrics.
. "$(dirname "$0")/../lib/sim.sh"
T=$SIM_TMP

# time_stream PORT BODY: prints "ttft total" in seconds
time_stream() {
	curl -sN -m 30 -o /dev/null -w '%{time_starttransfer} %{time_total}\n' \
		"http://127.0.0.1:$1/v1/completions" -d "$2"
}
within() { # value lo hi what
	fcmp "$1 >= $2 && $1 <= $3" || fail "$4: $1 s not in [$2, $3]"
	ok "$4: $1 s in [$2, $3]"
}

start_sim A --ttft-ms 200 --itl-ms 40 --prefill-ms-per-token 0 --itl-growth 0
read -r ttft total < <(time_stream $A '{"prompt":"hello","max_tokens":11,"stream":true}')
within "$ttft" 0.18 0.45 "TTFT with --ttft-ms 200"
within "$(awk "BEGIN{print ($total - $ttft) / 10}")" 0.035 0.08 "ITL with --itl-ms 40 (10 gaps)"
# The histograms saw it too.
s=$(metric $A 'vllm:time_to_first_token_seconds_sum{')
within "$s" 0.18 0.45 "time_to_first_token_seconds_sum"
n=$(metric $A 'vllm:inter_token_latency_seconds_count{')
[ "$n" = 10 ] || fail "inter_token_latency_seconds_count $n, expected 10"
ok "inter_token_latency_seconds_count 10"

# Prefill: 200 prompt words at 2 ms each add ~0.4 s to the first token.
start_sim B --ttft-ms 50 --itl-ms 10 --prefill-ms-per-token 2
PROMPT=$(python3 -c 'print(" ".join("w%d" % i for i in range(200)))')
read -r ttft total < <(time_stream $B '{"prompt":"'"$PROMPT"'","max_tokens":2,"stream":true}')
within "$ttft" 0.42 0.75 "TTFT of a 200-token prompt at 2 ms/token + 50 ms"

# ITL growth: with 4 running requests and alpha 1, each gap is 4x itl.
start_sim C --ttft-ms 10 --itl-ms 20 --itl-growth 1 --prefill-ms-per-token 0
for i in 1 2 3; do
	curl -sN -m 30 -o /dev/null "http://127.0.0.1:$C/v1/completions" -d '{"prompt":"bg '$i'","max_tokens":400,"stream":true}' &
	BG_PIDS="$BG_PIDS $!"
done
sleep 0.3
[ "$(metric $C 'vllm:num_requests_running{')" = 3 ] || fail "3 background requests running"
read -r ttft total < <(time_stream $C '{"prompt":"measured","max_tokens":6,"stream":true}')
within "$(awk "BEGIN{print ($total - $ttft) / 5}")" 0.065 0.12 "ITL with 4 running, --itl-ms 20 --itl-growth 1 (expect 0.08)"
for p in $BG_PIDS; do kill "$p" 2>/dev/null; done

# The slow fault doubles everything.
curl -s -m 5 -o /dev/null -X POST "http://127.0.0.1:$A/sim/faults" -d '{"slow_factor":2}'
read -r ttft total < <(time_stream $A '{"prompt":"hello again","max_tokens":6,"stream":true}')
within "$ttft" 0.38 0.7 "TTFT under slow_factor 2"
within "$(awk "BEGIN{print ($total - $ttft) / 5}")" 0.07 0.13 "ITL under slow_factor 2"
