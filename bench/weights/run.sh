#!/usr/bin/env bash
# bench/weights/run.sh — the weights path on loopback with a ~1 GB checkpoint
# (4 random shards of 256 MB + a config) served by nginx:
#   1. curl, one stream per file (the baseline, then `sync` to be as durable as
#      pull)  vs  infergate-weights pull (defaults: 8 ranges of 16 MiB, size
#      checked)  vs  the same from a Hugging Face-shaped mirror (sha256 checked)
#   2. reading through the FUSE mount  vs  reading the cache file directly:
#      cold mount read = download through the mount; then ROUNDS rounds of, for
#      each of direct, a fresh mount with passthrough (--passthrough auto) and a
#      fresh mount without (--passthrough off, reads spliced through FUSE):
#      "hot" (the cache file's pages in the page cache for every reader) and,
#      when root, "cold" (sync + drop_caches before every reader, so each reads
#      from disk); each mount is fresh, so its own FUSE page cache is empty;
#      "again" = a second read on the same mount (kernel page cache)
#   3. infergate-server --model URL --cache-dir DIR with the 270m-shaped model
#      from infergate-mkmodel: exec to the first GET /health 200, with an empty
#      cache (download, verify, load) and a warm one (one listing, load)
# Usage: bash bench/weights/run.sh [BIN_DIR]   (default bin/; build with `make build`)
# Env: SIZE_MB (shard size, default 256), ROUNDS (mount rounds, default 5),
#      COLD=0 (skip the drop_caches rounds; they also empty other programs'
#      page cache), SKIP_PULL=1, SKIP_SERVER=1.
# Prints a table; RESULTS.md records a run. Every process it starts is killed on exit.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
export IG_TOP="$top" IG_BIN="${1:-$top/bin}"
. "$top/tests/lib/weights/lib.sh"
SIZE_MB=${SIZE_MB:-256}
mkdir -p "$T/www/bucket/ckpt" "$T/mnt"
for i in 1 2 3 4; do head -c $((SIZE_MB * 1048576)) /dev/urandom >"$T/www/bucket/ckpt/model-0000$i-of-00004.safetensors"; done
printf '{"hidden_size":2048}\n' >"$T/www/bucket/ckpt/config.json"
total=$(du -cb "$T/www/bucket/ckpt" | tail -1 | cut -f1)

# The same files as a Hugging Face mirror (lfs.sha256 in the listing, large
# files behind a 302 to 127.0.0.2), hard-linked rather than copied.
hf_api="$T/www/hf/api/models/bench/ckpt/revision"
mkdir -p "$hf_api" "$T/www/hf/bench/ckpt/resolve/main" "$T/www/lfs/bench/ckpt"
# Files are read at the commit the listing names, as on the Hub.
ln -sfn main "$T/www/hf/bench/ckpt/resolve/0123456789abcdef0123456789abcdef01234567"
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
if [ "${SKIP_PULL:-0}" != 1 ]; then
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
fi

# 2. mount: cold (downloads through the mount), then rounds of direct reads of
# the cache file against fresh mounts with and without passthrough, hot and cold.
# mnt MODE: mounts with --passthrough MODE and waits for it.
mnt() {
	"$W" mount "$B" "$T/mnt" --cache-dir "$T/cache" --cache-capacity 4GB --passthrough "$1" \
		--foreground 2>>"$T/mount.log" &
	MP=$!; PIDS="$PIDS $MP"
	for _ in $(seq 1 100); do mountpoint -q "$T/mnt" && return 0; sleep 0.1; done
	fail "mount: $(cat "$T/mount.log")"
}
umnt() { kill -TERM "$MP"; wait "$MP"; }
readall() { for f in "$1"/*.safetensors; do dd if="$f" of=/dev/null bs=1M 2>/dev/null; done; }
# timed DIR: seconds to read every shard under DIR.
timed() { local t0 t1; t0=$(now); readall "$1"; t1=$(now); secs "$t0" "$t1"; }
cold_ok=0
if [ "${COLD:-1}" != 0 ] && [ "$(id -u)" = 0 ] && [ -w /proc/sys/vm/drop_caches ]; then cold_ok=1; fi
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }
mnt auto
t0=$(now); readall "$T/mnt"; t1=$(now); cold_s=$(secs "$t0" "$t1")
umnt
objs=$(find "$T/cache" -type d -name objects)
[ "$(ls "$objs"/*.safetensors | wc -l)" = 4 ] || fail "the cold mount did not leave the 4 shards in the file cache"
ROUNDS=${ROUNDS:-5}
pt_state=""
: >"$T/rounds"
for r in $(seq 1 "$ROUNDS"); do
	readall "$objs" # the cache file's pages in: every hot reader starts from the same state
	d=$(timed "$objs")
	mnt auto; p=$(timed "$T/mnt"); pa=$(timed "$T/mnt")
	pt_state=$(sed -n 's/.*"passthrough":"\([a-z]*\)".*"opens_passthrough_total":\([0-9]*\),"opens_fuse_total":\([0-9]*\).*/\1, \2 passthrough opens, \3 FUSE opens/p' "$T"/cache/mount-*/status.json)
	umnt
	mnt off; o=$(timed "$T/mnt"); oa=$(timed "$T/mnt"); umnt
	d2=$(timed "$objs")
	echo "hot $r $d $p $pa $o $oa $d2" >>"$T/rounds"
	if [ "$cold_ok" = 1 ]; then
		drop; cd_=$(timed "$objs")
		mnt auto; drop; cp_=$(timed "$T/mnt"); umnt
		mnt off; drop; co=$(timed "$T/mnt"); umnt
		drop; cd2=$(timed "$objs")
		echo "cold $r $cd_ $cp_ - $co - $cd2" >>"$T/rounds"
	fi
done
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
[ "${SKIP_PULL:-0}" != 1 ] && printf '%-60s %8s %8s\n' "curl, one stream per file" "$curl_s" "$(rate "$curl_s")"
[ "${SKIP_PULL:-0}" != 1 ] && printf '%-60s %8s %8s\n' "curl, one stream per file, then sync (durable)" "$curl_sync_s" "$(rate "$curl_sync_s")"
[ "${SKIP_PULL:-0}" != 1 ] && printf '%-60s %8s %8s\n' "infergate-weights pull (8 x 16 MiB ranges, size, fsync)" "$pull_s" "$(rate "$pull_s")"
[ "${SKIP_PULL:-0}" != 1 ] && printf '%-60s %8s %8s\n' "infergate-weights pull hf:// (same, sha256 verified)" "$pullhf_s" "$(rate "$pullhf_s")"
printf '%-60s %8s %8s\n' "mount, cold (download through the mount)" "$cold_s" "$(rate "$cold_s")"
printf '\nmount reads against the cache file read directly, %s round(s); passthrough: %s\n' "$ROUNDS" "${pt_state:-?}"
printf 'each round: direct, mount auto (passthrough) + again, mount off (FUSE splice) + again, direct again\n'
printf '%-5s %-3s %8s %8s %8s %8s %8s %8s   %s\n' kind rnd direct pt pt-again splice spl-again direct2 "MB/s, and mount/direct (direct = mean of the two)"
awk -v b="$total" '
	function r(s) { return s == "-" ? "-" : sprintf("%.0f", b / s / 1e6) }
	function pc(s, d) { return s == "-" ? "-" : sprintf("%.0f%%", 100 * d / s) }
	{
		d = ($3 + $8) / 2
		printf "%-5s %-3s %8s %8s %8s %8s %8s %8s   pt %s, splice %s\n", $1, $2, r($3), r($4), r($5), r($6), r($7), r($8), pc($4, d), pc($6, d)
		n[$1]++; pt[$1, n[$1]] = 100 * d / $4; sp[$1, n[$1]] = 100 * d / $6
	}
	function med(a, k, m,   i, j, t, v) { for (i = 1; i <= m; i++) v[i] = a[k, i]
		for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
		return sprintf("median %.0f%% (%.0f-%.0f%%)", (m % 2) ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2, v[1], v[m]) }
	END {
		for (k in n) printf "mount / direct, %s: passthrough %s, splice %s (target >= 80%%)\n", k, med(pt, k, n[k]), med(sp, k, n[k])
	}' "$T/rounds"
[ "$cold_ok" = 1 ] || printf 'cold rounds skipped (COLD=0, or not root)\n'
if [ -n "$server_note" ]; then
	printf 'server start: %s\n' "$server_note"
else
	printf '\n270m-shaped model: %s bytes\n' "$m270"
	printf '%-60s %8s  %s\n' "server cold start (empty cache) to /health 200" "$srv_cold_s" "$srv_cold_split"
	printf '%-60s %8s  %s\n' "server warm start (cache complete) to /health 200" "$srv_warm_s" "$srv_warm_split"
fi
