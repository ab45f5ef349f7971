#!/usr/bin/env bash
# lab_down: `infergate-lab down` after `up` was killed with SIGKILL half-way
# (once while the network is being built, once after the servers started)
# leaves no namespace, no process and no mount behind, and a second `down`
# is fine. Also: `down` of a folder that holds no lab does nothing.
set -u
IG_TOP=${IG_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
IG_BIN=${IG_BIN:-$IG_TOP/build/san/bin}
LAB="$IG_BIN/infergate-lab"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
T=$(mktemp -d /tmp/ig-lab-down.XXXXXX)
UP_PID=""
cleanup() {
	[ -n "$UP_PID" ] && kill -9 "$UP_PID" 2>/dev/null
	for s in "$T"/s*; do [ -d "$s" ] && timeout 60 "$LAB" down --state "$s" >/dev/null 2>&1; done
	rm -rf "$T"
}
trap cleanup EXIT INT TERM
fail() { echo "FAIL: $*"; exit 1; }
ok() { echo "ok: $*"; }

# Processes whose environment carries the lab id.
lab_procs() {
	grep -l -s -a -x -z "INFERGATE_LAB_ID=$1" /proc/[0-9]*/environ 2>/dev/null | wc -l
}

# kill_up_when STATE CONDITION-PYTHON: starts up, kills it -9 once CONDITION
# holds on state.json (or after 120 s), leaves the lab id in $ID.
kill_up_when() {
	local s=$1 cond=$2
	"$LAB" up --state "$s" --shape tiny --threads 1 >"$s.up.log" 2>&1 &
	UP_PID=$!
	for _ in $(seq 1 1200); do
		if [ -f "$s/state.json" ] && python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if eval(sys.argv[2]) else 1)' "$s/state.json" "$cond" 2>/dev/null; then
			break
		fi
		kill -0 "$UP_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -9 "$UP_PID" 2>/dev/null
	wait "$UP_PID" 2>/dev/null
	UP_PID=""
	ID=$(cat "$s/id")
	[ -n "$ID" ] || fail "no lab id in $s"
}

check_clean() { # state dir, id
	local s=$1 id=$2
	ip netns list 2>/dev/null | grep -q "^$id-" && fail "namespaces left: $(ip netns list | grep "^$id-")"
	[ "$(lab_procs "$id")" = 0 ] || fail "processes of lab $id left: $(lab_procs "$id")"
	grep -q " $s" /proc/self/mounts && fail "mounts left under $s"
	[ -e "$s" ] && fail "state folder $s left"
	return 0
}

echo "== killed while the network is being built"
S1="$T/s1"
kill_up_when "$S1" 'len(d["netns"])>=2 or d["mode"]=="loopback"'
echo "up killed: $(tail -1 "$S1.up.log")"
timeout 60 "$LAB" down --state "$S1" || fail "down after an early kill"
check_clean "$S1" "$ID"
ok "down after a kill during the network build: nothing left (lab $ID)"

echo "== killed after the servers started"
S2="$T/s2"
kill_up_when "$S2" 'any(n["role"]=="server" and n["pid"]>0 for n in d["nodes"]) and any(n["role"]=="relay" or n["role"]=="gateway" for n in d["nodes"])'
n=$(lab_procs "$ID")
[ "$n" -ge 2 ] || fail "expected lab processes running after the kill, found $n"
echo "up killed with $n lab processes running: $(tail -1 "$S2.up.log")"
timeout 60 "$LAB" down --state "$S2" || fail "down after a late kill"
check_clean "$S2" "$ID"
ok "down after a kill with servers running: $n processes stopped, nothing left (lab $ID)"

timeout 60 "$LAB" down --state "$S2" || fail "second down"
ok "down twice is fine"

mkdir -p "$T/s3"
echo keep >"$T/s3/file"
timeout 10 "$LAB" down --state "$T/s3" && fail "down removed a folder that holds no lab"
[ -f "$T/s3/file" ] || fail "down touched a folder that holds no lab"
ok "down leaves a folder without a lab alone"
echo "PASS"
