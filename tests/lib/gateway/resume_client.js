// resume_client.js — reads one streamed answer through the gateway and prints a
// JSON summary for the resume tests:
// {status, endpoint, text, chunks, roles, finishes, finish_reason, usage, usages,
//  ids, models, createds, errors, done, exception, ms}
//   node resume_client.js openai BASE_URL BODY_JSON   the official `openai` client
//   node resume_client.js raw    BASE_URL BODY_JSON   plain HTTP, every event counted
//   ... raw BASE_URL BODY_JSON --kill-after N PID      SIGKILLs PID after N chunks with text
// BODY_JSON has `messages` (chat) or `prompt` (completions). ids, models and createds
// list the distinct values seen; done counts [DONE] events (raw only: the client
// library consumes it).
'use strict';
const [mode, base, bodyText, opt, killAfter, killPid] = process.argv.slice(2);
const body = JSON.parse(bodyText);
const chat = !!body.messages;
const t0 = Date.now();
const out = { status: 0, endpoint: null, text: '', chunks: 0, roles: 0, finishes: 0, finish_reason: null, usage: null,
  usages: 0, text_chunks: 0, killed_at: null, ids: [], models: [], createds: [], errors: [], done: 0, exception: null, ms: 0 };
const add = (list, v) => { if (!list.includes(v)) list.push(v); };

function take(c) {
  if (c.error) { out.errors.push(c.error); return; }
  out.chunks++;
  add(out.ids, c.id); add(out.models, c.model); add(out.createds, c.created);
  if (c.usage) { out.usage = c.usage; out.usages++; }
  for (const ch of c.choices || []) {
    if (ch.delta && ch.delta.role) out.roles++;
    const t = (chat ? ch.delta && ch.delta.content : ch.text) || '';
    out.text += t;
    if (t && opt === '--kill-after' && ++out.text_chunks === Number(killAfter)) {
      try { process.kill(Number(killPid), 'SIGKILL'); out.killed_at = out.text.length; } catch (e) { out.exception = 'kill: ' + e; }
    }
    if (ch.finish_reason) { out.finishes++; out.finish_reason = ch.finish_reason; }
  }
}

function print() { out.ms = Date.now() - t0; process.stdout.write(JSON.stringify(out) + '\n'); process.exit(0); }

async function viaOpenAI() {
  const OpenAI = require('openai');
  const client = new OpenAI({ baseURL: base + '/v1', apiKey: 'unused', maxRetries: 0, timeout: 60000 });
  const api = chat ? client.chat.completions : client.completions;
  const { data: stream, response } = await api.create(body).withResponse();
  out.status = response.status;
  out.endpoint = response.headers.get('x-infergate-endpoint');
  for await (const c of stream) take(c);
}

function viaHttp() {
  const http = require('http');
  const url = new URL(base + (chat ? '/v1/chat/completions' : '/v1/completions'));
  return new Promise((resolve) => {
    const req = http.request({ method: 'POST', hostname: url.hostname, port: url.port, path: url.pathname,
      headers: { 'content-type': 'application/json' } }, (res) => {
      out.status = res.statusCode;
      out.endpoint = res.headers['x-infergate-endpoint'] || null;
      res.setEncoding('utf8');
      let pending = '';
      res.on('data', (s) => {
        pending += s;
        let i;
        while ((i = pending.indexOf('\n\n')) >= 0) {
          const ev = pending.slice(0, i);
          pending = pending.slice(i + 2);
          for (const line of ev.split('\n')) {
            if (!line.startsWith('data: ')) continue;
            const d = line.slice(6);
            if (d === '[DONE]') { out.done++; continue; }
            try { take(JSON.parse(d)); } catch (e) { out.errors.push({ message: 'unparsable event: ' + d.slice(0, 80) }); }
          }
        }
      });
      res.on('end', () => { if (pending.trim()) out.errors.push({ message: 'unfinished event at the end' }); resolve(); });
      res.on('error', (e) => { out.exception = String(e); resolve(); });
    });
    req.on('error', (e) => { out.exception = String(e); resolve(); });
    req.setTimeout(60000, () => { out.exception = 'timeout'; req.destroy(); resolve(); });
    req.end(JSON.stringify(body));
  });
}

(mode === 'openai' ? viaOpenAI() : viaHttp()).then(print, (e) => { out.exception = String(e && e.message || e); print(); });
