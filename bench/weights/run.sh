#!/usr/bin/env bash
# bench/weights/run.sh — the weights path on loopback with a ~1 GB checkpoint
# (4 random shards of 256 MB + a config) served by nginx:
#   1. curl, one stream per file (the baseline, then `sync` to be as durable as
#      pull)  vs  infergate-weights pull (defaults: 8 ranges of 16 MiB, size
#      checked)  vs  the same from a Hugging Face-shaped mirror (sha256 checked)
#   2. reading through the FUSE mount  vs  reading the cache file directly
#      (cold mount read = download through the mount; fresh mount = from the
#      file cache; again = from the kernel page cache)
#   3. infergate-server --model URL --cache-dir DIR with the 270m-shaped model
#      from infergate-mkmodel: exec to the first GET /health 200, with an empty
#      cache (download, verify, load) and a warm one (one listing, load)
# Usage: bash bench/weights/run.sh [BIN_DIR]   (default bin/; build with `make build`)
# Env: SIZE_MB (shard size, default 256), SKIP_SERVER=1.
# Prints a table; RESULTS.md records a run. Every process it starts is killed on exit.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
export IG_TOP="$top" IG_BIN="${1:-$top/bin}"
. "$top/tests/weights/lib.sh"
SIZE_MB=${SIZE_MB:-256}
mkdir -p "$T/www/bucket/ckpt" "$T/mnt"
for i in 1 2 3 4; do head -c $((SIZE_MB * 1048576)) /dev/urandom >"$T/www/bucket/ckpt/model-0000$i-of-00004.safetensors"; done
printf '{"hidden_size":2048}\n' >"$T/www/bucket/ckpt/config.json"
total=$(du -cb "$T/www/bucket/ckpt" | tail -1 | cut -f1)

# The same files as a Hugging Face mirror (lfs.sha256 in the listing, large
# files behind a 302 to 127.0.0.2), hard-linked rather than copied.
hf_api="$T/www/hf/api/models/bench/ckpt/revision"
mkdir -p "$hf_api" "$T/www/hf/bench/ckpt/resolve/main" "$T/www/lfs/bench/ckpt"
{
	printf '{"id":"bench/ckpt","sha":"0123456789abcdef0123456789abcdef01234567","siblings":['
	sep=""
	for f in "$T"/www/bucket/ckpt/*; do
		n=$(basename "$f") size=$(stat -c %s "$f")
		if [ "$size" -gt 1000000 ]; then
			printf '%s{"rfilename":"%s","size":%s,"lfs":{"sha256":"%s","size":%s}}' "$sep" "$n" "$size" \
				"$(sha256sum "$f" | cut -d' ' -f1)" "$size"
			ln "$f" "$T/www/lfs/bench/ckpt/$n"
		else
			printf '%s{"rfilename":"%s","size":%s}' "$sep" "$n" "$size"
			cp "$f" "$T/www/hf/bench/ckpt/resolve/main/$n"
		fi
		sep=","
	done
	printf ']}\n'
} >"$hf_api/main"
nginx_start
B="http://127.0.0.1:$PORT/bucket/ckpt/"
now() { date +%s.%N; }
rate() { awk -v b="${2:-$total}" -v s="$1" 'BEGIN { printf "%.0f", b / s / 1e6 }'; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# 1. curl single stream (then sync), then pull from the bucket and from the mirror.
mkdir -p "$T/curl"
sync
t0=$(now)
for f in "$T"/www/bucket/ckpt/*; do curl -s -o "$T/curl/$(basename "$f")" "$B$(basename "$f")" || fail curl; done
t1=$(now); curl_s=$(secs "$t0" "$t1")
sync
t1=$(now); curl_sync_s=$(secs "$t0" "$t1")
rm -rf "$T/curl"; sync
t0=$(now)
"$W" pull "$B" "$T/pull" --quiet || fail pull
t1=$(now); pull_s=$(secs "$t0" "$t1")
same_tree "$T/www/bucket/ckpt" "$T/pull" || fail "pull result differs"
rm -rf "$T/pull"; sync
t0=$(now)
HF_ENDPOINT="http://127.0.0.1:$PORT/hf" "$W" pull hf://bench/ckpt "$T/pullhf" --quiet || fail "hf pull"
t1=$(now); pullhf_s=$(secs "$t0" "$t1")
same_tree "$T/www/bucket/ckpt" "$T/pullhf" || fail "hf pull result differs"
rm -rf "$T/pullhf"; sync

# 2. mount: cold (downloads through the mount), then the cache file directly,
# then a fresh mount reading from the file cache (FUSE on top of the page cache).
mnt() {
	"$W" mount "$B" "$T/mnt" --cache-dir "$T/cache" --cache-capacity 4GB --foreground 2>>"$T/mount.log" &
	MP=$!; PIDS="$PIDS $MP"
	for _ in $(seq 1 100); do mountpoint -q "$T/mnt" && return 0; sleep 0.1; done
	fail "mount: $(cat "$T/mount.log")"
}
readall() { for f in "$1"/*.safetensors; do dd if="$f" of=/dev/null bs=1M 2>/dev/null; done; }
mnt
t0=$(now); readall "$T/mnt"; t1=$(now); cold_s=$(secs "$t0" "$t1")
kill -TERM "$MP"; wait "$MP"
objs=$(find "$T/cache" -type d -name objects)
t0=$(now); readall "$objs"; t1=$(now); direct_s=$(secs "$t0" "$t1")
mnt
t0=$(now); readall "$T/mnt"; t1=$(now); warm_s=$(secs "$t0" "$t1")
t0=$(now); readall "$T/mnt"; t1=$(now); again_s=$(secs "$t0" "$t1")
kill -TERM "$MP"; wait "$MP"
ratio=$(awk -v d="$direct_s" -v w="$warm_s" 'BEGIN { printf "%.0f", 100 * d / w }')
ratio2=$(awk -v d="$direct_s" -v w="$again_s" 'BEGIN { printf "%.0f", 100 * d / w }')

# 3. server cold and warm start, when the server and the model maker are built.
SRV="$IG_BIN/infergate-server" MK="$IG_BIN/infergate-mkmodel"
server_note=""
SP=""
# ready_s: runs the server on the 270m model and sets READY_S to the seconds
# from exec to the first /health 200 (polled every 20 ms, at most 300 s), and
# SPLIT to the cache and load times the server logged; then stops it.
ready_s() {
	: >"$T/server.log"
	SPORT=$((PORT + 1))
	t0=$(now)
	"$SRV" --model "http://127.0.0.1:$PORT/bucket/m270/" --cache-dir "$T/scache" --host 127.0.0.1 \
		--port "$SPORT" --disable-log-requests >>"$T/server.log" 2>&1 &
	SP=$!; PIDS="$PIDS $SP"
	code=000
	for _ in $(seq 1 15000); do
		code=$(curl -s -m 1 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SPORT/health")
		[ "$code" = 200 ] && break
		kill -0 "$SP" 2>/dev/null || fail "server exited: $(tail -3 "$T/server.log")"
		sleep 0.02
	done
	t1=$(now)
	[ "$code" = 200 ] || fail "server not ready within 300 s: $(tail -3 "$T/server.log")"
	READY_S=$(secs "$t0" "$t1")
	SPLIT="cache $(grep -oE '(downloaded in|found in) [^ ]+ \([0-9]+ ms\)' "$T/server.log" | grep -oE '[0-9]+ ms' | tail -1), load $(grep -oE 'model loaded in [0-9]+ ms' "$T/server.log" | grep -oE '[0-9]+ ms' | tail -1)"
	kill -TERM "$SP"; wait "$SP"
	SP=""
}
if [ "${SKIP_SERVER:-0}" = 1 ]; then
	server_note="skipped (SKIP_SERVER=1)"
elif [ ! -x "$SRV" ] || [ ! -x "$MK" ]; then
	server_note="skipped: $SRV or $MK is not built yet"
else
	"$MK" --shape 270m "$T/www/bucket/m270" >"$T/mkmodel.log" 2>&1 || fail "mkmodel: $(tail -3 "$T/mkmodel.log")"
	m270=$(du -cb "$T/www/bucket/m270" | tail -1 | cut -f1)
	sync
	ready_s; srv_cold_s=$READY_S; srv_cold_split=$SPLIT
	ready_s; srv_warm_s=$READY_S; srv_warm_split=$SPLIT
fi

printf '\ncheckpoint: %s bytes in 5 files, nginx on 127.0.0.1, %s cores\n' "$total" "$(nproc)"
printf '%-60s %8s %8s\n' "what" "seconds" "MB/s"
printf '%-60s %8s %8s\n' "curl, one stream per file" "$curl_s" "$(rate "$curl_s")"
printf '%-60s %8s %8s\n' "curl, one stream per file, then sync (durable)" "$curl_sync_s" "$(rate "$curl_sync_s")"
printf '%-60s %8s %8s\n' "infergate-weights pull (8 x 16 MiB ranges, size, fsync)" "$pull_s" "$(rate "$pull_s")"
printf '%-60s %8s %8s\n' "infergate-weights pull hf:// (same, sha256 verified)" "$pullhf_s" "$(rate "$pullhf_s")"
printf '%-60s %8s %8s\n' "mount, cold (download through the mount)" "$cold_s" "$(rate "$cold_s")"
printf '%-60s %8s %8s\n' "cache file read directly (page cache)" "$direct_s" "$(rate "$direct_s")"
printf '%-60s %8s %8s\n' "mount, warm file cache, fresh mount" "$warm_s" "$(rate "$warm_s")"
printf '%-60s %8s %8s\n' "mount, read again (kernel page cache, keep_cache)" "$again_s" "$(rate "$again_s")"
printf 'mount / direct: %s%% from the file cache on a fresh mount, %s%% once in the page cache (target >= 80%%)\n' "$ratio" "$ratio2"
if [ -n "$server_note" ]; then
	printf 'server start: %s\n' "$server_note"
else
	printf '\n270m-shaped model: %s bytes\n' "$m270"
	printf '%-60s %8s  %s\n' "server cold start (empty cache) to /health 200" "$srv_cold_s" "$srv_cold_split"
	printf '%-60s %8s  %s\n' "server warm start (cache complete) to /health 200" "$srv_warm_s" "$srv_warm_split"
fi
