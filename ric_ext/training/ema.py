"""Exponential moving average of the model's weights (evaluated and exported instead of the raw weights)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class WeightEMA:
    """ema = d * ema + (1 - d) * w after every optimiser step, with d = min(decay, (1 + t) / (10 + t)).

    The warm-up of d keeps the first averages from being dominated by the
    random initial weights. Buffers (none in RIC) are copied, not averaged.
    """

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.updates = 0
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for e, p in zip(self.model.parameters(), model.parameters()):
            e.lerp_(p.detach(), 1 - d)
        for e, b in zip(self.model.buffers(), model.buffers()):
            e.copy_(b)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "model": self.model.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.updates = int(state["updates"])
        self.model.load_state_dict(state["model"], strict=True)
