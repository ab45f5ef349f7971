#!/usr/bin/env bash
# bench/weights/run.sh — the weights path on loopback with a ~1 GB checkpoint
# (4 random shards of 256 MB + a config) served by nginx:
#   1. curl, one stream per file (the baseline)  vs  infergate-weights pull (8 ranges)
#   2. reading through the FUSE mount  vs  reading the cache file directly
#      (cold mount read = download through the mount; warm = from the file cache)
# Usage: bash bench/weights/run.sh [BIN_DIR]   (default bin/; build with `make build`)
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
nginx_start
B="http://127.0.0.1:$PORT/bucket/ckpt/"
now() { date +%s.%N; }
rate() { awk -v b="$total" -v s="$1" 'BEGIN { printf "%.0f", b / s / 1e6 }'; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# 1. curl single stream, then pull.
mkdir -p "$T/curl"
t0=$(now)
for f in "$T"/www/bucket/ckpt/*; do curl -s -o "$T/curl/$(basename "$f")" "$B$(basename "$f")" || fail curl; done
t1=$(now); curl_s=$(secs "$t0" "$t1")
sync
t1=$(now); curl_sync_s=$(secs "$t0" "$t1")
t0=$(now)
"$W" pull "$B" "$T/pull" --quiet || fail pull
t1=$(now); pull_s=$(secs "$t0" "$t1")
same_tree "$T/www/bucket/ckpt" "$T/pull" || fail "pull result differs"

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

printf '\ncheckpoint: %s bytes in 5 files, nginx on 127.0.0.1, %s cores\n' "$total" "$(nproc)"
printf '%-52s %8s %8s\n' "what" "seconds" "MB/s"
printf '%-52s %8s %8s\n' "curl, one stream per file" "$curl_s" "$(rate "$curl_s")"
printf '%-52s %8s %8s\n' "curl, one stream per file, then sync (durable)" "$curl_sync_s" "$(rate "$curl_sync_s")"
printf '%-52s %8s %8s\n' "infergate-weights pull (8 x 16 MiB ranges, sha/size)" "$pull_s" "$(rate "$pull_s")"
printf '%-52s %8s %8s\n' "mount, cold (download through the mount)" "$cold_s" "$(rate "$cold_s")"
printf '%-52s %8s %8s\n' "cache file read directly (page cache)" "$direct_s" "$(rate "$direct_s")"
printf '%-52s %8s %8s\n' "mount, warm file cache, fresh mount" "$warm_s" "$(rate "$warm_s")"
printf '%-52s %8s %8s\n' "mount, read again (kernel page cache, keep_cache)" "$again_s" "$(rate "$again_s")"
printf 'mount / direct: %s%% from the file cache on a fresh mount, %s%% once in the page cache (target >= 80%%)\n' "$ratio" "$ratio2"
