// vllm_apis.cjs — the official OpenAI client (npm openai) and plain fetch
// against every API family of vLLM's server besides chat and completions:
// embeddings (float and the client's default base64), the Responses API
// (whole, streamed as typed events, retrieved, cancel refused), audio
// transcriptions and translations (a WAV generated here), tokenize and
// detokenize, score, rerank (three paths), pooling, classify, /ping.
// Used against infergate-sim directly and through the gateway.
//
//   node vllm_apis.cjs BASE_URL MODEL     (BASE_URL without /v1)
// Prints "ok   ..." per check; exits 1 on the first failure.
const OpenAI = require(process.env.IG_TOP + "/tests/node/node_modules/openai");
const { toFile } = require(process.env.IG_TOP + "/tests/node/node_modules/openai");
const assert = require("assert");
const base = process.argv[2], model = process.argv[3];
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: process.env.API_KEY || "none", maxRetries: 0, timeout: 15000 });
const say = (m) => console.log("ok   " + m);
const headers = { "content-type": "application/json" };
if (process.env.API_KEY) headers.authorization = `Bearer ${process.env.API_KEY}`;
async function post(path, body) {
  const r = await fetch(base + path, { method: "POST", headers, body: JSON.stringify(body) });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch (e) { /* not JSON */ }
  return { status: r.status, json, text, headers: r.headers };
}
// A 16-bit 16 kHz mono WAV of `seconds` of a 440 Hz tone.
function wav(seconds) {
  const n = Math.round(16000 * seconds), b = Buffer.alloc(44 + 2 * n);
  b.write("RIFF", 0); b.writeUInt32LE(36 + 2 * n, 4); b.write("WAVE", 8); b.write("fmt ", 12);
  b.writeUInt32LE(16, 16); b.writeUInt16LE(1, 20); b.writeUInt16LE(1, 22); b.writeUInt32LE(16000, 24);
  b.writeUInt32LE(32000, 28); b.writeUInt16LE(2, 32); b.writeUInt16LE(16, 34); b.write("data", 36); b.writeUInt32LE(2 * n, 40);
  for (let i = 0; i < n; i++) b.writeInt16LE(Math.round(8000 * Math.sin(2 * Math.PI * 440 * i / 16000)), 44 + 2 * i);
  return b;
}
const norm = (v) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));

(async () => {
  // ---- embeddings
  const e1 = await client.embeddings.create({ model, input: ["the cat sat", "the cat sat", "quantum flux capacitor"] });
  assert.strictEqual(e1.data.length, 3);
  assert.ok(Array.isArray(e1.data[0].embedding) && e1.data[0].embedding.length > 0);
  assert.ok(Math.abs(norm(e1.data[0].embedding) - 1) < 1e-3, "unit length");
  assert.deepStrictEqual(e1.data[0].embedding, e1.data[1].embedding);
  assert.notDeepStrictEqual(e1.data[0].embedding, e1.data[2].embedding);
  assert.strictEqual(e1.usage.prompt_tokens, 9);
  say(`embeddings.create (base64 by default): ${e1.data.length} vectors of ${e1.data[0].embedding.length}`);
  const e2 = await client.embeddings.create({ model, input: "the cat sat", encoding_format: "float", dimensions: 16 });
  assert.strictEqual(e2.data[0].embedding.length, 16);
  say("embeddings.create float, dimensions 16");
  await assert.rejects(client.embeddings.create({ model: "no-such-model", input: "x" }), (err) => err.status === 404);
  await assert.rejects(client.embeddings.create({ model, input: 42 }), (err) => err.status === 400);
  say("embeddings: unknown model 404, bad input 400");

  // ---- the Responses API
  const r1 = await client.responses.create({ model, input: "Tell me about the sea.", max_output_tokens: 12 });
  assert.ok(r1.id.startsWith("resp_"));
  assert.strictEqual(r1.status, "completed");
  assert.ok(r1.output_text.length > 0);
  assert.ok(r1.usage.output_tokens >= 1 && r1.usage.output_tokens <= 12);
  say(`responses.create: "${r1.output_text}"`);
  const r2 = await client.responses.retrieve(r1.id);
  assert.strictEqual(r2.id, r1.id);
  assert.strictEqual(r2.output[0].content[0].text, r1.output_text);
  say("responses.retrieve");
  await assert.rejects(client.responses.cancel(r1.id), (err) => err.status === 400);
  await assert.rejects(client.responses.retrieve("resp_0000000000000000"), (err) => err.status === 404);
  say("responses.cancel of a finished response 400; unknown id 404");
  const stream = await client.responses.create({ model, input: "Tell me about the sea.", max_output_tokens: 12, stream: true });
  const types = [];
  let text = "", done = null;
  const t0 = Date.now(), gaps = [];
  let last = t0;
  for await (const ev of stream) {
    types.push(ev.type);
    if (ev.type === "response.output_text.delta") { text += ev.delta; gaps.push(Date.now() - last); last = Date.now(); }
    if (ev.type === "response.completed") done = ev.response;
  }
  assert.strictEqual(types[0], "response.created");
  assert.strictEqual(types[types.length - 1], "response.completed");
  for (const t of ["response.in_progress", "response.output_item.added", "response.content_part.added",
    "response.output_text.done", "response.content_part.done", "response.output_item.done"]) assert.ok(types.includes(t), t);
  assert.strictEqual(text, r1.output_text, "the stream's text is the whole answer's");
  assert.strictEqual(done.output[0].content[0].text, text);
  say(`responses.create stream: ${types.length} events, ${types.filter((t) => t.endsWith(".delta")).length} deltas`);
  if (process.env.MIN_GAP_MS) {
    const spread = last - t0;
    assert.ok(spread >= Number(process.env.MIN_GAP_MS), `deltas arrive over time, not at once (${spread} ms)`);
    say(`the deltas arrived over ${spread} ms (streamed, not buffered)`);
  }
  const r3 = await client.responses.create({ model, input: [{ role: "user", content: [{ type: "input_text", text: "Tell me about the sea." }] }],
    instructions: "Be brief.", max_output_tokens: 4 });
  assert.strictEqual(r3.instructions, "Be brief.");
  say("responses.create with message items and instructions");

  // ---- audio
  const tr = await client.audio.transcriptions.create({ model, file: await toFile(wav(2), "tone.wav", { type: "audio/wav" }) });
  assert.ok(typeof tr.text === "string" && tr.text.trim().split(/\s+/).length === 5, tr.text);
  const tr2 = await client.audio.transcriptions.create({ model, file: await toFile(wav(2), "tone.wav", { type: "audio/wav" }) });
  assert.strictEqual(tr2.text, tr.text);
  say(`audio.transcriptions.create: "${tr.text}"`);
  const tl = await client.audio.translations.create({ model, file: await toFile(wav(1), "tone.wav", { type: "audio/wav" }), response_format: "text" });
  assert.ok(typeof tl === "string" && tl.length > 0);
  say(`audio.translations.create (text): "${String(tl).trim()}"`);
  await assert.rejects(client.audio.transcriptions.create({ model: "no-such-model", file: await toFile(wav(1), "a.wav") }),
    (err) => err.status === 404);
  say("audio: unknown model in the form 404");

  // ---- tokenize, detokenize
  const tk = await post("/tokenize", { model, prompt: "the cat sat on the mat" });
  assert.strictEqual(tk.status, 200);
  assert.strictEqual(tk.json.count, 6);
  assert.strictEqual(tk.json.tokens[0], tk.json.tokens[4]);
  const dk = await post("/detokenize", { model, tokens: tk.json.tokens });
  assert.strictEqual(dk.status, 200);
  assert.strictEqual(dk.json.prompt, "the cat sat on the mat");
  say("tokenize/detokenize round trip");
  const tm = await post("/tokenize", { model, messages: [{ role: "user", content: "hi there" }] });
  assert.strictEqual(tm.json.count, 2);
  assert.strictEqual((await post("/detokenize", { model, tokens: [2147483600] })).status, 400);
  say("tokenize messages; detokenize of an unknown id 400");

  // ---- score, rerank, pooling, classify
  const sc = await post("/score", { model, text_1: "the cat sat", text_2: ["the cat sat", "quantum flux capacitor"] });
  assert.strictEqual(sc.status, 200);
  assert.strictEqual(sc.json.data.length, 2);
  assert.ok(Math.abs(sc.json.data[0].score - 1) < 1e-6 && sc.json.data[1].score < sc.json.data[0].score);
  assert.strictEqual((await post("/v1/score", { model, text_1: ["a", "b"], text_2: ["a", "b", "c"] })).status, 400);
  say("score (and /v1/score refuses mismatched lists)");
  for (const p of ["/rerank", "/v1/rerank", "/v2/rerank"]) {
    const rr = await post(p, { model, query: "the cat sat", documents: ["quantum flux capacitor", "the cat sat", { text: "a dog ran" }], top_n: 2 });
    assert.strictEqual(rr.status, 200, p);
    assert.strictEqual(rr.json.results.length, 2);
    assert.strictEqual(rr.json.results[0].index, 1);
    assert.strictEqual(rr.json.results[0].document.text, "the cat sat");
    assert.ok(rr.json.results[0].relevance_score >= rr.json.results[1].relevance_score);
  }
  say("rerank on /rerank, /v1/rerank, /v2/rerank");
  const pl = await post("/pooling", { model, input: "the cat sat" });
  assert.strictEqual(pl.status, 200);
  assert.ok(pl.json.data[0].data.length > 0);
  const cl = await post("/classify", { model, input: ["good", "bad"] });
  assert.strictEqual(cl.status, 200);
  assert.strictEqual(cl.json.data.length, 2);
  assert.ok(["positive", "negative"].includes(cl.json.data[0].label));
  say("pooling, classify");
  const ping = await fetch(base + "/ping");
  assert.strictEqual(ping.status, 200);
  say("/ping");
})().catch((err) => {
  console.log("FAIL " + (err && err.stack ? err.stack : err));
  process.exit(1);
});
