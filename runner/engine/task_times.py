"""What a model's tasks usually take: a bounded sample of recent durations and the quantiles the poll
schedule is built on (``poller.PollSchedule.expectation``)."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from runner.models import TYPICAL_TASK_SECONDS

__all__ = ["DurationStats", "Expectation"]


@dataclass(frozen=True)
class Expectation:
    """What we expect of a model's tasks, in seconds since submission."""

    early: float  # about the 5 % quantile: polling densely starts here
    typical: float  # the median
    late: float  # about the 95 % quantile

    @classmethod
    def prior(cls, expected: float | None = None) -> Expectation:
        if expected is not None:
            return cls(early=0.5 * expected, typical=expected, late=1.5 * expected)
        lo, hi = TYPICAL_TASK_SECONDS
        return cls(early=lo, typical=(lo + hi) / 2, late=hi)


class DurationStats:
    """Recent task durations per model, for quantiles (a bounded sample: recent behaviour matters most)."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._samples: dict[str, deque[float]] = {}
        self._sorted: dict[str, list[float]] = {}

    def add(self, model: str, seconds: float) -> None:
        if not math.isfinite(seconds) or seconds <= 0:
            return
        self._samples.setdefault(model, deque(maxlen=self._size)).append(seconds)
        self._sorted.pop(model, None)

    def count(self, model: str) -> int:
        return len(self._samples.get(model, ()))

    def quantile(self, model: str, q: float) -> float | None:
        """Nearest-rank quantile of the recent durations, or None without data."""
        values = self._sorted.get(model)
        if values is None:
            values = sorted(self._samples.get(model, ()))
            if not values:
                return None
            self._sorted[model] = values
        rank = min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))
        return values[rank]
