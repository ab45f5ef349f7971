#!/bin/bash
# gateway_headers — what crosses the gateway of a request's and an answer's
# headers: end-to-end ones as they are, in any case of their names; hop-by-hop
# ones (RFC 9110 7.6.1, and those the Connection header names) dropped both
# ways; X-Forwarded-For appended to; the upstream's Server, Date and
# x-infergate-* replaced by the gateway's own. The backend is a small Python
# server that answers with the headers it got.
. "${IG_TOP:-$(dirname "$0")/../..}/tests/lib/gateway/lib.sh"
gw_init gateway_headers
P=$base
cat >"$tmp/echo.py" <<'PY'
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def answer(self, body):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "keep-alive, X-Drop-Me")
        self.send_header("X-Drop-Me", "1")
        self.send_header("Keep-Alive", "timeout=5")
        self.send_header("X-Infergate-Fake", "1")
        self.send_header("X-Kept", "yes")
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        self.answer(b"{}")
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(n)
        got = {}
        for k, v in self.headers.items():
            got.setdefault(k.lower(), []).append(v)
        self.answer(json.dumps(got).encode())

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Echo).serve_forever()
PY
python3 "$tmp/echo.py" $((P + 1)) >"$tmp/echo.log" 2>&1 &
pids="$pids $!"
wait_for "curl -fs -o /dev/null http://127.0.0.1:$((P + 1))/health" 10 || { echo "the echo server did not start"; cat "$tmp/echo.log"; exit 1; }
cat >"$tmp/gw.yaml" <<YAML
region: local
listen: 127.0.0.1:$P
pools:
  - name: echo
    models: [m]
    endpoints: [ { address: "127.0.0.1:$((P + 1))" } ]
    health: { interval: 200ms, timeout: 150ms }
    metrics: { enabled: false }
YAML
gw_start "$tmp/gw.yaml"
wait_for "curl -fs $gw_url/readyz >/dev/null" 5
code=$(curl -s -o "$tmp/b" -D "$tmp/h" -w '%{http_code}' "$gw_url/v1/chat/completions" \
	-H 'content-type: application/json' -H 'Connection: keep-alive, X-SeCrEt' -H 'X-SeCrEt: s' \
	-H 'KEEP-ALIVE: timeout=5' -H 'TE: trailers' -H 'Proxy-Connection: keep-alive' -H 'Trailer: x-t' \
	-H 'X-Forwarded-For: 10.0.0.1' -H 'X-Custom: kept' -H 'Content-TYPE-Extra: 1' \
	-d '{"model":"m","messages":[{"role":"user","content":"hi"}]}')
check '[ "$code" = 200 ]' "the request is answered ($code)"
got() { json "$tmp/b" "(d['$1'] || ['absent']).join('|')"; }
echo "== the request as the backend got it: $(cat "$tmp/b")"
check '[ "$(got x-custom)" = kept ] && [ "$(got content-type-extra)" = 1 ]' "end-to-end headers cross as they are"
for h in x-secret keep-alive te proxy-connection trailer; do
	check '[ "$(got $h)" = absent ]' "$h dropped"
done
check '[ "$(got connection)" = absent ]' "the client's Connection header is not forwarded"
check '[ "$(got x-forwarded-for)" = "10.0.0.1, 127.0.0.1" ]' "X-Forwarded-For appended to ($(got x-forwarded-for))"
check '[ "$(got content-type)" = application/json ]' "Content-Type once ($(got content-type))"
check '[ "$(got host)" = 127.0.0.1:$((P + 1)) ]' "Host names the endpoint ($(got host))"
echo "== the answer as the client got it"
check '[ "$(hdr content-length)" = "$(wc -c <"$tmp/b")" ] && [ -z "$(hdr transfer-encoding)" ]' "the backend's Content-Length is relayed ($(hdr content-length)), not chunked"
check '[ "$(hdr x-kept)" = yes ]' "the backend's end-to-end header crosses"
check '[ -z "$(hdr x-drop-me)" ] && [ -z "$(hdr keep-alive)" ]' "the backend's hop-by-hop headers are dropped"
check '[ -z "$(hdr x-infergate-fake)" ] && [ "$(hdr x-infergate-endpoint)" = 127.0.0.1:$((P + 1)) ]' "x-infergate-* are the gateway's own"
check '! tr -d "\r" <"$tmp/h" | grep -qi "^server: BaseHTTP"' "the backend's Server header is not relayed"
finish
