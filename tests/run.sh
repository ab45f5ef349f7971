#!/bin/sh
# Runs every test: the unit-test programs of BUILD/tests, every integration
# script in tests/integration (each gets IG_BIN, the folder of the programs
# under test), and the fuzz targets briefly. Prints one line per test and a
# closing count; exits non-zero when anything failed.
#
#   sh tests/run.sh [BUILD]       BUILD defaults to build/san
#   TESTS=pattern sh tests/run.sh runs only the tests whose name matches
set -u
build=${1:-build/san}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
export IG_BIN="$top/$build/bin"
export IG_TOP="$top"
unset VLLM_API_KEY   # servers under test are open unless a test gives them a key
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
out="$top/tests/out"
mkdir -p "$out"
pattern=${TESTS:-}
passed=0 failed=0 failures=""

run_one() { # name, command...
	name=$1; shift
	case "$name" in *"$pattern"*) ;; *) return 0 ;; esac
	start=$(date +%s)
	mkdir -p "$(dirname "$out/$name.log")"
	# A script that could not source its helpers or call one of them may
	# still end with a passing command: bash's own errors fail the test.
	if "$@" >"$out/$name.log" 2>&1 &&
		! grep -Eq '^[^ ]+: line [0-9]+: .*(command not found|No such file or directory)$' "$out/$name.log"; then
		passed=$((passed + 1)); status=ok
	else
		failed=$((failed + 1)); status=FAIL; failures="$failures $name"
	fi
	printf '%-4s %-40s %3ss\n' "$status" "$name" "$(( $(date +%s) - start ))"
	if [ "$status" = FAIL ]; then
		# The failed checks first (they may lie far above the log's tail), then the tail.
		grep -E '^(FAIL|not ok)' "$out/$name.log" | head -n 10 | sed 's/^/    > /'
		tail -n 30 "$out/$name.log" | sed 's/^/    | /'
	fi
}

for t in "$build"/tests/test_*; do
	[ -x "$t" ] || continue
	run_one "unit/$(basename "$t")" "$t"
done
for t in tests/integration/*.sh; do
	[ -f "$t" ] || continue
	run_one "integration/$(basename "$t" .sh)" timeout 600 bash "$t"
done
if [ -z "$pattern" ] || [ "$pattern" = fuzz ]; then
	if command -v clang >/dev/null 2>&1; then
		run_one "fuzz/smoke" sh tests/fuzz/run.sh "${FUZZ_SMOKE_SECONDS:-5}"
	fi
fi

echo
[ -n "$failures" ] && echo "failed:$failures"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
