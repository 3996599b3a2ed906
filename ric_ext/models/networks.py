"""The RIC networks of docs/scheme.md#networks: feature extractor F, encoder E, decoder D, and
the ``RIC`` module that chains them with the fused mask / unmask ops.

A *trunk* is three parallel branches (kernel 3, 4, 5; ``depth`` Conv+ReLU
layers of ``width`` channels each, padding chosen so H x W is kept), their
concatenation (3*width channels), three heads (k=3 conv; k=4 conv pair with
paddings 1 and 2; k=5 conv) and a second concatenation. With width=50 and
depth=4 the three networks have about 2.77 M parameters at 3 channels.

Precision: the networks may run under autocast (bf16/fp16), but the mask,
unmask and the NAE must stay float32: decryption subtracts 0.8*z and scales by
5, so an error of 1e-3 in z (bf16 has 8 bits of mantissa) is worth ~1 grey
level. ``RIC.forward`` casts to float32 around those ops.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from torch import nn

from .. import ops


def _k4_paddings(depth: int) -> List[int]:
    # A k=4 conv with padding 1 shrinks H by 1, with padding 2 grows it by 1:
    # alternating keeps the size after every pair, hence an even depth.
    return [1 if i % 2 == 0 else 2 for i in range(depth)]


class _Branch(nn.Sequential):
    def __init__(self, cin: int, width: int, k: int, depth: int):
        pads = {3: [1] * depth, 4: _k4_paddings(depth), 5: [2] * depth}[k]
        layers: List[nn.Module] = []
        for i in range(depth):
            layers += [nn.Conv2d(cin if i == 0 else width, width, k, padding=pads[i]), nn.ReLU(inplace=True)]
        super().__init__(*layers)


class _SE(nn.Module):
    """Squeeze-excitation: global pool, 1x1 conv c->c/2, ReLU, 1x1 conv c/2->c, sigmoid, scale."""

    def __init__(self, c: int):
        super().__init__()
        self.fc = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(c, c // 2, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c // 2, c, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x)


class Trunk(nn.Module):
    """(B, cin, H, W) -> (B, 3*width, H, W)."""

    def __init__(self, cin: int, width: int = 50, depth: int = 4, se: bool = False):
        super().__init__()
        if depth < 2 or depth % 2:
            raise ValueError(f"depth must be an even number >= 2 (k=4 paddings alternate), got {depth}")
        if width < 2:
            raise ValueError(f"width must be >= 2, got {width}")
        self.branches = nn.ModuleList(_Branch(cin, width, k, depth) for k in (3, 4, 5))
        w3 = 3 * width
        self.head3 = nn.Sequential(nn.Conv2d(w3, width, 3, padding=1), nn.ReLU(inplace=True))
        self.head4 = nn.Sequential(
            nn.Conv2d(w3, width, 4, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 4, padding=2),
            nn.ReLU(inplace=True),
        )
        self.head5 = nn.Sequential(nn.Conv2d(w3, width, 5, padding=2), nn.ReLU(inplace=True))
        self.se = nn.ModuleList(_SE(width) for _ in range(3)) if se else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.cat([b(x) for b in self.branches], 1)
        heads = [self.head3(h), self.head4(h), self.head5(h)]
        if self.se is not None:
            heads = [se(t) for se, t in zip(self.se, heads)]
        return torch.cat(heads, 1)


class FeatureExtractor(nn.Module):
    """F: x_tilde = (x - 0.5) / 0.5 -> (B, 3*width, H, W) features (trunk with SE heads)."""

    def __init__(self, channels: int = 3, width: int = 50, depth: int = 4):
        super().__init__()
        self.trunk = Trunk(channels, width, depth, se=True)

    def forward(self, x_tilde: torch.Tensor) -> torch.Tensor:
        return self.trunk(x_tilde)


class Encoder(nn.Module):
    """E: concat(F(x_tilde), z) -> (B, channels, H, W)."""

    def __init__(self, channels: int = 3, width: int = 50, depth: int = 4):
        super().__init__()
        self.trunk = Trunk(3 * width + channels, width, depth)
        self.out = nn.Conv2d(3 * width, channels, 1)

    def forward(self, features: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.out(self.trunk(torch.cat([features, z.to(features.dtype)], 1)))


class Decoder(nn.Module):
    """D: residual r (and, with ``sees_z``, the NAE z) -> (B, channels, H, W) reconstruction (unclamped).

    ``sees_z`` is our variant beyond the paper: the decoder also gets z, so the
    encoder may hide x with a z-dependent gain (more range where z leaves room
    below the clip) that the decoder can undo. The authors' "residual off"
    ablation fed concat(c, z); concat(r, z) carries the same information.
    """

    def __init__(self, channels: int = 3, width: int = 50, depth: int = 4, sees_z: bool = False):
        super().__init__()
        self.sees_z = bool(sees_z)
        self.trunk = Trunk(channels * (2 if sees_z else 1), width, depth)
        self.out = nn.Conv2d(3 * width, channels, 1)

    def forward(self, r: torch.Tensor, z: Optional[torch.Tensor] = None) -> torch.Tensor:
        if self.sees_z:
            if z is None:
                raise ValueError("this decoder also needs the NAE z")
            r = torch.cat([r, z.to(r.dtype)], 1)
        return self.out(self.trunk(r))


class RIC(nn.Module):
    """The owner's networks: plaintext + NAE -> ciphertext -> reconstruction.

    Args:
        channels: 1 or 3.
        width, depth: trunk width (paper: 50) and convs per branch (paper: 4, even).
        lam: masking weight lambda in (0, 1) (paper: 0.8).
        decoder_z: the decoder also sees the NAE (see :class:`Decoder`; not in the paper).

    Shapes: x, z are (B, channels, H, W) with H, W >= 8, x in [0, 1].
    """

    def __init__(self, channels: int = 3, width: int = 50, depth: int = 4, lam: float = 0.8, decoder_z: bool = False):
        super().__init__()
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        if not 0.0 < float(lam) < 1.0:
            raise ValueError(f"lam must be in (0, 1), got {lam}")
        self.channels, self.width, self.depth, self.lam = channels, width, depth, float(lam)
        self.decoder_z = bool(decoder_z)
        self.feature = FeatureExtractor(channels, width, depth)
        self.encoder = Encoder(channels, width, depth)
        self.decoder = Decoder(channels, width, depth, sees_z=decoder_z)

    def config(self) -> dict:
        cfg = dict(channels=self.channels, width=self.width, depth=self.depth, lam=self.lam)
        if self.decoder_z:  # only when set, so files written before the option keep their exact config
            cfg["decoder_z"] = True
        return cfg

    def _check(self, name: str, t: torch.Tensor) -> None:
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 4 or t.shape[1] != self.channels or min(t.shape[-2:]) < 8:
            raise ValueError(f"{name} must have shape (B, {self.channels}, H, W) with H, W >= 8, got {tuple(t.shape)}")

    def encrypt(
        self, x: torch.Tensor, z: torch.Tensor, quantize: str = "eval", seed: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """c = Q((1 - lam) E(F(x_tilde), z) + lam z); float32 in [0, 1] (8-bit grid unless quantize='train'/'none').

        ``seed`` is the dither stream of quantize='train' (see :func:`ric_ext.ops.mask`).
        quantize='eval' rounds and passes gradients straight through, so training
        with it shows the decoder the exact 8-bit error of deployment.
        """
        self._check("x", x)
        self._check("z", z)
        if z.shape != x.shape:
            raise ValueError(f"z has shape {tuple(z.shape)} but x has shape {tuple(x.shape)}")
        e = self.encoder(self.feature((x - 0.5) / 0.5), z)
        return ops.mask(e.float(), z.float(), self.lam, quantize=quantize, seed=seed)

    def encrypt_uint8(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The 8-bit ciphertext as uint8 (eval-mode quantiser)."""
        self._check("x", x)
        self._check("z", z)
        if z.shape != x.shape:
            raise ValueError(f"z has shape {tuple(z.shape)} but x has shape {tuple(x.shape)}")
        return self.encrypt_uint8_from_features(self.features(x), z)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """F(x_tilde): (B, 3 * width, H, W). Independent of the NAE, so callers that encode one
        image with several NAEs (the ciphertext stop rule) compute it once."""
        self._check("x", x)
        return self.feature((x - 0.5) / 0.5)

    def encrypt_uint8_from_features(self, features: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The uint8 ciphertext from :meth:`features` and the NAE z."""
        self._check("z", z)
        if features.shape[0] != z.shape[0] or features.shape[-2:] != z.shape[-2:]:
            raise ValueError(f"features {tuple(features.shape)} do not match z {tuple(z.shape)}")
        e = self.encoder(features, z)
        return ops.mask_uint8(e.float(), z.float(), self.lam)

    def decrypt(self, c: torch.Tensor, z: torch.Tensor, clamp: bool = True) -> torch.Tensor:
        """x_hat = clamp(D((c - lam z) / (1 - lam)), 0, 1); c float in [0, 1] or uint8."""
        self._check("c", c)
        self._check("z", z)
        r = ops.unmask(c, z.float(), self.lam)
        x_hat = self.decoder(r, z.float() if self.decoder_z else None).float()
        return x_hat.clamp(0, 1) if clamp else x_hat

    def forward(
        self, x: torch.Tensor, z: torch.Tensor, quantize: str = "train", seed: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Training pass: (ciphertext c, unclamped reconstruction x_hat)."""
        c = self.encrypt(x, z, quantize=quantize, seed=seed)
        return c, self.decrypt(c, z, clamp=False)
