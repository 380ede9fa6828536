#!/usr/bin/env python3
"""PyTorch baseline for the PairRM judge (bench_pairrm, `sppo-native bench pairrm`): transformers'
DebertaV2Model in PairRM's shape (24 layers, hidden 1024, 16 heads, ffn 4096, 256 position
buckets, c2p + p2c with shared keys) plus PairRM's head, on the same work: the K(K-1) ordered
pairs of K candidates for --prompts prompts, every pair --source + 2 x --candidate tokens (plus
the 9 special tokens) of random ids.

  --mode single    one pair per forward, the K(K-1) loop of llm-blender's _full_predict at
                   batch size 1 (how the SPPO reference ranks)
  --mode batched   --batch pairs per forward (padded to the longest; all pairs have one length)

Random weights unless --weights names a local llm-blender/PairRM-hf folder (its model.safetensors;
nothing is downloaded). Wall clock after one warm-up forward; CUDA timings synchronize first.
Prints pairs/s and writes --json.

  python3 bench/pytorch_pairrm.py --device cuda --dtype fp16 --mode single
  python3 bench/pytorch_pairrm.py --device cuda --dtype fp16 --mode batched --batch 20
  python3 bench/pytorch_pairrm.py --device cpu --dtype fp32 --mode batched --batch 4 --threads 2
"""
import argparse
import json
import os
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", choices=["cpu", "cuda"])
    ap.add_argument("--dtype", default="fp16", choices=["fp32", "fp16", "bf16"])
    ap.add_argument("--mode", default="single", choices=["single", "batched"])
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--source", type=int, default=128)
    ap.add_argument("--candidate", type=int, default=256)
    ap.add_argument("--threads", type=int, default=0, help="torch threads on the CPU (0: torch's default)")
    ap.add_argument("--weights", default=None, help="a local PairRM-hf folder (model.safetensors)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    try:
        import torch
        import transformers
    except ImportError as e:
        print(f"pytorch_pairrm: {e}; baseline skipped", file=sys.stderr)
        return 2
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[a.dtype]
    cfg = transformers.DebertaV2Config(
        vocab_size=128005, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
        hidden_act="gelu", layer_norm_eps=1e-7, max_position_embeddings=512, relative_attention=True,
        max_relative_positions=-1, position_buckets=256, pos_att_type=["p2c", "c2p"], share_att_key=True,
        norm_rel_ebd="layer_norm", position_biased_input=False, type_vocab_size=0, pad_token_id=0)
    torch.manual_seed(1)
    enc = transformers.DebertaV2Model(cfg)
    h = cfg.hidden_size
    head = torch.nn.Sequential(torch.nn.Linear(2 * h, h), torch.nn.Tanh(), torch.nn.Linear(h, 1))
    if a.weights:
        from safetensors.torch import load_file
        sd = load_file(os.path.join(a.weights, "model.safetensors"))
        enc.load_state_dict({k[len("pretrained_model."):]: v for k, v in sd.items() if k.startswith("pretrained_model.")}, strict=False)
        head.load_state_dict({"0.weight": sd["head_layer.1.weight"], "0.bias": sd["head_layer.1.bias"],
                              "2.weight": sd["head_layer.4.weight"], "2.bias": sd["head_layer.4.bias"]})
    enc = enc.to(dev, dtype).eval()
    head = head.to(dev, dtype).eval()
    src, cand = a.source, a.candidate
    L = src + 2 * cand + 9
    slots = [1, src + 4, src + cand + 7]
    g = torch.Generator().manual_seed(2)
    pairs = a.prompts * a.k * (a.k - 1)

    def batch_of(n):
        ids = torch.randint(4, 128000, (n, L), generator=g)
        for p, t in zip(slots, (128001, 128002, 128003)):
            ids[:, p] = t
        return ids.to(dev), torch.ones(n, L, dtype=torch.long, device=dev)

    def forward(ids, mask):
        hs = enc(input_ids=ids, attention_mask=mask).last_hidden_state
        e = [hs[:, p] for p in slots]
        return (head(torch.cat([e[0], e[1]], -1)) - head(torch.cat([e[0], e[2]], -1))).mean(-1)

    per = 1 if a.mode == "single" else a.batch
    sync = (lambda: torch.cuda.synchronize()) if a.device == "cuda" else (lambda: None)
    with torch.no_grad():
        forward(*batch_of(per))  # warm-up
        sync()
        inputs = [batch_of(min(per, pairs - i)) for i in range(0, pairs, per)]
        sync()
        t0 = time.perf_counter()
        for ids, mask in inputs:
            forward(ids, mask)
        sync()
        s = time.perf_counter() - t0
    name = torch.cuda.get_device_name(0) if a.device == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    res = {"suite": "pairrm", "source": "pytorch", "torch": torch.__version__, "transformers": transformers.__version__,
           "device": name, "dtype": a.dtype, "mode": a.mode, "pairsPerCall": per, "k": a.k, "prompts": a.prompts,
           "pairs": pairs, "tokensPerPair": L, "seconds": s, "pairsPerSecond": pairs / s}
    print(f"transformers DebertaV2 + PairRM head, {name}, {a.dtype}, {a.mode} ({per} pair(s) per forward): "
          f"{pairs} pairs of {L} tokens in {s:.2f} s = {pairs / s:.2f} pairs/s")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
