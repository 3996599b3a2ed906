"""What a lazy NAE bank costs for a large classifier (issue 36, item 3): the first-use time of one
label's entries and its size on disk, for a 1,000-class ResNet-18 at 224x224 (torchvision's
architecture, written out here as torchvision is not a dependency; random weights: the cost is the
same) at the default bank settings, or with its patterns at reduced resolution.

    python python/benchmarks/bench_lazy_bank.py --labels 2 [--scale 4]
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import time

import numpy as np
import torch
from torch import nn

from ric_ext import bank_lazy
from ric_ext.bank import BankSettings


class Basic(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.c2, self.b2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.b2(self.c2(torch.relu(self.b1(self.c1(x)))))
        return torch.relu(y + (x if self.down is None else self.down(x)))


def resnet18(classes: int = 1000) -> nn.Module:
    layers, cin = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)], 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [Basic(cin, cout, stride), Basic(cout, cout, 1)]
        cin = cout
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, classes))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--labels", type=int, default=2, help="labels to train (each timed)")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--scale", type=int, default=1, help="patterns at 1/scale of the image's sides (BankSettings)")
    args = p.parse_args()
    torch.manual_seed(0)
    net = resnet18().eval()
    shape = (3, args.size, args.size)
    settings = BankSettings(scale=args.scale)
    bank = bank_lazy.empty("00" * 32, 64, shape, 1000, settings)
    times = []
    for lab in range(args.labels):
        t = time.perf_counter()
        bank = bank_lazy.filled(bank, net, [lab])
        times.append(time.perf_counter() - t)
    buf = io.BytesIO()  # what the bank file's patterns take, compressed as NAEBank.save writes them
    np.savez_compressed(buf, q=bank.q.numpy())
    per_label = len(buf.getvalue()) / args.labels
    out = {
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "date": time.strftime("%Y-%m-%d"),
        "settings": settings.__dict__,
        "first_use_seconds_per_label": [round(t, 1) for t in times],
        "bank_bytes_per_label_compressed": int(per_label),
        "bank_bytes_1000_labels_compressed": int(per_label * 1000),
        "pass_rates": bank.meta["pass_rate"],
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
