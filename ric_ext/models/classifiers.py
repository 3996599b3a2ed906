"""Plaintext classifiers the cloud runs (never retrained), written from the
facts in docs/data.md, and a wrapper that owns their input
normalisation so that every classifier takes images in [0, 1].
"""

from __future__ import annotations

import hashlib
import os
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn


class Normalized(nn.Module):
    """``net((x - mean) / std)`` for x in [0, 1], shape (B, C, H, W).

    ``input_size`` (optional): the square image size the classifier was trained
    at. A classifier with global pooling runs at any size but labels other sizes
    badly, so other sizes raise instead of producing NAEs against a wrong label.
    """

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float], input_size: Optional[int] = None):
        super().__init__()
        self.net = net
        self.input_size = input_size
        self.channels = len(mean)  # what Cipher and the CLI feed it
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.input_size
        if s is not None and tuple(x.shape[-2:]) != (s, s):
            raise ValueError(
                f"this classifier takes {s}x{s} images, got {x.shape[-2]}x{x.shape[-1]} "
                f"(pass --size {s}, or a classifier trained at this size)"
            )
        return self.net((x - self.mean) / self.std)


class ZeroLogit(nn.Module):
    """Appends a constant 0 logit to a classifier's output.

    The C&W margin over these K + 1 logits, max(max_{j != y} Z_j, 0) - Z_y, is
    the authors' variant: their code zeroes the target logit instead of
    masking it out, so the competitor is never below 0 and the attack pushes
    Z_y above 0 as well (more confident NAEs). argmax is unchanged unless
    every logit is negative, so only the attack and the training loss use it.
    """

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.inner(x)
        return torch.cat([z, z.new_zeros(z.shape[0], 1)], 1)


class SVHNNet(nn.Module):
    """ccexam's SVHN CNN: 3 blocks of (conv-bn-relu) x 2 + maxpool, then a 2-layer MLP."""

    def __init__(self, num_classes: int = 10):
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
                nn.Conv2d(cout, cout, 3, padding=1),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            )

        self.features = nn.Sequential(block(3, 32), block(32, 64), block(64, 128))
        self.classifier = nn.Sequential(
            nn.Dropout(0.3), nn.Linear(2048, 256), nn.ReLU(inplace=True), nn.Dropout(0.3), nn.Linear(256, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.pad = (cout - cin) // 2 if (stride != 1 or cin != cout) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        # Option A shortcut: subsample by 2 and zero-pad the channels (no parameters).
        sc = x if self.pad is None else F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(out + sc)


class CifarResNet(nn.Module):
    """He et al.'s CIFAR ResNet (option A), akamaster/pytorch_resnet_cifar10 layout."""

    def __init__(self, n: int, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers, cin = [], 16
        for i, cout in enumerate((16, 32, 64)):
            blocks = []
            for j in range(n):
                blocks.append(_BasicBlock(cin, cout, 2 if (i > 0 and j == 0) else 1))
                cin = cout
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.linear = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


class LFWNet(nn.Module):
    """Our LFW identity classifier (62 identities, 64x64 RGB): four blocks of two
    Conv3x3-BN-ReLU with channels 32, 64, 128, 128 and a 2x2 max-pool after each,
    global average pooling, dropout 0.3, Linear(128, classes). Trained by
    python/recipes/train_lfw_classifier.py (see ric_ext/assets/PROVENANCE.md)."""

    def __init__(self, classes: int = 62, widths: Sequence[int] = (32, 64, 128, 128), stem: int = 1):
        super().__init__()
        # stem > 1: a learned stem x stem convolution of that stride first (3 -> 3 channels), started
        # as average pooling, so the blocks see faces at the scale they were trained at (lfw160:
        # 160 -> 80 px) and the network costs about what it costs at 64x64 (docs/models.md)
        self.stem = None
        if stem > 1:
            self.stem = nn.Conv2d(3, 3, stem, stride=stem, bias=False)
            with torch.no_grad():
                self.stem.weight.zero_()
                for c in range(3):
                    self.stem.weight[c, c] = 1.0 / (stem * stem)
        layers, cin = [], 3
        for w in widths:
            layers += [
                nn.Conv2d(cin, w, 3, padding=1, bias=False),
                nn.BatchNorm2d(w),
                nn.ReLU(inplace=True),
                nn.Conv2d(w, w, 3, padding=1, bias=False),
                nn.BatchNorm2d(w),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            cin = w
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.3), nn.Linear(cin, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stem is not None:
            x = self.stem(x)
        return self.classifier(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


SVHN_MEAN, SVHN_STD = (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)
CIFAR_MEAN, CIFAR_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _load(path: str | os.PathLike) -> dict:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"classifier weights not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unreadable, truncated or not a torch file
        raise ValueError(f"cannot read classifier weights {path}: {exc}") from exc


def load_svhn_classifier(path: str | os.PathLike) -> Normalized:
    """The ccexam SVHN CNN with its normalisation, in eval mode (input: [0,1] RGB 32x32)."""
    net = SVHNNet()
    net.load_state_dict(_load(path), strict=True)
    return Normalized(net, SVHN_MEAN, SVHN_STD, input_size=32).eval()


def load_cifar_resnet(path: str | os.PathLike, depth: int = 20) -> Normalized:
    """akamaster's CIFAR-10 ResNet-20/56 with its normalisation, in eval mode."""
    if (depth - 2) % 6:
        raise ValueError(f"depth must be 6n+2 (20, 32, 44, 56, ...), got {depth}")
    blob = _load(path)
    sd = blob.get("state_dict", blob)
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    net = CifarResNet((depth - 2) // 6)
    missing, unexpected = net.load_state_dict(sd, strict=False)
    # The published files predate BatchNorm's num_batches_tracked buffer;
    # everything else must match exactly.
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(f"{path} does not match ResNet-{depth}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return Normalized(net, CIFAR_MEAN, CIFAR_STD).eval()


def load_lfw_classifier(path: str | os.PathLike) -> Normalized:
    """Our LFW identity classifier with its normalisation, in eval mode (input: [0,1] RGB images of
    the size it was trained at: 64x64 for the bundled one, 160x160 for ``lfw160``)."""
    blob = _load(path)
    if not isinstance(blob, dict) or blob.get("format") != "ric-ext-lfw-classifier":
        raise ValueError(f"{path} is not an LFW classifier saved by python/recipes/train_lfw_classifier.py")
    net = LFWNet(int(blob["classes"]), tuple(blob["widths"]), stem=int(blob.get("stem", 1)))
    net.load_state_dict(blob["state_dict"], strict=True)
    return Normalized(net, blob["mean"], blob["std"], input_size=int(blob["size"])).eval()


def fingerprint(module: nn.Module) -> str:
    """SHA-256 over a module's state dict (names, dtypes, shapes, bytes), hex."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(name.encode() + b"\0" + str(t.dtype).encode() + b"\0" + str(tuple(t.shape)).encode() + b"\0")
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()
