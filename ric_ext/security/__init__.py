"""Security evaluation of RIC: the paper's threat models, ciphertext statistics,
robustness and baseline schemes (``python -m ric_ext evaluate --attacks``).

    from ric_ext.security import AttackConfig, run_attacks, write_report
    res = run_attacks(cipher, attack_x, test_x, train_x, train_labels, AttackConfig())
    write_report(res, "runs/security")
"""

from .attack_config import SECTIONS, AttackConfig
from .attacks import run_attacks
from .inversion import InversionSettings, train_inversion
from .report import format_markdown, write_report
from .scoring import score

__all__ = [
    "SECTIONS",
    "AttackConfig",
    "InversionSettings",
    "format_markdown",
    "run_attacks",
    "score",
    "train_inversion",
    "write_report",
]
