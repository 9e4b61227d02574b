"""A virtual monotonic clock for the engine's timing logic (limiters, in-flight caps): tests never sleep."""

from __future__ import annotations

import asyncio
import heapq
import itertools


class FakeClock:
    """Virtual time for tests: ``sleep`` parks the caller until ``advance`` moves time past its deadline.

    ``advance`` wakes sleepers one deadline at a time, in order, and lets the event loop run the woken
    coroutines before moving on, so time-ordering bugs show up without any real sleeping.
    """

    def __init__(self, start: float = 1000.0, *, settle_steps: int = 25) -> None:
        self._now = start
        self._heap: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._settle_steps = settle_steps

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._heap, (self._now + seconds, next(self._seq), fut))
        await fut

    @property
    def sleepers(self) -> int:
        return sum(1 for _, _, f in self._heap if not f.done())

    def next_deadline(self) -> float | None:
        live = [d for d, _, f in self._heap if not f.done()]
        return min(live) if live else None

    async def settle(self) -> None:
        """Let ready coroutines run until they block again."""
        for _ in range(self._settle_steps):
            await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        """Move virtual time forward by ``seconds``, waking every sleeper whose deadline passes, in order."""
        target = self._now + seconds
        await self.settle()
        while self._heap and self._heap[0][0] <= target:
            deadline, _, fut = heapq.heappop(self._heap)
            if fut.done():
                continue
            self._now = max(self._now, deadline)
            fut.set_result(None)
            await self.settle()
        self._now = max(self._now, target)
        await self.settle()

    async def run_until_idle(self, limit: float = 1e6) -> None:
        """Advance to each next deadline until nobody sleeps (or ``limit`` virtual seconds passed)."""
        end = self._now + limit
        await self.settle()
        while (d := self.next_deadline()) is not None and d <= end:
            await self.advance(d - self._now)
