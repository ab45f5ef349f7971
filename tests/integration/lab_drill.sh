#!/usr/bin/env bash
# lab_drill: the two-region lab with real model servers (a tiny random Gemma 3
# written into the nginx bucket, loaded through the cache) and the failover
# drill, shortened: 1 server per region, short phases, few tokens. Fails if any
# request fails, if any stream breaks (--strict-streams: the gateway resumes
# streams cut by an outage, docs/resume.md), if the baseline, a failover question or a check is served by
# the wrong region, if a request started during an outage waited for the restore instead of moving to
# Europe, or if the relay does not add the inter-region latency.
# Runs in network namespaces as root, on loopback otherwise (the lab decides).
set -u
IG_TOP=${IG_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
IG_BIN=${IG_BIN:-$IG_TOP/build/san/bin}
LAB="$IG_BIN/infergate-lab"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
T=$(mktemp -d /tmp/ig-lab-drill.XXXXXX)
S="$T/state"
cleanup() {
	timeout 60 "$LAB" down --state "$S" >/dev/null 2>&1
	rm -rf "$T"
}
trap cleanup EXIT INT TERM
fail() { echo "FAIL: $*"; for f in "$S"/logs/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -5 "$f"; }; done; exit 1; }
ok() { echo "ok: $*"; }
jcheck() { # file, python expression over d, message
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if eval(sys.argv[2]) else 1)' "$1" "$2" \
		|| fail "$3"
	ok "$3"
}

for p in infergate infergate-server infergate-mkmodel infergate-lab; do
	[ -x "$IG_BIN/$p" ] || fail "$IG_BIN/$p is not built"
done

timeout 300 "$LAB" up --state "$S" --shape tiny --servers-per-region 1 --threads 1 >"$T/up.log" 2>&1 \
	|| { cat "$T/up.log"; fail "up"; }
cat "$T/up.log"
jcheck "$S/state.json" 'd["complete"] and len([n for n in d["nodes"] if n["role"]=="server"])==2 and len([n for n in d["nodes"] if n["role"]=="gateway"])==2' \
	"state.json: complete, 2 servers and 2 gateways"
jcheck "$S/state.json" 'all(n["argv"][0].endswith("infergate-server") and "--cache-dir" in n["argv"] and any(a.startswith("http://") for a in n["argv"]) for n in d["nodes"] if n["role"]=="server")' \
	"servers load the model from the bucket (http://) through a cache"
mode=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["mode"])' "$S/state.json")
ok "mode: $mode"
if [ "$mode" = netns ]; then
	id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$S/state.json")
	ip netns list | grep -q "^$id-us " || ip netns list | grep -q "^$id-us\$" || fail "no namespace $id-us"
	ip -n "$id-us" route | grep -q '^default' && fail "the US region has a default route"
	ip -n "$id-us" route | grep -q '198.18.0.0/15' || fail "the US region has no route to 198.18.0.0/15"
	ok "namespaces $id-*, addresses from 198.18.0.0/15, no default route"
	RUN="ip netns exec $id-us"
else
	RUN=""
fi

# The relay adds ~45 ms to a round trip between the regions.
read -r direct via < <(python3 -c '
import json,sys
d=json.load(open(sys.argv[1]))
us=[n for n in d["nodes"] if n["name"]=="europe-west4-server-1"][0]["addr"]
gw=open(sys.argv[2]).read()
import re
via=[a for a in re.findall(r"address: \"([^\"]+)\"", gw) if a!=[n for n in d["nodes"] if n["name"]=="us-east5-server-1"][0]["addr"]][0]
print(us, via)' "$S/state.json" "$S/gateway-us-east5.yaml")
mins=$($RUN python3 - "$direct" "$via" <<'EOF'
import socket, sys, time
def rtt(hostport):
    host, port = hostport.rsplit(":", 1)
    best = 1e9
    s = socket.create_connection((host, int(port)), timeout=5)
    for _ in range(5):
        t = time.monotonic()
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(4096)
        best = min(best, time.monotonic() - t)
        time.sleep(0.05)
    s.close()
    return best * 1000
print("%.1f %.1f" % (rtt(sys.argv[1]), rtt(sys.argv[2])))
EOF
)
read -r d_ms v_ms <<<"$mins"
python3 -c "import sys; sys.exit(0 if float('$v_ms') - float('$d_ms') >= 44 else 1)" \
	|| fail "relay round trip ${v_ms} ms vs direct ${d_ms} ms: expected at least 44 ms more"
ok "round trip to europe-west4: ${d_ms} ms direct, ${v_ms} ms through the relay (45 ms added)"

"$LAB" status --state "$S" >"$T/status.log" 2>&1 || fail "status: $(cat "$T/status.log")"
grep -q 'us-east5-gateway' "$T/status.log" && grep -q 'gemma-pool' "$T/status.log" || fail "status: $(cat "$T/status.log")"
ok "status lists the nodes and each gateway's pool"

timeout 400 "$LAB" drill --state "$S" --baseline 1 --outage 2 --settle 0.5 --rate 3 --max-tokens 4 --strict-streams \
	--question-max-tokens 8 --restore-timeout 120 --json "$T/report.json" --svg "$T/timeline.svg" \
	>"$T/drill.log" 2>&1
rc=$?
cat "$T/drill.log"
[ -s "$T/report.json" ] || fail "no JSON report"
jcheck "$T/report.json" 'd["requests_failed"]==0 and all(r["outcome"]!="failed" for r in d["requests"])' "no request failed (of $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["requests_total"])' "$T/report.json"))"
jcheck "$T/report.json" 'd["baseline"]["region"]=="us-east5" and d["baseline"]["status"]==200' "baseline served in us-east5"
jcheck "$T/report.json" '[o["flavour"] for o in d["outages"]]==["graceful","crash","partition"]' "three outage flavours"
jcheck "$T/report.json" 'all(o["failover_question"]["region"]=="europe-west4" and o["failover_question"]["outcome"]=="ok" for o in d["outages"])' \
	"each failover question answered by europe-west4 through the us-east5 gateway"
jcheck "$T/report.json" 'all(o["failover_ms"] is not None and o["back_in_rotation_ms"] is not None for o in d["outages"])' \
	"failover and back-in-rotation times measured: $(python3 -c 'import json,sys; print(", ".join("%s %.0f/%.0f ms" % (o["flavour"], o["failover_ms"] or -1, o["back_in_rotation_ms"] or -1) for o in json.load(open(sys.argv[1]))["outages"]))' "$T/report.json")"
jcheck "$T/report.json" 'all(o["check_local"]["region"]=="us-east5" and o["check_remote"]["region"]=="europe-west4" for o in d["outages"])' \
	"after each restore both regions serve again"
jcheck "$T/report.json" 'all(o["served_locally_during_outage"]==0 for o in d["outages"])' "nothing served by us-east5 after each failover"
# A request sent to the US just as it went away (on a kept-alive connection to a
# partitioned server nothing ever comes back) is moved to Europe once the
# gateway sees the region down; it must not wait for the restore.
jcheck "$T/report.json" 'all(r["region"]=="europe-west4" for o in d["outages"] if o["restore_at_ms"] is not None for r in d["requests"] if r["outcome"]=="ok" and o["outage_at_ms"]<=r["start_ms"]<o["restore_at_ms"])' \
	"every request started during an outage was served by europe-west4 (none waited for the restore)"
jcheck "$T/report.json" 'all(p["latency_ms"]["p50"] is None or p["latency_ms"]["p50"]<=p["latency_ms"]["p90"]<=p["latency_ms"]["max"] for p in d["phases"])' \
	"latency per phase p50 <= p90 <= max"
# Skipped steady arrivals are counted, per phase and in all, never hidden.
jcheck "$T/report.json" 'd["steady_skipped"]==sum(p["skipped"] for p in d["phases"]) and d["max_inflight"]==32' \
	"skipped steady arrivals counted per phase: $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["steady_skipped"])' "$T/report.json") in all"
grep -Eq "steady arrivals skipped [0-9]+ \(in-flight cap 32\)" "$T/drill.log" || fail "the report does not give the number of skipped arrivals"
ok "the report line gives the number of skipped arrivals"
[ "$rc" = 0 ] || fail "drill exited $rc"
ok "drill passed (exit 0)"

# The timeline renders: chromium if installed, else rsvg-convert, else XML well-formed.
grep -q '<svg' "$T/timeline.svg" || fail "no SVG"
python3 -c 'import sys, xml.dom.minidom; xml.dom.minidom.parse(sys.argv[1])' "$T/timeline.svg" || fail "SVG is not XML"
grep -q 'fill="#ff7f0e"' "$T/timeline.svg" && grep -q 'outage</text>' "$T/timeline.svg" || fail "SVG lacks European dots or outage marks"
if command -v chromium >/dev/null 2>&1; then
	timeout 60 chromium --headless --no-sandbox --disable-gpu --screenshot="$T/timeline.png" --window-size=1120,440 \
		"file://$T/timeline.svg" >/dev/null 2>&1 || fail "chromium could not render the SVG"
	[ -s "$T/timeline.png" ] || fail "chromium wrote no screenshot"
	ok "timeline SVG rendered by headless chromium"
elif command -v rsvg-convert >/dev/null 2>&1; then
	rsvg-convert "$T/timeline.svg" -o "$T/timeline.png" || fail "rsvg-convert could not render the SVG"
	[ -s "$T/timeline.png" ] || fail "rsvg-convert wrote nothing"
	ok "timeline SVG rendered by rsvg-convert (no chromium here)"
else
	ok "timeline SVG is well-formed XML (no chromium or rsvg-convert to render it)"
fi

timeout 60 "$LAB" down --state "$S" || fail "down"
[ ! -e "$S" ] || fail "state folder left behind"
ok "down removed the lab"
echo "PASS"
