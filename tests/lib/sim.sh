# Sourced by tests/integration/sim_*.sh: starts infergate-sim on free ports
# (port 0, the bound port read from its first line), stops every simulator at
# exit and fails the test if one did not exit cleanly (sanitizer reports
# included), and small check helpers (JSON checks through python3).
set -u
SIM_PIDS=""
SIM_TMP=$(mktemp -d /tmp/ig-sim-test.XXXXXX)
SIM_N=0
BG_PIDS=""

sim_cleanup() {
	status=$?
	for p in $BG_PIDS; do kill "$p" 2>/dev/null; done
	for p in $SIM_PIDS; do kill -TERM "$p" 2>/dev/null; done
	for p in $SIM_PIDS; do
		# Bounded: a simulator that does not stop in 5 s is killed.
		for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
		rc=$?
		if [ "$rc" -ne 0 ] && [ "$(cat "$SIM_TMP/expect_death.$p" 2>/dev/null)" != 1 ]; then
			echo "FAIL: simulator $p exited with status $rc"
			cat "$SIM_TMP"/*.err 2>/dev/null | grep -v ' info: ' | tail -40
			status=1
		fi
	done
	for p in $BG_PIDS; do wait "$p" 2>/dev/null; done
	rm -rf "$SIM_TMP"
	exit $status
}
trap sim_cleanup EXIT

# The system python starts in tens of ms; a version-manager shim can take a second.
if [ -x /usr/bin/python3 ]; then python3() { /usr/bin/python3 "$@"; }; fi

fail() { echo "FAIL: $*"; exit 1; }
ok() { echo "ok   $*"; }

# start_sim VAR [flags...]: starts a simulator; VAR gets its port, VAR_PID its pid.
start_sim() {
	var=$1; shift
	SIM_N=$((SIM_N + 1))
	out="$SIM_TMP/sim$SIM_N.out"
	"$IG_BIN/infergate-sim" --port 0 "$@" >"$out" 2>"$SIM_TMP/sim$SIM_N.err" &
	pid=$!
	SIM_PIDS="$SIM_PIDS $pid"
	port=""
	for _ in $(seq 1 100); do
		port=$(sed -n 's/.*listening on [^ ]*:\([0-9][0-9]*\) .*/\1/p' "$out")
		[ -n "$port" ] && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	[ -n "$port" ] || { cat "$SIM_TMP/sim$SIM_N.err"; fail "infergate-sim $* did not start"; }
	eval "$var=$port; ${var}_PID=$pid"
}

# The simulator pid may die on purpose (die_after_requests).
expect_death() { echo 1 >"$SIM_TMP/expect_death.$1"; }

# jcheck FILE 'python expression over d' 'what'
jcheck() {
	python3 - "$1" "$2" <<'PY' || fail "$3"
import json, sys
d = json.load(open(sys.argv[1]))
if not eval(sys.argv[2]):
    print("  got:", json.dumps(d)[:600]); sys.exit(1)
PY
	ok "$3"
}

# metric PORT 'name{labels...}' prints the first sample value whose line starts so.
metric() {
	curl -s -m 5 "http://127.0.0.1:$1/metrics" | awk -v k="$2" 'index($0, k) == 1 { print $NF; exit }'
}

# post PORT PATH JSON OUTFILE: prints the status code
post() {
	curl -s -m 20 -o "$4" -w '%{http_code}' -H 'Content-Type: application/json' \
		-d "$3" "http://127.0.0.1:$1$2"
}

# Floating-point comparison: fcmp 'a < b' with awk.
fcmp() { awk "BEGIN { exit !($1) }"; }
