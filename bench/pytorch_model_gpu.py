#!/usr/bin/env python3
"""PyTorch/transformers baseline for `bench_model --device cuda` (native/bench/bench_model.cpp):
transformers' LlamaForCausalLM built from a config (random weights on the device, nothing
downloaded), at the issues' shapes, on the same work:

  train    the SPPO-shaped step: one forward of chosen + rejected (2 x pairs rows of --seq tokens),
           the summed response log-probs (the last 3/4 of each row; log_softmax + gather on the full
           logits, upcast to fp32), the SPPO loss, backward, clip to 1.0, AdamW or RMSprop step,
           zero_grad; gradient checkpointing with --checkpointing 1 (the 7B row)
  rollout  model.generate: --prompts prompts of --prompt-len random tokens, --new new tokens each,
           sampling (temperature 0.7, top-p 0.9, top-k off), min_new_tokens = max_new_tokens so
           no EOS stops a row early; new tokens counted from the output

Variants: eager-fp32 (fp32 weights and math: like for like with sppo-native's fp32 engine;
torch's fp32 matmuls do not use TF32 unless allowed, and this script leaves them disallowed),
eager-bf16 (train: torch.autocast bf16 over fp32 master weights, as HF trainers run it; rollout:
the model cast to bf16), compile-bf16 (train only: torch.compile of the model under autocast,
run in a child process killed after --compile-timeout seconds, compile time reported apart).

CUDA-event timed (wall clock on --device cpu), median of --repeat after --warmup; peak memory is
torch.cuda.max_memory_allocated over the variant (weights and optimizer state included).
Prints one line per row; --json writes them.

  python3 bench/pytorch_model_gpu.py --preset llama-1b --json out.json
  python3 bench/pytorch_model_gpu.py --preset mistral-7b --pairs 4 --phases train --variants eager-fp32,eager-bf16
  python3 bench/pytorch_model_gpu.py --device cpu --layers 2 --hidden 64 --heads 4 --kv-heads 2 --ffn 128 \\
      --vocab 512 --pairs 1 --seq 32 --prompts 2 --prompt-len 8 --new 4 --variants eager-fp32   # smoke run
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

PRESETS = {
    # name: (vocab, hidden, ffn, layers, heads, kv_heads, rope_theta, optimizer, checkpointing, pairs)
    "llama-1b": (32000, 2048, 5632, 22, 32, 4, 10000.0, "adamw", 0, 8),
    "mistral-7b": (32000, 4096, 14336, 32, 32, 8, 1000000.0, "rmsprop", 1, 8),
}


def parse():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="llama-1b", choices=sorted(PRESETS))
    for k in ("layers", "hidden", "heads", "kv-heads", "ffn", "vocab", "pairs"):
        ap.add_argument(f"--{k}", type=int, default=None, help="overrides the preset")
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--optimizer", choices=["adamw", "rmsprop"], default=None)
    ap.add_argument("--checkpointing", type=int, choices=[0, 1], default=None)
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--prompt-len", type=int, default=128)
    ap.add_argument("--new", type=int, default=256)
    ap.add_argument("--phases", default="train,rollout")
    ap.add_argument("--variants", default="eager-fp32,eager-bf16,compile-bf16")
    ap.add_argument("--repeat", type=int, default=3, help="timed train steps")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--rollout-repeat", type=int, default=1, help="timed generate calls (after a short warm-up call)")
    ap.add_argument("--compile-timeout", type=int, default=120, help="seconds for the compile child; 0 = run in-process")
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    V, H, I, L, nh, nkv, theta, opt, ckpt, pairs = PRESETS[a.preset]
    a.vocab = a.vocab or V
    a.hidden = a.hidden or H
    a.ffn = a.ffn or I
    a.layers = a.layers or L
    a.heads = a.heads or nh
    a.kv_heads = a.kv_heads or nkv
    a.pairs = a.pairs or pairs
    a.rope_theta = theta
    a.optimizer = a.optimizer or opt
    a.checkpointing = ckpt if a.checkpointing is None else a.checkpointing
    a.phases = [p for p in a.phases.split(",") if p]
    a.variants = [v for v in a.variants.split(",") if v]
    for p in a.phases:
        if p not in ("train", "rollout"):
            ap.error(f"--phases: unknown phase '{p}' (train, rollout)")
    for v in a.variants:
        if v not in ("eager-fp32", "eager-bf16", "compile-bf16"):
            ap.error(f"--variants: unknown variant '{v}' (eager-fp32, eager-bf16, compile-bf16)")
    return a


def build_model(a, torch, dev):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=a.vocab, hidden_size=a.hidden, intermediate_size=a.ffn, num_hidden_layers=a.layers,
        num_attention_heads=a.heads, num_key_value_heads=a.kv_heads, rope_theta=a.rope_theta, rms_norm_eps=1e-5,
        max_position_embeddings=max(a.seq, a.prompt_len + a.new), tie_word_embeddings=False,
        bos_token_id=1, eos_token_id=2, pad_token_id=0, use_cache=True,
    )
    torch.manual_seed(1)
    with torch.device(dev):  # initialised where it runs: no host init of billions of values
        model = LlamaForCausalLM(cfg)
    return model.float()


def main() -> int:
    a = parse()
    try:
        import torch
        import transformers
    except ImportError as e:
        print(f"pytorch_model_gpu: {e.name} is not installed; baseline skipped", file=sys.stderr)
        return 2
    cuda = a.device == "cuda"
    if cuda and not torch.cuda.is_available():
        print("pytorch_model_gpu: no CUDA device visible; baseline skipped (--device cpu for a smoke run)", file=sys.stderr)
        return 2
    dev = torch.device(a.device)
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 is fp32 (the default; stated, not assumed)
    torch.backends.cudnn.allow_tf32 = False

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def timed_once(fn):
        if cuda:
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            fn()
            e.record()
            e.synchronize()
            return s.elapsed_time(e)
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e3

    def peak_reset():
        if cuda:
            sync()
            torch.cuda.reset_peak_memory_stats()

    def peak():
        return torch.cuda.max_memory_allocated() if cuda else None

    results = []
    card = torch.cuda.get_device_name(0) if cuda else "CPU"

    state = {"params": None}

    # Rewritten after every row, so a step killed by its timeout still leaves the rows it finished.
    def write_json(announce=False):
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"suite": "model", "source": "pytorch", "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                           "torch": torch.__version__, "transformers": transformers.__version__, "deviceName": card,
                           "preset": a.preset, "vocab": a.vocab, "hidden": a.hidden, "ffn": a.ffn, "layers": a.layers,
                           "heads": a.heads, "kvHeads": a.kv_heads, "params": state["params"], "tf32": False,
                           "results": results}, f, indent=2)
            if announce:
                print(f"wrote {a.json}")

    def report(row):
        results.append(row)
        write_json()
        if "error" in row:
            print(f"{row['name']:8s} {row['variant']:13s} {row['error']}", flush=True)
            return
        pk = f"{row['peakBytes'] / 2**30:8.2f} GiB peak" if row.get("peakBytes") else ""
        extra = f"  (compile {row['compileSeconds']:.1f} s)" if "compileSeconds" in row else ""
        print(f"{row['name']:8s} {row['variant']:13s} {row['ms']:10.2f} ms {row['tokensPerSecond']:12.1f} tok/s {pk}{extra}", flush=True)

    # The compile variant first, in a child (its own model and memory; killed when it overruns).
    if "compile-bf16" in a.variants and "train" in a.phases and a.compile_timeout > 0:
        with tempfile.TemporaryDirectory() as td:
            out = os.path.join(td, "compile.json")
            cmd = [sys.executable, os.path.abspath(__file__), "--preset", a.preset, "--phases", "train",
                   "--variants", "compile-bf16", "--compile-timeout", "0", "--json", out, "--device", a.device]
            for k in ("layers", "hidden", "heads", "kv_heads", "ffn", "vocab", "pairs", "seq", "repeat", "warmup"):
                cmd += [f"--{k.replace('_', '-')}", str(getattr(a, k))]
            cmd += ["--optimizer", a.optimizer, "--checkpointing", str(a.checkpointing)]
            t0 = time.perf_counter()
            try:
                subprocess.run(cmd, timeout=a.compile_timeout, check=False)
                with open(out) as f:
                    for row in json.load(f)["results"]:
                        results.append(row)
                write_json()
            except subprocess.TimeoutExpired:
                report({"name": "train", "variant": "compile-bf16", "error": f"did not finish within --compile-timeout {a.compile_timeout} s"})
            except (OSError, ValueError, KeyError) as e:
                report({"name": "train", "variant": "compile-bf16", "error": f"child failed after {time.perf_counter() - t0:.0f} s: {e}"})
        a.variants = [v for v in a.variants if v != "compile-bf16"]

    if not a.variants:  # only the compile child was asked for
        write_json(True)
        return 0
    t_build = time.perf_counter()
    model = build_model(a, torch, dev)
    sync()
    nparams = sum(p.numel() for p in model.parameters())
    state["params"] = nparams
    print(f"pytorch {torch.__version__}, transformers {transformers.__version__}, {card}; preset {a.preset}: "
          f"V={a.vocab} H={a.hidden} I={a.ffn} L={a.layers} heads={a.heads}/{a.kv_heads} params={nparams / 1e9:.3f}B "
          f"(built in {time.perf_counter() - t_build:.1f} s); attention {model.config._attn_implementation}", flush=True)

    g = torch.Generator(device="cpu").manual_seed(7)
    if "train" in a.phases and a.variants:
        B, T = a.pairs, a.seq
        tok = torch.randint(0, a.vocab, (2 * B, T), generator=g).to(dev)
        resp = torch.zeros(2 * B, T, dtype=torch.bool, device=dev)
        resp[:, T // 4:] = True
        ref = torch.full((2 * B,), -100.0, device=dev)
        pw, pl = torch.full((B,), 0.7, device=dev), torch.full((B,), 0.3, device=dev)
        eta = 1000.0  # 1 / beta, beta = 1e-3 as bench_model
        if a.checkpointing:
            model.gradient_checkpointing_enable()
        model.config.use_cache = False
        model.train()
        params = [p for p in model.parameters()]
        opt = (torch.optim.AdamW(params, lr=5e-7) if a.optimizer == "adamw" else torch.optim.RMSprop(params, lr=5e-7))
        for variant in [v for v in a.variants if v in ("eager-fp32", "eager-bf16", "compile-bf16")]:
            fwd = torch.compile(model) if variant == "compile-bf16" else model
            bf16 = variant != "eager-fp32"

            def step():
                with torch.autocast(device_type=a.device, dtype=torch.bfloat16, enabled=bf16):
                    logits = fwd(input_ids=tok).logits
                lp = logits[:, :-1].float().log_softmax(-1).gather(-1, tok[:, 1:, None]).squeeze(-1)
                s = (lp * resp[:, 1:]).sum(-1) - ref
                loss = 0.5 * ((s[:B] - eta * (pw - 0.5)) ** 2 + (s[B:] - eta * (pl - 0.5)) ** 2).mean()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                opt.zero_grad(set_to_none=True)

            try:
                peak_reset()
                t0 = time.perf_counter()
                step()  # the first step (includes compilation for compile-bf16)
                sync()
                first_s = time.perf_counter() - t0
                for _ in range(max(0, a.warmup - 1)):
                    step()
                ts = [timed_once(step) for _ in range(a.repeat)]
                ms = statistics.median(ts)
                row = {"name": "train", "variant": variant, "pairs": B, "seq": T, "optimizer": a.optimizer,
                       "checkpointing": a.checkpointing, "ms": ms, "tokens": 2 * B * T,
                       "tokensPerSecond": 2 * B * T / (ms / 1e3), "peakBytes": peak(), "repeat": a.repeat,
                       "warmup": max(1, a.warmup), "firstStepSeconds": first_s}
                if variant == "compile-bf16":
                    row["compileSeconds"] = first_s - ms / 1e3
                report(row)
            except Exception as e:  # out of memory, a compile failure: the row says so, the rest still runs
                report({"name": "train", "variant": variant, "error": f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}"})
                opt.zero_grad(set_to_none=True)
            del fwd
        del opt, params
        model.zero_grad(set_to_none=True)
        if a.checkpointing:
            model.gradient_checkpointing_disable()
        if cuda:
            torch.cuda.empty_cache()

    if "rollout" in a.phases:
        model.eval()
        model.config.use_cache = True
        prompts = torch.randint(3, a.vocab, (a.prompts, a.prompt_len), generator=g).to(dev)
        mask = torch.ones_like(prompts)
        for variant in [v for v in a.variants if v in ("eager-fp32", "eager-bf16")]:
            if variant == "eager-bf16":
                model = model.to(torch.bfloat16)
            elif next(model.parameters()).dtype != torch.float32:  # after bf16: a fresh fp32 model
                del model
                if cuda:
                    torch.cuda.empty_cache()
                model = build_model(a, torch, dev).eval()

            def gen(n):
                with torch.no_grad():
                    return model.generate(input_ids=prompts, attention_mask=mask, do_sample=True, temperature=0.7,
                                          top_p=0.9, top_k=0, max_new_tokens=n, min_new_tokens=n, pad_token_id=0)

            try:
                peak_reset()
                gen(4)  # warm-up: kernels, cuBLAS handles, the generation config
                ts, toks = [], 0
                for _ in range(a.rollout_repeat):
                    out = {}
                    ts.append(timed_once(lambda: out.setdefault("ids", gen(a.new))))
                    toks = (out["ids"].shape[1] - a.prompt_len) * a.prompts
                ms = statistics.median(ts)
                report({"name": "rollout", "variant": variant, "prompts": a.prompts, "promptLen": a.prompt_len,
                        "newTokens": a.new, "ms": ms, "tokens": toks, "tokensPerSecond": toks / (ms / 1e3),
                        "peakBytes": peak(), "repeat": a.rollout_repeat, "warmup": 1})
            except Exception as e:
                report({"name": "rollout", "variant": variant, "error": f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}"})

    write_json(True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
