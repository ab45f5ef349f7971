#!/usr/bin/env bash
# weights_objstore: pull from and into S3 (Signature V4 checked by the server
# on every request, ListObjectsV2 continuation) and GCS (JSON API, bearer token,
# page tokens), both served by tests/lib/weights/objserver.py on loopback; and the
# fault server: a stalled range, a short body, a server that ignores Range —
# each retried to a byte-exact file or a clear error, never a corrupt file.
. "$(dirname "$0")/../lib/weights/lib.sh"
command -v python3 >/dev/null || { echo "SKIP: python3 is not installed"; exit 0; }
OBJ="$IG_TOP/tests/lib/weights/objserver.py"
S3P=$((PORT + 1)) GCP=$((PORT + 2)) FP=$((PORT + 3))
export AWS_ACCESS_KEY_ID=AKIDTEST AWS_SECRET_ACCESS_KEY=test/secret+key AWS_REGION=eu-west-4 GCS_TOKEN=gcs-token
mkdir -p "$T/s3/models/gemma" "$T/gcs/wb/gemma" "$T/f/m" "$T/src"
make_files "$T/src"
cp -r "$T/src/." "$T/s3/models/gemma/"
cp -r "$T/src/." "$T/gcs/wb/gemma/"
cp -r "$T/src/." "$T/f/m/"
python3 "$OBJ" s3 "$S3P" "$T/s3" & PIDS="$PIDS $!"
python3 "$OBJ" gcs "$GCP" "$T/gcs" & PIDS="$PIDS $!"
python3 "$OBJ" fault "$FP" "$T/f" & PIDS="$PIDS $!"
wait_port "$S3P" && wait_port "$GCP" && wait_port "$FP" || fail "object servers did not start"

echo "== S3"
"$W" pull s3://models/gemma "$T/o1" --s3-endpoint "http://127.0.0.1:$S3P" --chunk-size 1MiB 2>"$T/log" || fail "s3 pull: $(cat "$T/log")"
same_tree "$T/src" "$T/o1" || fail "s3 copy differs"
check "s3://models/gemma pulled (SigV4 accepted, 2-key pages, md5 ETags verified)"
AWS_SECRET_ACCESS_KEY=wrong "$W" pull s3://models/gemma "$T/o2" --s3-endpoint "http://127.0.0.1:$S3P" --retries 0 2>"$T/log" && fail "a wrong secret was accepted"
grep -q 'forbidden (HTTP 403).*SignatureDoesNotMatch' "$T/log" || fail "bad signature message: $(cat "$T/log")"
check "wrong secret: $(tail -1 "$T/log" | cut -c1-110)"
AWS_ENDPOINT_URL="http://127.0.0.1:$S3P" "$W" pull "$T/o1" s3://models/copy 2>"$T/log" && fail "a folder is not a source"
AWS_ENDPOINT_URL="http://127.0.0.1:$S3P" "$W" pull s3://models/gemma s3://models/copy --staging-dir "$T" 2>"$T/log" || fail "s3 to s3: $(cat "$T/log")"
same_tree "$T/src" "$T/s3/models/copy" || fail "s3 upload differs"
check "s3 to s3 (signed PUTs with the payload sha256)"

echo "== GCS"
"$W" pull gs://wb/gemma "$T/o3" --gcs-endpoint "http://127.0.0.1:$GCP" --chunk-size 1MiB 2>"$T/log" || fail "gcs pull: $(cat "$T/log")"
same_tree "$T/src" "$T/o3" || fail "gcs copy differs"
check "gs://wb/gemma pulled (bearer token, page tokens, md5Hash verified)"
STORAGE_EMULATOR_HOST="127.0.0.1:$GCP" "$W" pull gs://wb/gemma gs://wb/copy --staging-dir "$T" 2>"$T/log" || fail "gcs upload: $(cat "$T/log")"
same_tree "$T/src" "$T/gcs/wb/copy" || fail "gcs upload differs"
check "gs to gs upload (uploadType=media)"
GCS_TOKEN=nope "$W" pull gs://wb/gemma "$T/o4" --gcs-endpoint "http://127.0.0.1:$GCP" 2>"$T/log" && fail "a bad token was accepted"
grep -q 'unauthorised (HTTP 401)' "$T/log" || fail "401 message: $(cat "$T/log")"
check "bad GCS token: $(tail -1 "$T/log" | cut -c1-100)"

echo "== faults"
F="http://127.0.0.1:$FP"
start=$(date +%s)
"$W" pull "$F/stall-once/m/" "$T/s" --chunk-size 1MiB --stall-timeout 2 2>"$T/log" || fail "stall: $(cat "$T/log")"
same_tree "$T/src" "$T/s" || fail "stalled download differs"
check "every range stalled once: retried after the 2 s stall timeout, byte-exact ($(( $(date +%s) - start )) s)"
"$W" pull "$F/short-once/m/" "$T/sh" --chunk-size 1MiB 2>"$T/log" || fail "short once: $(cat "$T/log")"
same_tree "$T/src" "$T/sh" || fail "short-body download differs"
check "every range cut short once: retried, byte-exact"
"$W" pull "$F/short-always/m/" "$T/sa" --chunk-size 1MiB --retries 2 2>"$T/log" && fail "always-short succeeded"
grep -qi 'partial file\|short body\|transferred a partial' "$T/log" || fail "short message: $(cat "$T/log")"
ls "$T/sa" 2>/dev/null | grep -q safetensors && fail "a short file appeared"
check "always short: $(grep 'pull failed' "$T/log" | cut -c1-120)"
"$W" pull "$F/wrong-range/m/" "$T/wr" --chunk-size 1MiB --retries 1 2>"$T/log" && fail "Range-ignoring server succeeded"
grep -q 'does it support Range' "$T/log" || fail "range message: $(cat "$T/log")"
ls "$T/wr" 2>/dev/null | grep -q 'model-0000' && fail "a bad file appeared"
check "server ignoring Range: $(grep 'pull failed' "$T/log" | cut -c1-120)"
"$W" pull "$F/ok/nothing/" "$T/nf" --retries 0 2>"$T/log" && fail "404 succeeded"
grep -q 'not found (HTTP 404)' "$T/log" || fail "404: $(cat "$T/log")"
check "404: $(tail -1 "$T/log" | cut -c1-100)"
echo "weights_objstore: all checks passed"
