// h2_client.js — Node's http2 module against the gateway, one mode per run;
// prints one JSON line with what it saw (the shell test checks it).
//
//   node h2_client.js stream URL MODEL [CA]        one streamed chat: events, [DONE], status
//   node h2_client.js many URL MODEL N [CA]        N chats at once on one connection
//   node h2_client.js cancel URL MODEL [CA]        a long stream reset (RST_STREAM CANCEL)
//                                                  after its first event; stays 3 s
//   node h2_client.js hold URL MODEL [CA]          a long stream; prints "started", then
//                                                  the end (for drain: GOAWAY mid-stream)
//   node h2_client.js bigheaders URL [CA]          a request with 200 KiB of headers
//   node h2_client.js slow URL MODEL N [CA]        stream A (N tokens) not read for 4 s while
//                                                  stream B on the same connection runs; then A
//                                                  is read to its end
// URL is https://host:port (CA file given) or http://host:port (h2c, prior knowledge).
"use strict";
const http2 = require("http2");
const fs = require("fs");

const [mode, url, a3, a4, a5] = process.argv.slice(2);
const deadline = setTimeout(() => { console.log(JSON.stringify({ error: "timeout" })); process.exit(2); }, 30000);

function connect(ca) {
	const opts = ca ? { ca: fs.readFileSync(ca) } : {};
	const s = http2.connect(url, opts);
	s.on("error", (e) => { console.log(JSON.stringify({ error: "session: " + e.message })); process.exit(1); });
	return s;
}

function request(session, model, stream, max_tokens) {
	const body = JSON.stringify({ model, stream, max_tokens, messages: [{ role: "user", content: "Tell me a story." }] });
	const req = session.request({ ":method": "POST", ":path": "/v1/chat/completions", "content-type": "application/json" });
	req.end(body);
	return req;
}

function collect(req) {
	return new Promise((resolve) => {
		let status = 0, data = "";
		req.on("response", (h) => { status = h[":status"]; });
		req.setEncoding("utf8");
		req.on("data", (d) => { data += d; });
		req.on("end", () => resolve({ status, data }));
		req.on("error", (e) => resolve({ status, data, error: e.message }));
	});
}

function done(obj, session) {
	clearTimeout(deadline);
	console.log(JSON.stringify(obj));
	if (session) session.close();
}

async function main() {
	if (mode === "stream") {
		const s = connect(a4);
		const r = await collect(request(s, a3, true, 12));
		const events = r.data.split("\n").filter((l) => l.startsWith("data: {")).length;
		done({ status: r.status, events, done: /data: \[DONE\]\s*$/.test(r.data), alpn: s.alpnProtocol || "h2c" }, s);
	} else if (mode === "many") {
		const s = connect(a5);
		const n = Number(a4);
		const all = [];
		for (let i = 0; i < n; i++) all.push(collect(request(s, a3, i % 2 === 0, 6)));
		const rs = await Promise.all(all);
		const ok = rs.filter((r) => r.status === 200 && (r.data.includes("[DONE]") || r.data.includes("chat.completion"))).length;
		done({ n, ok, statuses: [...new Set(rs.map((r) => r.status))] }, s);
	} else if (mode === "cancel") {
		const s = connect(a4);
		const req = request(s, a3, true, 2000);
		req.setEncoding("utf8");
		let first = false;
		req.on("data", () => {
			if (first) return;
			first = true;
			console.log("stream started");
			req.close(http2.constants.NGHTTP2_CANCEL);
			setTimeout(() => done({ cancelled: true }, s), 3000);
		});
		req.on("error", () => {});
	} else if (mode === "hold") {
		const s = connect(a4);
		let goaway = false;
		s.on("goaway", () => { goaway = true; });
		const req = request(s, a3, true, Number(process.env.H2_TOKENS || 100));
		let started = false;
		req.on("data", () => { if (!started) { started = true; console.log("started"); } });
		const r = await collect(req);
		const events = r.data.split("\n").filter((l) => l.startsWith("data: {")).length;
		done({ status: r.status, events, done: /data: \[DONE\]\s*$/.test(r.data), goaway }, s);
	} else if (mode === "slow") {
		const s = connect(a5);
		const n = Number(a4);
		const a = request(s, a3, true, n);
		a.pause(); // no WINDOW_UPDATE for A: its window fills, the gateway buffers, then pauses the upstream
		await new Promise((r) => setTimeout(r, 500));
		const t0 = Date.now();
		const b = await collect(request(s, a3, true, 20));
		const b_ms = Date.now() - t0;
		await new Promise((r) => setTimeout(r, Math.max(0, 4000 - b_ms)));
		const ra = collect(a);
		a.resume();
		const r = await ra;
		const events = r.data.split("\n").filter((l) => l.startsWith("data: {")).length;
		done({ b_status: b.status, b_done: /data: \[DONE\]\s*$/.test(b.data), b_ms,
			a_status: r.status, a_events: events, a_done: /data: \[DONE\]\s*$/.test(r.data) }, s);
	} else if (mode === "bigheaders") {
		const s = connect(a3);
		const h = { ":method": "GET", ":path": "/v1/models" };
		for (let i = 0; i < 50; i++) h["x-filler-" + i] = "y".repeat(4000);
		const req = s.request(h);
		req.end();
		const r = await collect(req);
		// The gateway answers 431, or resets the stream (both refuse it); then the
		// same connection still serves a normal request.
		const q = s.request({ ":method": "GET", ":path": "/healthz" });
		q.end();
		const r2 = await collect(q);
		done({ status: r.status, error: r.error || null, after: r2.status }, s);
	} else {
		console.log("unknown mode " + mode);
		process.exit(2);
	}
}
main();
