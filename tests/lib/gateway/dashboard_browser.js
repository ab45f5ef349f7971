// dashboard_browser.js — drives the gateway's live dashboard in headless
// Chromium (Debian's, through puppeteer-core: no browser is downloaded) and
// prints one "ok"/"FAIL" line per check, as the shell tests do.
//
//   node dashboard_browser.js
// Environment: GW_URL, SIM_A / SIM_B / SIM_C (host:port of the simulators;
// A and B in the gateway's region us-east5, C in europe-west4), GW_CMD (JSON
// array: the gateway's command line, to start it again), GW_PID, GW_LOG (its
// stderr, appended), OUT (folder for screenshots), DOC_SHOT (optional: where
// to write the documentation's screenshot), NEW_PID_FILE (the restarted
// gateway's pid goes there). With ONLY_TENANTS_CAPPED set, it only checks
// that the Tenants table of a gateway with 30 tenants says it shows 24.
"use strict";
const fs = require("fs");
const path = require("path");
const { spawn } = require("child_process");
const puppeteer = require("puppeteer-core");

const env = process.env;
const GW = env.GW_URL;
const OUT = env.OUT;
let failures = 0;
const ok = (what) => console.log("ok   " + what);
const fail = (what) => { console.log("FAIL " + what); failures++; };
const check = (cond, what) => (cond ? ok(what) : fail(what));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function faults(addr, body) {
	const r = await fetch(`http://${addr}/sim/faults`, { method: "POST", body: JSON.stringify(body) });
	if (!r.ok) throw new Error(`faults ${addr}: ${r.status}`);
}

// One chat completion as the tenant whose key is given (alpha's by default).
async function chat(key = "key-alpha") {
	const r = await fetch(`${GW}/v1/chat/completions`, {
		method: "POST",
		headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
		body: JSON.stringify({ model: "gemma", messages: [{ role: "user", content: "Hi" }], max_tokens: 2 }),
	});
	await r.text();
	return r.status;
}

// Polls fn in the page (every 50 ms) until it returns true; resolves to the
// milliseconds it took, or -1 after timeout_ms.
async function until(page, fn, timeout_ms, ...args) {
	const t0 = Date.now();
	try {
		await page.waitForFunction(fn, { polling: 50, timeout: timeout_ms }, ...args);
		return Date.now() - t0;
	} catch (e) {
		return -1;
	}
}

async function shot(page, name) {
	const file = path.join(OUT, name);
	await page.screenshot({ path: file, fullPage: true });
	console.log(`     screenshot ${file}`);
}

async function main() {
	fs.mkdirSync(OUT, { recursive: true });
	const profile = fs.mkdtempSync(path.join(env.TMPDIR || "/tmp", "ig-chromium-"));
	const browser = await puppeteer.launch({
		executablePath: "/usr/bin/chromium",
		headless: true,
		args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
			"--disable-background-networking", "--disable-component-update", "--disable-sync",
			`--user-data-dir=${profile}`],
	});
	const consoleErrors = [];
	let phase = "load";
	try {
		const page = await browser.newPage();
		await page.setViewport({ width: 1280, height: 900 });
		page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(`[${phase}] ${m.text()}`); });
		page.on("pageerror", (e) => consoleErrors.push(`[${phase}] page error: ${e.message}`));
		// Everything the page loads must come from the gateway itself.
		const foreign = [];
		page.on("request", (r) => { if (!r.url().startsWith(GW) && !r.url().startsWith("data:")) foreign.push(r.url()); });

		if (env.ONLY_TENANTS_CAPPED) {
			// The gateway names more tenants than a message carries: the page says so.
			console.log("== the Tenants table past its cap");
			await page.goto(`${GW}/dashboard`, { waitUntil: "load" });
			const t = await until(page, () => !!document.querySelector("#tenants-capped"), 5000);
			const note = await page.$eval("#tenants-capped", (e) => e.textContent).catch(() => "");
			const rows = await page.$$eval("#tenants tr[data-tenant]", (els) => els.length);
			check(t >= 0 && /Showing the 24 busiest of 30 tenants/.test(note) && rows === 24, `the page says it shows 24 of 30 ("${note}", ${rows} rows)`);
			await shot(page, "6-tenants-capped.png");
			check(consoleErrors.length === 0, `no console errors${consoleErrors.length ? ": " + consoleErrors.join(" | ") : ""}`);
			return;
		}

		console.log("== 1. the page loads, the regions and endpoints appear");
		const resp = await page.goto(`${GW}/dashboard`, { waitUntil: "load" });
		check(resp.status() === 200 && /text\/html/.test(resp.headers()["content-type"]), "GET /dashboard is 200 text/html");
		let t = await until(page, (a, b, c) => !!document.querySelector(`[data-endpoint="${a}"]`) &&
			!!document.querySelector(`[data-endpoint="${b}"]`) && !!document.querySelector(`[data-endpoint="${c}"]`), 5000,
			env.SIM_A, env.SIM_B, env.SIM_C);
		check(t >= 0, `the three endpoints appear (${t} ms)`);
		t = await until(page, () => document.querySelectorAll('[data-endpoint][data-state="up"]').length === 3, 5000);
		check(t >= 0, "the three endpoints show as up");
		const regions = await page.$$eval(".region", (els) => els.map((e) => e.dataset.region));
		check(regions[0] === "us-east5" && regions.includes("europe-west4"),
			`regions as columns, this gateway's first: ${regions.join(", ")}`);
		const conn = await page.$eval("#conn", (e) => e.dataset.live);
		check(conn === "1", "the stream is live");
		const shape = await page.$eval(`[data-endpoint="${env.SIM_A}"] .state`, (e) => e.textContent);
		check(/^\u25CF up$/.test(shape), `the state is text and shape, not only colour ("${shape}")`);
		await sleep(1500); // a few samples for the charts
		for (let i = 0; i < 6; i++) await chat();
		await sleep(1200);
		const lines = await page.$$eval(".chart polyline", (els) => els.filter((e) => e.getAttribute("points")).length);
		check(lines > 0, `the time series are drawn (${lines} lines)`);
		const tok = await page.$eval('svg[aria-label^="tokens/s generated"] polyline', (e) => e.getAttribute("points")).catch(() => "");
		check(tok.split(" ").length >= 2, `tokens/s is drawn from the servers' counters (${tok.split(" ").length} points)`);
		await shot(page, "1-loaded.png");
		check(consoleErrors.length === 0, "no console errors while loading");

		console.log("== 1b. per-tenant traffic: alpha, and beta over its requests_per_second");
		t = await until(page, () => !!document.querySelector('#tenants tr[data-tenant="alpha"]') &&
			!!document.querySelector('#tenants tr[data-tenant="beta"]'), 3000);
		check(t >= 0, "the Tenants table lists alpha and beta");
		check(await page.$('#tenants tr[data-tenant="anonymous"]') === null, "... and not the anonymous tenant (no api_keys)");
		const before = await page.$eval('#tenants tr[data-tenant="beta"]', (e) => Number(e.dataset.requestsTotal));
		for (let i = 0; i < 3; i++) await chat("key-alpha");
		const codes = await Promise.all([1, 2, 3, 4, 5].map(() => chat("key-beta")));
		const n429 = codes.filter((c) => c === 429).length;
		check(n429 >= 1 && codes.includes(200), `five at once as beta: ${codes.join(" ")} (over 1 request/s: 429s)`);
		t = await until(page, (b, n) => {
			const a = document.querySelector('#tenants tr[data-tenant="alpha"]');
			const r = document.querySelector('#tenants tr[data-tenant="beta"]');
			return a && r && Number(a.dataset.requestsTotal) >= 9 && Number(r.dataset.requestsTotal) >= b + 5 &&
				Number(r.dataset.shedTotal) >= n;
		}, 4000, before, n429);
		check(t >= 0, `both show their requests, beta its ${n429} sheds (${t} ms)`);
		const shedText = await page.$eval('#tenants tr[data-tenant="beta"] td[data-col="shed_s"]', (e) => e.textContent).catch(() => "");
		check(new RegExp(`total ${n429}\\b`).test(shedText), `the shed count is written ("${shedText}")`);
		t = await until(page, () => [...document.querySelectorAll('#tenants tr[data-tenant="beta"] .tstate')].some((e) => /shedding/.test(e.textContent)), 3000);
		check(t >= 0, "beta's state reads \"shedding\" while it sheds (text and shape, not colour alone)");
		const alphaReq = await page.$eval('#tenants tr[data-tenant="alpha"] td[data-col="req_s"]', (e) => e.textContent).catch(() => "");
		check(/^\d+total \d+$/.test(alphaReq), `alpha's requests are written ("${alphaReq}")`);
		t = await until(page, () => { const p = document.querySelector('#tenants tr[data-tenant="alpha"] svg.spark polyline');
			return p && p.getAttribute("points").split(" ").length >= 2; }, 3000);
		check(t >= 0, "alpha's sparkline is drawn");
		const wrapTab = await page.$eval("#tenants-wrap", (e) => e.tabIndex).catch(() => -1);
		check(wrapTab === 0, "the table is reachable from the keyboard (a focusable region)");
		const spill = await page.$eval("#tenants-wrap", (e) => e.scrollWidth - e.clientWidth).catch(() => -1);
		check(spill === 0, `the table fits a 1280 px screen without scrolling sideways (${spill} px over)`);
		await shot(page, "1-tenants.png");

		// A phone: one column, nothing wider than the screen (isMobile reloads the page).
		await page.setViewport({ width: 390, height: 844, isMobile: true });
		await sleep(1200);
		const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
		check(overflow <= 0, `on a 390 px phone screen nothing overflows sideways (${overflow} px)`);
		await shot(page, "1-phone.png");
		// Dark mode follows the system.
		const lightBg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
		await page.emulateMediaFeatures([{ name: "prefers-color-scheme", value: "dark" }]);
		await sleep(1200);
		const darkBg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
		check(lightBg !== darkBg, `dark mode changes the colours (${lightBg} -> ${darkBg})`);
		await shot(page, "1-dark.png");
		await page.emulateMediaFeatures([{ name: "prefers-color-scheme", value: "light" }]);
		await page.setViewport({ width: 1280, height: 900 });
		// The keyboard reaches the controls: Tab from the top lands on the skip link, then the Pause button.
		await page.focus("body");
		await page.keyboard.press("Tab");
		const first = await page.evaluate(() => document.activeElement && document.activeElement.className);
		await page.keyboard.press("Tab");
		const second = await page.evaluate(() => document.activeElement && document.activeElement.id);
		check(first === "skip" && second === "pause", `Tab reaches the skip link, then Pause (${first}, ${second})`);
		await page.keyboard.press("Enter");
		const pressed = await page.$eval("#pause", (e) => e.getAttribute("aria-pressed"));
		await page.keyboard.press("Enter");
		check(pressed === "true", "Enter on Pause pauses the updates");

		console.log("== 2. a health fault shows as down within two seconds, without a reload");
		phase = "health";
		await until(page, () => document.querySelector("#conn").dataset.live === "1", 5000);
		await page.evaluate(() => { window.__not_reloaded = 1; });
		const t0 = Date.now();
		await faults(env.SIM_A, { health_fail: true });
		t = await until(page, (a) => { const e = document.querySelector(`[data-endpoint="${a}"]`); return e && e.dataset.state === "down"; },
			5000, env.SIM_A);
		const took = t < 0 ? -1 : Date.now() - t0;
		check(t >= 0 && took <= 2000, `${env.SIM_A} shows down after ${took} ms (at most 2000)`);
		check(await page.evaluate(() => window.__not_reloaded === 1), "the page was not reloaded");
		const shapeDown = await page.$eval(`[data-endpoint="${env.SIM_A}"] .state`, (e) => e.textContent).catch(() => "");
		check(/\u25BC down/.test(shapeDown), `down is written and shaped ("${shapeDown}")`);
		t = await until(page, (a) => [...document.querySelectorAll('#events li[data-kind="health"]')].some((li) =>
			li.textContent.includes(a) && li.textContent.includes("up -> down")), 3000, env.SIM_A);
		check(t >= 0, "the event list shows the health change");
		await shot(page, "2-health-down.png");

		console.log("== 3. a KV-usage fault moves the bar and shows the spill");
		phase = "kv";
		await faults(env.SIM_A, { health_fail: null });
		await faults(env.SIM_B, { kv_usage: 0.9 });
		await faults(env.SIM_A, { kv_usage: 0.9 });
		t = await until(page, (b) => { const e = document.querySelector(`[data-endpoint="${b}"] .bar`); return e && Number(e.dataset.kv) >= 0.85; },
			4000, env.SIM_B);
		check(t >= 0, `the KV bar of ${env.SIM_B} moves to 90%`);
		const width = await page.$eval(`[data-endpoint="${env.SIM_B}"] .fill`, (e) => e.style.width).catch(() => "");
		check(width === "90%", `its fill is 90% wide (${width})`);
		t = await until(page, () => { const r = document.querySelector('.region[data-region="us-east5"]'); return r && r.dataset.spilled === "1"; }, 4000);
		check(t >= 0, "us-east5 shows as spilled");
		for (let i = 0; i < 8; i++) await chat();
		t = await until(page, () => { const e = document.querySelector('.region[data-region="europe-west4"] [data-share]'); return e && Number(e.dataset.share) > 0.3; }, 4000);
		check(t >= 0, "europe-west4's share of the traffic rises");
		t = await until(page, () => !!document.querySelector('#events li[data-kind="spill"]'), 3000);
		check(t >= 0, "the event list shows the spill");
		await shot(page, "3-spill.png");
		if (env.DOC_SHOT) {
			await page.evaluate(() => document.activeElement && document.activeElement.blur());
			await page.setViewport({ width: 1280, height: 1000 }); /* the pool, objectives, tenants and events */
			await sleep(300);
			await page.screenshot({ path: env.DOC_SHOT });
			console.log(`     screenshot ${env.DOC_SHOT}`);
		}
		await faults(env.SIM_A, { kv_usage: null });
		await faults(env.SIM_B, { kv_usage: null });

		console.log("== 4. the gateway restarts: the page reconnects and shows data again");
		phase = "restart";
		process.kill(Number(env.GW_PID), "SIGTERM");
		const killed = Date.now();
		let exited = -1;
		for (let i = 0; i < 100 && exited < 0; i++) {
			try { process.kill(Number(env.GW_PID), 0); await sleep(50); } catch (e) { exited = Date.now() - killed; }
		}
		check(exited >= 0, `with a dashboard open the gateway still exits at once on SIGTERM (${exited} ms)`);
		t = await until(page, () => document.querySelector("#conn").dataset.live === "0", 8000);
		check(t >= 0, "the page shows the stream lost");
		await shot(page, "4-disconnected.png");
		await sleep(1000);
		const cmd = JSON.parse(env.GW_CMD);
		const log = fs.openSync(env.GW_LOG, "a");
		const child = spawn(cmd[0], cmd.slice(1), { stdio: ["ignore", "ignore", log], detached: false });
		fs.writeFileSync(env.NEW_PID_FILE, String(child.pid));
		child.unref();
		const since = await page.evaluate(() => Number(document.body.dataset.updates || 0));
		t = await until(page, (n) => document.querySelector("#conn").dataset.live === "1" && Number(document.body.dataset.updates) > n + 1 &&
			document.querySelectorAll("[data-endpoint]").length === 3, 15000, since);
		check(t >= 0, `the page reconnected and shows the endpoints again (${t} ms)`);
		check(await page.evaluate(() => window.__not_reloaded === 1), "without a reload");
		t = await until(page, () => document.querySelectorAll('[data-endpoint][data-state="up"]').length === 3, 5000);
		check(t >= 0, "the restarted gateway's endpoints come up on the page");
		await shot(page, "5-reconnected.png");
		phase = "after";
		await sleep(1500);

		// While the gateway was down the browser's reconnects fail: those
		// network lines are expected; nothing else may be logged.
		const unexpected = consoleErrors.filter((e) => !(e.startsWith("[restart]") && /ERR_CONNECTION_REFUSED|dashboard\/events/.test(e)));
		check(unexpected.length === 0, `no console errors${unexpected.length ? ": " + unexpected.join(" | ") : ""}`);
		check(foreign.length === 0, `nothing fetched from elsewhere${foreign.length ? ": " + foreign.join(" ") : ""}`);
	} finally {
		await browser.close();
		fs.rmSync(profile, { recursive: true, force: true });
	}
	console.log(failures ? `${failures} browser checks failed` : "browser checks passed");
	process.exit(failures ? 1 : 0);
}

main().catch((e) => { console.log("FAIL the browser run: " + (e && e.stack || e)); process.exit(1); });
