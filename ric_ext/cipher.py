"""The owner's API: encrypt images into 8-bit ciphertexts the plaintext
classifier still labels correctly, and decrypt them back.

    cipher = Cipher(None, classifier, key)   # the pad scheme; Cipher(ric_model, ..., scheme="paper"): the paper's
    ct = cipher.encrypt(images)        # images: (B, C, H, W) float in [0, 1]
    labels = cipher.classify(ct)       # what the unmodified classifier says
    images_hat = cipher.decrypt(ct)

Each image gets a fresh random 96-bit nonce; its label is the classifier's
prediction on the plaintext. Nonce, label, the number of attack steps its NAE
took and every setting needed to regenerate the NAE travel with the
ciphertext (see :mod:`ric_ext.fileformat`), so decryption never guesses: it
replays exactly that many steps (:meth:`ric_ext.nae.NAEGenerator.replay`).
Format version 1 ciphertexts (no step counts; fixed steps with the authors'
early stop) still decrypt.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Callable, Optional, Union

import torch
from torch import nn

from . import ops
from .batching import DEFAULT_MICRO_BATCH, batch_slices, check_micro_batch, fast_layout, run_chunked
from .checks import check_int
from .errors import PAPER_SCHEME_LEAKS, CiphertextFormatError, ModelMismatchError, PaperSchemeWarning, WrongKeyError
from .keys import Key
from .models.classifiers import fingerprint
from .models.networks import RIC
from .models.settings import nae_defaults
from .nae import NAEConfig, NAEGenerator, StopRule
from .ops.pad import DEFAULT_A
from .schemes import SCHEMES, PadScheme, PaperScheme, default_scheme

#: 3: the header names its scheme (docs/scheme.md); 2: per-image step counts; 1: fixed-step NAEs.
FORMAT_VERSION = 3
#: Fresh nonces an image gets at most when its ciphertext came out mislabelled (Cipher.encrypt).
NONCE_RETRIES = 4


def _random_nonces(n: int) -> torch.Tensor:
    """``n`` fresh 96-bit nonces from the OS's CSPRNG, (n, 12) uint8."""
    return torch.frombuffer(bytearray(os.urandom(12 * n)), dtype=torch.uint8).reshape(n, 12).clone()


def _checked_nonces(nonces: torch.Tensor, n: int) -> torch.Tensor:
    if not isinstance(nonces, torch.Tensor) or nonces.shape != (n, 12) or nonces.dtype != torch.uint8:
        raise ValueError(f"nonce_source must return a ({n}, 12) uint8 tensor")
    return nonces.cpu()


READABLE_VERSIONS = (1, 2, 3)


@dataclass
class Ciphertext:
    """A batch of ciphertexts.

    Attributes:
        pixels: (B, C, H, W) uint8, the 8-bit ciphertext images.
        nonces: (B, 12) uint8, one public nonce per image.
        labels: (B,) int64, the label each NAE targets (the plaintext's prediction).
        steps: (B,) int64, the Adam updates each image's NAE took (replayed by
            decryption); None for format-version-1 ciphertexts.
        header: settings shared by the batch: format version, lam, NAE settings,
            fingerprints of the RIC weights and classifier, and the key id.
    """

    pixels: torch.Tensor
    nonces: torch.Tensor
    labels: torch.Tensor
    header: dict = field(default_factory=dict)
    steps: Optional[torch.Tensor] = None

    def __len__(self) -> int:
        return self.pixels.shape[0]

    def __getitem__(self, idx: Union[int, slice]) -> Ciphertext:
        if isinstance(idx, int):
            idx = slice(idx, idx + 1 if idx != -1 else None)
        return Ciphertext(
            self.pixels[idx],
            self.nonces[idx],
            self.labels[idx],
            dict(self.header),
            None if self.steps is None else self.steps[idx],
        )

    def as_float(self) -> torch.Tensor:
        """Pixels as float32 in [0, 1] (q / 255): what a cloud classifier receives."""
        return self.pixels.float() / 255.0

    @staticmethod
    def cat(items: list) -> Ciphertext:
        if not items:
            raise ValueError("cannot concatenate an empty list of ciphertexts")
        if any(c.header != items[0].header for c in items):
            raise ValueError("cannot concatenate ciphertexts with different headers (settings, weights or key)")
        has_steps = {c.steps is not None for c in items}
        if len(has_steps) > 1:
            raise ValueError("cannot concatenate ciphertexts with and without step counts (format versions differ)")
        steps = torch.cat([c.steps for c in items]) if has_steps == {True} else None
        return Ciphertext(
            torch.cat([c.pixels for c in items]),
            torch.cat([c.nonces for c in items]),
            torch.cat([c.labels for c in items]),
            dict(items[0].header),
            steps,
        )


class Cipher:
    """Encrypts/decrypts with one RIC model, one classifier and one key.

    Args:
        model: trained :class:`~ric_ext.models.RIC` (put in eval mode); the ``"paper"`` scheme's
            networks. The ``"pad"`` scheme uses none (None is fine).
        classifier: images in [0, 1] -> logits (e.g. from
            :func:`ric_ext.models.load_svhn_classifier`); never modified.
        key: the secret :class:`~ric_ext.keys.Key`.
        nae: attack settings (stored in every ciphertext). Default: those the model carries,
            else those the classifier carries, else ``NAEConfig()`` (:mod:`ric_ext.models.settings`).
        batch_size: images per NAE/network batch.
        micro_batch: the networks run on chunks of exactly this many rows
            (stored in the header and used again by decryption), so that an
            image decrypts to the same bytes alone, in any order or batch size
            (:mod:`ric_ext.batching`). None: whole batches (not batch-invariant).
        step_impl: how NAE steps run (see :class:`~ric_ext.nae.NAEGenerator`).
        scheme: ``"pad"`` (a keyed one-time pad on the image's share, no networks; see
            :mod:`ric_ext.schemes`) or ``"paper"`` (the learned encoder's share). Default: ``"paper"``
            when a RIC ``model`` is given (with a :class:`~ric_ext.errors.PaperSchemeWarning`: that
            scheme leaks a blurred image, so choose it by name), ``"pad"`` when it is None. Stored
            in every ciphertext.
        pad_a: the ``"pad"`` scheme's share scale (its guard against the 8-bit rounding).
    """

    def __init__(
        self,
        model: Optional[RIC],
        classifier: nn.Module,
        key: Key,
        nae: Optional[NAEConfig] = None,
        batch_size: int = 256,
        micro_batch: Optional[int] = DEFAULT_MICRO_BATCH,
        step_impl: str = "auto",
        scheme: Optional[str] = None,
        pad_a: float = DEFAULT_A,
    ):
        if scheme is None:  # a RIC model means its scheme; no model, the hardened default
            scheme = default_scheme(model)
            if scheme == "paper":  # the leaking scheme only ever by name (docs/decisions.md)
                warnings.warn(PAPER_SCHEME_LEAKS, PaperSchemeWarning, stacklevel=2)
        if scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
        if scheme == "paper" and not isinstance(model, RIC):
            raise TypeError(f"model must be a ric_ext RIC module, got {type(model).__name__}")
        if model is not None and not isinstance(model, RIC):
            raise TypeError(f"model must be a ric_ext RIC module or None, got {type(model).__name__}")
        if not isinstance(key, Key):
            raise TypeError(f"key must be a ric_ext.keys.Key, got {type(key).__name__}")
        self.model = model.eval() if model is not None else None
        if nae is None:
            carried = nae_defaults(self.model, classifier)
            nae = NAEConfig.from_dict(carried) if carried else NAEConfig()
        self.scheme = PaperScheme(self.model, micro_batch) if scheme == "paper" else PadScheme(a=pad_a)
        self.classifier = classifier.eval()
        self.key = key
        check_int("batch_size", batch_size, 1)
        self.micro_batch = check_micro_batch(micro_batch)
        self.nae = NAEGenerator(self.classifier, nae, step_impl=step_impl, micro_batch=micro_batch)
        self.batch_size = batch_size

    @classmethod
    def from_ciphertext(
        cls,
        ct: Union[Ciphertext, dict],
        key: Key,
        *,
        models: Optional[str] = None,
        device: Union[str, torch.device] = "cpu",
        batch_size: int = 256,
    ) -> Cipher:
        """The cipher that decrypts ``ct`` (or a header): its scheme and settings from the header,
        its classifier and RIC weights found by the header's fingerprints among the bundled,
        archived and stored (``ric-ext models add``) models and the models folder ``models``
        (default: RIC_MODELS). The error names the fingerprint and every place looked."""
        from .errors import CheckpointError
        from .models import store
        from .models.registry import find_classifier, load_classifier, load_ric, model_for_fingerprint

        header = ct.header if isinstance(ct, Ciphertext) else ct
        if not isinstance(header, dict) or header.get("version") not in READABLE_VERSIONS:
            raise CiphertextFormatError("not a ric_ext ciphertext header (or an unsupported format version)")
        clf = load_classifier(find_classifier(str(header.get("classifier")), models), models)
        scheme = header.get("scheme", "paper")
        model = None
        if scheme == "paper":
            fp = str(header.get("model"))
            name = model_for_fingerprint(fp)
            if name is None:
                raise CheckpointError(
                    f"no RIC weights with fingerprint {fp[:16]}... among the bundled and archived models or the "
                    f"model store ({store.store_dir()}); add the file with `ric-ext models add FILE`"
                )
            model = load_ric(name).to(device)
        try:
            nae = NAEConfig.from_dict(header["nae"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CiphertextFormatError(f"malformed NAE settings in the ciphertext header: {exc}") from None
        cipher = cls(
            model,
            clf.to(device),
            key,
            nae,
            batch_size,
            micro_batch=header.get("micro_batch"),
            scheme=scheme,
            pad_a=float(header.get("pad_a", DEFAULT_A)),
        )
        cipher.check_header(header)
        return cipher

    def __repr__(self) -> str:
        return f"Cipher(key={self.key!r}, scheme={self.scheme.name!r}, nae={self.nae.config}, lam={self.scheme.lam})"

    @property
    def device(self) -> torch.device:
        return self.nae.device

    @property
    def channels(self) -> int:
        """Image channels this cipher takes: the model's, else the classifier's (``channels``), else 3."""
        return self.scheme.channels or getattr(self.classifier, "channels", 3)

    def with_key(self, key: Key) -> Cipher:
        """The same cipher (model, classifier, scheme, settings) under another key."""
        c = Cipher(
            self.model,
            self.classifier,
            key,
            self.nae.config,
            self.batch_size,
            self.micro_batch,
            self.nae.step_impl,
            scheme=self.scheme.name,
            pad_a=getattr(self.scheme, "a", DEFAULT_A),
        )
        c.nae = self.nae  # key-independent; sharing it keeps captured CUDA graphs and compiled steps
        return c

    def header(self) -> dict:
        return {
            "format": "ric-ext-ciphertext",
            "version": FORMAT_VERSION,
            **self.scheme.header(),
            "nae": self.nae.config.to_dict(),
            "micro_batch": self.micro_batch,
            "classifier": fingerprint(self.classifier),
            "key_id": self.key.key_id,
        }

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """The classifier's labels for (B, C, H, W) images in [0, 1] (float) or uint8."""
        if images.dtype == torch.uint8:
            images = images.float() / 255.0
        out = [
            self.classifier(images[sl].to(self.device)).argmax(1)
            for sl in batch_slices(images.shape[0], self.batch_size)
        ]
        return torch.cat(out).cpu() if out else torch.zeros(0, dtype=torch.int64)

    def classify(self, ct: Ciphertext) -> torch.Tensor:
        """What the unmodified classifier says about the ciphertexts (the cloud's view)."""
        return self.predict(ct.pixels)

    def _check_images(self, images: torch.Tensor) -> torch.Tensor:
        if not isinstance(images, torch.Tensor):
            raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
        channels = self.scheme.channels
        if images.dim() != 4 or (channels is not None and images.shape[1] != channels):
            want = f"(B, {channels}, H, W)" if channels is not None else "(B, C, H, W)"
            raise ValueError(f"images must have shape {want}, got {tuple(images.shape)}")
        if images.dtype == torch.uint8:
            return images.float() / 255.0
        if not images.is_floating_point():
            raise TypeError(f"images must be float in [0, 1] or uint8, got {images.dtype}")
        if images.numel() and (images.min() < 0 or images.max() > 1):
            raise ValueError("images must be in [0, 1]")
        return images.float()

    @torch.no_grad()
    def encrypt(
        self,
        images: torch.Tensor,
        nonces: Optional[torch.Tensor] = None,
        *,
        allow_nonce_reuse: bool = False,
        nonce_source: Optional[Callable[[torch.Tensor, int], torch.Tensor]] = None,
    ) -> Ciphertext:
        """Encrypt (B, C, H, W) images (float in [0, 1] or uint8).

        ``nonces`` (B, 12) uint8 may be given for reproducibility; by default
        each image gets 12 fresh bytes from os.urandom (a repeat among 2^96 is
        negligible). **Never reuse a nonce with the same key.** Two images under
        one key and nonce get the same keyed noise, and with the same label the
        same NAE, so an attacker who learns one plaintext learns what masks the
        other. The security evaluation's attack (b) measures this: an inversion
        network then recovers SVHN images at ~25 dB (docs/security.md). A batch
        whose nonces repeat is therefore refused with ValueError.
        ``allow_nonce_reuse=True`` exists only to measure that attack. Nonces
        given across separate calls are the caller's responsibility.

        ``nonce_source(rows, attempt)`` (instead of ``nonces``) gives the (len(rows), 12)
        uint8 nonces of those batch rows for attempt 0, 1, ...: folder jobs derive them
        from a per-run seed so that any split of the job across processes makes the same
        files (:func:`ric_ext.folders.derived_nonces`). Default: os.urandom.

        Under the ``"ciphertext"`` stop rule with fresh nonces, an image whose
        ciphertext still came out mislabelled (its attack hit the step bound) is
        encrypted again under a new nonce, up to ``NONCE_RETRIES`` times.
        """
        x = self._check_images(images)
        B = x.shape[0]
        if nonces is not None:
            if not isinstance(nonces, torch.Tensor) or nonces.shape != (B, 12) or nonces.dtype != torch.uint8:
                raise ValueError(f"nonces must be a ({B}, 12) uint8 tensor")
            if not allow_nonce_reuse and B > 1 and torch.unique(nonces, dim=0).shape[0] != B:
                raise ValueError(
                    "nonces repeat within the batch: reusing a nonce under one key gives images the same "
                    "mask, which an attacker can exploit (Cipher.encrypt's docstring); draw fresh nonces"
                )
        if nonces is not None and nonce_source is not None:
            raise ValueError("give nonces or nonce_source, not both")
        fresh = nonces is None
        if fresh:
            source = nonce_source or (lambda rows, attempt: _random_nonces(rows.numel()))
            nonces = _checked_nonces(source(torch.arange(B), 0), B)
            if B > 1 and torch.unique(nonces, dim=0).shape[0] != B:
                raise ValueError("nonce_source gave repeated nonces within the batch")
        labels = self.predict(x)
        pix, n = self._encrypt_rows(x, nonces, labels)
        # An image whose attack hit the step bound before its ciphertext passed may be labelled
        # otherwise. With fresh nonces it is encrypted again under a new nonce (a new NAE), so the
        # cloud's label agrees; only the final nonce is ever seen. Caller-given nonces are kept.
        for attempt in range(1, 1 + (NONCE_RETRIES if fresh and self.nae.config.stop == "ciphertext" else 0)):
            bad = (self.predict(pix) != labels).nonzero().flatten()
            if bad.numel() == 0:
                break
            nonces = nonces.clone()
            nonces[bad] = _checked_nonces(source(bad, attempt), bad.numel())
            pix[bad], n[bad] = self._encrypt_rows(x[bad], nonces[bad], labels[bad])
        return Ciphertext(pix, nonces.cpu(), labels, self.header(), n)

    def _encrypt_rows(self, x: torch.Tensor, nonces: torch.Tensor, labels: torch.Tensor) -> tuple:
        """(uint8 ciphertexts, step counts) on the CPU, one batch of ``batch_size`` at a time."""
        pixels, steps = [], []
        for sl in batch_slices(x.shape[0], self.batch_size):
            pix, n = self._encrypt_batch(x[sl].to(self.device), nonces[sl], labels[sl])
            pixels.append(pix.cpu())
            steps.append(n)
        pix = torch.cat(pixels) if pixels else torch.zeros((0, *x.shape[1:]), dtype=torch.uint8)
        return pix, (torch.cat(steps) if steps else torch.zeros(0, dtype=torch.int64))

    def _encrypt_batch(self, x: torch.Tensor, nonces: torch.Tensor, labels: torch.Tensor) -> tuple:
        """(uint8 ciphertexts, step counts) for one batch on the device."""
        key, shape = self.key.noise_key, x.shape[1:]
        state = self.scheme.prepare(x, nonces, self.key)
        if self.nae.config.stop != "ciphertext":
            res = self.nae.generate(key, nonces, labels, shape)
            return self.scheme.encode(state, res.z), res.steps
        # Ciphertext rule: the check encodes the current NAEs of the active samples and stops those
        # the classifier already labels y with margin ct_margin; their ciphertexts come back as made.
        res = self.nae.generate(key, nonces, labels, shape, rule=_CiphertextCheck(self, state, labels.to(x.device)))
        pix = res.made if res.made is not None else torch.zeros(x.shape, dtype=torch.uint8, device=x.device)
        rest = ~res.made_mask.to(x.device)
        if bool(rest.any()):  # hit the step bound without passing the check
            pix[rest] = self.scheme.encode(state[rest], res.z[rest])
        return pix, res.steps

    def check_header(self, ct: Union[Ciphertext, dict]) -> NAEConfig:
        """Raise if a ciphertext (or its header) does not fit this cipher; return its NAE settings."""
        header = ct.header if isinstance(ct, Ciphertext) else ct
        if header.get("version") not in READABLE_VERSIONS:
            raise CiphertextFormatError(f"unsupported ciphertext format version {header.get('version')!r}")
        if header.get("key_id") != self.key.key_id:
            raise WrongKeyError("this ciphertext was made under another key (its key id differs from this key's)")
        made_with = header.get("scheme", "paper")  # formats 1 and 2 knew only the paper's scheme
        if made_with != self.scheme.name:
            raise ModelMismatchError(
                f"this ciphertext was made with the {made_with!r} scheme; this cipher uses {self.scheme.name!r}"
            )
        if made_with == "paper" and header.get("model") != fingerprint(self.model):
            from .models.registry import model_for_fingerprint

            name = model_for_fingerprint(str(header.get("model")))
            hint = f": it was made with {name!r} (load_ric({name!r}), --model {name})" if name else ""
            raise ModelMismatchError("the RIC weights differ from those the ciphertext was made with" + hint)
        if made_with == "pad" and header.get("pad_a") != self.scheme.a:
            raise ModelMismatchError(f"ciphertext pad_a {header.get('pad_a')} != this cipher's {self.scheme.a}")
        if header.get("classifier") != fingerprint(self.classifier):
            raise ModelMismatchError("the classifier differs from the one the ciphertext was made with")
        if float(header.get("lam", -1)) != self.scheme.lam:
            raise ModelMismatchError(f"ciphertext lam {header.get('lam')} != this cipher's lam {self.scheme.lam}")
        try:
            cfg = NAEConfig.from_dict(header["nae"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CiphertextFormatError(f"malformed NAE settings in the ciphertext header: {exc}") from None
        try:
            check_micro_batch(header.get("micro_batch"))
        except ValueError as exc:
            raise CiphertextFormatError(f"malformed ciphertext header: {exc}") from None
        if isinstance(ct, Ciphertext):
            if (ct.steps is None) != (header["version"] == 1):
                raise CiphertextFormatError("format-2/3 ciphertexts carry per-image step counts, format 1 none")
            if ct.steps is not None and ct.steps.shape != (len(ct),):
                raise CiphertextFormatError(f"steps must have shape ({len(ct)},), got {tuple(ct.steps.shape)}")
        return cfg

    def regenerate(self, ct: Ciphertext, key: Optional[Key] = None) -> torch.Tensor:
        """The NAEs of ``ct`` (on the cipher's device), regenerated under ``key`` (default: this cipher's).

        Format 2: replays each image's recorded step count. Format 1: reruns
        the fixed-step attack with the authors' early stop, as version 1 did.
        Another ``key`` gives what an attacker with that key would get
        (key-sensitivity tests); the header is not checked here.
        """
        cfg = NAEConfig.from_dict(ct.header["nae"])
        mb = ct.header.get("micro_batch")
        gen = (
            self.nae
            if (cfg, mb) == (self.nae.config, self.nae.micro_batch)
            else NAEGenerator(self.classifier, cfg, step_impl=self.nae.step_impl, micro_batch=mb)
        )
        noise_key = (key or self.key).noise_key
        out = []
        for sl in batch_slices(len(ct), self.batch_size):
            shape = ct.pixels.shape[1:]
            if ct.steps is None:
                out.append(gen(noise_key, ct.nonces[sl], ct.labels[sl], shape))
            else:
                out.append(gen.replay(noise_key, ct.nonces[sl], ct.labels[sl], shape, ct.steps[sl]))
        if not out:
            return torch.zeros(ct.pixels.shape, dtype=torch.float32, device=self.device)
        return torch.cat(out)

    @torch.no_grad()
    def decode(self, ct: Ciphertext, z: torch.Tensor, key: Optional[Key] = None) -> torch.Tensor:
        """The scheme's decoding of ``ct``'s pixels with NAEs ``z`` (in the ciphertext's micro-batches).

        :meth:`decrypt` is ``decode(ct, regenerate(ct))``; evaluation and the
        attacks decode with other NAEs, keys or modified pixels. ``key`` (default:
        this cipher's) is the ``"pad"`` scheme's pad key holder. Returns (B, C, H, W)
        float32 in [0, 1] on the CPU.
        """
        pixels, z = ct.pixels.to(self.device), z.to(self.device)
        x_hat = self.scheme.decode(pixels, z, ct.nonces, key or self.key, ct.header.get("micro_batch"))
        return x_hat.cpu()

    @torch.no_grad()
    def decrypt(self, ct: Ciphertext) -> torch.Tensor:
        """Regenerate each NAE from (key, nonce, label, step count, settings) and run the decoder.

        Returns (B, C, H, W) float32 in [0, 1]. Raises WrongKeyError or
        ModelMismatchError when the ciphertext does not belong to this cipher.
        """
        self.check_header(ct)
        out = [
            self.decode(part, self.regenerate(part))
            for part in (ct[sl] for sl in batch_slices(len(ct), self.batch_size))
        ]
        return torch.cat(out) if out else torch.zeros(ct.pixels.shape, dtype=torch.float32)


class _CiphertextCheck(StopRule):
    """The ``"ciphertext"`` stop rule for one batch: encode the current NAEs with the batch's
    scheme state and stop the images whose ciphertext the classifier labels y with margin ct_margin."""

    def __init__(self, cipher: Cipher, state: torch.Tensor, labels: torch.Tensor):
        self.cipher, self.state, self.labels = cipher, state, labels

    @torch.no_grad()
    def check(self, z: torch.Tensor, idx: torch.Tensor, t: int) -> tuple:
        c = self.cipher
        c8 = c.scheme.encode(self.state[idx], z)
        logits = run_chunked(lambda p: c.classifier(fast_layout(p.float() / 255.0)), (c8,), c.micro_batch)
        return ops.margin(logits, self.labels[idx]) >= c.nae.config.ct_margin, c8
