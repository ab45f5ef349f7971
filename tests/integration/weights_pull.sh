#!/usr/bin/env bash
# weights_pull: `infergate-weights pull` against nginx on loopback — an HTTP
# bucket (JSON autoindex, Range), a Hugging Face-shaped mirror (302 to another
# host, sha256 verified, the token never sent to that host), a gated repository
# (401 without a token, 403 with a refused one), missing repository / revision /
# file, a wrong checksum, a bucket destination (PUT), and the server dying in the
# middle of a file (restarted: the download resumes from its sidecar).
. "$(dirname "$0")/../lib/weights/lib.sh"

mkdir -p "$T/www/bucket/m" "$T/www/upload" "$T/www/slow"
make_files "$T/www/bucket/m"
hf_repo org model "$T/www/bucket/m"
nginx_start
export HF_ENDPOINT="http://127.0.0.1:$PORT/hf"
B="http://127.0.0.1:$PORT/bucket/m/"

echo "== HTTP bucket"
"$W" pull "$B" "$T/out" --connections 4 --chunk-size 1MiB 2>"$T/log" || fail "pull: $(cat "$T/log")"
same_tree "$T/www/bucket/m" "$T/out" || fail "HTTP bucket copy differs"
check "HTTP bucket pulled byte-exact (nested folders, empty file)"
grep -q '1 MB\|files' "$T/log" && check "one-line summary when not a terminal: $(tail -1 "$T/log")"
ranges=$(grep -c 'model-00001.*range="bytes=' "$T/ng/access.log")
[ "$ranges" -ge 5 ] || fail "expected parallel range requests, saw $ranges"
check "5 MB shard fetched as $ranges range requests"
"$W" pull "$B" "$T/out" 2>"$T/log" || fail "second pull"
grep -q '0 downloaded' "$T/log" || fail "second pull downloaded again: $(cat "$T/log")"
check "second pull skips verified files"
ls -A "$T/out" | grep -v '^\.infergate$' | grep -q '\.part' && fail "partial file left in the destination"

echo "== Hugging Face mirror"
HF_TOKEN=tok-123 "$W" pull hf://org/model "$T/hf" --chunk-size 1MiB 2>"$T/log" || fail "hf pull: $(cat "$T/log")"
same_tree "$T/www/bucket/m" "$T/hf" || fail "hf copy differs"
check "hf://org/model pulled byte-exact (LFS files through a 302 to 127.0.0.2)"
grep -q '^127.0.0.2 GET /lfs/org/model/model-00001' "$T/ng/access.log" || fail "the 302 was not followed to the CDN host"
grep '^127.0.0.2' "$T/ng/access.log" | grep -q 'tok-123' && fail "Authorization leaked to the redirect host"
grep '^127.0.0.1 GET /hf/api' "$T/ng/access.log" | grep -q 'Bearer tok-123' || fail "token not sent to the hub"
check "HF_TOKEN sent to the hub, dropped on the redirect to another host"

echo "== gated repository"
mkdir -p "$T/www/hf/api/models/gated/model/revision" "$T/www/hf/gated/model/resolve/main"
printf '{"sha":"1","siblings":[{"rfilename":"config.json","size":3}]}' >"$T/www/hf/api/models/gated/model/revision/main"
printf 'abc' >"$T/www/hf/gated/model/resolve/main/config.json"
env -u HF_TOKEN "$W" pull hf://gated/model "$T/g1" 2>"$T/log" && fail "gated pull without a token succeeded"
grep -q 'gated repository (HTTP 401): set HF_TOKEN' "$T/log" || fail "401 message: $(cat "$T/log")"
check "401 GatedRepo: $(tail -1 "$T/log")"
HF_TOKEN=bad "$W" pull hf://gated/model "$T/g2" 2>"$T/log" && fail "gated pull with a refused token succeeded"
grep -q 'HTTP 403, GatedRepo): accept the model.s licence' "$T/log" || fail "403 message: $(cat "$T/log")"
check "403 GatedRepo: $(tail -1 "$T/log")"
HF_TOKEN=good-token "$W" pull hf://gated/model "$T/g3" 2>"$T/log" || fail "gated pull with a good token: $(cat "$T/log")"
[ "$(cat "$T/g3/config.json")" = abc ] || fail "gated content"
check "an accepted token pulls the gated repository"

echo "== missing things are named"
"$W" pull hf://org/nothere "$T/n1" 2>"$T/log" && fail "missing repo succeeded"
grep -q 'repository not found: org/nothere' "$T/log" || fail "RepoNotFound: $(cat "$T/log")"
check "$(tail -1 "$T/log")"
"$W" pull hf://gated/model@v9 "$T/n2" 2>"$T/log" </dev/null; HF_TOKEN=good-token "$W" pull hf://gated/model@v9 "$T/n2" 2>"$T/log" && fail "missing revision succeeded"
grep -q 'revision not found: v9' "$T/log" || fail "RevisionNotFound: $(cat "$T/log")"
check "$(tail -1 "$T/log")"
mkdir -p "$T/www/hf/api/models/org/broken/revision"
printf '{"sha":"2","siblings":[{"rfilename":"weights.bin","size":2000000}]}' >"$T/www/hf/api/models/org/broken/revision/main"
"$W" pull hf://org/broken "$T/n3" --retries 1 2>"$T/log" && fail "missing file succeeded"
grep -q 'file not found: weights.bin' "$T/log" || fail "EntryNotFound: $(cat "$T/log")"
[ -e "$T/n3/weights.bin" ] && fail "a missing file appeared"
check "$(tail -1 "$T/log")"
"$W" pull "http://127.0.0.1:$PORT/bucket/none/" "$T/n4" --retries 1 2>"$T/log" && fail "404 bucket succeeded"
grep -q 'not found (HTTP 404)' "$T/log" || fail "404 message: $(cat "$T/log")"
check "$(tail -1 "$T/log")"

echo "== wrong checksum"
mkdir -p "$T/www/hf/api/models/org/corrupt/revision" "$T/www/lfs/org/corrupt"
cp "$T/www/bucket/m/model-00002-of-00002.safetensors" "$T/www/lfs/org/corrupt/w.safetensors"
printf '{"sha":"3","siblings":[{"rfilename":"w.safetensors","size":3333333,"lfs":{"sha256":"%s","size":3333333}}]}' \
	"$(printf x | sha256sum | cut -d' ' -f1)" >"$T/www/hf/api/models/org/corrupt/revision/main"
"$W" pull hf://org/corrupt "$T/c" 2>"$T/log" && fail "a wrong checksum succeeded"
grep -q 'checksum mismatch for w.safetensors: expected sha256' "$T/log" || fail "checksum message: $(cat "$T/log")"
[ -e "$T/c/w.safetensors" ] && fail "the corrupt file appeared under its final name"
ls "$T/c/.infergate/" | grep -q part && fail "the corrupt partial file was kept"
check "wrong sha256: clear error, no file: $(tail -1 "$T/log" | cut -c1-100)"

echo "== bucket destination (PUT)"
"$W" pull "$B" "http://127.0.0.1:$PORT/upload/copy/" --staging-dir "$T" 2>"$T/log" || fail "upload: $(cat "$T/log")"
same_tree "$T/www/bucket/m" "$T/www/upload/copy" || fail "uploaded copy differs"
check "pulled into a writable HTTP bucket"

echo "== the server dies mid-file, comes back, the pull resumes"
head -c 12000000 /dev/urandom >"$T/www/slow/big.bin"
S="http://127.0.0.1:$PORT/slow/"
"$W" pull "$S" "$T/r" --connections 4 --chunk-size 1MiB --retries 1 2>"$T/log1" &
P=$!
sleep 4.5
nginx_stop
wait $P && fail "the pull succeeded although the server died"
check "pull failed while the server was down: $(grep 'pull failed' "$T/log1" | cut -c1-120)"
[ -e "$T/r/big.bin" ] && fail "an incomplete file appeared"
ls "$T/r/.infergate/"*.ranges >/dev/null 2>&1 || fail "no sidecar kept for the resume"
/usr/sbin/nginx -p "$T/ng" -c "$T/ng/nginx.conf" 2>>"$T/ng/stderr.log" & NGINX_PID=$!; PIDS="$PIDS $NGINX_PID"
wait_port "$PORT" || fail "nginx restart"
"$W" pull "$S" "$T/r" --connections 8 --chunk-size 1MiB 2>"$T/log2" || fail "resume: $(cat "$T/log2")"
grep -q 'resuming big.bin' "$T/log2" || fail "did not resume: $(cat "$T/log2")"
cmp -s "$T/www/slow/big.bin" "$T/r/big.bin" || fail "resumed file differs"
check "$(grep resuming "$T/log2"); result byte-exact"

echo "== the server dies and returns within the retry budget: one pull finishes"
rm -rf "$T/r2"
"$W" pull "$S" "$T/r2" --connections 4 --chunk-size 1MiB --retries 6 2>"$T/log3" &
P=$!
sleep 1
nginx_stop
sleep 1
/usr/sbin/nginx -p "$T/ng" -c "$T/ng/nginx.conf" 2>>"$T/ng/stderr.log" & NGINX_PID=$!; PIDS="$PIDS $NGINX_PID"
wait $P || fail "pull across a restart: $(tail -3 "$T/log3")"
cmp -s "$T/www/slow/big.bin" "$T/r2/big.bin" || fail "file differs after the restart"
check "retries with backoff carried the pull across a server restart"
echo "weights_pull: all checks passed"
