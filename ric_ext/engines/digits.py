"""The digits scheme's engine (format 4, the default; docs/scheme.md#digits).

Encryption: the image's padded share (:meth:`~ric_ext.schemes.DigitScheme.share`) is the low
digit of every byte; the NAE digit above it starts from the label's bank entry (or the keyed
noise) and is attacked until the float32 classifier labels the ciphertext as the plaintext
(:class:`~ric_ext.nae_digits.DigitAttack`); a keyed digest binds each plaintext to its nonce and
ciphertext. Decryption is integers and a codec from the key, nonce and pixels alone: no
classifier, no float that could differ between machines.
"""

from __future__ import annotations

import os
import warnings
from typing import Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from .. import codec, ops
from ..bank import NAEBank
from ..batching import batch_slices
from ..ciphertext import Ciphertext, classifier_name
from ..errors import CiphertextFormatError, IntegrityError, ModelMismatchError
from ..keys import Key
from ..models.classifiers import fingerprint
from ..nae import NAEConfig
from ..nae_digits import DigitAttack, quantise
from ..schemes import DIGITS_BASE, DigitScheme
from .base import Engine, NonceSource, check_classifier, checked_nonces_of, nae_of_header, need_classifier

#: The digits scheme's attack settings unless given: lr 0.2, as its digit moves in steps of 1/4 of
#: z's range (3.6 steps from noise on SVHN, against 27 at lr 0.01: docs/benchmarks.md).
DIGITS_NAE = NAEConfig(lr=0.2)


class DigitsEngine(Engine):
    """The digits scheme for one classifier (None: decrypt-only). Options as :class:`~ric_ext.cipher.Cipher`'s."""

    version = 4
    replays = False

    def __init__(
        self,
        classifier: Optional[nn.Module],
        *,
        nae: Optional[NAEConfig] = None,
        batch_size: int = 256,
        step_impl: str = "auto",
        base: int = DIGITS_BASE,
        bank: Union[str, NAEBank, None] = "auto",
        precision: str = "auto",
        progress: bool = True,
        ensemble: Sequence[nn.Module] = (),
        device: Union[str, torch.device] = "cpu",
    ):
        if bank is not None and not isinstance(bank, (str, NAEBank)):
            raise TypeError(f"bank must be 'auto', None, an NAEBank or a bank file, got {type(bank).__name__}")
        if nae is not None and not isinstance(nae, NAEConfig):
            raise TypeError(f"nae must be a ric_ext.NAEConfig or None, got {type(nae).__name__}")
        self.classifier = check_classifier(classifier)
        self.scheme = DigitScheme(base)
        self.nae_config = nae or DIGITS_NAE
        self.batch_size, self.step_impl = batch_size, step_impl
        self.bank_spec, self.progress = bank, progress
        self._banks: dict = {}
        self._device = torch.device(device)  # a decrypt-only engine's: where the digit unpad runs
        self.ensemble = [check_classifier(m) for m in ensemble]
        self._ensemble_fps = [fingerprint(m) for m in self.ensemble]  # members are never modified: once
        if self.ensemble and self.classifier is None:
            raise ValueError("an ensemble is checked at encryption: it needs the crafting classifier too")
        self.attack: Optional[DigitAttack] = None
        if self.classifier is not None:
            self.attack = DigitAttack(
                self.classifier, self.nae_config, base, precision, step_impl, members=self.ensemble
            )

    @classmethod
    def from_header(cls, header: dict, *, device: Union[str, torch.device], batch_size: int, **_) -> DigitsEngine:
        """The decrypt-only engine of a format-4 header: its base is all it needs."""
        base = header.get("base")
        if isinstance(base, bool) or not isinstance(base, int):
            raise CiphertextFormatError(f"malformed ciphertext header: base {base!r}")
        return cls(None, base=base, batch_size=batch_size, device=device)

    @property
    def device(self) -> torch.device:
        return self.attack.device if self.attack is not None else self._device

    @property
    def precision(self) -> str:
        """The attack's precision as asked ('auto', 'fp32', 'bf16')."""
        return self.attack.precision_arg if self.attack is not None else "auto"

    def describe(self) -> dict:
        return {"base": self.scheme.base, "NAE start": "bank" if self.bank_spec is not None else "keyed noise"}

    def header(self, key: Key) -> dict:
        clf = need_classifier(self.classifier)
        h = {"format": "ric-ext-ciphertext", "version": self.version, **self.scheme.header()}
        h["nae"] = self.nae_config.to_dict()
        h["classifier"] = fingerprint(clf)
        name = classifier_name(clf)
        if name is not None:
            h["classifier_name"] = name
        if self.ensemble:  # every one of them labelled each ciphertext as intended when it was made
            h["ensemble"] = list(self._ensemble_fps)
        h["key_id"] = key.key_id
        return h

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        need_classifier(self.classifier)
        # in fixed chunks: a label does not depend on the image's batch
        out = [
            self.attack.logits(images[sl].to(self.device)).argmax(1)
            for sl in batch_slices(len(images), self.batch_size)
        ]
        return torch.cat(out).cpu() if out else torch.zeros(0, dtype=torch.int64)

    # -- encryption ----------------------------------------------------------------------
    def bank_for(self, shape: tuple) -> Optional[NAEBank]:
        """The NAE bank (C, H, W) images start from (None: the keyed noise).

        ``bank="auto"`` takes the classifier's bundled or cached bank, and trains and caches one
        (``$RIC_HOME/banks``, with a progress bar) the first time a classifier has none.
        ``bank="portable"`` takes its bundled or cached portable bank (issue 36): the one for this
        cipher's ``ensemble`` when it has one, trained over it on first use, else any portable bank
        of the classifier.
        """
        from .. import bank as bank_mod
        from .. import bank_lazy

        shape = tuple(int(s) for s in shape)
        if self.bank_spec is None:
            return None
        if shape in self._banks:
            return self._banks[shape]
        clf, base = need_classifier(self.classifier), self.scheme.base
        fp = fingerprint(clf)
        spec = self.bank_spec
        if isinstance(spec, NAEBank):
            b = spec
        elif spec == "portable":
            b = self._portable_bank(clf, fp, base, shape)
        elif spec != "auto":
            b = NAEBank.load(spec)
        else:
            path = bank_mod.find(fp, base, shape)
            num_classes = None if path is not None else bank_mod._num_classes(clf, shape, self.device)
            if path is not None:
                b = NAEBank.load(path)
            elif num_classes > bank_lazy.LAZY_FROM:  # many classes: a label's entries when it first appears
                b = bank_lazy.empty(fp, base, shape, num_classes, bank_mod.BankSettings())
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

    def _portable_bank(self, clf: nn.Module, fp: str, base: int, shape: tuple) -> NAEBank:
        from .. import bank as bank_mod
        from ..cloud_eot import CloudTransforms

        members = self._ensemble_fps
        path = bank_mod.find_portable(fp, base, shape, members)
        if path is not None:
            return NAEBank.load(path)
        if not members:
            raise ValueError(
                f"no portable NAE bank for classifier {fp[:16]}... at base {base}, images {shape}: give the cipher "
                "an ensemble (other classifiers of the task) to train one"
            )
        cloud = CloudTransforms()
        b = bank_mod.train_bank(clf, shape, base, ensemble=self.ensemble, cloud=cloud, progress=self.progress)
        b = bank_mod.refine_failing(b, clf, ensemble=self.ensemble, cloud=cloud)  # as for a plain bank: speed
        path = os.path.join(bank_mod.cache_dir(), bank_mod.file_name(fp, base, shape, members))
        try:
            b.save(path)
        except FileExistsError:  # another process cached one meanwhile: everyone uses that one
            b = NAEBank.load(path)
        return b

    def _fill(self, b: NAEBank, labels: torch.Tensor, shape: tuple) -> NAEBank:
        """The lazy bank ``b`` with ``labels`` trained, merged with what the cache file holds now (another
        process may have added labels; a label's entries are the same whoever trained them), saved back."""
        from .. import bank as bank_mod
        from .. import bank_lazy

        path = os.path.join(bank_mod.cache_dir(), bank_mod.file_name(b.classifier, b.base, shape))
        cached = NAEBank.load(path) if os.path.isfile(path) else None
        b = bank_lazy.filled(b, need_classifier(self.classifier), labels.tolist(), others=cached)
        b.save(path, overwrite=True)  # our cache, replaced atomically; it only ever gains labels
        self._banks[tuple(shape)] = b
        return b

    def starts(self, labels: torch.Tensor, nonces: torch.Tensor, shape: tuple, key: Key) -> torch.Tensor:
        """(B, C, H, W) uint8: where each image's attack starts, its bank entry or its keyed noise."""
        b = self.bank_for(shape)
        if b is not None and b.meta.get("lazy") and not set(labels.tolist()) <= set(b.labels):
            b = self._fill(b, labels, shape)
        if b is not None:
            return b.starts(labels, nonces, key.bank_key)
        z0 = ops.keyed_uniform(key.noise_key, nonces, shape)
        return quantise(z0, self.scheme.levels)

    def encrypt(
        self, x: torch.Tensor, nonces: torch.Tensor, key: Key, retries: int, source: Optional[NonceSource]
    ) -> Ciphertext:
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
                nonces[rows] = checked_nonces_of(source, rows, attempt)
            for sl in batch_slices(rows.numel(), self.batch_size):
                r = rows[sl]
                m, ll, rec = self.scheme.share(x8[r], nonces[r], key)
                dev = self.device
                q0 = self.starts(labels[r], nonces[r], tuple(x8.shape[1:]), key)
                res = self.attack.run(m.to(dev), labels[r].to(dev), q0.to(dev))
                pix[r], steps[r], passed[r] = res.pixels.cpu(), res.steps, res.passed
                lossless[r.numpy()], recovered[r.numpy()] = ll, rec
        if not bool(passed.all()):
            self._warn_failed(pix[~passed], labels[~passed], (~passed).nonzero().flatten().tolist())
        digests = DigitScheme.digests(key, nonces, recovered, lossless, pix)
        header = self.header(key)
        bank = self._banks.get(tuple(x8.shape[1:]))
        if bank is not None and bank.meta.get("ensemble"):  # a portable bank: what its patterns were trained over
            header["bank_ensemble"] = list(bank.meta["ensemble"])
        return Ciphertext(pix, nonces.cpu(), labels, header, steps, digests, torch.from_numpy(lossless))

    def _warn_failed(self, pixels: torch.Tensor, labels: torch.Tensor, rows: list) -> None:
        """Say which classifier still mislabels which images after every retry (rare: each got fresh nonces)."""
        names = ["the crafting classifier"] + [f"ensemble member {i}" for i in range(len(self.ensemble))]
        who = [
            f"{names[w + 1]} (images {[rows[i] for i in idx]})"
            for w, idx in self.attack.failing(pixels.to(self.device), labels.to(self.device))
        ]
        warnings.warn(
            f"{len(rows)} ciphertext(s) are not labelled as their plaintexts after the attack's step bound and "
            "the nonce retries: " + "; ".join(who or ["(none on a second look)"]),
            stacklevel=5,  # _warn_failed, engine.encrypt, Cipher.encrypt, its no_grad wrapper, the caller
        )

    # -- decryption ----------------------------------------------------------------------
    def check_header(self, header: dict, ct: Optional[Ciphertext]) -> NAEConfig:
        cfg = nae_of_header(header)
        if header.get("base") != self.scheme.base:
            raise ModelMismatchError(f"ciphertext base {header.get('base')!r} != this cipher's {self.scheme.base}")
        if header.get("codec") != codec.NAME:
            raise CiphertextFormatError(f"unknown payload codec {header.get('codec')!r} (this version: {codec.NAME})")
        if ct is not None and (ct.digests is None or ct.digests.shape != (len(ct), 16)):
            raise CiphertextFormatError("format-4 ciphertexts carry a 16-byte plaintext digest per image")
        return cfg

    def decrypt_uint8(self, ct: Ciphertext, key: Key) -> tuple:
        """The image itself where it was stored losslessly, else its lossy digits, each checked
        against its keyed digest: IntegrityError, never another image."""
        out, lossless = [], []
        for sl in batch_slices(len(ct), self.batch_size):
            part = ct[sl]
            items, ll = self.scheme.recover(part.pixels.to(self.device), part.nonces, key)
            for i, it in enumerate(items):
                if not isinstance(it, np.ndarray):
                    raise IntegrityError(f"ciphertext {sl.start + i} does not decrypt: {it}") from None
            pix = np.stack(items) if items else np.zeros((0, *ct.pixels.shape[1:]), dtype=np.uint8)
            want = DigitScheme.digests(key, part.nonces, pix, ll, part.pixels)
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

    def decrypt(self, ct: Ciphertext, key: Key) -> torch.Tensor:
        return self.decrypt_uint8(ct, key)[0].float() / 255.0

    def regenerate(self, ct: Ciphertext, key: Key) -> torch.Tensor:
        # its NAE is the ciphertext's high digit, which anyone can read: the key plays no part
        return self.scheme.nae_digit(ct.pixels).to(self.device)

    def decode(self, ct: Ciphertext, z: torch.Tensor, key: Key) -> torch.Tensor:
        # z is not needed: what ``key`` unpads, the image where its payload decodes, else the digits as levels
        return self.scheme.decode_lenient(ct.pixels, ct.nonces, key).float() / 255.0
