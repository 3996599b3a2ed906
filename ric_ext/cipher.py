"""The owner's API: encrypt images into 8-bit ciphertexts the plaintext
classifier still labels correctly, and decrypt them back.

    cipher = Cipher(ric_model, classifier, key)
    ct = cipher.encrypt(images)        # images: (B, C, H, W) float in [0, 1]
    labels = cipher.classify(ct)       # what the unmodified classifier says
    images_hat = cipher.decrypt(ct)

Each image gets a fresh random 96-bit nonce; its label is the classifier's
prediction on the plaintext. Nonce, label and every setting needed to
regenerate the NAE travel with the ciphertext (see :mod:`ric_ext.fileformat`),
so decryption never guesses.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional, Union

import torch
from torch import nn

from .errors import ModelMismatchError, WrongKeyError
from .keys import Key
from .models.classifiers import fingerprint
from .models.networks import RIC
from .nae import NAEConfig, NAEGenerator

FORMAT_VERSION = 1


@dataclass
class Ciphertext:
    """A batch of ciphertexts.

    Attributes:
        pixels: (B, C, H, W) uint8, the 8-bit ciphertext images.
        nonces: (B, 12) uint8, one public nonce per image.
        labels: (B,) int64, the label each NAE targets (the plaintext's prediction).
        header: settings shared by the batch: format version, lam, NAE settings,
            fingerprints of the RIC weights and classifier, and the key id.
    """

    pixels: torch.Tensor
    nonces: torch.Tensor
    labels: torch.Tensor
    header: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return self.pixels.shape[0]

    def __getitem__(self, idx: Union[int, slice]) -> "Ciphertext":
        if isinstance(idx, int):
            idx = slice(idx, idx + 1 if idx != -1 else None)
        return Ciphertext(self.pixels[idx], self.nonces[idx], self.labels[idx], dict(self.header))

    def as_float(self) -> torch.Tensor:
        """Pixels as float32 in [0, 1] (q / 255): what a cloud classifier receives."""
        return self.pixels.float() / 255.0

    @staticmethod
    def cat(items: list) -> "Ciphertext":
        if not items:
            raise ValueError("cannot concatenate an empty list of ciphertexts")
        return Ciphertext(torch.cat([c.pixels for c in items]), torch.cat([c.nonces for c in items]),
                          torch.cat([c.labels for c in items]), dict(items[0].header))


class Cipher:
    """Encrypts/decrypts with one RIC model, one classifier and one key.

    Args:
        model: trained :class:`~ric_ext.models.RIC` (put in eval mode).
        classifier: images in [0, 1] -> logits (e.g. from
            :func:`ric_ext.models.load_svhn_classifier`); never modified.
        key: the secret :class:`~ric_ext.keys.Key`.
        nae: attack settings (stored in every ciphertext).
        batch_size: images per NAE/network batch.
    """

    def __init__(self, model: RIC, classifier: nn.Module, key: Key, nae: NAEConfig = NAEConfig(),
                 batch_size: int = 256):
        if not isinstance(model, RIC):
            raise TypeError(f"model must be a ric_ext RIC module, got {type(model).__name__}")
        if not isinstance(key, Key):
            raise TypeError(f"key must be a ric_ext.keys.Key, got {type(key).__name__}")
        self.model = model.eval()
        self.classifier = classifier.eval()
        self.key = key
        self.nae = NAEGenerator(self.classifier, nae)
        self.batch_size = int(batch_size)

    def __repr__(self) -> str:
        return f"Cipher(key={self.key!r}, nae={self.nae.config}, lam={self.model.lam})"

    @property
    def device(self) -> torch.device:
        return self.nae.device

    def header(self) -> dict:
        return {"format": "ric-ext-ciphertext", "version": FORMAT_VERSION, "lam": self.model.lam,
                "nae": self.nae.config.to_dict(), "model": fingerprint(self.model),
                "classifier": fingerprint(self.classifier), "key_id": self.key.key_id}

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """The classifier's labels for (B, C, H, W) images in [0, 1] (float) or uint8."""
        if images.dtype == torch.uint8:
            images = images.float() / 255.0
        out = [self.classifier(images[i:i + self.batch_size].to(self.device)).argmax(1)
               for i in range(0, images.shape[0], self.batch_size)]
        return torch.cat(out).cpu() if out else torch.zeros(0, dtype=torch.int64)

    def classify(self, ct: Ciphertext) -> torch.Tensor:
        """What the unmodified classifier says about the ciphertexts (the cloud's view)."""
        return self.predict(ct.pixels)

    def _check_images(self, images: torch.Tensor) -> torch.Tensor:
        if not isinstance(images, torch.Tensor):
            raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
        if images.dim() != 4 or images.shape[1] != self.model.channels:
            raise ValueError(f"images must have shape (B, {self.model.channels}, H, W), got {tuple(images.shape)}")
        if images.dtype == torch.uint8:
            return images.float() / 255.0
        if not images.is_floating_point():
            raise TypeError(f"images must be float in [0, 1] or uint8, got {images.dtype}")
        if images.numel() and (images.min() < 0 or images.max() > 1):
            raise ValueError("images must be in [0, 1]")
        return images.float()

    @torch.no_grad()
    def encrypt(self, images: torch.Tensor, nonces: Optional[torch.Tensor] = None) -> Ciphertext:
        """Encrypt (B, C, H, W) images (float in [0, 1] or uint8).

        ``nonces`` (B, 12) uint8 may be given for reproducibility; by default
        each image gets 12 fresh bytes from os.urandom. Never reuse a nonce
        with the same key for different images.
        """
        x = self._check_images(images)
        B = x.shape[0]
        if nonces is None:
            nonces = torch.frombuffer(bytearray(os.urandom(12 * B)), dtype=torch.uint8).reshape(B, 12)
        elif nonces.shape != (B, 12) or nonces.dtype != torch.uint8:
            raise ValueError(f"nonces must be a ({B}, 12) uint8 tensor")
        labels = self.predict(x)
        pixels = []
        for i in range(0, B, self.batch_size):
            xb = x[i:i + self.batch_size].to(self.device)
            z = self.nae(self.key.noise_key, nonces[i:i + self.batch_size], labels[i:i + self.batch_size],
                         xb.shape[1:])
            pixels.append(self.model.encrypt_uint8(xb, z).cpu())
        pix = torch.cat(pixels) if pixels else torch.zeros((0, *x.shape[1:]), dtype=torch.uint8)
        return Ciphertext(pix, nonces.cpu(), labels, self.header())

    def check_header(self, header: dict) -> NAEConfig:
        """Raise if a ciphertext's header does not fit this cipher; return its NAE settings."""
        if header.get("key_id") != self.key.key_id:
            raise WrongKeyError("this ciphertext was made under another key (its key id differs from this key's)")
        if header.get("model") != fingerprint(self.model):
            raise ModelMismatchError("the RIC weights differ from those the ciphertext was made with")
        if header.get("classifier") != fingerprint(self.classifier):
            raise ModelMismatchError("the classifier differs from the one the ciphertext was made with")
        if float(header.get("lam", -1)) != self.model.lam:
            raise ModelMismatchError(f"ciphertext lam {header.get('lam')} != model lam {self.model.lam}")
        return NAEConfig.from_dict(header["nae"])

    @torch.no_grad()
    def decrypt(self, ct: Ciphertext) -> torch.Tensor:
        """Regenerate each NAE from (key, nonce, label, settings) and run the decoder.

        Returns (B, C, H, W) float32 in [0, 1]. Raises WrongKeyError or
        ModelMismatchError when the ciphertext does not belong to this cipher.
        """
        cfg = self.check_header(ct.header)
        gen = self.nae if cfg == self.nae.config else NAEGenerator(self.classifier, cfg)
        out = []
        for i in range(0, len(ct), self.batch_size):
            pix = ct.pixels[i:i + self.batch_size].to(self.device)
            z = gen(self.key.noise_key, ct.nonces[i:i + self.batch_size], ct.labels[i:i + self.batch_size],
                    pix.shape[1:])
            out.append(self.model.decrypt(pix, z).cpu())
        return torch.cat(out) if out else torch.zeros(ct.pixels.shape, dtype=torch.float32)
