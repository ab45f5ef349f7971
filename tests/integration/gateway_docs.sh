#!/bin/bash
# gateway_docs — every source file of src/gateway is named in docs/gateway.md's
# file table, as gateway_config checks every configuration key and metric: a
# newcomer reading the table finds every file, and a file added or renamed
# without its line fails here.
set -u
top=${IG_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
doc="$top/docs/gateway.md"
table=$(sed -n '/^## Files/,/^## /p' "$doc")
missing="" n=0
for f in "$top"/src/gateway/*.c "$top"/src/gateway/*.h; do
	b=$(basename "$f")
	n=$((n + 1))
	# Named as `src/gateway/x.c` or, on a line that names its folder, as `x.c`.
	printf '%s\n' "$table" | grep -q -e "\`src/gateway/$b\`" -e "\`$b\`" || missing="$missing $b"
done
# The table names no file that is gone.
stale=""
for b in $(printf '%s\n' "$table" | grep -o '`[a-z_/]*\.[ch]`' | tr -d '`' | sed 's|^src/gateway/||'); do
	[ -f "$top/src/gateway/$b" ] || stale="$stale $b"
done
rc=0
if [ "$n" -gt 0 ] && [ -z "$missing" ]; then echo "ok   every src/gateway file ($n) is in docs/gateway.md's file table"
else echo "FAIL files missing from docs/gateway.md's file table:$missing"; rc=1; fi
if [ -z "$stale" ]; then echo "ok   the file table names no file that is gone"
else echo "FAIL the file table names files that do not exist:$stale"; rc=1; fi
exit $rc
