#!/usr/bin/env python3
"""resume_check.py PORT [N]: greedy continuations reproduce an uninterrupted run.

For N prompts: a greedy chat run of 30 tokens (streamed, so the cut falls where
a gateway would cut: at a chunk boundary); then, for several cut points, the
request again with an assistant message holding the text streamed so far,
continue_final_message true and add_generation_prompt false, and the token
budget reduced by what was streamed. The first part plus the continuation
must equal the uninterrupted text, byte for byte. The continuation's usage
counts the replayed text as prompt (as vLLM counts the rendered prompt): its
prompt_tokens less the original prompt's (the tokens replayed) plus its
completion_tokens give the uninterrupted run's completion_tokens. Exits 1 on a
mismatch."""
import json, sys, urllib.request

port = int(sys.argv[1])
n = int(sys.argv[2]) if len(sys.argv) > 2 else 6


def stream(body, usage):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions",
                                 data=json.dumps(dict(body, stream=True, stream_options={"include_usage": True})).encode(),
                                 headers={"Content-Type": "application/json"})
    pieces = []
    with urllib.request.urlopen(req, timeout=120) as r:
        for line in r:
            line = line.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            d = json.loads(line[6:])
            if d.get("usage"):
                usage.update(d["usage"])
            for c in d.get("choices", []):
                if c["delta"].get("content"):
                    pieces.append(c["delta"]["content"])
    return pieces


bad = 0
for i in range(n):
    msgs = [{"role": "user", "content": f"Story {i}: a {['cat', 'dog', 'tree', 'boat'][i % 4]} walks home."}]
    full_usage = {}
    full = stream({"messages": msgs, "max_tokens": 30, "temperature": 0}, full_usage)
    text = "".join(full)
    for cut in (1, len(full) // 3, len(full) // 2, len(full) - 2):
        if cut < 1 or cut >= len(full):
            continue
        head = "".join(full[:cut])
        usage = {}
        rest = stream({"messages": msgs + [{"role": "assistant", "content": head}], "max_tokens": 30 - cut,
                       "temperature": 0, "continue_final_message": True, "add_generation_prompt": False}, usage)
        if head + "".join(rest) != text:
            bad += 1
            print(f"MISMATCH prompt {i} cut {cut}:\n  {text!r}\n  {head + ''.join(rest)!r}")
        replayed = usage["prompt_tokens"] - full_usage["prompt_tokens"]
        if replayed < cut or replayed + usage["completion_tokens"] != full_usage["completion_tokens"]:
            bad += 1
            print(f"USAGE prompt {i} cut {cut}: uninterrupted {full_usage}, continuation {usage}")
print(f"{'ok' if not bad else 'FAIL'}: greedy resumes at chunk boundaries reproduce the uninterrupted text and usage ({bad} mismatches)")
sys.exit(1 if bad else 0)
