"""The replayed schemes' engine: ``"pad"`` and ``"paper"`` (formats 1-3).

The ciphertext mixes the image's share with an NAE z that the attack grows from the keyed noise
(:class:`~ric_ext.nae.NAEGenerator`). Each image's step count is recorded, and decryption
regenerates z by replaying the attack in float32, then decodes. Another backend may round that
replay differently (docs/open-problems.md), so these formats are kept to read old archives and to
reproduce the paper; the networks run on fixed micro-batches so that an image decrypts to the
same bytes alone, in any order or batch size (:mod:`ric_ext.batching`).
"""

from __future__ import annotations

from typing import Optional, Union

import torch
from torch import nn

from .. import ops
from ..batching import DEFAULT_MICRO_BATCH, batch_slices, check_micro_batch, fast_layout, run_chunked
from ..ciphertext import Ciphertext
from ..errors import CiphertextFormatError, ModelMismatchError
from ..keys import Key
from ..models.classifiers import fingerprint
from ..models.networks import RIC
from ..models.settings import nae_defaults
from ..nae import NAEConfig, NAEGenerator, StopRule
from ..ops.pad import DEFAULT_A
from ..schemes import PadScheme, PaperScheme
from .base import Engine, NonceSource, checked_nonces_of, nae_of_header, need_classifier


class ReplayedEngine(Engine):
    """A replayed scheme (:class:`~ric_ext.schemes.PadScheme` or :class:`~ric_ext.schemes.PaperScheme`)
    for one classifier. Build it with :meth:`pad` or :meth:`paper`."""

    version = 3
    replays = True

    def __init__(
        self,
        scheme: Union[PadScheme, PaperScheme],
        classifier: nn.Module,
        *,
        model: Optional[RIC] = None,
        nae: Optional[NAEConfig] = None,
        batch_size: int = 256,
        micro_batch: Optional[int] = DEFAULT_MICRO_BATCH,
        step_impl: str = "auto",
    ):
        if not isinstance(classifier, nn.Module):
            raise TypeError(
                f"the {scheme.name!r} scheme needs the classifier (its decryption replays the attack), "
                f"got {type(classifier).__name__}"
            )
        if nae is not None and not isinstance(nae, NAEConfig):
            raise TypeError(f"nae must be a ric_ext.NAEConfig or None, got {type(nae).__name__}")
        self.scheme, self.model = scheme, model
        self.classifier = classifier.eval()
        self.batch_size, self.step_impl = batch_size, step_impl
        self.micro_batch = check_micro_batch(micro_batch)
        if nae is None:  # the settings the networks were trained with, else the classifier's, else the defaults
            carried = nae_defaults(model, classifier)
            nae = NAEConfig.from_dict(carried) if carried else NAEConfig()
        self.nae_config = nae
        self.nae = NAEGenerator(self.classifier, nae, step_impl=step_impl, micro_batch=self.micro_batch)

    @classmethod
    def pad(cls, classifier: nn.Module, *, a: float = DEFAULT_A, **options) -> ReplayedEngine:
        return cls(PadScheme(a=a), classifier, **options)

    @classmethod
    def paper(cls, model: RIC, classifier: nn.Module, *, micro_batch=DEFAULT_MICRO_BATCH, **options) -> ReplayedEngine:
        if not isinstance(model, RIC):
            raise TypeError(f"model must be a ric_ext RIC module, got {type(model).__name__}")
        scheme = PaperScheme(model.eval(), check_micro_batch(micro_batch))
        return cls(scheme, classifier, model=model.eval(), micro_batch=micro_batch, **options)

    @classmethod
    def from_header(
        cls, header: dict, *, models: Optional[str], device: Union[str, torch.device], batch_size: int
    ) -> ReplayedEngine:
        """The engine that decrypts a format 1-3 header: its classifier and (paper) RIC weights are found
        by fingerprint among the bundled, archived and stored models and the folder ``models``."""
        from ..errors import CheckpointError
        from ..models import store
        from ..models.registry import find_classifier, load_classifier, load_ric, model_for_fingerprint

        clf = load_classifier(find_classifier(str(header.get("classifier")), models), models).to(device)
        options = dict(nae=nae_of_header(header), batch_size=batch_size, micro_batch=header.get("micro_batch"))
        if header.get("scheme", "paper") == "pad":  # formats 1 and 2 knew only the paper's scheme
            return cls.pad(clf, a=float(header.get("pad_a", DEFAULT_A)), **options)
        fp = str(header.get("model"))
        name = model_for_fingerprint(fp)
        if name is None:
            raise CheckpointError(
                f"no RIC weights with fingerprint {fp[:16]}... among the bundled and archived models or the "
                f"model store ({store.store_dir()}); add the file with `ric-ext models add FILE`"
            )
        return cls.paper(load_ric(name).to(device), clf, **options)

    @property
    def device(self) -> torch.device:
        return self.nae.device

    def describe(self) -> dict:
        return {"micro_batch": self.micro_batch}

    def header(self, key: Key) -> dict:
        clf = need_classifier(self.classifier)
        h = {"format": "ric-ext-ciphertext", "version": self.version, **self.scheme.header()}
        h["nae"] = self.nae_config.to_dict()
        h["micro_batch"] = self.micro_batch
        h["classifier"] = fingerprint(clf)
        h["key_id"] = key.key_id
        return h

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype == torch.uint8:
            images = images.float() / 255.0
        out = [
            self.classifier(fast_layout(images[sl].to(self.device))).argmax(1)
            for sl in batch_slices(images.shape[0], self.batch_size)
        ]
        return torch.cat(out).cpu() if out else torch.zeros(0, dtype=torch.int64)

    # -- encryption ----------------------------------------------------------------------
    def encrypt(
        self, x: torch.Tensor, nonces: torch.Tensor, key: Key, retries: int, source: Optional[NonceSource]
    ) -> Ciphertext:
        labels = self.predict(x)
        pix, n = self._encrypt_rows(x, nonces, labels, key)
        # An image whose attack hit the step bound before its ciphertext passed may be labelled
        # otherwise. With fresh nonces it is encrypted again under a new nonce (a new NAE), so the
        # cloud's label agrees; only the final nonce is ever seen. Caller-given nonces are kept.
        for attempt in range(1, 1 + retries):
            bad = (self.predict(pix) != labels).nonzero().flatten()
            if bad.numel() == 0:
                break
            nonces = nonces.clone()
            nonces[bad] = checked_nonces_of(source, bad, attempt)
            pix[bad], n[bad] = self._encrypt_rows(x[bad], nonces[bad], labels[bad], key)
        return Ciphertext(pix, nonces.cpu(), labels, self.header(key), n)

    def _encrypt_rows(self, x: torch.Tensor, nonces: torch.Tensor, labels: torch.Tensor, key: Key) -> tuple:
        """(uint8 ciphertexts, step counts) on the CPU, one batch of ``batch_size`` at a time."""
        pixels, steps = [], []
        for sl in batch_slices(x.shape[0], self.batch_size):
            pix, n = self._encrypt_batch(x[sl].to(self.device), nonces[sl], labels[sl], key)
            pixels.append(pix.cpu())
            steps.append(n)
        pix = torch.cat(pixels) if pixels else torch.zeros((0, *x.shape[1:]), dtype=torch.uint8)
        return pix, (torch.cat(steps) if steps else torch.zeros(0, dtype=torch.int64))

    def _encrypt_batch(self, x: torch.Tensor, nonces: torch.Tensor, labels: torch.Tensor, key: Key) -> tuple:
        """(uint8 ciphertexts, step counts) for one batch on the device."""
        noise_key, shape = key.noise_key, x.shape[1:]
        state = self.scheme.prepare(x, nonces, key)
        if self.nae_config.stop != "ciphertext":
            res = self.nae.generate(noise_key, nonces, labels, shape)
            return self.scheme.encode(state, res.z), res.steps
        # Ciphertext rule: the check encodes the current NAEs of the active samples and stops those
        # the classifier already labels y with margin ct_margin; their ciphertexts come back as made.
        rule = _CiphertextCheck(self, state, labels.to(x.device))
        res = self.nae.generate(noise_key, nonces, labels, shape, rule=rule)
        pix = res.made if res.made is not None else torch.zeros(x.shape, dtype=torch.uint8, device=x.device)
        rest = ~res.made_mask.to(x.device)
        if bool(rest.any()):  # hit the step bound without passing the check
            pix[rest] = self.scheme.encode(state[rest], res.z[rest])
        return pix, res.steps

    # -- decryption ----------------------------------------------------------------------
    def check_header(self, header: dict, ct: Optional[Ciphertext]) -> NAEConfig:
        cfg = nae_of_header(header)
        mine = self.scheme.header()  # model: None for the pad scheme, the weights' fingerprint for the paper's
        if header.get("model") != mine["model"]:
            from ..models.registry import model_for_fingerprint

            name = model_for_fingerprint(str(header.get("model")))
            hint = f": it was made with {name!r} (load_ric({name!r}), --model {name})" if name else ""
            raise ModelMismatchError("the RIC weights differ from those the ciphertext was made with" + hint)
        if header.get("pad_a") != mine.get("pad_a"):  # the paper's scheme has none
            raise ModelMismatchError(f"ciphertext pad_a {header.get('pad_a')} != this cipher's {mine.get('pad_a')}")
        if header.get("classifier") != fingerprint(self.classifier):
            raise ModelMismatchError("the classifier differs from the one the ciphertext was made with")
        if float(header.get("lam", -1)) != self.scheme.lam:
            raise ModelMismatchError(f"ciphertext lam {header.get('lam')} != this cipher's lam {self.scheme.lam}")
        try:
            check_micro_batch(header.get("micro_batch"))
        except ValueError as exc:
            raise CiphertextFormatError(f"malformed ciphertext header: {exc}") from None
        if ct is not None:
            if (ct.steps is None) != (header["version"] == 1):
                raise CiphertextFormatError("format-2/3 ciphertexts carry per-image step counts, format 1 none")
            if ct.steps is not None and ct.steps.shape != (len(ct),):
                raise CiphertextFormatError(f"steps must have shape ({len(ct)},), got {tuple(ct.steps.shape)}")
        return cfg

    def regenerate(self, ct: Ciphertext, key: Key) -> torch.Tensor:
        """Format 2-3: replays each image's recorded step count. Format 1: reruns the fixed-step attack
        with the authors' early stop, as version 1 did. The header is not checked here."""
        cfg = NAEConfig.from_dict(ct.header["nae"])
        mb = ct.header.get("micro_batch")
        gen = (
            self.nae
            if (cfg, mb) == (self.nae.config, self.nae.micro_batch)
            else NAEGenerator(self.classifier, cfg, step_impl=self.nae.step_impl, micro_batch=mb)
        )
        out = []
        for sl in batch_slices(len(ct), self.batch_size):
            shape = ct.pixels.shape[1:]
            if ct.steps is None:
                out.append(gen(key.noise_key, ct.nonces[sl], ct.labels[sl], shape))
            else:
                out.append(gen.replay(key.noise_key, ct.nonces[sl], ct.labels[sl], shape, ct.steps[sl]))
        if not out:
            return torch.zeros(ct.pixels.shape, dtype=torch.float32, device=self.device)
        return torch.cat(out)

    @torch.no_grad()
    def decode(self, ct: Ciphertext, z: torch.Tensor, key: Key) -> torch.Tensor:
        pixels, z = ct.pixels.to(self.device), z.to(self.device)
        return self.scheme.decode(pixels, z, ct.nonces, key, ct.header.get("micro_batch")).cpu()

    def decrypt(self, ct: Ciphertext, key: Key) -> torch.Tensor:
        out = [
            self.decode(part, self.regenerate(part, key), key)
            for part in (ct[sl] for sl in batch_slices(len(ct), self.batch_size))
        ]
        return torch.cat(out) if out else torch.zeros(ct.pixels.shape, dtype=torch.float32)

    def decrypt_uint8(self, ct: Ciphertext, key: Key) -> tuple:
        """The replayed decryption rounded to 8 bits; ``lossless`` is None (unknown)."""
        return torch.round(self.decrypt(ct, key) * 255).to(torch.uint8), None


class _CiphertextCheck(StopRule):
    """The ``"ciphertext"`` stop rule for one batch: encode the current NAEs with the batch's
    scheme state and stop the images whose ciphertext the classifier labels y with margin ct_margin."""

    def __init__(self, engine: ReplayedEngine, state: torch.Tensor, labels: torch.Tensor):
        self.engine, self.state, self.labels = engine, state, labels

    @torch.no_grad()
    def check(self, z: torch.Tensor, idx: torch.Tensor, t: int) -> tuple:
        e = self.engine
        c8 = e.scheme.encode(self.state[idx], z)
        logits = run_chunked(lambda p: e.classifier(fast_layout(p.float() / 255.0)), (c8,), e.micro_batch)
        return ops.margin(logits, self.labels[idx]) >= e.nae_config.ct_margin, c8
