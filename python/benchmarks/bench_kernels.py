"""Micro-benchmarks of the fused kernels against eager PyTorch and torch.compile.

For every op and size it prints the median time of the native kernel, of the
equivalent eager PyTorch code (what a user would write without ric_ext), and of
that code under torch.compile, plus the native kernel's effective bandwidth
(bytes it must read + write / time) as a fraction of a memory copy measured in
the same run on the same device.

    python python/benchmarks/bench_kernels.py                 # CPU, the sizes below
    python python/benchmarks/bench_kernels.py --device cuda   # GPU, up to 1024x3x160x160
    python python/benchmarks/bench_kernels.py --json out.json

This is a benchmark, not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from typing import Callable, Dict, List

import torch

import ric_ext
from ric_ext import ops

LAM = 0.8


def timer(device: str, fn: Callable[[], object], min_time: float, max_reps: int = 200) -> float:
    """Median seconds per call after warm-up."""
    for _ in range(2):
        fn()
    if device == "cuda":
        torch.cuda.synchronize()
    times: List[float] = []
    total = 0.0
    while total < min_time and len(times) < max_reps:
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            t = start.elapsed_time(end) / 1e3
        else:
            t0 = time.perf_counter()
            fn()
            t = time.perf_counter() - t0
        times.append(t)
        total += t
    return statistics.median(times)


def copy_bandwidth(device: str, nbytes: int, min_time: float) -> float:
    """Bytes moved (read + write) per second by dst.copy_(src)."""
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    return 2 * src.numel() * 4 / timer(device, lambda: dst.copy_(src), min_time)


# Eager PyTorch versions of each op: the natural code, not the bit-exact reference.
def eager_mask_train(e, z):
    return torch.clamp((e * (1 - LAM) + z * LAM) * 255 + (torch.rand_like(e) - 0.5), 0, 255) / 255


def eager_mask_u8(e, z):
    return torch.clamp(torch.round((e * (1 - LAM) + z * LAM) * 255), 0, 255).to(torch.uint8)


def eager_unmask_u8(c, z):
    return (c.to(z.dtype) / 255 - LAM * z) / (1 - LAM)


def eager_cw(logits, labels, kappa=5.0):
    zy = logits.gather(1, labels[:, None]).squeeze(1)
    other = logits.masked_fill(torch.nn.functional.one_hot(labels, logits.shape[1]).bool(), float("-inf"))
    return torch.clamp_min(other.max(1).values - zy, -kappa)


def eager_pad(x, k, a=0.98):
    # what a user would write given the pad stream k (drawn separately, as torch.rand stands in here)
    return torch.remainder(x * a + k, 1.0)


def eager_digit_unpad(c, k, base=64):
    # what a user would write given the digit stream k (drawn separately, as torch.randint stands in here)
    return torch.remainder(c.to(torch.int16) % base - k, base).to(torch.uint8)


def eager_adam(w, m, v, g, step=1, lr=0.01, b1=0.9, b2=0.999, eps=1e-8):
    m.lerp_(g, 1 - b1)
    v.mul_(b2).addcmul_(g, g, value=1 - b2)
    denom = (v.sqrt() / (1 - b2**step) ** 0.5).add_(eps)
    w.addcdiv_(m, denom, value=-lr / (1 - b1**step))
    return (torch.tanh(w) + 1) / 2


def run(device: str, shapes, min_time: float, compile_: bool) -> Dict[str, object]:
    rows = []
    big = max(torch.Size(s).numel() for s in shapes)
    copy_bw = copy_bandwidth(device, big * 4 * 2, min_time)
    comp = (lambda f: torch.compile(f, dynamic=False)) if compile_ else (lambda f: None)
    c_mask_train, c_mask_u8, c_unmask, c_cw, c_adam, c_pad, c_unpad = map(
        comp, (eager_mask_train, eager_mask_u8, eager_unmask_u8, eager_cw, eager_adam, eager_pad, eager_digit_unpad)
    )
    key = bytes(range(32))
    for shape in shapes:
        B, n = shape[0], torch.Size(shape[1:]).numel()
        numel = B * n
        e = torch.rand(shape, device=device)
        z = torch.rand(shape, device=device)
        c8 = ops.mask_uint8(e, z)
        nonces = torch.randint(0, 256, (B, 12), dtype=torch.uint8, device=device)
        seed = torch.tensor([1, 2], device=device)
        logits = torch.randn(B, 10, device=device)
        labels = torch.randint(0, 10, (B,), device=device)
        w, m, v = (
            torch.randn(shape, device=device),
            torch.zeros(shape, device=device),
            torch.zeros(shape, device=device),
        )
        g = torch.randn(shape, device=device)
        act = torch.ones(B, dtype=torch.bool, device=device)
        cases = [
            # name, bytes moved, native, eager, compiled
            (
                "keyed_uniform",
                numel * 4,
                lambda: ops.keyed_uniform(key, nonces, shape[1:]),
                lambda: torch.rand(shape, device=device),
                None,
            ),
            (
                # native: keystream + pad fused; eager/compiled: torch.rand for the stream, then the pad
                "keyed_pad",
                numel * 8,
                lambda: ops.keyed_pad(e, key, nonces),
                lambda: eager_pad(e, torch.rand(shape, device=device)),
                c_pad and (lambda: c_pad(e, torch.rand(shape, device=device))),
            ),
            (
                # native: keystream + digit unpad fused (decryption's one op); eager/compiled: the stream drawn apart
                "keyed_digit_pad(inverse)",
                numel * 2,
                lambda: ops.keyed_digit_pad(c8, key, nonces, 64, inverse=True),
                lambda: eager_digit_unpad(c8, torch.randint(0, 64, shape, device=device, dtype=torch.int16)),
                c_unpad and (lambda: c_unpad(c8, torch.randint(0, 64, shape, device=device, dtype=torch.int16))),
            ),
            (
                "mask(train)",
                numel * 12,
                lambda: ops.mask(e, z, LAM, quantize="train", seed=seed),
                lambda: eager_mask_train(e, z),
                c_mask_train and (lambda: c_mask_train(e, z)),
            ),
            (
                "mask_uint8",
                numel * 9,
                lambda: ops.mask_uint8(e, z, LAM),
                lambda: eager_mask_u8(e, z),
                c_mask_u8 and (lambda: c_mask_u8(e, z)),
            ),
            (
                "unmask(uint8)",
                numel * 9,
                lambda: ops.unmask(c8, z, LAM),
                lambda: eager_unmask_u8(c8, z),
                c_unmask and (lambda: c_unmask(c8, z)),
            ),
            (
                "cw_margin",
                B * 10 * 4 + B * 12,
                lambda: ops.cw_margin(logits, labels, 5.0),
                lambda: eager_cw(logits, labels),
                c_cw and (lambda: c_cw(logits, labels)),
            ),
            (
                "adam_tanh_step",
                numel * 4 * 8,
                lambda: ops.adam_tanh_step_(w, m, v, g, 1, active=act),
                lambda: eager_adam(w, m, v, g),
                c_adam and (lambda: c_adam(w, m, v, g)),
            ),
        ]
        for name, nbytes, f_nat, f_eager, f_comp in cases:
            t_nat = timer(device, f_nat, min_time)
            t_eager = timer(device, f_eager, min_time)
            t_comp = timer(device, f_comp, min_time) if f_comp else float("nan")
            bw = nbytes / t_nat
            rows.append(
                dict(
                    op=name,
                    shape=list(shape),
                    native_ms=t_nat * 1e3,
                    eager_ms=t_eager * 1e3,
                    compiled_ms=t_comp * 1e3,
                    speedup_vs_eager=t_eager / t_nat,
                    speedup_vs_compiled=t_comp / t_nat,
                    native_GBps=bw / 1e9,
                    frac_of_copy=bw / copy_bw,
                )
            )
    return dict(
        device=device,
        device_name=(torch.cuda.get_device_name() if device == "cuda" else platform.processor() or platform.machine()),
        threads=torch.get_num_threads(),
        copy_GBps=copy_bw / 1e9,
        torch=torch.__version__,
        build=ric_ext.build_info(),
        rows=rows,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--min-time", type=float, default=None, help="seconds of timed calls per case")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile column")
    p.add_argument("--json", help="also write the results as JSON to this path")
    args = p.parse_args()
    if args.device == "cpu":
        shapes = [(256, 3, 32, 32), (64, 3, 160, 160)]
        min_time = args.min_time or 0.3
    else:
        shapes = [(256, 3, 32, 32), (64, 3, 160, 160), (1024, 3, 160, 160)]
        min_time = args.min_time or 0.2
    res = run(args.device, shapes, min_time, not args.no_compile)
    print(
        f"# {res['device']} ({res['device_name']}, {res['threads']} threads), torch {res['torch']}, "
        f"copy bandwidth {res['copy_GBps']:.1f} GB/s (read+write)"
    )
    print(
        f"{'op':<16}{'shape':<20}{'native ms':>10}{'eager ms':>10}{'compile ms':>11}"
        f"{'x eager':>9}{'x compile':>10}{'GB/s':>8}{'% copy':>8}"
    )
    for r in res["rows"]:
        print(
            f"{r['op']:<16}{'x'.join(map(str, r['shape'])):<20}{r['native_ms']:>10.3f}{r['eager_ms']:>10.3f}"
            f"{r['compiled_ms']:>11.3f}{r['speedup_vs_eager']:>9.2f}{r['speedup_vs_compiled']:>10.2f}"
            f"{r['native_GBps']:>8.1f}{100 * r['frac_of_copy']:>7.0f}%"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
