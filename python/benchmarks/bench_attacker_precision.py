"""The security attacker's training step in fp32 and under bfloat16 autocast (``evaluate
--attack-precision``), with and without channels-last, on both inverters (docs/decisions.md).

    python python/benchmarks/bench_attacker_precision.py [--size 64] [--batch 32] [--repeat 5]

Prints seconds per Adam step (forward, MSE loss, backward, step) for each network and mode,
and each mode's ratio to fp32, all from one run. Run it alone: two torch processes slow
each other on a 2-core machine.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
import torch.nn.functional as F

from ric_ext.security.inversion import layout, training_precision
from ric_ext.security.resinv import ResInverter
from ric_ext.security.unet import UNet

MODES = {"fp32": ("fp32", False), "fp32 channels-last": ("fp32", True), "bf16 channels-last": ("bf16", True)}


def step_seconds(
    net: torch.nn.Module, precision: str, channels_last: bool, size: int, batch: int, repeat: int
) -> float:
    x, y = torch.rand(batch, 3, size, size), torch.rand(batch, 3, size, size)
    if channels_last:
        net, x = net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    net, x = layout(net, precision), layout(x, precision)
    opt = torch.optim.Adam(net.parameters(), 1e-3)

    def step() -> None:
        with training_precision(precision):
            out = net(x)
        loss = F.mse_loss(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(2):  # warm-up: oneDNN builds its primitives on first use
        step()
    t = time.perf_counter()
    for _ in range(repeat):
        step()
    return (time.perf_counter() - t) / repeat


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeat", type=int, default=5)
    a = p.parse_args()
    print(
        f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(f"# {a.batch} x 3 x {a.size} x {a.size}, mean of {a.repeat} steps")
    print("| network | mode | s / step | x fp32 |\n| --- | --- | ---: | ---: |")
    for name, cls in (
        ("U-Net (width 32)", lambda: UNet(3, 3, 32)),
        ("resnet (width 32)", lambda: ResInverter(3, 3, 32)),
    ):
        base = None
        for mode, (precision, cl) in MODES.items():
            torch.manual_seed(0)
            s = step_seconds(cls(), precision, cl, a.size, a.batch, a.repeat)
            base = base or s
            print(f"| {name} | {mode} | {s:.3f} | {base / s:.1f} |", flush=True)


if __name__ == "__main__":
    main()
