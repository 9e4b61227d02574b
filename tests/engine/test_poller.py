"""The poll schedule: intervals, learning, detection delay, budget spreading, stall flag."""

from __future__ import annotations

import random
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.engine.poll_rule import PollConfig
from runner.engine.poller import PollSchedule
from runner.engine.task_times import DurationStats, Expectation, Kind
from runner.engine.wire import TERMINAL_STATUSES as FINAL_STATUSES


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

M = "wan2.6-t2v"
K720_5 = Kind(M, "720P", 5)


def learned(s: PollSchedule, kind: Kind | str, durations: list[float]) -> PollSchedule:
    for d in durations:
        s.record_completion(kind, d)
    return s


#: Ages at which a task of a kind nothing is known of is asked: 1 s, then each time its age has grown 1.5 times.
GEOMETRIC = [1.5**k for k in range(12)]


def test_with_nothing_known_polls_follow_a_geometric_schedule() -> None:
    s = PollSchedule(ManualClock())
    assert s.expectation(K720_5) is None  # no built-in prior: nothing can make a run wait
    ages = [0.0]
    while ages[-1] < 200:
        ages.append(ages[-1] + s.interval(K720_5, ages[-1]))
    assert ages[1:13] == pytest.approx(GEOMETRIC)  # 1, 1.5, 2.25, 3.4, 5.1, … s
    assert ages[13] - ages[12] == 30.0  # capped: at most max_interval apart
    assert s.interval(K720_5, -3.0) == pytest.approx(4.0)  # submitted 3 s in the future (clock skew): 1 s after it


def test_a_task_not_looked_at_yet_is_asked_at_once_when_older_than_the_first_poll() -> None:
    clock = ManualClock(100.0)
    s = PollSchedule(clock)
    s.add("resumed", K720_5, submitted_at=40.0)  # from the ledger: 60 s old, never seen by this run
    s.add("new", K720_5, submitted_at=99.5)
    assert s.next_delay("resumed") == pytest.approx(30.0)  # after a look it would wait half its age (capped) …
    assert s.next_wakeup() == pytest.approx(100.0 + s.config.min_interval)  # … but nothing was seen of it
    clock.t = s.next_wakeup() or 0.0
    assert s.due() == ["resumed"]
    assert s.next_wakeup() == pytest.approx(100.5)  # the new one: 1 s after its submission


def test_interval_waits_for_the_early_quantile_then_tightens() -> None:
    s = learned(PollSchedule(ManualClock()), K720_5, [float(d) for d in range(60, 301, 4)])
    exp = s.expectation(K720_5)
    assert exp is not None and exp.sure and exp.early == pytest.approx(0.9 * 72.0) and exp.late == 288.0
    assert s.interval(K720_5, 0.0) == 30.0  # no question at second 3 of a 3-minute task
    assert s.interval(K720_5, 45.0) == pytest.approx(0.9 * 72.0 - 45.0)  # wake right at the early quantile
    assert s.interval(K720_5, 70.0) == pytest.approx(1.4)  # 2 % of elapsed
    assert s.interval(K720_5, 180.0) == pytest.approx(3.6)
    assert s.interval(K720_5, 10_000.0) == 30.0  # bounded by max_interval
    tight = learned(PollSchedule(ManualClock(), PollConfig(min_interval=2.0)), M, [60.0] * 5)
    assert tight.interval(M, 60.0) == 2.0  # bounded by min_interval


def test_expected_task_time_override() -> None:
    remembered = {K720_5: [(100.0, 1.0)] * 10}
    s = PollSchedule(ManualClock(), PollConfig(expected_task_time=40.0), remembered=remembered)
    assert s.expectation(K720_5) == Expectation(early=20.0, typical=40.0, late=60.0)  # the user's word wins …
    assert s.interval(K720_5, 0.0) == 20.0
    learned(s, K720_5, [10.0] * 5)
    exp = s.expectation(K720_5)
    assert exp is not None and exp.typical == 10.0  # … until this run has learned the kind


def test_learning_is_per_kind_and_a_kind_with_few_samples_leans_on_coarser_ones() -> None:
    s = PollSchedule(ManualClock(), PollConfig(min_samples=5))
    turbo = Kind("wan2.1-t2v-turbo", "480P", 5)
    learned(s, turbo, [20.0, 22.0, 25.0, 30.0])
    few = s.expectation(turbo)  # 4 samples: their quantiles, as a guess (hedged by the geometric schedule)
    assert few == Expectation(early=18.0, typical=22.0, late=30.0, sure=False)
    learned(s, turbo, [40.0])
    exp = s.expectation(turbo)
    assert exp is not None and exp.sure
    assert exp.early == pytest.approx(0.9 * 20.0) and exp.typical == 25.0 and exp.late == 40.0
    assert s.expectation(Kind(M, "720P", 5)) is None  # per model: nothing known of wan2.6
    # a new duration of a known model and tier: a guess from the coarser kind, hedged by the geometric schedule
    other = Kind("wan2.1-t2v-turbo", "480P", 10)
    guess = s.expectation(other)
    assert guess is not None and not guess.sure and guess.early == pytest.approx(0.5 * exp.early)
    assert s.interval(other, 0.0) == 1.0  # polled on the geometric schedule until the guess is due …
    assert s.interval(other, 4.0) == 2.0
    assert s.interval(other, 8.0) == pytest.approx(0.5 * exp.early - 8.0)  # … whichever comes first
    one = learned(PollSchedule(ManualClock()), Kind(M, "720P", 5), [100.0])
    guess = one.expectation(Kind(M, "1080P", 10))  # one sample of another tier: a guess from it
    assert guess is not None and not guess.sure and guess.early == 50.0


def test_remembered_times_are_a_guess_until_this_run_confirms_them() -> None:
    remembered = {K720_5: [(float(d), 0.9) for d in range(100, 200, 10)]}
    clock = ManualClock()
    s = PollSchedule(clock, remembered=remembered)
    exp = s.expectation(K720_5)
    assert exp is not None and not exp.sure and exp.early == pytest.approx(90.0)
    assert s.interval(K720_5, 0.0) == 1.0 and s.interval(K720_5, 32.0) == 16.0  # hedged: geometric until due
    assert s.interval(K720_5, 70.0) == pytest.approx(20.0)  # the guess is due before the geometric poll
    s.record_completion(K720_5, 130.0)  # agrees: the memory holds
    exp = s.expectation(K720_5)
    assert exp is not None and exp.sure and s.interval(K720_5, 32.0) == 30.0
    assert s.interval(K720_5, 60.0) == pytest.approx(30.0)  # no more geometric polls before early
    stale = PollSchedule(clock, remembered=remembered)
    stale.record_completion(K720_5, 20.0)  # tonight the host is 5 times faster: the memory is dropped
    exp = stale.expectation(K720_5)
    assert exp is not None and exp.early == 20.0 and exp.typical == 20.0  # this run's one sample decides
    assert stale.times.new_samples() == [(K720_5, 20.0)]


def test_old_memory_weighs_too_little_to_decide() -> None:
    s = PollSchedule(ManualClock(), remembered={K720_5: [(100.0, 0.1)] * 20})  # weight 2 < 5 samples
    assert s.expectation(K720_5) is None


def test_the_first_completion_of_a_kind_asks_the_rest_of_its_wave_at_once() -> None:
    clock = ManualClock()
    s = PollSchedule(clock, PollConfig(budget_qps=1e9, burst=1e9))
    for i in range(4):
        s.add(f"t{i}", K720_5, submitted_at=0.0)  # geometric: polled at 1, 1.5, 2.25, 3.375, 5.06 s
    s.add("first", K720_5, submitted_at=0.5)  # polled at 1.5, 2, 2.75, 3.875 s
    while clock.t < 3.875:
        wake = s.next_wakeup()
        assert wake is not None
        clock.t = wake
        for task_id in s.due():
            done = task_id == "first" and clock.t >= 3.875
            s.observe(task_id, "SUCCEEDED" if done else "RUNNING", seconds=3.3 if done else None)
    assert "first" not in s
    # the others are 3.875 s old and due at 5.06 s; a task of their kind took 3.3 s: dense polls from now on
    assert s.next_wakeup() == pytest.approx(3.875 + 0.02 * 3.875)
    guess = s.expectation(Kind(M, "1080P", 15))  # another kind of the model: a guess from the coarser kind
    assert guess is not None and not guess.sure and guess.early == pytest.approx(0.5 * 3.3)


def test_duration_stats_quantiles_and_bad_values() -> None:
    st = DurationStats(size=4)
    assert st.quantile("m", 0.5) is None
    for x in (5.0, 1.0, 3.0, float("nan"), -2.0, 0.0, 4.0, 2.0):
        st.add("m", x)
    assert st.count("m") == 4  # bounded, newest kept: 1, 3, 4, 2
    assert st.quantile("m", 0.0) == 1.0
    assert st.quantile("m", 0.5) == 2.0
    assert st.quantile("m", 1.0) == 4.0


def test_kinds() -> None:
    assert Kind.of(M, "1280*720", 5) == K720_5 and K720_5.exact
    assert K720_5.coarser() == (Kind(M, "720P"), Kind(M))
    assert Kind(M).coarser() == () and not Kind(M).exact
    assert str(K720_5) == "wan2.6-t2v|720P|5" and str(Kind(M)) == "wan2.6-t2v|-|-"
    assert Kind.of(M, "123*45", 5).tier is None


# ------------------------------------------------------------------------------------------- detection delay


def simulate(durations: list[float], config: PollConfig) -> tuple[list[float], list[int]]:
    """Run each task alone through one schedule (which learns as it goes, from the server's own times);
    detection delay / duration and polls per task."""
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
                s.observe(tid, "SUCCEEDED" if done else "RUNNING", clock.t, seconds=duration if done else None)
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


def test_learning_fixes_a_hint_that_is_too_slow() -> None:
    rng = random.Random(3)
    durations = [rng.uniform(15.0, 30.0) for _ in range(300)]  # far faster than the 3-minute hint
    config = PollConfig(budget_qps=1e9, burst=1e9, min_interval=0.25, expected_task_time=180.0)
    ratios, _ = simulate(durations, config)
    assert max(ratios[:5]) > 0.2  # the first tasks are seen late (the hint waits until 30 s) …
    assert p95(ratios) <= 0.02  # … but the schedule learns and the p95 holds


def test_with_nothing_known_a_fast_task_is_seen_fast() -> None:
    """No hint, no memory: the first task of a kind is seen at the next step of the geometric schedule (at most
    half its time late, or at the first poll, 1 s), in a dozen polls at most; from the first completion on, by
    what it showed."""
    cheap = PollConfig(budget_qps=1e9, burst=1e9)
    for duration in (0.5, 1.0, 3.0, 100.0):
        ratios, counts = simulate([duration], cheap)
        polls = next(i for i, age in enumerate(GEOMETRIC) if age >= duration) + 1 if duration < 60 else 13
        seen = GEOMETRIC[polls - 1] if polls <= len(GEOMETRIC) else 0.0
        assert counts == [polls]
        if duration < 60:  # seen at the first step at or past its end: at most half its time late (or at 1 s)
            assert ratios[0] * duration == pytest.approx(seen - duration)
            assert ratios[0] <= 0.5 + 1e-9 or seen == 1.0
        else:  # past 86 s the steps are 30 s apart (max_interval)
            assert ratios[0] * duration == pytest.approx(GEOMETRIC[-1] + 30.0 - duration)
    ratios, _ = simulate([100.0] * 6, cheap)
    assert max(ratios[1:]) <= 0.02


# ------------------------------------------------------------------------------------------- budget

#: The user's hint of 2-minute tasks: dense polling from 60 s, late = 180 s.
HINT = PollConfig(expected_task_time=120.0)


def test_budget_spreads_a_crowd_in_due_order() -> None:
    clock = ManualClock(0.0)
    s = PollSchedule(clock, PollConfig(budget_qps=8.0, burst=4.0, expected_task_time=120.0))
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
    s = PollSchedule(clock, HINT)
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
    s = PollSchedule(clock, HINT)
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
    s = PollSchedule(clock, PollConfig(min_samples=1, expected_task_time=120.0))
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
    s = PollSchedule(clock, HINT)
    s.add("a", "m", 0.0)
    clock.t = 100.0
    assert s.due() == ["a"]
    s.remove("a")
    assert s.observe("a", "RUNNING", 101.0) is False
    assert "a" not in s and s.due() == [] and s.next_wakeup() is None


def test_next_delay_uses_the_task_age() -> None:
    clock = ManualClock(1000.0)
    s = PollSchedule(clock, HINT)
    s.add("a", "m", 800.0)
    assert s.next_delay("a") == pytest.approx(0.02 * 200.0)
    assert s.next_wakeup() == pytest.approx(1004.0)


def test_stall_is_flagged_once() -> None:
    clock = ManualClock(0.0)
    s = PollSchedule(clock, PollConfig(stall_factor=2.0, expected_task_time=120.0))
    s.add("a", "m", 0.0)
    assert s.observe("a", "PENDING", 359.0) is False  # late = 180 s, stalled beyond 360 s
    assert s.stalled() == []
    assert s.observe("a", "PENDING", 361.0) is True
    assert s.observe("a", "RUNNING", 700.0) is False  # once
    assert s.stalled() == ["a"]
    assert s.status("a") == "RUNNING"
    assert s.next_wakeup() == pytest.approx(700.0 + 14.0)  # still polled


def test_re_adding_a_task_keeps_one_schedule() -> None:
    clock = ManualClock(0.0)
    s = PollSchedule(clock, HINT)
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
