"""A burst of concurrency 429s lowers the in-flight cap once, not once per refused create (with creates
sent together, the holders still count the other refused ones: one cut per refusal drove the cap of a
``--max-in-flight 20`` run against a quota of 5 down to 2, docs/benchmarks/run.md "Wrong limits")."""

from __future__ import annotations

from runner.limits import InFlight


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += seconds


async def test_refusals_of_one_burst_cut_the_cap_once_and_later_ones_refine_it() -> None:
    clock = _Clock()
    cap = InFlight(20, clock)
    for _ in range(9):  # 5 tasks the server accepted + 4 creates sent together, all four refused
        await cap.acquire()
    for _ in range(4):
        cap.on_throttled()
    assert cap.throttles == 4
    assert cap.limit == 8  # one cut (holders minus one), not four (which would end at 4, below the server's 5)
    for _ in range(3):
        await cap.release()  # three refused creates give their slots back; one retries
    clock.t = 1.5
    cap.on_throttled()  # refused again a burst later: 6 held, the server holds 5
    assert cap.limit == 5
