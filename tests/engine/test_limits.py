"""The sliding-window limiter, the in-flight cap and the Limits registry, all on virtual time."""

from __future__ import annotations

import asyncio
import itertools
from collections import deque

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.engine.clock import RealClock
from runner.engine.limits import Adapt, InFlight, Limits, WindowLimiter
from tests.engine.clock import FakeClock


def max_in_any_window(times: list[float], window: float = 1.0) -> int:
    """The largest number of starts inside any closed window of ``window`` seconds."""
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] < t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


# ------------------------------------------------------------------------------------------- fake clock


async def test_fake_clock_wakes_sleepers_in_deadline_order() -> None:
    clock = FakeClock(0.0)
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, s: float) -> None:
        await clock.sleep(s)
        woke.append((name, clock.now()))

    tasks = [asyncio.create_task(sleeper(n, s)) for n, s in (("c", 3.0), ("a", 1.0), ("b", 2.0))]
    await clock.advance(1.5)
    assert woke == [("a", 1.0)]
    assert clock.now() == 1.5 and clock.sleepers == 2
    await clock.run_until_idle()
    assert woke == [("a", 1.0), ("b", 2.0), ("c", 3.0)]
    assert all(t.done() for t in tasks)
    assert clock.next_deadline() is None


async def test_real_clock_is_monotonic_and_sleeps() -> None:
    clock = RealClock()
    t0 = clock.now()
    await clock.sleep(0)
    await clock.sleep(-1)
    assert clock.now() >= t0


# ------------------------------------------------------------------------------------------- window limiter


async def grant_times(limiter: WindowLimiter, clock: FakeClock, arrivals: list[float]) -> list[float]:
    grants: list[tuple[int, float]] = []

    async def caller(i: int, at: float) -> None:
        await clock.sleep(at - clock.now())
        await limiter.acquire()
        grants.append((i, clock.now()))

    tasks = [asyncio.create_task(caller(i, a)) for i, a in enumerate(arrivals)]
    await clock.run_until_idle()
    assert all(t.done() for t in tasks), "a caller never got its start"
    return [t for _, t in grants]


async def test_burst_is_spread_and_never_exceeds_the_window() -> None:
    clock = FakeClock(0.0)
    limiter = WindowLimiter(5, clock)
    times = await grant_times(limiter, clock, [0.0] * 12)
    assert max_in_any_window(times) == 5
    # a burst is spaced (half the even spacing), not fired at once
    assert all(b - a >= 0.5 * 1.05 / 5 - 1e-9 for a, b in itertools.pairwise(times))
    # and the sixth start waits for the first to leave the (margin-widened) window
    assert times[5] == pytest.approx(times[0] + 1.05)


async def test_a_leaky_bucket_pattern_is_refused() -> None:
    """5 at once then one every 0.2 s (aiolimiter's pattern) would put 9 into one second; we never do."""
    clock = FakeClock(0.0)
    limiter = WindowLimiter(5, clock, min_gap=0.0)
    arrivals = [0.0] * 5 + [0.2, 0.4, 0.6, 0.8]
    times = await grant_times(limiter, clock, arrivals)
    assert times[:5] == [0.0] * 5
    assert min(times[5:]) >= 1.05
    assert max_in_any_window(times) == 5


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rate=st.sampled_from([1, 2, 3, 5]),
    gaps=st.lists(st.floats(min_value=0.0, max_value=1.5), min_size=1, max_size=30),
    throttle_at=st.sets(st.integers(min_value=0, max_value=29), max_size=4),
    retry_after=st.one_of(st.none(), st.floats(min_value=0.0, max_value=3.0)),
    min_gap=st.sampled_from([None, 0.0]),
)
def test_property_never_more_than_n_in_any_second(
    rate: int, gaps: list[float], throttle_at: set[int], retry_after: float | None, min_gap: float | None
) -> None:
    async def scenario() -> tuple[list[float], list[float]]:
        clock = FakeClock(0.0)
        limiter = WindowLimiter(rate, clock, min_gap=min_gap)
        arrivals, t = [], 0.0
        for g in gaps:
            t += g
            arrivals.append(t)
        grants: list[tuple[int, float]] = []

        async def caller(i: int, at: float) -> None:
            await clock.sleep(at - clock.now())
            await limiter.acquire()
            grants.append((i, clock.now()))
            if i in throttle_at:
                limiter.on_throttled(retry_after)

        tasks = [asyncio.create_task(caller(i, a)) for i, a in enumerate(arrivals)]
        await clock.run_until_idle()
        assert all(task.done() for task in tasks)
        order = [i for i, _ in grants]
        assert order == sorted(order), "callers must be served first come, first served"
        return arrivals, [g for _, g in grants]

    arrivals, times = asyncio.run(scenario())
    assert len(times) == len(arrivals)
    assert all(g >= a - 1e-9 for a, g in zip(arrivals, times, strict=True))
    assert max_in_any_window(times, 1.0) <= rate
    assert max_in_any_window(times, 1.04) <= rate  # the margin holds too


async def test_throttle_halves_once_per_window_and_pauses_everybody() -> None:
    clock = FakeClock(0.0)
    limiter = WindowLimiter(5, clock)
    limiter.on_throttled(3.0)
    limiter.on_throttled(None)  # the same burst's second 429 does not halve again
    assert limiter.rate == 2.5
    assert limiter.throttles == 2
    assert limiter.delay() == pytest.approx(3.0)
    times = await grant_times(limiter, clock, [0.0, 0.0, 0.0])
    assert times[0] == pytest.approx(3.0)
    # effective 2.5/s is enforced as 2 per window
    assert max_in_any_window(times, 1.0) <= 2
    await clock.advance(1.5)
    limiter.on_throttled(None)  # a window later: halves again, pause of one window without Retry-After
    assert limiter.rate == 1.25
    assert limiter.delay() == pytest.approx(1.0)


async def test_rate_floor_and_slow_rates_stretch_the_window() -> None:
    clock = FakeClock(0.0)
    limiter = WindowLimiter(2, clock, adapt=Adapt(min_rate=0.5))
    for _ in range(4):
        await clock.advance(1.0)
        limiter.on_throttled(0.0)
    assert limiter.rate == 0.5
    times = await grant_times(limiter, clock, [clock.now()] * 3)
    # one start per window / rate = 2.1 s
    assert times[1] - times[0] == pytest.approx(2.1)
    assert times[2] - times[1] == pytest.approx(2.1)


async def test_slow_additive_recovery_with_a_memory_of_the_refused_rate() -> None:
    clock = FakeClock(0.0)
    a = Adapt(quiet=10.0, step=0.5, forget=300.0)
    limiter = WindowLimiter(5, clock, adapt=a)
    limiter.on_throttled(None)
    assert limiter.rate == 2.5
    await clock.advance(9.9)
    limiter.delay()
    assert limiter.rate == 2.5  # not before a quiet period
    await clock.advance(0.2)
    limiter.delay()
    assert limiter.rate == 3.0
    await clock.advance(100.0)
    limiter.delay()
    assert limiter.rate == 4.5  # capped one step below the rate that was refused (5)
    await clock.advance(200.0)
    limiter.delay()
    assert limiter.rate == 5.0  # after a long quiet spell the refused rate is forgotten
    assert limiter.configured == 5.0


async def test_limit_four_times_too_high_costs_a_few_429s() -> None:
    """A server allowing 5 per (strict) second, a limiter configured for 20, ten minutes of demand."""
    clock = FakeClock(0.0)
    limiter = WindowLimiter(20, clock)
    accepted: deque[float] = deque()
    counts = {"ok": 0, "refused": 0}

    async def submitter() -> None:
        while clock.now() < 600.0:
            await limiter.acquire()
            now = clock.now()
            while accepted and accepted[0] <= now - 1.0:
                accepted.popleft()
            if len(accepted) >= 5:
                counts["refused"] += 1
                limiter.on_throttled(None)
            else:
                accepted.append(now)
                counts["ok"] += 1

    task = asyncio.create_task(submitter())
    await clock.run_until_idle()
    assert task.done()
    ok, refused = counts["ok"], counts["refused"]
    assert refused <= 25, refused
    assert ok >= 0.75 * 5 * 600, ok  # and most of the real capacity is used
    assert 3.0 <= limiter.rate <= 6.5


def test_bad_arguments() -> None:
    clock = FakeClock()
    with pytest.raises(ValueError):
        WindowLimiter(0, clock)
    with pytest.raises(ValueError):
        WindowLimiter(5, clock, window=0)
    with pytest.raises(ValueError):
        InFlight(0, clock)


# ------------------------------------------------------------------------------------------- in flight


async def test_in_flight_caps_and_wakes_in_order() -> None:
    clock = FakeClock(0.0)
    cap = InFlight(2, clock)
    await cap.acquire()
    await cap.acquire()
    assert cap.held == 2 and not cap.try_acquire()
    got: list[int] = []

    async def waiter(i: int) -> None:
        await cap.acquire()
        got.append(i)

    tasks = [asyncio.create_task(waiter(i)) for i in range(2)]
    await clock.settle()
    assert got == []
    await cap.release()
    await clock.settle()
    assert got == [0]
    await cap.release()
    await clock.settle()
    assert got == [0, 1]
    assert all(t.done() for t in tasks)
    assert cap.held == 2


async def test_in_flight_release_without_acquire_is_a_bug() -> None:
    cap = InFlight(1, FakeClock())
    with pytest.raises(RuntimeError):
        await cap.release()


async def test_in_flight_adopt_goes_beyond_the_cap() -> None:
    cap = InFlight(1, FakeClock())
    assert cap.try_acquire()
    cap.adopt()
    assert cap.held == 2 and not cap.try_acquire()


async def test_in_flight_lowers_on_concurrency_429_and_recovers_slowly() -> None:
    clock = FakeClock(0.0)
    cap = InFlight(5, clock, quiet=120.0)
    for _ in range(4):
        await cap.acquire()
    # the 4th create was refused with Throttling.Concurrency: the server holds 3 of ours (and maybe others)
    cap.on_throttled()
    assert cap.limit == 3 and cap.throttles == 1
    await cap.release()  # the refused one gives its slot back
    assert not cap.try_acquire()
    await clock.advance(119.0)
    assert cap.limit == 3
    await clock.advance(2.0)
    assert cap.limit == 4
    assert cap.try_acquire()
    await clock.advance(1000.0)
    assert cap.limit == 5 == cap.configured
    cap2 = InFlight(2, clock)
    await cap2.acquire()
    cap2.on_throttled()
    assert cap2.limit == 1  # never below one


async def test_in_flight_wake_lets_waiters_use_a_recovered_cap() -> None:
    clock = FakeClock(0.0)
    cap = InFlight(2, clock, quiet=10.0)
    await cap.acquire()
    await cap.acquire()
    cap.on_throttled()
    await cap.release()
    waiter = asyncio.create_task(cap.acquire())
    await clock.settle()
    assert not waiter.done()
    await clock.advance(11.0)
    await cap.wake()
    await clock.settle()
    assert waiter.done() and cap.held == 2


# ------------------------------------------------------------------------------------------- registry


def test_limits_defaults_per_model_and_aliases() -> None:
    limits = Limits(FakeClock())
    assert limits.submit("wan2.6-t2v").configured == 5
    assert limits.in_flight("wan2.6-t2v").configured == 5
    assert limits.submit("wan2.2-t2v-plus").configured == 2
    assert limits.in_flight("wan2.1-t2v-turbo").configured == 2
    assert limits.submit("wanx2.1-t2v-turbo") is limits.submit("wan2.1-t2v-turbo")
    assert limits.submit("wan2.6-t2v") is not limits.submit("wan2.5-t2v-preview")
    assert limits.query.configured == 10.0  # half of the account's 20 QPS
    with pytest.raises(KeyError):
        limits.submit("wan9-t2v")


def test_limits_overrides() -> None:
    limits = Limits(FakeClock(), qps=3, in_flight=8, query_share=0.25)
    assert limits.submit("wan2.6-t2v").configured == 3
    assert limits.in_flight("wan2.2-t2v-plus").configured == 8
    assert limits.query.configured == 5.0
    assert Limits(FakeClock(), query_qps=18).query.configured == 18.0
    assert isinstance(Limits().clock, RealClock)


async def test_a_cancelled_waiter_takes_no_start() -> None:
    clock = FakeClock(0.0)
    limiter = WindowLimiter(1, clock, margin=0.0, min_gap=0.0)
    await limiter.acquire()  # the window is now full until t = 1
    waiter = asyncio.create_task(limiter.acquire())
    await clock.settle()
    waiter.cancel()
    await clock.settle()
    assert waiter.cancelled()
    times = await grant_times(limiter, clock, [0.5])
    assert times == [pytest.approx(1.0)]  # the next caller gets the slot the cancelled one waited for


async def test_scattered_query_429s_slow_polling_a_little_and_briefly() -> None:
    clock = FakeClock(0.0)
    limits = Limits(clock)
    for _ in range(4):  # four 429s in four different windows
        limits.query.on_throttled()
        await clock.advance(2.0)
    assert limits.query.rate >= 3.0  # 10 * 0.75**4 = 3.2; halving would give 0.625
    await clock.advance(60.0)
    limits.query.delay()  # recovery is computed on use
    assert limits.query.rate >= 9.0
    submit = limits.submit("wan2.6-t2v")
    submit.on_throttled()
    assert submit.rate == 2.5  # submissions still halve: a 429 there is the quota speaking
