"""The security evaluation's fixed protocol: which images are the attacker's pairs, which are
scored, which give the reference guesses, and the report (``evaluate --attacks``).

    from ric_ext.security.protocol import ProtocolSettings, run_protocol
    run_protocol(model, classifier, NAEConfig(), "svhn", "paper", data="...", attacks=["keys"],
                 settings=ProtocolSettings(), out="runs/security")
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

from torch import nn

from .. import data as data_mod
from ..batching import DEFAULT_MICRO_BATCH
from ..cipher import Cipher
from ..keys import Key
from ..models.networks import RIC
from ..nae import NAEConfig
from ..ops.pad import DEFAULT_A
from ..options import opt
from ..schemes import DIGITS_BASE, default_scheme
from . import checkpoint as ckpt
from .attack_config import SECTIONS, AttackConfig
from .attacks import run_attacks
from .inversion import PRECISIONS, InversionSettings
from .public_model import CHECKPOINT_FILES, PublicModelSettings
from .report import write_report

#: SVHN's fixed split, after the authors': the attacker's pairs come from test indices 1000-...
#: (the paper subset) and the scored images from 1500-...; both inside the test split.
SVHN_POOL_START, SVHN_TEST_START = 1000, 1500


@dataclass(frozen=True)
class ProtocolSettings:
    """Sizes of the protocol (each field's help is also its ``evaluate --FIELD`` option)."""

    attack_pairs: int = opt(450, "attacks: known (ciphertext, plaintext) training pairs")
    attack_val: int = opt(50, "attacks: the attacker's validation pairs")
    attack_test: int = opt(100, "attacks: unseen images scored")
    attack_epochs: int = opt(60, "attacks: U-Net training epochs")
    attack_width: int = opt(32, "attacks: U-Net base width")
    attack_seed: int = opt(0, "attacks: U-Net init/data-order seed")
    reencrypt_images: int = opt(10, "attacks: images encrypted 32 times each for the re-encryption test")
    reference_images: int = opt(8000, "attacks: training images for the mean-image baselines")
    public_pairs: int = opt(
        20000, "public-model attacker (d, e): pairs it makes under its own keys (>= 20,000 at 32 px, 5,000 at 64 px)"
    )
    public_epochs: int = opt(12, "public-model attacker: epochs of each inverter")
    public_val: int = opt(500, "public-model attacker: of its pairs, this many validate")
    candidates: int = opt(10, "linkage (e): same-label candidates per victim (chance 1/K)")
    linkage_victims: int = opt(
        1000, "linkage (e): victims under the victim's key (the scored images, then distractors), at most"
    )
    attack_precision: str = opt(
        "fp32",
        "attacks: the attacker networks' training precision; bf16 trains under CPU bfloat16 autocast, "
        "~3-4x faster with AMX and as strong (docs/security.md)",
        choices=PRECISIONS,
    )


def parse_sections(spec: str) -> list:
    """'all' or a comma list of section names -> the list of names."""
    return list(SECTIONS) if spec == "all" else [a.strip() for a in spec.split(",") if a.strip()]


def split_indices(dataset: str, n_pool: int, n_test: int) -> tuple:
    """(attacker pair indices, scored indices, description) in the evaluated split."""
    if dataset == "svhn":
        pool, test = range(SVHN_POOL_START, SVHN_POOL_START + n_pool), range(SVHN_TEST_START, SVHN_TEST_START + n_test)
        desc = f"SVHN test indices {pool.start}-{pool.stop - 1} (attacker pairs), {test.start}-{test.stop - 1} (scored)"
        return pool, test, desc
    pool, test = range(0, n_pool), range(n_pool, n_pool + n_test)
    return pool, test, None


def reference_images(
    dataset: str, split: str, data: Optional[str], size: Optional[int], full, pool_idx: range, n: int
) -> tuple:
    """The images behind the report's reference guesses (mean images), never the scored ones.

    The training split of SVHN, and of LFW when it is scored on its test split; otherwise
    the attacker's own pairs (``pool_idx`` of ``full``; the scored images follow them).
    Returns (images, labels, description).
    """
    train = None
    if dataset == "svhn" or (dataset == "lfw" and split != "train"):
        train = data_mod.dataset(dataset, "train", data, size)
    if train is not None:
        tx, ty = data_mod.stack(train, list(range(min(len(train), n))))
        return tx, ty, f"{tx.shape[0]} images of the {dataset} training split"
    tx, ty = data_mod.stack(full, list(pool_idx)[:n])
    return tx, ty, f"{tx.shape[0]} images: the attacker's pairs ({dataset} {split} 0-{tx.shape[0] - 1})"


def public_model_images(
    dataset: str, split: str, data: Optional[str], size: Optional[int], full, pool_idx: range, test_idx: range
) -> tuple:
    """(attacker's own images, linkage distractors, description), both disjoint from the scored images.

    The attacker draws from the owner's distribution: the training split of SVHN and of LFW,
    otherwise the rest of the evaluated split (CIFAR-10 test 5000-9999 when the split is large).
    Distractors are other images of the scored split: SVHN test 0-999; elsewhere every image
    that is not scored.
    """
    scored = set(test_idx)
    if dataset in ("svhn", "lfw"):
        train = data_mod.dataset(dataset, "train", data, size)
        public_x, _ = data_mod.stack(train, range(len(train)))
        public_desc = f"its own pairs from the {dataset} training split ({len(train)} images)"
        rest = range(0, 1000) if dataset == "svhn" else [i for i in range(len(full)) if i not in scored]
    else:
        half = max(test_idx.stop, len(full) // 2)
        own = range(half, len(full))
        if len(own) == 0:
            raise ValueError("the public-model attacker needs images beyond the scored ones")
        public_x, _ = data_mod.stack(full, own)
        public_desc = f"its own pairs from {dataset} {split} {own.start}-{own.stop - 1}"
        rest = [i for i in range(half) if i not in scored]
    distractor_x, _ = data_mod.stack(full, list(rest))
    return public_x, distractor_x, public_desc + f"; {len(rest)} linkage distractors from the scored split"


def run_protocol(
    model: Optional[RIC],
    classifier: nn.Module,
    nae: NAEConfig,
    dataset: str,
    split: str,
    *,
    data: Optional[str] = None,
    size: Optional[int] = None,
    attacks: Sequence[str] = SECTIONS,
    settings: ProtocolSettings = ProtocolSettings(),
    out: str = "runs/security",
    batch_size: int = 256,
    micro_batch: Optional[int] = DEFAULT_MICRO_BATCH,
    names: Optional[dict] = None,
    log: Callable[[str], None] = lambda s: None,
    scheme: Optional[str] = None,
    pad_a: float = DEFAULT_A,
    base: int = DIGITS_BASE,
    bank="auto",
) -> dict:
    """Encrypt the protocol's images under a fresh key, run ``attacks`` and write the report to ``out``.

    ``names`` ({"model": ..., "classifier": ...}) label the report. Returns the result of
    :func:`ric_ext.security.run_attacks`. The public-model attacker keeps its pairs and inverters
    in ``out``/.ric_attack_checkpoint while it runs, so that rerunning an interrupted command
    resumes its training (:mod:`.checkpoint`); they are deleted once the report is written.
    """
    s = settings
    cfg = AttackConfig(
        attacks=list(attacks),
        reencrypt_images=s.reencrypt_images,
        inversion=InversionSettings(
            epochs=s.attack_epochs, width=s.attack_width, seed=s.attack_seed, precision=s.attack_precision
        ),
        public=PublicModelSettings(
            pairs=s.public_pairs,
            val=s.public_val,
            epochs=s.public_epochs,
            candidates=s.candidates,
            width=s.attack_width,
            seed=s.attack_seed,
            precision=s.attack_precision,
            linkage_victims=s.linkage_victims,
        ),
    )
    n_pool = s.attack_pairs + s.attack_val
    full = data_mod.svhn("test", data) if dataset == "svhn" else data_mod.dataset(dataset, split, data, size)
    pool_idx, test_idx, desc = split_indices(dataset, n_pool, s.attack_test)
    desc = desc or (
        f"{dataset} {split} indices 0-{n_pool - 1} (attacker pairs), {n_pool}-{n_pool + s.attack_test - 1} (scored)"
    )
    if test_idx.stop > len(full):
        raise ValueError(f"the dataset has {len(full)} images; the attack needs {test_idx.stop}")
    attack_x, _ = data_mod.stack(full, list(pool_idx))
    test_x, _ = data_mod.stack(full, list(test_idx))
    tx, ty, ref_desc = reference_images(dataset, split, data, size, full, pool_idx, s.reference_images)
    key = Key.generate()
    scheme = scheme or default_scheme(model)  # measuring the paper's scheme needs no warning
    cipher = Cipher.for_scheme(
        scheme,
        classifier,
        key,
        model=model,
        nae=nae,
        batch_size=batch_size,
        micro_batch=micro_batch,
        pad_a=pad_a,
        base=base,
        bank=bank,
    )
    public_x = distractor_x = None
    if "public_model" in attacks:
        public_x, distractor_x, public_desc = public_model_images(dataset, split, data, size, full, pool_idx, test_idx)
        desc += f"; public-model attacker: {public_desc}"
    checkpoint_dir = os.path.join(out, ckpt.DIR_NAME)
    res = run_attacks(
        cipher,
        attack_x,
        test_x,
        tx,
        ty,
        cfg,
        n_val=s.attack_val,
        log=log,
        public_x=public_x,
        distractor_x=distractor_x,
        checkpoint_dir=checkpoint_dir,
    )
    context = {
        **(names or {}),
        "scheme": cipher.scheme.name,
        "key id": key.key_id + " (a fresh key)",
        "data": desc,
        "reference images": ref_desc,
        "NAE settings": json.dumps(cipher.nae_config.to_dict()),
        **cipher.engine.describe(),
    }
    write_report(res, out, context)
    ckpt.remove(checkpoint_dir, CHECKPOINT_FILES)
    return res
