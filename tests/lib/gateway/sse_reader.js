// sse_reader.js — a small streaming client for the gateway tests: POSTs a JSON
// body, reads the answer as it arrives and prints one JSON summary line:
// {status, headers, first_data_ms, total_ms, events, done, errors, text, aborted}.
//   node sse_reader.js URL BODY [--abort-after N] [--timeout MS]
// With --abort-after N it destroys the connection after N data events (a
// client that leaves) and reports aborted: true.
'use strict';
const http = require('http');
const args = process.argv.slice(2);
const url = new URL(args[0]);
const body = args[1];
let abortAfter = -1, timeoutMs = 30000;
for (let i = 2; i < args.length; i++) {
  if (args[i] === '--abort-after') abortAfter = Number(args[++i]);
  else if (args[i] === '--timeout') timeoutMs = Number(args[++i]);
}
const t0 = process.hrtime.bigint();
const ms = () => Number(process.hrtime.bigint() - t0) / 1e6;
const out = { status: 0, headers: {}, first_data_ms: null, total_ms: null, events: 0, done: false, errors: [], text: '', aborted: false };
let pending = '';
let finished = false;
function finish() {
  if (finished) return;
  finished = true;
  out.total_ms = ms();
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(0);
}
const req = http.request({ method: 'POST', hostname: url.hostname, port: url.port, path: url.pathname,
  headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
  out.status = res.statusCode;
  out.headers = res.headers;
  res.setEncoding('utf8');
  res.on('data', (chunk) => {
    pending += chunk;
    let i;
    while ((i = pending.indexOf('\n\n')) >= 0) {
      const ev = pending.slice(0, i);
      pending = pending.slice(i + 2);
      for (const line of ev.split('\n')) {
        if (!line.startsWith('data: ')) continue;
        const data = line.slice(6);
        if (out.first_data_ms === null) out.first_data_ms = ms();
        if (data === '[DONE]') { out.done = true; continue; }
        out.events++;
        try {
          const j = JSON.parse(data);
          if (j.error) out.errors.push(j.error);
          else if (j.choices && j.choices[0]) {
            const c = j.choices[0];
            out.text += (c.delta && c.delta.content) || c.text || '';
          }
        } catch (e) { out.errors.push({ message: 'unparsable event: ' + data.slice(0, 80) }); }
        if (abortAfter >= 0 && out.events >= abortAfter && !out.aborted) {
          out.aborted = true;
          req.destroy();
          finish();
          return;
        }
      }
    }
  });
  res.on('end', finish);
  res.on('error', finish);
  res.on('aborted', finish);
});
req.on('error', (e) => { out.errors.push({ message: String(e) }); finish(); });
req.setTimeout(timeoutMs, () => { out.errors.push({ message: 'timeout' }); req.destroy(); finish(); });
req.end(body);
