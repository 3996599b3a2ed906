"""The owner's API: encrypt images into 8-bit ciphertexts the plaintext classifier still labels
as it labels the plaintexts, and decrypt them back.

    cipher = Cipher(classifier, key)   # the digits scheme (the default)
    ct = cipher.encrypt(images)        # images: (B, C, H, W) float in [0, 1] or uint8
    labels = cipher.classify(ct)       # what the unmodified classifier says
    images_hat = cipher.decrypt(ct)    # raises IntegrityError rather than return another image
    Cipher.from_ciphertext(ct, key).decrypt(ct)   # later, with the key alone

Each image gets a fresh random 96-bit nonce; its label is the classifier's prediction on the
plaintext. The default digits scheme (format 4) is decrypted with integer arithmetic and a
lossless codec from the key, nonce and pixels alone, and each image's keyed digest is checked.
:meth:`Cipher.pad` and :meth:`Cipher.paper` give the older schemes (formats 1-3), whose
decryption replays the attack in float32: another backend may round that replay differently
(docs/open-problems.md). Each scheme's work is in its engine (:mod:`ric_ext.engines`); a cipher
checks what is common to all of them and hands the rest to its engine.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Callable, Optional, Union

import torch
from torch import nn

from .bank import NAEBank
from .batching import DEFAULT_MICRO_BATCH
from .ciphertext import (
    FORMAT_VERSION,
    NONCE_RETRIES,
    READABLE_VERSIONS,
    Ciphertext,
    check_common,
    checked_nonces,
    classifier_name,
    header_of,
    random_nonces,
)
from .engines import DIGITS_NAE, DigitsEngine, Engine, ReplayedEngine, engine_for_header
from .errors import PAPER_SCHEME_LEAKS, PaperSchemeWarning
from .keys import Key
from .models.networks import RIC
from .nae import NAEConfig
from .ops.pad import DEFAULT_A
from .schemes import DIGITS_BASE, SCHEMES

__all__ = [
    "Cipher",
    "Ciphertext",
    "DIGITS_NAE",
    "FORMAT_VERSION",
    "NONCE_RETRIES",
    "READABLE_VERSIONS",
    "classifier_name",
]


class Cipher:
    """Encrypts and decrypts with one classifier and one key: the digits scheme, or another scheme's
    engine when made by :meth:`pad`, :meth:`paper` or :meth:`from_ciphertext`.

    Args:
        classifier: images in [0, 1] -> logits (e.g. from :func:`ric_ext.models.load_classifier`);
            never modified. None makes a decrypt-only cipher.
        key: the secret :class:`~ric_ext.keys.Key`.
        nae: attack settings (stored in every ciphertext); default ``DIGITS_NAE``.
        batch_size: images per batch.
        step_impl: how attack steps run (see :func:`ric_ext.nae_step.make_step`).
        base: the digit base: 4 NAE levels at 64 (docs/decisions.md).
        bank: where the attack starts: ``"auto"`` (the classifier's bundled or cached NAE bank,
            trained on first use: :mod:`ric_ext.bank`), ``"portable"`` (its portable bank, trained
            over ``ensemble``: :meth:`~ric_ext.engines.DigitsEngine.bank_for`), None (the keyed noise), an
            :class:`~ric_ext.bank.NAEBank` or a bank file.
        precision: the attack steps' precision: 'auto', 'fp32' or 'bf16'
            (:func:`ric_ext.nae_digits.resolve_precision`); the check is always float32.
        progress: show a progress bar when a bank has to be trained.
        ensemble: other classifiers of the task (issue 36): each ciphertext must also be labelled
            as intended by every one of them (checked in float32, with attack steps and nonce
            retries; a warning names any that still disagrees), and ``bank="portable"`` trains
            its portable bank over them on first use. Their fingerprints go in the header.

    The older positional form ``Cipher(model, classifier, key, nae, batch_size, micro_batch,
    step_impl, scheme, pad_a)`` still works for this release, with a DeprecationWarning that
    shows the new call.
    """

    def __init__(self, *args, **kwargs):
        try:
            bound = _NEW_FORM.bind(*args, **kwargs)
        except TypeError as new_exc:
            second = args[1] if len(args) > 1 else kwargs.get("key")
            if isinstance(second, Key) and "model" not in kwargs:
                # the new form with an option it does not take (a replayed scheme's, or a typo)
                raise TypeError(
                    f"Cipher{_NEW_FORM}: {new_exc}; the older schemes have their own constructors: "
                    "Cipher.pad(classifier, key, ...), Cipher.paper(model, classifier, key, ...)"
                ) from None
            try:
                bound = _OLD_FORM.bind(*args, **kwargs)
            except TypeError:
                raise TypeError(f"Cipher{_NEW_FORM}: {new_exc}") from None
            engine, key = _old_form_engine(**bound.arguments)
        else:
            a = dict(bound.arguments)
            key = a.pop("key")
            engine = DigitsEngine(a.pop("classifier"), **a)
        self._bind(engine, key)

    def _bind(self, engine: Engine, key: Key) -> None:
        if not isinstance(key, Key):
            raise TypeError(f"key must be a ric_ext.keys.Key, got {type(key).__name__}")
        self.engine, self.key = engine, key

    @classmethod
    def _of(cls, engine: Engine, key: Key) -> Cipher:
        c = cls.__new__(cls)
        c._bind(engine, key)
        return c

    @classmethod
    def pad(
        cls,
        classifier: nn.Module,
        key: Key,
        *,
        nae: Optional[NAEConfig] = None,
        batch_size: int = 256,
        micro_batch: Optional[int] = DEFAULT_MICRO_BATCH,
        step_impl: str = "auto",
        a: float = DEFAULT_A,
    ) -> Cipher:
        """The ``"pad"`` scheme (format 3): a keyed pad of the image mixed with the NAE, decrypted by
        replaying the attack in float32 (about 44.8 dB; docs/scheme.md).

        Args:
            nae: attack settings; default: those the classifier carries, else ``NAEConfig()``.
            micro_batch: the networks run on chunks of exactly this many rows (stored in the header
                and used again by decryption), so that an image decrypts to the same bytes alone, in
                any order or batch size (:mod:`ric_ext.batching`). None: whole batches.
            a: the share's scale, its guard against the 8-bit rounding.
            Others as :class:`Cipher`'s.
        """
        engine = ReplayedEngine.pad(
            classifier, a=a, nae=nae, batch_size=batch_size, micro_batch=micro_batch, step_impl=step_impl
        )
        return cls._of(engine, key)

    @classmethod
    def paper(
        cls,
        model: RIC,
        classifier: nn.Module,
        key: Key,
        *,
        nae: Optional[NAEConfig] = None,
        batch_size: int = 256,
        micro_batch: Optional[int] = DEFAULT_MICRO_BATCH,
        step_impl: str = "auto",
    ) -> Cipher:
        """The paper's scheme (format 3) with its learned encoder and decoder ``model``
        (:class:`~ric_ext.models.RIC`, put in eval mode). It leaks a blurred image
        (docs/security.md); it is here to reproduce the paper. Options as :meth:`pad`'s; ``nae``
        defaults to the settings the networks were trained with."""
        engine = ReplayedEngine.paper(
            model, classifier, nae=nae, batch_size=batch_size, micro_batch=micro_batch, step_impl=step_impl
        )
        return cls._of(engine, key)

    @classmethod
    def for_scheme(cls, scheme: str, classifier: Optional[nn.Module], key: Key, **options) -> Cipher:
        """The cipher of a scheme named at run time (``"digits"``, ``"pad"`` or ``"paper"``), for tools
        that take the scheme as a setting (the command line, :func:`ric_ext.evaluate`). ``options``
        may hold every scheme's options (``model``, ``nae``, ``batch_size``, ``micro_batch``,
        ``step_impl``, ``pad_a``, ``base``, ``bank``, ``precision``, ``progress``); each scheme
        takes its own and ignores the rest."""
        if scheme not in _MAKERS:
            raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
        return _MAKERS[scheme](classifier, key, options)

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
        from .errors import CiphertextFormatError

        header = header_of(ct)
        if not isinstance(header, dict) or header.get("version") not in READABLE_VERSIONS:
            raise CiphertextFormatError("not a ric_ext ciphertext header (or an unsupported format version)")
        engine = engine_for_header(header, models=models, device=device, batch_size=batch_size)
        cipher = cls._of(engine, key)
        cipher.check_header(header)
        return cipher

    def __repr__(self) -> str:
        return f"Cipher(key={self.key!r}, scheme={self.scheme.name!r}, nae={self.nae_config}, lam={self.scheme.lam})"

    # -- what the engine holds -------------------------------------------------------------
    @property
    def scheme(self):
        """The scheme's object (:mod:`ric_ext.schemes`): ``name``, ``lam``, ``channels``, ..."""
        return self.engine.scheme

    @property
    def classifier(self) -> Optional[nn.Module]:
        return self.engine.classifier

    @property
    def model(self) -> Optional[RIC]:
        """The paper's RIC networks; None for the other schemes."""
        return self.engine.model

    @property
    def nae_config(self) -> NAEConfig:
        """The attack settings this cipher encrypts with (recorded in its headers)."""
        return self.engine.nae_config

    @property
    def batch_size(self) -> int:
        return self.engine.batch_size

    @property
    def replays(self) -> bool:
        """Whether decryption replays the attack (the "pad" and "paper" schemes)."""
        return self.engine.replays

    @property
    def device(self) -> torch.device:
        return self.engine.device

    @property
    def channels(self) -> int:
        """Image channels this cipher takes: the model's, else the classifier's (``channels``), else 3."""
        return self.scheme.channels or getattr(self.classifier, "channels", 3)

    def with_key(self, key: Key) -> Cipher:
        """The same cipher (engine: classifier, scheme, settings, loaded banks and compiled steps) under another key."""
        return Cipher._of(self.engine, key)

    def bank_for(self, shape: tuple) -> Optional[NAEBank]:
        """The NAE bank the digits scheme starts (C, H, W) images from; None for the keyed noise (and
        for the replayed schemes, which always start there)."""
        return self.engine.bank_for(shape)

    def header(self) -> dict:
        return self.engine.header(self.key)

    # -- the classifier ----------------------------------------------------------------------
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """The classifier's labels (B,) int64 for (B, C, H, W) images in [0, 1] (float) or uint8."""
        return self.engine.predict(images)

    def classify(self, ct: Ciphertext) -> torch.Tensor:
        """What the unmodified classifier says about the ciphertexts (the cloud's view)."""
        return self.predict(ct.pixels)

    # -- encryption --------------------------------------------------------------------------
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
        if self.classifier is None:
            raise ValueError("this cipher has no classifier (a decrypt-only cipher); give one to encrypt or classify")
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
        source = None
        if nonces is None:
            source = nonce_source or (lambda rows, attempt: random_nonces(rows.numel()))
            nonces = checked_nonces(source(torch.arange(B), 0), B)
            if B > 1 and torch.unique(nonces, dim=0).shape[0] != B:
                raise ValueError("nonce_source gave repeated nonces within the batch")
        retries = NONCE_RETRIES if source is not None and self.nae_config.stop == "ciphertext" else 0
        return self.engine.encrypt(x, nonces, self.key, retries, source)

    # -- decryption --------------------------------------------------------------------------
    def check_header(self, ct: Union[Ciphertext, dict]) -> NAEConfig:
        """Raise if a ciphertext (or its header) does not fit this cipher; return its NAE settings."""
        header = header_of(ct)
        check_common(header, self.key.key_id, self.scheme.name)
        return self.engine.check_header(header, ct if isinstance(ct, Ciphertext) else None)

    def decrypt_uint8(self, ct: Ciphertext) -> tuple:
        """(pixels (B, C, H, W) uint8, lossless (B,) bool or None) of ``ct``'s plaintexts.

        Format 4: the image itself where it was stored losslessly, else its lossy digits, each
        checked against its keyed digest: IntegrityError, never another image. Formats 1-3: the
        replayed decryption, rounded to 8 bits (``lossless`` None).
        """
        self.check_header(ct)
        return self.engine.decrypt_uint8(ct, self.key)

    @torch.no_grad()
    def decrypt(self, ct: Ciphertext) -> torch.Tensor:
        """The plaintexts of ``ct``: (B, C, H, W) float32 in [0, 1] on the CPU.

        Format 4: :meth:`decrypt_uint8` / 255, exact and checked. Formats 1-3: regenerate each
        NAE from (key, nonce, label, step count, settings) and decode. Raises WrongKeyError,
        ModelMismatchError, CiphertextFormatError or IntegrityError when the ciphertext does not
        belong to this cipher or does not decrypt.
        """
        self.check_header(ct)
        return self.engine.decrypt(ct, self.key)

    def regenerate(self, ct: Ciphertext, key: Optional[Key] = None) -> torch.Tensor:
        """The NAEs of ``ct`` (on the cipher's device), regenerated under ``key`` (default: this cipher's).

        Format 2-3: replays each image's recorded step count. Format 1: reruns the fixed-step
        attack with the authors' early stop, as version 1 did. Another ``key`` gives what an
        attacker with that key would get (key-sensitivity tests); the header is not checked here.
        Format 4 needs no regeneration: its NAE is the ciphertext's high digit, which anyone can
        read (returned as z in [0, 1], whatever ``key``).
        """
        return self.engine.regenerate(ct, key or self.key)

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
        return self.engine.decode(ct, z, key or self.key)


# -- how each scheme is made from every scheme's options (Cipher.for_scheme) ----------------------
def _digits(classifier, key, o: dict) -> Cipher:
    names = ("nae", "batch_size", "step_impl", "base", "bank", "precision", "progress", "ensemble")
    return Cipher(classifier, key, **{n: o[n] for n in names if n in o})


def _pad(classifier, key, o: dict) -> Cipher:
    names = ("nae", "batch_size", "micro_batch", "step_impl")
    return Cipher.pad(classifier, key, a=o.get("pad_a", DEFAULT_A), **{n: o[n] for n in names if n in o})


def _paper(classifier, key, o: dict) -> Cipher:
    names = ("nae", "batch_size", "micro_batch", "step_impl")
    return Cipher.paper(o.get("model"), classifier, key, **{n: o[n] for n in names if n in o})


_MAKERS = {"digits": _digits, "pad": _pad, "paper": _paper}


# -- the deprecated positional form ----------------------------------------------------------------
def _old_form(
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
) -> None: ...


_P = inspect.Parameter
#: the new form: the classifier and the key, then the digits engine's own options (one list: DigitsEngine's)
_NEW_FORM = inspect.Signature(
    [_P("classifier", _P.POSITIONAL_OR_KEYWORD), _P("key", _P.POSITIONAL_OR_KEYWORD)]
    + [p for n, p in inspect.signature(DigitsEngine.__init__).parameters.items() if p.kind == _P.KEYWORD_ONLY
       and n != "device"]
)  # fmt: skip
_OLD_FORM = inspect.signature(_old_form)
Cipher.__init__.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD), *_NEW_FORM.parameters.values()]
)
#: what each scheme's new call looks like, for the deprecation message
_NEW_CALLS = {
    "digits": "Cipher(classifier, key, nae=..., batch_size=..., base=..., bank=..., precision=...)",
    "pad": "Cipher.pad(classifier, key, nae=..., batch_size=..., micro_batch=..., a=...)",
    "paper": "Cipher.paper(model, classifier, key, nae=..., batch_size=..., micro_batch=...)",
}


def _old_form_engine(model, classifier, key, scheme=None, pad_a=DEFAULT_A, **options) -> tuple:
    """(engine, key) of a call in the old positional form, with its DeprecationWarning."""
    if model is not None and not isinstance(model, RIC):
        raise TypeError(f"model must be a ric_ext RIC module or None, got {type(model).__name__}")
    named = scheme is not None
    scheme = scheme or ("digits" if model is None else "paper")  # a RIC model meant its scheme
    if scheme not in _MAKERS:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    warnings.warn(
        f"Cipher(model, classifier, key, ...) is deprecated and goes in the next release: use {_NEW_CALLS[scheme]}",
        DeprecationWarning,
        stacklevel=3,
    )
    if scheme == "paper" and not named:  # the leaking scheme only ever by name (docs/decisions.md)
        warnings.warn(PAPER_SCHEME_LEAKS, PaperSchemeWarning, stacklevel=3)
    return _MAKERS[scheme](classifier, key, dict(options, model=model, pad_a=pad_a)).engine, key
