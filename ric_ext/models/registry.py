"""Loading classifiers by name and RIC weights from files (bundled or the user's)."""

from __future__ import annotations

import os
from typing import NamedTuple, Optional, Union

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
    # the same network with a stride-2 stem at 160x160 (python/recipes/train_lfw_classifier.py --size 160
    # --stem 2), bundled with its NAE bank (docs/models.md)
    "lfw160": "lfw_identity160.pt",
}
# RIC weights shipped in ric_ext/assets, by name (ric_ext/assets/PROVENANCE.md): the current ones.
BUNDLED_RIC = {"svhn": "ric_svhn_w32_v4.pt", "faces": "ric_faces64_v6.pt"}


class Archived(NamedTuple):
    file: str  #: its name in the repository's models/archive/
    sha256: str  #: of the file, checked on load
    fingerprint: str  #: of its weights (classifiers.fingerprint), as a ciphertext header records it


# Superseded RIC weights: not in the wheel (issue 19), kept byte for byte in the repository's
# models/archive/ because a ciphertext's header pins the exact weights it was made with.
ARCHIVED_RIC = {
    "svhn-v3": Archived(
        "ric_svhn_w32_v3.pt",
        "178e91fd88b5b6004bbdab4c974921fffdb13b480f1be23499b4fdfcbf3a5fed",
        "0c5ec04df5e06a52216d96ac370e8ebbde3dff03d09b027b36b78174bc177db3",
    ),
    "svhn-v2": Archived(
        "ric_svhn_w32_v2.pt",
        "db750d74605a295a1b0c5277b0552c8b1545b51ae4b699631047135f2796fcb4",
        "664d6eea95e3a2760c6b3c5fcba48f1852dbf01754f2af031d8e5b23b9860726",
    ),
    "svhn-v1": Archived(
        "ric_svhn_w32.pt",
        "662282ded959ef4df030d3a132666926caaff558e94d5d7cb9cd7f20bb5d21f2",
        "ba4c0d809011ff97e07e636f989872e8c5801c3761660b8afad0a872d7ae3797",
    ),
    "faces-v5": Archived(
        "ric_faces64_v5.pt",
        "afa23c8685641d68e2e4e190ae48fc603cbf6ce8d8314101cf7a7ad3121cdd36",
        "9220f85a6033e5157e5bf961716ec9f160d188707568f4b0fce61303203f0be1",
    ),
    "faces-v4": Archived(
        "ric_faces64_v4.pt",
        "2b609de75e4a3471a48061fe7e40bef6d1c54aefd358c8acd24b943d12a0192c",
        "2c4240e2b138d3a71f2bf2dbd955de332203645ae78f7ce0e28b315baf128634",
    ),
    "faces-v3": Archived(
        "ric_faces64_v3.pt",
        "da12a0cfa3455baaacb05dea982770a36d065bff3e5f4726bb7b12d72fd01250",
        "360fe92fb42d178c8e22cc4c1bd94613125749cab3d6b2f6a467c0bfd5a1d98c",
    ),
    "faces-v2": Archived(
        "ric_faces64_v2.pt",
        "93c732f8344f1233fb846feec73e7a14880431985e1087539305e2ea0fbc78ce",
        "dea4ba0103bbb17d1c362c5d0d13f24fa615beeb86c2e67fad713ee343ac007b",
    ),
    "faces-v1": Archived(
        "ric_faces64.pt",
        "a7b8be9d40c5a858e6421d1415ccddf64a00612772fc1ec8eec2015eebbbb3d1",
        "4430e74a0f5517b24d420eb540f7f2b0fe896d71e8563165399a684be5f243ff",
    ),
}
# The repository's archive, when the package runs from a checkout (an installed wheel has none).
REPO_ARCHIVE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "models", "archive"
)


def archive_dir() -> Optional[str]:
    """Where archived weights are looked for: RIC_ARCHIVE, else the checkout's models/archive (or None)."""
    path = os.environ.get("RIC_ARCHIVE") or (REPO_ARCHIVE if os.path.isdir(REPO_ARCHIVE) else None)
    return os.fspath(path) if path else None


def archived_model_path(name: str) -> str:
    """The checked file of an archived (superseded) RIC model; CheckpointError says how to get it."""
    a = ARCHIVED_RIC[name]
    folder = archive_dir()
    path = os.path.join(folder, a.file) if folder else None
    if path is None or not os.path.isfile(path):
        raise CheckpointError(
            f"{name!r} is a superseded model, not in the installed package: it is models/archive/{a.file} in the "
            f"ric_ext repository (sha256 {a.sha256}); pass that file's path as the model or set RIC_ARCHIVE to "
            f"its folder (looked in: {folder or 'no archive folder'})"
        )
    from ..io_utils import file_sha256

    if file_sha256(path) != a.sha256:
        raise CheckpointError(f"{path} is not the archived {name!r}: its sha256 differs from {a.sha256}")
    return path


def model_for_fingerprint(fp: str) -> Optional[str]:
    """The name of the bundled, archived or stored (``ric-ext models add``) model whose weights have
    fingerprint ``fp`` (or None)."""
    from . import store

    for name, a in ARCHIVED_RIC.items():
        if a.fingerprint == fp:
            return name
    if fp in BUNDLED_FINGERPRINTS:
        return BUNDLED_FINGERPRINTS[fp]
    entry = store.find(fingerprint=fp, kind="ric")
    return entry["name"] if entry else None


BUNDLED_FINGERPRINTS = {
    "d10d5333b927af82460bf83e198ac804eef695d80927b9e740477422439951e5": "svhn",
    "27e6ad77d305605628d805fa0841b33f06c0bd865d14128e23416eb6869ed3ad": "faces",
}


def models_dir(models: Optional[PathLike] = None) -> Optional[str]:
    """The classifier folder: ``models``, else ``RIC_MODELS``, else None (bundled classifiers only)."""
    path = models or os.environ.get("RIC_MODELS")
    return os.fspath(path) if path else None


def served_name(spec: Optional[str]) -> str:
    """The name a classifier goes by (``--classifier`` value -> ``ric-ext serve``'s model name, and the
    ``classifier_name`` a format-4 header records): a built-in or stored name as it is, a file's stem,
    a ``module:function``'s function; characters outside [A-Za-z0-9._-] become '-'."""
    if not spec:
        return "svhn"
    base = os.path.basename(spec.rstrip("/"))
    stem = base[:-4] if base.endswith(".pt2") else os.path.splitext(base)[0]
    stem = stem.rsplit(":", 1)[-1]
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in (stem or "classifier"))


def load_classifier(name: str, models: Optional[PathLike] = None) -> nn.Module:
    """A classifier (input [0, 1], eval mode) by name or from a file.

    ``name`` is one of:

    - a built-in name: 'svhn', 'cifar10-resnet20', 'cifar10-resnet56', 'lfw' (our
      62-identity LFW classifier, 64x64 input), 'lfw160' (the same with a stride-2 stem, 160x160
      input), looked up in the models folder (``models``, else ``RIC_MODELS``); 'svhn', 'lfw' and
      'lfw160' fall back to the copies bundled in the package;
    - the name of a classifier in the user's model store (``ric-ext models add``);
    - a ``.pt2`` (torch.export) or TorchScript file, or ``package.module:function``
      (:mod:`ric_ext.models.classifier_files`).

    The classifier carries ``ric_name`` (:func:`served_name`), an attribute no fingerprint covers.
    """
    clf = _load_classifier(name, models)
    clf.ric_name = served_name(name)
    return clf


def _load_classifier(name: str, models: Optional[PathLike] = None) -> nn.Module:
    """The classifier behind :func:`load_classifier`."""
    from . import store
    from .classifier_files import is_import_path, load_classifier_file, load_classifier_import

    if not isinstance(name, str) or not name:
        raise ValueError(f"classifier must be a name, a file or module:function, got {name!r}")
    if name not in CLASSIFIERS:
        entry = store.find(name=name, kind="classifier")
        if entry is not None:
            return load_classifier_file(store.path_of(entry))
        if os.path.isfile(name):
            return load_classifier_file(name)
        if is_import_path(name):
            return load_classifier_import(name)
        raise ValueError(
            f"classifier must be one of {sorted(CLASSIFIERS)}, a classifier in the model store "
            f"({store.store_dir()}), a .pt2 / TorchScript file or module:function; got {name!r}"
        )
    folder = models_dir(models)
    tried = [os.path.join(folder, CLASSIFIERS[name])] if folder else []
    if os.path.isfile(os.path.join(ASSETS, CLASSIFIERS[name])):
        tried.append(os.path.join(ASSETS, CLASSIFIERS[name]))
    path = next((p for p in tried if os.path.isfile(p)), None)
    if path is None:
        where = f"not found at {tried[0]}" if tried else "not bundled, and no models folder was given"
        raise FileNotFoundError(f"classifier {name!r}: weights {where}; pass --models DIR or set RIC_MODELS")
    from .classifiers import fingerprint
    from .settings import attach, bundled_settings

    if name == "svhn":
        clf = load_svhn_classifier(path)
    elif name in ("lfw", "lfw160"):
        clf = load_lfw_classifier(path)
    else:
        clf = load_cifar_resnet(path, depth=20 if name.endswith("20") else 56)
    return attach(clf, bundled_settings("classifier", fingerprint(clf)))


def find_classifier(fp: str, models: Optional[PathLike] = None) -> str:
    """The name of the classifier whose weights have fingerprint ``fp`` (a ciphertext header's).

    Looks at every built-in classifier that loads here (bundled, or in the models folder:
    ``models``, else ``RIC_MODELS``), then the user's model store. FileNotFoundError names
    the fingerprint and every place looked when none matches.
    """
    from . import store
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
    entry = store.find(fingerprint=fp, kind="classifier")
    if entry is not None:
        return entry["name"]
    folder = models_dir(models)
    raise FileNotFoundError(
        f"no classifier with fingerprint {fp[:16]}... among {looked or 'none'} (bundled: {ASSETS}; models folder: "
        f"{folder or 'none given'}; model store: {store.store_dir()}); pass --classifier NAME_OR_FILE, or add "
        "the classifier with `ric-ext models add FILE`"
    )


def save_ric(
    path: PathLike,
    model: RIC,
    *,
    extra: Optional[dict] = None,
    half: bool = False,
    overwrite: bool = True,
    settings: Optional[dict] = None,
) -> None:
    """Save RIC weights + config atomically (``half`` stores float16 to halve the size).

    ``settings`` (default: the model's ``ric_settings``): what the model carries for
    ``Cipher`` and the CLI (:mod:`ric_ext.models.settings`).
    """
    from .settings import check_settings, of

    # contiguous: a model trained in channels-last layout saves the same file as any other
    sd = {
        k: (v.half() if half and v.is_floating_point() else v).cpu().contiguous() for k, v in model.state_dict().items()
    }
    blob = {"format": "ric-ext-model", "version": 1, "config": model.config(), "state_dict": sd, "extra": extra or {}}
    carried = settings if settings is not None else of(model)
    if carried:
        blob["settings"] = check_settings(carried, f"save_ric({os.fspath(path)})")
    atomic_write(path, lambda tmp: torch.save(blob, tmp), overwrite=overwrite)


def load_ric(path: PathLike, map_location: Union[str, torch.device] = "cpu") -> RIC:
    """Load RIC weights: a bundled model by name ('svhn', 'faces'; see ``BUNDLED_RIC``), an archived
    one ('svhn-v1', ..., 'faces-v5'; ``ARCHIVED_RIC``, from the repository's models/archive/), one in
    the user's model store by name (``ric-ext models add``), or a file saved by :func:`save_ric` or a
    training checkpoint (read with weights_only)."""
    from . import store

    path = os.fspath(path)
    entry = None if os.path.exists(path) else store.find(name=path, kind="ric")
    if path in BUNDLED_RIC and not os.path.exists(path):
        path = bundled_model_path(path)
    elif path in ARCHIVED_RIC and not os.path.exists(path):
        path = archived_model_path(path)
    elif entry is not None:
        path = store.path_of(entry)
    if not os.path.isfile(path):
        names = ", ".join(sorted(BUNDLED_RIC)) + "; archived: " + ", ".join(sorted(ARCHIVED_RIC))
        raise CheckpointError(
            f"model file not found: {path} (bundled models: {names}; model store: {store.store_dir()})"
        )
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
    from .classifiers import fingerprint
    from .settings import attach, bundled_settings, check_settings

    carried = blob.get("settings")
    try:
        carried = check_settings(carried, path) if carried else bundled_settings("ric", fingerprint(model))
    except ValueError as exc:
        raise CheckpointError(str(exc)) from None
    return attach(model.eval(), carried)


BUNDLED_MODEL = BUNDLED_RIC["svhn"]


def bundled_model_path(name: str = "svhn") -> str:
    """The file of a bundled RIC model (see ric_ext/assets/PROVENANCE.md)."""
    if name not in BUNDLED_RIC:
        raise ValueError(f"bundled models are {sorted(BUNDLED_RIC)}, got {name!r}")
    path = os.path.join(ASSETS, BUNDLED_RIC[name])
    if not os.path.isfile(path):
        raise CheckpointError(f"the bundled model {name!r} ({path}) is missing from this installation")
    return path
