"""The user's model store: RIC weights and classifier files added once with
``ric-ext models add FILE``, then found by name (``--model NAME``, ``--classifier NAME``)
or by the fingerprint a ciphertext header records (``decrypt`` with the key alone).

It lives in ``$RIC_HOME/models`` (default ``~/.cache/ric_ext/models``): the files, copied
byte for byte and never overwritten, and ``index.json`` with each one's name, kind,
weights fingerprint and sha256.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from typing import List, Optional, Union

from ..io_utils import atomic_write, atomic_write_bytes, file_sha256

PathLike = Union[str, "os.PathLike[str]"]
KINDS = ("ric", "classifier")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def home() -> str:
    """``RIC_HOME``, else ``~/.cache/ric_ext``."""
    return os.environ.get("RIC_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "ric_ext")


def store_dir() -> str:
    return os.path.join(home(), "models")


def _index_path() -> str:
    return os.path.join(store_dir(), "index.json")


def entries() -> List[dict]:
    """Every stored model: dicts with name, kind ('ric' | 'classifier'), file, fingerprint, sha256, added."""
    path = _index_path()
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


def _identify(path: str) -> tuple:
    """(kind, weights fingerprint) of a RIC weights file or a classifier file."""
    from ..errors import CheckpointError
    from .classifier_files import load_classifier_file
    from .classifiers import fingerprint
    from .registry import load_ric

    try:
        return "ric", fingerprint(load_ric(path))
    except CheckpointError as ric_exc:
        try:
            return "classifier", fingerprint(load_classifier_file(path))
        except ValueError as clf_exc:
            raise ValueError(f"{path} is neither RIC weights ({ric_exc}) nor a classifier file ({clf_exc})") from None


def add(path: PathLike, name: Optional[str] = None) -> dict:
    """Copy a RIC weights file or a classifier file (with its ``.json`` sidecar) into the store.

    ``name`` defaults to the file's name without its suffix. Adding the same file again
    returns its entry; another file under a taken name raises FileExistsError.
    """
    from .registry import ARCHIVED_RIC, BUNDLED_RIC, CLASSIFIERS

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file not found: {path}")
    base = os.path.basename(path)
    suffix = ".pt2" if base.endswith(".pt2") else os.path.splitext(base)[1]
    name = name or base[: len(base) - len(suffix)] or base
    if not _NAME.match(name):
        raise ValueError(f"name must be 1-64 letters, digits, '_', '.' or '-', got {name!r}")
    if name in CLASSIFIERS or name in BUNDLED_RIC or name in ARCHIVED_RIC:
        raise ValueError(f"name {name!r} is a built-in model's; choose another with --name")
    kind, fp = _identify(path)
    sha = file_sha256(path)
    old = find(name=name)
    if old is not None:
        if old["sha256"] == sha:
            return old
        raise FileExistsError(f"the store already has a model named {name!r} (another file); choose another --name")
    entry = {
        "name": name,
        "kind": kind,
        "file": name + suffix,
        "fingerprint": fp,
        "sha256": sha,
        "added": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "from": os.path.abspath(path),
    }
    dst = path_of(entry)
    atomic_write(dst, lambda tmp: shutil.copyfile(path, tmp), overwrite=False)
    if os.path.isfile(path + ".json"):
        atomic_write(dst + ".json", lambda tmp: shutil.copyfile(path + ".json", tmp), overwrite=False)
    items = [e for e in entries() if e["name"] != name] + [entry]
    atomic_write_bytes(_index_path(), json.dumps({"models": items}, indent=1).encode())
    return entry
