#!/usr/bin/env bash
# weights_cache: the shared model cache behind `infergate-server --model URL
# --cache-dir DIR`, through `infergate-weights cache`: a cold open downloads and
# verifies; three processes opening the same model at once download it once
# (flock); a warm open does one listing and nothing else; offline does no
# request at all; a changed source is noticed; an unreachable source falls back
# to the complete cached copy; least-recently-used models are evicted beyond the
# capacity.
. "$(dirname "$0")/../lib/weights/lib.sh"
mkdir -p "$T/www/bucket/a" "$T/www/bucket/b" "$T/www/bucket/c"
make_files "$T/www/bucket/a"
head -c 6000000 /dev/urandom >"$T/www/bucket/b/w.bin"
head -c 6000000 /dev/urandom >"$T/www/bucket/c/w.bin"
hf_repo org model "$T/www/bucket/a"
nginx_start
export HF_ENDPOINT="http://127.0.0.1:$PORT/hf"
C="$T/cache"
reqs() { grep -c "$1" "$T/ng/access.log"; }

echo "== three processes open the same cold model at once"
for i in 1 2 3; do "$W" cache hf://org/model --cache-dir "$C" --chunk-size 1MiB >"$T/p$i" 2>"$T/e$i" & eval "P$i=$!"; done
wait "$P1" && wait "$P2" && wait "$P3" || fail "a concurrent open failed: $(cat "$T"/e*)"
path=$(cat "$T/p1")
[ "$path" = "$(cat "$T/p2")" ] && [ "$path" = "$(cat "$T/p3")" ] || fail "different paths"
same_tree "$T/www/bucket/a" "$path" || fail "cached model differs"
n=$(reqs 'GET /lfs/org/model/model-00001-of-00002.safetensors')
[ "$n" -eq 5 ] || fail "the 5 MB shard was fetched with $n range requests, expected 5 (one download)"
check "one process downloaded (5 range GETs for the 5 MB shard), all three got $path"

echo "== warm open: one listing request, nothing else"
before=$(wc -l <"$T/ng/access.log")
t0=$(date +%s%N)
"$W" cache hf://org/model --cache-dir "$C" >"$T/p4" 2>"$T/e4" || fail "warm open: $(cat "$T/e4")"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
after=$(wc -l <"$T/ng/access.log")
[ $((after - before)) -eq 1 ] || fail "warm open made $((after - before)) requests"
check "warm open in $ms ms with exactly one request (the listing)"
nginx_stop
"$W" cache hf://org/model --cache-dir "$C" --offline >"$T/p5" 2>"$T/e5" || fail "offline open: $(cat "$T/e5")"
[ "$(cat "$T/p5")" = "$path" ] || fail "offline path"
check "offline open with the server down"
"$W" cache hf://org/model --cache-dir "$C" --retries 0 >"$T/p6" 2>"$T/e6" || fail "fallback: $(cat "$T/e6")"
grep -q 'using the cached copy' "$T/e6" || fail "no fallback warning"
check "source unreachable: the complete cached copy is used, with a warning"
"$W" cache hf://org/other --cache-dir "$C" --offline 2>"$T/e7" && fail "offline miss succeeded"
grep -q 'offline and hf://org/other is not complete' "$T/e7" || fail "offline miss message: $(cat "$T/e7")"
check "offline miss: $(tail -1 "$T/e7")"
nginx_start

echo "== a changed source is noticed"
printf '{"changed":true}\n' >"$T/www/bucket/a/config.json"
hf_repo org model "$T/www/bucket/a"
"$W" cache hf://org/model --cache-dir "$C" >/dev/null 2>"$T/e8" || fail "refresh: $(cat "$T/e8")"
cmp -s "$T/www/bucket/a/config.json" "$path/config.json" || fail "config.json not refreshed"
grep -q 'cached hf://org/model' "$T/e8" || fail "no download on change: $(cat "$T/e8")"
check "changed file downloaded again: $(tail -1 "$T/e8")"

echo "== LRU eviction beyond the capacity"
"$W" cache "http://127.0.0.1:$PORT/bucket/b/" --cache-dir "$C" --capacity 100MB >/dev/null 2>&1 || fail "open b"
sleep 0.05
"$W" cache "http://127.0.0.1:$PORT/bucket/c/" --cache-dir "$C" --capacity 15MB >/dev/null 2>"$T/e9" || fail "open c"
ls "$C/models" | grep -q '^org-model' && fail "the least recently used model (hf) was not evicted"
ls "$C/models" | grep -q 'bucket-b' || fail "b was evicted although it fits"
ls "$C/models" | grep -q 'bucket-c' || fail "the model just opened was evicted"
check "capacity 15 MB: the least recently used model went, the two newest stayed"
"$W" cache "http://127.0.0.1:$PORT/bucket/c/" --cache-dir "$C" --capacity 1MB >/dev/null 2>&1 || fail "open c again"
ls "$C/models" | grep -q 'bucket-c' || fail "the open model was evicted"
check "a model bigger than the capacity is kept while it is the one opened"
echo "weights_cache: all checks passed"
