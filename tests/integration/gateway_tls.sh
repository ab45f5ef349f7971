#!/bin/bash
# gateway_tls — TLS both ways with certificates made here by openssl: HTTPS on
# the front door (curl with --cacert, TLS 1.2 and 1.3, ALPN, resumption, the
# openai npm client with NODE_EXTRA_CA_CERTS), mutual TLS refused without a
# client certificate, handshake timeout and plaintext on a TLS port counted as
# failures; upstreams over https (infergate-sim --tls-cert) with the CA
# verified, and a pool whose server chains to another CA failing its health
# checks with the reason logged; a mismatched key refused at start; at SIGHUP
# a broken certificate refused (the old one kept) and a renewed one served to
# new connections while an old connection keeps streaming.
. "${IG_TOP:-$(dirname "$0")/../..}/tests/lib/gateway/lib.sh"
. "$top/tests/lib/tls.sh"
gw_init gateway_tls
P=$base
C=$tmp/certs
tls_certs "$C"
M=google/gemma-3-1b-it

# sim_tls NAME PORT CERT KEY [flags]: an infergate-sim serving HTTPS.
sim_tls() {
	local name=$1 port=$2 cert=$3 key=$4; shift 4
	"$SIM" --port "$port" --log-level warn --tls-cert "$cert" --tls-key "$key" "$@" >"$tmp/$name.log" 2>&1 &
	pids="$pids $!"
	wait_for "curl -fsk -o /dev/null https://127.0.0.1:$port/health" 10 || { echo "sim $name did not start"; cat "$tmp/$name.log"; exit 1; }
}
sim_tls up $((P + 1)) "$C/srv.pem" "$C/srv.key" --model $M --itl-ms 40
sim_tls wrong $((P + 2)) "$C/other.pem" "$C/other.key" --model m-wrong

echo "== boot refuses a key that does not match its certificate"
"$GW" --listen 127.0.0.1:$((P + 9)) --region r1 --endpoint 127.0.0.1:$((P + 1))@r1 \
	--tls-cert "$C/srv.pem" --tls-key "$C/srv2.key" >/dev/null 2>"$tmp/bad.log"
rc=$?
check '[ $rc = 1 ] && grep -q "does not match" "$tmp/bad.log"' "mismatched key: exit 1 with a clear message ($(head -c 160 "$tmp/bad.log"))"
"$GW" --listen 127.0.0.1:$((P + 9)) --region r1 --endpoint 127.0.0.1:$((P + 1))@r1 \
	--tls-cert "$C/nope.pem" --tls-key "$C/srv.key" >/dev/null 2>"$tmp/bad.log"
check '[ $? = 1 ] && grep -q "nope.pem" "$tmp/bad.log"' "a missing certificate file is named at start"

cp "$C/srv.pem" "$tmp/live.pem"
cp "$C/srv.key" "$tmp/live.key"
cat >"$tmp/gw.yaml" <<YAML
region: r1
listen:
  - { address: "127.0.0.1:$P", tls: { cert: "$tmp/live.pem", key: "$tmp/live.key" } }
  - 127.0.0.1:$((P + 4))
  - { address: "127.0.0.1:$((P + 5))", tls: { cert: "$C/srv.pem", key: "$C/srv.key", client_ca: "$C/ca.pem" } }
limits: { tls_handshake_timeout: 500ms }
pools:
  - name: secure
    models: [$M]
    endpoints: [ { address: "https://127.0.0.1:$((P + 1))" } ]
    backend: { tls: { ca: "$C/ca.pem" } }
    health: { interval: 300ms, timeout: 250ms }
  - name: wrong
    models: [m-wrong]
    endpoints: [ { address: "https://127.0.0.1:$((P + 2))" } ]
    backend: { tls: { ca: "$C/ca.pem" }, tries: 1 }
    health: { interval: 300ms, timeout: 250ms }
YAML
"$GW" -c "$tmp/gw.yaml" >"$tmp/gw.out" 2>"$tmp/gw.log" &
gw_pid=$!
pids="$pids $gw_pid"
A=http://127.0.0.1:$((P + 4))
U=https://localhost:$P
wait_for "curl -fs $A/readyz >/dev/null" 10 || { echo "gateway did not start"; cat "$tmp/gw.log"; exit 1; }
CURL="curl -s --cacert $C/ca.pem"
body='{"model":"'$M'","messages":[{"role":"user","content":"hi"}],"max_tokens":4}'

echo "== HTTPS front door, HTTPS upstream"
wait_for "[ \"\$(ep_state $A 127.0.0.1:$((P + 1)))\" = up ]" 5
code=$($CURL -o "$tmp/b" -w '%{http_code}' $U/v1/chat/completions -H 'content-type: application/json' -d "$body")
check '[ "$code" = 200 ] && [ "$(json $tmp/b d.object)" = chat.completion ]' "a chat over HTTPS, relayed from an HTTPS upstream, verified against the test CA ($code)"
check '[ "$(curl -s -o /dev/null -w %{http_code} $U/healthz)" = 000 ]' "without the CA, curl refuses the certificate (it is verified, not just encrypted)"
check '[ "$($CURL --tlsv1.2 --tls-max 1.2 -o /dev/null -w %{http_code} $U/healthz)" = 200 ]' "TLS 1.2"
check '[ "$($CURL --tlsv1.3 -o /dev/null -w %{http_code} $U/healthz)" = 200 ]' "TLS 1.3"
check '[ "$($CURL --tlsv1.1 --tls-max 1.1 -o /dev/null -w %{http_code} $U/healthz)" = 000 ]' "TLS 1.1 is refused"
check '$CURL --tls-max 1.2 --ciphers AES128-SHA -o /dev/null $U/healthz; [ $? != 0 ]' "a TLS 1.2 cipher without forward secrecy is refused"
$CURL -v --http1.1 -o /dev/null $U/healthz 2>"$tmp/v"
check 'grep -qi "ALPN.*http/1.1" "$tmp/v"' "ALPN agrees on http/1.1 when the client asks for it"
$CURL -N $U/v1/chat/completions -H 'content-type: application/json' \
	-d '{"model":"'$M'","stream":true,"messages":[{"role":"user","content":"hi"}],"max_tokens":8}' >"$tmp/sse"
check '[ "$(grep -c "^data: {" "$tmp/sse")" -ge 8 ] && tail -n 2 "$tmp/sse" | grep -q "data: \[DONE\]"' "a streamed chat over HTTPS both ways ends with [DONE]"
# Resumption: s_client -reconnect reconnects five times with the session.
echo | timeout 10 openssl s_client -connect 127.0.0.1:$P -CAfile "$C/ca.pem" -reconnect -tls1_2 >"$tmp/rs" 2>&1
check '[ "$(grep -c "^Reused" "$tmp/rs")" -ge 4 ]' "TLS 1.2 sessions are resumed ($(grep -c "^Reused" "$tmp/rs") of 5 reconnects)"
check '[ "$(metric $A "infergate_tls_handshakes_total{result=\"resumed\"}")" -ge 4 ]' "resumed handshakes are counted"

echo "== mutual TLS"
M2=https://localhost:$((P + 5))
check '[ "$($CURL -o /dev/null -w %{http_code} $M2/healthz)" = 000 ]' "no client certificate: the handshake is refused"
check '[ "$($CURL --cert $C/client.pem --key $C/client.key -o /dev/null -w %{http_code} $M2/healthz)" = 200 ]' "with a client certificate from the CA: 200"
check '[ "$($CURL --cert $C/other.pem --key $C/other.key -o /dev/null -w %{http_code} $M2/healthz)" = 000 ]' "a client certificate from another CA: refused"

echo "== failures: plaintext on the TLS port, a silent client, a wrong upstream CA"
f0=$(metric $A 'infergate_tls_handshakes_total{result="failed"}')
curl -s -m 3 -o /dev/null http://127.0.0.1:$P/healthz
python3 - "$P" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(5)
t = time.time()
try:
    d = s.recv(100)
except Exception:
    d = None
print("closed after %.1f s" % (time.time() - t) if d == b"" else "not closed")
sys.exit(0 if d == b"" and time.time() - t < 3 else 1)
PY
check '[ $? = 0 ]' "a client that never starts its handshake is closed after tls_handshake_timeout"
f1=$(metric $A 'infergate_tls_handshakes_total{result="failed"}')
check '[ $((f1 - f0)) -ge 2 ]' "plaintext on the TLS port and the timed-out handshake count as failures ($f0 -> $f1)"
check '[ "$(ep_state $A 127.0.0.1:$((P + 2)))" != up ]' "an upstream whose certificate chains to another CA is not up"
check 'grep -q "certificate verify failed" "$tmp/gw.log"' "the log says why: $(grep -m1 -o 'TLS to.*' "$tmp/gw.log" | head -c 160)"
code=$($CURL -o "$tmp/b" -w '%{http_code}' $U/v1/chat/completions -H 'content-type: application/json' -d '{"model":"m-wrong","messages":[{"role":"user","content":"x"}]}')
check '[ "$code" = 503 ] || [ "$code" = 502 ]' "a request for that pool gets an error status, not a hang ($code)"

echo "== the openai npm client over HTTPS"
if SEVERAL_POOLS=1 NODE_EXTRA_CA_CERTS="$C/ca.pem" node "$top/tests/lib/gateway/openai_client.js" "$U" $M >"$tmp/oai" 2>&1; then
	ok "the openai client's checks pass over HTTPS"
else
	cat "$tmp/oai"; fail "the openai client over HTTPS"
fi

echo "== certificate reload on SIGHUP"
s_old=$(tls_serial 127.0.0.1:$P)
# An old connection streams through both reloads.
$CURL -N $U/v1/chat/completions -H 'content-type: application/json' \
	-d '{"model":"'$M'","stream":true,"messages":[{"role":"user","content":"hi"}],"max_tokens":200}' >"$tmp/long" &
long=$!
sleep 0.5
echo "not a certificate" >"$tmp/live.pem"
kill -HUP $gw_pid
wait_for "grep -q 'reload refused' '$tmp/gw.log'" 5
check 'grep "reload refused" "$tmp/gw.log" | grep -q "live.pem"' "a broken certificate at reload is refused, naming the file"
check '[ "$(tls_serial 127.0.0.1:$P)" = "$s_old" ]' "the old certificate is still served ($s_old)"
cp "$C/srv2.pem" "$tmp/live.pem"
cp "$C/srv.key" "$tmp/live.key"
kill -HUP $gw_pid
sleep 0.5
check '[ "$(tls_serial 127.0.0.1:$P)" = "$s_old" ]' "a renewed certificate with the old key (mismatched) is refused too"
cp "$C/srv2.key" "$tmp/live.key"
kill -HUP $gw_pid
s_new=$(openssl x509 -noout -serial -in "$C/srv2.pem")
wait_for "[ \"\$(tls_serial 127.0.0.1:$P)\" = '$s_new' ]" 5
check '[ "$(tls_serial 127.0.0.1:$P)" = "$s_new" ]' "after SIGHUP new connections get the renewed certificate ($s_new)"
check 'kill -0 $long 2>/dev/null' "the old connection is still streaming"
wait $long
check 'tail -n 2 "$tmp/long" | grep -q "data: \[DONE\]" && [ "$(grep -c "^data: {" "$tmp/long")" -ge 200 ]' "and it ends with [DONE], nothing dropped"
check '[ "$($CURL -o /dev/null -w %{http_code} $U/healthz)" = 200 ]' "the renewed certificate verifies against the CA"

finish
