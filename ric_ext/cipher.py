"""The owner's API: encrypt images into 8-bit ciphertexts the plaintext
classifier still labels correctly, and decrypt them back.

    cipher = Cipher(None, classifier, key)   # the digits scheme (default); scheme="pad" / "paper": older ones
    ct = cipher.encrypt(images)        # images: (B, C, H, W) float in [0, 1] or uint8
    labels = cipher.classify(ct)       # what the unmodified classifier says
    images_hat = cipher.decrypt(ct)    # raises IntegrityError rather than return another image
    Cipher.from_ciphertext(ct, key).decrypt(ct)   # later, with the key alone

Each image gets a fresh random 96-bit nonce; its label is the classifier's
prediction on the plaintext. The default ``"digits"`` scheme (format 4) is decrypted
with integer arithmetic and a lossless codec from the key, nonce and pixels alone, and
each image's keyed digest is checked (:mod:`ric_ext.schemes`). The ``"pad"`` and
``"paper"`` schemes (formats 1-3, still decrypted) record each image's attack step count
and regenerate its NAE by replaying the attack in float32
(:meth:`ric_ext.nae.NAEGenerator.replay`): another backend may round that replay
differently (docs/open-problems.md).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Callable, Optional, Union

import numpy as np
import torch
from torch import nn

from . import codec, ops
from .bank import NAEBank
from .batching import DEFAULT_MICRO_BATCH, batch_slices, check_micro_batch, fast_layout, run_chunked
from .checks import check_int
from .errors import (
    PAPER_SCHEME_LEAKS,
    CiphertextFormatError,
    IntegrityError,
    ModelMismatchError,
    PaperSchemeWarning,
    WrongKeyError,
)
from .keys import Key
from .models.classifiers import fingerprint
from .models.networks import RIC
from .models.settings import nae_defaults
from .nae import NAEConfig, NAEGenerator, StopRule
from .nae_digits import DigitAttack, quantise
from .ops.pad import DEFAULT_A
from .schemes import DIGITS_BASE, REPLAYED, SCHEMES, DigitScheme, PadScheme, PaperScheme, default_scheme

#: 4: the digits scheme, decrypted without replay, with plaintext digests (docs/scheme.md#digits);
#: 3: the header names its scheme; 2: per-image step counts; 1: fixed-step NAEs.
FORMAT_VERSION = 4
#: The digits scheme's attack settings unless given: lr 0.2, as its digit moves in steps of 1/4 of
#: z's range (3.6 steps from noise on SVHN, against 27 at lr 0.01: docs/benchmarks.md).
DIGITS_NAE = NAEConfig(lr=0.2)
#: Fresh nonces an image gets at most when its ciphertext came out mislabelled (Cipher.encrypt).
NONCE_RETRIES = 4


def _random_nonces(n: int) -> torch.Tensor:
    """``n`` fresh 96-bit nonces from the OS's CSPRNG, (n, 12) uint8."""
    return torch.frombuffer(bytearray(os.urandom(12 * n)), dtype=torch.uint8).reshape(n, 12).clone()


def _checked_nonces(nonces: torch.Tensor, n: int) -> torch.Tensor:
    if not isinstance(nonces, torch.Tensor) or nonces.shape != (n, 12) or nonces.dtype != torch.uint8:
        raise ValueError(f"nonce_source must return a ({n}, 12) uint8 tensor")
    return nonces.cpu()


READABLE_VERSIONS = (1, 2, 3, 4)


@dataclass
class Ciphertext:
    """A batch of ciphertexts.

    Attributes:
        pixels: (B, C, H, W) uint8, the 8-bit ciphertext images.
        nonces: (B, 12) uint8, one public nonce per image.
        labels: (B,) int64, the label each NAE targets (the plaintext's prediction).
        steps: (B,) int64, the Adam updates each image's NAE took. Formats 2-3 replay exactly
            that many on decryption (written to their files); format 4 only reports them (not
            written). None for format-1 ciphertexts and format-4 files.
        header: settings shared by the batch: format version, scheme and its settings, NAE
            settings, fingerprints of the classifier (and RIC weights), and the key id.
        digests: (B, 16) uint8, format 4: each plaintext's keyed digest, bound to its nonce
            (decryption checks it). None for formats 1-3.
        lossless: (B,) bool, format 4, the owner's side only (never written to a file): whether
            each image was stored losslessly (else as its lossy digits). None when unknown.
    """

    pixels: torch.Tensor
    nonces: torch.Tensor
    labels: torch.Tensor
    header: dict = field(default_factory=dict)
    steps: Optional[torch.Tensor] = None
    digests: Optional[torch.Tensor] = None
    lossless: Optional[torch.Tensor] = None

    def __len__(self) -> int:
        return self.pixels.shape[0]

    def __getitem__(self, idx: Union[int, slice]) -> Ciphertext:
        if isinstance(idx, int):
            idx = slice(idx, idx + 1 if idx != -1 else None)
        opt = lambda t: None if t is None else t[idx]  # noqa: E731
        return Ciphertext(
            self.pixels[idx],
            self.nonces[idx],
            self.labels[idx],
            dict(self.header),
            opt(self.steps),
            opt(self.digests),
            opt(self.lossless),
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

        def joined(name: str) -> Optional[torch.Tensor]:
            has = {getattr(c, name) is not None for c in items}
            if len(has) > 1:
                raise ValueError(f"cannot concatenate ciphertexts with and without {name} (format versions differ)")
            return torch.cat([getattr(c, name) for c in items]) if has == {True} else None

        return Ciphertext(
            torch.cat([c.pixels for c in items]),
            torch.cat([c.nonces for c in items]),
            torch.cat([c.labels for c in items]),
            dict(items[0].header),
            joined("steps"),
            joined("digests"),
            joined("lossless"),
        )


def classifier_name(classifier: Optional[nn.Module]) -> Optional[str]:
    """The name a classifier was loaded by (``load_classifier`` sets it: a built-in or stored name, or the
    file's stem), which is also the model's name on ``ric-ext serve``; None when unknown."""
    return getattr(classifier, "ric_name", None) if classifier is not None else None


class Cipher:
    """Encrypts/decrypts with one classifier and one key (and, for the paper's scheme, one RIC model).

    Args:
        model: trained :class:`~ric_ext.models.RIC` (put in eval mode); the ``"paper"`` scheme's
            networks. The other schemes use none (None is fine).
        classifier: images in [0, 1] -> logits (e.g. from :func:`ric_ext.models.load_classifier`);
            never modified. The ``"digits"`` scheme decrypts without one: None makes a
            decrypt-only cipher.
        key: the secret :class:`~ric_ext.keys.Key`.
        nae: attack settings (stored in every ciphertext). Default: ``DIGITS_NAE`` for the digits
            scheme; for the others those the model carries, else those the classifier carries,
            else ``NAEConfig()`` (:mod:`ric_ext.models.settings`).
        batch_size: images per batch.
        micro_batch: replayed schemes: the networks run on chunks of exactly this many rows
            (stored in the header and used again by decryption), so that an image decrypts to
            the same bytes alone, in any order or batch size (:mod:`ric_ext.batching`). None:
            whole batches. The digits scheme needs no such care and ignores it.
        step_impl: how attack steps run (see :func:`ric_ext.nae_step.make_step`).
        scheme: ``"digits"`` (the default without a model; :mod:`ric_ext.schemes`), ``"pad"`` or
            ``"paper"`` (the learned encoder's share; the default when a RIC ``model`` is given,
            with a :class:`~ric_ext.errors.PaperSchemeWarning`: that scheme leaks a blurred
            image, so choose it by name). Stored in every ciphertext.
        pad_a: the ``"pad"`` scheme's share scale (its guard against the 8-bit rounding).
        base: the ``"digits"`` scheme's digit base (docs/decisions.md).
        bank: the ``"digits"`` scheme's attack start: ``"auto"`` (the classifier's bundled or
            cached NAE bank, trained on first use: :mod:`ric_ext.bank`), None (the keyed
            noise, as the replayed schemes), an :class:`~ric_ext.bank.NAEBank` or a bank file.
        precision: the ``"digits"`` scheme's attack steps: 'auto', 'fp32' or 'bf16'
            (:func:`ric_ext.nae_digits.resolve_precision`); its check is always float32.
        progress: show a progress bar when a bank has to be trained.
    """

    def __init__(
        self,
        model: Optional[RIC],
        classifier: Optional[nn.Module],
        key: Key,
        nae: Optional[NAEConfig] = None,
        batch_size: int = 256,
        micro_batch: Optional[int] = DEFAULT_MICRO_BATCH,
        step_impl: str = "auto",
        scheme: Optional[str] = None,
        pad_a: float = DEFAULT_A,
        *,
        base: int = DIGITS_BASE,
        bank: Union[str, NAEBank, None] = "auto",
        precision: str = "auto",
        progress: bool = True,
    ):
        if scheme is None:  # a RIC model means its scheme; no model, the default
            scheme = default_scheme(model)
            if scheme == "paper":  # the leaking scheme only ever by name (docs/decisions.md)
                warnings.warn(PAPER_SCHEME_LEAKS, PaperSchemeWarning, stacklevel=2)
        if scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
        if scheme == "paper" and not isinstance(model, RIC):
            raise TypeError(f"model must be a ric_ext RIC module, got {type(model).__name__}")
        if model is not None and not isinstance(model, RIC):
            raise TypeError(f"model must be a ric_ext RIC module or None, got {type(model).__name__}")
        if classifier is None and scheme in REPLAYED:
            raise TypeError(f"the {scheme!r} scheme needs the classifier (its decryption replays the attack)")
        if classifier is not None and not isinstance(classifier, nn.Module):
            raise TypeError(f"classifier must be a torch.nn.Module or None, got {type(classifier).__name__}")
        if not isinstance(key, Key):
            raise TypeError(f"key must be a ric_ext.keys.Key, got {type(key).__name__}")
        if bank is not None and not isinstance(bank, (str, NAEBank)):
            raise TypeError(f"bank must be 'auto', None, an NAEBank or a bank file, got {type(bank).__name__}")
        self.model = model.eval() if model is not None else None
        self.classifier = classifier.eval() if classifier is not None else None
        self.key = key
        check_int("batch_size", batch_size, 1)
        self.batch_size = batch_size
        self.micro_batch = check_micro_batch(micro_batch)
        self.step_impl = step_impl
        self.nae: Optional[NAEGenerator] = None
        self.attack: Optional[DigitAttack] = None
        self.bank_spec, self.progress = bank, progress
        self._banks: dict = {}
        self._device = torch.device("cpu")  # a decrypt-only cipher's (from_ciphertext(..., device=...))
        if scheme == "digits":
            self.scheme = DigitScheme(base)
            self._nae_config = nae or DIGITS_NAE
            if self.classifier is not None:
                self.attack = DigitAttack(self.classifier, self._nae_config, base, precision, step_impl)
            return
        if nae is None:
            carried = nae_defaults(self.model, classifier)
            nae = NAEConfig.from_dict(carried) if carried else NAEConfig()
        self.scheme = PaperScheme(self.model, micro_batch) if scheme == "paper" else PadScheme(a=pad_a)
        self._nae_config = nae
        self.nae = NAEGenerator(self.classifier, nae, step_impl=step_impl, micro_batch=micro_batch)

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
        """The cipher that decrypts ``ct`` (or a header), from its header. Format 4 needs nothing but the
        key. Older formats also need their classifier and RIC weights, found by the header's
        fingerprints among the bundled, archived and stored (``ric-ext models add``) models and the
        models folder ``models`` (default: RIC_MODELS); the error names the fingerprint and every
        place looked."""
        from .errors import CheckpointError
        from .models import store
        from .models.registry import find_classifier, load_classifier, load_ric, model_for_fingerprint

        header = ct.header if isinstance(ct, Ciphertext) else ct
        if not isinstance(header, dict) or header.get("version") not in READABLE_VERSIONS:
            raise CiphertextFormatError("not a ric_ext ciphertext header (or an unsupported format version)")
        scheme = header.get("scheme", "paper")
        if scheme == "digits":
            base = header.get("base")
            if isinstance(base, bool) or not isinstance(base, int):
                raise CiphertextFormatError(f"malformed ciphertext header: base {base!r}")
            cipher = cls(None, None, key, scheme="digits", base=base, batch_size=batch_size)
            cipher.check_header(header)
            cipher._device = torch.device(device)  # where the digit unpad runs
            return cipher
        clf = load_classifier(find_classifier(str(header.get("classifier")), models), models)
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
        return f"Cipher(key={self.key!r}, scheme={self.scheme.name!r}, nae={self.nae_config}, lam={self.scheme.lam})"

    @property
    def nae_config(self) -> NAEConfig:
        """The attack settings this cipher encrypts with (recorded in its headers)."""
        return self._nae_config

    @property
    def replays(self) -> bool:
        """Whether decryption replays the attack (the "pad" and "paper" schemes)."""
        return self.scheme.name in REPLAYED

    @property
    def device(self) -> torch.device:
        if self.nae is not None:
            return self.nae.device
        if self.attack is not None:
            return self.attack.device
        return self._device

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
            self.nae_config,
            self.batch_size,
            self.micro_batch,
            self.step_impl,
            scheme=self.scheme.name,
            pad_a=getattr(self.scheme, "a", DEFAULT_A),
            base=getattr(self.scheme, "base", DIGITS_BASE),
            bank=self.bank_spec,
            precision=self.attack.precision_arg if self.attack is not None else "auto",
            progress=self.progress,
        )
        # key-independent; sharing them keeps captured CUDA graphs, compiled steps and loaded banks
        c.nae, c.attack, c._banks = self.nae, self.attack, self._banks
        return c

    def _need_classifier(self) -> nn.Module:
        if self.classifier is None:
            raise ValueError("this cipher has no classifier (a decrypt-only cipher); give one to encrypt or classify")
        return self.classifier

    def header(self) -> dict:
        clf = self._need_classifier()
        h = {"format": "ric-ext-ciphertext", "version": FORMAT_VERSION if not self.replays else 3}
        h.update(self.scheme.header())
        h["nae"] = self.nae_config.to_dict()
        if self.replays:
            h["micro_batch"] = self.micro_batch
        h["classifier"] = fingerprint(clf)
        name = classifier_name(clf)
        if name is not None and not self.replays:
            h["classifier_name"] = name
        h["key_id"] = self.key.key_id
        return h

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """The classifier's labels for (B, C, H, W) images in [0, 1] (float) or uint8."""
        clf = self._need_classifier()
        if self.attack is not None:  # in fixed chunks: a label does not depend on the image's batch
            out = [
                self.attack.logits(images[sl].to(self.device)).argmax(1)
                for sl in batch_slices(len(images), self.batch_size)
            ]
            return torch.cat(out).cpu() if out else torch.zeros(0, dtype=torch.int64)
        if images.dtype == torch.uint8:
            images = images.float() / 255.0
        out = [
            clf(fast_layout(images[sl].to(self.device))).argmax(1)
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

        The digits scheme encrypts the 8-bit image round(255 x) (float images are rounded
        first) and gives it back bit for bit where it compresses into the share (almost
        always: docs/benchmarks.md), else its lossy digits; ``ct.lossless`` says which.

        ``nonces`` (B, 12) uint8 may be given for reproducibility; by default
        each image gets 12 fresh bytes from os.urandom (a repeat among 2^96 is
        negligible). **Never reuse a nonce with the same key.** Two images under
        one key and nonce get the same pad (and NAE start), so an attacker who learns one
        plaintext learns what masks the other. The security evaluation's attack (b) measures
        this (docs/security.md). A batch whose nonces repeat is therefore refused with
        ValueError. ``allow_nonce_reuse=True`` exists only to measure that attack. Nonces
        given across separate calls are the caller's responsibility.

        ``nonce_source(rows, attempt)`` (instead of ``nonces``) gives the (len(rows), 12)
        uint8 nonces of those batch rows for attempt 0, 1, ...: folder jobs derive them
        from a per-run seed so that any split of the job across processes makes the same
        files (:func:`ric_ext.folders.derived_nonces`). Default: os.urandom.

        An image whose ciphertext still failed its check (its attack hit the step bound) is
        encrypted again under a new nonce, up to ``NONCE_RETRIES`` times, when the nonces
        are the cipher's own.
        """
        self._need_classifier()
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
        retries = NONCE_RETRIES if fresh and self.nae_config.stop == "ciphertext" else 0
        if not self.replays:
            return self._encrypt_digits(x, nonces, retries, source if fresh else None)
        labels = self.predict(x)
        pix, n = self._encrypt_rows(x, nonces, labels)
        # An image whose attack hit the step bound before its ciphertext passed may be labelled
        # otherwise. With fresh nonces it is encrypted again under a new nonce (a new NAE), so the
        # cloud's label agrees; only the final nonce is ever seen. Caller-given nonces are kept.
        for attempt in range(1, 1 + retries):
            bad = (self.predict(pix) != labels).nonzero().flatten()
            if bad.numel() == 0:
                break
            nonces = nonces.clone()
            nonces[bad] = _checked_nonces(source(bad, attempt), bad.numel())
            pix[bad], n[bad] = self._encrypt_rows(x[bad], nonces[bad], labels[bad])
        return Ciphertext(pix, nonces.cpu(), labels, self.header(), n)

    # -- the digits scheme ---------------------------------------------------------------
    def bank_for(self, shape: tuple) -> Optional[NAEBank]:
        """The NAE bank this cipher starts (C, H, W) images from (None: the keyed noise).

        ``bank="auto"`` takes the classifier's bundled or cached bank, and trains and caches one
        (``$RIC_HOME/banks``, with a progress bar) the first time a classifier has none.
        """
        from . import bank as bank_mod

        shape = tuple(int(s) for s in shape)
        if self.bank_spec is None:
            return None
        if shape in self._banks:
            return self._banks[shape]
        clf, base = self._need_classifier(), self.scheme.base
        fp = fingerprint(clf)
        spec = self.bank_spec
        if isinstance(spec, NAEBank):
            b = spec
        elif spec != "auto":
            b = NAEBank.load(spec)
        else:
            path = bank_mod.find(fp, base, shape)
            if path is not None:
                b = NAEBank.load(path)
            else:
                b = bank_mod.train_bank(clf, shape, base, progress=self.progress)
                b = bank_mod.refine_failing(b, clf)  # a pattern that fails costs every image that starts there
                path = os.path.join(bank_mod.cache_dir(), bank_mod.file_name(fp, base, shape))
                try:
                    b.save(path)
                except FileExistsError:  # another process cached one meanwhile: everyone uses that one
                    b = NAEBank.load(path)
        if (b.classifier, b.base, b.shape) != (fp, base, shape):
            raise ValueError(
                f"the NAE bank is for classifier {b.classifier[:16]}..., base {b.base}, images {b.shape}; this cipher "
                f"encrypts {shape} images at base {base} for classifier {fp[:16]}..."
            )
        self._banks[shape] = b
        return b

    def _starts(self, labels: torch.Tensor, nonces: torch.Tensor, shape: tuple) -> torch.Tensor:
        """(B, C, H, W) uint8: where each image's attack starts, its bank entry or its keyed noise."""
        b = self.bank_for(shape)
        if b is not None:
            return b.starts(labels, nonces, self.key.bank_key)
        z0 = ops.keyed_uniform(self.key.noise_key, nonces, shape)
        return quantise(z0, self.scheme.levels)

    def _encrypt_digits(self, x: torch.Tensor, nonces: torch.Tensor, retries: int, source) -> Ciphertext:
        x8 = torch.round(x * 255).to(torch.uint8)
        labels = self.predict(x8)
        B = x8.shape[0]
        pix = torch.empty_like(x8)
        steps = torch.zeros(B, dtype=torch.int64)
        passed = torch.zeros(B, dtype=torch.bool)
        lossless = np.zeros(B, dtype=bool)
        recovered = np.empty(tuple(x8.shape), dtype=np.uint8)
        rows = torch.arange(B)
        for attempt in range(1 + retries):
            if attempt:
                rows = (~passed).nonzero().flatten()
                if rows.numel() == 0:
                    break
                nonces = nonces.clone()
                nonces[rows] = _checked_nonces(source(rows, attempt), rows.numel())
            for sl in batch_slices(rows.numel(), self.batch_size):
                r = rows[sl]
                m, ll, rec = self.scheme.share(x8[r], nonces[r], self.key)
                dev = self.device
                q0 = self._starts(labels[r], nonces[r], tuple(x8.shape[1:]))
                res = self.attack.run(m.to(dev), labels[r].to(dev), q0.to(dev))
                pix[r], steps[r], passed[r] = res.pixels.cpu(), res.steps, res.passed
                lossless[r.numpy()], recovered[r.numpy()] = ll, rec
        digests = DigitScheme.digests(self.key, nonces, recovered, lossless, pix)
        return Ciphertext(pix, nonces.cpu(), labels, self.header(), steps, digests, torch.from_numpy(lossless))

    def decrypt_uint8(self, ct: Ciphertext) -> tuple:
        """(pixels (B, C, H, W) uint8, lossless (B,) bool or None) of ``ct``'s plaintexts.

        Format 4: the image itself where it was stored losslessly, else its lossy digits, each
        checked against its keyed digest: IntegrityError, never another image. Formats 1-3: the
        replayed decryption, rounded to 8 bits (``lossless`` None).
        """
        self.check_header(ct)
        if self.replays:
            return torch.round(self.decrypt(ct) * 255).to(torch.uint8), None
        out, lossless = [], []
        for sl in batch_slices(len(ct), self.batch_size):
            part = ct[sl]
            items, ll = self.scheme.recover(part.pixels.to(self.device), part.nonces, self.key)
            for i, it in enumerate(items):
                if not isinstance(it, np.ndarray):
                    raise IntegrityError(f"ciphertext {sl.start + i} does not decrypt: {it}") from None
            pix = np.stack(items) if items else np.zeros((0, *ct.pixels.shape[1:]), dtype=np.uint8)
            want = DigitScheme.digests(self.key, part.nonces, pix, ll, part.pixels)
            bad = (want != part.digests).any(1).nonzero().flatten()
            if bad.numel():
                raise IntegrityError(
                    f"ciphertext {sl.start + int(bad[0])} does not match its keyed digest (its pixels, nonce or "
                    "digest were changed): no image is returned"
                )
            out.append(torch.from_numpy(pix))
            lossless.append(torch.from_numpy(ll))
        if not out:
            return torch.zeros(ct.pixels.shape, dtype=torch.uint8), torch.zeros(0, dtype=torch.bool)
        return torch.cat(out), torch.cat(lossless)

    # -- the replayed schemes ------------------------------------------------------------
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
        if self.nae_config.stop != "ciphertext":
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
        version = header.get("version")
        if version not in READABLE_VERSIONS:
            raise CiphertextFormatError(f"unsupported ciphertext format version {version!r}")
        if header.get("key_id") != self.key.key_id:
            raise WrongKeyError("this ciphertext was made under another key (its key id differs from this key's)")
        made_with = header.get("scheme", "paper")  # formats 1 and 2 knew only the paper's scheme
        if (made_with == "digits") != (version == 4):
            raise CiphertextFormatError(f"malformed ciphertext header: scheme {made_with!r} in format {version}")
        if made_with != self.scheme.name:
            raise ModelMismatchError(
                f"this ciphertext was made with the {made_with!r} scheme; this cipher uses {self.scheme.name!r}"
            )
        try:
            cfg = NAEConfig.from_dict(header["nae"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CiphertextFormatError(f"malformed NAE settings in the ciphertext header: {exc}") from None
        if made_with == "digits":
            if header.get("base") != self.scheme.base:
                raise ModelMismatchError(f"ciphertext base {header.get('base')!r} != this cipher's {self.scheme.base}")
            if header.get("codec") != codec.NAME:
                raise CiphertextFormatError(
                    f"unknown payload codec {header.get('codec')!r} (this version: {codec.NAME})"
                )
            if isinstance(ct, Ciphertext) and (ct.digests is None or ct.digests.shape != (len(ct), 16)):
                raise CiphertextFormatError("format-4 ciphertexts carry a 16-byte plaintext digest per image")
            return cfg
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

        Format 2-3: replays each image's recorded step count. Format 1: reruns
        the fixed-step attack with the authors' early stop, as version 1 did.
        Another ``key`` gives what an attacker with that key would get
        (key-sensitivity tests); the header is not checked here. Format 4 needs no
        regeneration: its NAE is the ciphertext's high digit, which anyone can read
        (returned as z in [0, 1], whatever ``key``).
        """
        if not self.replays:
            return self.scheme.nae_digit(ct.pixels).to(self.device)
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
        """The scheme's decoding of ``ct``'s pixels with NAEs ``z`` as the holder of ``key`` would read them.

        No integrity check: evaluation and the attacks decode other NAEs, keys or modified
        pixels with it (:meth:`decrypt` is the checked path). Replayed schemes: ``decode(ct,
        regenerate(ct))`` in the ciphertext's micro-batches; ``key`` (default: this cipher's) is
        the pad key holder. Digits scheme: ``z`` is not needed; what ``key`` unpads, the image
        where its payload decodes, else the digits read as lossy levels. Returns (B, C, H, W)
        float32 in [0, 1] on the CPU.
        """
        if not self.replays:
            return self.scheme.decode_lenient(ct.pixels, ct.nonces, key or self.key).float() / 255.0
        pixels, z = ct.pixels.to(self.device), z.to(self.device)
        x_hat = self.scheme.decode(pixels, z, ct.nonces, key or self.key, ct.header.get("micro_batch"))
        return x_hat.cpu()

    @torch.no_grad()
    def decrypt(self, ct: Ciphertext) -> torch.Tensor:
        """The plaintexts of ``ct``: (B, C, H, W) float32 in [0, 1] on the CPU.

        Format 4: :meth:`decrypt_uint8` / 255, exact and checked. Formats 1-3: regenerate each
        NAE from (key, nonce, label, step count, settings) and decode. Raises WrongKeyError,
        ModelMismatchError, CiphertextFormatError or IntegrityError when the ciphertext does not
        belong to this cipher or does not decrypt.
        """
        if not self.replays:
            return self.decrypt_uint8(ct)[0].float() / 255.0
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
        return ops.margin(logits, self.labels[idx]) >= c.nae_config.ct_margin, c8
