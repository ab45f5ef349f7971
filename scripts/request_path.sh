#!/bin/sh
# Which files of src/gateway one streamed chat request enters, and which calls
# cross from one of those files to another: a gateway (default bin/infergate)
# runs under callgrind in front of one simulator; after a warm-up request,
# instrumentation is switched on for exactly one request and off again. The
# request's code is what the call graph reaches from the gateway functions
# the core calls back into front.c and proxy.c (the HTTP server's handler,
# the HTTP client's and the timers' callbacks), so that the scrapes and health
# checks that run meanwhile are not counted, unless the request calls them.
#
#   sh scripts/request_path.sh [GATEWAY [SIM]]    prints the files, the calls, the counts
# Needs valgrind (callgrind_control), curl and python3. Two free loopback ports.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
GW=${1:-$top/bin/infergate}
SIM=${2:-$top/bin/infergate-sim}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
SIMP=$(free_port); GWP=$(free_port)
tmp=$(mktemp -d)
pids=""
cleanup() { for p in $pids; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; [ -n "${KEEP:-}" ] && cp "$tmp/cg.out" "$KEEP" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
"$SIM" --port "$SIMP" --model m --ttft-ms 5 --itl-ms 2 --log-level warn &
pids="$pids $!"
cat >"$tmp/gw.yaml" <<YAML
region: r1
listen: 127.0.0.1:$GWP
pools:
  - name: p
    models: [m]
    endpoints:
      - { address: "127.0.0.1:$SIMP", region: r1 }
    health: { interval: 30s, fast_interval: 30s, timeout: 1s }
YAML
valgrind --tool=callgrind --instr-atstart=no --dump-instr=no --compress-strings=no --compress-pos=no \
	--callgrind-out-file="$tmp/cg.out" "$GW" -c "$tmp/gw.yaml" --log-level warn 2>"$tmp/vg.log" &
gw=$!
pids="$pids $gw"
body='{"model":"m","stream":true,"max_tokens":4,"messages":[{"role":"user","content":"Where is Paris?"}]}'
ask() { curl -sS -m 20 -o "$tmp/answer" -w '%{http_code}' -H 'Content-Type: application/json' -d "$body" "http://127.0.0.1:$GWP/v1/chat/completions" 2>/dev/null || true; }
i=0
until [ "$(ask)" = 200 ]; do
	i=$((i + 1)); [ $i -lt 120 ] || { echo "request_path: the gateway did not answer 200" >&2; cat "$tmp/vg.log" >&2; exit 1; }
	sleep 0.5
done
sleep 1
callgrind_control -i on "$gw" >/dev/null
code=$(ask)
callgrind_control -i off "$gw" >/dev/null
[ "$code" = 200 ] || { echo "request_path: the measured request got $code" >&2; exit 1; }
kill -INT "$gw"; wait "$gw" 2>/dev/null || true
python3 - "$tmp/cg.out" <<'PY'
import sys, re, collections
fn_file = {}; edges = collections.Counter(); cost = collections.Counter()
fl = fn = cfl = cfn = None; pending = False
for line in open(sys.argv[1], errors='replace'):
    line = line.rstrip('\n')
    if line.startswith('fl='): fl = line[3:]; continue
    if line.startswith(('fi=', 'fe=')): continue
    if line.startswith('fn='):
        fn = line[3:]; fn_file.setdefault(fn, fl); cfl = None; continue
    if line.startswith(('cfl=', 'cfi=')): cfl = line[4:]; continue
    if line.startswith('cfn='):
        cfn = line[4:]; fn_file.setdefault(cfn, cfl or fl); continue
    if line.startswith('calls='):
        edges[(fn, cfn)] += int(line.split()[0][6:]); pending = True; cfl = None; continue
    if pending: pending = False; continue       # the inclusive cost line of the call
    if fn and line[:1].isdigit(): cost[fn] += 1
def gwfile(f):
    p = fn_file.get(f) or ''
    m = re.search(r'src/gateway/([^/]+\.c)$', p)
    return m.group(1) if m else None
callees = collections.defaultdict(set)
for (a, b) in edges: callees[a].add(b)
roots = {b for (a, b) in edges if gwfile(b) in ('front.c', 'proxy.c') and not gwfile(a)}
seen, todo = set(roots), list(roots)
while todo:
    f = todo.pop()
    for g in callees[f]:
        if g not in seen: seen.add(g); todo.append(g)
files = sorted({gwfile(f) for f in seen if gwfile(f)})
cross = sorted((gwfile(a), a, gwfile(b), b, n) for (a, b), n in edges.items()
               if a in seen and gwfile(a) and gwfile(b) and gwfile(a) != gwfile(b))
print('files of src/gateway entered: %d' % len(files))
print('  ' + ' '.join(f[:-2] for f in files))
print('calls from one of them to another: %d distinct, %d made' % (len(cross), sum(c[4] for c in cross)))
for fa, a, fb, b, n in cross: print('  %-16s %-30s -> %-16s %s (%d)' % (fa, a, fb, b, n))
back = [c for c in cross if c[2] == 'proxy.c' and c[0] != 'front.c']
print('calls back into proxy.c from a file below it (front.c aside): %d distinct: %s'
      % (len(back), ', '.join(sorted({c[3] for c in back})) or '-'))
PY
