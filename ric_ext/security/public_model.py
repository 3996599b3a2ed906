"""The attacker that broke comparable schemes: (d) a public-model inverter and (e) linkage.

Kerckhoffs: the attacker has the code, the RIC weights and the classifier (they ship
in the wheel) and data from the owner's distribution, and it makes as many
(ciphertext, plaintext) pairs as it likes under *keys of its own*, never the victim's.
It is scored on unseen images encrypted under the victim's key.

- (d) **inversion**: the stronger of two inverters trained on those pairs, the U-Net
  of (a) and a deeper full-resolution dilated residual CNN (:mod:`.resinv`); each is
  selected by its own validation pairs, the winner by that same validation score.
- (e) **linkage**: for each victim ciphertext, pick its plaintext among K candidates
  that share its public label (chance 1/K). The victims are the scored images and then
  the distractors, each encrypted under the victim's key, up to ``linkage_victims``:
  with 100 victims a 15% target cannot be told from chance (LFW: only 35 of 100 scored
  faces have 9 same-label others). Three ways:
  the inverter's output (nearest candidate); a learned two-tower matcher trained
  contrastively on the attacker's pairs; and a matcher on statistics a scrambled
  share would still show (per-channel histograms and moments of the ciphertext
  -> predicted per-channel mean and contrast of the plaintext).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from typing import Callable, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .. import metrics
from ..batching import batch_slices
from ..cipher import Cipher
from ..keys import Key
from . import checkpoint as ckpt
from .inversion import InversionSettings, check_precision, layout, train_inversion, training_precision


@dataclass(frozen=True)
class PublicModelSettings:
    #: the attacker's (ciphertext, plaintext) pairs (the issue: >= 20,000 at 32 px, >= 5,000 at 64 px)
    pairs: int = 20_000
    val: int = 500  #: of which this many are its validation pairs
    key_every: int = 64  #: a fresh attacker key for every this many pairs
    candidates: int = 10  #: K of the linkage test
    epochs: int = 12  #: inverter epochs (each network)
    width: int = 32  #: U-Net base width; the residual inverter uses 1.5x
    matcher_epochs: int = 15
    seed: int = 0
    precision: str = "fp32"  #: the inverters' and two-tower matcher's training precision (.inversion)
    #: linkage (e) victims: the scored images, then distractors encrypted under the victim's key
    linkage_victims: int = 1000

    def __post_init__(self) -> None:
        check_precision(self.precision)
        if self.linkage_victims < 1:
            raise ValueError(f"linkage_victims must be >= 1, got {self.linkage_victims}")

    def to_dict(self) -> dict:
        return asdict(self)


def make_pairs(
    cipher: Cipher, images: torch.Tensor, n: int, key_every: int, log: Callable[[str], None] = lambda s: None
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` pairs from ``images`` (cycled), each chunk of ``key_every`` under a fresh key of the attacker's.

    Returns (ciphertexts' uint8 pixels, plaintexts, public labels).
    """
    idx = torch.arange(n) % images.shape[0]
    cts, labels = [], []
    t0 = time.perf_counter()
    for k, sl in enumerate(batch_slices(n, key_every)):
        ct = cipher.with_key(Key.generate()).encrypt(images[idx[sl]])
        cts.append(ct.pixels)
        labels.append(ct.labels)
        if k % 50 == 0:
            log(f"  attacker pairs {sl.stop}/{n} ({time.perf_counter() - t0:.0f} s)")
    return torch.cat(cts), images[idx], torch.cat(labels)


def candidate_sets(labels: torch.Tensor, pool_labels: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """For victim i (its plaintext is pool row i), k pool rows of its label with i among them at a random place.

    Returns (M, k) int64 indices into the pool; victims without k - 1 same-label others are dropped (-1 rows).
    """
    out = torch.full((labels.shape[0], k), -1, dtype=torch.int64)
    for i, y in enumerate(labels.tolist()):
        same = (pool_labels == y).nonzero().flatten()
        same = same[same != i]
        if same.numel() < k - 1:
            continue
        pick = same[torch.randperm(same.numel(), generator=gen)[: k - 1]]
        row = torch.cat([pick, torch.tensor([i])])
        out[i] = row[torch.randperm(k, generator=gen)]
    return out


def _nearest(guess: torch.Tensor, cands: torch.Tensor, pool: torch.Tensor) -> torch.Tensor:
    """Index (into each candidate row) of the candidate closest to the guess (MSE)."""
    d = ((pool[cands] - guess[:, None]) ** 2).flatten(2).mean(-1)
    return d.argmin(1)


class _Tower(nn.Module):
    def __init__(self, cin: int, dim: int = 64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(cin, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(64, 128, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(128, dim),
        )

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(t), dim=1)


def _fit(
    params,
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    n: int,
    epochs: int,
    batch: int,
    seed: int,
    precision: str = "fp32",
) -> None:
    opt = torch.optim.Adam(params, lr=1e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        for sl in batch_slices(n, batch):
            idx = perm[sl]
            if idx.numel() < 2:
                continue
            with training_precision(precision):
                loss = loss_fn(idx).float()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


def two_tower_choice(
    ct: torch.Tensor,
    x: torch.Tensor,
    victim_ct: torch.Tensor,
    cands: torch.Tensor,
    pool: torch.Tensor,
    epochs: int,
    seed: int,
    precision: str = "fp32",
) -> torch.Tensor:
    """A contrastive (InfoNCE, temperature 0.1) ciphertext/plaintext matcher trained on the attacker's pairs."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fc, fx = _Tower(ct.shape[1]), _Tower(x.shape[1])
    fc, fx = layout(fc, precision), layout(fx, precision)

    def loss(idx: torch.Tensor) -> torch.Tensor:
        logits = fc(layout(ct[idx], precision)).float() @ fx(layout(x[idx], precision)).float().T / 0.1
        target = torch.arange(idx.numel())
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2

    _fit(list(fc.parameters()) + list(fx.parameters()), loss, ct.shape[0], epochs, 128, seed, precision)
    with torch.no_grad():
        ec, ex = fc.eval()(victim_ct), fx.eval()(pool)
        sims = (ec[:, None, :] * ex[cands]).sum(-1)
    return sims.argmax(1)


def share_statistics(c: torch.Tensor, bins: int = 16) -> torch.Tensor:
    """Per channel: a ``bins``-bin histogram of the values (in [0, 1]), and their mean, std, skew and kurtosis."""
    B, C = c.shape[:2]
    v = c.reshape(B, C, -1)
    # torch.histc's binning over [0, 1] (a value of exactly 1 in the last bin), for all rows at once
    idx = (v * bins).long().clamp_(0, bins - 1)
    hist = torch.zeros(B, C, bins, dtype=v.dtype, device=v.device).scatter_add_(2, idx, torch.ones_like(v))
    hist = hist / v.shape[-1]
    mu, sd = v.mean(-1, keepdim=True), v.std(-1, keepdim=True).clamp_min(1e-6)
    z = (v - mu) / sd
    moments = torch.cat([mu, sd, (z**3).mean(-1, keepdim=True), (z**4).mean(-1, keepdim=True)], -1)
    return torch.cat([hist, moments], -1).reshape(B, -1)


def _plain_stats(x: torch.Tensor) -> torch.Tensor:
    v = x.flatten(2)
    return torch.cat([v.mean(-1), v.std(-1)], 1)  # per-channel mean and contrast


def statistics_choice(
    ct: torch.Tensor,
    x: torch.Tensor,
    victim_ct: torch.Tensor,
    cands: torch.Tensor,
    pool: torch.Tensor,
    epochs: int,
    seed: int,
) -> torch.Tensor:
    """An MLP from ciphertext statistics to the plaintext's per-channel mean and contrast; nearest candidate."""
    feats, target = share_statistics(ct), _plain_stats(x)
    mu, sd = feats.mean(0), feats.std(0).clamp_min(1e-6)
    tmu, tsd = target.mean(0), target.std(0).clamp_min(1e-6)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mlp = nn.Sequential(
            nn.Linear(feats.shape[1], 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, target.shape[1])
        )
    fn, tn = (feats - mu) / sd, (target - tmu) / tsd
    _fit(mlp.parameters(), lambda idx: F.mse_loss(mlp(fn[idx]), tn[idx]), fn.shape[0], epochs, 256, seed)
    with torch.no_grad():
        pred = mlp((share_statistics(victim_ct) - mu) / sd)
        cand = (_plain_stats(pool) - tmu) / tsd
        d = ((cand[cands] - pred[:, None]) ** 2).sum(-1)
    return d.argmin(1)


PAIRS_FILE = "pairs.pt"
INVERTERS = ("unet", "resnet")
#: every file :func:`public_model_attacks` keeps in its ``checkpoint_dir``
CHECKPOINT_FILES = (PAIRS_FILE,) + tuple(f"inverter_{net}.pt" for net in INVERTERS)


def _inverter_file(checkpoint_dir: Optional[str], net: str) -> Optional[str]:
    return os.path.join(checkpoint_dir, f"inverter_{net}.pt") if checkpoint_dir else None


def _attacker_pairs(
    cipher: Cipher,
    attacker_x: torch.Tensor,
    s: PublicModelSettings,
    checkpoint_dir: Optional[str],
    log: Callable[[str], None],
) -> Tuple[torch.Tensor, torch.Tensor, float, bool]:
    """The attacker's pairs (ciphertexts as float in [0, 1], plaintexts), the seconds they took to
    make, and whether they were reused from ``checkpoint_dir`` (made there otherwise)."""
    n = s.pairs + s.val
    path = os.path.join(checkpoint_dir, PAIRS_FILE) if checkpoint_dir else None
    fp = ""
    if path:
        fp = ckpt.fingerprint(
            "pairs", n, s.key_every, ckpt.cipher_fingerprint(cipher, attacker_x.shape[1:]), attacker_x
        )
    state = ckpt.load(path, fp)
    if state is not None:
        log(f"(d) the attacker's {s.pairs} pairs under its own keys: reused from {checkpoint_dir}")
        pixels, seconds = state["pixels"], float(state["seconds"])
    else:
        log(f"(d) the attacker makes {s.pairs} pairs under its own keys")
        t0 = time.perf_counter()
        pixels, _, _ = make_pairs(cipher, attacker_x, n, s.key_every, log)
        seconds = time.perf_counter() - t0
        ckpt.save(path, {"fingerprint": fp, "pixels": pixels, "seconds": seconds})
    idx = torch.arange(n) % attacker_x.shape[0]
    return pixels.float() / 255.0, attacker_x[idx], seconds, state is not None


def public_model_attacks(
    cipher: Cipher,
    attacker_x: torch.Tensor,
    victim_ct: torch.Tensor,
    victim_x: torch.Tensor,
    distractor_x: torch.Tensor,
    settings: PublicModelSettings = PublicModelSettings(),
    log: Callable[[str], None] = lambda s: None,
    checkpoint_dir: Optional[str] = None,
) -> dict:
    """Rows (d) and (e) against ``cipher``'s scheme, model and classifier, with the attacker's own keys.

    Args:
        attacker_x: (N, C, H, W) the attacker's images, from the owner's distribution but disjoint
            from the victims and distractors.
        victim_ct, victim_x: (M, ...) the victims' ciphertexts (pixels as float in [0, 1], under the
            victim's key) and plaintexts.
        distractor_x: other plaintexts of the victims' distribution, the linkage's other candidates.
        checkpoint_dir: where the attacker's pairs and each inverter's state after every epoch are
            kept (:mod:`.checkpoint`); a rerun with the same settings resumes from them. None: nowhere.
    Returns:
        {"inversion": {...per network...}, "guess": best inverter's (M, C, H, W) reconstructions,
         "linkage": {name: accuracy}, "chance": 1/K, "settings": ..., "compute_s": ... (over every
         run that resumed this one), "resumed": {"pairs": reused?, network: from epoch}}
    """
    s = settings
    t0 = time.perf_counter()
    m = victim_x.shape[0]
    pool = torch.cat([victim_x, distractor_x])
    n_link = max(m, min(s.linkage_victims, pool.shape[0]))
    log(f"(e) encrypting {n_link - m} more linkage victims under the victim's key")
    link_ct = torch.cat(
        [
            victim_ct,
            *(cipher.encrypt(pool[m + sl.start : m + sl.stop]).as_float() for sl in batch_slices(n_link - m, 256)),
        ]
    )
    ct, x, t_pairs, reused = _attacker_pairs(cipher, attacker_x, s, checkpoint_dir, log)
    resumed: dict = {"pairs": reused}
    earlier_s = t_pairs if reused else 0.0  # compute spent by the runs this one resumes
    tr, va = slice(0, s.pairs), slice(s.pairs, None)
    results, guesses = {}, {}
    for net, width in zip(INVERTERS, (s.width, s.width * 3 // 2)):
        log(f"(d) inverter {net}")
        cfg = InversionSettings(
            epochs=s.epochs, width=width, seed=s.seed, network=net, batch_size=64, precision=s.precision
        )
        guess, info = train_inversion(
            ct[tr],
            x[tr],
            ct[va],
            x[va],
            link_ct,
            cfg,
            checkpoint=_inverter_file(checkpoint_dir, net),
            on_epoch=lambda e, p, net=net: log(f"  {net} epoch {e}/{s.epochs}: validation {p:.2f} dB"),
        )
        if info["resumed_from_epoch"]:
            log(f"  {net}: resumed after epoch {info['resumed_from_epoch']} from {checkpoint_dir}")
        resumed[net] = info["resumed_from_epoch"]
        earlier_s += info["train_s_earlier"]
        guesses[net] = guess
        results[net] = {
            "val_psnr": info["best_val_psnr"],
            "best_epoch": info["best_epoch"],
            "train_s": info["train_s"],
            "settings": cfg.to_dict(),
        }
    best = max(results, key=lambda k: results[k]["val_psnr"])
    with torch.no_grad():
        pool_labels = cipher.predict(pool)
    gen = torch.Generator().manual_seed(s.seed)
    cands = candidate_sets(pool_labels[:n_link], pool_labels, s.candidates, gen)
    keep = (cands >= 0).all(1)
    cands_k = cands[keep]
    log(f"(e) linkage among {s.candidates} same-label candidates for {int(keep.sum())} victims")
    rows = torch.arange(n_link)[keep]

    def acc(choice: torch.Tensor) -> float:
        # candidate rows index the pool, whose first M rows are the victims in order
        truth = (cands_k == rows[:, None]).float().argmax(1)
        return float((choice == truth).double().mean())  # exact: 15 of 100 is 0.15

    linkage = {f"inverter ({best}) nearest candidate": acc(_nearest(guesses[best][keep], cands_k, pool))}
    log("(e) two-tower matcher")
    linkage["two-tower matcher"] = acc(
        two_tower_choice(ct[tr], x[tr], link_ct[keep], cands_k, pool, s.matcher_epochs, s.seed, s.precision)
    )
    log("(e) statistics matcher")
    linkage["statistics matcher (histograms, moments)"] = acc(
        statistics_choice(ct[tr], x[tr], link_ct[keep], cands_k, pool, s.matcher_epochs * 4, s.seed)
    )
    return {
        "inversion": results,
        "best": best,
        "guess": guesses[best][:m],
        "linkage": linkage,
        "chance": 1.0 / s.candidates,
        "victims_linked": int(keep.sum()),
        "settings": s.to_dict(),
        "compute_s": {"pairs": round(t_pairs, 1), "total": round(time.perf_counter() - t0 + earlier_s, 1)},
        "resumed": resumed,
        "victim_psnr_best": float(metrics.psnr(guesses[best][:m].clamp(0, 1), victim_x).mean()),
    }
