"""The user's model store: RIC weights and classifier files added once with
``ric-ext models add FILE``, then found by name (``--model NAME``, ``--classifier NAME``)
or by the fingerprint a ciphertext header records (``decrypt`` with the key alone).

It lives in ``$RIC_HOME/models`` (default ``~/.cache/ric_ext/models``): the files, copied
byte for byte and never overwritten, and ``index.json`` with each one's name, kind,
weights fingerprint and sha256. Adding a file is :func:`ric_ext.models.store_add.add`.
"""

from __future__ import annotations

import json
import os
import re
from typing import List, Optional, Union

PathLike = Union[str, "os.PathLike[str]"]
KINDS = ("ric", "classifier")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def home() -> str:
    """``RIC_HOME``, else ``~/.cache/ric_ext``."""
    return os.environ.get("RIC_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "ric_ext")


def store_dir() -> str:
    return os.path.join(home(), "models")


def index_path() -> str:
    return os.path.join(store_dir(), "index.json")


def entries() -> List[dict]:
    """Every stored model: dicts with name, kind ('ric' | 'classifier'), file, fingerprint, sha256, added."""
    path = index_path()
    if not os.path.isfile(path):
        return []
    try:
        with open(path) as f:
            items = json.load(f)["models"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"the model store's index {path} is unreadable: {exc}") from None
    return list(items)


def find(
    *, name: Optional[str] = None, fingerprint: Optional[str] = None, kind: Optional[str] = None
) -> Optional[dict]:
    """The stored entry with this name and/or weights fingerprint (and kind), or None."""
    for e in entries():
        if (name is None or e["name"] == name) and (fingerprint is None or e["fingerprint"] == fingerprint):
            if kind is None or e["kind"] == kind:
                return e
    return None


def path_of(entry: dict) -> str:
    return os.path.join(store_dir(), entry["file"])
