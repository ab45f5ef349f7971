#!/bin/bash
# k8s_dns_large — a headless Service of 500 pods behind one name. Its answer is
# far over DNS's 1,232-byte UDP size, so the nameserver (dnsmasq on loopback)
# truncates it and the gateway must ask again over TCP. Checks:
#   1. the pool holds all 500 addresses (A over TCP), the two live ones serve;
#   2. the set changes (a live pod leaves, 100 join) and the change applies;
#   3. a name that answers with few records still resolves over UDP alone.
# The 498 other addresses are loopback ones nothing listens on: they join as
# down and never get a request.
. "${IG_TOP:-$(dirname "$0")/../..}/tests/lib/gateway/lib.sh"
gw_init k8s_dns_large
command -v dnsmasq >/dev/null || { echo "FAIL dnsmasq is not installed (Debian dnsmasq-base)"; exit 1; }
P=$base
DNS_PORT=$((P + 1))
SIM_PORT=$((P + 2))
NAME=vllm-big-headless.default.svc.cluster.local
SMALL=vllm-small.default.svc.cluster.local
hosts="$tmp/hosts"

sim_at() { # N: an infergate-sim on 127.0.0.N:SIM_PORT
	"$SIM" --host "127.0.0.$1" --port "$SIM_PORT" --model gemma --region us-east5 --ttft-ms 2 --itl-ms 1 \
		--log-level warn >"$tmp/sim$1.log" 2>&1 &
	pids="$pids $!"
	wait_for "curl -fs -o /dev/null http://127.0.0.$1:$SIM_PORT/health" 10 || { cat "$tmp/sim$1.log"; exit 1; }
}
# set_hosts N: the big name gets the live pods 127.0.0.21/.22 (unless
# DROP22=1) and N dead ones from 127.0.1.1 on; the small name one pod.
set_hosts() {
	local n=$1 i
	{
		echo "127.0.0.21 $NAME"
		[ "${DROP22:-0}" = 1 ] || echo "127.0.0.22 $NAME"
		for i in $(seq 0 $((n - 1))); do echo "127.0.$((1 + i / 250)).$((1 + i % 250)) $NAME"; done
		echo "127.0.0.21 $SMALL"
	} >"$hosts.new"
	mv "$hosts.new" "$hosts"
	[ -n "${dns_pid:-}" ] && kill -HUP "$dns_pid"
	return 0
}

sim_at 21; sim_at 22
set_hosts 498
dnsmasq --no-daemon --conf-file=/dev/null --user=root --port "$DNS_PORT" --listen-address 127.0.0.1 \
	--bind-interfaces --no-resolv --no-hosts --addn-hosts "$hosts" --local-ttl=0 --pid-file= \
	--local=/cluster.local/ >"$tmp/dns.log" 2>&1 &
dns_pid=$!
pids="$pids $dns_pid"
wait_for "grep -q 'read $hosts' $tmp/dns.log" 5 || { cat "$tmp/dns.log"; exit 1; }

# What a client of UDP alone would see: a truncated answer.
if command -v dig >/dev/null; then
	dig +notcp +ignore -p "$DNS_PORT" @127.0.0.1 "$NAME" A | grep -q 'flags:.* tc' && ok "the UDP answer is truncated (dig)"
fi

cat >"$tmp/gw.yaml" <<EOF
region: us-east5
listen: 127.0.0.1:$P
shutdown_grace: 5s
pools:
  - name: big
    models: [gemma]
    endpoints:
      - address: "$NAME:$SIM_PORT"
        resolve: dns
        resolve_interval: 300ms
        resolver: "127.0.0.1:$DNS_PORT"
        region: us-east5
    health: { path: /health, interval: 1s, fast_interval: 200ms, timeout: 400ms, rise: 1, fall: 2 }
    backend: { tries: 3 }
  - name: small
    models: [other]
    endpoints:
      - address: "$SMALL:$SIM_PORT"
        resolve: dns
        resolve_interval: 300ms
        resolver: "127.0.0.1:$DNS_PORT"
        region: us-east5
EOF
gw_start "$tmp/gw.yaml"
U=$gw_url
A=127.0.0.21:$SIM_PORT; B=127.0.0.22:$SIM_PORT
# ep_state reads /status through a file: 500 endpoints are over one argument's size.
ep_state() {
	curl -fs "$1/status" >"$tmp/status.json"
	json "$tmp/status.json" "(() => { for (const p of d.pools) for (const e of p.endpoints) if (e.address === '$2') return e.health; return 'absent'; })()"
}

echo "== 1. 500 addresses from one name"
check 'wait_for "[ \"\$(metric $U infergate_discovery_addresses{pool=\\\"big\\\")\" = 500 ]" 10' \
	"infergate_discovery_addresses of the big pool is 500 ($(metric $U 'infergate_discovery_addresses{pool="big"'))"
check 'wait_for "[ \"\$(ep_state $U $A)\" = up ] && [ \"\$(ep_state $U $B)\" = up ]" 10' "the two live pods are up"
check '[ "$(ep_state $U 127.0.2.248:$SIM_PORT)" = down ]' "the last address (127.0.2.248) is an endpoint, down"
curl -fs "$U/status" >"$tmp/status.json"
n_eps=$(json "$tmp/status.json" 'd.pools.find(p => p.name === "big").endpoints.length')
check '[ "$n_eps" = 500 ]' "/status lists 500 endpoints in the pool ($n_eps)"
bad=0
for i in $(seq 1 20); do
	code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$U/v1/chat/completions" -H 'content-type: application/json' \
		-d '{"model":"gemma","messages":[{"role":"user","content":"hi"}],"max_tokens":3}')
	[ "$code" = 200 ] || bad=$((bad + 1))
done
check '[ "$bad" = 0 ]' "20 requests through the 500-endpoint pool, $bad failed"

echo "== 2. the set changes"
DROP22=1 set_hosts 599
check 'wait_for "[ \"\$(metric $U infergate_discovery_addresses{pool=\\\"big\\\")\" = 600 ] && [ \"\$(ep_state $U $B)\" = absent ]" 10' \
	"600 addresses, 127.0.0.22 left ($(metric $U 'infergate_discovery_addresses{pool="big"'))"
check '[ "$(metric $U infergate_discovery_failures_total{pool=\"big\")" = 0 ]' "no failed resolution"

echo "== 3. a small answer needs no TCP"
check 'wait_for "[ \"\$(metric $U infergate_discovery_addresses{pool=\\\"small\\\")\" = 1 ]" 5' "the small name resolves to one address"
finish
