"""Learning-rate schedules as pure functions of training progress.

``progress`` is the fraction of the run done, in [0, 1]: step / steps, or the
share of a compute budget already spent (whichever is further). Being a pure
function of progress, the schedule needs no state in the checkpoint, and a
resumed run continues on the same curve.
"""

from __future__ import annotations

import math

SCHEDULES = ("constant", "cosine", "onecycle")


def lr_factor(schedule: str, progress: float, step: int, warmup: int = 0, final: float = 0.01) -> float:
    """Multiplier of the peak learning rate.

    Args:
        schedule: "constant"; "cosine" (linear warm-up over ``warmup`` steps,
            then half a cosine from 1 down to ``final``); "onecycle" (cosine
            ramp from ``final`` up to 1 over the first 30% of progress, then a
            cosine down to ``final`` / 100, as in Smith's one-cycle policy).
        progress: fraction of the run done, in [0, 1].
        step: optimiser steps taken so far (for the warm-up).
        warmup: warm-up length in steps ("constant" and "cosine").
        final: the final multiplier, in [0, 1].
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    p = min(max(float(progress), 0.0), 1.0)
    warm = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
    if schedule == "constant":
        return warm
    if schedule == "cosine":
        return warm * (final + (1 - final) * 0.5 * (1 + math.cos(math.pi * p)))
    lo, end, peak_at = final, final / 100, 0.3
    if p < peak_at:
        return lo + (1 - lo) * 0.5 * (1 - math.cos(math.pi * p / peak_at))
    q = (p - peak_at) / (1 - peak_at)
    return end + (1 - end) * 0.5 * (1 + math.cos(math.pi * q))
