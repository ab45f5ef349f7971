// openai_client.js — the official OpenAI client (npm `openai`) through the
// gateway: a chat completion, a streamed chat completion with usage, a
// completion, models.list and models.retrieve, an unknown model raising
// NotFoundError, and a missing model answered (one pool; SEVERAL_POOLS=1: a 400).
// Prints one line per check ("ok ..." / "FAIL ...") and exits 1 on a failure.
//   node openai_client.js BASE_URL MODEL
'use strict';
const OpenAI = require('openai');
const [base, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL: base + '/v1', apiKey: 'unused', maxRetries: 0, timeout: 20000 });
let failed = 0;
const check = (cond, what) => { console.log((cond ? 'ok   ' : 'FAIL ') + what); if (!cond) failed++; };

(async () => {
  const msgs = [{ role: 'user', content: 'What is the capital of France?' }];
  const { data: chat, response } = await client.chat.completions.create({ model, messages: msgs, max_tokens: 8 }).withResponse();
  check(chat.object === 'chat.completion' && chat.choices[0].message.content.length > 0, 'chat.completions.create answers');
  check(chat.usage && chat.usage.completion_tokens === 8, 'usage counts 8 completion tokens');
  check(!!response.headers.get('x-infergate-endpoint'), 'x-infergate-endpoint: ' + response.headers.get('x-infergate-endpoint'));

  const stream = await client.chat.completions.create({ model, messages: msgs, max_tokens: 8, stream: true, stream_options: { include_usage: true } });
  let text = '', chunks = 0, finish = null, usage = null;
  for await (const c of stream) {
    chunks++;
    if (c.choices[0]) { text += c.choices[0].delta.content || ''; finish = c.choices[0].finish_reason || finish; }
    if (c.usage) usage = c.usage;
  }
  check(chunks >= 9 && text.length > 0 && finish === 'length', `a stream of ${chunks} chunks, finish_reason ${finish}`);
  check(usage && usage.completion_tokens === 8, 'the streamed usage chunk arrives');

  const comp = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 4 });
  check(comp.object === 'text_completion' && comp.choices[0].text.length > 0, 'completions.create answers');

  const models = [];
  for await (const m of client.models.list()) models.push(m.id);
  check(models.includes(model), 'models.list includes ' + model);
  const card = await client.models.retrieve(model);
  check(card.id === model && card.object === 'model', 'models.retrieve ' + model);
  try {
    await client.models.retrieve('no/such-model');
    check(false, 'an unknown model id raises');
  } catch (e) {
    check(e instanceof OpenAI.NotFoundError, 'models.retrieve of an unknown id raises NotFoundError: ' + e.message);
  }

  try {
    await client.chat.completions.create({ model: 'no-such-model', messages: msgs });
    check(false, 'an unknown model raises');
  } catch (e) {
    check(e instanceof OpenAI.NotFoundError && /does not exist/.test(e.message), 'an unknown model raises NotFoundError: ' + e.message);
  }
  if (process.env.SEVERAL_POOLS) {
    // Several pools on the path: the client must name the model (400).
    try {
      await client.chat.completions.create({ messages: msgs, max_tokens: 4 });
      check(false, 'a missing model raises with several pools');
    } catch (e) {
      check(e instanceof OpenAI.BadRequestError && /is required/.test(e.message), 'a missing model with several pools raises BadRequestError: ' + e.message);
    }
  } else {
    // One pool: a request without model goes to it, as vLLM and llama.cpp default it.
    const nomodel = await client.chat.completions.create({ messages: msgs, max_tokens: 4 });
    check(nomodel.object === 'chat.completion' && nomodel.model === model && nomodel.usage.completion_tokens === 4,
      'a missing model is answered by the only pool\'s server: ' + nomodel.model);
  }
  process.exit(failed ? 1 : 0);
})().catch((e) => { console.log('FAIL ' + e); process.exit(1); });
