#!/usr/bin/python3
"""An independent Gemma 3 forward pass in PyTorch, written from the published
description of the model (transformers' Gemma 3 text model: config fields,
norms, RoPE, sliding windows), not from the engine's code, and a comparison of its
logits with infergate's on random checkpoints.

    reference.py --bin DIR_OF_PROGRAMS --work TMPDIR [--quick]

For each configuration: infergate-mkmodel writes a random checkpoint; a replay
file sends several sequences through infergate-run in steps that mix prompt
chunks and single decode tokens, prompts longer than the sliding window; the
reference computes each sequence's full forward pass in float64 (weights as
stored: bf16/f16/f32 widened exactly) and the logits of every row the engine
reported are compared: max |diff| <= TOL (1e-4) * max(1, std of the reference logits),
and the argmax (greedy token) identical unless the reference's top two are
within the tolerance of each other. Two configurations run again with
--quantization q8_0 against the same reference, with TOL_Q8_0, and two with
the bf16 KV cache (the engine's default; the others ask for f32), TOL_BF16_KV.
Exit 0 when every configuration passes.
"""
import argparse, json, math, os, random, struct, subprocess, sys, zlib
import numpy as np
import torch

TOL = 1e-4   # observed: ~3e-6 (f32 accumulation against a float64 reference)
# Q8_0 on load: observed 0.21 of the std (max |diff| 0.44 on logits of std 2);
# rounding only the weights of the same checkpoint to Q8_0 moves the float64
# reference itself by 0.29 at most (the random tiny models amplify small
# changes), the 8-bit activations add the rest. Greedy tokens must agree unless
# the reference's top two are within this tolerance (observed: 3 of 35 rows).
TOL_Q8_0 = 0.3
TOL_BF16_KV = 0.05  # observed 0.023 of the std, every greedy token the same

def bf16_to_f32(u16):
    return (u16.astype(np.uint32) << 16).view(np.float32)

def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        b, e = t["data_offsets"]
        raw = data[base + b: base + e]
        if t["dtype"] == "BF16":
            a = bf16_to_f32(np.frombuffer(raw, dtype="<u2"))
        elif t["dtype"] == "F16":
            a = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        elif t["dtype"] == "F32":
            a = np.frombuffer(raw, dtype="<f4")
        else:
            raise ValueError(t["dtype"])
        out[name] = (torch.from_numpy(a.astype(np.float64)).reshape(t["shape"]), t["dtype"])
    return out

def load_model(d):
    cfg = json.load(open(os.path.join(d, "config.json")))
    if "text_config" in cfg:
        cfg = cfg["text_config"]
    idx = os.path.join(d, "model.safetensors.index.json")
    tensors = {}
    if os.path.exists(idx):
        for f in sorted(set(json.load(open(idx))["weight_map"].values())):
            tensors.update(load_safetensors(os.path.join(d, f)))
    else:
        tensors = load_safetensors(os.path.join(d, "model.safetensors"))
    # strip the multimodal prefixes
    w = {}
    for k, v in tensors.items():
        for p in ("language_model.", ):
            if k.startswith(p):
                k = k[len(p):]
        k = k.replace("model.language_model.", "model.")
        w[k] = v
    return cfg, w

def rmsnorm(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * (1.0 + weight)

def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)

def forward(cfg, w, ids):
    """Logits [len(ids), vocab] of one sequence, from scratch, in float64."""
    H = cfg["hidden_size"]; L = cfg["num_hidden_layers"]
    nh = cfg["num_attention_heads"]; nkv = cfg["num_key_value_heads"]; D = cfg["head_dim"]
    eps = cfg.get("rms_norm_eps", 1e-6); win = cfg["sliding_window"]
    if cfg.get("layer_types"):
        sliding = [t == "sliding_attention" for t in cfg["layer_types"]]
    else:
        pat = cfg.get("sliding_window_pattern", 6)
        sliding = [(i + 1) % pat != 0 for i in range(L)]
    scaling = cfg.get("rope_scaling") or {}
    factor = float(scaling.get("factor", 1.0)) if scaling else 1.0
    emb, emb_dtype = w["model.embed_tokens.weight"]
    scale = math.sqrt(H)
    if emb_dtype == "BF16":   # the scale is rounded to the weight dtype first
        scale = float(torch.tensor(scale, dtype=torch.bfloat16).float())
    elif emb_dtype == "F16":
        scale = float(torch.tensor(scale, dtype=torch.float16).float())
    T = len(ids)
    pos = torch.arange(T, dtype=torch.float64)
    x = emb[torch.tensor(ids)] * scale
    qk = torch.arange(T)
    causal = qk[None, :] <= qk[:, None]
    in_window = qk[None, :] > qk[:, None] - win
    def rope_tables(base, f):
        inv = 1.0 / (base ** (torch.arange(0, D, 2, dtype=torch.float64) / D)) / f
        ang = pos[:, None] * inv[None, :]
        ang = torch.cat((ang, ang), dim=-1)
        return ang.cos(), ang.sin()
    cos_l, sin_l = rope_tables(cfg.get("rope_local_base_freq", 1e4), 1.0)
    cos_g, sin_g = rope_tables(cfg.get("rope_theta", 1e6), factor)
    qscale = cfg.get("query_pre_attn_scalar", D) ** -0.5
    for i in range(L):
        p = "model.layers.%d." % i
        g = lambda n: w[p + n][0]
        h = rmsnorm(x, g("input_layernorm.weight"), eps)
        q = (h @ g("self_attn.q_proj.weight").T).view(T, nh, D).transpose(0, 1)
        k = (h @ g("self_attn.k_proj.weight").T).view(T, nkv, D).transpose(0, 1)
        v = (h @ g("self_attn.v_proj.weight").T).view(T, nkv, D).transpose(0, 1)
        q = rmsnorm(q, g("self_attn.q_norm.weight"), eps)
        k = rmsnorm(k, g("self_attn.k_norm.weight"), eps)
        c, s = (cos_l, sin_l) if sliding[i] else (cos_g, sin_g)
        q = q * c + rotate_half(q) * s
        k = k * c + rotate_half(k) * s
        k = k.repeat_interleave(nh // nkv, dim=0)
        v = v.repeat_interleave(nh // nkv, dim=0)
        sc = (q @ k.transpose(1, 2)) * qscale
        mask = causal & in_window if sliding[i] else causal
        sc = sc.masked_fill(~mask, float("-inf"))
        a = torch.softmax(sc, dim=-1) @ v
        a = a.transpose(0, 1).reshape(T, nh * D) @ g("self_attn.o_proj.weight").T
        x = x + rmsnorm(a, g("post_attention_layernorm.weight"), eps)
        h = rmsnorm(x, g("pre_feedforward_layernorm.weight"), eps)
        gate = h @ g("mlp.gate_proj.weight").T
        up = h @ g("mlp.up_proj.weight").T
        act = 0.5 * gate * (1 + torch.tanh(math.sqrt(2 / math.pi) * (gate + 0.044715 * gate ** 3)))
        m = (act * up) @ g("mlp.down_proj.weight").T
        x = x + rmsnorm(m, g("post_feedforward_layernorm.weight"), eps)
    x = rmsnorm(x, w["model.norm.weight"][0], eps)
    return x @ emb.T

def make_replay(rng, vocab, n_seqs, lens, chunk):
    """Steps where sequences start at different times: prompt chunks of up to
    `chunk` tokens and single decode tokens share steps. Returns (steps, seqs,
    expected) with expected[i] = (seq, position) of the i-th logits row."""
    seqs = [[rng.randrange(3, vocab) for _ in range(n)] for n in lens]
    done = [0] * n_seqs
    start = [k * 2 for k in range(n_seqs)]   # staggered arrivals
    prompt = [max(1, n - 6) for n in lens]   # the rest is fed one token at a time
    steps, expected, t = [], [], 0
    while any(done[k] < lens[k] for k in range(n_seqs)):
        step = []
        for k in range(n_seqs):
            if t < start[k] or done[k] >= lens[k]:
                continue
            if done[k] < prompt[k]:
                n = min(chunk, prompt[k] - done[k])
            else:
                n = 1
            toks = seqs[k][done[k]:done[k] + n]
            want = done[k] + n == prompt[k] or done[k] >= prompt[k] or rng.random() < 0.3
            step.append({"seq": k, "tokens": toks, "logits": want})
            if want:
                expected.append((k, done[k] + n - 1))
            done[k] += n
        steps.append(step)
        t += 1
    return steps, seqs, expected

def run_config(args, name, mk_args, n_seqs, lens, chunk, kernels, quant=None, tol=None, kv="f32"):
    tol = tol if tol is not None else TOL
    d = os.path.join(args.work, name)
    subprocess.run([os.path.join(args.bin, "infergate-mkmodel")] + mk_args + ["--no-tokenizer", d],
                   check=True, stderr=subprocess.DEVNULL)
    cfg, w = load_model(d)
    vocab = cfg["vocab_size"]
    rng = random.Random(zlib.crc32(name.encode()))
    steps, seqs, expected = make_replay(rng, vocab, n_seqs, lens, chunk)
    rp = os.path.join(d, "replay.json")
    json.dump({"steps": steps}, open(rp, "w"))
    ok = True
    refs = [forward(cfg, w, s) for s in seqs]
    for kern in kernels:
        out = os.path.join(d, "logits.%s.%s.%s.bin" % (kern, quant or "asis", kv))
        r = subprocess.run([os.path.join(args.bin, "infergate-run"), "--model", d, "--replay", rp,
                            "--dump-logits", out, "--kernels", kern, "--threads", "2", "--kv-cache-dtype", kv] +
                           (["--quantization", quant] if quant else []),
                           stderr=subprocess.PIPE, text=True)
        if r.returncode != 0 and "unsupported by this CPU" in r.stderr:
            print("skip %s [%s]: this CPU lacks the instructions" % (name, kern))
            continue
        if r.returncode != 0:
            print("FAIL %s [%s]: infergate-run: %s" % (name, kern, r.stderr.strip()))
            ok = False
            continue
        got = np.fromfile(out, dtype="<f4").reshape(-1, vocab)
        if got.shape[0] != len(expected):
            print("FAIL %s [%s]: %d logits rows, expected %d" % (name, kern, got.shape[0], len(expected)))
            ok = False
            continue
        worst, worst_rel, argmax_bad, argmax_diff = 0.0, 0.0, 0, 0
        for row, (k, p) in zip(got, expected):
            ref = refs[k][p].numpy()
            scale = max(1.0, float(ref.std()))
            diff = float(np.abs(row.astype(np.float64) - ref).max())
            worst = max(worst, diff)
            worst_rel = max(worst_rel, diff / scale)
            if int(row.argmax()) != int(ref.argmax()):
                argmax_diff += 1
                top2 = np.sort(ref)[-2:]
                if top2[1] - top2[0] > tol * scale:
                    argmax_bad += 1
        status = "ok  " if worst_rel <= tol and argmax_bad == 0 else "FAIL"
        ok = ok and status == "ok  "
        print("%s %-28s [%-8s%s] rows %3d (seq lens %s, window %d): max |diff| %.2e, relative %.2e (tol %.0e), greedy mismatches %d (%d with near-ties)"
              % (status, name, kern, (" " + quant if quant else "") + (" kv " + kv if kv != "f32" else ""), len(expected), lens, cfg["sliding_window"],
                 worst, worst_rel, tol, argmax_bad, argmax_diff))
    return ok

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    torch.set_num_threads(1)
    kernels = ["portable", "avx2", "avx512"]
    # name, mkmodel arguments, sequences, their lengths, prefill chunk
    configs = [
        ("tiny-layer-types", ["--shape", "tiny", "--seed", "1", "--vocab", "4096"], 3, [30, 21, 9], 7),
        ("tiny-pattern-gqa", ["--shape", "tiny", "--seed", "2", "--vocab", "2000", "--heads", "4", "--kv-heads", "2",
                              "--pattern", "2", "--window", "5", "--layers", "3"], 4, [26, 12, 40, 3], 16),
        ("odd-dims-f16", ["--shape", "tiny", "--seed", "3", "--vocab", "1000", "--hidden", "72", "--head-dim", "24",
                          "--intermediate", "200", "--dtype", "f16", "--window", "11"], 2, [35, 19], 9),
        ("f32-ropescale-sharded-mm", ["--shape", "tiny", "--seed", "4", "--vocab", "3000", "--dtype", "f32",
                                      "--rope-scaling", "8", "--shards", "3", "--multimodal", "--window", "6"], 3, [24, 17, 30], 5),
        ("tiny-full-vocab", ["--shape", "tiny", "--seed", "5"], 2, [20, 12], 8),
    ]
    if args.quick:
        configs = configs[:2]
    ok = True
    for c in configs:
        ok = run_config(args, c[0], c[1], c[2], c[3], c[4], kernels) and ok
    # Q8_0 quantized on load (weights and the activations of every matmul at
    # 8 bits) against the same float64 reference of the stored weights
    for c in (configs[0], configs[-1]):
        ok = run_config(args, c[0], c[1], c[2], c[3], c[4], kernels, "q8_0", TOL_Q8_0) and ok
    # the bf16 KV cache (the engine's default): keys and values rounded to bf16
    for c in (configs[0], configs[1]):
        ok = run_config(args, c[0], c[1], c[2], c[3], c[4], kernels, None, TOL_BF16_KV, "bf16") and ok
    print("reference comparison:", "PASS" if ok else "FAIL")
    return 0 if ok else 1

if __name__ == "__main__":
    sys.exit(main())
