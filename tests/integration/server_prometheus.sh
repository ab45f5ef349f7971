#!/usr/bin/env bash
# server_prometheus: a real Prometheus server (Debian's) scrapes
# infergate-server's /metrics every second; its HTTP API answers with the
# server's own values: vllm:prompt_tokens_total and generation tokens after a
# few requests, vllm:num_requests_running 1 while a stream runs and 0 after,
# the histogram counts, and the labels (model_name, engine).
. "$(dirname "$0")/../server/lib.sh"
command -v prometheus >/dev/null || fail "prometheus not installed"
[ -x "$IG_TOP/bin/infergate-server" ] && SERVER_BIN="$IG_TOP/bin/infergate-server"
make_model "$T/m" tiny 4
start_server P --model "$T/m" --served-model-name tiny
PPORT=$(( 30000 + $(printf '%s' server_prometheus | cksum | cut -d' ' -f1) % 20000 ))
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

python3 "$IG_TOP/tests/server/load.py" hold "$P" 4 >/dev/null &
hp=$!
BG_PIDS="$BG_PIDS $hp"
seen=0
for _ in $(seq 1 30); do [ "$(q 'vllm:num_requests_running{model_name="tiny"}')" = 1 ] && { seen=1; break; }; sleep 0.1; done
[ "$seen" = 1 ] || fail "prometheus never saw a running request"
ok "vllm:num_requests_running 1 in prometheus while a stream runs"
wait "$hp"
for _ in $(seq 1 50); do [ "$(q 'vllm:num_requests_running{model_name="tiny"}')" = 0 ] && break; sleep 0.1; done
[ "$(q 'vllm:num_requests_running{model_name="tiny"}')" = 0 ] || fail "running did not return to 0"
[ "$(q 'vllm:request_success_total{finished_reason="abort"}')" = 1 ] || fail "abort count"
[ "$(q 'vllm:cache_config_info{enable_prefix_caching="True",block_size="16"}')" = 1 ] || fail "cache_config_info"
ok "back to 0 after the client left (abort counted 1); cache_config_info readable by label"
stop_server "$P_PID"
