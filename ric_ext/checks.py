"""Argument checks shared across the package; every failure names the argument."""

from __future__ import annotations

from typing import Optional


def check_int(name: str, value: object, lo: Optional[int] = None, hi: Optional[int] = None) -> int:
    """``value`` if it is an int (bools are not) with lo <= value < hi; else ValueError naming ``name``."""
    ok = isinstance(value, int) and not isinstance(value, bool)
    if ok and (lo is None or value >= lo) and (hi is None or value < hi):
        return value
    if hi is not None:
        want = f"an int in [{lo}, {hi})"
    elif lo is not None:
        want = f"an int >= {lo}"
    else:
        want = "an int"
    raise ValueError(f"{name} must be {want}, got {value!r}")
