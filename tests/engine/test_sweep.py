"""Poll sweeps: one list request for every task known RUNNING (pure schedule logic, manual clock)."""

from __future__ import annotations

import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from runner.engine.poll_rule import PollConfig
from runner.engine.poller import PollSchedule

from .test_poller import ManualClock

M = "wan2.6-t2v"


def sweeping(clock: ManualClock, **kw: float) -> PollSchedule:
    cfg = PollConfig(expected_task_time=10.0, min_interval=0.1, sweep_qps=4.0, **kw)  # type: ignore[arg-type]
    return PollSchedule(clock, cfg)


def running(s: PollSchedule, clock: ManualClock, *ids: str) -> None:
    """Add tasks and let one poll each see them RUNNING (how a task comes to be swept)."""
    for task_id in ids:
        s.add(task_id, M, submitted_at=0.0)
    clock.t = 5.0  # the prior's early quantile (half of the expected 10 s)
    assert sorted(s.due()) == sorted(ids)
    for task_id in ids:
        s.observe(task_id, "RUNNING")


def test_off_by_default_and_a_lone_running_task_is_polled_on_its_own() -> None:
    clock = ManualClock()
    plain = PollSchedule(clock, PollConfig(expected_task_time=10.0, min_interval=0.1))
    running(plain, clock, "a", "b")
    clock.t = 6.0
    assert plain.sweep() is None and sorted(plain.due()) == ["a", "b"]

    clock = ManualClock()
    s = sweeping(clock)
    running(s, clock, "a")
    clock.t = 6.0
    assert s.sweep() is None  # one task: a query tells as much as a list, and the outcome too
    assert s.due() == ["a"]


def test_one_sweep_covers_every_running_task_and_reschedules_them() -> None:
    clock = ManualClock()
    s = sweeping(clock)
    running(s, clock, "a", "b", "c")
    assert s.sweep() is None  # nobody is due yet
    wake = s.next_wakeup()
    assert wake is not None and math.isclose(wake, 5.1)  # 2 % of 5 s, bounded by min_interval 0.1
    clock.t = wake
    assert s.due() == []  # RUNNING tasks are not queried one by one while sweeping
    covered = s.sweep()
    assert covered == frozenset({"a", "b", "c"})
    assert s.sweep() is None  # one sweep at a time
    assert s.next_wakeup() is None  # and no busy wakeups while it is out
    result = s.sweep_done(covered, {"a", "b", "c", "not-ours"}, complete=True)
    assert result.running == [] and result.stalled == [] and result.ended == 0
    wake = s.next_wakeup()
    assert wake is not None and wake > clock.t


def test_a_task_missing_from_a_complete_answer_is_queried_first() -> None:
    clock = ManualClock()
    s = sweeping(clock)
    running(s, clock, "a", "b", "c")
    s.add("p", M, submitted_at=0.0)  # PENDING, due now: an ordinary poll
    clock.t = 5.2
    assert s.due() == ["p"]
    s.poll_failed("p", 0.0)  # due again right away
    clock.t = 5.5
    covered = s.sweep()
    assert covered is not None
    result = s.sweep_done(covered, {"a", "c"}, complete=True)
    assert result.ended == 1
    assert s.due()[0] == "b"  # the ended task goes before the task that was due earlier
    assert s.sweep() is None  # b is no longer swept (it is being queried); a and c are not due


def test_missing_from_an_incomplete_answer_goes_back_to_its_own_polls() -> None:
    clock = ManualClock()
    s = sweeping(clock)
    running(s, clock, "a", "b", "c")
    clock.t = 6.0
    covered = s.sweep()
    assert covered is not None
    result = s.sweep_done(covered, {"a", "c"}, complete=False)  # a page did not hold every RUNNING task
    assert result.ended == 0
    assert s.status("b") == "PENDING" and s.due() == ["b"]


def test_a_pending_task_the_list_shows_running_joins_the_sweeps() -> None:
    clock = ManualClock()
    s = sweeping(clock)
    running(s, clock, "a", "b")
    s.add("p", M, submitted_at=4.0)  # first poll far off (early quantile at 5 s of its own time)
    clock.t = 6.0
    covered = s.sweep()
    assert covered == frozenset({"a", "b"})
    result = s.sweep_done(covered, {"a", "b", "p"}, complete=True)
    assert result.running == ["p"] and s.status("p") == "RUNNING"
    clock.t = 7.0
    assert s.sweep() == frozenset({"a", "b", "p"})


def test_the_sweep_budget_holds() -> None:
    clock = ManualClock()
    s = sweeping(clock)  # 4 sweeps/s: one every 0.25 s
    running(s, clock, "a", "b")
    clock.t = 10.0  # long overdue
    covered = s.sweep()
    assert covered is not None
    s.sweep_done(covered, {"a", "b"}, complete=True, at=10.0)
    clock.t = 10.2  # due again (interval 0.2), but only 0.8 of a sweep token
    assert s.sweep() is None
    wake = s.next_wakeup()
    assert wake is not None and math.isclose(wake, 10.25)
    clock.t = 10.25
    assert s.sweep() is not None


def test_failed_sweeps_stop_sweeping_and_tasks_return_to_polls() -> None:
    clock = ManualClock()
    s = sweeping(clock)
    running(s, clock, "a", "b")
    for attempt in range(3):
        clock.t += 1.0
        covered = s.sweep()
        assert covered is not None, attempt
        assert s.sweep_failed() is (attempt == 2)
    assert not s.sweeping
    assert sorted(s.due()) == ["a", "b"]
    assert s.sweep() is None


def test_a_success_resets_the_failure_count() -> None:
    clock = ManualClock()
    s = sweeping(clock)
    running(s, clock, "a", "b")
    for fail in (True, True, False, True, True):
        clock.t += 1.0
        covered = s.sweep()
        assert covered is not None
        if fail:
            assert not s.sweep_failed()
        else:
            s.sweep_done(covered, {"a", "b"}, complete=True)
    assert s.sweeping


def simulate(durations: list[float], concurrency: int, seed: int) -> tuple[list[float], int, int, float]:
    """Run tasks ``concurrency`` at a time against a schedule with sweeps; each is answered by the truth.

    Returns the detection delays, the GETs and the sweeps sent, and the end time.
    """
    clock = ManualClock()
    cfg = PollConfig(min_interval=0.01, budget_qps=8.0, sweep_qps=8.0, expected_task_time=60.0, max_interval=5.0)
    s = PollSchedule(clock, cfg)
    rng = random.Random(seed)
    todo = list(enumerate(durations))
    ends: dict[str, float] = {}
    took: dict[str, float] = {}
    delays: list[float] = []
    gets = sweeps = 0

    def fill() -> None:
        while todo and len(s) < concurrency:
            i, d = todo.pop()
            ends[f"t{i}"] = clock.t + d
            took[f"t{i}"] = d
            s.add(f"t{i}", "m", submitted_at=clock.t)

    fill()
    while len(s):
        for task_id in s.due():
            gets += 1
            if clock.t >= ends[task_id]:
                delays.append(clock.t - ends[task_id])
                s.observe(task_id, "SUCCEEDED", seconds=took[task_id])
            else:
                s.observe(task_id, "RUNNING" if rng.random() < 0.9 else "PENDING")
        covered = s.sweep()
        if covered is not None:
            sweeps += 1
            s.sweep_done(covered, {t for t in ends if t in s and clock.t < ends[t]}, complete=True)
        fill()
        if not len(s):
            break
        wake = s.next_wakeup()
        assert wake is not None and wake >= clock.t
        clock.t = max(wake, clock.t + 1e-6)
    return delays, gets, sweeps, clock.t


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(min_value=1.0, max_value=200.0), min_size=1, max_size=40),
    st.integers(min_value=1, max_value=6),
    st.integers(min_value=0, max_value=2**16),
)
def test_property_every_task_is_seen_and_both_budgets_hold(durations: list[float], c: int, seed: int) -> None:
    delays, gets, sweeps, end = simulate(durations, c, seed)
    assert len(delays) == len(durations)  # every task's end was seen, none twice
    assert sweeps <= 8.0 * end + 1  # sweep budget (one token of burst)
    assert gets <= 8.0 * end + 4  # poll budget (burst 4)


def test_sweeps_cut_queries_per_task() -> None:
    """Five tasks in flight with 1-5 minute times: sweeps need far fewer requests per task than polls."""
    rng = random.Random(7)
    durations = [rng.uniform(60.0, 300.0) for _ in range(100)]
    delays, gets, sweeps, _ = simulate(durations, 5, 1)
    assert len(delays) == 100
    per_task = (gets + sweeps) / len(durations)
    clock = ManualClock()
    assert per_task < 0.5 * math.log(300 / 60) / PollSchedule(clock).config.fraction  # ≈ 80 polls a task alone
    assert sorted(delays)[94] <= 0.02 * 300  # p95 within 2 % of the longest task time


def test_a_running_task_is_polled_on_its_own_only_while_it_is_the_only_one_running() -> None:
    clock = ManualClock()
    s = sweeping(clock)
    s.add("a", M, submitted_at=0.0)
    s.add("b", M, submitted_at=4.0)  # 1 s old at t = 5: waits for the early quantile, 5 s of its own time (t = 9)
    clock.t = 5.0
    assert s.due() == ["a"]
    s.observe("a", "RUNNING")  # next poll at 5.1 (2 % of 5 s)
    polls = 0
    while (wake := s.next_wakeup()) is not None and wake < 9.0:
        clock.t = wake
        assert s.sweep() is None and s.due() == ["a"]  # the only task known RUNNING: a query tells as much
        s.observe("a", "RUNNING")
        polls += 1
    assert polls > 10
    clock.t = 9.0
    got = s.due()
    assert "b" in got  # still PENDING as far as we know: polled on its own
    for task_id in got:
        s.observe(task_id, "RUNNING")
    wake = s.next_wakeup()
    assert wake is not None
    clock.t = wake
    assert s.due() == [] and s.sweep() == frozenset({"a", "b"})  # two RUNNING: one request looks at both


def test_a_list_that_shows_running_tasks_as_ended_turns_sweeping_off() -> None:
    clock = ManualClock()
    s = sweeping(clock)
    running(s, clock, "a", "b", "c", "d")
    for lagging in ("a", "b", "c"):
        clock.t += 1.0
        covered = s.sweep()
        assert covered is not None and s.sweeping
        s.sweep_done(covered, set(covered) - {lagging}, complete=True)
        assert s.due() == [lagging]
        s.observe(lagging, "RUNNING")  # its query: not ended at all
    assert not s.sweeping  # three in a row
    clock.t += 10.0
    assert sorted(s.due()) == ["a", "b", "c", "d"]


def test_a_true_end_resets_the_count_of_false_ones() -> None:
    clock = ManualClock()
    s = sweeping(clock)
    running(s, clock, "a", "b", "c", "d")
    for task_id, final in (("a", False), ("b", False), ("c", True), ("d", False), ("a", False)):
        clock.t += 1.0
        covered = s.sweep()
        assert covered is not None
        s.sweep_done(covered, set(covered) - {task_id}, complete=True)
        assert s.due() == [task_id]
        s.observe(task_id, "SUCCEEDED" if final else "RUNNING")
    assert s.sweeping
