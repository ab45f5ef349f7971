#!/bin/bash
# gateway_body_shape — memory and time to read a request body do not depend on
# its shape: a 15 MiB body of small array elements (the worst case for a
# tree: one node per two bytes) and one of deeply repeated content parts are
# read in one pass with bounded memory (docs/gateway.md: at most the body's
# size plus 0.5 MiB beyond the body itself), the loop keeps answering, and the
# answers are the usual ones (404 for an unknown model, 400 for a body that
# is not valid JSON at its end).
. "${IG_TOP:-$(dirname "$0")/../..}/tests/lib/gateway/lib.sh"
gw_init gateway_body_shape
P=$base
cat >"$tmp/gw.yaml" <<YAML
region: us-east5
listen: 127.0.0.1:$P
pools:
  - name: p
    models: [gemma]
    endpoints:
      - address: 127.0.0.1:$((P + 1))
YAML
gw_start "$tmp/gw.yaml"
U=$gw_url
hwm() { awk '/^VmHWM/ { print $2 }' "/proc/$gw_pid/status"; }   # peak RSS, KiB

python3 - "$tmp" <<'PY'
import sys
d = sys.argv[1]
n = 15 * 1024 * 1024
head = b'{"model":"nope","messages":[{"role":"user","content":"hi"}],"x":['
els = b'1,' * ((n - len(head)) // 2)
open(d + "/flat.json", "wb").write(head + els + b'1]}')
parts = b'{"type":"text","text":"a"},' * ((n - 200) // 27)
open(d + "/parts.json", "wb").write(b'{"model":"nope","messages":[{"role":"user","content":[' + parts + b'{"type":"text","text":"a"}]}]}')
open(d + "/bad.json", "wb").write(head + els + b'1]')
PY

# A warm-up request so that buffers of the usual size exist before the baseline.
chat "$U" gemma >/dev/null
base_kib=$(hwm)
for f in flat parts; do
	t0=$(date +%s%N)
	code=$(curl -s -o "$tmp/b" -w '%{http_code}' "$U/v1/chat/completions" -H 'content-type: application/json' \
		--data-binary @"$tmp/$f.json")
	ms=$((($(date +%s%N) - t0) / 1000000))
	grow=$((($(hwm) - base_kib) / 1024))
	check '[ "$code" = 404 ] && grep -q "does not exist" "$tmp/b"' "$f: 15 MiB body read, unknown model: 404 ($ms ms)"
	# The body itself is held once (15 MiB) plus its decoded longest string
	# and the prompt's head; a tree took 40 times the body.
	check '[ $grow -lt 96 ]' "$f: peak RSS grew by $grow MiB (< 96 MiB; a tree of this body takes over 600)"
	check '[ $ms -lt 10000 ]' "$f: answered in $ms ms"
done
code=$(curl -s -o "$tmp/b" -w '%{http_code}' "$U/v1/chat/completions" --data-binary @"$tmp/bad.json")
check '[ "$code" = 400 ] && grep -q "Invalid JSON body at line 1" "$tmp/b"' "a 15 MiB body invalid at its end: 400 ($(json $tmp/b d.error.message | cut -c1-80))"
check '[ "$(curl -s -o /dev/null -w "%{http_code}" "$U/healthz")" = 200 ]' "the gateway still answers"
finish
