#!/bin/bash
# k8s_render — the manifests in deploy/kubernetes render and are valid, with
# every kubectl at hand: the one on PATH (kustomize v5 in recent kubectl) and
# Debian 12's (package kubernetes-client: kubectl 1.20, kustomize v2.0.3),
# unpacked into build/debian-kubectl by tests/lib/k8s/debian_kubectl.sh (fetched
# with apt-get download when missing; skipped, saying so, only when it cannot
# be had here):
#   1. every kustomization (both overlays, us-east5 and europe-west4, each
#      base, the CPU server with the FUSE mount) renders with `kubectl
#      kustomize`, with each kubectl;
#   2. every rendered object validates against the Kubernetes API schemas
#      (npm kubernetes-models, @kubernetes-models/prometheus-operator); kinds
#      from CRDs without a schema package get field checks (tests/lib/k8s/validate.mjs);
#      broken objects are caught (the validator is not a no-op); the recorded
#      EndpointSlices of k8s_watch are valid discovery.k8s.io/v1 objects;
#   3. the reference system's settings are there: app: gemma-server on 8000,
#      readiness /health, preStop, termination grace; TPU v6e 2x2 selectors,
#      google.com/tpu 4, the DRA claim all-netdev (netdev.google.com, All);
#      the internal load balancer; ServiceExport of the region's Service; the
#      HPA on the gateway's KV-cache metric; RBAC for the EndpointSlice watch;
#   4. each region's gateway configuration passes `infergate --check`, names
#      its region, resolves the local headless Service and the other region's
#      exported clusterset.local name;
#   5. the kubectls agree: the same objects (kind, namespace, name) with the
#      same content, field by field; only the hash suffix of generated
#      ConfigMap names differs between kustomize versions.
set -u
top=${IG_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
bin=${IG_BIN:-$top/build/san/bin}
K="$top/deploy/kubernetes"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
ok() { echo "ok   $*"; }
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
check() { if eval "$1"; then ok "$2"; else fail "$2 [$1]"; fi; }

[ -d "$top/tests/node/node_modules/kubernetes-models" ] || { echo "FAIL npm kubernetes-models missing (make deps)"; exit 1; }

# The kubectls: names (path, debian) and binaries, one of each distinct binary.
kubectls=""
add_kubectl() { # name binary
	for k in $kubectls; do
		[ "$(sha256sum <"$(eval echo "\$kbin_$k")")" = "$(sha256sum <"$2")" ] && { echo "kubectl $1 ($2) is kubectl $k"; return; }
	done
	kubectls="$kubectls $1"
	eval "kbin_$1=\$2"
	v=$("$2" version --client 2>/dev/null | grep -o 'v1\.[0-9]*\.[0-9]*' | head -n 1)
	kz=$("$2" version --client 2>/dev/null | sed -n 's/^Kustomize Version: //p')
	# kubectl 1.14 to 1.20 carry kustomize v2.0.3 and do not print it.
	[ -z "$kz" ] && case "$v" in v1.1[4-9].* | v1.20.*) kz=v2.0.3 ;; esac
	echo "kubectl $1: $2, $v, kustomize ${kz:-unknown}"
}
path_kubectl=$(command -v kubectl)
[ -n "$path_kubectl" ] && add_kubectl path "$(readlink -f "$path_kubectl")"
if deb_kubectl=$(sh "$top/tests/lib/k8s/debian_kubectl.sh" 2>"$tmp/debian.err"); then
	add_kubectl debian "$deb_kubectl"
else
	echo "SKIP kubectl debian: Debian's kubernetes-client cannot be had here: $(cat "$tmp/debian.err")"
fi
[ -n "$kubectls" ] || { echo "FAIL no kubectl: none on PATH and Debian's kubernetes-client cannot be fetched"; exit 1; }
first=$(echo $kubectls | cut -d' ' -f1)

# Each FILE.yaml given becomes FILE.json (an array of the objects); prints the
# object count of each (one python for all: its start is what costs here).
to_json() {
	python3 -c '
import sys, json, yaml
for p in sys.argv[1:]:
    try:
        objs = [d for d in yaml.safe_load_all(open(p)) if d]
    except yaml.YAMLError as e:
        objs = []
        print("unreadable YAML:", str(e).replace("\n", " "), file=sys.stderr)
    json.dump(objs, open(p[:-5] + ".json", "w"))
    print(len(objs))' "$@"
}

echo "== 1. render"
# Every kustomization in deploy/kubernetes, so none is left out.
targets=$(cd "$K" && find . -name kustomization.yaml | sed 's#^\./##; s#/kustomization.yaml$##' | sort)
for want in overlays/us-east5 overlays/europe-west4 base/gateway base/model-server-cpu base/model-server-cpu-fuse base/model-server-vllm-tpu base/weights; do
	echo "$targets" | grep -qx "$want" || fail "no kustomization $want"
done
for k in $kubectls; do
	kb=$(eval echo "\$kbin_$k")
	mkdir -p "$tmp/$k"
	rendered=""
	for t in $targets; do
		name=$(echo "$t" | tr / -)
		if "$kb" kustomize "$K/$t" >"$tmp/$k/$name.yaml" 2>"$tmp/$k/$name.err"; then
			rendered="$rendered $t"
		else
			fail "$k: $t does not render: $(head -c 400 "$tmp/$k/$name.err")"
			echo '[]' >"$tmp/$k/$name.json"
		fi
	done
	[ -n "$rendered" ] || continue
	counts=$(to_json $(for t in $rendered; do echo "$tmp/$k/$(echo "$t" | tr / -).yaml"; done))
	i=0
	for t in $rendered; do
		i=$((i + 1))
		name=$(echo "$t" | tr / -)
		n=$(echo "$counts" | sed -n "${i}p")
		warn=$(grep -c "^# Warning: '.*' is deprecated" "$tmp/$k/$name.err")
		other=$(grep -v "^# Warning: '.*' is deprecated" "$tmp/$k/$name.err" | head -c 300)
		check '[ "${n:-0}" -gt 0 ]' "$k: $t renders (${n:-no} objects$([ "$warn" != 0 ] && echo ", $warn deprecation warnings"))"
		[ -z "$other" ] || fail "$k: $t: unexpected messages: $other"
	done
done

echo "== 2. schemas"
for k in $kubectls; do
	for t in $targets; do
		name=$(echo "$t" | tr / -)
		if node "$top/tests/lib/k8s/validate.mjs" <"$tmp/$k/$name.json" >"$tmp/$k/$name.valid"; then
			ok "$k: $t: every object valid ($(grep -c '(schema)' "$tmp/$k/$name.valid") by schema, $(grep -c 'CRD' "$tmp/$k/$name.valid") by field checks)"
		else
			fail "$k: $t: $(grep FAIL "$tmp/$k/$name.valid" | head -n 5)"
		fi
	done
done
cat "$tmp/$first/overlays-us-east5.valid"
# The validator catches what is wrong.
cat >"$tmp/bad.json" <<'EOF'
[{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x"},"spec":{"selector":{},"template":{"spec":{"containers":[{"name":"a","image":7}]}}}},
 {"apiVersion":"v1","kind":"Service","metadata":{"name":"y"},"spec":{"ports":[{"port":"eighty"}]}},
 {"apiVersion":"monitoring.googleapis.com/v1","kind":"PodMonitoring","metadata":{"name":"z"},"spec":{"endpoints":[{"port":8000,"interval":"soon"}]}},
 {"apiVersion":"multicluster.x-k8s.io/v1alpha1","kind":"ServiceExport","metadata":{"name":"nothing-by-this-name"}},
 {"apiVersion":"example.com/v1","kind":"Unknown","metadata":{"name":"u"}}]
EOF
node "$top/tests/lib/k8s/validate.mjs" <"$tmp/bad.json" >"$tmp/bad.out"
check '[ "$(grep -c ^FAIL "$tmp/bad.out")" = 5 ]' "five broken objects, five failures ($(grep -c ^FAIL "$tmp/bad.out"))"
python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
objs = [w["event"]["object"] for w in sum((x["events"] for x in s["watches"]), []) if w["event"]["type"] in ("ADDED", "MODIFIED", "DELETED")]
objs += [i for l in s["lists"] for i in l["items"]]
for o in objs: o.setdefault("apiVersion", "discovery.k8s.io/v1"); o.setdefault("kind", "EndpointSlice")
print(json.dumps(objs))' "$top/tests/lib/k8s/endpointslices-session.json" >"$tmp/slices.json"
node "$top/tests/lib/k8s/validate.mjs" <"$tmp/slices.json" >"$tmp/slices.out"
check '[ $? = 0 ] && [ "$(grep -c ^ok "$tmp/slices.out")" -ge 5 ]' \
	"the recorded EndpointSlices are valid discovery.k8s.io/v1 objects ($(grep -c ^ok "$tmp/slices.out"))"

echo "== 3. the reference system's settings"
# Every line for the first kubectl; for the others, a count and any failure.
for k in $kubectls; do
python3 - "$tmp/$k" >"$tmp/$k/ref.out" 2>&1 <<'PY' || echo "FAIL the checks of the reference system's settings broke" >>"$tmp/$k/ref.out"
import json, sys
t = sys.argv[1]
def load(n): return json.load(open(f"{t}/{n}.json"))
def find(objs, kind, name=None):
    r = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    return r[0] if r else None
out = []
def check(cond, what): out.append(("ok  " if cond else "FAIL") + " " + what)
for region, other in (("us-east5", "europe-west4"), ("europe-west4", "us-east5")):
    o = load(f"overlays-{region}")
    d = find(o, "Deployment", "vllm-gemma")
    pod = d["spec"]["template"]["spec"]
    c = pod["containers"][0]
    check(d["spec"]["template"]["metadata"]["labels"].get("app") == "gemma-server", f"{region}: vllm-gemma pods are app: gemma-server")
    check(any(p["containerPort"] == 8000 for p in c["ports"]), f"{region}: port 8000")
    check(c["readinessProbe"]["httpGet"]["path"] == "/health", f"{region}: readiness GET /health")
    check("preStop" in c.get("lifecycle", {}), f"{region}: a preStop drain")
    check(pod.get("terminationGracePeriodSeconds", 30) >= 45, f"{region}: terminationGracePeriodSeconds {pod.get('terminationGracePeriodSeconds')}")
    ns = pod.get("nodeSelector", {})
    check(ns.get("cloud.google.com/gke-tpu-accelerator") == "tpu-v6e-slice" and ns.get("cloud.google.com/gke-tpu-topology") == "2x2", f"{region}: TPU v6e 2x2 node selectors")
    check(c["resources"]["limits"].get("google.com/tpu") == "4" and c["resources"]["requests"].get("google.com/tpu") == "4", f"{region}: google.com/tpu 4")
    check("--tensor-parallel-size=4" in c.get("args", []) and "--model=/data/gemma-weights" in c.get("args", []), f"{region}: vLLM --model /data/gemma-weights --tensor-parallel-size 4")
    check(any(r.get("resourceClaimTemplateName") == "all-netdev" for r in pod.get("resourceClaims", [])) and c["resources"].get("claims"), f"{region}: the pod claims all-netdev")
    rct = find(o, "ResourceClaimTemplate", "all-netdev")
    req = rct and rct["spec"]["spec"]["devices"]["requests"][0]["exactly"]
    check(bool(req) and req["deviceClassName"] == "netdev.google.com" and req["allocationMode"] == "All", f"{region}: ResourceClaimTemplate all-netdev: netdev.google.com, allocationMode All")
    init = [i for i in pod.get("initContainers", []) if i["name"] == "weights-pull"]
    check(bool(init) and "entrypoint-weights-pull.sh" in init[0]["command"][0], f"{region}: the weights pulled by an init container")
    svc = find(o, "Service", "infergate-gateway")
    check(svc["spec"]["type"] == "LoadBalancer" and svc["metadata"]["annotations"].get("networking.gke.io/load-balancer-type") == "Internal", f"{region}: the gateway behind an internal load balancer")
    hl = find(o, "Service", "vllm-gemma-headless")
    check(hl and hl["spec"].get("clusterIP") == "None" and find(o, "Service", "vllm-gemma")["spec"].get("type") == "ClusterIP", f"{region}: headless and ClusterIP Services")
    se = find(o, "ServiceExport", f"vllm-gemma-{region}")
    check(se is not None and find(o, "Service", f"vllm-gemma-{region}")["spec"].get("clusterIP") == "None", f"{region}: ServiceExport of the headless vllm-gemma-{region}")
    check(find(o, "PodMonitoring", "gemma-server")["spec"]["endpoints"][0]["interval"] == "15s", f"{region}: PodMonitoring of gemma-server every 15s")
    check(find(o, "ServiceMonitor", "infergate-gateway") is not None and find(o, "PodMonitoring", "infergate-gateway") is not None, f"{region}: the gateway scraped (PodMonitoring, ServiceMonitor)")
    h = find(o, "HorizontalPodAutoscaler")
    m = h["spec"]["metrics"][0]["external"]
    check(h["spec"]["scaleTargetRef"]["name"] == "vllm-gemma" and "infergate_pool_kv_usage_avg" in m["metric"]["name"] and m["metric"]["selector"]["matchLabels"].get("metric.labels.region") == region, f"{region}: HPA on infergate_pool_kv_usage_avg of {region}")
    role = find(o, "Role")
    check(role and {"list", "watch"} <= set(role["rules"][0]["verbs"]) and "endpointslices" in role["rules"][0]["resources"], f"{region}: RBAC lists and watches endpointslices")
    gd = find(o, "Deployment", "infergate-gateway")
    gp = gd["spec"]["template"]["spec"]
    check(gp["serviceAccountName"] == "infergate-gateway" and gp["securityContext"]["runAsNonRoot"], f"{region}: the gateway runs as infergate-gateway, non-root")
    cm = find(o, "ConfigMap")
    vol = [v for v in gp["volumes"] if "configMap" in v][0]["configMap"]["name"]
    check(vol == cm["metadata"]["name"], f"{region}: the gateway mounts its generated ConfigMap {vol}")
    open(f"{t}/gateway-{region}.yaml", "w").write(cm["data"]["gateway.yaml"])
    imgs = {c["image"] for x in o if x["kind"] in ("Deployment", "Job") for c in x["spec"]["template"]["spec"]["containers"] + x["spec"]["template"]["spec"].get("initContainers", [])}
    check(all(i.startswith("REGISTRY/infergate:") or i.startswith("docker.io/vllm/") for i in imgs), f"{region}: images set by the overlay ({', '.join(sorted(imgs))})")
f = load("base-model-server-cpu-fuse")
fp = find(f, "Deployment", "vllm-gemma")["spec"]["template"]["spec"]
side = [i for i in fp["initContainers"] if i["name"] == "weights-mount"]
check(bool(side) and side[0]["restartPolicy"] == "Always" and side[0]["securityContext"]["privileged"] and not any(i["name"] == "weights-pull" for i in fp["initContainers"]), "FUSE variant: a privileged native sidecar mounts instead of the pull")
check(any(m.get("mountPropagation") == "HostToContainer" for m in fp["containers"][0]["volumeMounts"]), "FUSE variant: the server sees the mount (HostToContainer)")
print("\n".join(out))
PY
if [ "$k" = "$first" ]; then
	sed "s/^\(ok  \|FAIL\) /\1 $k: /" "$tmp/$k/ref.out"
else
	grep -v '^ok' "$tmp/$k/ref.out"
	echo "ok   $k: $(grep -c '^ok' "$tmp/$k/ref.out") of the settings above hold in its rendering too"
fi
n_bad=$(grep -c '^FAIL' "$tmp/$k/ref.out")
failures=$((failures + n_bad))
done

echo "== 4. each region's gateway configuration"
for r in us-east5 europe-west4; do
	o=us-east5; [ $r = us-east5 ] && o=europe-west4
	f="$tmp/$first/gateway-$r.yaml"
	"$bin/infergate" --check -c "$f" >"$tmp/check-$r.out" 2>&1
	check '[ $? = 0 ]' "$r: infergate --check: $(tail -n 1 "$tmp/check-$r.out")"
	check 'grep -q "^region: $r\$" "$f"' "$r: region $r"
	check 'grep -q "vllm-gemma-headless.default.svc.cluster.local:8000" "$f"' "$r: the local pool by the headless Service's name"
	check 'grep -q "vllm-gemma-$o.default.svc.clusterset.local:8000" "$f" && grep -q "^  $o: " "$f"' "$r: the other region by its exported clusterset.local name, with its latency"
done

echo "== 5. the kubectls agree"
if [ "$(echo $kubectls | wc -w)" -lt 2 ]; then
	echo "SKIP one kubectl only ($kubectls): nothing to compare"
else
	args=()
	for k in $kubectls; do
		[ "$k" = "$first" ] && continue
		for t in $targets; do
			name=$(echo "$t" | tr / -)
			args+=("$t: $first = $k" "$tmp/$first/$name.json" "$tmp/$k/$name.json")
		done
	done
	python3 "$top/tests/lib/k8s/compare.py" "${args[@]}" >"$tmp/cmp.out" 2>&1
	cat "$tmp/cmp.out"
	failures=$((failures + $(grep -c '^FAIL' "$tmp/cmp.out")))
	[ "$(grep -c '^\(ok  \|FAIL\) ' "$tmp/cmp.out")" = $((${#args[@]} / 3)) ] ||
		fail "not every comparison ran: $(grep -v '^\(ok  \|FAIL\) ' "$tmp/cmp.out" | head -c 300)"
	# The comparison sees a difference when there is one.
	python3 -c '
import json, sys
o = json.load(open(sys.argv[1]))
next(x for x in o if x["kind"] == "Deployment")["spec"]["replicas"] = 9
json.dump(o, open(sys.argv[2], "w"))' "$tmp/$first/overlays-us-east5.json" "$tmp/changed.json"
	python3 "$top/tests/lib/k8s/compare.py" changed "$tmp/$first/overlays-us-east5.json" "$tmp/changed.json" >"$tmp/cmp.out" 2>&1
	rc=$?
	check '[ $rc = 1 ] && grep -q "spec.replicas: [0-9] / 9" "$tmp/cmp.out"' "a changed field is a difference ($(cut -c6- "$tmp/cmp.out"))"
fi

[ "$failures" = 0 ] || { echo "$failures checks failed"; exit 1; }
echo "all checks passed"
