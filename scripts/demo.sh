#!/bin/sh
# make demo: the two-region lab and its drill when the lab is built, otherwise the
# gateway in front of two simulated regions on loopback, failing over.
set -eu
cd "$(dirname "$0")/.."
if [ -x bin/infergate-lab ]; then exec bin/infergate-lab demo; fi
exec sh scripts/demo-sim.sh
