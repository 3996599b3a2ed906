"""The training loop. Each concern lives in its own unit next to this file:

- config.py      TrainConfig (every setting)
- data_order.py  which images / random numbers step s uses (pure functions of (seed, s))
- nae_source.py  fresh or pooled NAEs for a batch
- schedule.py    learning-rate schedules (pure functions of progress)
- ema.py         weight EMA
- clock.py       the compute clock of ``budget_min``
- validation.py  held-out evaluation as ``evaluate`` does it
- checkpoint.py  save / load / compact checkpoints, model selection score

    loss = beta * MSE(x_hat, x) + mean_batch g(c),   g = targeted C&W margin of the
    frozen classifier on the (dither-quantised) ciphertext c towards y = f(x)

Multi-GPU: launch with ``torchrun``; each rank takes its slice of the global
batch and gradients are averaged by DDP.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from typing import Optional

import torch
import torch.distributed as dist
import torch.nn.functional as F

from .. import data as data_mod
from .. import metrics, ops
from ..errors import CheckpointError
from ..keys import hkdf_sha256
from ..models.networks import RIC
from ..models.registry import load_classifier, load_ric, save_ric
from ..nae import NAEConfig
from . import checkpoint as ckpt
from .clock import ComputeClock
from .config import TrainConfig
from .data_order import batch_indices, step_rng
from .ema import WeightEMA
from .nae_source import NAESource
from .schedule import lr_factor
from .validation import Validator


def _init_state(src: RIC, dst: RIC, name: str) -> dict:
    """``src``'s weights for ``dst``. A decoder without z may start a decoder that sees z:
    the z input channels of its first convolutions start at zero, so the initial
    network computes exactly what ``src`` computes and training opens the new path."""
    a, b = dict(src.config()), dict(dst.config())
    widen = not a.pop("decoder_z", False) and b.pop("decoder_z", False)
    if a != b or (not widen and src.config() != dst.config()):
        raise CheckpointError(f"--init {name} holds RIC{src.config()}, but this run trains RIC{dst.config()}")
    sd = src.state_dict()
    if widen:
        for i in range(3):
            k = f"decoder.trunk.branches.{i}.0.weight"
            sd[k] = torch.cat([sd[k], torch.zeros_like(sd[k])], 1)
    return sd


class Trainer:
    """Holds model, optimiser, classifier and data; ``train()`` runs until ``steps`` or ``budget_min``.

    Resumes from ``<out>/checkpoint.pt`` when it exists. Outputs in ``out``:
    config.json, metrics.jsonl (training steps), validation.jsonl, best.pt
    (the weights with the best validation score, EMA weights when ``ema``),
    checkpoint.pt, grid_<step>.png.
    """

    def __init__(self, config: TrainConfig, *, dataset=None, classifier=None, val_dataset=None, progress: bool = True):
        self.cfg = cfg = config
        self._setup_distributed()
        self.dataset = dataset if dataset is not None else data_mod.dataset(cfg.dataset, cfg.split, cfg.data, cfg.size)
        if len(self.dataset) < 1:
            raise ValueError("the training dataset is empty")
        self.classifier = classifier if classifier is not None else load_classifier(cfg.classifier, cfg.models)
        self.classifier = self.classifier.to(self.device).eval().requires_grad_(False)
        x0, _ = self.dataset[0]
        self.shape = tuple(x0.shape)
        self.model = self._build_model()
        self.net = (
            torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
            if self.distributed
            else self.model
        )
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.ema = WeightEMA(self.model, cfg.ema) if cfg.ema > 0 else None
        noise_key = hkdf_sha256(cfg.seed.to_bytes(8, "little", signed=True), b"ric-ext training noise")
        self.naes = NAESource(
            self.classifier, cfg.nae_config(), noise_key, self.shape, cfg.seed, cfg.nae_pool, self.rank, self.device
        )
        self.validator = self._build_validator(val_dataset) if cfg.val_every > 0 and self.rank == 0 else None
        self.step = 0
        self.clock = ComputeClock()
        self.best = float("-inf")
        self.progress = progress and self.rank == 0
        self.ckpt_path = os.path.join(cfg.out, "checkpoint.pt")
        if os.path.exists(self.ckpt_path):
            self.load_checkpoint(self.ckpt_path)

    # -- setup -----------------------------------------------------------------
    def _setup_distributed(self) -> None:
        cfg = self.cfg
        self.distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
        self._owns_process_group = self.distributed and not dist.is_initialized()
        if self._owns_process_group:
            dist.init_process_group("nccl" if torch.cuda.is_available() and cfg.device != "cpu" else "gloo")
        self.rank = dist.get_rank() if self.distributed else 0
        self.world = dist.get_world_size() if self.distributed else 1
        if cfg.batch_size % self.world:
            raise ValueError(f"batch_size {cfg.batch_size} must be divisible by the number of ranks {self.world}")
        if cfg.device == "auto":
            dev = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"
        else:
            dev = cfg.device
        self.device = torch.device(dev)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)

    def _build_model(self) -> RIC:
        cfg = self.cfg
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's RNG
            torch.manual_seed(cfg.seed)
            model = RIC(self.shape[0], cfg.width, cfg.depth, cfg.lam, decoder_z=cfg.decoder_z)
        if cfg.init:
            model.load_state_dict(_init_state(load_ric(cfg.init), model, cfg.init))
        model = model.to(self.device)
        return model.to(memory_format=torch.channels_last) if cfg.channels_last else model

    def _build_validator(self, val_dataset) -> Validator:
        cfg = self.cfg
        ds = (
            val_dataset if val_dataset is not None else data_mod.dataset(cfg.dataset, cfg.val_split, cfg.data, cfg.size)
        )
        hi = min(len(ds), cfg.val_start + cfg.val_n)
        if hi <= cfg.val_start:
            raise ValueError(
                f"no validation images: split {cfg.val_split!r} has {len(ds)} images, val_start is {cfg.val_start}"
            )
        x, _ = data_mod.stack(ds, list(range(cfg.val_start, hi)))
        # The deployed attack (ciphertext rule) with this run's NAE settings, as `evaluate` would use them.
        nae = NAEConfig(c=cfg.nae_c, kappa=cfg.nae_kappa, steps=cfg.nae_steps, lr=cfg.nae_lr, margin=cfg.margin)
        return Validator(x, self.classifier, seed=cfg.seed, nae=nae)

    # -- schedule --------------------------------------------------------------
    def progress_fraction(self) -> float:
        """Fraction of the run done: the further of steps and compute budget."""
        p = self.step / self.cfg.steps
        if self.cfg.budget_min > 0:
            p = max(p, self.clock.spent_s / (60 * self.cfg.budget_min))
        return min(p, 1.0)

    def _sync_clock(self) -> None:
        if self.distributed and self.cfg.budget_min > 0:  # every rank must agree on the LR and on stopping
            t = torch.tensor([self.clock.spent_s], dtype=torch.float64, device=self.device)
            dist.broadcast(t, 0)
            self.clock.spent_s = float(t)

    def current_lr(self) -> float:
        cfg = self.cfg
        return cfg.lr * lr_factor(cfg.schedule, self.progress_fraction(), self.step, cfg.warmup, cfg.final_lr)

    # -- one step --------------------------------------------------------------
    def _loss_logits(self, c: torch.Tensor) -> torch.Tensor:
        logits = self.classifier(c).float()
        if self.cfg.margin == "authors":  # see models.ZeroLogit
            logits = torch.cat([logits, logits.new_zeros(logits.shape[0], 1)], 1)
        return logits

    def train_step(self) -> dict:
        cfg, step = self.cfg, self.step
        x, _ = data_mod.stack(
            self.dataset, batch_indices(len(self.dataset), cfg.batch_size, step, cfg.seed, self.rank, self.world)
        )
        x = x.to(self.device)
        with torch.no_grad():
            y = self.classifier(x).argmax(1)
        t0 = time.perf_counter()
        z, nae_steps = self.naes.for_step(step, y)
        if cfg.channels_last:
            x, z = (t.contiguous(memory_format=torch.channels_last) for t in (x, z))
        self._sync_device()
        t_nae = time.perf_counter() - t0
        lr = self.current_lr()
        for group in self.opt.param_groups:
            group["lr"] = lr
        rounding = cfg.round_frac > 0 and self.progress_fraction() >= 1 - cfg.round_frac
        g = step_rng(cfg.seed, step, 2 + 10 * self.rank)
        seed = torch.randint(-(2**62), 2**62, (2,), dtype=torch.int64, generator=g).to(self.device)
        self.model.train()
        amp = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.amp == "bf16")
        with amp:
            c, x_hat = self.net(x, z, quantize="eval" if rounding else "train", seed=None if rounding else seed)
            mse = F.mse_loss(x_hat.float(), x)
            logits = self._loss_logits(c)
        cw = ops.cw_margin(logits, y, cfg.kappa, targeted=True).mean()
        loss = cfg.beta * mse + cw
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = (
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            if cfg.grad_clip > 0
            else torch.zeros(())
        )
        self.opt.step()
        if self.ema is not None:
            self.ema.update(self.model)
        self._sync_device()
        t_all = time.perf_counter() - t0
        self.clock.charge(t_all)
        self._sync_clock()
        self.step += 1
        with torch.no_grad():
            agree = (logits.argmax(1) == y).float().mean()
            p = metrics.psnr(x_hat.detach().clamp(0, 1), x).clamp(max=100).mean()
            vals = torch.stack([loss.detach(), mse.detach(), cw.detach(), p.float(), agree]).float()
            if self.distributed:  # log the mean over ranks
                dist.all_reduce(vals)
                vals /= self.world
        loss_v, mse_v, cw_v, p_v, agree_v = vals.tolist()
        return {
            "step": self.step,
            "loss": loss_v,
            "mse": mse_v,
            "cw": cw_v,
            "psnr_train": p_v,
            "agree_train": agree_v,
            "lr": lr,
            "grad_norm": float(gnorm),
            "rounding": rounding,
            "nae_s": t_nae,
            "nae_steps": nae_steps,
            "step_s": t_all,
            "compute_s": self.clock.spent_s,
            "images_per_s": x.shape[0] * self.world / t_all,
        }

    def _sync_device(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    # -- validation ------------------------------------------------------------
    def eval_model(self) -> RIC:
        """The weights validation and export use: the EMA when enabled, else the live model."""
        return self.ema.model if self.ema is not None else self.model

    def validate(self) -> Optional[dict]:
        """Evaluate the held-out set; keep best.pt; append to validation.jsonl (rank 0 only)."""
        if self.validator is None:
            return None
        rec = {"step": self.step, "compute_s": self.clock.spent_s, **self.validator(self.eval_model())}
        score = ckpt.best_score(rec)
        rec["best"] = score > self.best
        if rec["best"]:
            self.best = score
            save_ric(
                os.path.join(self.cfg.out, "best.pt"),
                self.eval_model(),
                settings=self.settings(),
                extra={
                    "step": self.step,
                    "weights": "ema" if self.ema is not None else "raw",
                    **{k: v for k, v in rec.items() if k.startswith("val_")},
                },
            )
        with open(os.path.join(self.cfg.out, "validation.jsonl"), "a") as f:
            f.write(json.dumps(rec) + "\n")
        return rec

    def settings(self) -> dict:
        """What the trained model carries: classifier, input size, channels, NAE settings, scheme."""
        from ..models.settings import training_settings

        if getattr(self, "_settings", None) is None:  # the classifier's fingerprint, hashed once
            self._settings = training_settings(self.cfg, self.classifier, self.shape)
        return self._settings

    # -- checkpoints -----------------------------------------------------------
    def checkpoint(self) -> dict:
        return {
            "format": ckpt.FORMAT,
            "version": 2,
            "step": self.step,
            "config": asdict(self.cfg),
            "model_config": self.model.config(),
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "ema": self.ema.state_dict() if self.ema else None,
            "compute_s": self.clock.spent_s,
            "best": self.best,
            "settings": self.settings(),
        }

    def save_checkpoint(self, path: Optional[str] = None, compact: bool = False) -> None:
        if self.rank == 0:
            ckpt.save(path or self.ckpt_path, self.checkpoint(), compact=compact)

    def load_checkpoint(self, path: str) -> None:
        blob = ckpt.load(path, self.device)
        if blob["model_config"] != self.model.config():
            raise CheckpointError(f"checkpoint {path} is for RIC{blob['model_config']}, not RIC{self.model.config()}")
        try:
            self.model.load_state_dict(blob["model"], strict=True)
            ckpt.restore_optimizer(self.opt, blob["optimizer"], bool(blob.get("compact")))
            if self.ema is not None:
                if blob.get("ema") is None:  # EMA switched on mid-run: start it from the current weights
                    self.ema = WeightEMA(self.model, self.cfg.ema)
                else:
                    self.ema.load_state_dict(blob["ema"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"checkpoint {path} does not fit the model: {exc}") from None
        self.step = int(blob["step"])
        self.clock = ComputeClock(float(blob.get("compute_s", 0.0)))
        self.best = float(blob.get("best", float("-inf")))

    # -- grids -----------------------------------------------------------------
    @torch.no_grad()
    def save_grid(self, path: str, n: int = 8) -> None:
        """Rows of: plaintext | NAE | ciphertext | recovered | |error| x 20."""
        x, _ = data_mod.stack(self.dataset, list(range(min(n, len(self.dataset)))))
        x = x.to(self.device)
        z = self.naes.sample(self.classifier(x).argmax(1))
        model = self.eval_model()
        was = model.training
        model.eval()
        c = model.encrypt(x, z, quantize="eval")
        x_hat = model.decrypt(c, z)
        model.train(was)
        err = ((x_hat - x).abs() * 20).clamp(0, 1)
        rows = [torch.cat(list(t), dim=-1) for t in zip(x, z, c, x_hat, err)]
        data_mod.save_image(path, torch.cat(rows, dim=-2), overwrite=True)

    # -- loop ------------------------------------------------------------------
    def done(self) -> bool:
        """The run is over (steps or compute budget reached)."""
        return self.step >= self.cfg.steps or (self.cfg.budget_min > 0 and self.progress_fraction() >= 1.0)

    def _chunk_over(self, started: float) -> bool:
        """This invocation's wall-clock allowance (``stop_after_min``) is used up; every rank must agree."""
        if self.cfg.stop_after_min <= 0:
            return False
        over = torch.tensor([float(time.time() - started >= 60 * self.cfg.stop_after_min)], device=self.device)
        if self.distributed:
            dist.broadcast(over, 0)
        return bool(over.item())

    def train(self) -> list:
        cfg = self.cfg
        if self.rank == 0:
            os.makedirs(cfg.out, exist_ok=True)
            with open(os.path.join(cfg.out, "config.json"), "w") as f:
                json.dump(asdict(cfg), f, indent=2)
        log_path = os.path.join(cfg.out, "metrics.jsonl")
        history = []
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=cfg.steps, initial=self.step, desc="train", unit="step")
        started = time.time()
        while not self.done():
            rec = self.train_step()
            history.append(rec)
            last = self.done() or self._chunk_over(started)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(
                    loss=f"{rec['loss']:.4f}", psnr=f"{rec['psnr_train']:.1f}", agree=f"{rec['agree_train']:.2f}"
                )
            if self.rank == 0 and (self.step % cfg.log_every == 0 or last):
                with open(log_path, "a") as f:
                    f.write(json.dumps(rec) + "\n")
            if cfg.val_every > 0 and (self.step % cfg.val_every == 0 or last):
                self.validate()
            if self.step % cfg.ckpt_every == 0 or last:
                self.save_checkpoint(compact=cfg.ckpt_compact)
            if self.rank == 0 and (self.step % cfg.grid_every == 0 or last):
                self.save_grid(os.path.join(cfg.out, f"grid_{self.step:07d}.png"))
            if last:
                break
        if bar is not None:
            bar.close()
        if self._owns_process_group:
            # Tear down the group we created: a rank exiting with live gloo/NCCL
            # threads can abort ("terminate called without an active exception").
            dist.barrier()
            dist.destroy_process_group()
            self._owns_process_group = False
        return history
