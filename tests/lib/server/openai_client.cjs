// The official OpenAI client (npm openai) against infergate-server: models
// (list, retrieve), chat and completions, whole and streamed, with usage and
// logprobs, logit_bias and min_tokens, and the typed errors (404 unknown model,
// 400 over the context, tools, JSON mode). PORT and IG_TOP from
// the environment; API_KEY, when set, is the server's --api-key.
const OpenAI = require(process.env.IG_TOP + "/tests/node/node_modules/openai");
const assert = require("assert");
const key = process.env.API_KEY || "none";
const client = new OpenAI({ baseURL: `http://127.0.0.1:${process.env.PORT}/v1`, apiKey: key, maxRetries: 0, timeout: 120000 });
const say = (m) => console.log("ok   " + m);
(async () => {
  if (process.env.API_KEY) {
    const wrong = new OpenAI({ baseURL: `http://127.0.0.1:${process.env.PORT}/v1`, apiKey: key + "x", maxRetries: 0 });
    await assert.rejects(wrong.models.list(), (e) => e instanceof OpenAI.AuthenticationError && e.status === 401);
    await assert.rejects(wrong.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "hi" }] }),
      (e) => e instanceof OpenAI.AuthenticationError);
    say("--api-key: a wrong key is an AuthenticationError (401); the right one is used below");
  }
  const models = await client.models.list();
  assert.deepStrictEqual(models.data.map((m) => m.id), ["tiny"]);
  const card = await client.models.retrieve("tiny");
  assert.strictEqual(card.id, "tiny");
  assert.strictEqual(card.object, "model");
  await assert.rejects(client.models.retrieve("no/such"), (e) => e instanceof OpenAI.NotFoundError);
  say("models.list, models.retrieve (and NotFoundError for an unknown id)");

  const msgs = [{ role: "user", content: "hello from the openai client" }];
  const whole = await client.chat.completions.create({ model: "tiny", messages: msgs, max_tokens: 8, temperature: 0,
    logprobs: true, top_logprobs: 3 });
  assert.ok(whole.id.startsWith("chatcmpl-"));
  assert.strictEqual(whole.choices[0].finish_reason, "length");
  assert.strictEqual(whole.usage.completion_tokens, 8);
  assert.strictEqual(whole.choices[0].logprobs.content.length, 8);
  assert.strictEqual(whole.choices[0].logprobs.content[0].top_logprobs.length, 3);
  say(`chat.completions.create with logprobs: ${JSON.stringify(whole.choices[0].message.content)}`);

  const stream = await client.chat.completions.create({ model: "tiny", messages: msgs, max_tokens: 8, temperature: 0,
    stream: true, stream_options: { include_usage: true }, logprobs: true });
  let text = "", roles = 0, finishes = 0, usage = null, lps = 0;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      if (c.delta.role) roles++;
      if (c.delta.content) text += c.delta.content;
      if (c.logprobs && c.logprobs.content) lps += c.logprobs.content.length;
      if (c.finish_reason) finishes++;
    }
  }
  assert.strictEqual(roles, 1);
  assert.strictEqual(finishes, 1);
  assert.strictEqual(lps, 8);
  assert.strictEqual(text, whole.choices[0].message.content);
  assert.deepStrictEqual([usage.prompt_tokens, usage.completion_tokens], [whole.usage.prompt_tokens, 8]);
  say("chat stream: one role chunk, same text, 8 logprobs, one finish, usage");

  const comp = await client.completions.create({ model: "tiny", prompt: "Once upon a time", max_tokens: 6, temperature: 0, logprobs: 2 });
  assert.ok(comp.id.startsWith("cmpl-"));
  assert.strictEqual(comp.choices[0].logprobs.tokens.length, 6);
  assert.strictEqual(comp.usage.completion_tokens, 6);
  const cstream = await client.completions.create({ model: "tiny", prompt: "Once upon a time", max_tokens: 6, temperature: 0,
    stream: true, stream_options: { include_usage: true } });
  let ctext = "", cusage = null;
  for await (const chunk of cstream) {
    if (chunk.usage) cusage = chunk.usage;
    for (const c of chunk.choices) ctext += c.text;
  }
  assert.strictEqual(ctext, comp.choices[0].text);
  assert.strictEqual(cusage.completion_tokens, 6);
  say(`completions whole and streamed: ${JSON.stringify(ctext)}`);

  await assert.rejects(client.chat.completions.create({ model: "nope", messages: msgs }),
    (e) => e instanceof OpenAI.NotFoundError && /does not exist/.test(e.message));
  await assert.rejects(client.chat.completions.create({ model: "tiny", messages: msgs, max_tokens: 100000 }),
    (e) => e instanceof OpenAI.BadRequestError && /maximum context length/.test(e.message));
  say("NotFoundError and BadRequestError typed by the client");

  const biased = await client.chat.completions.create({ model: "tiny", messages: msgs, max_tokens: 6,
    min_tokens: 6, logit_bias: { "1": 100, "106": 100 } });
  assert.strictEqual(biased.usage.completion_tokens, 6);   // EOS held back: max_tokens reached
  assert.strictEqual(biased.choices[0].finish_reason, "length");
  await assert.rejects(client.chat.completions.create({ model: "tiny", messages: msgs,
    tools: [{ type: "function", function: { name: "f", parameters: { type: "object", properties: {} } } }] }),
    (e) => e instanceof OpenAI.BadRequestError && /tool/.test(e.message));
  await assert.rejects(client.chat.completions.create({ model: "tiny", messages: msgs, response_format: { type: "json_object" } }),
    (e) => e instanceof OpenAI.BadRequestError && /guided decoding/.test(e.message));
  say("logit_bias and min_tokens pass through the client; tools and JSON mode are a BadRequestError");
})().catch((e) => { console.error("FAIL:", e); process.exit(1); });
