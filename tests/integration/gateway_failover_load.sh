#!/bin/bash
# gateway_failover_load — a local simulator killed (SIGKILL) with many
# requests in flight and queued behind its --max-num-seqs, a healthy second
# region: every request succeeds. The attempts that got no byte from the dead
# endpoint are retried in Europe whatever the retry budget (retry.h: the
# budget of 3 + 0.2 x 40 = 11 retries would refuse most of them); streams
# whose head went out are resumed. Also: a request without `model` goes to
# the only pool.
. "${IG_TOP:-$(dirname "$0")/../..}/tests/lib/gateway/lib.sh"
gw_init gateway_failover_load
P=$base
A=127.0.0.1:$((P + 1)); C=127.0.0.1:$((P + 2))
# A: 4 running at most, the rest waits in its queue; each request ~1.5 s.
sim_start a $((P + 1)) --model gemma --region us-east5 --max-num-seqs 4 --itl-ms 30
sim_start c $((P + 2)) --model gemma --region europe-west4
cat >"$tmp/gw.yaml" <<YAML
region: us-east5
listen: 127.0.0.1:$P
regions: { europe-west4: 95ms }
pools:
  - name: gemma-pool
    models: [gemma]
    endpoints:
      - { address: "$A", region: us-east5 }
      - { address: "$C", region: europe-west4 }
    health: { path: /health, interval: 500ms, timeout: 300ms, rise: 2, fall: 2 }
    picker: { max_utilization: 1.0 }
    backend: { tries: 3, request_timeout: 30s }
YAML
gw_start "$tmp/gw.yaml"
U=$gw_url

# A request without `model` goes to the only pool, as vLLM and llama.cpp default it.
code=$(curl -s -o "$tmp/nomodel" -w '%{http_code}' $U/v1/chat/completions -H 'content-type: application/json' \
	-d '{"messages":[{"role":"user","content":"hi"}],"max_tokens":3}')
check '[ "$code" = 200 ] && [ "$(json $tmp/nomodel d.object)" = chat.completion ]' "no model: 200 from the only pool ($code)"

N=40
body() { # body I STREAM
	echo "{\"model\":\"gemma\",\"messages\":[{\"role\":\"user\",\"content\":\"Request $1: tell me about Paris.\"}],\"max_tokens\":48,\"stream\":$2}"
}
cpids=""
for i in $(seq 1 $N); do
	s=false; [ $((i % 2)) = 0 ] && s=true
	curl -s -m 40 -o "$tmp/out.$i" -D "$tmp/hdr.$i" -w '%{http_code}' "$U/v1/chat/completions" \
		-H 'content-type: application/json' -d "$(body $i $s)" >"$tmp/code.$i" &
	cpids="$cpids $!"
done
# Every request reached A (in flight or queued) before it dies.
check 'wait_for "[ \"\$(curl -fs http://$A/metrics | awk \"/^vllm:num_requests_(running|waiting)/ { s += \\\$NF } END { print s + 0 }\")\" -ge 30 ]" 10' "30+ requests running or waiting on A"
kill -9 "$sim_pid_a"
for p in $cpids; do wait "$p"; done

failed=0; broken=0; europe=0
for i in $(seq 1 $N); do
	code=$(cat "$tmp/code.$i")
	if [ "$code" != 200 ]; then failed=$((failed + 1)); echo "  request $i: $code $(head -c 300 "$tmp/out.$i")"; continue; fi
	if [ $((i % 2)) = 0 ]; then
		if ! grep -q '^data: \[DONE\]' "$tmp/out.$i" || grep -q '"error"' "$tmp/out.$i"; then
			broken=$((broken + 1)); echo "  stream $i broken: $(tail -c 300 "$tmp/out.$i")"
		fi
	fi
	tr -d '\r' <"$tmp/hdr.$i" | grep -qi '^x-infergate-region: europe-west4' && europe=$((europe + 1))
done
check '[ $failed = 0 ]' "$N requests, $failed failed"
check '[ $broken = 0 ]' "$((N / 2)) streams, $broken broken"
check '[ $europe -gt 0 ]' "$europe answered by europe-west4 (the rest resumed there)"
retried=$(curl -fs $U/metrics | awk '/^infergate_retries_total\{/ && !/budget_exhausted/ { s += $NF } END { print s + 0 }')
check '[ "$retried" -ge 11 ]' "$retried retries counted (more than the budget of 11 would allow)"
finish
