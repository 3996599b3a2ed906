"""torchvision-style transforms: encryption as one step of a data pipeline.

    from torchvision import transforms as T
    pipeline = T.Compose([T.PILToTensor(), Encrypt(cipher)])       # image -> Ciphertext (len 1)
    pipeline = T.Compose([T.ToTensor(), Encrypt(cipher, output="pixels")])  # -> what the cloud sees

Each call encrypts one image under a fresh nonce (so the same image gives another ciphertext
every epoch), which is a batch of one: for whole folders :func:`ric_ext.folders.encrypt_folder`
is faster.
"""

from __future__ import annotations

from typing import Union

import torch

from .cipher import Cipher, Ciphertext

OUTPUTS = ("ciphertext", "pixels", "uint8")


class Encrypt:
    """Encrypt one (C, H, W) image (float in [0, 1], uint8, or a PIL image) with ``cipher``.

    ``output``: ``"ciphertext"`` (default) the :class:`~ric_ext.cipher.Ciphertext` of one image,
    which decrypts (nonce, label, digest and header included) and can be written with
    :func:`ric_ext.fileformat.write_png`; ``"pixels"`` the ciphertext image as float32 in [0, 1],
    (C, H, W), what a cloud classifier receives (e.g. to measure a model on ciphertexts); ``"uint8"``
    the same as uint8. The last two cannot be decrypted: the nonce and digest are dropped.
    """

    def __init__(self, cipher: Cipher, output: str = "ciphertext"):
        if not isinstance(cipher, Cipher):
            raise TypeError(f"cipher must be a ric_ext Cipher, got {type(cipher).__name__}")
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        self.cipher, self.output = cipher, output

    def __call__(self, image) -> Union[Ciphertext, torch.Tensor]:
        if not isinstance(image, torch.Tensor):  # a PIL image
            import numpy as np

            arr = np.asarray(image)
            if arr.dtype != np.uint8:
                raise TypeError(f"image must be a tensor or an 8-bit PIL image, got {type(image).__name__}")
            image = torch.from_numpy(arr.copy()).permute(2, 0, 1) if arr.ndim == 3 else torch.from_numpy(arr)[None]
        if image.dim() != 3:
            raise ValueError(f"image must be (C, H, W), got shape {tuple(image.shape)}")
        ct = self.cipher.encrypt(image.unsqueeze(0))
        if self.output == "ciphertext":
            return ct
        return ct.pixels[0] if self.output == "uint8" else ct.pixels[0].float() / 255.0

    def __repr__(self) -> str:  # the cipher's repr names the key by id only
        return f"Encrypt(cipher={self.cipher!r}, output={self.output!r})"
