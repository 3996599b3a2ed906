"""ric_ext: recoverable privacy-preserving image classification (RIC) for PyTorch.

Fused C++/CUDA kernels (:mod:`ric_ext.ops`) with pure-PyTorch references.
See README.md and docs/scheme.md for the scheme.
"""

import importlib.machinery as _machinery
import os as _os
import sys as _sys


def _add_installed_native_dir() -> None:
    """Let a source checkout find the compiled ``_C`` of the installed package.

    Running ``python -m ric_ext`` (or ``python -m pytest``) from the repository
    root imports this source folder, which has no compiled module; pip installed
    it next to the installed copy. Add that folder to this package's search path
    so ``from . import _C`` works either way.
    """
    here = _os.path.dirname(_os.path.abspath(__file__))

    def has_native(folder: str) -> bool:
        try:
            names = _os.listdir(folder)
        except OSError:
            return False
        return any(n.startswith("_C.") and n.endswith(tuple(_machinery.EXTENSION_SUFFIXES)) for n in names)

    if has_native(here):
        return
    for entry in _sys.path:
        cand = _os.path.abspath(_os.path.join(entry or _os.getcwd(), "ric_ext"))
        if cand != here and has_native(cand):
            __path__.append(cand)  # type: ignore[name-defined]
            return


_add_installed_native_dir()

from . import models, ops  # noqa: E402
from ._native import build_info  # noqa: E402
from .cipher import Cipher, Ciphertext  # noqa: E402
from .errors import (  # noqa: E402
    CheckpointError,
    CiphertextFormatError,
    IntegrityError,
    KeyFileError,
    ModelMismatchError,
    ReencodedError,
    ReencryptionError,
    RicError,
    TamperedError,
    WrongKeyError,
)
from .evaluate import evaluate  # noqa: E402
from .keys import Key  # noqa: E402
from .nae import NAEConfig, NAEGenerator  # noqa: E402
from .reencrypt import reencrypt  # noqa: E402

__version__ = "0.1.0"
__all__ = [
    "build_info",
    "ops",
    "models",
    "Cipher",
    "Ciphertext",
    "Key",
    "NAEConfig",
    "NAEGenerator",
    "evaluate",
    "reencrypt",
    "RicError",
    "WrongKeyError",
    "TamperedError",
    "CiphertextFormatError",
    "ReencodedError",
    "ReencryptionError",
    "IntegrityError",
    "ModelMismatchError",
    "KeyFileError",
    "CheckpointError",
    "__version__",
]
