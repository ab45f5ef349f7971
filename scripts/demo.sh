#!/bin/sh
# make demo: the two-region lab (a random-weight 270m-shaped Gemma 3 in an nginx
# bucket, a gateway and a model server per region, 45 ms between the regions)
# and the failover drill, then everything removed again. Prints each phase's
# time, the phase table and the total; the drill's report and timeline stay in
# build/lab-drill.json and build/lab-drill.svg. Flags are passed on to
# `infergate-lab demo` (e.g. --shape tiny, --rate 2, --flavours crash).
set -eu
cd "$(dirname "$0")/.."
if [ ! -x bin/infergate-lab ]; then
	echo "bin/infergate-lab is not built: run make first" >&2
	exit 1
fi
mkdir -p build
tmp=""
if [ -n "${INFERGATE_LAB_STATE:-}" ]; then
	state=$INFERGATE_LAB_STATE
else
	tmp=$(mktemp -d /tmp/infergate-demo.XXXXXX)
	state=$tmp/state
fi
rc=0
bin/infergate-lab demo --state "$state" --json build/lab-drill.json --svg build/lab-drill.svg "$@" || rc=$?
[ -z "$tmp" ] || rmdir "$tmp" 2>/dev/null || true
exit $rc
