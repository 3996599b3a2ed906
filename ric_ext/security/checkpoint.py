"""What a long security evaluation keeps on disk, so that an interrupted run resumes.

The public-model attacker (d) is hours of CPU at full size (``docs/security.md``). Its work is
the attacker's own: pairs made under *its* keys and networks trained on them. None of it
depends on the victim's key, which is fresh in every run and never written. So a rerun of the
same command reuses the pairs and continues each network from its last finished epoch, and the
resumed attacker is the attacker of an uninterrupted run (same pairs, same order, same states),
scored on victims encrypted under the rerun's key.

Every file carries a fingerprint of what made it (settings, classifier, data). A file whose
fingerprint does not match, or that cannot be read, is ignored and replaced, never trusted.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from typing import Any, Optional

import torch

from ..io_utils import atomic_write_bytes
from ..models.classifiers import fingerprint as module_fingerprint

#: the folder inside ``evaluate --out`` that holds an unfinished run's checkpoints
DIR_NAME = ".ric_attack_checkpoint"


def fingerprint(*parts: Any) -> str:
    """sha256 (hex, 32 digits) over tensors' dtypes, shapes and bytes and JSON-able values."""
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, torch.Tensor):
            t = p.detach().cpu().contiguous()
            h.update(f"tensor {t.dtype} {tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(p, torch.nn.Module):
            h.update(module_fingerprint(p).encode())
        else:
            h.update(json.dumps(p, sort_keys=True, default=str).encode())
        h.update(b"|")
    return h.hexdigest()[:32]


def cipher_fingerprint(cipher, shape: tuple) -> str:
    """What makes a cipher's ciphertexts of (C, H, W) images: scheme, NAE settings, networks, bank.
    Not the key: the attacker's pairs are under keys of its own, whatever the victim's."""
    scheme = cipher.scheme
    bank = cipher.bank_for(tuple(shape))  # None for the keyed noise (every replayed scheme)
    return fingerprint(
        type(scheme).__name__,
        getattr(scheme, "base", None),
        cipher.nae_config.to_dict(),
        cipher.classifier,
        cipher.model if cipher.model is not None else "no model",
        bank.q if bank is not None else "no bank",
    )


def load(path: Optional[str], expected: str) -> Optional[dict]:
    """The checkpoint at ``path`` if it was made from what ``expected`` fingerprints, else None."""
    if not path or not os.path.exists(path):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a foreign file's pickle protocol: it is dropped below anyway
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torn by a crash mid-write elsewhere, or not ours: start afresh
        return None
    return state if isinstance(state, dict) and state.get("fingerprint") == expected else None


def save(path: Optional[str], state: dict) -> None:
    """Write ``state`` (tensors, numbers, strings, lists, dicts) atomically to ``path`` (None: nowhere)."""
    if not path:
        return
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def remove(folder: Optional[str], names: tuple) -> None:
    """Delete the named checkpoint files we wrote in ``folder``, and the folder once it is empty."""
    if not folder or not os.path.isdir(folder):
        return
    for n in names:
        p = os.path.join(folder, n)
        if os.path.exists(p):
            os.unlink(p)
    if not os.listdir(folder):
        os.rmdir(folder)
