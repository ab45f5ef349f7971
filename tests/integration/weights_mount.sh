#!/usr/bin/env bash
# weights_mount: `infergate-weights mount` (FUSE, read-only) over an nginx
# bucket: implicit directories; byte-exact reads through mmap and at random
# offsets by several processes at once while the objects are still arriving;
# a first read at a non-zero offset caches the whole object; a file larger
# than the cache is read from the source; writes fail with EROFS; SIGTERM
# unmounts cleanly; a remount serves from the file cache without downloading.
# Skips (exit 0, with a message) when FUSE is not available.
. "$(dirname "$0")/../lib/weights/lib.sh"
need_fuse
mkdir -p "$T/www/bucket/m/deep/er" "$T/mnt"
make_files "$T/www/bucket/m"
head -c 24000000 /dev/urandom >"$T/www/bucket/m/deep/er/big.safetensors"
head -c 32000000 /dev/urandom >"$T/www/bucket/m/huge.bin"
nginx_start
SRC="$T/www/bucket/m"

mount_it() {
	"$W" mount "http://127.0.0.1:$PORT/bucket/m/" "$T/mnt" --cache-dir "$T/cache" --cache-capacity 30MB \
		--chunk-size 1MiB --connections 4 --foreground 2>>"$T/mount.log" &
	MP=$!
	PIDS="$PIDS $MP"
	for _ in $(seq 1 100); do mountpoint -q "$T/mnt" && return 0; kill -0 "$MP" 2>/dev/null || break; sleep 0.1; done
	if grep -q 'FUSE is not available\|cannot mount' "$T/mount.log"; then
		echo "SKIP: FUSE mount not possible here: $(tail -1 "$T/mount.log")"
		exit 0
	fi
	fail "mount did not come up: $(cat "$T/mount.log")"
}
mount_it
check "mounted"

[ -d "$T/mnt/deep" ] && [ -d "$T/mnt/deep/er" ] || fail "implicit directories missing"
[ "$(ls "$T/mnt/deep/er")" = big.safetensors ] || fail "listing of deep/er"
[ "$(stat -c %s "$T/mnt/deep/er/big.safetensors")" = 24000000 ] || fail "size"
check "implicit directories deep/er from object prefixes, sizes from the listing"

echo "== several processes at once, cold: mmap and pread at random offsets"
big="deep/er/big.safetensors"
python3 "$RC" "$T/mnt/$big" "$SRC/$big" 300 1 mmap >"$T/r1" 2>&1 & R1=$!
python3 "$RC" "$T/mnt/$big" "$SRC/$big" 300 2 pread >"$T/r2" 2>&1 & R2=$!
python3 "$RC" "$T/mnt/$big" "$SRC/$big" 300 3 mmap >"$T/r3" 2>&1 & R3=$!
( dd if="$T/mnt/$big" bs=65536 skip=200 count=40 2>/dev/null | cmp -s - <(dd if="$SRC/$big" bs=65536 skip=200 count=40 2>/dev/null) ) & R4=$!
for p in $R1 $R2 $R3 $R4; do wait "$p" || fail "a concurrent reader saw different bytes: $(cat "$T"/r1 "$T"/r2 "$T"/r3)"; done
check "4 readers (2 mmap, 1 pread, 1 dd skip=) byte-exact while the object was arriving"
cmp -s "$T/mnt/$big" "$SRC/$big" || fail "whole-file cmp"
check "whole file byte-exact (cmp)"

echo "== a first read at a non-zero offset caches the whole object"
dd if="$T/mnt/model-00001-of-00002.safetensors" bs=4096 skip=1000 count=1 2>/dev/null | cmp -s - \
	<(dd if="$SRC/model-00001-of-00002.safetensors" bs=4096 skip=1000 count=1 2>/dev/null) || fail "offset read"
for _ in $(seq 1 100); do
	f=$(find "$T/cache" -path '*objects/model-00001-of-00002.safetensors' 2>/dev/null)
	[ -n "$f" ] && break
	sleep 0.1
done
[ -n "$f" ] && cmp -s "$f" "$SRC/model-00001-of-00002.safetensors" || fail "whole object not cached after an offset read"
check "one 4 KiB read at 4 MB cached all 5 MB"

echo "== bigger than the cache room: read from the source"
python3 "$RC" "$T/mnt/huge.bin" "$SRC/huge.bin" 50 4 pread >"$T/r5" 2>&1 || fail "huge: $(cat "$T/r5")"
cmp -s "$T/mnt/huge.bin" "$SRC/huge.bin" || fail "huge cmp"
check "32 MB file bigger than the 30 MB cache: read range by range from the source, byte-exact"

echo "== read-only"
( echo x >"$T/mnt/new.txt" ) 2>"$T/w" && fail "a write succeeded"
grep -q 'Read-only file system' "$T/w" || fail "write error: $(cat "$T/w")"
( echo x >>"$T/mnt/config.json" ) 2>"$T/w" && fail "an append succeeded"
check "writes fail with EROFS"

echo "== SIGTERM unmounts; a remount serves from the cache"
kill -TERM "$MP"
for _ in $(seq 1 50); do kill -0 "$MP" 2>/dev/null || break; sleep 0.1; done
kill -0 "$MP" 2>/dev/null && fail "still running after SIGTERM"
wait "$MP"; rc=$?
mountpoint -q "$T/mnt" && fail "still mounted after SIGTERM"
[ "$rc" -eq 0 ] || fail "exit status $rc after SIGTERM"
check "SIGTERM: unmounted, exit 0"
before=$(grep -c 'GET /bucket/m/deep/er/big' "$T/ng/access.log")
mount_it
cmp -s "$T/mnt/$big" "$SRC/$big" || fail "remount cmp"
after=$(grep -c 'GET /bucket/m/deep/er/big' "$T/ng/access.log")
[ "$before" -eq "$after" ] || fail "remount downloaded again ($before -> $after)"
check "remount: the 24 MB object came from the file cache (no GET)"
kill -TERM "$MP"; wait "$MP"
echo "weights_mount: all checks passed"
