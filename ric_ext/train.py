"""Training the RIC networks (SPEC.md "Training").

    loss = beta * MSE(x_hat, x) + mean_batch g(c),   g = targeted C&W margin of the
    frozen classifier on the (dither-quantised) ciphertext c towards y = f(x)

Adam (lr 1e-4), batch 64, a fresh NAE for every batch by default, made with
the adaptive attack (``nae_stop="margin"``: each image stops once its margin
reaches kappa + ``nae_extra_margin``, ~8 steps on SVHN instead of 100), so a
fresh NAE costs little more than a pool. ``nae_pool`` > 0 instead makes N NAEs
per class once and samples from them (the NAE depends only on key, nonce and
label, so this is the same distribution with less variety).

Every random choice of step s (data order, nonces, dither) is a function of
(seed, s) alone, so resuming from a checkpoint gives exactly the step an
uninterrupted run would take. Multi-GPU: launch with ``torchrun``; each rank
takes its slice of the global batch and gradients are averaged by DDP.

API: ``Trainer(TrainConfig(...)).train()``; CLI: ``python -m ric_ext train``.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, fields
from typing import Optional

import torch
import torch.distributed as dist
import torch.nn.functional as F

from . import data as data_mod
from . import metrics, ops
from .errors import CheckpointError
from .io_utils import atomic_write
from .keys import hkdf_sha256
from .models.networks import RIC
from .models.registry import load_classifier
from .nae import NAEConfig, NAEGenerator


@dataclass
class TrainConfig:
    dataset: str = "svhn"           # 'svhn', 'lfw', or an image folder
    split: str = "train"
    data: Optional[str] = None      # data folder (default: RIC_DATA or ../shared/data)
    size: Optional[int] = None      # image size for image folders / LFW
    classifier: str = "svhn"        # see ric_ext.models.load_classifier
    models: Optional[str] = None    # classifier folder (default: RIC_MODELS or ../shared/models)
    width: int = 50
    depth: int = 4
    lam: float = 0.8
    beta: float = 10.0
    kappa: float = 5.0
    lr: float = 1e-4
    batch_size: int = 64            # global batch (split across DDP ranks)
    steps: int = 1000
    nae_steps: int = 100
    nae_c: float = 10.0
    nae_kappa: float = 5.0
    nae_lr: float = 0.01
    nae_stop: str = "margin"        # 'margin' (adaptive, default) or 'fixed' (nae_steps with the authors' early stop)
    nae_extra_margin: float = 1.0   # margin rule: stop at margin nae_kappa + this
    nae_pool: int = 0               # 0: fresh NAE per batch; N: N NAEs per class, made once
    seed: int = 0
    out: str = "runs/ric"
    log_every: int = 10
    ckpt_every: int = 100
    grid_every: int = 100
    device: str = "auto"
    amp: str = "none"               # 'bf16': autocast the networks (mask/unmask/NAE stay float32)

    def __post_init__(self) -> None:
        if self.amp not in ("none", "bf16"):
            raise ValueError(f"amp must be 'none' or 'bf16', got {self.amp!r}")
        for name in ("batch_size", "steps", "log_every", "ckpt_every", "grid_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.nae_pool < 0:
            raise ValueError(f"nae_pool must be >= 0, got {self.nae_pool}")
        if self.nae_stop not in ("margin", "fixed"):
            raise ValueError(f"nae_stop must be 'margin' or 'fixed' for training, got {self.nae_stop!r}")

    def nae_config(self) -> NAEConfig:
        return NAEConfig(c=self.nae_c, kappa=self.nae_kappa, steps=self.nae_steps, lr=self.nae_lr,
                         stop=self.nae_stop, extra_margin=self.nae_extra_margin)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _rng(seed: int, step: int, stream: int) -> torch.Generator:
    """Generator for one purpose of one step: a pure function of (seed, step, stream)."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 7 + stream)


class Trainer:
    """Holds model, optimiser, classifier and data; ``train()`` runs to ``config.steps``.

    Resumes from ``<out>/checkpoint.pt`` when it exists.
    """

    def __init__(self, config: TrainConfig, *, dataset=None, classifier=None, progress: bool = True):
        self.cfg = cfg = config
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
        self.dataset = dataset if dataset is not None else data_mod.dataset(cfg.dataset, cfg.split, cfg.data, cfg.size)
        if len(self.dataset) < 1:
            raise ValueError("the training dataset is empty")
        self.classifier = (classifier if classifier is not None else load_classifier(cfg.classifier, cfg.models))
        self.classifier = self.classifier.to(self.device).eval().requires_grad_(False)
        x0, _ = self.dataset[0]
        self.shape = tuple(x0.shape)
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's RNG
            torch.manual_seed(cfg.seed)
            self.model = RIC(self.shape[0], cfg.width, cfg.depth, cfg.lam).to(self.device)
        self.net = (torch.nn.parallel.DistributedDataParallel(self.model, device_ids=[self.device.index]
                                                              if self.device.type == "cuda" else None)
                    if self.distributed else self.model)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.nae = NAEGenerator(self.classifier, cfg.nae_config())
        self.noise_key = hkdf_sha256(cfg.seed.to_bytes(8, "little", signed=True), b"ric-ext training noise")
        self.step = 0
        self.pool: Optional[torch.Tensor] = None
        self.progress = progress and self.rank == 0
        self.ckpt_path = os.path.join(cfg.out, "checkpoint.pt")
        if os.path.exists(self.ckpt_path):
            self.load_checkpoint(self.ckpt_path)

    # -- data ------------------------------------------------------------------
    def batch_indices(self, step: int) -> list:
        """This rank's dataset indices for ``step`` (epoch permutations seeded by (seed, epoch))."""
        n, gb = len(self.dataset), self.cfg.batch_size
        start = step * gb
        out = []
        while len(out) < gb:
            epoch, pos = divmod(start + len(out), n)
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.cfg.seed * 7919 + epoch))
            out += perm[pos:pos + gb - len(out)].tolist()
        per = gb // self.world
        return out[self.rank * per:(self.rank + 1) * per]

    def _nae_for(self, step: int, labels: torch.Tensor) -> torch.Tensor:
        g = _rng(self.cfg.seed, step, 1 + 10 * self.rank)
        if self.cfg.nae_pool <= 0:
            nonces = torch.randint(0, 256, (labels.shape[0], 12), dtype=torch.uint8, generator=g)
            res = self.nae.generate(self.noise_key, nonces, labels, self.shape)
            self._nae_steps = float(res.steps.float().mean())
            return res.z
        if self.pool is None:
            self.pool = self._make_pool()
        pick = torch.randint(0, self.cfg.nae_pool, (labels.shape[0],), generator=g).to(self.device)
        return self.pool[labels, pick]

    def _make_pool(self) -> torch.Tensor:
        """(K, N, C, H, W): N NAEs per class from fixed nonces (the same on every rank and resume)."""
        K = int(self.classifier(torch.zeros(1, *self.shape, device=self.device)).shape[1])
        P = self.cfg.nae_pool
        g = torch.Generator().manual_seed(self.cfg.seed * 31 + 5)
        nonces = torch.randint(0, 256, (K * P, 12), dtype=torch.uint8, generator=g)
        labels = torch.arange(K).repeat_interleave(P)
        zs = [self.nae(self.noise_key, nonces[i:i + 256], labels[i:i + 256], self.shape)
              for i in range(0, K * P, 256)]
        return torch.cat(zs).reshape(K, P, *self.shape)

    # -- one step --------------------------------------------------------------
    def train_step(self) -> dict:
        cfg, step = self.cfg, self.step
        x, _ = data_mod.stack(self.dataset, self.batch_indices(step))
        x = x.to(self.device)
        with torch.no_grad():
            y = self.classifier(x).argmax(1)
        t0 = time.perf_counter()
        self._nae_steps = 0.0  # mean attack steps of this batch's fresh NAEs (0 with a pool)
        z = self._nae_for(step, y)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        t_nae = time.perf_counter() - t0
        g = _rng(cfg.seed, step, 2 + 10 * self.rank)
        seed = torch.randint(-(2**62), 2**62, (2,), dtype=torch.int64, generator=g).to(self.device)
        self.model.train()
        amp = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.amp == "bf16")
        with amp:
            c, x_hat = self.net(x, z, quantize="train", seed=seed)
            mse = F.mse_loss(x_hat.float(), x)
            logits = self.classifier(c)
        cw = ops.cw_margin(logits.float(), y, cfg.kappa, targeted=True).mean()
        loss = cfg.beta * mse + cw
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        t_all = time.perf_counter() - t0
        self.step += 1
        with torch.no_grad():
            agree = (logits.argmax(1) == y).float().mean()
            p = metrics.psnr(x_hat.detach().clamp(0, 1), x).clamp(max=100).mean()
            vals = torch.stack([loss.detach(), mse.detach(), cw.detach(), p.float(), agree]).float()
            if self.distributed:  # log the mean over ranks
                dist.all_reduce(vals)
                vals /= self.world
        loss_v, mse_v, cw_v, p_v, agree_v = vals.tolist()
        return {"step": self.step, "loss": loss_v, "mse": mse_v, "cw": cw_v, "psnr_train": p_v,
                "agree_train": agree_v, "nae_s": t_nae, "nae_steps": self._nae_steps, "step_s": t_all,
                "images_per_s": x.shape[0] * self.world / t_all}

    # -- checkpoints -----------------------------------------------------------
    def checkpoint(self) -> dict:
        return {"format": "ric-ext-checkpoint", "version": 1, "step": self.step, "config": asdict(self.cfg),
                "model_config": self.model.config(), "model": self.model.state_dict(),
                "optimizer": self.opt.state_dict()}

    def save_checkpoint(self, path: Optional[str] = None) -> None:
        if self.rank != 0:
            return
        blob = self.checkpoint()
        atomic_write(path or self.ckpt_path, lambda tmp: torch.save(blob, tmp))

    def load_checkpoint(self, path: str) -> None:
        try:
            blob = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as exc:
            raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from None
        if not isinstance(blob, dict) or blob.get("format") != "ric-ext-checkpoint":
            raise CheckpointError(f"{path} is not a ric_ext training checkpoint")
        if blob["model_config"] != self.model.config():
            raise CheckpointError(f"checkpoint {path} is for RIC{blob['model_config']}, not RIC{self.model.config()}")
        try:
            self.model.load_state_dict(blob["model"], strict=True)
            self.opt.load_state_dict(blob["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"checkpoint {path} does not fit the model: {exc}") from None
        self.step = int(blob["step"])

    # -- grids -----------------------------------------------------------------
    @torch.no_grad()
    def save_grid(self, path: str, n: int = 8) -> None:
        """Rows of: plaintext | NAE | ciphertext | recovered | |error| x 20."""
        x, _ = data_mod.stack(self.dataset, list(range(min(n, len(self.dataset)))))
        x = x.to(self.device)
        y = self.classifier(x).argmax(1)
        nonces = torch.randint(0, 256, (x.shape[0], 12), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
        z = self.nae(self.noise_key, nonces, y, self.shape)
        self.model.eval()
        c = self.model.encrypt(x, z, quantize="eval")
        x_hat = self.model.decrypt(c, z)
        err = ((x_hat - x).abs() * 20).clamp(0, 1)
        rows = [torch.cat(list(t), dim=-1) for t in zip(x, z, c, x_hat, err)]
        data_mod.save_image(path, torch.cat(rows, dim=-2), overwrite=True)

    # -- loop ------------------------------------------------------------------
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
        while self.step < cfg.steps:
            rec = self.train_step()
            history.append(rec)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{rec['loss']:.4f}", psnr=f"{rec['psnr_train']:.1f}", agree=f"{rec['agree_train']:.2f}")
            if self.rank == 0 and (self.step % cfg.log_every == 0 or self.step == cfg.steps):
                with open(log_path, "a") as f:
                    f.write(json.dumps(rec) + "\n")
            if self.step % cfg.ckpt_every == 0 or self.step == cfg.steps:
                self.save_checkpoint()
            if self.rank == 0 and (self.step % cfg.grid_every == 0 or self.step == cfg.steps):
                self.save_grid(os.path.join(cfg.out, f"grid_{self.step:07d}.png"))
        if bar is not None:
            bar.close()
        if self._owns_process_group:
            # Tear down the group we created: a rank exiting with live gloo/NCCL
            # threads can abort ("terminate called without an active exception").
            dist.barrier()
            dist.destroy_process_group()
            self._owns_process_group = False
        return history
