"""The compute clock of ``budget_min``: the wall time of training steps only.

Validation, checkpoints and grids are not charged. A step that took more than
3x the running median (the process was paused, swapped or shared the cores
with another job) is charged the median, so a budget measures compute rather
than stalls and equal budgets compare recipes fairly.
"""

from __future__ import annotations

import statistics
from collections import deque


class ComputeClock:
    def __init__(self, spent_s: float = 0.0, window: int = 50):
        self.spent_s = float(spent_s)
        self._recent: deque = deque(maxlen=window)

    def charge(self, wall_s: float) -> float:
        """Add one step's wall time (clipped as above); returns what was charged."""
        med = statistics.median(self._recent) if len(self._recent) >= 5 else None
        charged = min(wall_s, 3 * med) if med is not None else wall_s
        self._recent.append(wall_s)
        self.spent_s += charged
        return charged
