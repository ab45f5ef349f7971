// gen_random.js — writes N random lines ({"text": ...} JSONL) mixing the kinds of
// text a tokenizer gets wrong: runs of spaces, newlines and tabs, "▁", added and
// special tokens, byte-fallback characters, emoji with joiners, CJK, combining
// marks. Deterministic for a seed:  node gen_random.js SEED N > out.jsonl
"use strict";
const seed = Number(process.argv[2] || 1), n = Number(process.argv[3] || 200);
let s = seed >>> 0;
const rnd = () => { // mulberry32
  s = (s + 0x6d2b79f5) >>> 0;
  let t = s;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const pick = (a) => a[Math.floor(rnd() * a.length)];
const frags = [
  " ", "  ", "   ", "\n", "\n\n", "\t", "\t\t", "▁", "▁▁", "\r\n",
  "the", "The", " of", "ing", "tion", "Hello", "world", "foo_bar", "x", "ab", "0", "42", "3.14", "-", ".", ",", "!", "?",
  "(", ")", "{", "}", "<", ">", "</", "/>", "<b>", "</b>", "<s>", "<td>", "<bos>", "<eos>", "<start_of_turn>",
  "<end_of_turn>", "<start_of_image>", "<unused7>", "<mask>", "[multimodal]", "<start_of", "turn>",
  "é", "e\u0301", "ñ", "ß", "ø", "中", "文", "日本", "한", "ア", "ー", "ي", "ש", "Я", "ж", "Ω", "∑", "→",
  "😀", "👍", "🏽", "\u200d", "👩", "🚀", "\ufe0f", "🇫", "🇷", "\u00a0", "\u3000", "\u200b", "\u{1f9ff}",
];
const randomCodePoint = () => {
  const ranges = [[0x20, 0x7e], [0xa0, 0x2ff], [0x300, 0x36f], [0x400, 0x4ff], [0x4e00, 0x9fff], [0xac00, 0xd7a3],
                  [0x1f300, 0x1faff], [0x10000, 0x1ffff], [0xe0000, 0xe007f], [0xf0000, 0xf00ff], [0x2000, 0x2bff]];
  const [a, b] = pick(ranges);
  return String.fromCodePoint(a + Math.floor(rnd() * (b - a + 1)));
};
for (let i = 0; i < n; i++) {
  const len = 1 + Math.floor(rnd() * (rnd() < 0.1 ? 400 : 40));
  let t = "";
  for (let k = 0; k < len; k++) t += rnd() < 0.75 ? pick(frags) : randomCodePoint();
  process.stdout.write(JSON.stringify({ text: t }) + "\n");
}
