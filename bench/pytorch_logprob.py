#!/usr/bin/env python3
"""PyTorch baseline for `sppo-native bench kernels`: per-sequence log-probabilities the way
preference trainers compute them (log_softmax + gather + masked sum), forward + backward, on
bf16 logits [8, 1024, V]:

  eager-fp32   logits.float() upcast, then log_softmax (what TRL-style trainers do)
  eager-bf16   log_softmax in bf16
  compile      torch.compile of the fp32-upcast function

CUDA-event timed, median of --iters after --warmup; the floor is three passes over the bf16
logits at the device-to-device copy bandwidth measured in the same run (read + write bytes).
"extra GiB" is the peak memory allocated beyond the logits and their gradient.

  python3 bench/pytorch_logprob.py [--vocab 32000,128256] [--batch 8] [--seq 1024] [--json FILE]
"""
import argparse
import datetime
import json
import statistics
import sys


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vocab", default="32000,128256")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--variants", default="eager-fp32,eager-bf16,compile")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    try:
        import torch
    except ImportError:
        print("pytorch_logprob: PyTorch is not installed (pip install torch); baseline skipped", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("pytorch_logprob: no CUDA device visible; baseline skipped", file=sys.stderr)
        return 2
    dev = torch.device("cuda")

    def timed(fn, iters, warmup):
        times = []
        for i in range(warmup + iters):
            a = torch.cuda.Event(enable_timing=True)
            b = torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            if i >= warmup:
                times.append(a.elapsed_time(b))
        return statistics.median(times)

    # Copy bandwidth: D2D copy of 1 GiB, read + write bytes.
    src = torch.empty(1 << 30, dtype=torch.uint8, device=dev)
    dst = torch.empty_like(src)
    copy_ms = timed(lambda: dst.copy_(src), 10, 2)
    bw = 2 * src.numel() / (copy_ms * 1e6)  # GB/s
    del src, dst
    torch.cuda.empty_cache()

    def seq_logp_fp32(logits, labels, mask):
        lp = torch.log_softmax(logits.float(), dim=-1)
        tok = torch.gather(lp, -1, labels.unsqueeze(-1)).squeeze(-1)
        return (tok * mask).sum(-1)

    def seq_logp_bf16(logits, labels, mask):
        lp = torch.log_softmax(logits, dim=-1)
        tok = torch.gather(lp, -1, labels.unsqueeze(-1)).squeeze(-1)
        return (tok.float() * mask).sum(-1)

    compiled = None
    variants = {
        "eager-fp32": seq_logp_fp32,
        "eager-bf16": seq_logp_bf16,
        "compile": None,
    }
    wanted = [v.strip() for v in args.variants.split(",") if v.strip()]
    for v in wanted:
        if v not in variants:
            print(f"pytorch_logprob: unknown variant '{v}' (have {', '.join(variants)})", file=sys.stderr)
            return 1

    results = []
    print(f"pytorch {torch.__version__} on {torch.cuda.get_device_name(0)}   copy bandwidth: {bw:.1f} GB/s (read + write)"
          f"   median of {args.iters} after {args.warmup} warmup")
    print(f"{'shape':<16} {'variant':<11} {'fwd+bwd ms':>12} {'GB/s':>9} {'floor ms':>10} {'x floor':>8} {'extra GiB':>10}")
    for V in [int(x) for x in args.vocab.split(",")]:
        B, T = args.batch, args.seq
        g = torch.Generator(device=dev).manual_seed(0)
        logits = (3 * torch.randn(B, T, V, device=dev, generator=g)).to(torch.bfloat16).requires_grad_(True)
        labels = torch.randint(0, V, (B, T), device=dev, generator=g)
        mask = (torch.rand(B, T, device=dev, generator=g) > 0.3).float()
        nbytes = logits.numel() * logits.element_size()
        floor_ms = 3 * nbytes / (bw * 1e6)
        for name in wanted:
            fn = variants[name]
            if name == "compile":
                if compiled is None:
                    compiled = torch.compile(seq_logp_fp32)
                fn = compiled

            def step():
                logits.grad = None
                fn(logits, labels, mask).sum().backward()

            row = {"rows": B * T, "vocab": V, "variant": name, "dtype": "bf16"}
            try:
                step()
                torch.cuda.synchronize()
                logits.grad = None
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
                step()
                torch.cuda.synchronize()
                # Beyond the logits (already counted in base) and their gradient.
                extra = (torch.cuda.max_memory_allocated() - base - nbytes) / 2**30
                ms = timed(step, args.iters, args.warmup)
                row.update(totalMs=ms, gbps=3 * nbytes / (ms * 1e6), floorMs=floor_ms, ratio=ms / floor_ms, extraGiB=extra)
                print(f"{f'{B*T}x{V}':<16} {name:<11} {ms:>12.3f} {row['gbps']:>9.1f} {floor_ms:>10.3f} {ms/floor_ms:>8.2f} {extra:>10.2f}")
            except torch.cuda.OutOfMemoryError as e:  # report, as the table does, and go on
                row.update(error=f"out of memory: {str(e).splitlines()[0]}")
                print(f"{f'{B*T}x{V}':<16} {name:<11} {'OOM':>12}")
            except Exception as e:  # torch.compile may fail on some stacks; keep the other rows
                row.update(error=f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
                print(f"{f'{B*T}x{V}':<16} {name:<11} {'failed':>12}  {row['error']}")
            logits.grad = None
            torch.cuda.empty_cache()
            results.append(row)
        del logits, labels, mask
        torch.cuda.empty_cache()

    report = {
        "suite": "kernels",
        "source": "pytorch",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "torch": torch.__version__,
        "deviceName": torch.cuda.get_device_name(0),
        "copyBandwidthGBs": bw,
        "iters": args.iters,
        "warmup": args.warmup,
        "results": results,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
