"""The public-model attacker's second inverter: a deeper full-resolution residual CNN.

No down-sampling (a U-Net's pooling may average away what a pixel-wise attacker
needs); dilations 1, 2, 4, 8 repeat so the receptive field covers a 32x32 image
after two cycles. Width w, ``blocks`` residual blocks of two 3x3 convs each,
sigmoid output in [0, 1]. About 0.6 M parameters at w = 48, 8 blocks.
"""

from __future__ import annotations

import torch
from torch import nn


class _Block(nn.Module):
    def __init__(self, width: int, dilation: int):
        super().__init__()
        self.a = nn.Conv2d(width, width, 3, padding=dilation, dilation=dilation)
        self.b = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.b(torch.relu(self.a(torch.relu(h))))


class ResInverter(nn.Module):
    def __init__(self, cin: int, cout: int, width: int = 48, blocks: int = 8):
        super().__init__()
        self.inp = nn.Conv2d(cin, width, 3, padding=1)
        self.blocks = nn.Sequential(*[_Block(width, (1, 2, 4, 8)[i % 4]) for i in range(blocks)])
        self.out = nn.Conv2d(width, cout, 3, padding=1)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.out(torch.relu(self.blocks(self.inp(c)))))
