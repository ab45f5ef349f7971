# lib.sh — helpers of the infergate-server integration tests (sourced by
# tests/integration/server_*.sh). Gives: a temp dir $T, make_model, start_server
# (port 0, the bound port read from its first line, then /health waited for),
# stop_server (SIGTERM, bounded wait, exit status checked: sanitizer reports fail
# the test), post/get helpers on curl, jq-like checks through python3, metric
# reads, and a trap that stops everything the test started.
set -u
IG_TOP=${IG_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
IG_BIN=${IG_BIN:-$IG_TOP/build/san/bin}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
T=$(mktemp -d /tmp/ig-server-test.XXXXXX)
SRV_PIDS=""
BG_PIDS=""
SRV_N=0

srv_cleanup() {
	status=$?
	for p in $BG_PIDS; do kill "$p" 2>/dev/null; done
	for p in $SRV_PIDS; do kill -TERM "$p" 2>/dev/null; done
	for p in $SRV_PIDS; do
		for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
		rc=$?
		if [ "$rc" -ne 0 ] && [ "$(cat "$T/expect_death.$p" 2>/dev/null)" != 1 ]; then
			echo "FAIL: infergate-server $p exited with status $rc"
			grep -v ' info: ' "$T"/srv*.err 2>/dev/null | tail -40
			status=1
		fi
	done
	for p in $BG_PIDS; do wait "$p" 2>/dev/null; done
	rm -rf "$T"
	exit $status
}
trap srv_cleanup EXIT

fail() { echo "FAIL: $*"; for f in "$T"/srv*.err; do [ -f "$f" ] && grep -v ' info: ' "$f" | tail -15; done; exit 1; }
ok() { echo "ok   $*"; }

# make_model DIR [shape] [seed] [mkmodel flags...]: a random-weight checkpoint
# with the real tokenizer.
make_model() {
	local dir=$1 shape=${2:-tiny} seed=${3:-1}
	shift; [ $# -gt 0 ] && shift; [ $# -gt 0 ] && shift
	"$IG_BIN/infergate-mkmodel" --shape "$shape" --seed "$seed" "$@" "$dir" >/dev/null 2>&1 ||
		"$IG_TOP/bin/infergate-mkmodel" --shape "$shape" --seed "$seed" "$@" "$dir" >/dev/null ||
		fail "mkmodel $dir"
}

# start_server VAR [flags...]: VAR gets the port, VAR_PID the pid; waits (up to
# 120 s under sanitizers) for /health 200 unless NO_WAIT=1.
start_server() {
	var=$1; shift
	SRV_N=$((SRV_N + 1))
	out="$T/srv$SRV_N.out"
	"${SERVER_BIN:-$IG_BIN/infergate-server}" --host 127.0.0.1 --port 0 "$@" >"$out" 2>"$T/srv$SRV_N.err" &
	pid=$!
	SRV_PIDS="$SRV_PIDS $pid"
	port=""
	for _ in $(seq 1 200); do
		port=$(sed -n 's/.*listening on [^ ]*:\([0-9][0-9]*\) .*/\1/p' "$out")
		[ -n "$port" ] && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	[ -n "$port" ] || { cat "$T/srv$SRV_N.err"; fail "infergate-server $* did not start"; }
	eval "$var=$port; ${var}_PID=$pid"
	if [ "${NO_WAIT:-0}" != 1 ]; then
		for _ in $(seq 1 1200); do
			[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health")" = 200 ] && return 0
			kill -0 "$pid" 2>/dev/null || fail "infergate-server died while loading"
			sleep 0.1
		done
		fail "infergate-server on $port not healthy in 120 s"
	fi
}

# stop_server PID: SIGTERM, wait up to 30 s, require exit status 0.
stop_server() {
	kill -TERM "$1" 2>/dev/null
	for _ in $(seq 1 300); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$1" 2>/dev/null && { kill -KILL "$1"; fail "server $1 did not stop in 30 s"; }
	wait "$1"
	rc=$?
	SRV_PIDS=$(echo "$SRV_PIDS" | tr ' ' '\n' | grep -vx "$1" | tr '\n' ' ')
	[ "$rc" -eq 0 ] || fail "server $1 exited with $rc"
}

# post PORT PATH JSON OUTFILE: prints the status code; the body goes to OUTFILE.
post() { curl -s -m 120 -o "$4" -w '%{http_code}' -H 'Content-Type: application/json' --data-binary "$3" "http://127.0.0.1:$1$2"; }
get() { curl -s -m 30 -o "$3" -w '%{http_code}' "http://127.0.0.1:$1$2"; }

# jcheck FILE 'python expression over d' 'what'
jcheck() {
	python3 - "$1" "$2" <<'PY' || fail "$3: $(head -c 600 "$1")"
import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(0 if eval(sys.argv[2]) else 1)
PY
}

# jget FILE 'python expression over d': prints the value.
jget() {
	python3 - "$1" "$2" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
v = eval(sys.argv[2])
print(v if not isinstance(v, (dict, list)) else json.dumps(v))
PY
}

# metric PORT NAME [LABEL_SUBSTRING]: the value of the first matching sample.
metric() {
	curl -s -m 10 "http://127.0.0.1:$1/metrics" | awk -v n="$2" -v l="${3:-}" '
		$1 ~ ("^" n "({|$)") && index($1, l) { print $2; exit }'
}
