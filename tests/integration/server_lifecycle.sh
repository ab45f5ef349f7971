#!/usr/bin/env bash
# server_lifecycle: infergate-server's start and stop. /health is 503 while the
# model loads (the listener opens first) and 200 once ready; SIGTERM turns
# /health and new requests to 503 while a running stream finishes, then the
# process exits 0; past --shutdown-grace a stream is ended with an error event
# and [DONE]; `--model URL --cache-dir DIR` fetches the model through the shared
# weights cache from nginx (a cold then a warm start). Unknown flags are refused.
. "$(dirname "$0")/../lib/server/lib.sh"
[ -x "$IG_TOP/bin/infergate-server" ] && SERVER_BIN="$IG_TOP/bin/infergate-server"
make_model "$T/m" tiny 5

echo "== flags"
"${SERVER_BIN:-$IG_BIN/infergate-server}" --model "$T/m" --bogus-flag 2>"$T/flag.err" && fail "an unknown flag was accepted"
grep -q 'unknown argument --bogus-flag' "$T/flag.err" || fail "unknown flag message: $(cat "$T/flag.err")"
ok "unknown flag refused: $(head -1 "$T/flag.err")"
# The step-composition knobs: a bad value is refused at start with the flag's name and range.
for bad in "--max-prefill-tokens -1" "--max-prefill-tokens 2000000" "--max-prefill-tokens 12x" \
	"--max-num-batched-tokens 0" "--max-prefill-tokens" "--prefill-delay-budget -5" "--prefill-delay-budget 1e3"; do
	# shellcheck disable=SC2086
	"${SERVER_BIN:-$IG_BIN/infergate-server}" --model "$T/m" $bad 2>"$T/flag.err"
	rc=$?
	[ "$rc" = 2 ] || fail "$bad: exit $rc, not 2"
	grep -q -- "${bad%% *}" "$T/flag.err" || fail "$bad: message without the flag: $(cat "$T/flag.err")"
done
ok "bad --max-prefill-tokens / --max-num-batched-tokens / --prefill-delay-budget refused: $(head -1 "$T/flag.err")"

echo "== /health while loading"
NO_WAIT=1 start_server P --model "$T/m" --load-delay 2s
[ "$(get "$P" /health "$T/h")" = 503 ] || fail "/health not 503 while loading"
[ "$(post "$P" /v1/completions '{"prompt":"x"}' "$T/r")" = 503 ] || fail "completion not 503 while loading"
jcheck "$T/r" '"loading" in d["error"]["message"]' "loading message"
[ "$(get "$P" /metrics "$T/mm")" = 200 ] || fail "/metrics while loading"
ok "/health 503, completions 503 (\"$(jget "$T/r" 'd["error"]["message"]')\"), /metrics 200 while loading"
for _ in $(seq 1 300); do [ "$(get "$P" /health "$T/h")" = 200 ] && break; sleep 0.05; done
[ "$(get "$P" /health "$T/h")" = 200 ] || fail "/health never 200"
ok "/health 200 once loaded"

echo "== SIGTERM: drain"
curl -sN -m 60 "http://127.0.0.1:$P/v1/completions" -H 'Content-Type: application/json' \
	-d '{"prompt":"Go on","max_tokens":400,"temperature":0,"ignore_eos":true,"stream":true}' >"$T/s1.sse" &
cp=$!
for _ in $(seq 1 100); do [ -s "$T/s1.sse" ] && break; sleep 0.02; done
kill -TERM "$P_PID"
sleep 0.2
[ "$(get "$P" /health "$T/h")" = 503 ] || fail "/health not 503 while draining"
[ "$(post "$P" /v1/completions '{"prompt":"x"}' "$T/r")" = 503 ] || fail "new request not 503 while draining"
ok "draining: /health 503, a new request 503 ($(jget "$T/r" 'd["error"]["message"]'))"
wait "$cp"
tail -c 300 "$T/s1.sse" | grep -q '"finish_reason":"length"' || fail "the running stream did not finish: $(tail -c 300 "$T/s1.sse")"
tail -1 "$T/s1.sse" | grep -q 'data: \[DONE\]' || tail -2 "$T/s1.sse" | grep -q '\[DONE\]' || fail "no [DONE]"
n=$(grep -c '"text"' "$T/s1.sse")
ok "the stream in flight finished all its tokens ($n chunks, finish length, [DONE])"
for _ in $(seq 1 100); do kill -0 "$P_PID" 2>/dev/null || break; sleep 0.05; done
kill -0 "$P_PID" 2>/dev/null && fail "server still running after the drain"
wait "$P_PID"; rc=$?
SRV_PIDS=""
[ "$rc" = 0 ] || fail "exit status $rc after the drain"
ok "exit 0 after the drain"

echo "== SIGTERM past the grace period"
start_server Q --model "$T/m" --shutdown-grace 500ms
curl -sN -m 60 "http://127.0.0.1:$Q/v1/completions" -H 'Content-Type: application/json' \
	-d '{"prompt":"Go on","max_tokens":1900,"temperature":0,"ignore_eos":true,"stream":true}' >"$T/s2.sse" &
cp=$!
for _ in $(seq 1 100); do [ -s "$T/s2.sse" ] && break; sleep 0.02; done
t0=$(date +%s%N)
kill -TERM "$Q_PID"
wait "$cp"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
grep -q 'data: {"error"' "$T/s2.sse" || fail "no error event: $(tail -c 300 "$T/s2.sse")"
tail -2 "$T/s2.sse" | grep -q '\[DONE\]' || fail "no [DONE] after the error event"
[ "$ms" -lt 5000 ] || fail "the stream ended ${ms} ms after SIGTERM"
wait "$Q_PID"; rc=$?
SRV_PIDS=""
[ "$rc" = 0 ] || fail "exit status $rc"
ok "grace 500ms: the long stream ended with an error event and [DONE] after ${ms} ms; exit 0"

echo "== --model URL --cache-dir DIR (nginx bucket)"
NPORT=$(( 10000 + $(printf '%s' server_lifecycle | cksum | cut -d' ' -f1) % 20000 ))
mkdir -p "$T/www/bucket" "$T/ng"
cp -r "$T/m" "$T/www/bucket/m"
sed -e "s#@PORT@#$NPORT#g" -e "s#@ROOT@#$T/www#g" -e "s#@PREFIX@#$T/ng#g" "$IG_TOP/tests/lib/weights/nginx.conf.in" >"$T/ng/nginx.conf"
/usr/sbin/nginx -p "$T/ng" -c "$T/ng/nginx.conf" 2>"$T/ng/stderr.log" &
BG_PIDS="$BG_PIDS $!"
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$NPORT/bucket/" && break; sleep 0.05; done
URL="http://127.0.0.1:$NPORT/bucket/m/"
t0=$(date +%s%N)
start_server U --model "$URL" --cache-dir "$T/cache" --served-model-name tiny
cold=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$(post "$U" /v1/completions '{"prompt":"Hello","max_tokens":3,"temperature":0}' "$T/u")" = 200 ] || fail "completion from the cached model"
grep -q 'downloaded' "$T"/srv*.err || fail "no download logged"
ok "cold start from $URL through the cache in ${cold} ms; completions work"
stop_server "$U_PID"
t0=$(date +%s%N)
start_server V --model "$URL" --cache-dir "$T/cache" --served-model-name tiny
warm=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$(post "$V" /v1/completions '{"prompt":"Hello","max_tokens":3,"temperature":0}' "$T/v")" = 200 ] || fail "warm completion"
[ "$(jget "$T/u" 'd["choices"][0]["text"]')" = "$(jget "$T/v" 'd["choices"][0]["text"]')" ] || fail "cold and warm answers differ"
ok "warm start in ${warm} ms (found in the cache), same answer"
stop_server "$V_PID"
