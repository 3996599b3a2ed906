"""Bring weights trained with the authors' code (csjunjun/RIC) into ric_ext.

Their ``Net`` holds ``m1`` = PrepNetwork (our F), ``m2`` = HidingNetwork (our E)
and ``m3`` = RevealNetwork (our D), each a trunk of branches ``initialX3/4/5``
(Sequential, convs at indices 0, 2, 4, 6), heads ``finalX3`` (conv 0),
``finalX4`` (convs 0, 2), ``finalX5`` (conv 0), F's squeeze-excitation
``se1..se3`` (``fc1``, ``fc2``) and the 1x1 outputs ``finalH`` / ``finalR``
(conv 0). X is P, H or R. Their checkpoints are ``{"epoch", "state_dict",
"optimizer"}`` saved from ``DataParallel``, so keys may start with ``module.``.

Their decoder has two forms: residual (3 input channels, r = (c - lam z) / (1 - lam),
as ours) and the "residual off" ablation that sees concat(c, z) (6 channels).
The latter maps exactly onto our ``decoder_z`` decoder, which sees concat(r, z):
with c = (1 - lam) r + lam z, a first-layer weight [Wc, Wz] on (c, z) equals
[(1 - lam) Wc, Wz + lam Wc] on (r, z). Their "encoder residual off" form (the
ciphertext is E's output itself) has no counterpart and is refused.
"""

from __future__ import annotations

import os
from typing import Dict, Union

import torch

from ..errors import CheckpointError
from .networks import RIC

_BRANCH = {"3": 0, "4": 1, "5": 2}


def _trunk_map(theirs: str, ours: str, letter: str, depth: int, se: bool) -> Dict[str, str]:
    m = {}
    for k, b in _BRANCH.items():
        for i in range(depth):
            m[f"{theirs}.initial{letter}{k}.{2 * i}"] = f"{ours}.trunk.branches.{b}.{2 * i}"
    m[f"{theirs}.final{letter}3.0"] = f"{ours}.trunk.head3.0"
    m[f"{theirs}.final{letter}4.0"] = f"{ours}.trunk.head4.0"
    m[f"{theirs}.final{letter}4.2"] = f"{ours}.trunk.head4.2"
    m[f"{theirs}.final{letter}5.0"] = f"{ours}.trunk.head5.0"
    if se:
        for j in range(3):
            m[f"{theirs}.se{j + 1}.fc1"] = f"{ours}.trunk.se.{j}.fc.1"
            m[f"{theirs}.se{j + 1}.fc2"] = f"{ours}.trunk.se.{j}.fc.3"
    return m


def key_map(depth: int = 4) -> Dict[str, str]:
    """Their module prefixes -> ours (append ``.weight`` / ``.bias``)."""
    m = {}
    m.update(_trunk_map("m1", "feature", "P", depth, se=True))
    m.update(_trunk_map("m2", "encoder", "H", depth, se=False))
    m.update(_trunk_map("m3", "decoder", "R", depth, se=False))
    m["m2.finalH.0"] = "encoder.out"
    m["m3.finalR.0"] = "decoder.out"
    return m


def convert_state_dict(theirs: Dict[str, torch.Tensor], lam: float = 0.8) -> tuple:
    """Their state dict -> (our state dict, RIC config). Raises CheckpointError on anything unexpected."""
    sd = {k.removeprefix("module."): v for k, v in theirs.items()}
    try:
        width = int(sd["m1.initialP3.0.weight"].shape[0])
        channels = int(sd["m1.initialP3.0.weight"].shape[1])
        dec_in = int(sd["m3.initialR3.0.weight"].shape[1])
        enc_in = int(sd["m2.initialH3.0.weight"].shape[1])
    except KeyError as exc:
        raise CheckpointError(f"not the authors' RIC layout (no {exc.args[0]})") from None
    depth = sum(1 for k in sd if k.startswith("m1.initialP3.") and k.endswith(".weight"))
    if enc_in != 3 * width + channels:
        raise CheckpointError(f"their encoder takes {enc_in} channels, expected {3 * width + channels}")
    if dec_in not in (channels, 2 * channels):
        raise CheckpointError(f"their decoder takes {dec_in} channels, expected {channels} or {2 * channels}")
    decoder_z = dec_in == 2 * channels
    out: Dict[str, torch.Tensor] = {}
    used = set()
    for src, dst in key_map(depth).items():
        for p in ("weight", "bias"):
            k = f"{src}.{p}"
            if k not in sd:
                raise CheckpointError(f"the authors' state dict lacks {k}")
            out[f"{dst}.{p}"] = sd[k].float().clone()
            used.add(k)
    extra = sorted(set(sd) - used)
    if extra:
        raise CheckpointError(f"unexpected entries in the authors' state dict: {extra[:5]}")
    if decoder_z:
        # concat(c, z) -> concat(r, z): exact reparametrisation of every first-layer conv (see module docstring).
        for b in range(3):
            w = out[f"decoder.trunk.branches.{b}.0.weight"]
            wc, wz = w[:, :channels], w[:, channels:]
            out[f"decoder.trunk.branches.{b}.0.weight"] = torch.cat([(1 - lam) * wc, wz + lam * wc], 1)
    cfg = dict(channels=channels, width=width, depth=depth, lam=float(lam))
    if decoder_z:
        cfg["decoder_z"] = True
    return out, cfg


def load_authors_checkpoint(path: Union[str, os.PathLike[str]], lam: float = 0.8) -> RIC:
    """An authors' checkpoint file (``{"state_dict": ...}`` or a bare state dict) as our :class:`RIC`.

    ``lam`` is their ``lambda_net`` (0.8 in all their scripts). Their
    PrepNetwork sees (x - 0.5) / 0.5 (their loaders normalise with mean = std = 0.5),
    which is what our RIC feeds F, so no input change is needed.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from None
    sd = blob.get("state_dict", blob) if isinstance(blob, dict) else None
    if not isinstance(sd, dict):
        raise CheckpointError(f"{path} holds no state dict")
    ours, cfg = convert_state_dict(sd, lam)
    model = RIC(**cfg)
    model.load_state_dict(ours, strict=True)
    return model.eval()
