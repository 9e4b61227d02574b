"""A burst of concurrency 429s lowers the in-flight cap once, not once per refused create (with creates
sent together, the holders still count the other refused ones: one cut per refusal drove the cap of a
``--max-in-flight 20`` run against a quota of 5 down to 2, docs/benchmarks/run.md "Wrong limits")."""

from __future__ import annotations

from runner.engine.limits import InFlight
from tests.engine.clock import FakeClock


async def test_refusals_of_one_burst_cut_the_cap_once_and_later_ones_refine_it() -> None:
    clock = FakeClock(0.0)
    cap = InFlight(20, clock)
    for _ in range(9):  # 5 tasks the server accepted + 4 creates sent together, all four refused
        await cap.acquire()
    for _ in range(4):
        cap.on_throttled()
    assert cap.throttles == 4
    assert cap.limit == 8  # one cut (holders minus one), not four (which would end at 4, below the server's 5)
    for _ in range(3):
        await cap.release()  # three refused creates give their slots back; one retries
    await clock.advance(1.5)
    cap.on_throttled()  # refused again a burst later: 6 held, the server holds 5
    assert cap.limit == 5


async def test_refused_creates_that_give_their_slots_back_bring_the_cap_to_what_the_server_runs() -> None:
    clock = FakeClock(0.0)
    cap = InFlight(20, clock)
    for _ in range(7):  # 5 tasks the server runs + 2 creates in the air
        await cap.acquire()
    cap.on_throttled()  # the first refusal: one step, to the holders minus itself
    assert cap.limit == 6
    await cap.release()  # the refused create gives its slot back
    await clock.advance(0.1)
    cap.on_throttled()  # the other create is refused too, within the hold-down: down to the others, 5
    assert cap.limit == 5
    assert cap.try_acquire() is False  # 6 held (the second refused create's too): nobody else is sent
    await cap.release()
    assert cap.try_acquire() is False  # 5 held, cap 5: the retry waits for a task to end
