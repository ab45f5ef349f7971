#!/usr/bin/env bash
# infergate-sim's faults, each set through POST /sim/faults and shown by GET:
# health 503, a 5xx answer (for the next N), refused connections (and back),
# hangs that end when the client leaves, streams cut after N chunks without
# [DONE], garbage metrics, death after N requests, flags at start, SIGUSR1.
. "$(dirname "$0")/../lib/sim.sh"
T=$SIM_TMP

start_sim P --region europe-west4 --control-port 0 --itl-ms 5 --ttft-ms 5
CP=$(curl -s -m 5 "http://127.0.0.1:$P/health" -o /dev/null -w '%{http_code}')
[ "$CP" = 200 ] || fail "healthy at start"
U="http://127.0.0.1:$P"
setf() { # json: POST it, check 200
	code=$(curl -s -m 5 -o "$T/f" -w '%{http_code}' -X POST "$U/sim/faults" -d "$1")
	[ "$code" = 200 ] || { cat "$T/f"; fail "POST /sim/faults $1: $code"; }
}
getf() { curl -s -m 5 "$U/sim/faults" >"$T/g"; }
clearf() { curl -s -m 5 -o /dev/null -X DELETE "$U/sim/faults"; }

getf
jcheck "$T/g" 'd["region"]=="europe-west4" and d["health_fail"] is False and d["error_status"] is None and d["close_after_chunks"] is None and d["kv_usage"] is None and d["hang"]=="off" and d["refuse"] is False' "GET /sim/faults: region, nothing set"

# health
setf '{"health_fail":true}'; getf
jcheck "$T/g" 'd["health_fail"] is True' "GET shows health_fail"
[ "$(curl -s -m 5 -o /dev/null -w '%{http_code}' "$U/health")" = 503 ] || fail "health 503"
ok "/health answers 503"
clearf
[ "$(curl -s -m 5 -o /dev/null -w '%{http_code}' "$U/health")" = 200 ] || fail "health back"
ok "DELETE /sim/faults: /health 200 again"

# 5xx answers for the next 2 completions
setf '{"error_status":503,"error_count":2}'; getf
jcheck "$T/g" 'd["error_status"]==503 and d["error_count"]==2' "GET shows error_status 503 for 2"
for i in 1 2; do
	code=$(post $P /v1/chat/completions '{"messages":[{"role":"user","content":"x"}],"max_tokens":2}' "$T/e")
	[ "$code" = 503 ] || fail "request $i: $code, expected 503"
done
jcheck "$T/e" 'd["error"]["code"]==503 and d["error"]["message"]' "503 answered with an OpenAI error body"
code=$(post $P /v1/chat/completions '{"messages":[{"role":"user","content":"x"}],"max_tokens":2}' "$T/e")
[ "$code" = 200 ] || fail "third request $code"
getf
jcheck "$T/g" 'd["error_status"] is None' "after 2 errors the fault is spent; the third request got 200"
setf '{"error_status":500,"error_rate":0.5}'
n500=0
for i in $(seq 1 40); do
	[ "$(post $P /v1/completions '{"prompt":"x","max_tokens":1}' "$T/e")" = 500 ] && n500=$((n500 + 1))
done
[ "$n500" -ge 8 ] && [ "$n500" -le 32 ] || fail "error_rate 0.5 gave $n500 of 40"
ok "error_rate 0.5: $n500 of 40 requests got 500"
clearf

# refuse: connect fails (ECONNREFUSED = curl 7), the control port still answers
setf '{"refuse":true}'
curl -s -m 5 -o /dev/null "$U/health"; rc=$?
[ "$rc" = 7 ] || fail "connect while refusing: curl rc $rc, expected 7"
CPORT=$(sed -n 's/.* control-port \([0-9][0-9]*\).*/\1/p' "$SIM_TMP/sim1.out")
[ -n "$CPORT" ] || fail "control port not found"
curl -s -m 5 "http://127.0.0.1:$CPORT/sim/faults" >"$T/g"
jcheck "$T/g" 'd["refuse"] is True' "connections refused (curl rc 7); GET through --control-port shows refuse"
curl -s -m 5 -o /dev/null -X DELETE "http://127.0.0.1:$CPORT/sim/faults"
[ "$(curl -s -m 5 -o /dev/null -w '%{http_code}' "$U/health")" = 200 ] || fail "listening again"
ok "DELETE through the control port: the same port accepts again"
setf '{"refuse":true,"refuse_ms":300}'
curl -s -m 5 -o /dev/null "$U/health"; [ $? = 7 ] || fail "refuse_ms: not refused"
sleep 0.6
[ "$(curl -s -m 5 -o /dev/null -w '%{http_code}' "$U/health")" = 200 ] || fail "refuse_ms did not end"
ok "refuse_ms 300: refused, then accepting again by itself"

# hang: the request is never answered; the client times out; the loop goes on
setf '{"hang":"request","hang_path":"/v1/"}'; getf
jcheck "$T/g" 'd["hang"]=="request" and d["hang_path"]=="/v1/"' "GET shows hang request on /v1/"
start=$(date +%s.%N)
curl -s -m 1 -o /dev/null "$U/v1/completions" -d '{"prompt":"x"}'; rc=$?
[ "$rc" = 28 ] || fail "hung request: curl rc $rc, expected 28 (timeout)"
[ "$(curl -s -m 5 -o /dev/null -w '%{http_code}' "$U/health")" = 200 ] || fail "health while hanging"
ok "hang request: the completion times out (curl rc 28) while /health still answers"
setf '{"hang":"head","hang_path":null}'
curl -s -m 1 -D "$T/hh" -o /dev/null "$U/health"; rc=$?
[ "$rc" = 28 ] && head -1 "$T/hh" | grep -q ' 200 ' || fail "hang head: rc $rc"
ok "hang head: the head arrives, then nothing (curl rc 28)"
clearf
[ "$(curl -s -m 5 -o /dev/null -w '%{http_code}' "$U/health")" = 200 ] || fail "after hangs"

# close mid-stream after 3 data events: no [DONE], the transfer ends short
setf '{"close_after_chunks":3,"close_count":1}'; getf
jcheck "$T/g" 'd["close_after_chunks"]==3 and d["close_count"]==1' "GET shows close_after_chunks 3 for 1 stream"
curl -sN -m 10 -o "$T/cut" "$U/v1/chat/completions" -d '{"messages":[{"role":"user","content":"x"}],"max_tokens":20,"stream":true}'; rc=$?
[ "$rc" = 18 ] || fail "cut stream: curl rc $rc, expected 18 (transfer closed with data outstanding)"
[ "$(grep -c '^data: ' "$T/cut")" = 3 ] || fail "cut stream: $(grep -c '^data: ' "$T/cut") events, expected 3"
! grep -q '\[DONE\]' "$T/cut" || fail "cut stream has [DONE]"
ok "stream closed abruptly after 3 events (role + 2 tokens), no [DONE], curl rc 18"
curl -sN -m 10 -o "$T/whole" "$U/v1/chat/completions" -d '{"messages":[{"role":"user","content":"x"}],"max_tokens":20,"stream":true}' || fail "next stream"
tail -c 15 "$T/whole" | grep -q 'data: \[DONE\]' || fail "next stream incomplete"
ok "close_count 1: the next stream is whole"
[ "$(metric $P 'vllm:num_requests_running{')" = 0 ] || fail "cut request still running"
ok "the cut request was freed (num_requests_running 0)"

# slow_factor and pins are shown by GET (their effects: sim_latency, sim_kvcache)
setf '{"slow_factor":3,"kv_usage":0.65,"waiting":4}'; getf
jcheck "$T/g" 'd["slow_factor"]==3 and d["kv_usage"]==0.65 and d["waiting"]==4' "GET shows slow_factor, kv_usage, waiting"
clearf

# metrics garbage
setf '{"metrics_garbage":true}'
curl -s -m 5 "$U/metrics" >"$T/mg"
! grep -q '^vllm:num_requests_running' "$T/mg" || fail "garbage metrics"
ok "metrics_garbage: /metrics is not Prometheus text"
clearf

# bad fault bodies: 400, nothing changed
code=$(curl -s -m 5 -o "$T/e" -w '%{http_code}' -X POST "$U/sim/faults" -d '{"health_fail":true,"kv_usage":7}')
[ "$code" = 400 ] || fail "bad kv_usage: $code"
getf
jcheck "$T/g" 'd["health_fail"] is False' "a bad fault body is 400 and changes nothing"
code=$(curl -s -m 5 -o "$T/e" -w '%{http_code}' -X POST "$U/sim/faults" -d '{"nonsense":1}')
[ "$code" = 400 ] || fail "unknown fault: $code"
ok "unknown fault key: 400"

# SIGUSR1 clears every fault
setf '{"health_fail":true}'
kill -USR1 "$P_PID"
sleep 0.2
[ "$(curl -s -m 5 -o /dev/null -w '%{http_code}' "$U/health")" = 200 ] || fail "SIGUSR1"
ok "SIGUSR1 clears the faults"

# Faults as flags at start; death at the third completion
start_sim Q --health-fail --error-status 502 --error-count 1 --die-after-requests 3
getf_q() { curl -s -m 5 "http://127.0.0.1:$Q/sim/faults" >"$T/gq"; }
getf_q
jcheck "$T/gq" 'd["health_fail"] is True and d["error_status"]==502 and d["die_after_requests"]==3' "fault flags at start are in GET"
[ "$(post $Q /v1/completions '{"prompt":"x","max_tokens":1}' "$T/e")" = 502 ] || fail "flag error_status"
[ "$(post $Q /v1/completions '{"prompt":"x","max_tokens":1}' "$T/e")" = 200 ] || fail "second request"
expect_death "$Q_PID"
curl -s -m 5 -o /dev/null "http://127.0.0.1:$Q/v1/completions" -d '{"prompt":"x","max_tokens":1}'; rc=$?
[ "$rc" = 52 ] || [ "$rc" = 56 ] || fail "third request should find the process dying: curl rc $rc"
for _ in $(seq 1 50); do kill -0 "$Q_PID" 2>/dev/null || break; sleep 0.1; done
! kill -0 "$Q_PID" 2>/dev/null || fail "process still alive"
ok "die_after_requests 3: the third completion kills the process (curl rc $rc)"
