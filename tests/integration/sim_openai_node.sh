#!/usr/bin/env bash
# The official OpenAI client (npm openai, tests/node/node_modules) against
# infergate-sim: chat and completions, whole and streamed (with usage), and the
# typed errors for 404 and 400. Also a stream cut by the close fault surfaces
# as an error in the client, not as a clean end.
. "$(dirname "$0")/../lib/sim.sh"
command -v node >/dev/null || fail "node not installed"
[ -d "$IG_TOP/tests/node/node_modules/openai" ] || fail "tests/node/node_modules/openai missing (make deps)"
start_sim P --model sim-model --itl-ms 2 --ttft-ms 5
cat >"$SIM_TMP/check.cjs" <<'JS'
const OpenAI = require(process.env.IG_TOP + "/tests/node/node_modules/openai");
const assert = require("assert");
const client = new OpenAI({ baseURL: `http://127.0.0.1:${process.env.PORT}/v1`, apiKey: "none", maxRetries: 0, timeout: 10000 });
const say = (m) => console.log("ok   " + m);
(async () => {
  const models = await client.models.list();
  assert.deepStrictEqual(models.data.map((m) => m.id), ["sim-model"]);
  say("models.list");

  const msgs = [{ role: "user", content: "hello from the openai client" }];
  const whole = await client.chat.completions.create({ model: "sim-model", messages: msgs, max_tokens: 9 });
  assert.ok(whole.id.startsWith("chatcmpl-"));
  assert.strictEqual(whole.choices[0].finish_reason, "length");
  assert.strictEqual(whole.usage.completion_tokens, 9);
  say(`chat.completions.create: "${whole.choices[0].message.content}"`);

  const stream = await client.chat.completions.create({ model: "sim-model", messages: msgs, max_tokens: 9,
    stream: true, stream_options: { include_usage: true } });
  let text = "", roles = 0, finishes = 0, usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      if (c.delta.role) roles++;
      if (c.delta.content) text += c.delta.content;
      if (c.finish_reason) finishes++;
    }
  }
  assert.strictEqual(roles, 1);
  assert.strictEqual(finishes, 1);
  assert.strictEqual(text, whole.choices[0].message.content);
  assert.deepStrictEqual(usage, whole.usage);
  say("chat stream: one role chunk, one finish, usage, same text as whole");

  const comp = await client.completions.create({ model: "sim-model", prompt: "Once upon a time", max_tokens: 6 });
  assert.strictEqual(comp.usage.completion_tokens, 6);
  let ctext = "";
  for await (const chunk of await client.completions.create({ model: "sim-model", prompt: "Once upon a time", max_tokens: 6, stream: true }))
    ctext += chunk.choices[0]?.text ?? "";
  assert.strictEqual(ctext, comp.choices[0].text);
  say(`completions whole and streamed: "${ctext}"`);

  await assert.rejects(client.chat.completions.create({ model: "nope", messages: msgs }),
    (e) => e instanceof OpenAI.NotFoundError && /does not exist/.test(e.message));
  say("unknown model: NotFoundError");
  await assert.rejects(client.chat.completions.create({ model: "sim-model", messages: msgs, top_p: 0 }),
    (e) => e instanceof OpenAI.BadRequestError);
  say("top_p 0: BadRequestError");

  await fetch(`http://127.0.0.1:${process.env.PORT}/sim/faults`, { method: "POST", body: JSON.stringify({ close_after_chunks: 4, close_count: 1 }) });
  let got = "", threw = false;
  try {
    for await (const chunk of await client.chat.completions.create({ model: "sim-model", messages: msgs, max_tokens: 9, stream: true }))
      got += chunk.choices[0]?.delta?.content ?? "";
  } catch (e) { threw = true; }
  assert.ok(threw, "a cut stream must not end cleanly");
  assert.ok(whole.choices[0].message.content.startsWith(got) && got.length > 0);
  say(`cut stream: the client sees an error after "${got}"`);
})().catch((e) => { console.error("FAIL:", e); process.exit(1); });
JS
PORT=$P IG_TOP="$IG_TOP" timeout 60 node "$SIM_TMP/check.cjs" || fail "openai client checks"
