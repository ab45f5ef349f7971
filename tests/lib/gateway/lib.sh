#!/bin/bash
# lib.sh — shared helpers of the gateway integration tests (sourced):
# free port blocks, simulators and gateways started in the background and
# killed by the EXIT trap, bounded waits, checks that print what they check.
#
#   . "$IG_TOP/tests/lib/gateway/lib.sh"; gw_init NAME
#   sim_start NAME PORT [sim flags...]     gw_start CONFIG [flags...]
#   sims_two_regions (A, B in us-east5; C in europe-west4)
#   ok/fail/check COND WHAT, json FILE-OR-STRING PYEXPR
set -u
top=${IG_TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)}
bin=${IG_BIN:-$top/build/san/bin}
GW="$bin/infergate"
SIM="$bin/infergate-sim"
NODE_READER="$top/tests/lib/gateway/sse_reader.js"
export NODE_PATH="$top/tests/node/node_modules"
pids=""
failures=0
tmp=""

cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	for p in $pids; do
		for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
		kill -9 "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	[ -n "$tmp" ] && rm -rf "$tmp"
}

# gw_init NAME: a scratch folder and a block of 20 free ports from a hash of NAME,
# below the kernel's ephemeral range (32768-60999), where client sockets of other
# tests could hold a port the block needs.
gw_init() {
	tmp=$(mktemp -d)
	trap cleanup EXIT
	local h
	h=$(printf '%s' "$1" | cksum | cut -d' ' -f1)
	for try in $(seq 0 15); do
		base=$((10000 + (h + try * 977) % 20000 / 20 * 20))
		local busy=0
		for off in 0 1 2 3 4 5 6; do
			if (exec 3<>/dev/tcp/127.0.0.1/$((base + off))) 2>/dev/null; then busy=1; break; fi
		done
		[ $busy = 0 ] && break
	done
	echo "ports from $base, scratch $tmp"
}

ok() { echo "ok   $*"; }
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
# check "shell condition" "what"
check() { if eval "$1"; then ok "$2"; else fail "$2 [$1]"; fi; }

# json SOURCE EXPR: SOURCE is a file or a JSON string; prints the JavaScript
# expression EXPR evaluated with d bound to the parsed JSON (strings bare).
json() {
	node -e '
const fs = require("fs");
const src = process.argv[1];
let d;
try { d = JSON.parse(fs.existsSync(src) ? fs.readFileSync(src, "utf8") : src); } catch (e) { console.log("unparsable"); process.exit(0); }
const v = eval(process.argv[2]);
console.log(typeof v === "string" ? v : JSON.stringify(v));' "$1" "$2"
}

# wait_for "shell condition" SECONDS: polls every 0.1 s; returns 1 on timeout.
wait_for() {
	local n=$(($2 * 10))
	for _ in $(seq 1 $n); do
		if eval "$1"; then return 0; fi
		sleep 0.1
	done
	return 1
}

# sim_start NAME PORT [flags]: an infergate-sim, log in $tmp/NAME.log; its pid in sim_pid_NAME.
sim_start() {
	local name=$1 port=$2; shift 2
	"$SIM" --port "$port" --log-level warn "$@" >"$tmp/$name.log" 2>&1 &
	local p=$!
	pids="$pids $p"
	eval "sim_pid_$name=$p"
	wait_for "curl -fs -o /dev/null http://127.0.0.1:$port/health" 10 || { echo "sim $name did not start"; cat "$tmp/$name.log"; exit 1; }
}

# sims_two_regions: the two-region picture of the picker and failover tests,
# model gemma: simulators a and b in us-east5 on base+1 and base+2, c in
# europe-west4 on base+3; A, B and C are their addresses.
sims_two_regions() {
	A=127.0.0.1:$((base + 1)); B=127.0.0.1:$((base + 2)); C=127.0.0.1:$((base + 3))
	sim_start a $((base + 1)) --model gemma --region us-east5
	sim_start b $((base + 2)) --model gemma --region us-east5
	sim_start c $((base + 3)) --model gemma --region europe-west4
}

# gw_start CONFIG [flags]: the gateway; waits for /healthz. gw_pid, gw_url.
gw_start() {
	local cfg=$1; shift
	local port
	port=$(sed -n 's/^listen: *[^:]*:\([0-9]*\).*/\1/p' "$cfg" | head -n 1)
	"$GW" -c "$cfg" "$@" >"$tmp/gw.out" 2>"$tmp/gw.log" &
	gw_pid=$!
	pids="$pids $gw_pid"
	gw_url="http://127.0.0.1:$port"
	wait_for "curl -fs -o /dev/null $gw_url/healthz" 10 || { echo "gateway did not start"; cat "$tmp/gw.log"; exit 1; }
}

# faults PORT JSON: sets faults of the sim on PORT.
faults() { curl -fs -o /dev/null -X POST "http://127.0.0.1:$1/sim/faults" -d "$2"; }

# ep_state URL ADDRESS: the health state of an endpoint in /status.
ep_state() {
	json "$(curl -fs "$1/status")" "(() => { for (const p of d.pools) for (const e of p.endpoints) if (e.address === '$2') return e.health; return 'absent'; })()"
}

# chat URL MODEL [extra json]: a small non-streamed chat; headers in $tmp/h, body in $tmp/b; prints the status.
chat() {
	local extra=${3:-}
	curl -s -o "$tmp/b" -D "$tmp/h" -w '%{http_code}' "$1/v1/chat/completions" -H 'content-type: application/json' \
		-d "{\"model\":\"$2\",\"messages\":[{\"role\":\"user\",\"content\":\"What is the capital of France?\"}],\"max_tokens\":5$extra}"
}
hdr() { tr -d '\r' <"$tmp/h" | sed -n "s/^$1: //Ip" | head -n 1; }

# metric URL 'name{labels}': the value of one series (0 when absent).
metric() {
	curl -fs "$1/metrics" | awk -v k="$2" 'index($0, k) == 1 { v = $NF } END { print (v == "" ? 0 : v) }'
}

finish() {
	# A gateway that was stopped must have exited clean under the sanitizers.
	if [ -n "${gw_pid:-}" ]; then
		kill -TERM "$gw_pid" 2>/dev/null
		wait_for "! kill -0 $gw_pid 2>/dev/null" 10
	fi
	if grep -qE "AddressSanitizer|LeakSanitizer|runtime error" "$tmp/gw.log" 2>/dev/null; then
		fail "the gateway's sanitizers reported an error"
		grep -E -A20 "AddressSanitizer|LeakSanitizer|runtime error" "$tmp/gw.log" | head -n 60
	else
		ok "no sanitizer report from the gateway"
	fi
	if [ "$failures" -ne 0 ]; then
		echo "$failures checks failed"
		echo "---- gateway log"; tail -n 40 "$tmp/gw.log" 2>/dev/null
		exit 1
	fi
	echo "all checks passed"
	exit 0
}
