// hostile.js — the misbehaving peers of gateway_hostile.sh, on loopback only.
//
//   node hostile.js upstream PORT
//       A model server that breaks HTTP's rules, chosen by the request's model:
//       s204 / s304 (bodiless, with framing headers that must not be relayed),
//       s101 (an unsolicited 101), s600 (a status beyond 599), hints (103 Early
//       Hints before a 200), hdrs (headers named x, X-I, x-inferg and an
//       x-infergate- one), gzipte (Transfer-Encoding: gzip, chunked), anything
//       else a small 200. GET /v1/models lists them.
//   node hostile.js noread PORT COUNT PATH SECONDS
//       Pipelines COUNT "GET PATH" requests (under 32 KB of them, the rest a
//       second later) and never reads, for SECONDS.
//   node hostile.js leave PORT MODEL PAD_BYTES
//       Sends a streamed chat followed by PAD_BYTES of pipelined requests, reads
//       the first answer bytes, then closes (a FIN, nothing left unread).
//   node hostile.js keepalive PORT MODEL...
//       One keep-alive connection (Node's own http client, which fails with
//       HPE_INVALID_CONSTANT on bad framing): a chat per model, in order; prints
//       "MODEL STATUS" lines, or "MODEL error CODE".
'use strict';
const net = require('net');
const http = require('http');
const [mode, portArg, ...rest] = process.argv.slice(2);
const port = Number(portArg);

function upstream() {
	const models = ['s204', 's304', 's101', 's600', 'hints', 'hdrs', 'gzipte', 'plain'];
	const answers = {
		s204: 'HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n',
		s304: 'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\nContent-Length: 7\r\n\r\n',
		s101: 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n',
		s600: 'HTTP/1.1 600 Beyond\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}',
		hints: 'HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n' +
			'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}',
		hdrs: 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nx: 1\r\nX-I: 2\r\nx-inferg: 3\r\n' +
			'x-infergate-endpoint: forged\r\nx-infergate-foo: 4\r\nContent-Length: 11\r\n\r\n{"ok":true}',
		gzipte: 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: gzip, chunked\r\n\r\n' +
			'2\r\n\x1f\x8b\r\n0\r\n\r\n',
		plain: 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}',
	};
	const list = JSON.stringify({ object: 'list', data: models.map(id => ({ id, object: 'model' })) });
	net.createServer(sock => {
		let acc = Buffer.alloc(0);
		sock.on('data', d => {
			acc = Buffer.concat([acc, d]);
			for (;;) {
				const end = acc.indexOf('\r\n\r\n');
				if (end < 0) return;
				const head = acc.slice(0, end).toString();
				const m = /content-length:\s*(\d+)/i.exec(head);
				const len = m ? Number(m[1]) : 0;
				if (acc.length < end + 4 + len) return;
				const body = acc.slice(end + 4, end + 4 + len).toString();
				acc = acc.slice(end + 4 + len);
				const line = head.split('\r\n')[0];
				if (line.startsWith('GET /v1/models')) {
					sock.write(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${list.length}\r\n\r\n${list}`);
				} else if (line.startsWith('GET ')) {
					sock.write('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
				} else {
					let model = 'plain';
					try { model = JSON.parse(body).model; } catch (e) { /* plain */ }
					sock.write(answers[model] || answers.plain);
				}
			}
		});
		sock.on('error', () => {});
	}).listen(port, '127.0.0.1');
}

function noread() {
	const [count, path, seconds] = rest;
	const req = `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`;
	// First what the server reads in one go (under 32 KB), whose answers fill
	// the socket buffers and pause the pipeline; a second later the rest, which
	// the server must then leave in the socket instead of spinning on it.
	const first = Math.min(Number(count), Math.floor(30000 / req.length));
	const s = net.connect(port, '127.0.0.1', () => {
		s.pause();
		s.write(req.repeat(first));
		setTimeout(() => s.write(req.repeat(Number(count) - first)), 1000);
		setTimeout(() => { s.destroy(); process.exit(0); }, Number(seconds) * 1000);
	});
	s.on('error', () => process.exit(0));
}

function leave() {
	const [model, pad] = rest;
	const body = JSON.stringify({ model, stream: true, max_tokens: 2000,
		messages: [{ role: 'user', content: 'Tell me a long story.' }] });
	const s = net.connect(port, '127.0.0.1', () => {
		s.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
			`Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}` +
			'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(Math.ceil(Number(pad) / 34)));
	});
	let got = '';
	s.on('data', d => {
		got += d.toString();
		if (got.includes('data: {') && !s.ended) {
			s.ended = true;
			console.log('stream started');
			s.end(); // a FIN; reading goes on so nothing is left unread
		}
	});
	s.on('close', () => process.exit(0));
	s.on('error', () => process.exit(0));
	setTimeout(() => process.exit(0), 10000);
}

async function keepalive() {
	const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
	for (const model of rest) {
		const out = await new Promise(resolve => {
			const body = JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 3 });
			const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/v1/chat/completions', agent,
				headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, res => {
				let b = '';
				res.on('data', d => { b += d; });
				res.on('end', () => resolve(`${model} ${res.statusCode} ${JSON.stringify(res.headers)} ${b.length}`));
				res.on('error', e => resolve(`${model} error ${e.code}`));
			});
			req.on('error', e => resolve(`${model} error ${e.code}`));
			req.setTimeout(5000, () => { req.destroy(); resolve(`${model} error timeout`); });
			req.end(body);
		});
		console.log(out);
	}
	agent.destroy();
}

if (mode === 'upstream') upstream();
else if (mode === 'noread') noread();
else if (mode === 'leave') leave();
else if (mode === 'keepalive') keepalive();
else { console.error('usage: hostile.js upstream|noread|leave|keepalive PORT ...'); process.exit(2); }
