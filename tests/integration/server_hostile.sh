#!/usr/bin/env bash
# server_hostile: infergate-server (on core's httpd, as the gateway and the
# simulator) against hostile clients, on a tiny random checkpoint:
#   - a client pipelining requests and never reading: once output is paused
#     and input full, the server sleeps (CPU time from /proc/PID/stat, 2 s);
#   - a streamed completion whose client pipelines more than the read buffer
#     holds, then leaves: the generation is cancelled (running count 0 at once);
#   - request lines: absolute-form targets, HTTP/2.0 (505), Transfer-Encoding
#     "gzip, chunked" (501);
#   - a model name holding \u0000: 400, not served as "tiny".
. "$(dirname "$0")/../lib/server/lib.sh"
HOSTILE="$IG_TOP/tests/lib/gateway/hostile.js"
export NODE_PATH="$IG_TOP/tests/node/node_modules"
make_model "$T/m" tiny 1
start_server P --model "$T/m" --served-model-name tiny --max-model-len 2048

echo "== a pipelining client that never reads"
# The lowest share of a core used over a 2 s window within 14 s: once the
# answers (14 KB each) fill the socket buffers and the output buffer, the
# pipeline pauses and the server must sleep; spinning, no window is quiet.
node "$HOSTILE" noread "$P" 20000 /metrics 16 &
cl=$!
BG_PIDS="$BG_PIDS $cl"
ticks() { awk '{ print $14 + $15 }' "/proc/$P_PID/stat"; }
pct=100
sleep 2
t0=$(ticks)
for _ in 1 2 3 4 5 6; do
	sleep 2
	t1=$(ticks)
	p=$(((t1 - t0) * 100 / $(getconf CLK_TCK) / 2))
	[ "$p" -lt "$pct" ] && pct=$p
	[ "$pct" -lt 5 ] && break
	t0=$t1
done
kill "$cl" 2>/dev/null; wait "$cl" 2>/dev/null
[ "$pct" -lt 5 ] || fail "the server spins behind a paused pipeline: $pct% of a core over 2 s"
[ "$(get "$P" /health "$T/h")" = 200 ] || fail "/health after the paused pipeline"
ok "the server sleeps behind a paused pipeline ($pct% of a core over 2 s) and still answers"

echo "== a client that leaves with its buffer full"
aborted() { curl -s -m 10 "http://127.0.0.1:$P/metrics" | awk '/^vllm:request_success_total/ && /finished_reason="abort"/ { print $2; exit }'; }
running() { metric "$P" 'vllm:num_requests_running'; }
a0=$(aborted)
node "$HOSTILE" leave "$P" tiny 60000 >"$T/leave.out" 2>&1 &
lp=$!
BG_PIDS="$BG_PIDS $lp"
for _ in $(seq 1 100); do grep -q "stream started" "$T/leave.out" && break; sleep 0.1; done
grep -q "stream started" "$T/leave.out" || fail "the streamed completion did not start: $(cat "$T/leave.out")"
gone=0
for _ in $(seq 1 30); do [ "$(running)" = 0 ] && { gone=1; break; }; sleep 0.1; done
[ $gone = 1 ] || fail "the generation of a client that left is still running ($(running))"
a1=$(aborted)
echo "aborted before ${a0:-0}, after ${a1:-0}"
awk -v a="${a0:-0}" -v b="${a1:-0}" 'BEGIN { exit !(b > a) }' || fail "the generation ended without an abort (aborted ${a0:-0} -> ${a1:-0})"
kill "$lp" 2>/dev/null; wait "$lp" 2>/dev/null
ok "a client that half-closes with its buffer full: generation aborted within 3 s"

echo "== request lines and model names"
raw() { timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$P; printf '%b' \"\$1\" >&3; head -n 1 <&3" _ "$1" | tr -d '\r'; }
body='{"model":"tiny","prompt":"Hello","max_tokens":2}'
st=$(raw "POST http://server.example:8000/v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${#body}\r\nConnection: close\r\n\r\n$body")
[ "$st" = "HTTP/1.1 200 OK" ] || fail "absolute-form target: $st"
ok "absolute-form target served by its path"
st=$(raw "GET /health HTTP/2.0\r\nHost: x\r\n\r\n")
[ "${st:0:12}" = "HTTP/1.1 505" ] || fail "HTTP/2.0: $st"
st=$(raw "POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
[ "${st:0:12}" = "HTTP/1.1 501" ] || fail "gzip, chunked: $st"
ok "HTTP/2.0: 505; Transfer-Encoding gzip, chunked: 501"
[ "$(post "$P" /v1/completions '{"model":"tiny\u0000x","prompt":"Hello","max_tokens":2}' "$T/n")" = 400 ] ||
	fail "a model name with \\u0000: $(cat "$T/n")"
jcheck "$T/n" 'd["error"]["param"]=="model"' "the \\u0000 model error names the field"
ok "a model name with \\u0000: 400"
# The same class: strings compared with strcmp must not stop at a NUL.
chat='"messages":[{"role":"user","content":"hi"}],"max_tokens":2'
[ "$(post "$P" /v1/chat/completions "{\"model\":\"tiny\",$chat,\"response_format\":{\"type\":\"text\\u0000x\"}}" "$T/n")" = 400 ] ||
	fail "response_format type text\\u0000x: $(cat "$T/n")"
[ "$(post "$P" /v1/chat/completions "{\"model\":\"tiny\",$chat,\"tool_choice\":\"none\\u0000x\"}" "$T/n")" = 400 ] ||
	fail "tool_choice none\\u0000x: $(cat "$T/n")"
[ "$(post "$P" /v1/chat/completions "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\\u0000image_url\",\"text\":\"hi\"}]}],\"max_tokens\":2}" "$T/n")" = 400 ] ||
	fail "content part type text\\u0000image_url: $(cat "$T/n")"
[ "$(post "$P" /v1/chat/completions "{\"model\":\"tiny\",$chat,\"response_format\":{\"type\":\"text\"},\"tool_choice\":\"none\"}" "$T/n")" = 200 ] ||
	fail "response_format text and tool_choice none: $(cat "$T/n")"
ok "response_format type, tool_choice and content part types holding \\u0000: 400 (their plain forms 200)"

stop_server "$P_PID"
echo "all checks passed"
