"""TrainConfig: every setting of a training run (saved in config.json and in each checkpoint).

Each field's help is also its ``train --FIELD`` command-line help (:mod:`ric_ext.options`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Optional

from ..nae import NAEConfig
from ..options import opt
from .schedule import SCHEDULES

MARGINS = ("masked", "authors")


@dataclass
class TrainConfig:
    # data and classifier
    dataset: str = opt("svhn", "'svhn', 'lfw', or an image folder")
    split: str = opt("train", "split of `dataset` to train on")
    data: Optional[str] = opt(None, "data folder (default: RIC_DATA)")
    size: Optional[int] = opt(None, "image size for image folders / LFW")
    classifier: str = opt("svhn", "see ric_ext.models.load_classifier")
    models: Optional[str] = opt(None, "classifier folder (default: RIC_MODELS, else bundled classifiers only)")
    # networks
    width: int = opt(50, "channels of every conv in the trunks (paper: 50)")
    depth: int = opt(4, "convs per trunk branch (paper: 4, even)")
    lam: float = opt(0.8, "masking weight lambda: the NAE's share of each ciphertext pixel (paper: 0.8)")
    decoder_z: bool = opt(False, "the decoder also sees the NAE (not in the paper; see models.networks.Decoder)")
    init: Optional[str] = opt(None, "start from these RIC weights (model file or checkpoint); ignored on resume")
    # loss
    beta: float = opt(10.0, "weight of the recovery MSE in the loss (paper: 10)")
    kappa: float = opt(5.0, "C&W confidence of the loss's classification term (paper: 5)")
    margin: str = opt(
        "masked", "'masked' (docs/scheme.md#nae) or 'authors' (their code: target logit replaced by 0)", choices=MARGINS
    )
    round_frac: float = opt(0.0, "last fraction of the run quantises by rounding (straight-through) instead of dither")
    # optimiser and schedule
    lr: float = opt(1e-4, "peak learning rate")
    schedule: str = opt("constant", "'constant', 'cosine' (warm-up + cosine) or 'onecycle'", choices=SCHEDULES)
    warmup: int = opt(0, "warm-up steps ('constant' and 'cosine')")
    final_lr: float = opt(0.01, "final learning rate as a fraction of lr ('cosine', 'onecycle')")
    ema: float = opt(0.0, "EMA decay of the weights (0: off); validation and best.pt use the EMA")
    grad_clip: float = opt(0.0, "clip the gradients' global norm to this (0: off)")
    batch_size: int = opt(64, "global batch (split across DDP ranks)")
    steps: int = opt(1000, "run length in optimiser steps")
    budget_min: float = opt(
        0.0,
        "also stop after this many minutes of training compute (0: off; the schedule then follows compute, "
        "so the run is not bit-reproducible; training/clock.py)",
    )
    stop_after_min: float = opt(0.0, "end this invocation after this many wall minutes (checkpointed; rerun resumes)")
    amp: str = opt("none", "'bf16': autocast the networks (mask/unmask/NAE stay float32)", choices=("none", "bf16"))
    channels_last: bool = opt(
        True,
        "networks and batches in channels-last layout (bf16 on the 2-core CPU: 1.12x faster steps, docs/decisions.md)",
    )
    # NAEs
    nae_steps: int = opt(100, "most NAE attack steps per image")
    nae_c: float = opt(10.0, "NAE C&W weight c")
    nae_kappa: float = opt(5.0, "NAE C&W confidence kappa")
    nae_lr: float = opt(0.01, "NAE attack Adam learning rate")
    nae_stop: str = opt(
        "margin",
        "'margin' (adaptive, default) or 'fixed' (nae_steps with the authors' early stop)",
        choices=("margin", "fixed"),
    )
    nae_extra_margin: float = opt(1.0, "margin rule: stop at margin nae_kappa + this")
    nae_pool: int = opt(0, "0: fresh NAE per batch; N: N NAEs per class, made once")
    # validation (held-out images, evaluated as `evaluate` does)
    val_every: int = opt(0, "steps between validations (0: off)")
    val_split: str = opt("test", "split of `dataset` to validate on")
    val_start: int = opt(0, "first index of the validation images in that split")
    val_n: int = opt(200, "number of validation images")
    # bookkeeping
    seed: int = opt(0, "seed of initialisation and data order")
    out: str = opt("runs/ric", "run folder (config, checkpoints, logs)")
    log_every: int = opt(10, "steps between log lines")
    ckpt_every: int = opt(100, "steps between checkpoints")
    ckpt_compact: bool = opt(False, "checkpoint.pt with bfloat16 optimiser moments / EMA (about half the size)")
    grid_every: int = opt(100, "steps between preview grids")
    device: str = opt("auto", "cpu | cuda | cuda:N | auto")

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
        return NAEConfig(
            c=self.nae_c,
            kappa=self.nae_kappa,
            steps=self.nae_steps,
            lr=self.nae_lr,
            stop=self.nae_stop,
            extra_margin=self.nae_extra_margin,
            margin=self.margin,
        )

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
