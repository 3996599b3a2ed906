"""Per-label NAE banks for the "digits" scheme: where each image's attack starts.

A bank holds, for every label y of one classifier and one digit base, ``entries`` NAE digit
patterns q (uint8, values < 256 // base), each trained once so that the ciphertext
``base * q + m`` is labelled y for almost any share m: an expectation over random shares
(EOT) of the attack's C&W loss, with the straight-through rounding of
:mod:`ric_ext.nae_digits`. An image then usually passes the ciphertext check with no attack
step at all, so encryption costs about one classifier forward on its ciphertext.

Which entry an image starts from is chosen by the key and the nonce (``Key.bank_key``), so
the ciphertexts of one label do not all share one pattern. Nothing in a bank depends on any
image: the ciphertext still depends only on the label, the key, the nonce and the (padded,
uniform) share.

Banks are files (``.npz``: ``q`` and a JSON ``meta``), fingerprinted by the classifier's
weights and the base. The bundled classifiers' banks ship in ``ric_ext/assets/banks/``; any
other classifier's bank is trained on first use and cached in the model store
(``$RIC_HOME/banks``).
"""

from __future__ import annotations

import io
import json
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from . import ops
from .batching import batch_slices, fast_layout
from .checks import check_int
from .cloud_eot import CloudTransforms, transform
from .io_utils import atomic_write_bytes
from .nae_digits import levels_of, quantise
from .options import opt

PathLike = Union[str, "os.PathLike[str]"]
FORMAT = "ric-ext-nae-bank"
ASSET_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets", "banks")


@dataclass(frozen=True)
class BankSettings:
    """How a bank is trained (recorded in its file; each field's help is also its ``--bank-*`` option)."""

    entries: int = opt(4, "NAE patterns per label (the key and nonce choose one per image)")
    steps: int = opt(60, "EOT Adam steps")
    shares: int = opt(2, "random shares per entry per step (the expectation's sample)")
    lr: float = opt(0.05, "the EOT attack's Adam learning rate")
    c: float = opt(10.0, "C&W weight c")
    kappa: float = opt(8.0, "the C&W confidence the EOT loss pushes every sampled share to")
    decorrelate: float = opt(
        0.5,
        "weight (per subpixel) of a penalty on each pattern's squared adjacent-pixel correlations "
        "(horizontal, vertical, diagonal), so that its ciphertexts stay as uncorrelated as noise "
        "(docs/security.md); 0: off",
    )
    seed: int = opt(0, "the public seed of the starting noise and the sampled shares")
    validate_shares: int = opt(64, "fresh random shares per entry for the recorded pass rate")
    ct_margin: float = opt(1.0, "the ciphertext check's margin (as NAEConfig.ct_margin) for the pass rate")
    batch: int = opt(512, "images per forward/backward")
    scale: int = opt(
        1,
        "patterns live at 1/scale of the image's height and width and are upsampled (nearest) to it: "
        "lower frequencies, a bank scale^2 times smaller (the image's sides must divide by it)",
    )

    def __post_init__(self) -> None:
        for name in ("entries", "steps", "shares", "validate_shares", "batch", "scale"):
            check_int(name, getattr(self, name), 1)
        if not self.lr > 0 or not self.c > 0 or not self.kappa >= 0:
            raise ValueError("bank lr and c must be > 0 and kappa >= 0")


def upsample(q: torch.Tensor, scale: int) -> torch.Tensor:
    """``q`` (..., h, w) repeated ``scale`` times along both sides (nearest): (..., h*scale, w*scale)."""
    return q if scale == 1 else q.repeat_interleave(scale, -2).repeat_interleave(scale, -1)


def pattern_shape(shape: Sequence[int], scale: int) -> Tuple[int, int, int]:
    """The (C, h, w) a pattern lives at for (C, H, W) images at ``scale`` (ValueError if it does not divide)."""
    C, H, W = (int(v) for v in shape)
    if H % scale or W % scale:
        raise ValueError(f"bank scale {scale} must divide the image's height and width, got {H}x{W}")
    return (C, H // scale, W // scale)


@dataclass
class NAEBank:
    """The bank of one classifier at one base: ``q`` is (labels, entries, C, h, w) uint8, the patterns
    at 1/``scale`` of the image's sides (:attr:`shape` is the image's)."""

    q: torch.Tensor
    base: int
    classifier: str  #: the classifier's weights fingerprint
    meta: dict = field(default_factory=dict)

    @property
    def num_labels(self) -> int:
        """The classifier's classes (a lazy bank holds only some of them: :attr:`labels`)."""
        return int(self.meta.get("num_classes", self.q.shape[0]))

    @property
    def labels(self) -> list:
        """The labels whose entries this bank holds, in the order of ``q``'s first axis."""
        return list(self.meta["labels"]) if "labels" in self.meta else list(range(self.q.shape[0]))

    @property
    def entries(self) -> int:
        return self.q.shape[1]

    @property
    def scale(self) -> int:
        return int(self.meta.get("scale", 1))

    @property
    def shape(self) -> Tuple[int, int, int]:
        """The (C, H, W) of the images this bank's patterns start."""
        C, h, w = self.q.shape[2:]
        return (int(C), int(h) * self.scale, int(w) * self.scale)

    def __repr__(self) -> str:
        return (
            f"NAEBank(labels={self.num_labels}, entries={self.entries}, shape={self.shape}, base={self.base}, "
            f"classifier={self.classifier[:16]}...)"
        )

    def starts(self, labels: torch.Tensor, nonces: torch.Tensor, bank_key: bytes) -> torch.Tensor:
        """(B, C, H, W) uint8 start digits: entry ``j`` of each image's label, j from (key, nonce)."""
        labels = labels.to(torch.int64).cpu()
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_labels):
            raise ValueError(f"labels must be in [0, {self.num_labels}) for this bank")
        row = torch.full((self.num_labels,), -1, dtype=torch.int64)
        row[torch.tensor(self.labels, dtype=torch.int64)] = torch.arange(len(self.labels))
        rows = row[labels]
        if bool((rows < 0).any()):
            raise ValueError(f"labels {sorted(set(labels[rows < 0].tolist()))} are not trained in this (lazy) bank yet")
        if self.entries == 1:
            j = torch.zeros_like(labels)
        else:
            zeros = torch.zeros(labels.shape[0], 1, dtype=torch.uint8)
            j = ops.keyed_digit_pad(zeros, bank_key, nonces.cpu(), self.entries)[:, 0].to(torch.int64)
        return upsample(self.q[rows, j], self.scale)

    # -- files ----------------------------------------------------------------------------
    def save(self, path: PathLike, *, overwrite: bool = False) -> None:
        buf = io.BytesIO()
        # version 2: patterns at reduced resolution, which a version-1 reader would misread as smaller images
        version = 2 if self.scale > 1 else 1
        meta = dict(self.meta, format=FORMAT, version=version, base=self.base, classifier=self.classifier)
        np.savez_compressed(buf, q=self.q.numpy(), meta=np.array(json.dumps(meta, sort_keys=True)))
        atomic_write_bytes(path, buf.getvalue(), overwrite=overwrite)

    @classmethod
    def load(cls, path: PathLike) -> NAEBank:
        try:
            with np.load(os.fspath(path), allow_pickle=False) as d:
                meta = json.loads(str(d["meta"]))
                q = torch.from_numpy(np.array(d["q"], dtype=np.uint8))
            if meta.get("format") != FORMAT or meta.get("version") not in (1, 2) or q.dim() != 5:
                raise ValueError("not a bank file")
            scale = int(meta.get("scale", 1))
            if scale < 1 or (meta["version"] == 1) != (scale == 1):
                raise ValueError(f"scale {scale} in a version-{meta['version']} file")
            base = int(meta["base"])
            if q.numel() and int(q.max()) >= levels_of(base):
                raise ValueError("digits out of range")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path} is not a ric_ext NAE bank ({exc})") from None
        bank = cls(q, base, str(meta["classifier"]), meta)
        if "shape" in meta and list(bank.shape) != list(meta["shape"]):
            raise ValueError(f"{path} is not a ric_ext NAE bank (patterns {tuple(q.shape[2:])} at scale {scale} "
                             f"do not make its images {tuple(meta['shape'])})")  # fmt: skip
        return bank


def file_name(fingerprint: str, base: int, shape: Sequence[int], ensemble: Sequence[str] = ()) -> str:
    """The bank file's name: the classifier's fingerprint (16 hex digits), for a portable bank its
    ensemble's tag, the base and the image shape."""
    tag = f"_p{ensemble_tag(ensemble)}" if ensemble else ""
    return f"{fingerprint[:16]}{tag}_b{base}_{'x'.join(str(int(s)) for s in shape)}.npz"


def cache_dir() -> str:
    from .models.store import home

    return os.path.join(home(), "banks")


def find(fingerprint: str, base: int, shape: Sequence[int]) -> Optional[str]:
    """The bank file for a classifier fingerprint, base and image shape: bundled, else cached; None if neither."""
    for folder in (ASSET_DIR, cache_dir()):
        path = os.path.join(folder, file_name(fingerprint, base, shape))
        if os.path.isfile(path):
            return path
    return None


def find_portable(fingerprint: str, base: int, shape: Sequence[int], ensemble: Sequence[str] = ()) -> Optional[str]:
    """A portable bank file of a classifier at this base and image shape, bundled, else cached: the one
    trained over exactly ``ensemble`` (fingerprints) when given, else any (the first by name); None if none."""
    for folder in (ASSET_DIR, cache_dir()):
        if ensemble:
            path = os.path.join(folder, file_name(fingerprint, base, shape, ensemble))
            if os.path.isfile(path):
                return path
            continue
        tail = file_name(fingerprint, base, shape)[16:]  # "_b{base}_{shape}.npz"
        names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
        found = [n for n in names if n.startswith(fingerprint[:16] + "_p") and n.endswith(tail)]
        if found:
            return os.path.join(folder, found[0])
    return None


def _num_classes(classifier: nn.Module, shape: Sequence[int], device: torch.device) -> int:
    with torch.no_grad():
        return int(classifier(torch.zeros(1, *shape, device=device)).shape[1])


def _device_of(module: nn.Module) -> torch.device:
    return next(iter(list(module.parameters()) + list(module.buffers())), torch.zeros(0)).device


def member_name(member: nn.Module) -> str:
    """How errors and files name an ensemble member: the name it was loaded by, else its fingerprint."""
    from .models.classifiers import fingerprint

    return getattr(member, "ric_name", None) or fingerprint(member)[:16]


def check_ensemble(classifier: nn.Module, ensemble: Sequence[nn.Module], shape: Sequence[int]) -> int:
    """The number of classes every member shares with ``classifier`` on (C, H, W) images; ValueError
    (TypeError for a non-module) naming the first member that takes another size, channels or classes."""
    dev = _device_of(classifier)
    K = _num_classes(classifier, shape, dev)
    for i, m in enumerate(ensemble):
        if not isinstance(m, nn.Module):
            raise TypeError(f"ensemble member {i} must be a torch.nn.Module, got {type(m).__name__}")
        try:
            k = _num_classes(m.eval(), shape, _device_of(m))
        except Exception as exc:  # a member that cannot take these images at all
            raise ValueError(
                f"ensemble member {i} ({member_name(m)}) does not take {tuple(shape)} images: {exc}"
            ) from None
        if k != K:
            raise ValueError(f"ensemble member {i} ({member_name(m)}) has {k} classes; the crafting classifier has {K}")
    return K


def ensemble_tag(fingerprints: Sequence[str]) -> str:
    """8 hex digits naming a set of ensemble members (order-free) in a portable bank's file name."""
    import hashlib

    return hashlib.sha256("|".join(sorted(fingerprints)).encode()).hexdigest()[:8]


def train_bank(
    classifier: nn.Module,
    shape: Sequence[int],
    base: int,
    settings: BankSettings = BankSettings(),
    *,
    num_classes: Optional[int] = None,
    ensemble: Sequence[nn.Module] = (),
    cloud: Optional[CloudTransforms] = None,
    progress: bool = True,
    log: Callable[[str], None] = lambda s: None,
) -> NAEBank:
    """Train the bank of ``classifier`` for (C, H, W) images at digit ``base`` (EOT over random shares).

    Every entry starts from public keyed noise (``settings.seed``) and takes ``settings.steps``
    Adam steps on the mean C&W loss of ``settings.shares`` fresh random shares per step. The
    file records each entry's pass rate on ``validate_shares`` fresh shares.

    A *portable* bank (issue 36): ``ensemble`` adds classifiers of the same task whose C&W losses
    are averaged with the crafting classifier's, and ``cloud`` draws a random cloud transform
    (:mod:`ric_ext.cloud_eot`) for every chunk, so that the patterns carry over to models and
    uploads the owner never sees. The file records the members' fingerprints and each one's pass
    rates. Members must take the same images and have the same classes (ValueError naming the
    member otherwise).
    """

    from .keys import hkdf_sha256
    from .models.classifiers import fingerprint

    s = settings
    classifier = classifier.eval()
    dev = _device_of(classifier)
    shape = tuple(int(v) for v in shape)
    check_ensemble(classifier, ensemble, shape)
    ensemble = [m.eval() for m in ensemble]
    K = num_classes or _num_classes(classifier, shape, dev)
    levels = levels_of(base)
    n = K * s.entries
    labels = torch.arange(K, device=dev).repeat_interleave(s.entries)
    seed_key = hkdf_sha256(s.seed.to_bytes(8, "big"), b"ric-ext nae bank start")
    nonces = torch.zeros(n, 12, dtype=torch.uint8)
    nonces[:, :8] = torch.tensor([list(i.to_bytes(8, "big")) for i in range(n)], dtype=torch.uint8)
    low = pattern_shape(shape, s.scale)
    w = ops.keyed_uniform(seed_key, nonces.to(dev), low, tanh_space=True).contiguous()
    gen = torch.Generator(device="cpu").manual_seed(s.seed)
    t0 = time.perf_counter()
    z = _eot(classifier, w, labels, base, s, s.steps, gen, progress, ensemble=ensemble, cloud=cloud)
    q_low = quantise(z, levels).cpu()
    q = upsample(q_low, s.scale)
    rates = pass_rates(classifier, q, labels.cpu(), base, s.validate_shares, s.ct_margin, s.batch, seed=s.seed + 1)
    log(f"bank trained in {time.perf_counter() - t0:.0f} s; pass rate min {rates.min():.3f}, mean {rates.mean():.3f}")
    portable = {}
    if ensemble or cloud is not None:
        fps = [fingerprint(m) for m in ensemble]
        portable = {
            "ensemble": fps,
            "cloud": cloud.__dict__.copy() if cloud else None,
            "member_pass_rate": _member_rates(fps, ensemble, q, labels.cpu(), base, s),
        }
    meta = {
        **portable,
        **({"scale": s.scale} if s.scale > 1 else {}),
        "settings": s.__dict__.copy(),
        "shape": list(shape),
        "pass_rate": [round(float(r), 4) for r in rates],
        "train_seconds": round(time.perf_counter() - t0, 1),
        "device": str(dev),
        "created": time.strftime("%Y-%m-%d"),
    }
    return NAEBank(q_low.reshape(K, s.entries, *low), base, fingerprint(classifier), meta)


def _member_rates(fps: Sequence[str], ensemble: Sequence[nn.Module], q: torch.Tensor, labels: torch.Tensor,
                  base: int, s: BankSettings) -> dict:  # fmt: skip
    """Each ensemble member's pass rate per pattern (fingerprint -> list), as the crafting classifier's."""
    return {
        fp: [round(float(r), 4) for r in pass_rates(m, q, labels, base, s.validate_shares, s.ct_margin, s.batch,
                                                    seed=s.seed + 1)]
        for fp, m in zip(fps, ensemble)
    }  # fmt: skip


def _eot(
    classifier: nn.Module,
    w: torch.Tensor,
    labels: torch.Tensor,
    base: int,
    s: BankSettings,
    steps: int,
    gen: torch.Generator,
    progress: bool,
    *,
    ensemble: Sequence[nn.Module] = (),
    cloud: Optional[CloudTransforms] = None,
) -> torch.Tensor:
    """``steps`` Adam steps on tanh-space ``w`` (N, C, h, w) of the mean C&W loss over random shares
    (``s.shares`` a step), and over the ``ensemble``'s members and random ``cloud`` transforms when
    given; returns z = (tanh(w) + 1) / 2, the patterns at 1/``s.scale`` of the images' sides."""
    from tqdm import tqdm

    shape = tuple(w.shape[1:])
    levels, n = levels_of(base), w.shape[0]
    mom, vel = torch.zeros_like(w), torch.zeros_like(w)
    z = (torch.tanh(w) + 1) / 2
    dev = w.device
    scale = base * levels / 255.0
    for t in tqdm(range(steps), desc="NAE bank", unit="step", disable=not progress):
        grad = torch.zeros_like(z)
        for sl in batch_slices(n, max(s.batch // s.shares, 1)):
            zz = z[sl].repeat_interleave(s.shares, 0).requires_grad_(True)
            with torch.enable_grad():
                zu = upsample(zz, s.scale)
                m = torch.randint(0, base, zu.shape, generator=gen, dtype=torch.int64).to(dev)
                hard = (quantise(zu.detach(), levels).to(torch.int64) * base + m).float() / 255.0
                x = hard + scale * (zu - zu.detach())  # the actual bytes, straight-through to z
                bf16 = False
                if cloud is not None:
                    x, bf16 = transform(x, cloud, gen)
                y = labels[sl].repeat_interleave(s.shares)
                loss = None
                for member in (classifier, *ensemble):
                    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
                        logits = member(fast_layout(x))
                    cw = ops.cw_margin(logits.float(), y, s.kappa, targeted=True).sum()
                    loss = cw if loss is None else loss + cw
                (g,) = torch.autograd.grad(s.c * loss / s.shares / (1 + len(ensemble)), zz)
            grad[sl] = g.reshape(-1, s.shares, *shape).sum(1)
        if s.decorrelate:
            grad += correlation_penalty_grad(z, s.decorrelate, s.scale)
        z = ops.adam_tanh_step_(w, mom, vel, grad.contiguous(), t + 1, lr=s.lr, grad_wrt="adv")
    return z


def refine_failing(
    bank: NAEBank,
    classifier: nn.Module,
    settings: Optional[BankSettings] = None,
    *,
    rounds: int = 3,
    ensemble: Sequence[nn.Module] = (),
    cloud: Optional[CloudTransforms] = None,
    log: Callable[[str], None] = lambda s: None,
) -> NAEBank:
    """``bank`` with its patterns that fail some fresh shares (pass rate < 1) trained further: up to
    ``rounds`` more runs of ``settings.steps`` EOT steps each, from where they are, each with fresh
    shares (another seed). A pattern is replaced only when its pass rate, measured on fresh shares
    again, rises. A portable bank is refined over the ``ensemble`` and ``cloud`` it was trained with
    (give them again), and its members' pass rates are measured again. Returns a new bank; its meta
    records the rounds and the new pass rates."""
    from .models.classifiers import fingerprint

    fps = [fingerprint(m) for m in ensemble]
    if fps != list(bank.meta.get("ensemble", fps)):
        raise ValueError("refine a portable bank over the ensemble it was trained with (the same members, in order)")
    s = settings or BankSettings(**{k: v for k, v in bank.meta["settings"].items()})
    classifier = classifier.eval()
    dev = next(iter(list(classifier.parameters()) + list(classifier.buffers())), torch.zeros(0)).device
    K, E = bank.num_labels, bank.entries
    q = bank.q.reshape(K * E, *bank.q.shape[2:]).clone()
    labels = torch.arange(K).repeat_interleave(E)
    rates = torch.tensor(bank.meta["pass_rate"], dtype=torch.float32)
    levels = levels_of(bank.base)
    refined = []
    for r in range(rounds):
        rows = (rates < 1).nonzero().flatten()
        if rows.numel() == 0:
            break
        z0 = ((q[rows].float() + 0.5) / levels).clamp(1e-3, 1 - 1e-3).to(dev)
        w = torch.atanh(2 * z0 - 1).contiguous()
        gen = torch.Generator(device="cpu").manual_seed(s.seed + 1000 + r)
        z = _eot(classifier, w, labels[rows].to(dev), bank.base, s, s.steps, gen, progress=False, ensemble=ensemble,
                 cloud=cloud)  # fmt: skip
        cand = quantise(z, levels).cpu()
        new = pass_rates(classifier, upsample(cand, bank.scale), labels[rows], bank.base, s.validate_shares,
                         s.ct_margin, s.batch, seed=s.seed + 2000 + r)  # fmt: skip
        better = new > rates[rows]
        q[rows[better]], rates[rows[better]] = cand[better], new[better]
        refined.append({"round": r + 1, "patterns": rows.tolist(), "pass_rate": [round(float(v), 4) for v in new]})
        log(f"refine round {r + 1}: {rows.numel()} pattern(s), pass rates {[round(float(v), 3) for v in new]}")
    meta = dict(bank.meta, pass_rate=[round(float(v), 4) for v in rates], refined=refined)
    if ensemble:
        meta["member_pass_rate"] = _member_rates(fps, ensemble, upsample(q, bank.scale), labels, bank.base, s)
    return NAEBank(q.reshape(bank.q.shape), bank.base, bank.classifier, meta)


def adjacent_correlations(z: torch.Tensor) -> torch.Tensor:
    """(N, 3): each pattern's Pearson r with its right, lower and lower-right neighbour (all channels)."""
    H, W = z.shape[-2:]
    out = []
    for dy, dx in ((0, 1), (1, 0), (1, 1)):
        a = z[..., : H - dy, : W - dx].flatten(1)
        b = z[..., dy:, dx:].flatten(1)
        a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
        out.append((a * b).sum(1) / ((a.pow(2).sum(1) * b.pow(2).sum(1)).sqrt() + 1e-12))
    return torch.stack(out, 1)


def correlation_penalty_grad(z: torch.Tensor, weight: float, scale: int = 1) -> torch.Tensor:
    """d/dz of weight * n * (sum of squared adjacent-pixel correlations), n = C*H*W (so that the pull per
    subpixel does not shrink with the image). Smooth gradients would make smooth patterns, and a
    pattern's correlation is its ciphertexts' (their share is i.i.d. uniform). At ``scale`` > 1 the
    correlations are the upsampled pattern's, the ones its ciphertexts show."""
    zz = z.detach().requires_grad_(True)
    n = z[0].numel()
    with torch.enable_grad():
        (g,) = torch.autograd.grad(weight * n * adjacent_correlations(upsample(zz, scale)).pow(2).sum(), zz)
    return g


@torch.no_grad()
def pass_rates(
    classifier: nn.Module,
    q: torch.Tensor,
    labels: torch.Tensor,
    base: int,
    shares: int,
    ct_margin: float,
    batch: int = 512,
    seed: int = 1,
) -> torch.Tensor:
    """For each pattern q[i] (N, C, H, W): the fraction of ``shares`` fresh random shares whose
    ciphertext the classifier labels ``labels[i]`` with margin >= ``ct_margin`` (float32)."""
    dev = next(iter(list(classifier.parameters()) + list(classifier.buffers())), torch.zeros(0)).device
    gen = torch.Generator(device="cpu").manual_seed(seed)
    hits = torch.zeros(q.shape[0])
    rows = torch.arange(q.shape[0]).repeat_interleave(shares)
    for sl in batch_slices(rows.numel(), batch):
        r = rows[sl]
        m = torch.randint(0, base, (r.numel(), *q.shape[1:]), generator=gen, dtype=torch.int64)
        x = ((q[r].to(torch.int64) * base + m).float() / 255.0).to(dev)
        ok = ops.margin(classifier(fast_layout(x)).float(), labels[r].to(dev)) >= ct_margin
        hits.index_add_(0, r, ok.float().cpu())
    return hits / shares
