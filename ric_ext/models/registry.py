"""Loading classifiers by name and RIC weights from files (bundled or the user's)."""

from __future__ import annotations

import os
from typing import Optional, Union

import torch
from torch import nn

from ..errors import CheckpointError
from ..io_utils import atomic_write
from .classifiers import load_cifar_resnet, load_lfw_classifier, load_svhn_classifier
from .networks import RIC

PathLike = Union[str, "os.PathLike[str]"]
ASSETS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets")
CLASSIFIERS = {
    "svhn": "svhn_ccexam.pth",
    "cifar10-resnet20": "cifar10_resnet20.th",
    "cifar10-resnet56": "cifar10_resnet56.th",
    "lfw": "lfw_identity.pt",
    # the same network trained at 160x160 (python/train_lfw_classifier.py --size 160); not bundled
    # yet: the faces-160 GPU recipe (python/train_gpu.sh faces160) trains it into its run folder
    "lfw160": "lfw_identity160.pt",
}
# RIC weights shipped in ric_ext/assets, by name (see PROVENANCE.md there).
# "svhn" is the best SVHN model; earlier ones stay under their own names so that
# ciphertexts made with them (the header pins the weights) still decrypt.
BUNDLED_RIC = {
    "svhn": "ric_svhn_w32_v4.pt",
    "svhn-v3": "ric_svhn_w32_v3.pt",
    "svhn-v2": "ric_svhn_w32_v2.pt",
    "svhn-v1": "ric_svhn_w32.pt",
    "faces": "ric_faces64_v6.pt",
    "faces-v5": "ric_faces64_v5.pt",
    "faces-v4": "ric_faces64_v4.pt",
    "faces-v3": "ric_faces64_v3.pt",
    "faces-v2": "ric_faces64_v2.pt",
    "faces-v1": "ric_faces64.pt",
}


def models_dir(models: Optional[PathLike] = None) -> Optional[str]:
    """The classifier folder: ``models``, else ``RIC_MODELS``, else None (bundled classifiers only)."""
    path = models or os.environ.get("RIC_MODELS")
    return os.fspath(path) if path else None


def load_classifier(name: str, models: Optional[PathLike] = None) -> nn.Module:
    """A classifier (input [0, 1], eval mode) by name: 'svhn', 'cifar10-resnet20', 'cifar10-resnet56',
    'lfw' (our 62-identity LFW classifier, 64x64 input), 'lfw160' (the same at 160x160).

    The file is looked up in the models folder (``models``, else ``RIC_MODELS``);
    'svhn' and 'lfw' fall back to the copies bundled in the package.
    """
    if name not in CLASSIFIERS:
        raise ValueError(f"classifier must be one of {sorted(CLASSIFIERS)}, got {name!r}")
    folder = models_dir(models)
    tried = [os.path.join(folder, CLASSIFIERS[name])] if folder else []
    if os.path.isfile(os.path.join(ASSETS, CLASSIFIERS[name])):
        tried.append(os.path.join(ASSETS, CLASSIFIERS[name]))
    path = next((p for p in tried if os.path.isfile(p)), None)
    if path is None:
        hint = " (train it: python python/train_lfw_classifier.py --size 160 --out PATH)" if name == "lfw160" else ""
        where = f"not found at {tried[0]}" if tried else "not bundled, and no models folder was given"
        raise FileNotFoundError(f"classifier {name!r}: weights {where}; pass --models DIR or set RIC_MODELS{hint}")
    if name == "svhn":
        return load_svhn_classifier(path)
    if name in ("lfw", "lfw160"):
        return load_lfw_classifier(path)
    return load_cifar_resnet(path, depth=20 if name.endswith("20") else 56)


def find_classifier(fp: str, models: Optional[PathLike] = None) -> str:
    """The name of the classifier whose weights have fingerprint ``fp`` (a ciphertext header's).

    Looks at every classifier name that loads here: the bundled ones and those in the
    models folder (``models``, else ``RIC_MODELS``). FileNotFoundError names the
    fingerprint and every place looked when none matches.
    """
    from .classifiers import fingerprint

    looked = []
    for name in CLASSIFIERS:
        try:
            clf = load_classifier(name, models)
        except (FileNotFoundError, ValueError):
            continue
        looked.append(name)
        if fingerprint(clf) == fp:
            return name
    folder = models_dir(models)
    raise FileNotFoundError(
        f"no classifier with fingerprint {fp[:16]}... among {looked or 'none'} (bundled: {ASSETS}; models folder: "
        f"{folder or 'none given'}); pass --classifier NAME and --models DIR"
    )


def save_ric(
    path: PathLike, model: RIC, *, extra: Optional[dict] = None, half: bool = False, overwrite: bool = True
) -> None:
    """Save RIC weights + config atomically (``half`` stores float16 to halve the size)."""
    # contiguous: a model trained in channels-last layout saves the same file as any other
    sd = {
        k: (v.half() if half and v.is_floating_point() else v).cpu().contiguous() for k, v in model.state_dict().items()
    }
    blob = {"format": "ric-ext-model", "version": 1, "config": model.config(), "state_dict": sd, "extra": extra or {}}
    atomic_write(path, lambda tmp: torch.save(blob, tmp), overwrite=overwrite)


def load_ric(path: PathLike, map_location: Union[str, torch.device] = "cpu") -> RIC:
    """Load RIC weights: a bundled model by name ('svhn', 'faces'; see ``BUNDLED_RIC``), or a
    file saved by :func:`save_ric` or a training checkpoint (read with weights_only)."""
    path = os.fspath(path)
    if path in BUNDLED_RIC and not os.path.exists(path):
        path = bundled_model_path(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"model file not found: {path} (bundled models: {', '.join(sorted(BUNDLED_RIC))})")
    try:
        blob = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot read model file {path}: {exc}") from None
    if not isinstance(blob, dict) or blob.get("format") not in ("ric-ext-model", "ric-ext-checkpoint"):
        raise CheckpointError(f"{path} is not a ric_ext model or checkpoint")
    cfg = blob["config"] if blob["format"] == "ric-ext-model" else blob["model_config"]
    model = RIC(**cfg)
    sd = blob["state_dict"] if blob["format"] == "ric-ext-model" else blob["model"]
    try:
        model.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path} does not fit RIC{cfg}: {exc}") from None
    return model.eval()


BUNDLED_MODEL = BUNDLED_RIC["svhn"]


def bundled_model_path(name: str = "svhn") -> str:
    """The file of a bundled RIC model (see ric_ext/assets/PROVENANCE.md)."""
    if name not in BUNDLED_RIC:
        raise ValueError(f"bundled models are {sorted(BUNDLED_RIC)}, got {name!r}")
    path = os.path.join(ASSETS, BUNDLED_RIC[name])
    if not os.path.isfile(path):
        raise CheckpointError(f"the bundled model {name!r} ({path}) is missing from this installation")
    return path
