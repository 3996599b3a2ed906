"""Adding a file to the user's model store (``ric-ext models add FILE``): it is identified as RIC
weights or a classifier, named, copied byte for byte (never over anything) and indexed
(:mod:`ric_ext.models.store` finds it afterwards). Apart from the store so that the store's
lookups do not import the registry, which looks names up in the store.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from typing import Optional

from ..errors import CheckpointError
from ..io_utils import atomic_write, atomic_write_bytes, file_sha256
from . import store
from .classifier_files import load_classifier_file
from .classifiers import fingerprint
from .registry import ARCHIVED_RIC, BUNDLED_RIC, CLASSIFIERS, load_ric
from .store import PathLike


def _identify(path: str) -> tuple:
    """(kind, weights fingerprint) of a RIC weights file or a classifier file."""
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
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file not found: {path}")
    base = os.path.basename(path)
    suffix = ".pt2" if base.endswith(".pt2") else os.path.splitext(base)[1]
    name = name or base[: len(base) - len(suffix)] or base
    if not store.NAME.match(name):
        raise ValueError(f"name must be 1-64 letters, digits, '_', '.' or '-', got {name!r}")
    if name in CLASSIFIERS or name in BUNDLED_RIC or name in ARCHIVED_RIC:
        raise ValueError(f"name {name!r} is a built-in model's; choose another with --name")
    kind, fp = _identify(path)
    sha = file_sha256(path)
    old = store.find(name=name)
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
    dst = store.path_of(entry)
    atomic_write(dst, lambda tmp: shutil.copyfile(path, tmp), overwrite=False)
    if os.path.isfile(path + ".json"):
        atomic_write(dst + ".json", lambda tmp: shutil.copyfile(path + ".json", tmp), overwrite=False)
    items = [e for e in store.entries() if e["name"] != name] + [entry]
    atomic_write_bytes(store.index_path(), json.dumps({"models": items}, indent=1).encode())
    return entry
