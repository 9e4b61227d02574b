"""Time for the emulator: one injectable source of epoch seconds, so tests move time instead of sleeping."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Anything that tells the current time in epoch seconds (wall clock, not monotonic: tasks carry dates)."""

    def __call__(self) -> float: ...


def system_clock() -> float:
    """The real wall clock."""
    return time.time()


class ManualClock:
    """A clock that only moves when told to: ``clock.advance(2.5)``. It starts at the real time (so a client
    computing list windows from its own clock still finds the tasks) unless given ``start``."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time only moves forward")
        self.now += seconds
