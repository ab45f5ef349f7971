#!/bin/sh
# Builds every tests/fuzz/fuzz_*.c with libFuzzer, ASan and UBSan and runs each
# for SECONDS on a scratch copy of its seed corpus. Prints one line per target
# and exits non-zero when any target fails to build or finds a crash, a leak, a
# timeout or undefined behaviour.
#
#   sh tests/fuzz/run.sh [SECONDS]        SECONDS defaults to 5
#   FUZZ_ONLY=http sh tests/fuzz/run.sh 60    only the targets whose name matches
#
# Layout, per target fuzz_NAME.c:
#   tests/fuzz/corpus/NAME/       seed inputs (copied to a temporary folder, so a
#                                 run never dirties the repository)
#   tests/fuzz/NAME.dict          optional libFuzzer dictionary
#   a line "fuzz-max-len: N" in fuzz_NAME.c sets -max_len (default 4096)
#   a line "fuzz-libs: -lX ..." in fuzz_NAME.c adds libraries to its link
# Every src/core/*.c is compiled once into build/fuzz/obj and archived; each
# target links the archive, so it pulls in only the part of core it uses. A
# core file that does not compile is reported and left out. Crash inputs and
# logs are kept in build/fuzz/artifacts/.
set -u
secs=${1:-5}
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
CLANG=${CLANG:-clang}
only=${FUZZ_ONLY:-}
out=build/fuzz
art=$out/artifacts
mkdir -p "$out/obj" "$art"

if ! command -v "$CLANG" >/dev/null 2>&1; then
	echo "FAIL fuzz: $CLANG not found"
	exit 1
fi

lib=$out/libcore_fuzz.$$.a
tmp=$(mktemp -d "${TMPDIR:-/tmp}/infergate-fuzz.XXXXXX") || exit 1
trap 'rm -rf "$tmp" "$lib"' EXIT
trap 'exit 130' INT TERM

SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
CFLAGS="-std=gnu11 -g -O1 -pthread -D_GNU_SOURCE -Isrc -fno-strict-aliasing -Wno-unused-command-line-argument"
LIBS="-lyaml -lnghttp2 -lssl -lcrypto -luring -lm -lpthread"

# ---- core objects, rebuilt when their source or any core header is newer
newest_h=$(ls -t src/core/*.h 2>/dev/null | head -n 1)
objs=""
for src in src/core/*.c; do
	[ -f "$src" ] || continue
	base=$(basename "$src" .c)
	obj="$out/obj/$base.o"
	extra=""
	case "$base" in
	*_avx2) extra="-mavx2 -mfma -mf16c" ;;
	*_avx512) extra="-mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma -mf16c" ;;
	esac
	if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || { [ -n "$newest_h" ] && [ "$newest_h" -nt "$obj" ]; }; then
		# Built aside and renamed, so runs side by side never see half an object.
		# shellcheck disable=SC2086,SC3013
		if ! $CLANG $CFLAGS $SAN -fsanitize=fuzzer-no-link $extra -c -o "$obj.$$" "$src" 2>"$out/obj/$base.log"; then
			echo "warn fuzz: $src does not compile, left out (see $out/obj/$base.log)"
			rm -f "$obj" "$obj.$$"
			continue
		fi
		mv -f "$obj.$$" "$obj"
	fi
	objs="$objs $obj"
done
# shellcheck disable=SC2086
libarg=""
if [ -n "$objs" ] && ar rcs "$lib" $objs; then libarg=$lib; fi

# ---- targets
failed=0 ran=0
for src in tests/fuzz/fuzz_*.c; do
	[ -f "$src" ] || continue
	name=$(basename "$src" .c)
	short=${name#fuzz_}
	case "$name" in *"$only"*) ;; *) continue ;; esac
	ran=$((ran + 1))
	bin="$out/$name"
	log="$art/$name.log"
	extra_libs=$(sed -n 's/.*fuzz-libs: *\(-l[-a-z0-9_ ]*\).*/\1/p' "$src" | head -n 1)
	# shellcheck disable=SC2086
	if ! $CLANG $CFLAGS $SAN -fsanitize=fuzzer -o "$bin.$$" "$src" \
		$libarg $LIBS $extra_libs >"$log" 2>&1 || ! mv -f "$bin.$$" "$bin"; then
		rm -f "$bin.$$"
		printf 'FAIL %-28s does not build\n' "$name"
		sed 's/^/    | /' "$log" | tail -n 20
		failed=$((failed + 1))
		continue
	fi
	corpus="$tmp/$name"
	mkdir -p "$corpus"
	for seeds in "tests/fuzz/corpus/$short" "tests/fuzz/corpus/$name"; do
		[ -d "$seeds" ] && cp -R "$seeds/." "$corpus/"
	done
	max_len=$(sed -n 's/.*fuzz-max-len: *\([0-9][0-9]*\).*/\1/p' "$src" | head -n 1)
	max_len=${max_len:-4096}
	dict=""
	[ -f "tests/fuzz/$short.dict" ] && dict="-dict=tests/fuzz/$short.dict"
	start=$(date +%s)
	# shellcheck disable=SC2086
	"$bin" -max_total_time="$secs" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$art/$name-" $dict "$corpus" >"$log" 2>&1
	rc=$?
	took=$(( $(date +%s) - start ))
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	cov=$(sed -n 's/.*DONE *cov: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
	if [ "$rc" -eq 0 ]; then
		printf 'ok   %-28s %9s runs  cov %5s  %3ss\n' "$name" "${runs:-?}" "${cov:-?}" "$took"
	else
		printf 'FAIL %-28s exit %s after %ss (log %s)\n' "$name" "$rc" "$took" "$log"
		grep -E 'ERROR|SUMMARY|runtime error|Test unit written' "$log" | head -n 10 | sed 's/^/    | /'
		failed=$((failed + 1))
	fi
done
echo "fuzz: $ran targets, $failed failed"
[ "$failed" -eq 0 ]
