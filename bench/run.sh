#!/bin/sh
# make bench: every benchmark in turn, each writing its own table (see bench/*/RESULTS.md
# for recorded runs and what each measures). BENCH=name runs one of them.
set -u
cd "$(dirname "$0")/.."
status=0
for b in proxy routing engine server weights; do
	case "${BENCH:-$b}" in "$b") ;; *) continue ;; esac
	echo "== bench/$b"
	bash "bench/$b/run.sh" || { echo "bench/$b failed" >&2; status=1; }
done
exit $status
