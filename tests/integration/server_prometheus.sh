#!/usr/bin/env bash
# server_prometheus: a real Prometheus server (Debian's) scrapes
# infergate-server's /metrics every second; its HTTP API answers with the
# server's own values: vllm:prompt_tokens_total and generation tokens after a
# few requests, vllm:num_requests_running 1 while a stream runs and 0 after,
# the histogram counts, and the labels (model_name, engine); a client that
# leaves a running stream counts one abort, in /metrics and in prometheus.
# The held stream is long by construction: the model's context is 16384
# positions and the stream asks for all of them (ignore_eos), tens of seconds
# of decoding, and its client leaves as soon as prometheus saw it running.
. "$(dirname "$0")/../lib/server/lib.sh"
command -v prometheus >/dev/null || fail "prometheus not installed"
[ -x "$IG_TOP/bin/infergate-server" ] && SERVER_BIN="$IG_TOP/bin/infergate-server"
make_model "$T/m" tiny 4 --max-pos 16384
start_server P --model "$T/m" --served-model-name tiny --max-model-len 16384
PPORT=$(( 10000 + $(printf '%s' server_prometheus | cksum | cut -d' ' -f1) % 20000 ))
cat >"$T/prom.yml" <<YML
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: server
    static_configs:
      - targets: ['127.0.0.1:$P']
YML
prometheus --config.file="$T/prom.yml" --storage.tsdb.path="$T/tsdb" --web.listen-address="127.0.0.1:$PPORT" \
	>"$T/prom.log" 2>&1 &
BG_PIDS="$BG_PIDS $!"
q() { curl -s -m 5 "http://127.0.0.1:$PPORT/api/v1/query" --data-urlencode "query=$1" |
	python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "none")' 2>/dev/null; }
for _ in $(seq 1 100); do [ "$(q 'up{job="server"}')" = 1 ] && break; sleep 0.2; done
[ "$(q 'up{job="server"}')" = 1 ] || fail "prometheus does not scrape the server: $(tail -5 "$T/prom.log")"
ok "prometheus scrapes /metrics (up == 1)"

for i in 1 2 3; do post "$P" /v1/completions "{\"prompt\":\"Number $i is here\",\"max_tokens\":5}" "$T/r" >/dev/null; done
want=$(metric "$P" vllm:prompt_tokens_total); wantg=$(metric "$P" vllm:generation_tokens_total)
for _ in $(seq 1 50); do [ "$(q 'vllm:prompt_tokens_total{model_name="tiny",engine="0"}')" = "$want" ] && break; sleep 0.2; done
got=$(q 'vllm:prompt_tokens_total{model_name="tiny",engine="0"}')
[ "$got" = "$want" ] || fail "prometheus has prompt_tokens_total $got, the server $want"
[ "$(q 'vllm:generation_tokens_total{model_name="tiny"}')" = "$wantg" ] || fail "generation_tokens_total"
[ "$(q 'vllm:e2e_request_latency_seconds_count{model_name="tiny"}')" = 3 ] || fail "e2e histogram count"
[ "$(q 'vllm:request_success_total{finished_reason="length"}')" = 3 ] || fail "request_success_total"
ok "vllm:prompt_tokens_total $got, generation_tokens_total $wantg, e2e count 3, success{length} 3: as the server says"

aborts0=$(metric "$P" vllm:request_success_total 'finished_reason="abort"')
python3 "$IG_TOP/tests/lib/server/load.py" hold "$P" 60 "$T/leave" >"$T/held" &
hp=$!
BG_PIDS="$BG_PIDS $hp"
seen=0
for _ in $(seq 1 100); do [ "$(q 'vllm:num_requests_running{model_name="tiny"}')" = 1 ] && { seen=1; break; }; sleep 0.1; done
[ "$seen" = 1 ] || fail "prometheus never saw a running request"
ok "vllm:num_requests_running 1 in prometheus while a stream runs"
touch "$T/leave"
wait "$hp"
read -r held_bytes held_state <"$T/held"
[ "$held_state" = open ] || fail "the held stream ended before its client left ($held_bytes bytes): nothing to abort"
for _ in $(seq 1 50); do [ "$(q 'vllm:num_requests_running{model_name="tiny"}')" = 0 ] && break; sleep 0.1; done
[ "$(q 'vllm:num_requests_running{model_name="tiny"}')" = 0 ] || fail "running did not return to 0"
for _ in $(seq 1 50); do
	aborts1=$(metric "$P" vllm:request_success_total 'finished_reason="abort"')
	python3 -c "import sys; sys.exit(0 if float('$aborts1') == float('$aborts0') + 1 else 1)" && break; sleep 0.1
done
python3 -c "import sys; sys.exit(0 if float('$aborts1') == float('$aborts0') + 1 else 1)" ||
	fail "the server counts aborts $aborts0 -> $aborts1 after a client left its stream"
for _ in $(seq 1 50); do [ "$(q 'vllm:request_success_total{finished_reason="abort"}')" = "$aborts1" ] && break; sleep 0.2; done
got_aborts=$(q 'vllm:request_success_total{finished_reason="abort"}')
[ "$got_aborts" = "$aborts1" ] || fail "prometheus has request_success_total{abort} $got_aborts, the server $aborts1"
[ "$(q 'vllm:cache_config_info{enable_prefix_caching="True",block_size="16"}')" = 1 ] || fail "cache_config_info"
ok "back to 0 after the client left mid-stream ($held_bytes bytes read); aborts $aborts0 -> $aborts1 in /metrics and in prometheus; cache_config_info readable by label"
stop_server "$P_PID"
