#!/usr/bin/env python3
"""load.py — request helpers for the infergate-server integration tests.

  load.py gen PORT OUT N_PROMPTS MAX_TOKENS PARALLEL [EXTRA_JSON]
      greedy completions of N distinct prompts (ignore_eos), all at once when
      PARALLEL is 1, one after another otherwise; writes {"texts": [...],
      "tokens": [...], "seconds": s} to OUT.
  load.py chunked PORT LONG_WORDS
      a long greedy stream runs; a prompt of LONG_WORDS words arrives; prints
      how many tokens the stream received while that prompt was prefilled.
  load.py hold PORT SECONDS [STOP_FILE]
      opens a greedy stream (ignore_eos) whose max_tokens fills the context
      (the server's max_model_len less the prompt), reads until STOP_FILE
      exists or SECONDS passed, then closes the socket; prints the bytes
      received and "open" (still streaming when closed: the server counts an
      abort) or "ended" (the stream reached [DONE] first).
"""
import json, os, socket, sys, threading, time, urllib.request


def post(port, path, body, timeout=300):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def prompt(i):
    return f"Request number {i}: " + " ".join(["alpha", "beta", "gamma", "delta", "omega"][: 1 + i % 5]) + f" {i * 7}"


def gen(port, out, n, max_tokens, parallel, extra):
    res = [None] * n

    def one(i):
        body = dict(prompt=prompt(i), max_tokens=max_tokens, temperature=0, ignore_eos=True, **extra)
        res[i] = post(port, "/v1/completions", body)

    t0 = time.time()
    if parallel:
        th = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in th: t.start()
        for t in th: t.join()
    else:
        for i in range(n): one(i)
    dt = time.time() - t0
    json.dump({"texts": [r["choices"][0]["text"] for r in res],
               "tokens": [r["usage"]["completion_tokens"] for r in res],
               "finish": [r["choices"][0]["finish_reason"] for r in res], "seconds": dt}, open(out, "w"))


def chunked(port, words):
    stamps = []
    window = {}

    def streamer():
        body = dict(prompt="Tell me everything.", max_tokens=400, temperature=0, ignore_eos=True, stream=True)
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=300) as r:
            for line in r:
                if line.startswith(b"data: {"):
                    stamps.append(time.time())
                if "end" in window and time.time() > window["end"] + 0.2:
                    break

    t = threading.Thread(target=streamer)
    t.start()
    while len(stamps) < 10: time.sleep(0.01)
    long_prompt = " ".join(f"w{i}" for i in range(words))
    window["start"] = time.time()
    post(port, "/v1/completions", dict(prompt=long_prompt, max_tokens=1, temperature=0))
    window["end"] = time.time()
    t.join()
    during = sum(1 for s in stamps if window["start"] <= s <= window["end"])
    print(during, f"{window['end'] - window['start']:.3f}")


def hold(port, seconds, stop_file=None):
    prompt_text = "Go on forever."
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=30) as r:
        max_len = json.loads(r.read())["data"][0]["max_model_len"]
    n_prompt = post(port, "/tokenize", dict(prompt=prompt_text))["count"]
    body = json.dumps(dict(prompt=prompt_text, max_tokens=max_len - n_prompt, temperature=0, ignore_eos=True,
                           stream=True)).encode()
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    end = time.time() + seconds
    got, tail = 0, b""
    s.settimeout(0.02)
    while time.time() < end and not (stop_file and os.path.exists(stop_file)):
        try:
            data = s.recv(65536)
            if not data:
                break
            got += len(data)
            tail = (tail + data)[-64:]  # enough to see [DONE]
        except socket.timeout:
            pass
    s.close()
    print(got, "ended" if b"data: [DONE]" in tail else "open")


if __name__ == "__main__":
    cmd, port = sys.argv[1], int(sys.argv[2])
    if cmd == "gen":
        gen(port, sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6] == "1",
            json.loads(sys.argv[7]) if len(sys.argv) > 7 else {})
    elif cmd == "chunked":
        chunked(port, int(sys.argv[3]))
    elif cmd == "hold":
        hold(port, float(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else None)
