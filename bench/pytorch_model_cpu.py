#!/usr/bin/env python3
"""PyTorch CPU baseline for `bench_model` (native/bench/bench_model.cpp): the same Llama shape in
fp32, written with torch ops the way a PyTorch trainer runs it (full [B, T, V] logits,
log_softmax, gather, masked sum), on the same work:

  train step      chosen + rejected (one forward of 2B sequences), the SPPO loss on the summed
                  response log-probs (the last 3/4 of each sequence), backward, clip to 1.0,
                  RMSprop step (torch.optim.RMSprop), zero_grad
  log-probs       forward only, no grad, same batch
  generate        2B prompts of T/4 tokens, --new tokens each with a KV cache (top-p 0.9, T 0.7)

Wall clock, median of --repeat runs after one warm-up, at --threads torch threads
(torch.set_num_threads; OpenBLAS/oneDNN follow). Prints one line per benchmark like bench_model.

  OMP_NUM_THREADS=1 python3 bench/pytorch_model_cpu.py --threads 1 --layers 8 --hidden 512 --vocab 32000 --batch 2 --seq 256
"""
import argparse
import json
import math
import statistics
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=8)
    ap.add_argument("--ffn", type=int, default=1376)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--batch", type=int, default=2, help="pairs per step")
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--new", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        print("pytorch_model_cpu: PyTorch is not installed (apt-get install python3-torch); baseline skipped", file=sys.stderr)
        return 2
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    H, L, V, I, nh, nkv = a.hidden, a.layers, a.vocab, a.ffn, a.heads, a.kv_heads
    hd = H // nh

    def lin(o, i):
        return torch.nn.Parameter(torch.randn(o, i) * 0.02)

    params = {"emb": lin(V, H), "norm": torch.nn.Parameter(torch.ones(H)), "head": lin(V, H)}
    layers = []
    for _ in range(L):
        layers.append({
            "ln1": torch.nn.Parameter(torch.ones(H)), "q": lin(nh * hd, H), "k": lin(nkv * hd, H), "v": lin(nkv * hd, H),
            "o": lin(H, nh * hd), "ln2": torch.nn.Parameter(torch.ones(H)), "gate": lin(I, H), "up": lin(I, H), "down": lin(H, I),
        })
    allp = list(params.values()) + [p for l in layers for p in l.values()]
    nparams = sum(p.numel() for p in allp)
    inv = 1.0 / (10000.0 ** (torch.arange(0, hd, 2).float() / hd))

    def rms(x, w):
        return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5))

    def rope(x, pos):  # x [B, h, T, hd]
        ang = pos[:, None].float() * inv[None, :]
        cos, sin = ang.cos()[None, None], ang.sin()[None, None]
        x1, x2 = x[..., : hd // 2], x[..., hd // 2 :]
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)

    def block(l, x, pos, cache=None):
        B, T, _ = x.shape
        h = rms(x, l["ln1"])
        q = (h @ l["q"].t()).view(B, T, nh, hd).transpose(1, 2)
        k = (h @ l["k"].t()).view(B, T, nkv, hd).transpose(1, 2)
        v = (h @ l["v"].t()).view(B, T, nkv, hd).transpose(1, 2)
        q, k = rope(q, pos), rope(k, pos)
        if cache is not None:
            if cache.get("k") is not None:
                k = torch.cat([cache["k"], k], 2)
                v = torch.cat([cache["v"], v], 2)
            cache["k"], cache["v"] = k, v
        if nkv != nh:
            k = k.repeat_interleave(nh // nkv, 1)
            v = v.repeat_interleave(nh // nkv, 1)
        S = k.shape[2]
        att = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        mask = torch.ones(T, S, dtype=torch.bool).tril(S - T)
        att = att.masked_fill(~mask, float("-inf")).softmax(-1)
        o = (att @ v).transpose(1, 2).reshape(B, T, nh * hd)
        x = x + o @ l["o"].t()
        h = rms(x, l["ln2"])
        return x + (F.silu(h @ l["gate"].t()) * (h @ l["up"].t())) @ l["down"].t()

    def forward(tok, caches=None, start=0):
        B, T = tok.shape
        pos = torch.arange(start, start + T)
        x = params["emb"][tok]
        for i, l in enumerate(layers):
            x = block(l, x, pos, None if caches is None else caches[i])
        return rms(x, params["norm"]) @ params["head"].t()

    B, T = a.batch, a.seq
    tok = torch.randint(0, V, (2 * B, T))
    resp = torch.zeros(2 * B, T, dtype=torch.bool)
    resp[:, T // 4 :] = True
    ref = torch.full((2 * B,), -100.0)
    pw, pl = torch.full((B,), 0.7), torch.full((B,), 0.3)
    eta = 1000.0
    opt = torch.optim.RMSprop(allp, lr=5e-7)

    def seq_logp(logits):
        lp = logits[:, :-1].log_softmax(-1).gather(-1, tok[:, 1:, None]).squeeze(-1)
        return (lp * resp[:, 1:]).sum(-1)

    def train_step():
        s = seq_logp(forward(tok)) - ref
        loss = 0.5 * ((s[:B] - eta * (pw - 0.5)) ** 2 + (s[B:] - eta * (pl - 0.5)) ** 2).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(allp, 1.0)
        opt.step()
        opt.zero_grad()

    def logprobs():
        with torch.no_grad():
            seq_logp(forward(tok))

    def generate():
        with torch.no_grad():
            prompt = tok[:, : T // 4]
            caches = [{} for _ in layers]
            logits = forward(prompt, caches)[:, -1]
            n = prompt.shape[1]
            for step in range(a.new):
                probs = (logits / 0.7).softmax(-1)
                sp, si = probs.sort(-1, descending=True)
                keep = sp.cumsum(-1) - sp < 0.9
                sp = sp * keep
                nxt = si.gather(-1, torch.multinomial(sp / sp.sum(-1, keepdim=True), 1))
                logits = forward(nxt, caches, n + step)[:, -1]

    def timed(fn):
        fn()
        ts = []
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts)

    print(f"pytorch {torch.__version__} CPU, {a.threads} threads; V={V} H={H} I={I} L={L} heads={nh}/{nkv} params={nparams / 1e6:.1f}M")
    out = {"threads": a.threads, "params": nparams}
    t = timed(train_step)
    out["train_tokens_per_s"] = 2 * B * T / t
    print(f"{'train step':34s} {t:10.3f} {2 * B * T / t:12.1f} tokens/s")
    t = timed(logprobs)
    out["logprob_tokens_per_s"] = 2 * B * T / t
    print(f"{'sequence log-probs (forward)':34s} {t:10.3f} {2 * B * T / t:12.1f} tokens/s")
    t = timed(generate)
    out["generate_tokens_per_s"] = 2 * B * a.new / t
    print(f"{'generate (KV cache)':34s} {t:10.3f} {2 * B * a.new / t:12.1f} tokens/s")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
