// llama_cpp.mjs — infergate against llama.cpp itself (node-llama-cpp's
// prebuilt CPU build) on GGUF files that infergate-mkmodel writes.
//
//   node llama_cpp.mjs tokenize MODEL.gguf CORPUS.jsonl OURS.jsonl [CORPUS2 OURS2 ...]
//       OURS: `test_tokenizer --encode-jsonl MODEL.gguf CORPUS.jsonl`; every
//       {"text"} line must give llama.cpp's ids (special tokens parsed, no BOS).
//       {"hex"} lines (invalid UTF-8) are skipped: a JS string cannot carry them.
//   node llama_cpp.mjs generate MODEL.gguf[,MODEL.gguf...] RUN_BIN N PROMPT...
//       for each model, each PROMPT through `infergate-run --json --logprobs 5`
//       and through llama.cpp (f32 KV caches on both sides, greedy): the N
//       generated ids must be equal; prints, per model, the largest difference
//       of the top-5 log-probabilities (of the first generated token).
// Nothing is downloaded or compiled: getLlama({gpu: false, build: "never"}).
import fs from "node:fs";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";

const top = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../../..");
const require = createRequire(path.join(top, "tests/node/package.json"));
const { getLlama } = await import(require.resolve("node-llama-cpp"));

const [mode, modelPath, ...rest] = process.argv.slice(2);
const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" });
let bad = 0;

if (mode === "tokenize") {
  let failed = 0;
  const model = await llama.loadModel({ modelPath, useMmap: true });
  for (let r = 0; r + 1 < rest.length; r += 2) {
  const [corpusPath, oursPath] = [rest[r], rest[r + 1]];
  bad = 0;
  const corpus = fs.readFileSync(corpusPath, "utf8").split("\n").filter((l) => l.length).map((l) => JSON.parse(l));
  const ours = fs.readFileSync(oursPath, "utf8").split("\n").filter((l) => l.length).map((l) => JSON.parse(l));
  if (corpus.length !== ours.length) { console.log(`line count differs: ${corpus.length} vs ${ours.length}`); process.exit(1); }
  let checked = 0;
  corpus.forEach((c, i) => {
    if (c.text === undefined) return;
    const ref = Array.from(model.tokenize(c.text, true));
    checked++;
    if (JSON.stringify(ref) !== JSON.stringify(ours[i].ids)) {
      let k = 0;
      while (k < ref.length && ref[k] === ours[i].ids[k]) k++;
      if (bad++ < 10)
        console.log(`line ${i + 1} ${JSON.stringify(c.text.slice(0, 80))}: ids differ at ${k}: llama.cpp ${JSON.stringify(ref.slice(k, k + 8))} ours ${JSON.stringify(ours[i].ids.slice(k, k + 8))}`);
    }
  });
  console.log(`tokenize ${path.basename(corpusPath)}: ${checked} lines, ${bad} differ`);
  failed += bad;
  }
  bad = failed;
  await model.dispose();
} else if (mode === "generate") {
  const [runBin, nStr, ...prompts] = rest;
  const n = Number(nStr);
  for (const modelFile of modelPath.split(",")) {
  const model = await llama.loadModel({ modelPath: modelFile, useMmap: true });
  const context = await model.createContext({
    contextSize: 4096, batchSize: 4096, sequences: 1, flashAttention: false,
    experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32", threads: 2,
  });
  let maxDiff = 0, maxDiffAt = "";
  for (const prompt of prompts) {
    const r = spawnSync(runBin, ["--model", modelFile, "--prompt", prompt, "--max-tokens", String(n), "--json",
                                 "--logprobs", "5", "--ignore-eos", "--temperature", "0", "--threads", "2",
                                 "--kv-cache-dtype", "f32"],
                        { encoding: "utf8", timeout: 120000 });
    if (r.status !== 0) { console.log(`infergate-run failed: ${r.stderr}`); process.exit(1); }
    const ours = JSON.parse(r.stdout);
    const seq = context.getSequence();
    const input = [model.tokens.bos, ...Array.from(model.tokenize(prompt, true))];
    if (input.length !== ours.prompt_tokens) {
      console.log(`prompt ${JSON.stringify(prompt.slice(0, 40))}: ${input.length} tokens in llama.cpp, ${ours.prompt_tokens} ours`);
      bad++;
    }
    // greedy ids: plain evaluation (the full distribution costs a JS Map of
    // the whole vocabulary per step, so it is taken after the prompt only)
    const ref = [];
    for await (const tok of seq.evaluate(input, { temperature: 0 })) {
      ref.push(tok);
      if (ref.length >= n) break;
    }
    await seq.eraseContextTokenRanges([{ start: 0, end: seq.nextTokenIndex }]);
    for (const step of [0]) {
      const o = ours.tokens[step];
      if (!o || ref[step] !== o.id) continue;
      const ctx = [...input, ...ours.tokens.slice(0, step).map((t) => t.id)];
      for await (const out of seq.evaluateWithMetadata(ctx, { probabilities: true }, { temperature: 0 })) {
        for (const alt of o.top_logprobs) {
          const p = out.probabilities.get(alt.id);
          if (p === undefined || p <= 0) continue;
          const d = Math.abs(Math.log(p) - alt.logprob);
          if (d > maxDiff) { maxDiff = d; maxDiffAt = `${path.basename(modelFile)} step ${step}`; }
        }
        break;
      }
      await seq.eraseContextTokenRanges([{ start: 0, end: seq.nextTokenIndex }]);
    }
    await seq.dispose();
    const ourIds = ours.tokens.map((t) => t.id);
    if (JSON.stringify(ref) !== JSON.stringify(ourIds)) {
      let k = 0;
      while (k < ref.length && ref[k] === ourIds[k]) k++;
      console.log(`${path.basename(modelFile)} prompt of ${input.length} tokens: greedy differs at step ${k}: llama.cpp ${JSON.stringify(ref.slice(k, k + 5))} ours ${JSON.stringify(ourIds.slice(k, k + 5))}`);
      bad++;
    } else {
      console.log(`${path.basename(modelFile)} prompt of ${input.length} tokens: ${n} greedy tokens identical`);
    }
  }
  console.log(`largest top-5 logprob difference: ${maxDiff.toFixed(4)} (${maxDiffAt || "none"})`);
  await context.dispose();
  await model.dispose();
  }
} else {
  console.log("usage: llama_cpp.mjs tokenize|generate MODEL ...");
  process.exit(2);
}
process.exit(bad ? 1 : 0);
