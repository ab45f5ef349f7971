#!/bin/bash
# gateway_fairness — one tenant floods a saturated pool while another's
# latency is measured (bench/routing/fairness.sh, shortened, on the binaries
# under test): with fair queuing the light tenant's requests wait one turn
# in the admission queue, without it they wait behind the flood. Checked:
# every light request served in each run; with fair queuing its TTFT p50 and
# its mean queue time are below those without.
. "${IG_TOP:-$(dirname "$0")/../..}/tests/lib/gateway/lib.sh"
gw_init gateway_fairness
OUT="$tmp/fair" HEAVY=64 LIGHT_N=8 PORT_BASE=$base bash "$top/bench/routing/fairness.sh" "$bin" >"$tmp/table" 2>"$tmp/bench.log"
cat "$tmp/table"
val() { # val RUN FIELD: light TTFT p50, or its mean queue ms, of one run
	python3 - "$tmp/fair" "$1" "$2" <<'PY'
import json, re, sys
out, run, field = sys.argv[1:]
if field == "p50":
    print(json.load(open(f"{out}/light-{run}.json"))["ttft_ms"]["p50"])
elif field == "ok":
    print(json.load(open(f"{out}/light-{run}.json"))["ok"])
else:
    s = c = 0.0
    for line in open(f"{out}/metrics-{run}.txt"):
        m = re.match(r'infergate_tenant_queue_seconds_(sum|count)\{tenant="light"\} (\S+)', line)
        if m:
            if m.group(1) == "sum": s = float(m.group(2))
            else: c = float(m.group(2))
    print(s / c * 1000 if c else 0)
PY
}
for r in alone fair unfair; do check '[ "$(val $r ok)" = 8 ]' "$r: the light tenant's 8 requests served"; done
fp=$(val fair p50) up=$(val unfair p50) fq=$(val fair queue) uq=$(val unfair queue)
check 'awk "BEGIN { exit !($fp < $up) }"' "light TTFT p50 under the flood: $fp ms fair < $up ms not fair"
check 'awk "BEGIN { exit !($fq < $uq) }"' "light mean queue time: $fq ms fair < $uq ms not fair"
check '! grep -lE "AddressSanitizer|LeakSanitizer|runtime error" "$tmp"/fair/gw-*.log' "no sanitizer report from the three gateways"
finish
