// apiserver.js — a stand-in for the Kubernetes API server's EndpointSlice
// endpoints, over HTTPS, replaying a recorded session (tests/lib/k8s/*.json):
// each LIST answers the next recorded list, each WATCH replays the next
// recorded stream (chunked JSON lines, with the recorded delays), then ends
// it or holds it open. The bearer token is checked (401 otherwise). Each
// request and each event sent is logged on stdout with a millisecond clock.
//
//   node apiserver.js --key K --cert C --token-file T --session S.json [--port 0]
// First line: "listening PORT".
"use strict";
const https = require("https");
const fs = require("fs");

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
const session = JSON.parse(fs.readFileSync(args.session, "utf8"));
const token = fs.readFileSync(args["token-file"], "utf8").trim();
let lists = 0, watches = 0;
const log = (msg) => console.log(`${Date.now()} ${msg}`);

const server = https.createServer({ key: fs.readFileSync(args.key), cert: fs.readFileSync(args.cert) }, (req, res) => {
	const url = new URL(req.url, "https://x");
	const auth = req.headers.authorization || "";
	log(`request ${req.method} ${req.url} auth=${auth === `Bearer ${token}` ? "ok" : "bad"}`);
	if (auth !== `Bearer ${token}`) {
		res.writeHead(401, { "content-type": "application/json" });
		res.end(JSON.stringify({ kind: "Status", apiVersion: "v1", status: "Failure", message: "Unauthorized", reason: "Unauthorized", code: 401 }));
		return;
	}
	const m = url.pathname.match(/^\/apis\/discovery\.k8s\.io\/v1\/namespaces\/([^/]+)\/endpointslices$/);
	const selector = url.searchParams.get("labelSelector");
	if (!m || m[1] !== session.namespace || selector !== `kubernetes.io/service-name=${session.service}`) {
		res.writeHead(404, { "content-type": "application/json" });
		res.end(JSON.stringify({ kind: "Status", code: 404, message: "not found" }));
		return;
	}
	if (url.searchParams.get("watch") !== "1" && url.searchParams.get("watch") !== "true") {
		const list = session.lists[Math.min(lists, session.lists.length - 1)];
		lists++;
		const body = JSON.stringify(list);
		res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
		res.end(body);
		log(`list ${lists} sent rv=${list.metadata.resourceVersion}`);
		return;
	}
	const w = session.watches[Math.min(watches, session.watches.length - 1)];
	watches++;
	const n = watches;
	log(`watch ${n} from rv=${url.searchParams.get("resourceVersion")}`);
	res.writeHead(200, { "content-type": "application/json", "transfer-encoding": "chunked" });
	res.flushHeaders(); // as the API server does: the head at once, events later
	let i = 0, closed = false;
	req.on("close", () => { closed = true; });
	const next = () => {
		if (closed) return;
		if (i === w.events.length) {
			if (w.end === "close") { res.end(); log(`watch ${n} ended`); }
			return; // "hold": stays open, silent
		}
		const step = w.events[i++];
		setTimeout(() => {
			if (closed) return;
			// Split one event over two writes: the client must join lines.
			const line = JSON.stringify(step.event) + "\n";
			const cut = Math.floor(line.length / 2);
			res.write(line.slice(0, cut));
			res.write(line.slice(cut));
			log(`watch ${n} event ${i} ${step.event.type} ${step.note || ""}`);
			next();
		}, step.after_ms);
	};
	next();
});
server.listen(Number(args.port || 0), "127.0.0.1", () => {
	console.log(`listening ${server.address().port}`);
});
process.on("SIGTERM", () => process.exit(0));
