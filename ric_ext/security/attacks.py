"""The security evaluation behind ``python -m ric_ext evaluate --attacks``.

Runs the paper's threat models against one model / classifier / key and
returns a JSON-able dict of rows; :mod:`.report` turns it into markdown and
figures. Every score is PSNR/SSIM (8-bit, as :mod:`ric_ext.metrics`) of a
guess of the plaintext against the plaintext, next to what guesses that know
nothing about the image score (:mod:`.references`).

Sections (``AttackConfig.attacks``):
  inversion        U-Net on known (ciphertext, plaintext) pairs; variants
                   (a) fresh nonce per image, (b) images share NAEs (one nonce
                   for all, so the NAE depends on the label only), (c) the
                   attacker also gets each ciphertext's public nonce and label.
  keys             decryption with another key, a key one bit away, a wrong
                   label or nonce; NPCR/UACI, histogram chi-square, adjacent-pixel
                   correlation.
  ciphertext_only  the ciphertext, its low/high-pass parts, the residual under a
                   guessed key; re-encryption: the mean of N ciphertexts of one image.
  robustness       JPEG and Gaussian noise on the ciphertext (in memory: the
                   authenticated file refuses modified pixels).
  baselines        the LSB scheme and a plain-noise cover, scored like RIC.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

from ..cipher import Cipher
from ..keys import Key
from .attack_config import AttackConfig
from .references import reference_guesses
from .scoring import Scorer
from .sections import SECTION_FUNCS, Run, _decode


def run_attacks(
    cipher: Cipher,
    attack_x: torch.Tensor,
    test_x: torch.Tensor,
    train_x: torch.Tensor,
    train_labels: torch.Tensor,
    config: AttackConfig = AttackConfig(),
    n_val: int = 50,
    log: Callable[[str], None] = lambda s: None,
    public_x: Optional[torch.Tensor] = None,
    distractor_x: Optional[torch.Tensor] = None,
    checkpoint_dir: Optional[str] = None,
) -> dict:
    """Run the configured attack sections.

    Args:
        cipher: the owner's Cipher (model, classifier, key) under attack.
        attack_x: (N, C, H, W) plaintexts whose ciphertexts the attacker knows
            (the last ``n_val`` are the attacker's validation pairs).
        test_x: (M, C, H, W) unseen plaintexts every attack is scored on.
        train_x, train_labels: images for the reference guesses (training-set and class means).
        public_x: the public-model attacker's own images (section ``public_model``): the owner's
            distribution, disjoint from ``test_x``; it encrypts them under keys of its own.
        distractor_x: other images of ``test_x``'s distribution: the linkage test's candidates.
        checkpoint_dir: where section ``public_model`` keeps the attacker's pairs and inverters
            after every epoch, and resumes them from (:mod:`.checkpoint`). None: nowhere.
    Returns:
        {"rows": [...], "references": {...}, "curves": {...}, "settings": {...}, "_images": {...}}
    """
    if attack_x.shape[0] <= n_val:
        raise ValueError(f"attack_x must hold more than n_val={n_val} images")
    log("encrypting the attacker's pairs and the test images")
    ct_pool, ct_test = cipher.encrypt(attack_x), cipher.encrypt(test_x)
    refs = reference_guesses(test_x, ct_test.labels, train_x, train_labels)
    z_test = cipher.regenerate(ct_test).cpu()
    with torch.no_grad():
        num_classes = int(cipher.classifier(test_x[:1].to(cipher.device)).shape[1])
    wrong_key = Key.generate()
    run = Run(
        cipher=cipher,
        cfg=config,
        attack_x=attack_x,
        test_x=test_x,
        n_val=n_val,
        log=log,
        ct_pool=ct_pool,
        ct_test=ct_test,
        refs=refs,
        sc=Scorer(test_x, refs),
        z_test=z_test,
        x_hat_test=_decode(cipher, ct_test, ct_test.pixels, z_test),
        wrong_key=wrong_key,
        z_wrong=cipher.regenerate(ct_test, key=wrong_key).cpu(),
        num_classes=num_classes,
        images={"plaintext": test_x, "ciphertext": ct_test.as_float()},
        public_x=public_x,
        distractor_x=distractor_x,
        checkpoint_dir=checkpoint_dir,
    )
    for name, section in SECTION_FUNCS.items():
        if name in config.attacks:
            section(run)
    return {
        "rows": run.rows,
        "references": run.sc.refs,
        "curves": run.curves,
        "settings": config.to_dict(),
        "n_attack_pairs": int(attack_x.shape[0] - n_val),
        "n_val": n_val,
        "n_test": int(test_x.shape[0]),
        "_images": run.images,
    }
