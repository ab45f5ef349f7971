#!/usr/bin/env bash
# bench/server/startup.sh — time from exec of infergate-server to its first
# /health 200: the model folder (or URL) already in the page cache, the best and
# the median of RUNS starts. /health is polled every 10 ms over bash's
# /dev/tcp (no process per poll, so the poll itself costs well under a
# millisecond; each read bounded by 1 s; at most TIMEOUT_S seconds per start).
#
#   bash bench/server/startup.sh MODEL [extra infergate-server flags...]
#
# MODEL is a folder or a URL (then pass --cache-dir DIR: the first start, not
# counted, fills the cache; the timed starts find it warm). Prints one line per
# start and a summary line "startup_ms best B median M (N runs) MODEL".
# Environment: BIN (default: bin/ of this tree), RUNS (5), TIMEOUT_S (60),
# PORT (default: 18300 + a number from the shell's pid).
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
bin=${BIN:-$top/bin}
runs=${RUNS:-5}
timeout_s=${TIMEOUT_S:-60}
[ $# -ge 1 ] || { echo "usage: $0 MODEL [server flags...]" >&2; exit 2; }
model=$1; shift
port=${PORT:-$((18300 + $$ % 500))}
work=$(mktemp -d /tmp/ig-startup.XXXXXX)
pid=""
cleanup() { [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

# Sets now to the wall clock in ms (no subshell: polls stay cheap).
now_ms() { local t=${EPOCHREALTIME/./}; now=$((t / 1000)); }

# Sets code to the status of GET /health, or "" when nobody answers.
health() {
	local line=""
	code=""
	{ exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null || return 0
	printf 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3 2>/dev/null
	read -r -t 1 line <&3 2>/dev/null
	exec 3<&-
	line=${line#* }
	code=${line%% *}
}

# One start; sets ms to the milliseconds to the first 200, or "fail".
one_start() {
	local t0 t deadline
	now_ms; t0=$now
	"$bin/infergate-server" --model "$model" --host 127.0.0.1 --port "$port" --disable-log-requests "$@" \
		>"$work/out" 2>"$work/err" &
	pid=$!
	deadline=$((t0 + timeout_s * 1000))
	while :; do
		health
		now_ms; t=$now
		[ "$code" = 200 ] && break
		if ! kill -0 "$pid" 2>/dev/null || [ "$t" -ge "$deadline" ]; then t=fail; break; fi
		sleep 0.01
	done
	kill -TERM "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	pid=""
	if [ "$t" = fail ]; then ms=fail; tail -3 "$work/err" >&2; else ms=$((t - t0)); fi
}

case "$model" in
*://*) one_start "$@"; echo "# first start (fills the cache, not counted): $ms ms" ;;
*) cat "$model"/* >/dev/null 2>&1 ;;   # into the page cache
esac
all=""
for i in $(seq 1 "$runs"); do
	one_start "$@"
	echo "start $i: $ms ms"
	[ "$ms" = fail ] && exit 1
	all="$all $ms"
	grep -E 'loaded in|ready' "$work/err" | sed 's/^/#   /' | head -2
done
echo "$all" | tr ' ' '\n' | grep . | sort -n | awk -v m="$model" '
	{ v[NR] = $1 } END { printf "startup_ms best %d median %d (%d runs) %s\n", v[1], v[int((NR + 1) / 2)], NR, m }'
