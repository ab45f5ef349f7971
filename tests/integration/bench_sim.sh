#!/bin/bash
# bench_sim — infergate-bench against infergate-sim with a known latency model:
#   1. accuracy: TTFT p50 and ITL p50 match the configured ttft/itl (closed loop,
#      low concurrency) within max(20%, 3 ms); every request gets exactly
#      --output-len tokens (ignore_eos); the JSON report is consistent
#      (requests = ok + errors, tokens/s = tokens / duration, fields present);
#   2. open-loop Poisson: about rate x duration requests;
#   3. an injected 503 fault is counted as http_5xx, exactly as many as injected;
#   4. a stream cut without [DONE] is counted as stream_error;
#   5. nothing listening: every request is a connect error, exit status 1;
#   6. shared-prefix: follow-ups carry the conversation (prompt tokens grow turn
#      by turn) and the simulator's prefix-cache hits go up;
#   7. non-streamed requests; https refused; SIGTERM writes the report;
#   8. a 404 is http_4xx; a hung server gives timeouts after --timeout.
set -eu
top=${IG_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
bin=${IG_BIN:-$top/build/san/bin}
bench="$bin/infergate-bench"
sim="$bin/infergate-sim"
[ -x "$bench" ] || { echo "missing $bench"; exit 1; }
[ -x "$sim" ] || { echo "missing $sim"; exit 1; }
command -v python3 >/dev/null || { echo "python3 needed"; exit 1; }
command -v curl >/dev/null || { echo "curl needed"; exit 1; }

tmp=$(mktemp -d)
pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	for p in $pids; do wait "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT

# Ports of this test: 23400 + a few; pick the first free block.
base=23400
for try in 0 1 2 3 4 5 6 7; do
	b=$((23400 + try * 10))
	if ! (exec 3<>/dev/tcp/127.0.0.1/$b) 2>/dev/null && ! (exec 3<>/dev/tcp/127.0.0.1/$((b + 1))) 2>/dev/null; then
		base=$b; break
	fi
done
port=$base
dead_port=$((base + 1))     # nothing listens there
url="http://127.0.0.1:$port"

TTFT_MS=50
ITL_MS=10
"$sim" --port "$port" --model sim-model --ttft-ms $TTFT_MS --itl-ms $ITL_MS \
	--prefill-ms-per-token 0 --itl-growth 0 --max-num-seqs 64 --kv-blocks 8192 \
	>"$tmp/sim.log" 2>&1 &
pids="$pids $!"
for i in $(seq 1 100); do
	curl -fs "$url/health" >/dev/null 2>&1 && break
	sleep 0.1
done
curl -fs "$url/health" >/dev/null || { echo "the simulator did not come up"; cat "$tmp/sim.log"; exit 1; }
echo "simulator on $url: ttft ${TTFT_MS} ms, itl ${ITL_MS} ms"

# jq-like checks in Python: check FILE 'python expression on d' 'what'
check() {
	python3 - "$1" "$2" "$3" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
ok = eval(sys.argv[2], {"d": d, "abs": abs, "max": max, "min": min, "len": len})
print(("ok   " if ok else "FAIL ") + sys.argv[3])
sys.exit(0 if ok else 1)
EOF
}
near() { # FILE EXPR TARGET REL ABS what
	check "$1" "abs(($2) - $3) <= max($3 * $4, $5)" "$6: $(python3 -c "import json,sys; d=json.load(open('$1')); print(round($2, 3))") vs $3"
}

# ---------------------------------------------------------------- 1. accuracy
echo "== 1. latency accuracy, closed loop, concurrency 2"
"$bench" --url "$url" --concurrency 2 --requests 24 --warmup 2 --input-len 16 --output-len 30 \
	--json "$tmp/acc.json" --per-request "$tmp/acc.jsonl" --timeout 30s --deadline 60s >"$tmp/acc.txt"
cat "$tmp/acc.txt"
near "$tmp/acc.json" "d['ttft_ms']['p50']" $TTFT_MS 0.2 3 "TTFT p50 within max(20%, 3 ms)"
near "$tmp/acc.json" "d['itl_ms']['p50']" $ITL_MS 0.2 3 "ITL p50 within max(20%, 3 ms)"
near "$tmp/acc.json" "d['tpot_ms']['p50']" $ITL_MS 0.2 3 "TPOT p50 within max(20%, 3 ms)"
near "$tmp/acc.json" "d['e2e_ms']['p50']" $((TTFT_MS + 29 * ITL_MS)) 0.2 5 "E2E p50 = ttft + 29 itl"
check "$tmp/acc.json" "d['requests'] == 24 and d['ok'] == 24 and d['errors'] == 0" "24 measured requests, all ok"
check "$tmp/acc.json" "d['warmup_requests'] == 2" "2 warm-up requests kept apart"
check "$tmp/acc.json" "d['output_tokens'] == 24 * 30 and d['usage_missing'] == 0" "exactly 30 tokens each, from usage"
check "$tmp/acc.json" "d['prompt_tokens'] > 0" "prompt tokens from usage"
check "$tmp/acc.json" "d['requests'] == d['ok'] + d['errors'] and d['errors'] == sum(d['errors_by_kind'].values())" "requests = ok + errors = sum of kinds"
check "$tmp/acc.json" "abs(d['throughput']['output_tokens_per_s'] - d['output_tokens'] / d['duration_s']) < 1e-6 * d['output_tokens']" "output tokens/s = tokens / duration"
check "$tmp/acc.json" "abs(d['throughput']['requests_per_s'] - d['requests'] / d['duration_s']) < 1e-6 * d['requests']" "requests/s = requests / duration"
check "$tmp/acc.json" "abs(d['throughput']['total_tokens_per_s'] - (d['output_tokens'] + d['prompt_tokens']) / d['duration_s']) < 1e-3" "total tokens/s = (prompt + output) / duration"
check "$tmp/acc.json" "all(k in d for k in ['config','model','stop_reason','elapsed_s','duration_s','requests','ok','errors','unfinished','throughput','errors_by_kind','ttft_ms','itl_ms','tpot_ms','e2e_ms','send_lag_ms','regions','endpoints','status_codes'])" "report fields present"
check "$tmp/acc.json" "all(set(d[k]) == {'n','mean','p50','p90','p99','max'} for k in ['ttft_ms','itl_ms','tpot_ms','e2e_ms'])" "each latency has n, mean, p50, p90, p99, max"
check "$tmp/acc.json" "set(d['errors_by_kind']) == {'connect','timeout','http_4xx','http_5xx','stream_error','protocol'}" "every error kind listed"
check "$tmp/acc.json" "d['model'] == 'sim-model' and d['config']['model'] is None" "model asked from /v1/models"
check "$tmp/acc.json" "d['itl_ms']['n'] == 24 * 29 and d['ttft_ms']['n'] == 24" "29 gaps per request"
check "$tmp/acc.json" "d['status_codes'] == {'200': 24} and d['regions'] == {'-': 24}" "status and region tallies"
check "$tmp/acc.json" "d['stop_reason'] == 'done' and d['unfinished'] == 0" "stopped by itself"
lines=$(wc -l < "$tmp/acc.jsonl")
[ "$lines" -eq 26 ] || { echo "FAIL per-request lines: $lines, want 26"; exit 1; }
echo "ok   per-request JSONL: 26 lines (2 warm-up)"

# ---------------------------------------------------------------- 2. Poisson
echo "== 2. open loop, Poisson 40 req/s for 3 s"
"$bench" --url "$url" --model sim-model --rate 40 --duration 3s --input-len 8 --output-len 4 --seed 7 \
	--json "$tmp/poisson.json" --quiet --timeout 10s
check "$tmp/poisson.json" "84 <= d['requests'] <= 156" "about 120 requests ($(python3 -c "import json; print(json.load(open('$tmp/poisson.json'))['requests'])"))"
check "$tmp/poisson.json" "d['config']['arrival'] == 'poisson' and d['errors'] == 0" "all ok"
check "$tmp/poisson.json" "d['send_lag_ms']['p99'] < 25" "the schedule was kept (send lag p99 < 25 ms)"
near "$tmp/poisson.json" "d['ttft_ms']['p50']" $TTFT_MS 0.3 3 "open-loop TTFT p50"
# Same seed, same arrivals: the count is reproducible.
"$bench" --url "$url" --model sim-model --rate 40 --duration 3s --input-len 8 --output-len 4 --seed 7 \
	--json "$tmp/poisson2.json" --quiet --timeout 10s
n1=$(python3 -c "import json; print(json.load(open('$tmp/poisson.json'))['requests'])")
n2=$(python3 -c "import json; print(json.load(open('$tmp/poisson2.json'))['requests'])")
[ "$n1" = "$n2" ] || { echo "FAIL same seed, different counts: $n1 vs $n2"; exit 1; }
echo "ok   same seed, same count ($n1)"

# ---------------------------------------------------------------- 3. 503
echo "== 3. injected 503 on 3 requests"
curl -fs -X POST -H 'Content-Type: application/json' -d '{"error_status":503,"error_count":3}' "$url/sim/faults" >/dev/null
"$bench" --url "$url" --model sim-model --requests 8 --concurrency 1 --output-len 3 --input-len 4 \
	--json "$tmp/e503.json" --quiet --timeout 10s
check "$tmp/e503.json" "d['errors_by_kind']['http_5xx'] == 3 and d['ok'] == 5 and d['errors'] == 3" "3 http_5xx, 5 ok"
check "$tmp/e503.json" "d['status_codes'].get('503') == 3 and d['status_codes'].get('200') == 5" "status codes 503:3 200:5"
check "$tmp/e503.json" "d['ttft_ms']['n'] == 5" "latency only of successful requests"
curl -fs -X DELETE "$url/sim/faults" >/dev/null || true

# ---------------------------------------------------------------- 4. cut stream
echo "== 4. streams cut without [DONE]"
curl -fs -X POST -H 'Content-Type: application/json' -d '{"close_after_chunks":3,"close_count":2}' "$url/sim/faults" >/dev/null
"$bench" --url "$url" --model sim-model --requests 5 --concurrency 1 --output-len 10 --input-len 4 \
	--json "$tmp/cut.json" --quiet --timeout 10s
check "$tmp/cut.json" "d['errors_by_kind']['stream_error'] == 2 and d['ok'] == 3" "2 stream_error, 3 ok"
curl -fs -X DELETE "$url/sim/faults" >/dev/null || true

# ---------------------------------------------------------------- 5. refused
echo "== 5. nothing listening"
set +e
"$bench" --url "http://127.0.0.1:$dead_port" --model m --requests 5 --concurrency 2 \
	--json "$tmp/refused.json" --quiet --timeout 5s --deadline 20s
rc=$?
set -e
[ "$rc" -eq 1 ] || { echo "FAIL exit status $rc, want 1"; exit 1; }
echo "ok   exit status 1 when nothing succeeded"
check "$tmp/refused.json" "d['errors_by_kind']['connect'] == 5 and d['ok'] == 0 and d['requests'] == 5" "5 connect errors"
check "$tmp/refused.json" "d['status_codes'] == {'none': 5}" "no status"
set +e
"$bench" --url "http://127.0.0.1:$dead_port" --requests 1 >"$tmp/nomodel.txt" 2>&1
rc=$?
set -e
[ "$rc" -eq 2 ] && grep -q -- "--model" "$tmp/nomodel.txt" || { echo "FAIL no model: rc $rc"; cat "$tmp/nomodel.txt"; exit 1; }
echo "ok   no /v1/models: a clear error, exit status 2"

# ---------------------------------------------------------------- 6. shared prefix
echo "== 6. shared-prefix conversations"
hits() { curl -fs "$url/metrics" | awk '/^vllm:prefix_cache_hits_total/ {s += $NF} END {printf "%d\n", s}'; }
h0=$(hits)
"$bench" --url "$url" --model sim-model --workload shared-prefix --groups 2 --users 3 --turns 3 \
	--system-len 1500 --input-len 12 --output-len 8 --concurrency 4 \
	--json "$tmp/sp.json" --per-request "$tmp/sp.jsonl" --quiet --timeout 10s
h1=$(hits)
check "$tmp/sp.json" "d['requests'] == 18 and d['ok'] == 18" "2 groups x 3 users x 3 turns = 18 requests"
python3 - "$tmp/sp.jsonl" <<'EOF'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in recs:
    by.setdefault(r["conversation"], {})[r["turn"]] = r
assert len(by) == 6, by.keys()
for c, turns in by.items():
    assert sorted(turns) == [0, 1, 2], (c, turns)
    p = [turns[t]["prompt_tokens"] for t in range(3)]
    # each follow-up carries the previous question (12 words + label), its answer (8 tokens) and a new question
    assert p[1] >= p[0] + 8 + 12 and p[2] >= p[1] + 8 + 12, (c, p)
    # turns in order: a turn is sent after the previous one finished
    assert turns[1]["sent_ms"] >= turns[0]["done_ms"] and turns[2]["sent_ms"] >= turns[1]["done_ms"], (c,)
print("ok   follow-ups carry the conversation (prompt tokens grow by question + answer) and wait for the previous turn")
EOF
echo "prefix-cache hits: $h0 -> $h1"
[ "$h1" -gt $((h0 + 500)) ] || { echo "FAIL prefix-cache hits did not go up enough"; exit 1; }
echo "ok   prefix-cache hits went up by $((h1 - h0)) tokens"

# ---------------------------------------------------------------- 7. misc
echo "== 7. non-streamed, completions, https refused, SIGTERM"
"$bench" --url "$url" --model sim-model --no-stream --requests 4 --output-len 6 --input-len 4 \
	--json "$tmp/ns.json" --quiet --timeout 10s
check "$tmp/ns.json" "d['ok'] == 4 and d['output_tokens'] == 24" "non-streamed: 4 ok, tokens from usage"
near "$tmp/ns.json" "d['e2e_ms']['p50']" $((TTFT_MS + 5 * ITL_MS)) 0.2 5 "non-streamed E2E p50"
"$bench" --url "$url" --model sim-model --endpoint completions --requests 3 --output-len 5 --input-len 4 \
	--json "$tmp/cmpl.json" --quiet --timeout 10s
check "$tmp/cmpl.json" "d['ok'] == 3 and d['output_tokens'] == 15 and d['itl_ms']['n'] == 12" "completions endpoint streams"
set +e
"$bench" --url "https://127.0.0.1:$port" --requests 1 >"$tmp/https.txt" 2>&1
rc=$?
set -e
[ "$rc" -eq 2 ] && grep -q "only plain http://" "$tmp/https.txt" || { echo "FAIL https: rc $rc"; cat "$tmp/https.txt"; exit 1; }
echo "ok   https:// refused clearly"
"$bench" --url "$url" --model sim-model --concurrency 3 --requests 1000 --output-len 200 --input-len 4 \
	--json "$tmp/term.json" --quiet --timeout 30s &
bp=$!
pids="$pids $bp"
sleep 1.5
kill -TERM "$bp"
set +e
timeout 10 tail --pid="$bp" -f /dev/null
wait "$bp"
set -e
check "$tmp/term.json" "d['stop_reason'] == 'signal' and d['unfinished'] == 3 and d['requests'] < 1000" "SIGTERM: report written, 3 unfinished"
echo "== 8. 4xx and timeouts"
set +e
"$bench" --url "$url" --model no-such-model --requests 2 --output-len 3 --input-len 4 \
	--json "$tmp/404.json" --quiet --timeout 10s
set -e
check "$tmp/404.json" "d['errors_by_kind']['http_4xx'] == 2 and d['status_codes'] == {'404': 2}" "unknown model: 2 http_4xx (404)"
curl -fs -X POST -H 'Content-Type: application/json' -d '{"hang":"request","hang_path":"/v1/chat"}' "$url/sim/faults" >/dev/null
set +e
"$bench" --url "$url" --model sim-model --requests 2 --concurrency 2 --output-len 3 --input-len 4 \
	--json "$tmp/hang.json" --quiet --timeout 1s --deadline 20s
set -e
curl -fs -X DELETE "$url/sim/faults" >/dev/null || true
check "$tmp/hang.json" "d['errors_by_kind']['timeout'] == 2 and 0.9 <= d['elapsed_s'] < 5" "a hung server: 2 timeouts after --timeout 1s"
echo "bench_sim: all checks passed"
