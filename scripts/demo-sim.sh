#!/bin/sh
# demo-sim.sh — what `make demo` runs until the two-region lab exists: the
# gateway in front of two simulated regions on loopback (us-east5 local,
# europe-west4 remote), a question served locally, the US servers killed, the
# same kind of question failing over to Europe with a normal answer.
# Everything it starts is stopped at the end.
set -eu
cd "$(dirname "$0")/.."
BIN=${IG_BIN:-bin}
for p in infergate infergate-sim; do
	[ -x "$BIN/$p" ] || { echo "build first: make build ($BIN/$p is missing)"; exit 1; }
done
base=${DEMO_PORT:-18080}
GW=$base; US1=$((base + 1)); US2=$((base + 2)); EU1=$((base + 3))
MODEL=google/gemma-3-27b-it
tmp=$(mktemp -d)
pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	for p in $pids; do wait "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

say() { printf '\n\033[1m%s\033[0m\n' "$*"; }
wait_url() { i=0; while ! curl -fs -o /dev/null "$1"; do i=$((i + 1)); [ $i -lt 100 ] || return 1; sleep 0.1; done; }

say "1. Two regions of simulated model servers (vLLM stand-ins)"
"$BIN/infergate-sim" --port $US1 --model $MODEL --region us-east5 --log-level warn >"$tmp/us1.log" 2>&1 & US1_PID=$!
"$BIN/infergate-sim" --port $US2 --model $MODEL --region us-east5 --log-level warn >"$tmp/us2.log" 2>&1 & US2_PID=$!
"$BIN/infergate-sim" --port $EU1 --model $MODEL --region europe-west4 --log-level warn >"$tmp/eu1.log" 2>&1 &
pids="$US1_PID $US2_PID $!"
for p in $US1 $US2 $EU1; do wait_url "http://127.0.0.1:$p/health"; done
echo "   us-east5:     127.0.0.1:$US1, 127.0.0.1:$US2"
echo "   europe-west4: 127.0.0.1:$EU1"

say "2. The US gateway in front of both regions"
cat >"$tmp/gateway.yaml" <<YAML
region: us-east5
listen: 127.0.0.1:$GW
regions: { europe-west4: 95ms }
pools:
  - name: gemma-pool
    models: [$MODEL]
    endpoints:
      - { address: "127.0.0.1:$US1", region: us-east5 }
      - { address: "127.0.0.1:$US2", region: us-east5 }
      - { address: "127.0.0.1:$EU1", region: europe-west4 }
    health: { path: /health, interval: 1s, fast_interval: 250ms, timeout: 500ms, rise: 2, fall: 2 }
    backend: { request_timeout: 100s, connect_timeout: 1s }
YAML
sed 's/^/   | /' "$tmp/gateway.yaml"
"$BIN/infergate" -c "$tmp/gateway.yaml" --log-level warn 2>"$tmp/gateway.log" &
pids="$pids $!"
wait_url "http://127.0.0.1:$GW/readyz"

# ask QUESTION: one chat completion through the gateway, printed readably.
ask() {
	start=$(date +%s%N)
	code=$(curl -s -o "$tmp/answer" -D "$tmp/head" -w '%{http_code}' "http://127.0.0.1:$GW/v1/chat/completions" \
		-H 'content-type: application/json' \
		-d "{\"model\":\"$MODEL\",\"messages\":[{\"role\":\"user\",\"content\":\"$1\"}],\"max_tokens\":12}")
	ms=$(( ($(date +%s%N) - start) / 1000000 ))
	region=$(tr -d '\r' <"$tmp/head" | sed -n 's/^x-infergate-region: //Ip')
	endpoint=$(tr -d '\r' <"$tmp/head" | sed -n 's/^x-infergate-endpoint: //Ip')
	text=$(sed -n 's/.*"content":"\([^"]*\)".*/\1/p' "$tmp/answer")
	echo "   Q: $1"
	echo "   A: ${text:-(no answer)}"
	echo "   HTTP $code in $ms ms, served by $endpoint in region ${region:-?}"
}

say "3. Baseline: the US client asks through the US gateway"
ask "What is the capital of France?"

say "4. Outage: both US model servers are killed (SIGKILL)"
kill -9 $US1_PID $US2_PID
wait $US1_PID 2>/dev/null || true
wait $US2_PID 2>/dev/null || true
echo "   killed 127.0.0.1:$US1 and 127.0.0.1:$US2"

say "5. Failover: the same client, the same gateway, right away"
ask "What is the capital of Germany?"

say "6. What the gateway saw"
sleep 1.5
curl -fs "http://127.0.0.1:$GW/status" | sed 's/},{/},\n{/g' | grep -o '"address":"[^"]*","region":"[^"]*"\|"health":"[^"]*"' |
	paste -d' ' - - | sed 's/^/   /'
curl -fs "http://127.0.0.1:$GW/metrics" | grep -E '^infergate_(requests_outside_region_total|retries_total)' | sed 's/^/   /'
grep -E 'down|up' "$tmp/gateway.log" | sed 's/^/   log: /' | head -n 6

say "Done: the failover cost the client nothing but a retry inside the gateway."
