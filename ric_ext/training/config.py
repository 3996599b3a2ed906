"""TrainConfig: every setting of a training run (saved in config.json and in each checkpoint)."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Optional

from ..nae import NAEConfig
from .schedule import SCHEDULES

MARGINS = ("masked", "authors")


@dataclass
class TrainConfig:
    # data and classifier
    dataset: str = "svhn"           # 'svhn', 'lfw', or an image folder
    split: str = "train"
    data: Optional[str] = None      # data folder (default: RIC_DATA or ../shared/data)
    size: Optional[int] = None      # image size for image folders / LFW
    classifier: str = "svhn"        # see ric_ext.models.load_classifier
    models: Optional[str] = None    # classifier folder (default: RIC_MODELS or ../shared/models)
    # networks
    width: int = 50
    depth: int = 4
    lam: float = 0.8
    decoder_z: bool = False         # the decoder also sees the NAE (not in the paper; see models.networks.Decoder)
    init: Optional[str] = None      # start from these RIC weights (model file or checkpoint); ignored on resume
    # loss
    beta: float = 10.0
    kappa: float = 5.0
    margin: str = "masked"          # 'masked' (SPEC) or 'authors' (their code: target logit replaced by 0)
    round_frac: float = 0.0         # last fraction of the run quantises by rounding (straight-through) instead of dither
    # optimiser and schedule
    lr: float = 1e-4                # peak learning rate
    schedule: str = "constant"      # 'constant', 'cosine' (warm-up + cosine) or 'onecycle'
    warmup: int = 0                 # warm-up steps ('constant' and 'cosine')
    final_lr: float = 0.01          # final learning rate as a fraction of lr ('cosine', 'onecycle')
    ema: float = 0.0                # EMA decay of the weights (0: off); validation and best.pt use the EMA
    grad_clip: float = 0.0          # clip the gradients' global norm to this (0: off)
    batch_size: int = 64            # global batch (split across DDP ranks)
    steps: int = 1000               # run length in optimiser steps
    budget_min: float = 0.0         # also stop after this many minutes of training compute (0: off; the schedule then follows compute, so the run is not bit-reproducible), see clock.py
    stop_after_min: float = 0.0     # end this invocation after this many wall minutes (checkpointed; rerun resumes)
    amp: str = "none"               # 'bf16': autocast the networks (mask/unmask/NAE stay float32)
    channels_last: bool = True      # networks and batches in channels-last layout (bf16 on the 2-core CPU: 1.12x faster steps, NOTES.md)
    # NAEs
    nae_steps: int = 100
    nae_c: float = 10.0
    nae_kappa: float = 5.0
    nae_lr: float = 0.01
    nae_stop: str = "margin"        # 'margin' (adaptive, default) or 'fixed' (nae_steps with the authors' early stop)
    nae_extra_margin: float = 1.0   # margin rule: stop at margin nae_kappa + this
    nae_pool: int = 0               # 0: fresh NAE per batch; N: N NAEs per class, made once
    # validation (held-out images, evaluated as `evaluate` does)
    val_every: int = 0              # steps between validations (0: off)
    val_split: str = "test"         # split of `dataset` to validate on
    val_start: int = 0              # first index of the validation images in that split
    val_n: int = 200                # number of validation images
    # bookkeeping
    seed: int = 0
    out: str = "runs/ric"
    log_every: int = 10
    ckpt_every: int = 100
    ckpt_compact: bool = False      # checkpoint.pt with bfloat16 optimiser moments / EMA (about half the size)
    grid_every: int = 100
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.amp not in ("none", "bf16"):
            raise ValueError(f"amp must be 'none' or 'bf16', got {self.amp!r}")
        for name in ("batch_size", "steps", "log_every", "ckpt_every", "grid_every", "val_n"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("nae_pool", "warmup", "val_every", "val_start", "budget_min", "grad_clip", "stop_after_min"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.nae_stop not in ("margin", "fixed"):
            raise ValueError(f"nae_stop must be 'margin' or 'fixed' for training, got {self.nae_stop!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.margin not in MARGINS:
            raise ValueError(f"margin must be one of {MARGINS}, got {self.margin!r}")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema must be in [0, 1), got {self.ema}")
        if not 0.0 <= self.final_lr <= 1.0:
            raise ValueError(f"final_lr must be in [0, 1], got {self.final_lr}")
        if not 0.0 <= self.round_frac <= 1.0:
            raise ValueError(f"round_frac must be in [0, 1], got {self.round_frac}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")

    def nae_config(self) -> NAEConfig:
        return NAEConfig(c=self.nae_c, kappa=self.nae_kappa, steps=self.nae_steps, lr=self.nae_lr,
                         stop=self.nae_stop, extra_margin=self.nae_extra_margin, margin=self.margin)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
