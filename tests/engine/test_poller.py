"""The poll schedule: intervals, learning, detection delay, budget spreading, stall flag."""

from __future__ import annotations

import random
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.engine.poller import FINAL_STATUSES, DurationStats, Expectation, PollConfig, PollSchedule


class ManualClock:
    """A clock whose time the test sets directly (the schedule never sleeps)."""

    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:  # pragma: no cover - never used by the schedule
        self.t += seconds


def test_final_statuses() -> None:
    assert frozenset({"SUCCEEDED", "FAILED", "CANCELED", "UNKNOWN"}) == FINAL_STATUSES


# ------------------------------------------------------------------------------------------- intervals


def test_interval_waits_for_the_early_quantile_then_tightens() -> None:
    s = PollSchedule(ManualClock())
    exp = s.expectation("wan2.6-t2v")
    assert exp == Expectation(early=60.0, typical=180.0, late=300.0)  # the prior from TYPICAL_TASK_SECONDS
    assert s.interval("wan2.6-t2v", 0.0) == 30.0  # no question at second 3 of a 3-minute task
    assert s.interval("wan2.6-t2v", 45.0) == 15.0  # wake right at the early quantile
    assert s.interval("wan2.6-t2v", 60.0) == pytest.approx(1.2)  # 2 % of elapsed
    assert s.interval("wan2.6-t2v", 180.0) == pytest.approx(3.6)
    assert s.interval("wan2.6-t2v", 10_000.0) == 30.0  # bounded by max_interval
    tight = PollSchedule(ManualClock(), PollConfig(min_interval=2.0))
    assert tight.interval("m", 60.0) == 2.0  # bounded by min_interval


def test_expected_task_time_override() -> None:
    s = PollSchedule(ManualClock(), PollConfig(expected_task_time=40.0))
    assert s.expectation("any") == Expectation(early=20.0, typical=40.0, late=60.0)
    assert s.interval("any", 0.0) == 20.0


def test_learning_replaces_the_prior_after_enough_samples() -> None:
    s = PollSchedule(ManualClock(), PollConfig(min_samples=5))
    for seconds in (20.0, 22.0, 25.0, 30.0):
        s.record_completion("wan2.1-t2v-turbo", seconds)
    assert s.expectation("wan2.1-t2v-turbo").early == 60.0  # 4 samples: still the prior
    s.record_completion("wan2.1-t2v-turbo", 40.0)
    exp = s.expectation("wan2.1-t2v-turbo")
    assert exp.early == pytest.approx(0.9 * 20.0)
    assert exp.typical == 25.0 and exp.late == 40.0
    assert s.expectation("wan2.6-t2v").early == 60.0  # per model


def test_duration_stats_quantiles_and_bad_values() -> None:
    st = DurationStats(size=4)
    assert st.quantile("m", 0.5) is None
    for x in (5.0, 1.0, 3.0, float("nan"), -2.0, 0.0, 4.0, 2.0):
        st.add("m", x)
    assert st.count("m") == 4  # bounded, newest kept: 1, 3, 4, 2
    assert st.quantile("m", 0.0) == 1.0
    assert st.quantile("m", 0.5) == 2.0
    assert st.quantile("m", 1.0) == 4.0


# ------------------------------------------------------------------------------------------- detection delay


def simulate(durations: list[float], config: PollConfig) -> tuple[list[float], list[int]]:
    """Run each task alone through one schedule (which learns as it goes); detection delay / duration."""
    clock = ManualClock()
    s = PollSchedule(clock, config)
    ratios, polls = [], []
    for n, duration in enumerate(durations):
        start = clock.t
        task = f"t{n}"
        s.add(task, "wan2.6-t2v", start)
        count = 0
        while task in s:
            wake = s.next_wakeup()
            assert wake is not None
            clock.t = wake
            for tid in s.due():
                count += 1
                done = clock.t - start >= duration
                s.observe(tid, "SUCCEEDED" if done else "RUNNING", clock.t)
                if done:
                    ratios.append((clock.t - start - duration) / duration)
        polls.append(count)
    return ratios, polls


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def test_detection_delay_p95_within_two_percent_of_task_time() -> None:
    rng = random.Random(7)
    durations = [rng.uniform(60.0, 300.0) for _ in range(400)]
    ratios, polls = simulate(durations, PollConfig(budget_qps=1e9, burst=1e9))
    assert p95(ratios) <= 0.02
    assert max(ratios) <= 0.5
    assert statistics.mean(polls) < 100  # ≈ ln(300/60) / 0.02 at worst, plus the waits before


def test_learning_fixes_a_prior_that_is_too_slow() -> None:
    rng = random.Random(3)
    durations = [rng.uniform(15.0, 30.0) for _ in range(300)]  # far faster than the 1–5 min prior
    ratios, _ = simulate(durations, PollConfig(budget_qps=1e9, burst=1e9, min_interval=0.25))
    assert max(ratios[:5]) > 0.2  # the first tasks are seen late (the prior waits until 30 s) …
    assert p95(ratios) <= 0.02  # … but the schedule learns and the p95 holds


# ------------------------------------------------------------------------------------------- budget


def test_budget_spreads_a_crowd_in_due_order() -> None:
    clock = ManualClock(0.0)
    s = PollSchedule(clock, PollConfig(budget_qps=8.0, burst=4.0))
    for i in range(40):
        s.add(f"t{i:02d}", "wan2.6-t2v", -100.0 - i * 0.01)  # all long running, all due now-ish
    clock.t = 5.0
    handed: list[tuple[float, str]] = []
    first = s.due()
    assert len(first) == 4  # the burst
    handed += [(clock.t, t) for t in first]
    while len(handed) < 40:
        wake = s.next_wakeup()
        assert wake is not None and wake > clock.t - 1e-9
        clock.t = wake
        got = s.due()
        assert got, "next_wakeup promised work"
        handed += [(clock.t, t) for t in got]
    # every task exactly once, earliest due first (the youngest: 2 % of a shorter age), within the budget
    ids = [t for _, t in handed]
    assert sorted(ids) == sorted(f"t{i:02d}" for i in range(40))
    assert ids == sorted(ids)
    times = [t for t, _ in handed]
    span = times[-1] - times[0]
    assert span == pytest.approx((40 - 4) / 8.0)
    for start in times:
        assert sum(1 for t in times if start <= t < start + 1.0) <= 8 + 4


def test_outstanding_tasks_are_not_handed_out_twice() -> None:
    clock = ManualClock(0.0)
    s = PollSchedule(clock)
    s.add("a", "m", 0.0)
    clock.t = 100.0
    assert s.due() == ["a"]
    clock.t = 200.0
    assert s.due() == []  # no answer yet
    assert s.next_wakeup() is None
    s.observe("a", "RUNNING", 200.0)
    assert s.next_wakeup() == pytest.approx(200.0 + 0.02 * 200.0)


def test_poll_failed_reschedules() -> None:
    clock = ManualClock(0.0)
    s = PollSchedule(clock)
    s.add("a", "m", 0.0)
    clock.t = 100.0
    assert s.due() == ["a"]
    s.poll_failed("a", delay=7.0)
    assert s.next_wakeup() == pytest.approx(107.0)
    assert s.due() == []  # not before the delay
    s.poll_failed("a")
    assert s.next_wakeup() == pytest.approx(100.0 + 0.02 * 100.0)
    s.poll_failed("nope")  # unknown ids are ignored


# ------------------------------------------------------------------------------------------- lifecycle


def test_final_states_remove_and_success_is_learned() -> None:
    clock = ManualClock(0.0)
    s = PollSchedule(clock, PollConfig(min_samples=1))
    for i, status in enumerate(("SUCCEEDED", "FAILED", "CANCELED", "UNKNOWN")):
        s.add(f"t{i}", "m", 0.0)
        assert s.status(f"t{i}") == "PENDING"
        assert s.observe(f"t{i}", status, 50.0) is False
        assert f"t{i}" not in s
    assert len(s) == 0 and s.next_wakeup() is None
    assert s.expectation("m").typical == 50.0  # only the SUCCEEDED one was recorded
    s.add("x", "m", 0.0)
    s.observe("x", "SUCCEEDED", 999.0, seconds=40.0)  # server-side times win when given
    assert s.expectation("m").typical in (40.0, 50.0)
    assert s.observe("gone", "RUNNING") is False


def test_remove_while_outstanding() -> None:
    clock = ManualClock(0.0)
    s = PollSchedule(clock)
    s.add("a", "m", 0.0)
    clock.t = 100.0
    assert s.due() == ["a"]
    s.remove("a")
    assert s.observe("a", "RUNNING", 101.0) is False
    assert "a" not in s and s.due() == [] and s.next_wakeup() is None


def test_next_delay_uses_the_task_age() -> None:
    clock = ManualClock(1000.0)
    s = PollSchedule(clock)
    s.add("a", "m", 800.0)
    assert s.next_delay("a") == pytest.approx(0.02 * 200.0)
    assert s.next_wakeup() == pytest.approx(1004.0)


def test_stall_is_flagged_once() -> None:
    clock = ManualClock(0.0)
    s = PollSchedule(clock, PollConfig(stall_factor=2.0))
    s.add("a", "m", 0.0)
    assert s.observe("a", "PENDING", 599.0) is False  # late = 300 s, stalled beyond 600 s
    assert s.stalled() == []
    assert s.observe("a", "PENDING", 601.0) is True
    assert s.observe("a", "RUNNING", 700.0) is False  # once
    assert s.stalled() == ["a"]
    assert s.status("a") == "RUNNING"
    assert s.next_wakeup() == pytest.approx(700.0 + 14.0)  # still polled


def test_re_adding_a_task_keeps_one_schedule() -> None:
    clock = ManualClock(0.0)
    s = PollSchedule(clock)
    s.add("a", "m", -200.0)  # first poll at 4 s
    s.add("a", "m", 0.0)  # added again as a fresh task: first poll at 30 s; the 4 s entry must be dead
    assert len(s) == 1
    clock.t = 4.0
    assert s.due() == []
    assert s.next_wakeup() == pytest.approx(30.0)
    clock.t = 30.0
    assert s.due() == ["a"]


@settings(max_examples=60, deadline=None)
@given(
    adds=st.lists(
        st.tuples(st.floats(min_value=0.0, max_value=30.0), st.floats(min_value=0.0, max_value=400.0)),
        min_size=1,
        max_size=60,
    ),
    budget=st.sampled_from([1.0, 4.0, 8.0]),
)
def test_property_budget_holds_and_every_task_is_served(adds: list[tuple[float, float]], budget: float) -> None:
    """Tasks added at arbitrary times with arbitrary ages: never more than budget + burst polls in any
    second, and every task keeps being polled until it is final."""
    clock = ManualClock(0.0)
    burst = 2.0
    s = PollSchedule(clock, PollConfig(budget_qps=budget, burst=burst, max_interval=10.0))
    pending = sorted((at, age, f"t{i}") for i, (at, age) in enumerate(adds))
    handed: list[float] = []
    served: dict[str, int] = {}
    steps = 0
    while clock.t < 120.0:
        steps += 1
        assert steps < 20_000, "the schedule stopped advancing (a wakeup that never comes due)"
        while pending and pending[0][0] <= clock.t:
            at, age, tid = pending.pop(0)
            s.add(tid, "m", at - age)
        for tid in s.due():
            handed.append(clock.t)
            served[tid] = served.get(tid, 0) + 1
            s.observe(tid, "RUNNING", clock.t)
        wake = s.next_wakeup()
        nxt = min([w for w in (wake, pending[0][0] if pending else None) if w is not None], default=120.0)
        clock.t = max(clock.t, nxt)
    for start in handed:
        assert sum(1 for t in handed if start <= t < start + 1.0) <= budget + burst
    assert set(served) == {f"t{i}" for i in range(len(adds))}


def test_a_tight_spread_starts_dense_polling_at_the_fastest_task_once_well_sampled() -> None:
    clock = ManualClock()
    s = PollSchedule(clock)
    for i in range(5):  # durations seen by polls only: they include the polls' own lateness
        s.add(f"t{i}", "m", clock.t)
        s.observe(f"t{i}", "SUCCEEDED", clock.t + 100.0)
    assert s.expectation("m").early == pytest.approx(90.0)  # few samples: the usual 10 % margin
    for i in range(15):
        s.add(f"u{i}", "m", clock.t)
        s.observe(f"u{i}", "SUCCEEDED", clock.t + 100.0)
    assert s.expectation("m").early == pytest.approx(100.0)  # 20 alike: no polls spent before the end
    exact = PollSchedule(ManualClock())
    for _ in range(5):  # the server's own times (submit → end): no lateness in them, trusted from 5 on
        exact.record_completion("m", 100.0)
    assert exact.expectation("m").early == pytest.approx(100.0)
    exact.record_completion("m", 80.0)
    assert exact.expectation("m").early == pytest.approx(72.0)  # q05 = 80, q50 = 100: 10 % below q05 wins
    wide = PollSchedule(ManualClock())
    for d in range(20, 220, 10):
        wide.record_completion("m", float(d))
    assert wide.expectation("m").early == pytest.approx(0.9 * 20.0)  # a wide spread keeps the margin
