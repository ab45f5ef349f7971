#!/bin/sh
# How far `make format` would move the tree: runs clang-format with a style
# file (default: the tree's .clang-format) over every tracked C file under
# src/ and counts the original lines it would change or remove. Changes
# nothing; prints "changed TOTAL_CHANGED of TOTAL lines (P%)" and, with -v,
# the count per file, most first.
#
#   sh scripts/format_drift.sh [-v] [STYLE_FILE]
set -eu
verbose=0
[ "${1:-}" = -v ] && { verbose=1; shift; }
top=$(cd "$(dirname "$0")/.." && pwd)
style=${1:-$top/.clang-format}
style=$(cd "$(dirname "$style")" && pwd)/$(basename "$style")
cd "$top"
CLANG_FORMAT=${CLANG_FORMAT:-$(command -v clang-format-14 || echo clang-format)}
command -v "$CLANG_FORMAT" >/dev/null || { echo "format_drift: $CLANG_FORMAT not found" >&2; exit 1; }
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
git ls-files 'src/*.c' 'src/*.h' | while read -r f; do
	n=$("$CLANG_FORMAT" --style="file:$style" "$f" | diff "$f" - | grep -c '^<' || true)
	echo "$n $(wc -l < "$f") $f"
done > "$tmp"
[ "$verbose" = 1 ] && sort -rn "$tmp" | awk '$1 > 0 { print "  " $1 "\t" $3 }'
awk '{ c += $1; t += $2 } END { printf "changed %d of %d lines (%.2f%%)\n", c, t, t ? 100 * c / t : 0 }' "$tmp"
