#!/usr/bin/env python
"""Train a CIFAR-10 surrogate classifier for portable NAE banks (issue 36) on the 25,000 training
images of ``cifar10_jpeg_train_25k.npz``, never on the test file, and report its accuracy on the
CIFAR-10 test file. Several families, so that an ensemble can mix them and a family can be held out:

- ``vgg``: 3x3 convolutions with batch norm, 32-64-128 channels, max pooling;
- ``mobile``: a MobileNet-like stack of depthwise-separable convolutions;
- ``mixer``: a small MLP-Mixer on 4x4 patches (no convolution after the patch embedding);
- ``resnet``: a ResNet-8 (one basic block per stage, 32-64-128 channels), another depth of the
  published ResNets' family;
- ``vit``: a small vision transformer on 4x4 patches (4 pre-norm blocks, width 128, 4 heads).

    python python/recipes/train_cifar_surrogate.py --data ../shared/data --arch vgg --epochs 15 \
        --out surrogates/vgg.pt2

The file is a classifier file (``ric_ext.models.save_classifier``: torch.export program, inputs in
[0, 1], the training set's normalisation inside), loadable with ``--classifier FILE`` or
``ric-ext models add FILE``. The run keeps ``OUT.resume`` after every epoch and continues from it
when the same command runs again. Recipe: AdamW (lr 2e-3, weight decay 5e-4), cosine schedule,
label smoothing 0.1, reflect-padded random crops of 4 pixels and horizontal flips.
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ric_ext import data
from ric_ext.models import save_classifier


def _conv_bn(cin: int, cout: int, stride: int = 1, groups: int = 1, k: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


def vgg() -> nn.Module:
    layers, cin = [], 3
    for cout in (32, 64, 128):
        layers += [_conv_bn(cin, cout), _conv_bn(cout, cout), nn.MaxPool2d(2)]
        cin = cout
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10))


def mobile() -> nn.Module:
    layers, cin = [_conv_bn(3, 32)], 32
    for cout, stride in ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1)):
        layers += [_conv_bn(cin, cin, stride, groups=cin), _conv_bn(cin, cout, k=1)]
        cin = cout
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, 10))


class _MixerBlock(nn.Module):
    def __init__(self, tokens: int, dim: int):
        super().__init__()
        self.n1, self.n2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.tok = nn.Sequential(nn.Linear(tokens, tokens * 2), nn.GELU(), nn.Linear(tokens * 2, tokens))
        self.ch = nn.Sequential(nn.Linear(dim, dim * 2), nn.GELU(), nn.Linear(dim * 2, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.tok(self.n1(x).transpose(1, 2)).transpose(1, 2)
        return x + self.ch(self.n2(x))


class Mixer(nn.Module):
    def __init__(self, patch: int = 4, dim: int = 128, depth: int = 4):
        super().__init__()
        self.embed = nn.Conv2d(3, dim, patch, patch)
        tokens = (32 // patch) ** 2
        self.blocks = nn.Sequential(*[_MixerBlock(tokens, dim) for _ in range(depth)])
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x).flatten(2).transpose(1, 2)
        return self.head(self.norm(self.blocks(x)).mean(1))


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            _conv_bn(cin, cout, stride), nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        )
        short = cin != cout or stride != 1
        self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)) if short else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + (x if self.short is None else self.short(x)))


def resnet() -> nn.Module:
    blocks = [_Block(32, 32, 1), _Block(32, 64, 2), _Block(64, 128, 2)]
    return nn.Sequential(_conv_bn(3, 32), *blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10))


class ViT(nn.Module):
    def __init__(self, patch: int = 4, dim: int = 128, depth: int = 4, heads: int = 4):
        super().__init__()
        self.embed = nn.Conv2d(3, dim, patch, patch)
        self.pos = nn.Parameter(torch.zeros(1, (32 // patch) ** 2, dim))
        layer = nn.TransformerEncoderLayer(dim, heads, dim * 2, dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True)  # fmt: skip
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x).flatten(2).transpose(1, 2) + self.pos
        return self.head(self.norm(self.blocks(x)).mean(1))


ARCHS = {"vgg": vgg, "mobile": mobile, "mixer": Mixer, "resnet": resnet, "vit": ViT}


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Reflect-padded random crops of 4 pixels and horizontal flips, per image."""
    B = x.shape[0]
    pad = F.pad(x, (4, 4, 4, 4), mode="reflect")
    dy, dx = torch.randint(0, 9, (2, B), generator=gen)
    out = torch.stack([pad[i, :, dy[i] : dy[i] + 32, dx[i] : dx[i] + 32] for i in range(B)])
    flip = torch.rand(B, generator=gen) < 0.5
    out[flip] = out[flip].flip(-1)
    return out


@torch.no_grad()
def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor, mean, std) -> float:
    net.eval()
    hits = sum(
        int((net((x[i : i + 500] - mean) / std).argmax(1) == y[i : i + 500]).sum()) for i in range(0, len(x), 500)
    )
    return hits / len(x)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="data folder (default: RIC_DATA)")
    p.add_argument("--arch", choices=sorted(ARCHS), required=True)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--limit", type=int, default=None, help="train on the first N images only (a rehearsal)")
    p.add_argument("--test-n", type=int, default=10000, help="CIFAR-10 test images to report on")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="the classifier file to write (.pt2)")
    args = p.parse_args()
    if os.path.exists(args.out):
        raise SystemExit(f"{args.out} exists; choose another --out")
    d = np.load(os.path.join(data.data_dir(args.data), "cifar10_jpeg_train_25k.npz"))
    order = data.class_interleaved(d["labels"])[: args.limit]  # the file is sorted by class
    x = torch.from_numpy(d["images"][order]).permute(0, 3, 1, 2).float() / 255.0
    y = torch.from_numpy(d["labels"][order])
    mean, std = x.mean((0, 2, 3)).view(1, 3, 1, 1), x.std((0, 2, 3)).view(1, 3, 1, 1)
    tx, ty = data.stack(data.cifar10(args.data), range(args.test_n))
    torch.manual_seed(args.seed)
    net = ARCHS[args.arch]()
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=5e-4)
    steps_per_epoch = math.ceil(len(x) / args.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, args.lr, total_steps=args.epochs * steps_per_epoch, pct_start=0.15, anneal_strategy="cos"
    )
    gen = torch.Generator().manual_seed(args.seed)
    start, resume = 0, args.out + ".resume"
    if os.path.exists(resume):
        st = torch.load(resume, weights_only=False)
        net.load_state_dict(st["net"]), opt.load_state_dict(st["opt"]), sched.load_state_dict(st["sched"])
        gen.set_state(st["gen"])
        start = st["epoch"]
        print(f"resumed after epoch {start}")
    for epoch in range(start, args.epochs):
        t = time.perf_counter()
        net.train()
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), args.batch_size):
            idx = order[i : i + args.batch_size]
            xb = (augment(x[idx], gen) - mean) / std
            loss = F.cross_entropy(net(xb), y[idx], label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        torch.save(
            {"net": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(), "gen": gen.get_state(),
             "epoch": epoch + 1}, resume + ".tmp",
        )  # fmt: skip
        os.replace(resume + ".tmp", resume)
        print(f"epoch {epoch + 1}/{args.epochs}: loss {loss.item():.3f}, {time.perf_counter() - t:.0f} s", flush=True)
    acc = accuracy(net, tx, ty, mean, std)
    print(f"{args.arch}: CIFAR-10 test accuracy {100 * acc:.2f}% on {len(tx)} images")
    classes = [str(c) for c in d["classes"]]
    save_classifier(
        args.out, net.eval(), input_size=32, mean=mean.flatten().tolist(), std=std.flatten().tolist(), classes=classes,
        source=f"python/recipes/train_cifar_surrogate.py --arch {args.arch} --epochs {args.epochs}; test {acc:.4f}",
    )  # fmt: skip
    os.remove(resume)


if __name__ == "__main__":
    main()
