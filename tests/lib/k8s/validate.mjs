// validate.mjs — checks Kubernetes objects (a JSON array on stdin, from
// `kubectl kustomize` turned into JSON) against the API schemas of the npm
// packages kubernetes-models (core kinds), @kubernetes-models/prometheus-operator
// (ServiceMonitor) and @kubernetes-models/gateway-api (Gateway API kinds).
// Kinds from CRDs without a schema package (PodMonitoring, ServiceExport) get
// the checks of the fields the reference system uses. Prints one line per
// object and exits 1 when any fails.
//   node validate.mjs < objects.json
import { existsSync, readFileSync } from "node:fs";

// The packages live in tests/node/node_modules (ESM: NODE_PATH does not apply).
const nodeModules = new URL("../../node/node_modules/", import.meta.url);

const objs = JSON.parse(readFileSync(0, "utf8"));
const packages = {
	"monitoring.coreos.com": "@kubernetes-models/prometheus-operator/monitoring.coreos.com",
	"gateway.networking.k8s.io": "@kubernetes-models/gateway-api/gateway.networking.k8s.io",
	"inference.networking.k8s.io": "@kubernetes-models/gateway-api/inference.networking.k8s.io",
};
const duration = /^([0-9]+(ms|s|m|h))+$/;
const crdChecks = {
	"monitoring.googleapis.com/v1/PodMonitoring": (o) => {
		const s = o.spec || {};
		const errs = [];
		if (!s.selector || typeof s.selector.matchLabels !== "object") errs.push("spec.selector.matchLabels missing");
		if (!Array.isArray(s.endpoints) || s.endpoints.length === 0) errs.push("spec.endpoints missing");
		for (const e of s.endpoints || []) {
			if (!(typeof e.port === "string" || Number.isInteger(e.port))) errs.push("endpoint port must be a name or a number");
			if (e.path !== undefined && !String(e.path).startsWith("/")) errs.push("endpoint path must start with /");
			if (e.interval !== undefined && !duration.test(e.interval)) errs.push(`interval ${e.interval} is not a duration`);
			for (const k of Object.keys(e)) if (!["port", "path", "interval", "timeout", "scheme", "params", "metricRelabeling", "proxyUrl", "authorization", "basicAuth", "oauth2", "tls"].includes(k)) errs.push(`unknown endpoint field ${k}`);
		}
		return errs;
	},
	"multicluster.x-k8s.io/v1alpha1/ServiceExport": (o) => {
		const errs = [];
		if (!o.metadata || !o.metadata.name) errs.push("metadata.name missing");
		if (o.spec && Object.keys(o.spec).length) errs.push("ServiceExport has no spec fields");
		if (!objs.some((x) => x.kind === "Service" && x.metadata.name === o.metadata.name && (x.metadata.namespace || "") === (o.metadata.namespace || "")))
			errs.push(`no Service named ${o.metadata.name} in the same namespace to export`);
		return errs;
	},
};

let failed = 0;
for (const o of objs) {
	const [group, version] = o.apiVersion.includes("/") ? o.apiVersion.split("/") : ["", o.apiVersion];
	const what = `${o.apiVersion} ${o.kind} ${o.metadata && o.metadata.name}`;
	const check = crdChecks[`${o.apiVersion}/${o.kind}`];
	let errs = [];
	if (check) {
		errs = check(o);
	} else {
		const mod = packages[group] ? `${packages[group]}/${version}` : `kubernetes-models/${group ? group + "/" : ""}${version}`;
		let cls;
		try {
			const file = new URL(`${mod}/index.js`, nodeModules);
			cls = existsSync(file) ? (await import(file.href))[o.kind] : undefined;
		} catch (e) {
			cls = undefined;
		}
		if (!cls) {
			errs = [`no schema for ${o.apiVersion} ${o.kind} (${mod})`];
		} else {
			try {
				new cls(o).validate();
			} catch (e) {
				errs = [e.message];
			}
		}
	}
	if (errs.length) {
		failed++;
		console.log(`FAIL ${what}: ${errs.join("; ")}`);
	} else {
		console.log(`ok   ${what}${check ? " (CRD: field checks)" : " (schema)"}`);
	}
}
process.exit(failed ? 1 : 0);
