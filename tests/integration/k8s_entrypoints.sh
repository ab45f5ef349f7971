#!/bin/bash
# k8s_entrypoints — the image's entrypoints (deploy/docker/entrypoint-*.sh) run
# the programs as the manifests start them. No container engine runs here, so
# the containers are played on loopback: the command and the env of each
# container are read from the rendered manifests (base/model-server-cpu and
# overlays/us-east5), and only what ties them to a cluster is rewritten — the
# paths of volumes (/models, /cache, /etc/infergate -> scratch folders), the
# bucket (-> nginx on loopback holding a tiny model), the listen addresses and
# ports, and the gateway's DNS names (answered by dnsmasq on loopback). Checks:
#   1. weights-pull (the init container) fills the shared folder;
#   2. server serves that folder on /health and the OpenAI API;
#   3. gateway checks its configuration, serves through the local region,
#      reloads when the mounted file changes (as a ConfigMap update does), and
#      drains and exits 0 on SIGTERM; a bad configuration stops it at once;
#   4. weights-mount mounts the bucket read-only (when /dev/fuse is usable) and
#      unmounts on SIGTERM.
. "${IG_TOP:-$(dirname "$0")/../..}/tests/lib/weights/lib.sh"
export INFERGATE_BIN="$IG_BIN"
E="$IG_TOP/deploy/docker"
K="$IG_TOP/deploy/kubernetes"
command -v kubectl >/dev/null || fail "kubectl is not installed (Debian kubernetes-client)"
command -v dnsmasq >/dev/null || fail "dnsmasq is not installed (Debian dnsmasq-base)"
SPORT=$((PORT + 1)); GPORT=$((PORT + 2)); DNSPORT=$((PORT + 3)); RPORT=$((PORT + 4))

echo "== the containers as the manifests declare them"
kubectl kustomize "$K/base/model-server-cpu" >"$T/cpu.yaml" || fail "render model-server-cpu"
kubectl kustomize "$K/overlays/us-east5" >"$T/us.yaml" || fail "render us-east5"
# containers.sh: one shell file per container with `cmd=...` and `export K=V`
# lines, exactly the manifest's command and env (secret refs left out).
python3 - "$T" <<'PY' || fail "reading the manifests"
import json, shlex, sys, yaml
t = sys.argv[1]
def containers(path):
    for d in yaml.safe_load_all(open(path)):
        if d and d["kind"] == "Deployment":
            spec = d["spec"]["template"]["spec"]
            for c in spec.get("initContainers", []) + spec["containers"]:
                yield d["metadata"]["name"], c
        if d and d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("gateway-config"):
            open(f"{t}/gateway.yaml", "w").write(d["data"]["gateway.yaml"])
# The model server's containers from the CPU base, the gateway's from the overlay.
for path, roles in ((f"{t}/cpu.yaml", ("weights-pull", "server")), (f"{t}/us.yaml", ("gateway",))):
    for dep, c in containers(path):
        if not c["command"][0].startswith("/usr/local/bin/entrypoint-"):
            continue
        role = c["command"][0].split("entrypoint-")[1][:-3]
        if role not in roles:
            continue
        with open(f"{t}/{role}.env", "w") as f:
            f.write("cmd=%s\n" % shlex.quote(c["command"][0].split("/")[-1]))
            for e in c.get("env", []):
                if "value" in e:
                    f.write("export %s=%s\n" % (e["name"], shlex.quote(e["value"])))
PY
for r in weights-pull server gateway; do
	[ -f "$T/$r.env" ] || fail "no container runs entrypoint-$r.sh"
	check "$r: $(grep -c '^export' "$T/$r.env") env vars from the manifest: $(sed -n 's/^export \([A-Z_]*\)=.*/\1/p' "$T/$r.env" | tr '\n' ' ')"
done
# Volume paths and the bucket, rewritten for loopback.
relocate() { sed -e "s#/models#$T/models#g" -e "s#/cache#$T/cache#g" -e "s#/etc/infergate#$T/etc#g" "$1"; }
mkdir -p "$T/models" "$T/cache" "$T/etc" "$T/www/bucket"
"$IG_BIN/infergate-mkmodel" --shape tiny "$T/www/bucket/gemma-3-27b-it" >/dev/null 2>&1 || fail "mkmodel"
nginx_start
BUCKET="http://127.0.0.1:$PORT/bucket/gemma-3-27b-it/"

echo "== 1. weights-pull, as the init container"
(
	. <(relocate "$T/weights-pull.env")
	export WEIGHTS_SOURCE="$BUCKET"
	sh "$E/$cmd" >"$T/pull.log" 2>&1
) || fail "entrypoint-weights-pull.sh: $(tail -3 "$T/pull.log")"
cmp -s "$T/www/bucket/gemma-3-27b-it/model.safetensors" "$T/models/gemma/model.safetensors" ||
	fail "the pulled weights differ"
check "the weights are in the shared folder ($(ls "$T/models/gemma" | wc -l) files)"

echo "== 2. server, reading that folder"
(
	. <(relocate "$T/server.env")
	export HOST=127.0.0.41 PORT=$SPORT THREADS=1
	exec sh "$E/$cmd" >"$T/server.log" 2>&1
) &
SERVER_PID=$!; PIDS="$PIDS $SERVER_PID"
for _ in $(seq 1 300); do curl -fs -o /dev/null "http://127.0.0.41:$SPORT/health" && break; sleep 0.1; done
curl -fs -o /dev/null "http://127.0.0.41:$SPORT/health" || fail "server not healthy: $(tail -5 "$T/server.log")"
check "/health answers 200 on 127.0.0.41:$SPORT"
model=$(sed -n "s/^export SERVED_MODEL_NAME=//p" "$T/server.env" | tr -d "'")
code=$(curl -s -o "$T/c.json" -w '%{http_code}' "http://127.0.0.41:$SPORT/v1/chat/completions" -H 'content-type: application/json' \
	-d "{\"model\":\"$model\",\"messages\":[{\"role\":\"user\",\"content\":\"What is the capital of France?\"}],\"max_tokens\":4}")
[ "$code" = 200 ] || fail "chat through the server: $code $(head -c 300 "$T/c.json")"
check "the server answers as $model"

echo "== 3. gateway, with the overlay's configuration"
# The cluster's names, answered on loopback: the local headless Service is the
# server above; the other region's exported name is a simulator.
"$IG_BIN/infergate-sim" --host 127.0.0.42 --port "$SPORT" --model "$model" --region europe-west4 --log-level warn \
	>"$T/sim.log" 2>&1 &
PIDS="$PIDS $!"
cat >"$T/hosts" <<EOF
127.0.0.41 vllm-gemma-headless.default.svc.cluster.local
127.0.0.42 vllm-gemma-europe-west4.default.svc.clusterset.local
EOF
dnsmasq --no-daemon --conf-file=/dev/null --user=root --port "$DNSPORT" --listen-address 127.0.0.1 --bind-interfaces \
	--no-resolv --no-hosts --addn-hosts "$T/hosts" --local=/local/ --pid-file= >"$T/dns.log" 2>&1 &
PIDS="$PIDS $!"
sed -e "s#^listen: .*#listen: 127.0.0.1:$GPORT#" -e "s#:8000\"#:$SPORT\"#" \
	-e "s#^\(        resolve: dns\)\$#\1\n        resolver: \"127.0.0.1:$DNSPORT\"#" "$T/gateway.yaml" >"$T/etc/gateway.yaml"
grep -q "resolver: \"127.0.0.1:$DNSPORT\"" "$T/etc/gateway.yaml" || fail "could not point the configuration at the test resolver"
(
	. <(relocate "$T/gateway.env")
	export INFERGATE_RELOAD_POLL_SECONDS=1
	exec sh "$E/$cmd" >"$T/gw.out" 2>"$T/gw.log"
) &
GW_PID=$!; PIDS="$PIDS $GW_PID"
wait_port "$GPORT" || fail "gateway did not listen: $(tail -5 "$T/gw.log")"
grep -q '"level":"info"' "$T/gw.log" && check "INFERGATE_LOG_JSON=1 from the manifest: JSON log lines"
ready=0
for _ in $(seq 1 100); do curl -fs -o /dev/null "http://127.0.0.1:$GPORT/readyz" && { ready=1; break; }; sleep 0.1; done
[ $ready = 1 ] || fail "gateway never ready: $(tail -5 "$T/gw.log")"
code=$(curl -s -D "$T/h" -o "$T/g.json" -w '%{http_code}' "http://127.0.0.1:$GPORT/v1/chat/completions" -H 'content-type: application/json' \
	-d "{\"model\":\"$model\",\"messages\":[{\"role\":\"user\",\"content\":\"What is the capital of France?\"}],\"max_tokens\":4}")
[ "$code" = 200 ] || fail "chat through the gateway: $code $(head -c 300 "$T/g.json")"
grep -qi "^x-infergate-region: us-east5" "$T/h" || fail "not served in us-east5: $(grep -i x-infergate "$T/h")"
check "the gateway serves through the local region's headless Service (x-infergate-endpoint: $(tr -d '\r' <"$T/h" | sed -n 's/^x-infergate-endpoint: //Ip'))"
curl -fs "http://127.0.0.1:$GPORT/status" | grep -q "127.0.0.42:$SPORT" || fail "the remote region's exported name was not resolved"
check "the other region's clusterset.local name resolved to its endpoint"
sed -i 's#resolve_interval: 5s#resolve_interval: 4s#' "$T/etc/gateway.yaml"
for _ in $(seq 1 50); do grep -q '"msg":"reload: ' "$T/gw.log" && break; sleep 0.1; done
grep -q 'changed, reloading' "$T/gw.log" && grep -q '"msg":"reload: ' "$T/gw.log" || fail "no reload after the file changed: $(tail -3 "$T/gw.log")"
check "a changed configuration file is reloaded (SIGHUP from the entrypoint)"
kill -TERM "$GW_PID"
for _ in $(seq 1 100); do kill -0 "$GW_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$GW_PID" 2>/dev/null && fail "the gateway entrypoint did not exit after SIGTERM"
wait "$GW_PID"; rc=$?
[ "$rc" = 0 ] || fail "gateway entrypoint exit status $rc: $(grep -v "\"level\":\"info\"" "$T/gw.log" | grep -A30 "ERROR: AddressSanitizer" | head -40)"
grep -q 'drain' "$T/gw.log" || fail "no drain in the log"
check "SIGTERM: the gateway drains and the entrypoint exits 0"
grep -qE "AddressSanitizer|runtime error" "$T/gw.log" "$T/server.log" && fail "sanitizer report"
echo "pools: [" >"$T/etc/bad.yaml"
if INFERGATE_CONFIG="$T/etc/bad.yaml" timeout 10 sh "$E/entrypoint-gateway.sh" >"$T/bad.out" 2>&1; then
	fail "a bad configuration was accepted"
fi
check "a bad configuration stops the entrypoint before it listens: $(head -n 1 "$T/bad.out")"

echo "== 4. weights-mount (FUSE)"
if [ ! -c /dev/fuse ] || ! command -v fusermount3 >/dev/null; then
	check "skipped: /dev/fuse or fusermount3 is not available here"
else
	mkdir -p "$T/mnt"
	(
		export WEIGHTS_SOURCE="$BUCKET" WEIGHTS_MOUNT="$T/mnt/gemma" WEIGHTS_CACHE_DIR="$T/fcache" WEIGHTS_CACHE_CAPACITY=1GiB
		exec sh "$E/entrypoint-weights-mount.sh" >"$T/mount.log" 2>&1
	) &
	MP=$!; PIDS="$PIDS $MP"
	for _ in $(seq 1 100); do grep -q " $T/mnt/gemma fuse" /proc/mounts && break; sleep 0.1; done
	if ! grep -q " $T/mnt/gemma fuse" /proc/mounts; then
		check "skipped: FUSE mounts are refused here ($(tail -n 1 "$T/mount.log"))"
		kill "$MP" 2>/dev/null
	else
		cmp -s "$T/www/bucket/gemma-3-27b-it/config.json" "$T/mnt/gemma/config.json" || fail "read through the mount differs"
		( : >"$T/mnt/gemma/new" ) 2>/dev/null && fail "the mount is writable"
		check "the bucket is mounted read-only and reads the same bytes"
		kill -TERM "$MP"
		for _ in $(seq 1 50); do grep -q " $T/mnt/gemma fuse" /proc/mounts || break; sleep 0.1; done
		grep -q " $T/mnt/gemma fuse" /proc/mounts && fail "still mounted after SIGTERM"
		check "SIGTERM unmounts"
	fi
fi
kill -TERM "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null
echo "all checks passed"
