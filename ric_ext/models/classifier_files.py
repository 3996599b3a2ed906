"""Classifiers the user brings: a ``torch.export`` program (``.pt2``), a TorchScript file,
or a ``module:function`` import path.

A file states what the CLI needs to feed it: its input size, channels, the normalisation
its network expects and (optionally) class names. :func:`save_classifier` writes these
into the file itself (``ric_ext.json`` in its extra files); a file made elsewhere may carry
them in a JSON sidecar ``FILE.json`` instead::

    {"input_size": 32, "channels": 3, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25],
     "classes": ["cat", "dog", ...]}

``input_size`` is required; ``channels`` defaults to 3, ``mean``/``std`` to 0/1 (the network
takes [0, 1] pixels), ``classes`` to none. The loaded classifier is a
:class:`~ric_ext.models.classifiers.Normalized` wrapper, so like every classifier here it
takes (B, C, H, W) images in [0, 1]. Its fingerprint (what a ciphertext header records)
covers the weights and the sha256 of the file and sidecar, so a changed graph or
normalisation is a different classifier.

An import path ``package.module:function`` names a function called with no arguments that
returns an ``nn.Module`` taking [0, 1] images (it may set ``input_size`` and ``channels``
attributes); its fingerprint covers its weights.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import os
import re
from typing import Optional, Sequence, Union

import torch
from torch import nn

from ..io_utils import atomic_write_bytes, file_sha256
from .classifiers import Normalized

PathLike = Union[str, "os.PathLike[str]"]
META_NAME = "ric_ext.json"  #: the metadata's name among a file's extra files
SIDECAR_SUFFIX = ".json"  #: FILE + this: the metadata of a file made elsewhere
_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_MAX_BATCH = 65536  #: the exported program's dynamic batch bound


def is_import_path(spec: str) -> bool:
    """True for ``package.module:function`` (and not an existing file)."""
    return bool(_IMPORT_PATH.match(spec)) and not os.path.exists(spec)


class FileClassifier(Normalized):
    """A loaded classifier file: :class:`Normalized` plus its class names and source digest."""

    def __init__(self, net: nn.Module, meta: dict, source_sha256: bytes):
        super().__init__(net, meta["mean"], meta["std"], input_size=meta["input_size"])
        self.classes = meta.get("classes")
        self.source = meta.get("source")
        # persistent: classifiers.fingerprint covers the file's graph and metadata, not just weights
        self.register_buffer("source_sha256", torch.tensor(list(source_sha256), dtype=torch.uint8))


def _check_meta(meta: dict, where: str) -> dict:
    if not isinstance(meta, dict):
        raise ValueError(f"{where}: the classifier metadata must be a JSON object")
    size = meta.get("input_size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ValueError(f"{where}: 'input_size' must be a positive integer, got {size!r}")
    channels = meta.get("channels", 3)
    if channels not in (1, 3):
        raise ValueError(f"{where}: 'channels' must be 1 or 3, got {channels!r}")
    out = {"input_size": size, "channels": channels}
    for k, default in (("mean", 0.0), ("std", 1.0)):
        v = meta.get(k, [default] * channels)
        if not (isinstance(v, list) and len(v) == channels and all(isinstance(a, (int, float)) for a in v)):
            raise ValueError(f"{where}: {k!r} must be a list of {channels} numbers, got {v!r}")
        if k == "std" and any(a <= 0 for a in v):
            raise ValueError(f"{where}: 'std' must be positive, got {v!r}")
        out[k] = [float(a) for a in v]
    classes = meta.get("classes")
    if classes is not None and not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        raise ValueError(f"{where}: 'classes' must be a list of strings")
    out["classes"] = classes
    out["source"] = meta.get("source")
    return out


def save_classifier(
    path: PathLike,
    net: nn.Module,
    *,
    input_size: int,
    channels: int = 3,
    mean: Optional[Sequence[float]] = None,
    std: Optional[Sequence[float]] = None,
    classes: Optional[Sequence[str]] = None,
    source: Optional[str] = None,
    overwrite: bool = False,
) -> None:
    """Save ``net`` (which takes normalised (B, channels, input_size, input_size) images) as a
    classifier file with its metadata inside: ``.pt2`` as a ``torch.export`` program with a
    dynamic batch, any other suffix as TorchScript (traced). ``net`` is exported in eval mode."""
    path = os.fspath(path)
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"refusing to overwrite existing file {path}")
    meta = _check_meta(
        {
            "input_size": input_size,
            "channels": channels,
            "mean": list(mean) if mean is not None else [0.0] * channels,
            "std": list(std) if std is not None else [1.0] * channels,
            "classes": list(classes) if classes is not None else None,
            "source": source,
        },
        "save_classifier",
    )
    net = net.eval()
    example = torch.rand(2, channels, input_size, input_size)
    extra = {META_NAME: json.dumps(meta)}
    buf = io.BytesIO()  # torch.export.save wants a .pt2 name or a buffer; the file is then written atomically
    if path.endswith(".pt2"):
        batch = torch.export.Dim("batch", min=1, max=_MAX_BATCH)
        program = torch.export.export(net, (example,), dynamic_shapes=({0: batch},))
        torch.export.save(program, buf, extra_files=extra)
    else:
        with torch.no_grad():
            traced = torch.jit.trace(net, example)
        torch.jit.save(traced, buf, _extra_files=extra)
    atomic_write_bytes(path, buf.getvalue(), overwrite=overwrite)


def load_classifier_file(path: PathLike) -> FileClassifier:
    """A ``.pt2`` (torch.export) or TorchScript classifier file with its metadata (file or sidecar)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"classifier file not found: {path}")
    extra = {META_NAME: ""}
    try:
        if path.endswith(".pt2"):
            program = torch.export.load(path, extra_files=extra)
            net = program.module()
            # The exported graph's train/eval behaviour is fixed at export; its module refuses
            # .train()/.eval(), which the wrapper's eval() would call, so fall back to nn.Module's.
            for name in ("train", "eval"):
                net.__dict__.pop(name, None)
        else:
            net = torch.jit.load(path, map_location="cpu", _extra_files=extra)
    except Exception as exc:  # not a torch file, truncated, or the other kind
        kind = "torch.export program (.pt2)" if path.endswith(".pt2") else "TorchScript file"
        raise ValueError(f"classifier {path}: cannot read it as a {kind}: {str(exc).splitlines()[0]}") from None
    raw = extra[META_NAME]
    sidecar = path + SIDECAR_SUFFIX
    h = hashlib.sha256(bytes.fromhex(file_sha256(path)))
    if os.path.isfile(sidecar):  # a sidecar beside the file wins over what the file carries
        with open(sidecar, "rb") as f:
            raw = f.read()
        h.update(raw)
    if not raw:
        raise ValueError(
            f"classifier {path} states no input size: save it with ric_ext.models.save_classifier, or write "
            f'{sidecar} with {{"input_size": N, "channels": 3, "mean": [...], "std": [...]}}'
        )
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"classifier {path}: its metadata is not JSON: {exc}") from None
    return FileClassifier(net, _check_meta(meta, f"classifier {path}"), h.digest()).eval()


def load_classifier_import(spec: str) -> nn.Module:
    """``package.module:function``: the module that function returns, in eval mode."""
    mod_name, fn_name = spec.split(":")
    try:
        fn = getattr(importlib.import_module(mod_name), fn_name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"classifier {spec!r}: cannot import it: {exc}") from None
    net = fn()
    if not isinstance(net, nn.Module):
        raise ValueError(f"classifier {spec!r}: {fn_name}() returned {type(net).__name__}, not a torch nn.Module")
    return net.eval()
