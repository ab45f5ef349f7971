#!/bin/bash
# k8s_dns — an endpoint entry that is a DNS name (a headless Service's, as in a
# cluster) re-resolved while the gateway serves a steady stream of requests.
# A real DNS server (dnsmasq) on loopback answers from a hosts file that the
# test rewrites (SIGHUP reloads it); the model servers are infergate-sim on
# 127.0.0.21-24, one port, as pods behind a Service are. Checks:
#   1. the first set: the pool has the resolved addresses, they serve;
#   2. a new address joins once its health checks pass (and one that nothing
#      listens on joins as down and never gets a request);
#   3. an address that leaves the record drains and gets no more traffic;
#   4. the DNS server dies: resolutions fail and are counted, the last set stays;
#   5. it comes back with the set changed: the change applies;
# and throughout, not one request of the steady stream failed.
. "${IG_TOP:-$(dirname "$0")/../..}/tests/lib/gateway/lib.sh"
gw_init k8s_dns
command -v dnsmasq >/dev/null || { echo "FAIL dnsmasq is not installed (Debian dnsmasq-base)"; exit 1; }
P=$base
DNS_PORT=$((P + 1))
SIM_PORT=$((P + 2))
NAME=vllm-gemma-headless.default.svc.cluster.local
hosts="$tmp/hosts"

# sim_at N: an infergate-sim on 127.0.0.N:SIM_PORT
sim_at() {
	"$SIM" --host "127.0.0.$1" --port "$SIM_PORT" --model gemma --region us-east5 --ttft-ms 2 --itl-ms 1 \
		--log-level warn >"$tmp/sim$1.log" 2>&1 &
	pids="$pids $!"
	eval "sim_pid_$1=$!"
	wait_for "curl -fs -o /dev/null http://127.0.0.$1:$SIM_PORT/health" 10 || { cat "$tmp/sim$1.log"; exit 1; }
}
set_hosts() { # last octets...
	: >"$hosts.new"
	for n in "$@"; do echo "127.0.0.$n $NAME" >>"$hosts.new"; done
	mv "$hosts.new" "$hosts"
	[ -n "${dns_pid:-}" ] && kill -HUP "$dns_pid"
	return 0
}
dns_start() {
	dnsmasq --no-daemon --conf-file=/dev/null --user=root --port "$DNS_PORT" --listen-address 127.0.0.1 \
		--bind-interfaces --no-resolv --no-hosts --addn-hosts "$hosts" --local-ttl=0 --pid-file= \
		--local=/cluster.local/ \
		>"$tmp/dns.log" 2>&1 &
	dns_pid=$!
	pids="$pids $dns_pid"
	wait_for "grep -q 'read $hosts' $tmp/dns.log" 5 || { cat "$tmp/dns.log"; exit 1; }
}

sim_at 21; sim_at 22; sim_at 23
set_hosts 21 22
dns_start
cat >"$tmp/gw.yaml" <<EOF
region: us-east5
listen: 127.0.0.1:$P
shutdown_grace: 5s
pools:
  - name: gemma-pool
    models: [gemma]
    endpoints:
      - address: "$NAME:$SIM_PORT"
        resolve: dns
        resolve_interval: 200ms
        resolver: "127.0.0.1:$DNS_PORT"
        region: us-east5
    health: { path: /health, interval: 500ms, fast_interval: 100ms, timeout: 400ms, rise: 2, fall: 2 }
    backend: { tries: 3 }
EOF
"$GW" -c "$tmp/gw.yaml" --check >"$tmp/check.out" 2>&1
check '[ $? = 0 ]' "the configuration with resolve: dns passes --check"
gw_start "$tmp/gw.yaml"
U=$gw_url
A=127.0.0.21:$SIM_PORT; B=127.0.0.22:$SIM_PORT; C=127.0.0.23:$SIM_PORT; D=127.0.0.24:$SIM_PORT

echo "== 1. the first set"
check 'wait_for "[ \"\$(ep_state $U $A)\" = up ] && [ \"\$(ep_state $U $B)\" = up ]" 5' "both resolved addresses are endpoints, up"

# The steady stream: one request after another, each status on a line.
: >"$tmp/stream"
(
	while [ ! -e "$tmp/stop" ]; do
		code=$(curl -s -o /dev/null -D "$tmp/sh" -w '%{http_code}' --max-time 10 "$U/v1/chat/completions" \
			-H 'content-type: application/json' \
			-d '{"model":"gemma","messages":[{"role":"user","content":"hi"}],"max_tokens":3}')
		ep=$(tr -d '\r' <"$tmp/sh" | sed -n 's/^x-infergate-endpoint: //Ip' | head -n 1)
		echo "$(date +%s%N) $code $ep" >>"$tmp/stream"
	done
) &
stream_pid=$!
pids="$pids $stream_pid"
wait_for "[ \$(wc -l <$tmp/stream 2>/dev/null || echo 0) -ge 20 ]" 10
served() { awk -v from="$1" '$1 > from { print $3 }' "$tmp/stream" | sort | uniq -c | tr '\n' ' '; }
now() { date +%s%N; }

echo "== 2. a new address joins after its checks pass; one with nothing behind it never serves"
set_hosts 21 22 23 24
t=$(now)
check 'wait_for "[ \"\$(ep_state $U $C)\" = up ]" 5' "127.0.0.23 joined and is up"
check '[ "$(ep_state $U $D)" = down ]' "127.0.0.24 (nothing listens) joined as down"
sleep 1
check 'served $t | grep -q "$C"' "127.0.0.23 gets traffic ($(served $t))"
check '! grep -q " $D\$" $tmp/stream' "127.0.0.24 never got a request"

echo "== 3. addresses that leave drain"
set_hosts 22 23
t=$(now)
check 'wait_for "[ \"\$(ep_state $U $A)\" = absent ] && [ \"\$(ep_state $U $D)\" = absent ]" 5' "127.0.0.21 and .24 left the pool"
sleep 0.3
t2=$(now)
sleep 1
check '! served $t2 | grep -q "$A"' "127.0.0.21 gets no more traffic ($(served $t2))"
check 'grep -q "endpoint $A of pool gemma-pool: drained, gone\|endpoint $A .*removed" $tmp/gw.log' "the drain is logged"

echo "== 4. the DNS server dies: failures counted, the last set stays"
kill -TERM "$dns_pid"; wait "$dns_pid" 2>/dev/null; dns_pid=""
f0=$(metric $U 'infergate_discovery_failures_total{pool="gemma-pool"')
check 'wait_for "[ \$(metric $U infergate_discovery_failures_total{pool=\\\"gemma-pool\\\") -ge $((f0 + 2)) ]" 5' \
	"infergate_discovery_failures_total grows ($f0 -> $(metric $U 'infergate_discovery_failures_total{pool="gemma-pool"'))"
check '[ "$(ep_state $U $B)" = up ] && [ "$(ep_state $U $C)" = up ]' "127.0.0.22 and .23 stay in the pool"
check '[ "$(metric $U infergate_discovery_addresses{pool=\"gemma-pool\")" = 2 ]' "infergate_discovery_addresses is 2"

echo "== 5. it comes back with a change"
set_hosts 21 23
dns_start
check 'wait_for "[ \"\$(ep_state $U $A)\" = up ] && [ \"\$(ep_state $U $B)\" = absent ]" 5' "127.0.0.21 is back, .22 left"
check '[ "$(metric $U infergate_discovery_resolutions_total{pool=\"gemma-pool\")" -gt 5 ]' \
	"resolutions counted ($(metric $U 'infergate_discovery_resolutions_total{pool="gemma-pool"'))"

touch "$tmp/stop"
wait "$stream_pid" 2>/dev/null
total=$(wc -l <"$tmp/stream")
bad=$(awk '$2 != 200' "$tmp/stream" | wc -l)
check '[ "$total" -ge 50 ] && [ "$bad" = 0 ]' "$total requests during the changes, $bad failed"
[ "$bad" = 0 ] || awk '$2 != 200' "$tmp/stream" | head
finish
