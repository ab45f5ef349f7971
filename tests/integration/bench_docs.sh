#!/bin/bash
# bench_docs — every flag infergate-bench's --help lists is documented in
# docs/bench.md, and every flag the docs' tables name is one --help knows.
set -eu
top=${IG_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
bin=${IG_BIN:-$top/build/san/bin}
bench="$bin/infergate-bench"
doc="$top/docs/bench.md"
[ -x "$bench" ] || { echo "missing $bench"; exit 1; }
help=$("$bench" --help)
flags=$(printf '%s\n' "$help" | grep -o -- '--[a-z][a-z-]*' | sort -u)
missing=0
for f in $flags; do
	if grep -q -- "\`$f" "$doc"; then echo "ok   $f documented"; else echo "FAIL $f not in docs/bench.md"; missing=1; fi
done
for f in $(grep '^| `--' "$doc" | grep -o -- '`--[a-z][a-z-]*' | tr -d '`' | sort -u); do
	if printf '%s\n' "$flags" | grep -qx -- "$f"; then :; else echo "FAIL $f documented but unknown to --help"; missing=1; fi
done
[ "$missing" -eq 0 ]
echo "bench_docs: every flag documented"
