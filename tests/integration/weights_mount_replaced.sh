#!/usr/bin/env bash
# weights_mount_replaced: an object replaced at the source while the mount
# reads it (tests/lib/weights/objserver.py's /replaced/: the first GET gets version
# v1, every later one v2, If-Match honoured) — through the file cache and read
# straight from the source (a file bigger than the cache): a read fails with
# EIO and the daemon logs why, a reader never gets bytes of both versions.
# Skips (exit 0, with a message) when FUSE is not available.
. "$(dirname "$0")/../lib/weights/lib.sh"
need_fuse
OBJ="$IG_TOP/tests/lib/weights/objserver.py"
FP=$((PORT + 3))
F="http://127.0.0.1:$FP"
for d in r1 r2 r3; do
	mkdir -p "$T/f/$d"
	head -c 3000000 /dev/urandom >"$T/f/$d/w.bin"
	head -c 3000000 /dev/urandom >"$T/f/$d/w.bin.v2"
	printf '[{"name":"w.bin","type":"file","mtime":"x","size":3000000}]' >"$T/f/$d/.listing.json"
done
mkdir -p "$T/mnt1" "$T/mnt2" "$T/mnt3"
python3 "$OBJ" fault "$FP" "$T/f" & PIDS="$PIDS $!"
wait_port "$FP" || fail "the fault server did not start"

mount_it() { # SOURCE MOUNTPOINT LOG [options]
	src=$1 mnt=$2 log=$3
	shift 3
	"$W" mount "$src" "$mnt" --cache-dir "$T/cache" --chunk-size 1MiB --connections 1 --foreground "$@" 2>>"$log" &
	PIDS="$PIDS $!"
	for _ in $(seq 1 100); do mountpoint -q "$mnt" && return 0; sleep 0.1; done
	if grep -q 'FUSE is not available\|cannot mount' "$log"; then
		echo "SKIP: FUSE mount not possible here: $(tail -1 "$log")"
		exit 0
	fi
	fail "mount did not come up: $(cat "$log")"
}

# read_whole MOUNTED_FILE SOURCE_DIR LOG WHAT: the read fails, or gives one version whole.
read_whole() {
	if cat "$1" >"$T/out" 2>"$T/cat.err"; then
		cmp -s "$T/out" "$2/w.bin" || cmp -s "$T/out" "$2/w.bin.v2" ||
			fail "$4: the reader got a file mixing two versions"
		check "$4: the read gave one version whole"
	else
		grep -q 'Input/output error' "$T/cat.err" || fail "$4: unexpected read error: $(cat "$T/cat.err")"
		for _ in $(seq 1 50); do grep -q 'changed at the source' "$3" && break; sleep 0.1; done
		grep -q 'w.bin changed at the source' "$3" || fail "$4: no reason logged: $(cat "$3")"
		check "$4: EIO, logged: $(grep -o 'w.bin changed at the source[^;]*' "$3" | head -1)"
	fi
}

echo "== through the file cache"
mount_it "$F/replaced/r1/" "$T/mnt1" "$T/m1.log"
read_whole "$T/mnt1/w.bin" "$T/f/r1" "$T/m1.log" "cached"
[ -n "$(find "$T/cache" -path '*objects/w.bin' 2>/dev/null)" ] &&
	! cmp -s "$(find "$T/cache" -path '*objects/w.bin' | head -1)" "$T/f/r1/w.bin.v2" &&
	! cmp -s "$(find "$T/cache" -path '*objects/w.bin' | head -1)" "$T/f/r1/w.bin" &&
	fail "a mixed object entered the cache"

echo "== straight from the source (bigger than the cache)"
mount_it "$F/replaced/r2/" "$T/mnt2" "$T/m2.log" --cache-capacity 1MB
read_whole "$T/mnt2/w.bin" "$T/f/r2" "$T/m2.log" "from the source"

# The first answer (v1) comes a second late: reads the kernel sends meanwhile
# (readahead, in parallel) carry no version yet and get v2 at once; the late
# v1 must then fail the read, not be served beside them.
echo "== straight from the source, the first answer late"
mount_it "$F/replaced-slow/r3/" "$T/mnt3" "$T/m3.log" --cache-capacity 1MB
read_whole "$T/mnt3/w.bin" "$T/f/r3" "$T/m3.log" "from the source, first answer late"
fusermount3 -u "$T/mnt1" 2>/dev/null
fusermount3 -u "$T/mnt2" 2>/dev/null
fusermount3 -u "$T/mnt3" 2>/dev/null
echo "weights_mount_replaced: all checks passed"
