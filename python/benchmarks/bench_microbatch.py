"""Why Cipher runs its networks in fixed micro-batches, measured.

1. Batch dependence: the bundled classifier (forward logits and input
   gradients) and decoder on 40 random inputs, computed in chunks of b rows
   (no padding) versus all 40 at once: the largest difference per b.
2. Throughput of the same networks over 256 images at micro-batch 16/32/64
   or whole batches, in NCHW and channels-last layout (CPU).

    python python/benchmarks/bench_microbatch.py

A benchmark, not a test (tests/test_batching.py checks the invariance itself).
"""

from __future__ import annotations

import argparse
import time

import torch

from ric_ext.batching import run_chunked
from ric_ext.models import bundled_model_path, load_classifier, load_ric


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args()
    model, clf = load_ric(bundled_model_path()), load_classifier("svhn").requires_grad_(False)
    g = torch.Generator().manual_seed(0)

    def clf_step(z, layout=torch.contiguous_format):
        z = z.clone().requires_grad_(True)
        logits = clf(z.contiguous(memory_format=layout))
        (grad,) = torch.autograd.grad(logits[:, 0].sum(), z)
        return logits.detach(), grad

    z = torch.rand(40, 3, 32, 32, generator=g)
    c8 = (torch.rand(40, 3, 32, 32, generator=g) * 255).to(torch.uint8)
    with torch.no_grad():
        ref_dec = model.decrypt(c8, z)
    ref_l, ref_g = clf_step(z)
    print("1. max |difference| against one batch of 40 (chunks of b rows, last chunk shorter)")
    print("| b | classifier logits | input gradient | decoder output |\n| ---: | ---: | ---: | ---: |")
    for b in (1, 2, 3, 4, 5, 8, 16):
        parts = [clf_step(z[i : i + b]) for i in range(0, 40, b)]
        with torch.no_grad():
            dec = torch.cat([model.decrypt(c8[i : i + b], z[i : i + b]) for i in range(0, 40, b)])
        dl = (torch.cat([q[0] for q in parts]) - ref_l).abs().max().item()
        dg = (torch.cat([q[1] for q in parts]) - ref_g).abs().max().item()
        print(f"| {b} | {dl:.2e} | {dg:.2e} | {(dec - ref_dec).abs().max().item():.2e} |")

    x = torch.rand(256, 3, 32, 32, generator=g)
    x8 = (x * 255).to(torch.uint8)

    def timed(fn) -> float:
        fn()
        t = time.perf_counter()
        for _ in range(args.reps):
            fn()
        return 256 * args.reps / (time.perf_counter() - t)

    print(f"\n2. images/s over 256 images ({torch.get_num_threads()} threads, mean of {args.reps} reps)")
    print("| micro-batch | layout | classifier fwd+bwd | encoder | decoder |\n| --- | --- | ---: | ---: | ---: |")
    for mb in (16, 32, 64, None):
        for name, layout in (("NCHW", torch.contiguous_format), ("channels-last", torch.channels_last)):
            cl = lambda t: t.contiguous(memory_format=layout)  # noqa: E731
            a = timed(lambda: run_chunked(lambda zz: clf_step(zz, layout), (x,), mb))
            with torch.no_grad():
                e = timed(lambda: run_chunked(lambda u, v: model.encrypt_uint8(cl(u), cl(v)), (x, x), mb))
                d = timed(lambda: run_chunked(lambda u, v: model.decrypt(cl(u), cl(v)), (x8, x), mb))
            print(f"| {mb or 'whole (256)'} | {name} | {a:.0f} | {e:.0f} | {d:.0f} |", flush=True)


if __name__ == "__main__":
    main()
