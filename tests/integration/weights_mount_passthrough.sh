#!/usr/bin/env bash
# weights_mount_passthrough: the mount's two read paths. A file still arriving
# is read through FUSE (a read answered as soon as its range is there); once
# complete in the cache, a new open is answered with kernel FUSE passthrough
# (the kernel reads the cache file; no READ reaches the daemon). Checks: the
# incomplete file byte-exact through FUSE; passthrough opens byte-exact through
# read and mmap at random offsets by several processes at once, with the
# daemon's READ count unchanged; an inode open through FUSE keeps getting FUSE
# opens (the kernel refuses mixed modes) and goes passthrough once closed; a
# held passthrough open shares its backing file with new opens; --passthrough
# off reads everything through FUSE; where the kernel refuses the backing file
# (a user namespace: no CAP_SYS_ADMIN in the initial one), reads fall back to
# FUSE and say so once. The mount's status.json tells the path.
# Skips (exit 0, with a message) without FUSE; when the kernel or privileges do
# not allow passthrough, checks the clean fallback instead.
. "$(dirname "$0")/../lib/weights/lib.sh"
need_fuse
mkdir -p "$T/www/slow/m" "$T/mnt"
SRC="$T/www/slow/m"
head -c 3000000 /dev/urandom >"$SRC/slow.bin"      # 3 chunks at 256 KiB/s per connection: ~4 s to arrive
head -c 4000000 /dev/urandom >"$SRC/big.safetensors"   # 4 chunks, all at once
printf '{"hidden_size":640}\n' >"$SRC/config.json"
nginx_start

# status FIELD: a field of the mount's status.json.
status() {
	python3 -c 'import json,sys,glob; print(json.load(open(glob.glob(sys.argv[1])[0]))[sys.argv[2]])' \
		"$T/cache/mount-*/status.json" "$1" 2>/dev/null
}
# mount_it MODE
mount_it() {
	: >"$T/mount.log"
	"$W" mount "http://127.0.0.1:$PORT/slow/m/" "$T/mnt" --cache-dir "$T/cache" --cache-capacity 100MB \
		--chunk-size 1MiB --connections 4 --passthrough "$1" --foreground 2>>"$T/mount.log" &
	MP=$!
	PIDS="$PIDS $MP"
	for _ in $(seq 1 100); do mountpoint -q "$T/mnt" && return 0; kill -0 "$MP" 2>/dev/null || break; sleep 0.1; done
	if grep -q 'FUSE is not available\|cannot mount' "$T/mount.log"; then
		echo "SKIP: FUSE mount not possible here: $(tail -1 "$T/mount.log")"
		exit 0
	fi
	fail "mount did not come up: $(cat "$T/mount.log")"
}
unmount_it() {
	kill -TERM "$MP"
	for _ in $(seq 1 100); do kill -0 "$MP" 2>/dev/null || break; sleep 0.1; done
	wait "$MP" || fail "exit status $? after SIGTERM: $(tail -3 "$T/mount.log")"
	mountpoint -q "$T/mnt" && fail "still mounted"
	grep -q 'AddressSanitizer\|runtime error\|LeakSanitizer' "$T/mount.log" && fail "sanitizer report: $(cat "$T/mount.log")"
	return 0
}
# cached NAME: waits (at most 30 s) until NAME is complete in the file cache.
cached() {
	for _ in $(seq 1 300); do
		grep -q "\"$1\"" "$T"/cache/mount-*/index.json 2>/dev/null && return 0
		sleep 0.1
	done
	fail "$1 not complete in the cache after 30 s"
}
# settle: RELEASE reaches the daemon asynchronously after a close; give it a moment.
settle() { sleep 0.5; }

echo "== --passthrough auto: a file still arriving is read through FUSE"
mount_it auto
exec 3<"$T/mnt/slow.bin"       # held open from before it is complete
[ "$(status opens_fuse_total)" = 1 ] || fail "the first open was not a FUSE open: $(cat "$T"/cache/mount-*/status.json)"
reads0=$(status reads_fuse_total)
python3 "$RC" "$T/mnt/slow.bin" "$SRC/slow.bin" 40 1 pread >"$T/r0" 2>&1 & R0=$!
cmp -s <(cat <&3) "$SRC/slow.bin" || fail "incomplete file read through FUSE differs"
wait "$R0" || fail "reader during the download: $(cat "$T/r0")"
reads1=$(status reads_fuse_total)
[ "$reads1" -gt "$reads0" ] || fail "no READ reached the daemon for the arriving file"
check "a file opened while arriving: byte-exact through FUSE ($((reads1 - reads0)) READs served)"

cached slow.bin
exec 4<"$T/mnt/slow.bin"       # complete now, but fd 3 holds the inode in FUSE mode
cmp -s <(cat <&4) "$SRC/slow.bin" || fail "second open while the first is held differs"
[ "$(status opens_passthrough_total)" = 0 ] || fail "an open beside a held FUSE open went passthrough"
[ "$(status opens_fuse_total)" = 3 ] || fail "expected 3 FUSE opens (fd 3, the reader, fd 4): $(cat "$T"/cache/mount-*/status.json)"
exec 3<&- 4<&-
settle
check "complete file, opened beside a held FUSE open: a FUSE open too (the kernel allows one mode per inode)"

cmp -s "$T/mnt/slow.bin" "$SRC/slow.bin" || fail "slow.bin after both closed differs"
settle
pt=$(status passthrough)
if [ "$pt" != on ]; then
	# No passthrough here (kernel, privileges): everything must still work through FUSE.
	[ "$pt" = unavailable ] || fail "passthrough is '$pt' after an open of a complete file"
	grep -q 'passthrough unavailable' "$T/mount.log" || fail "no log line saying passthrough is unavailable"
	echo "NOTE: passthrough is unavailable here ($(status reason)); checked the FUSE fallback only"
	unmount_it
	echo "weights_mount_passthrough: all checks passed (fallback)"
	exit 0
fi
[ "$(status opens_passthrough_total)" = 1 ] || fail "the open after both closed was not passthrough"
grep -q 'kernel FUSE passthrough' "$T/mount.log" || fail "no log line saying passthrough is used"
check "once the FUSE opens are closed, the next open is passthrough"

echo "== files complete in the cache: passthrough, read and mmap at random offsets, 4 processes at once"
cmp -s "$T/mnt/big.safetensors" "$SRC/big.safetensors" || fail "big through the mount differs" # cached while read
cached big.safetensors
settle
pt0=$(status opens_passthrough_total) reads0=$(status reads_fuse_total)
big="big.safetensors"
python3 "$RC" "$T/mnt/$big" "$SRC/$big" 300 11 mmap >"$T/r1" 2>&1 & R1=$!
python3 "$RC" "$T/mnt/$big" "$SRC/$big" 300 12 pread >"$T/r2" 2>&1 & R2=$!
python3 "$RC" "$T/mnt/$big" "$SRC/$big" 300 13 mmap >"$T/r3" 2>&1 & R3=$!
python3 "$RC" "$T/mnt/slow.bin" "$SRC/slow.bin" 300 14 pread >"$T/r4" 2>&1 & R4=$!
for p in $R1 $R2 $R3 $R4; do wait "$p" || fail "a passthrough reader saw different bytes: $(cat "$T"/r1 "$T"/r2 "$T"/r3 "$T"/r4)"; done
cmp -s "$T/mnt/$big" "$SRC/$big" || fail "whole-file cmp through passthrough"
settle
pt1=$(status opens_passthrough_total) reads1=$(status reads_fuse_total)
[ $((pt1 - pt0)) -eq 5 ] || fail "expected 5 passthrough opens, got $((pt1 - pt0))"
[ "$reads1" = "$reads0" ] || fail "passthrough reads reached the daemon ($reads0 -> $reads1 READs)"
check "5 passthrough opens (2 mmap, 2 pread, 1 cmp): byte-exact, no READ reached the daemon"

exec 5<"$T/mnt/$big"           # a held passthrough open: new opens share its backing file
python3 "$RC" "$T/mnt/$big" "$SRC/$big" 100 15 mmap >"$T/r5" 2>&1 || fail "open beside a passthrough open: $(cat "$T/r5")"
cmp -s <(cat <&5) "$SRC/$big" || fail "held passthrough open differs"
exec 5<&-
check "an open beside a held passthrough open: passthrough too, byte-exact"
( echo x >>"$T/mnt/$big" ) 2>/dev/null && fail "an append succeeded"
check "still read-only (EROFS)"
unmount_it
check "SIGTERM with passthrough: unmounted, exit 0"

echo "== --passthrough off: the same files through FUSE"
mount_it off
[ "$(status passthrough)" = off ] || fail "status says $(status passthrough) with --passthrough off"
python3 "$RC" "$T/mnt/$big" "$SRC/$big" 200 21 mmap >"$T/r6" 2>&1 & R6=$!
python3 "$RC" "$T/mnt/$big" "$SRC/$big" 200 22 pread >"$T/r7" 2>&1 & R7=$!
for p in $R6 $R7; do wait "$p" || fail "reader with passthrough off: $(cat "$T"/r6 "$T"/r7)"; done
cmp -s "$T/mnt/slow.bin" "$SRC/slow.bin" || fail "slow.bin with passthrough off"
settle
[ "$(status opens_passthrough_total)" = 0 ] || fail "passthrough opens with --passthrough off"
[ "$(status reads_fuse_total)" -gt 0 ] || fail "no READs with --passthrough off"
grep -q 'passthrough off' "$T/mount.log" || fail "no log line for --passthrough off"
check "--passthrough off: byte-exact through FUSE (read, mmap), $(status reads_fuse_total) READs, 0 passthrough opens"
unmount_it
echo "== an object replaced in the source while open (one kernel inode per path)"
mkdir -p "$T/www/bucket/v" "$T/mnt2"
head -c 2000000 /dev/urandom >"$T/www/bucket/v/w.bin"
cp "$T/www/bucket/v/w.bin" "$T/w.old"
"$W" mount "http://127.0.0.1:$PORT/bucket/v/" "$T/mnt2" --cache-dir "$T/cache2" --metadata-ttl 1 \
	--chunk-size 1MiB --foreground 2>"$T/mount2.log" &
MP2=$!
PIDS="$PIDS $MP2"
for _ in $(seq 1 100); do mountpoint -q "$T/mnt2" && break; sleep 0.1; done
mountpoint -q "$T/mnt2" || fail "second mount: $(cat "$T/mount2.log")"
cmp -s "$T/mnt2/w.bin" "$T/w.old" || fail "w.bin, first read"       # through FUSE: pages in the kernel
for _ in $(seq 1 100); do grep -q '"w.bin"' "$T"/cache2/mount-*/index.json 2>/dev/null && break; sleep 0.1; done
settle
exec 6<"$T/mnt2/w.bin"          # complete: passthrough, held
grep -q '"opens_passthrough_total":1,' "$T"/cache2/mount-*/status.json || fail "w.bin not opened passthrough: $(cat "$T"/cache2/mount-*/status.json)"
head -c 2000000 /dev/urandom >"$T/w.new"   # the same size: nothing in the attributes tells the kernel
cp "$T/w.new" "$T/www/bucket/v/w.tmp"
# The listing's mtime has one-second resolution: the new version gets a later
# second than the old, however fast the steps above ran.
touch -d "@$(($(stat -c %Y "$T/www/bucket/v/w.bin") + 10))" "$T/www/bucket/v/w.tmp"
mv "$T/www/bucket/v/w.tmp" "$T/www/bucket/v/w.bin"
sleep 2.2                        # past the 1 s listing and attribute lifetimes
stat "$T/mnt2/w.bin" >/dev/null  # the listing is fetched again
( exec 7<"$T/mnt2/w.bin" ) 2>"$T/busy" && fail "an open of the new version beside a passthrough open of the old succeeded"
grep -q 'busy' "$T/busy" || fail "expected EBUSY: $(cat "$T/busy")"
grep -q 'changed in the source while the old version is open' "$T/mount2.log" || fail "no log line for the busy open"
cmp -s <(cat <&6) "$T/w.old" || fail "the held passthrough open no longer reads the old version"
exec 6<&-
settle
cmp -s "$T/mnt2/w.bin" "$T/w.new" || fail "new version after the old one was closed differs (stale pages?)"
check "changed object: the held open reads the old version, a new open is refused (EBUSY, logged) meanwhile, then the new version reads byte-exact"
kill -TERM "$MP2"; wait "$MP2" || fail "second mount exit status"
grep -q 'AddressSanitizer\|runtime error\|LeakSanitizer' "$T/mount2.log" && fail "sanitizer report: $(cat "$T/mount2.log")"

echo "== an object replaced by one of the same size, read through FUSE: no stale pages"
"$W" mount "http://127.0.0.1:$PORT/bucket/v/" "$T/mnt2" --cache-dir "$T/cache3" --metadata-ttl 1 \
	--passthrough off --foreground 2>"$T/mount3.log" &
MP3=$!
PIDS="$PIDS $MP3"
for _ in $(seq 1 100); do mountpoint -q "$T/mnt2" && break; sleep 0.1; done
mountpoint -q "$T/mnt2" || fail "third mount: $(cat "$T/mount3.log")"
cmp -s "$T/mnt2/w.bin" "$T/w.new" || fail "w.bin before the change"      # its pages now in the kernel
head -c 2000000 /dev/urandom >"$T/w.3"
cp "$T/w.3" "$T/www/bucket/v/w.tmp"      # a new Last-Modified second: the listing shows a new version
touch -d "@$(($(stat -c %Y "$T/www/bucket/v/w.bin") + 10))" "$T/www/bucket/v/w.tmp"
mv "$T/www/bucket/v/w.tmp" "$T/www/bucket/v/w.bin"
sleep 2.2
stat "$T/mnt2/w.bin" >/dev/null
cmp -s "$T/mnt2/w.bin" "$T/w.3" || fail "the kernel served pages of the old version (same size, same mtime)"
check "same-size replacement: the first open of the new version drops the old pages (no keep_cache)"
kill -TERM "$MP3"; wait "$MP3" || fail "third mount exit status"
grep -q 'AddressSanitizer\|runtime error\|LeakSanitizer' "$T/mount3.log" && fail "sanitizer report: $(cat "$T/mount3.log")"

echo "== passthrough refused by the kernel: a clean fallback to FUSE"
# In a user namespace we are root there, so the daemon asks for passthrough and
# the kernel grants it at INIT, but FUSE_DEV_IOC_BACKING_OPEN wants CAP_SYS_ADMIN
# in the initial namespace and fails: every open must go through FUSE instead.
if unshare -U -r -m true 2>/dev/null; then
	timeout 120 unshare -U -r -m bash -c '
		W=$1 PORT=$2 T=$3 RC=$4
		"$W" mount "http://127.0.0.1:$PORT/slow/m/" "$T/mnt" --cache-dir "$T/cache" --foreground 2>"$T/ns.log" &
		MP=$!
		for _ in $(seq 1 100); do mountpoint -q "$T/mnt" && break; sleep 0.1; done
		mountpoint -q "$T/mnt" || { echo "no mount: $(cat "$T/ns.log")"; exit 1; }
		python3 "$RC" "$T/mnt/big.safetensors" "$T/www/slow/m/big.safetensors" 200 31 mmap || exit 1
		python3 "$RC" "$T/mnt/slow.bin" "$T/www/slow/m/slow.bin" 200 32 pread || exit 1
		cmp -s "$T/mnt/big.safetensors" "$T/www/slow/m/big.safetensors" || { echo "cmp differs"; exit 1; }
		sleep 0.5
		cp "$T"/cache/mount-*/status.json "$T/ns.status"
		kill -TERM $MP; wait $MP' _ "$W" "$PORT" "$T" "$RC" >"$T/ns.out" 2>&1 || fail "in a user namespace: $(cat "$T/ns.out" "$T/ns.log")"
	grep -q '"passthrough":"unavailable"' "$T/ns.status" || fail "status in the user namespace: $(cat "$T/ns.status")"
	grep -q '"opens_passthrough_total":0,' "$T/ns.status" || fail "passthrough opens in the user namespace: $(cat "$T/ns.status")"
	[ "$(grep -c 'passthrough unavailable: FUSE_DEV_IOC_BACKING_OPEN' "$T/ns.log")" = 1 ] || fail "not one fallback log line: $(cat "$T/ns.log")"
	grep -q 'AddressSanitizer\|runtime error\|LeakSanitizer' "$T/ns.log" && fail "sanitizer report: $(cat "$T/ns.log")"
	check "BACKING_OPEN refused (user namespace): logged once, status unavailable, reads byte-exact through FUSE (mmap, pread)"
else
	echo "NOTE: no user namespaces here; the refused-ioctl fallback is not checked"
fi

"$W" mount "http://127.0.0.1:$PORT/slow/m/" "$T/mnt" --cache-dir "$T/cache" --passthrough sometimes 2>"$T/bad" && fail "--passthrough sometimes accepted"
grep -q 'auto or off' "$T/bad" || fail "bad --passthrough message: $(cat "$T/bad")"
check "--passthrough takes auto or off"
echo "weights_mount_passthrough: all checks passed"
