"""Noise-like adversarial examples (NAE): the targeted C&W attack of docs/scheme.md#nae,
started from key-seeded noise, with no distance term.

    z = (tanh(w) + 1) / 2,  w0 = atanh(2 z0 - 1),  z0 = keyed_uniform(key, nonce)
    minimise  c * max(max_{j != y} f(z)_j - f(z)_y, -kappa)  with Adam (lr 0.01)

How long each image is attacked is decided per image by a *stop rule*
(``NAEConfig.stop``):

- ``"ciphertext"`` (default): stop once the *ciphertext* made from the current
  NAE is classified as y with a margin >= ``ct_margin``, checked every
  ``check_every`` steps, and only for samples whose NAE margin has reached
  ``check_margin`` (default "kappa"; None: every sample; a check costs an
  encoder pass). Label agreement holds by construction. With the gate, an
  image's step count depends on x only when its first check fails. Needs a
  :class:`StopRule` from the caller (:class:`ric_ext.cipher.Cipher` passes one
  that runs the encoder); what the passing check made (the ciphertext) comes
  back in ``NAEResult.made``, so the loop never writes into its caller's state.
- ``"margin"``: stop as soon as the NAE's own margin
  f(z)_y - max_{j != y} f(z)_j reaches kappa + extra_margin. Needs no encoder
  (training uses it); agreement is then likely, not guaranteed.
- ``"fixed"``: the authors' rule of format version 1: ``steps`` iterations,
  and every ``steps // 10`` iterations a sample whose cost rose is frozen.

Under both adaptive rules the attack's C&W term uses kappa + extra_margin, so
its gradient stays alive until the NAE is that confident.

Finished samples leave the batch (compaction), so only unfinished ones go
through the classifier. :meth:`NAEGenerator.generate` returns the NAEs *and*
the number of Adam updates each took; :meth:`NAEGenerator.replay` re-runs
exactly that many updates without re-deciding anything, which is how
decryption regenerates an NAE: a borderline stop test cannot come out
differently on another device, batch size or order.

Each image's trajectory depends only on its own (key, nonce, label): batch
composition changes only the rounding of the classifier's batched convolutions
(~1e-7 in z on CPU).

Fused kernels: ``keyed_uniform`` (noise and its tanh-space start),
``cw_margin`` (loss and gradient) and ``adam_tanh_step_`` (update + z). On
CUDA the classifier forward + backward + margin of each step is replayed from
a CUDA graph captured per batch-size bucket (:mod:`ric_ext.nae_step`).
"""

from __future__ import annotations

import abc
import contextlib
from dataclasses import asdict, dataclass
from typing import Iterator, NamedTuple, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from . import ops
from .checks import check_int
from .nae_step import make_step
from .ops.keystream import KeyLike
from .options import opt

STOP_RULES = ("margin", "ciphertext", "fixed")


class StopRule(abc.ABC):
    """The caller's test of the ``"ciphertext"`` rule, passed down into the attack loop."""

    @abc.abstractmethod
    def check(self, z: torch.Tensor, idx: torch.Tensor, t: int) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Which of some active images are done after ``t`` Adam updates.

        Args:
            z: (n, C, H, W) their current NAEs.
            idx: (n,) int64 their indices in the batch being attacked.
            t: the number of updates so far.
        Returns:
            ``(done, made)``: an (n,) bool mask, and what the check made for each of the n
            images (e.g. its ciphertext; a tensor with n rows) or None. The attack returns the
            ``made`` rows of the images it stopped in ``NAEResult.made``.
        """


def parse_check_margin(v: str) -> Union[float, str, None]:
    """Command-line form of ``NAEConfig.check_margin``: a number, 'kappa' or 'none'."""
    if v.lower() == "none":
        return None
    return v if v == "kappa" else float(v)


@dataclass(frozen=True)
class NAEConfig:
    """Attack settings (each field's help below is also its ``--nae-*`` command-line help).

    Paper: SVHN c=10, kappa=5; CIFAR-10 kappa=5 (150 steps); VGGFace2 kappa=10 (300 steps).
    """

    c: float = opt(10.0, "C&W weight c")
    kappa: float = opt(5.0, "C&W confidence kappa")
    steps: int = opt(100, "most attack steps per image (the exact count for stop 'fixed')")
    lr: float = opt(0.01, "the attack's Adam learning rate")
    early_stop: bool = opt(
        True, "stop 'fixed': the authors' check (every steps/10 steps, an image whose cost rose stops)"
    )
    stop: str = opt(
        "ciphertext",
        "when an image's attack ends: its ciphertext is classified right with margin ct_margin (ciphertext), "
        "its own margin reaches kappa + extra_margin (margin; needs no encoder), or after steps with the "
        "authors' early stop (fixed)",
        choices=STOP_RULES,
    )
    extra_margin: float = opt(
        1.0, "adaptive rules: the attack aims at margin kappa + this, and stop 'margin' ends there"
    )
    ct_margin: float = opt(1.0, "stop 'ciphertext': the ciphertext's margin that ends the attack")
    check_every: int = opt(2, "stop 'ciphertext': steps between checks (each costs an encoder pass)")
    check_margin: Union[float, str, None] = opt(
        "kappa",
        "stop 'ciphertext': check only images whose NAE margin reached this: a number (at most kappa + "
        "extra_margin), 'kappa', or 'none' (check from the start)",
        parse=parse_check_margin,
    )
    decorrelate: float = opt(
        0.0,
        "subtract this times the mean of each pixel's left and right neighbours from the attack's gradient "
        "(0: off), so the NAE drifts from white noise along less row-smooth directions (docs/security.md)",
    )
    margin: str = opt(
        "masked",
        "C&W margin: masked (docs/scheme.md: the competitor is the best other logit) or authors (their code: "
        "the target logit is replaced by 0, so NAEs come out more confident; models.ZeroLogit)",
        choices=("masked", "authors"),
    )

    def __post_init__(self) -> None:
        if not self.c > 0:
            raise ValueError(f"NAE c must be > 0, got {self.c}")
        if not self.kappa >= 0:
            raise ValueError(f"NAE kappa must be >= 0, got {self.kappa}")
        check_int("NAE steps", self.steps, 0)
        if not self.lr > 0:
            raise ValueError(f"NAE lr must be > 0, got {self.lr}")
        if self.margin not in ("masked", "authors"):
            raise ValueError(f"NAE margin must be 'masked' or 'authors', got {self.margin!r}")
        if self.stop not in STOP_RULES:
            raise ValueError(f"NAE stop must be one of {STOP_RULES}, got {self.stop!r}")
        if not self.extra_margin >= 0:
            raise ValueError(f"NAE extra_margin must be >= 0, got {self.extra_margin}")
        if not self.ct_margin >= 0:
            raise ValueError(f"NAE ct_margin must be >= 0, got {self.ct_margin}")
        check_int("NAE check_every", self.check_every, 1)
        if not 0.0 <= self.decorrelate <= 1.0:
            raise ValueError(f"NAE decorrelate must be in [0, 1], got {self.decorrelate}")
        if isinstance(self.check_margin, str) and self.check_margin != "kappa":
            raise ValueError(f"NAE check_margin must be a number, 'kappa' or None, got {self.check_margin!r}")
        if self.gate is not None and not self.gate <= self.kappa + self.extra_margin:
            raise ValueError(
                f"NAE check_margin must be <= kappa + extra_margin = {self.kappa + self.extra_margin} "
                f"(the attack stops pushing there), got {self.check_margin}"
            )

    @property
    def gate(self) -> Optional[float]:
        """The NAE margin from which the ciphertext rule checks a sample (None: from the start)."""
        if self.check_margin is None:
            return None
        return self.kappa if self.check_margin == "kappa" else float(self.check_margin)

    @property
    def attack_kappa(self) -> float:
        """The kappa of the C&W term the attack minimises (kappa + extra_margin under the adaptive rules)."""
        return self.kappa if self.stop == "fixed" else self.kappa + self.extra_margin

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["margin"] == "masked":  # the default is implied, so headers written before the option stay valid
            del d["margin"]
        if d["decorrelate"] == 0.0:  # likewise
            del d["decorrelate"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> NAEConfig:
        """From :meth:`to_dict`, or a format-version-1 header (no ``stop``: the fixed rule)."""
        base = dict(
            c=float(d["c"]),
            kappa=float(d["kappa"]),
            steps=int(d["steps"]),
            lr=float(d["lr"]),
            early_stop=bool(d["early_stop"]),
        )
        base["margin"] = str(d.get("margin", "masked"))
        base["decorrelate"] = float(d.get("decorrelate", 0.0))
        if "stop" not in d:
            return cls(stop="fixed", **base)
        cm = d.get("check_margin")
        return cls(
            stop=str(d["stop"]),
            extra_margin=float(d["extra_margin"]),
            ct_margin=float(d["ct_margin"]),
            check_every=int(d["check_every"]),
            check_margin=cm if cm is None or isinstance(cm, str) else float(cm),
            **base,
        )


def decorrelate_rows(grad: torch.Tensor, beta: float) -> torch.Tensor:
    """``grad - beta * (left + right neighbour) / 2`` along each row (zeros past the edges).

    A row-smooth gradient gives a NAE correlated along rows, and the ciphertext inherits it
    (docs/security.md). Taking out part of each pixel's neighbourhood mean keeps the update's
    fine detail; per image and deterministic, so replay reproduces it bit for bit.
    """
    p = torch.nn.functional.pad(grad, (1, 1, 0, 0))
    return (grad - (0.5 * beta) * (p[..., :-2] + p[..., 2:])).contiguous()


class NAEResult(NamedTuple):
    z: torch.Tensor  #: (B, C, H, W) float32 NAEs in [0, 1], on the classifier's device
    steps: torch.Tensor  #: (B,) int64 on the CPU: Adam updates each image took
    #: (B, ...) what the stop rule made for the images it stopped (rows of others are zero); None without a rule
    made: Optional[torch.Tensor] = None
    #: (B,) bool: which images the stop rule stopped (their ``made`` rows are valid); None without a rule
    made_mask: Optional[torch.Tensor] = None


# torch >= 2.9 has per-backend ``fp32_precision`` switches; mixing them with the legacy
# ``allow_tf32`` flags raises, so only one of the two APIs is ever touched.
_NEW_TF32_API = hasattr(torch.backends.cuda.matmul, "fp32_precision") and hasattr(torch.backends.cudnn, "conv")


def _tf32_switches() -> dict:
    b = torch.backends
    if _NEW_TF32_API:
        return {
            "matmul": (b.cuda.matmul, "fp32_precision"),
            "conv": (b.cudnn.conv, "fp32_precision"),
            "rnn": (b.cudnn.rnn, "fp32_precision"),
        }
    return {"matmul": (b.cuda.matmul, "allow_tf32"), "cudnn": (b.cudnn, "allow_tf32")}


def _set_fp32_precision(value: Optional[dict]) -> dict:
    """Read (and, given ``value``, set) the TF32 switches; returns their previous values."""
    prev = {}
    for k, (obj, attr) in _tf32_switches().items():
        prev[k] = getattr(obj, attr)
        if value is not None:
            setattr(obj, attr, value[k])
    return prev


def _no_tf32() -> dict:
    off = "ieee" if _NEW_TF32_API else False
    return {k: off for k in _tf32_switches()}


@contextlib.contextmanager
def deterministic_algorithms() -> Iterator[None]:
    """Deterministic kernels and full float32 (no TF32) inside the attack, restored afterwards.

    TF32 would round the classifier's convolutions to 10-bit mantissas on
    Ampere and later GPUs; decryption multiplies NAE errors by 4, and the NAE
    must come out the same wherever it is regenerated.
    """
    prev = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    prev_fp32 = _set_fp32_precision(_no_tf32())
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev[0], warn_only=prev[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = prev[2], prev[3]
        _set_fp32_precision(prev_fp32)


def _module_device(m: nn.Module) -> torch.device:
    for t in list(m.parameters()) + list(m.buffers()):
        return t.device
    return torch.device("cpu")


class NAEGenerator:
    """Makes NAEs against a fixed classifier.

    Args:
        classifier: maps (B, C, H, W) images in [0, 1] to (B, K) logits (include
            the input normalisation, e.g. :class:`ric_ext.models.Normalized`).
            It is put in eval mode and never modified.
        config: attack settings.
        backend: "native" (fused kernels) or "torch" (references).
        step_impl: how the classifier forward + backward of a step runs:
            "eager", "cuda_graph" (captured per batch-size bucket; CUDA only),
            "compile" (``torch.compile`` per bucket) or "auto" (CUDA graphs on
            CUDA, eager on the CPU).
        micro_batch: run the classifier on chunks of exactly this many rows
            (padded), so each image's NAE is bit-identical whatever batch it is
            made in (see :mod:`ric_ext.batching`); None: the whole active batch
            at once (fastest; what training uses).
    """

    def __init__(
        self,
        classifier: nn.Module,
        config: NAEConfig = NAEConfig(),
        backend: str = "native",
        step_impl: str = "auto",
        micro_batch: Optional[int] = None,
    ):
        if not isinstance(classifier, nn.Module):
            raise TypeError(f"classifier must be a torch.nn.Module, got {type(classifier).__name__}")
        if not isinstance(config, NAEConfig):
            raise TypeError(f"config must be an NAEConfig, got {type(config).__name__}")
        self.classifier = classifier.eval()
        if config.margin == "authors":
            from .models.classifiers import ZeroLogit

            self.classifier = ZeroLogit(self.classifier).eval()
        self.config = config
        self.backend = backend
        self.step_impl = step_impl
        self.micro_batch = micro_batch
        self._steps: dict = {}

    @property
    def device(self) -> torch.device:
        return _module_device(self.classifier)

    def _step_fn(self, kappa: float):
        key = (str(self.device), float(kappa))
        if key not in self._steps:
            self._steps[key] = make_step(
                self.step_impl, self.classifier, self.device, self.config.c, kappa, self.backend, self.micro_batch
            )
        return self._steps[key]

    def __call__(
        self, key: KeyLike, nonces: torch.Tensor, labels: torch.Tensor, shape: Union[Sequence[int], torch.Size]
    ) -> torch.Tensor:
        """NAEs for a batch (the ``z`` of :meth:`generate`).

        Args:
            key: the 32-byte noise key.
            nonces: (B, 12) uint8, one per image.
            labels: (B,) int64 target labels y.
            shape: per-image (C, H, W).
        Returns:
            (B, C, H, W) float32 in [0, 1] on the classifier's device.
        """
        return self.generate(key, nonces, labels, shape).z

    def generate(
        self,
        key: KeyLike,
        nonces: torch.Tensor,
        labels: torch.Tensor,
        shape: Union[Sequence[int], torch.Size],
        rule: Optional[StopRule] = None,
    ) -> NAEResult:
        """Run the attack with the configured stop rule; returns NAEs and per-image step counts.

        ``rule`` (a :class:`StopRule`) is required by the ``"ciphertext"`` rule and ignored otherwise.
        """
        if self.config.stop == "ciphertext" and not isinstance(rule, StopRule):
            raise ValueError("the 'ciphertext' stop rule needs a StopRule (use Cipher.encrypt, which passes one)")
        return self._run(key, nonces, labels, shape, replay=None, rule=rule)

    def replay(
        self,
        key: KeyLike,
        nonces: torch.Tensor,
        labels: torch.Tensor,
        shape: Union[Sequence[int], torch.Size],
        steps: torch.Tensor,
    ) -> torch.Tensor:
        """Regenerate NAEs by exactly ``steps[i]`` Adam updates each (no stop rule is evaluated).

        ``steps``: (B,) integer tensor, each in [0, config.steps].
        """
        if not isinstance(steps, torch.Tensor) or steps.dtype not in (torch.int32, torch.int64):
            raise TypeError("steps must be an int32/int64 tensor of per-image step counts")
        if steps.shape != (nonces.shape[0],):
            raise ValueError(f"steps must have shape ({nonces.shape[0]},), got {tuple(steps.shape)}")
        if steps.numel() and (int(steps.min()) < 0 or int(steps.max()) > self.config.steps):
            raise ValueError(
                f"steps must be in [0, {self.config.steps}] (the NAE's step bound), "
                f"got [{int(steps.min())}, {int(steps.max())}]"
            )
        return self._run(key, nonces, labels, shape, replay=steps.to(torch.int64).cpu(), rule=None).z

    # -- the attack loop -------------------------------------------------------
    def _run(
        self,
        key: KeyLike,
        nonces: torch.Tensor,
        labels: torch.Tensor,
        shape,
        replay: Optional[torch.Tensor],
        rule: Optional[StopRule],
    ) -> NAEResult:
        cfg, dev = self.config, self.device
        if not isinstance(nonces, torch.Tensor):
            raise TypeError("nonces must be a (B, 12) uint8 tensor")
        nonces = nonces.to(dev)
        if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64:
            raise TypeError("labels must be an int64 tensor")
        labels = labels.to(dev)
        if labels.shape != (nonces.shape[0],):
            raise ValueError(f"labels must have shape ({nonces.shape[0]},), got {tuple(labels.shape)}")
        shape = tuple(int(s) for s in shape)
        z0 = ops.keyed_uniform(key, nonces, shape, backend=self.backend)
        B = z0.shape[0]
        taken = torch.zeros(B, dtype=torch.int64)
        limit = cfg.steps if replay is None else (int(replay.max()) if B else 0)
        if limit == 0 or B == 0:
            return NAEResult(z0, taken, None, None if rule is None else torch.zeros(B, dtype=torch.bool))
        out = z0.clone()
        w = ops.keyed_uniform(key, nonces, shape, tanh_space=True, backend=self.backend)
        m, v = torch.zeros_like(w), torch.zeros_like(w)
        idx = torch.arange(B, device=dev)  # global indices of the active samples
        z, y = z0, labels
        target = replay.to(dev) if replay is not None else None
        prev_cost = torch.full((B,), float("inf"), device=dev)  # the fixed rule's last checked cost
        check_fixed = max(cfg.steps // 10, 1)
        step = self._step_fn(cfg.attack_kappa)

        made: Optional[torch.Tensor] = None
        made_mask = torch.zeros(B, dtype=torch.bool, device=dev) if rule is not None else None

        def check(sel: torch.Tensor, t: int) -> torch.Tensor:
            """The rule's verdict on the active images ``sel`` (a mask); keeps what it made for the done ones."""
            nonlocal made
            done, product = rule.check(z[sel], idx[sel], t)
            done = done.to(dev, torch.bool)
            if product is not None and bool(done.any()):
                if made is None:
                    made = torch.zeros((B, *product.shape[1:]), dtype=product.dtype, device=product.device)
                gi = idx[sel][done]
                made[gi.to(made.device)] = product[done.to(product.device)]
                made_mask[gi] = True
            full = torch.zeros_like(sel)
            full[sel] = done
            return full

        def finish(done: torch.Tensor, t: int):
            nonlocal idx, z, y, w, m, v, prev_cost, target
            gi = idx[done]
            out[gi] = z[done]
            taken[gi.cpu()] = t
            keep = ~done
            idx, z, y, w, m, v, prev_cost = (a[keep] for a in (idx, z, y, w, m, v, prev_cost))
            if target is not None:
                target = target[keep]
            return keep

        with deterministic_algorithms(), torch.enable_grad():
            for t in range(limit + 1):
                if idx.numel() == 0:
                    break
                if t == limit:
                    finish(torch.ones_like(idx, dtype=torch.bool), t)
                    break
                # Decisions that need no forward pass come first, so the finished leave before it.
                if target is not None:
                    done = target == t
                elif cfg.stop == "ciphertext" and cfg.gate is None and t % cfg.check_every == 0:
                    done = check(torch.ones_like(idx, dtype=torch.bool), t)
                else:
                    done = None
                if done is not None and bool(done.any()):
                    finish(done, t)
                    if idx.numel() == 0:
                        break
                cw, grad = step(z, y)  # cw: the C&W margin term (before the factor c)
                if cfg.decorrelate:
                    grad = decorrelate_rows(grad, cfg.decorrelate)
                if target is None and cfg.stop == "margin":
                    done = cw <= -cfg.attack_kappa  # margin >= kappa + extra_margin
                elif target is None and cfg.stop == "ciphertext" and cfg.gate is not None and t % cfg.check_every == 0:
                    # -cw = min(margin, attack_kappa), and the gate is <= attack_kappa.
                    cand = -cw >= cfg.gate
                    done = check(cand, t) if bool(cand.any()) else torch.zeros_like(cand)
                elif target is None and cfg.stop == "fixed" and cfg.early_stop and (t + 1) % check_fixed == 0:
                    cost = cfg.c * cw
                    done = cost > prev_cost
                    prev_cost = torch.where(done, prev_cost, cost)
                else:
                    done = None
                if done is not None and bool(done.any()):
                    keep = finish(done, t)
                    grad = grad[keep]
                    if idx.numel() == 0:
                        break
                z = ops.adam_tanh_step_(w, m, v, grad, t + 1, lr=cfg.lr, grad_wrt="adv", backend=self.backend)
        return NAEResult(out, taken, made, made_mask)
