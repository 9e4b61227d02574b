"""The engine's monotonic clock: a ``Clock`` Protocol (now, sleep) so rate limits, the poll schedule and the
breaker can be driven by a clock the tests move by hand, and ``RealClock`` for runs."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

__all__ = ["Clock", "RealClock"]


class Clock(Protocol):
    """Monotonic seconds and a way to wait; tests drive a clock of their own (tests/engine/clock.py)."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class RealClock:
    """``time.monotonic`` and ``asyncio.sleep``."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))
