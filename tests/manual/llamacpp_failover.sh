#!/bin/bash
# llamacpp_failover — by hand, not in CI: the failover scenario of
# tests/integration/gateway_llamacpp.sh against real llama.cpp servers.
# Two `llama-server -np 2 --metrics` on loopback, one per region, behind the
# gateway (pool dialect auto: read from their llamacpp: metrics); a steady
# ~4 requests/s of short chats, half streaming, half without `model`; the
# local server killed with SIGKILL after 3 s. Prints requests, failures and
# broken streams; exits 1 if any failed or broke.
#
#   [HEALTH_TIMEOUT=1s] LLAMA_SERVER=/path/to/llama-server LLAMA_MODEL=/path/to/model.gguf \
#     bash tests/manual/llamacpp_failover.sh
#
# Skips (exit 0) when LLAMA_SERVER or LLAMA_MODEL is not set or not there.
# IG_BIN picks the infergate binaries (default build/bin).
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
export IG_BIN=${IG_BIN:-$top/build/bin}
LLAMA_SERVER=${LLAMA_SERVER:-}
LLAMA_MODEL=${LLAMA_MODEL:-}
if [ ! -x "$LLAMA_SERVER" ] || [ ! -f "$LLAMA_MODEL" ]; then
	echo "skip: set LLAMA_SERVER (a llama-server binary) and LLAMA_MODEL (a GGUF file)"
	exit 0
fi
. "$top/tests/lib/gateway/lib.sh"
gw_init llamacpp_failover
P=$base
A=127.0.0.1:$((P + 1)); C=127.0.0.1:$((P + 2))
# llama_start NAME PORT: a llama-server on loopback; its pid in llama_pid_NAME.
llama_start() {
	"$LLAMA_SERVER" -m "$LLAMA_MODEL" --host 127.0.0.1 --port "$2" -np 2 --metrics -t 1 -c 2048 \
		>"$tmp/$1.log" 2>&1 &
	local p=$!
	pids="$pids $p"
	eval "llama_pid_$1=$p"
	wait_for "curl -fs -o /dev/null http://127.0.0.1:$2/health" 120 || { echo "llama-server $1 did not start"; tail "$tmp/$1.log"; exit 1; }
}
llama_start a $((P + 1))
llama_start c $((P + 2))
cat >"$tmp/gw.yaml" <<YAML
region: us-east5
listen: 127.0.0.1:$P
regions: { europe-west4: 95ms }
pools:
  - name: llama
    endpoints:
      - { address: "$A", region: us-east5 }
      - { address: "$C", region: europe-west4 }
    health: { path: /health, interval: ${HEALTH_INTERVAL:-1s}, fast_interval: 100ms, timeout: ${HEALTH_TIMEOUT:-1s}, rise: 2, fall: 2 }
YAML
gw_start "$tmp/gw.yaml"
U=$gw_url
wait_for "[ \"\$(metric $U 'infergate_scrapes_total{pool=\"llama\",endpoint=\"$A\",result=\"ok\"}')\" -gt 0 ]" 10
N=${REQUESTS:-40}
cpids=""
for i in $(seq 1 "$N"); do   # 4 per second
	s=false; [ $((i % 2)) = 0 ] && s=true
	m=""; [ $((i % 4)) -lt 2 ] && m='"model":"anything",'
	curl -s -m 120 -o "$tmp/o.$i" -w '%{http_code}' $U/v1/chat/completions -H 'content-type: application/json' \
		-d "{$m\"messages\":[{\"role\":\"user\",\"content\":\"Request $i: say something about rivers.\"}],\"max_tokens\":24,\"stream\":$s}" >"$tmp/c.$i" &
	cpids="$cpids $!"
	[ "$i" = 12 ] && kill -9 "$llama_pid_a"   # after 3 s
	sleep 0.25
done
for p in $cpids; do wait "$p"; done
failed=0; broken=0; streams=0
for i in $(seq 1 "$N"); do
	[ $((i % 2)) = 0 ] && streams=$((streams + 1))
	if [ "$(cat $tmp/c.$i)" != 200 ]; then failed=$((failed + 1)); echo "  $i: $(cat $tmp/c.$i) $(head -c 200 $tmp/o.$i)"; continue; fi
	if [ $((i % 2)) = 0 ] && { ! grep -q '^data: \[DONE\]' $tmp/o.$i || grep -q '"error"' $tmp/o.$i; }; then
		broken=$((broken + 1)); echo "  stream $i broken: $(tail -c 200 $tmp/o.$i)"
	fi
done
echo "llama.cpp failover: requests $N, failed $failed, streams $streams, broken $broken"
echo "resumes: $(curl -fs $U/metrics | grep '^infergate_resumes_total' | tr '\n' ' ')"
echo "log lines about the killed server: $(grep -c "$A" "$tmp/gw.log")"
check '[ $failed = 0 ]' "$N requests, $failed failed"
check '[ $broken = 0 ]' "$streams streams, $broken broken"
finish
