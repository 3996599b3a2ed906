"""The settings a model carries: which classifier it was trained against (name and
fingerprint), its input size and channels, its NAE settings and its scheme.

``Cipher``, ``encrypt`` and ``evaluate`` use them unless the user overrides them, so
``encrypt --model faces`` runs against the lfw classifier at the faces NAE's own lr.

- A RIC file written by :func:`~ric_ext.models.registry.save_ric` (training writes them)
  holds them under ``"settings"``.
- The bundled models' settings are folded in from ``assets/model_settings.json``, keyed by
  weights fingerprint, so their files and fingerprints (which old ciphertexts pin) are
  unchanged. Each entry there says where its values come from.
- A bundled classifier may carry NAE settings too (the pad scheme has no RIC model):
  ``lfw``'s are those its pad-scheme numbers were measured with.

Loaders attach them as ``module.ric_settings`` (a dict, or absent): an attribute, not a
buffer, so they never change a fingerprint.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Optional

from torch import nn

ASSETS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets")
KEYS = ("name", "scheme", "classifier", "input_size", "channels", "nae", "from")


@functools.lru_cache(maxsize=1)
def _bundled() -> dict:
    with open(os.path.join(ASSETS, "model_settings.json")) as f:
        return json.load(f)


def bundled_settings(kind: str, fp: str) -> Optional[dict]:
    """The folded-in settings of a bundled ``kind`` ('ric' | 'classifier') with weights fingerprint ``fp``."""
    entry = _bundled()[kind].get(fp)
    return dict(entry) if entry else None


def check_settings(settings: dict, where: str) -> dict:
    """Validate a settings dict (unknown keys dropped); ValueError names ``where``."""
    from ..nae import NAEConfig

    if not isinstance(settings, dict):
        raise ValueError(f"{where}: settings must be a dict, got {type(settings).__name__}")
    out = {k: settings[k] for k in KEYS if settings.get(k) is not None}
    if "nae" in out:
        try:
            NAEConfig.from_dict(out["nae"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{where}: malformed NAE settings: {exc}") from None
    clf = out.get("classifier")
    if clf is not None and not (isinstance(clf, dict) and isinstance(clf.get("name"), str)):
        raise ValueError(f"{where}: 'classifier' must be {{'name': ..., 'fingerprint': ...}}, got {clf!r}")
    return out


def attach(module: nn.Module, settings: Optional[dict]) -> nn.Module:
    if settings:
        module.ric_settings = settings
    return module


def of(module: Optional[nn.Module]) -> dict:
    """The settings ``module`` carries ({} when none)."""
    return dict(getattr(module, "ric_settings", None) or {}) if module is not None else {}


def nae_defaults(model: Optional[nn.Module], classifier: Optional[nn.Module]) -> Optional[dict]:
    """The NAE settings to use when the user gives none: the RIC model's, else the classifier's."""
    return of(model).get("nae") or of(classifier).get("nae")


def training_settings(cfg, classifier: nn.Module, shape: tuple) -> dict:
    """What a model trained with TrainConfig ``cfg`` against ``classifier`` on images of ``shape`` carries."""
    from ..nae import NAEConfig
    from .classifiers import fingerprint

    # encryption stops on the ciphertext (the default rule); the attack's own settings are training's
    nae = NAEConfig(c=cfg.nae_c, kappa=cfg.nae_kappa, steps=cfg.nae_steps, lr=cfg.nae_lr, margin=cfg.margin)
    return {
        "scheme": "paper",
        "classifier": {"name": cfg.classifier, "fingerprint": fingerprint(classifier)},
        "input_size": int(shape[-1]),
        "channels": int(shape[0]),
        "nae": nae.to_dict(),
        "from": f"training (ric-ext train), dataset {cfg.dataset!r} split {cfg.split!r}",
    }
