#!/bin/sh
# make demo: the two-region lab (a random-weight 270m-shaped Gemma 3 in an nginx
# bucket, a gateway and a model server per region, 45 ms between the regions)
# and the failover drill, then everything removed again. Prints the phase table;
# the drill's report and timeline stay in lab-drill.json and lab-drill.svg.
# Until the lab is built: the gateway in front of two simulated regions.
set -eu
cd "$(dirname "$0")/.."
if [ -x bin/infergate-lab ]; then
	state=${INFERGATE_LAB_STATE:-$(mktemp -d /tmp/infergate-demo.XXXXXX)/state}
	exec bin/infergate-lab demo --state "$state" "$@"
fi
echo "bin/infergate-lab is not built: run make first" >&2
exit 1
