"""A virtual wall clock for the scheduler's tests: time moves only when the test says so."""

from __future__ import annotations

import asyncio


class FakeClock:
    """Virtual wall time: ``sleep_until`` waits until the test moves time past the moment."""

    def __init__(self, start: float) -> None:
        self.t = start
        self.waiters: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self.t

    async def sleep_until(self, when: float) -> None:
        if when <= self.t:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append((when, fut))
        await fut

    async def advance_to(self, t: float) -> None:
        """Move time to ``t`` through every waiter's moment in order, letting tasks react at each one."""
        while True:
            await settle()
            due = sorted(w for w, f in self.waiters if not f.done() and w <= t)
            if not due:
                break
            self.t = max(self.t, due[0])
            for w, f in self.waiters:
                if w <= self.t and not f.done():
                    f.set_result(None)
            self.waiters = [(w, f) for w, f in self.waiters if not f.done()]
        self.t = max(self.t, t)
        await settle()


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)
