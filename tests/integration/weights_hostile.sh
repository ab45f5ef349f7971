#!/usr/bin/env bash
# weights_hostile: buckets that lie and local users who plant files, against
# `infergate-weights pull` on loopback (nginx, and tests/lib/weights/objserver.py
# for answers nginx would never give):
#   - a 206 whose Content-Range is another range than the one asked;
#   - an object replaced during the pull (the fault server, and a real file
#     replaced under nginx): a clear error, never a file mixing two versions;
#   - a Hugging Face branch moving during the pull: files read at the listed commit;
#   - two pulls into one folder at once: the second waits for the first;
#   - listing names with a NUL, under .infergate/, or "..": the listing is refused;
#   - a staging folder planted by another user, and staged files that no longer
#     match the source's checksum: refused, or downloaded again, never uploaded;
#   - cache folders another user owns or everyone can write: refused;
#   - a symbolic link planted as a partial file: not followed.
. "$(dirname "$0")/../lib/weights/lib.sh"
command -v python3 >/dev/null || { echo "SKIP: python3 is not installed"; exit 0; }
OBJ="$IG_TOP/tests/lib/weights/objserver.py"
FP=$((PORT + 3))
mkdir -p "$T/www/bucket/m" "$T/www/slow/a" "$T/www/slow/b" "$T/www/upload" "$T/f/m" "$T/f/r" "$T/f/lie"
make_files "$T/www/bucket/m"
hf_repo org model "$T/www/bucket/m"
nginx_start
python3 "$OBJ" fault "$FP" "$T/f" & PIDS="$PIDS $!"
wait_port "$FP" || fail "the fault server did not start"
export HF_ENDPOINT="http://127.0.0.1:$PORT/hf"
F="http://127.0.0.1:$FP"

echo "== a 206 labelled with another range"
head -c 3000000 /dev/urandom >"$T/f/m/w.bin"
"$W" pull "$F/first-range/m/" "$T/o1" --chunk-size 1MiB --connections 1 --retries 1 2>"$T/log" &&
	fail "a wrong Content-Range was accepted (exit 0): $(cat "$T/log")"
grep -q 'asked for bytes 1048576-2097151 of 3000000, the server answered bytes 0-1048575/3000000' "$T/log" ||
	fail "wrong-range message: $(cat "$T/log")"
[ -e "$T/o1/w.bin" ] && fail "a file made of the wrong ranges appeared"
check "wrong Content-Range refused: $(grep -o 'w.bin: asked.*file)' "$T/log" | head -1)"

echo "== an object replaced during the pull (fault server: ETag v1, then v2)"
head -c 3000000 /dev/urandom >"$T/f/r/w.bin"
head -c 3000000 /dev/urandom >"$T/f/r/w.bin.v2"
printf '[{"name":"w.bin","type":"file","mtime":"x","size":3000000}]' >"$T/f/r/.listing.json"
"$W" pull "$F/replaced/r/" "$T/o2" --chunk-size 1MiB --connections 1 2>"$T/log" &&
	fail "a pull mixing two versions succeeded: $(cat "$T/log")"
grep -q 'w.bin changed at the source during the download' "$T/log" || fail "change message: $(cat "$T/log")"
grep -q 'partial download was discarded' "$T/log" || fail "partial kept: $(cat "$T/log")"
[ -e "$T/o2/w.bin" ] && fail "a mixed file appeared"
ls "$T/o2/.infergate/" | grep -q '\.part$' && fail "the mixed partial file was kept for a resume"
check "replaced object: $(grep -o 'w.bin changed[^;]*' "$T/log" | head -1)"
"$W" pull "$F/replaced/r/" "$T/o2" --chunk-size 1MiB --connections 4 2>"$T/log" || fail "rerun: $(cat "$T/log")"
cmp -s "$T/f/r/w.bin.v2" "$T/o2/w.bin" || fail "the rerun is not the new version"
check "a rerun takes the new version whole"

echo "== a file replaced under nginx during the pull"
head -c 3000000 /dev/urandom >"$T/www/slow/a/r.bin"
touch -d '2024-01-01 00:00:00' "$T/www/slow/a/r.bin"
"$W" pull "http://127.0.0.1:$PORT/slow/a/" "$T/o3" --chunk-size 512KiB --connections 2 2>"$T/log" &
P=$!
sleep 1
head -c 3000000 /dev/urandom >"$T/new.bin"
mv "$T/new.bin" "$T/www/slow/a/r.bin"
wait $P && fail "the pull of a file replaced in its middle succeeded"
grep -q 'r.bin changed at the source' "$T/log" || fail "nginx change message: $(cat "$T/log")"
[ -e "$T/o3/r.bin" ] && fail "a mixed file appeared"
grep 'slow/a/r.bin 412' "$T/ng/access.log" >/dev/null || grep -q 'Last-Modified' "$T/log" ||
	fail "neither If-Match nor Last-Modified caught the change"
check "nginx: $(grep -o 'r.bin changed[^;]*' "$T/log" | head -1)"

echo "== a Hugging Face branch that moves during the pull"
rev=1111111111111111111111111111111111111111
mkdir -p "$T/www/hf/api/models/org/moving/revision" "$T/www/hf/org/moving/resolve/main" "$T/www/hf/org/moving/resolve/$rev"
printf '{"sha":"%s","siblings":[{"rfilename":"config.json","size":5}]}' "$rev" >"$T/www/hf/api/models/org/moving/revision/main"
printf 'old!!' >"$T/www/hf/org/moving/resolve/$rev/config.json"
printf 'new!!' >"$T/www/hf/org/moving/resolve/main/config.json" # main moved on after the listing
"$W" pull hf://org/moving "$T/o10" 2>"$T/log" || fail "pull of a moving branch: $(cat "$T/log")"
[ "$(cat "$T/o10/config.json")" = 'old!!' ] || fail "the file was read at the branch, not at the listed commit"
grep -q "GET /hf/org/moving/resolve/$rev/config.json 206" "$T/ng/access.log" || fail "no request at the commit"
check "Hugging Face files are read at the commit the listing named ($rev), not at main"

echo "== two pulls into one folder"
head -c 4000000 /dev/urandom >"$T/www/slow/b/big.bin"
S="http://127.0.0.1:$PORT/slow/b/"
"$W" pull "$S" "$T/o4" --chunk-size 512KiB --connections 2 2>"$T/l1" &
P1=$!
sleep 1
"$W" pull "$S" "$T/o4" --lock-timeout 1 2>"$T/l3" && fail "a pull got in while another held the folder"
grep -q "another pull into $T/o4 is running" "$T/l3" || fail "lock timeout message: $(cat "$T/l3")"
check "lock timeout: $(tail -1 "$T/l3" | cut -c1-110)"
"$W" pull "$S" "$T/o4" --chunk-size 512KiB --connections 2 2>"$T/l2" &
P2=$!
wait $P1 || fail "first pull: $(cat "$T/l1")"
wait $P2 || fail "second pull: $(cat "$T/l2")"
cmp -s "$T/www/slow/b/big.bin" "$T/o4/big.bin" || fail "two pulls into one folder corrupted the file"
grep -q 'waiting for another process' "$T/l2" || fail "the second pull did not wait: $(cat "$T/l2")"
grep -q '1 already present' "$T/l2" || fail "the second pull did not find the file done: $(cat "$T/l2")"
check "the second pull waited, then found the file complete; byte-exact"

echo "== listing names that must be refused"
mkdir -p "$T/www/hf/api/models/org/nul/revision" "$T/www/hf/org/nul/resolve/main"
printf 'abc' >"$T/www/hf/org/nul/resolve/main/config.json"
printf '{"sha":"4","siblings":[{"rfilename":"config.json\\u0000.evil","size":3}]}' >"$T/www/hf/api/models/org/nul/revision/main"
"$W" pull hf://org/nul "$T/o5" 2>"$T/log" && fail "a name with a NUL was accepted"
grep -q 'the name "config.json\\x00.evil" contains a NUL byte' "$T/log" || fail "NUL message: $(cat "$T/log")"
[ -e "$T/o5/config.json" ] && fail "a NUL name was written truncated"
check "NUL: $(tail -1 "$T/log" | cut -c1-120)"
mkdir -p "$T/www/hf/api/models/org/state/revision" "$T/www/hf/org/state/resolve/main/.infergate"
printf 'abc' >"$T/www/hf/org/state/resolve/main/config.json"
printf '{"files":[]}' >"$T/www/hf/org/state/resolve/main/.infergate/manifest.json"
printf '{"sha":"5","siblings":[{"rfilename":"config.json","size":3},{"rfilename":".infergate/manifest.json","size":12}]}' \
	>"$T/www/hf/api/models/org/state/revision/main"
"$W" pull hf://org/state "$T/o6" 2>"$T/log" && fail "a name in .infergate/ was accepted"
grep -q "collides with the pull's own state folder" "$T/log" || fail ".infergate message: $(cat "$T/log")"
[ -e "$T/o6/.infergate/manifest.json" ] && fail "the listing wrote into the state folder"
check ".infergate: $(tail -1 "$T/log" | cut -c1-120)"
printf 'abc' >"$T/f/lie/ok.bin"
printf '[{"name":"ok.bin","type":"file","mtime":"x","size":3},{"name":"..","type":"directory","mtime":"x"}]' >"$T/f/lie/.listing.json"
"$W" pull "$F/ok/lie/" "$T/o7" 2>"$T/log" && fail "a listing with .. was accepted"
grep -q 'the folder "..".*not a safe relative path' "$T/log" || fail ".. message: $(cat "$T/log")"
check "..: $(tail -1 "$T/log" | cut -c1-120)"
printf '[{"name":"ok.bin\\u0000.x","type":"file","mtime":"x","size":3}]' >"$T/f/lie/.listing.json"
"$W" pull "$F/ok/lie/" "$T/o8" 2>"$T/log" && fail "an HTTP listing name with a NUL was accepted"
grep -q 'contains a NUL byte' "$T/log" || fail "HTTP NUL message: $(cat "$T/log")"
[ -e "$T/o8/ok.bin" ] && fail "an HTTP NUL name was written truncated"
check "HTTP listing NUL: refused"

echo "== a staging folder planted by another user"
mkdir -p "$T/stg" "$T/f/p"
head -c 200000 /dev/urandom >"$T/f/p/w.bin"
U="http://127.0.0.1:$PORT/upload/c1/"
# A first pull that fails (the source cuts every body short) leaves its staging folder.
"$W" pull "$F/short-always/p/" "$U" --staging-dir "$T/stg" --retries 0 2>"$T/log" && fail "short bodies succeeded"
stage=$(ls -d "$T/stg"/infergate-stage-*) || fail "no staging folder"
# Another user makes it first, with a file and a manifest saying it is done.
rm -rf "$stage"
mkdir -p "$stage/.infergate"
head -c 200000 /dev/zero | tr '\0' 'E' >"$stage/w.bin"
touch -d @1700000000 "$stage/w.bin"
printf '{"files":[{"path":"w.bin","size":200000,"mtime_ns":1700000000000000000,"id":"x"}]}\n' >"$stage/.infergate/manifest.json"
chmod -R 0777 "$stage"
chown -R nobody "$stage"
"$W" pull "$F/short-always/p/" "$U" --staging-dir "$T/stg" --retries 0 2>"$T/log" && fail "a planted staging folder was used"
grep -q 'is not private (owner uid 65534' "$T/log" || fail "planted staging message: $(cat "$T/log")"
[ -e "$T/www/upload/c1/w.bin" ] && fail "planted bytes were uploaded"
check "planted staging folder refused: $(tail -1 "$T/log" | cut -c1-120)"

echo "== staged files are proven against the source's checksum"
mkdir -p "$T/www/hf/api/models/org/st/revision" "$T/www/lfs/org/st"
head -c 2000000 /dev/urandom >"$T/big.bin"
sha=$(sha256sum "$T/big.bin" | cut -d' ' -f1)
printf '{"sha":"6","siblings":[{"rfilename":"big.bin","size":2000000,"lfs":{"sha256":"%s","size":2000000}}]}' "$sha" \
	>"$T/www/hf/api/models/org/st/revision/main"
U2="http://127.0.0.1:$PORT/upload/c2/"
# The file is missing from the "CDN" at first: the pull fails, its staging folder stays.
"$W" pull hf://org/st "$U2" --staging-dir "$T/stg" --retries 0 2>"$T/log" && fail "a missing file succeeded"
stage=$(grep -o 'staging in .*' "$T/log" | cut -c12-)
[ -d "$stage" ] || fail "no staging folder named: $(cat "$T/log")"
cp "$T/big.bin" "$T/www/lfs/org/st/big.bin"
# A stale file sits in it, recorded as verified in the manifest.
head -c 2000000 /dev/zero >"$stage/big.bin"
touch -d @1700000000 "$stage/big.bin"
printf '{"files":[{"path":"big.bin","size":2000000,"mtime_ns":1700000000000000000,"id":"%s"}]}\n' "$sha" \
	>"$stage/.infergate/manifest.json"
"$W" pull hf://org/st "$U2" --staging-dir "$T/stg" 2>"$T/log" || fail "pull with a stale staged file: $(cat "$T/log")"
cmp -s "$T/big.bin" "$T/www/upload/c2/big.bin" || fail "the stale staged file was uploaded"
grep -q '1 downloaded' "$T/log" || fail "the stale file was not downloaded again: $(cat "$T/log")"
[ -e "$stage" ] && fail "the staging folder was not removed after the upload"
check "a staged file that does not match the sha256 is downloaded again, the right bytes uploaded"
echo "== a symbolic link planted in the state folder"
mkdir -p "$T/www/slow/c"
head -c 4000000 /dev/urandom >"$T/www/slow/c/v.bin"
"$W" pull "http://127.0.0.1:$PORT/slow/c/" "$T/o9" --chunk-size 512KiB --connections 2 2>/dev/null &
P=$!
sleep 1
kill "$P"; wait "$P" 2>/dev/null
part=$(ls "$T/o9/.infergate/"*.part) || fail "no partial file left by the interrupted pull"
printf 'precious' >"$T/victim"
rm -f "$part"
ln -s "$T/victim" "$part"
"$W" pull "http://127.0.0.1:$PORT/slow/c/" "$T/o9" --chunk-size 512KiB 2>"$T/log" && fail "the pull wrote through a planted symlink"
[ "$(cat "$T/victim")" = precious ] || fail "a symlink in the state folder made the pull overwrite another file"
grep -q 'Too many levels of symbolic links' "$T/log" || fail "symlink message: $(cat "$T/log")"
check "planted symlink not followed: $(tail -1 "$T/log" | cut -c1-110)"

echo "== a cache whose folders another user could change"
C="$T/cache"
mkdir -p "$C/models"
chown nobody "$C/models"
"$W" cache hf://org/model --cache-dir "$C" 2>"$T/log" && fail "a cache under another user's folder was used"
grep -q "folder $C/models could be changed by another user (owner uid 65534" "$T/log" || fail "cache owner message: $(cat "$T/log")"
chown root "$C/models"
chmod 0777 "$C/models"
"$W" cache hf://org/model --cache-dir "$C" 2>"$T/log" && fail "a world-writable models folder was used"
grep -q 'mode 777' "$T/log" || fail "cache mode message: $(cat "$T/log")"
chmod 0755 "$C/models"
chmod 0777 "$C" # the cache folder itself may be open to all (a Kubernetes emptyDir is)
"$W" cache hf://org/model --cache-dir "$C" >"$T/path" 2>"$T/log" || fail "cache: $(cat "$T/log")"
same_tree "$T/www/bucket/m" "$(cat "$T/path")" || fail "cached copy differs"
check "cache folders owned by another user or writable by all are refused; ours are used"
echo "weights_hostile: all checks passed"
