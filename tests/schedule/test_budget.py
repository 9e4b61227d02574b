"""The money guard and the daily spend ledger, without the network: the cap invariant under concurrency
(hypothesis), settlement and release rules, day boundaries in an explicit timezone with an injected clock."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.errors import ConfigError
from runner.schedule.budget import EPS, MoneyGuard, Snapshot, caps_lines
from runner.schedule.spend import DayClock, SpendLedger, default_state_dir, parse_timezone

SHANGHAI = ZoneInfo("Asia/Shanghai")


class FakeClock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def at(text: str, tz: Any = SHANGHAI) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=tz).timestamp()


@dataclass
class View:
    """A stand-in for JobState: what the guard reads."""

    state: str = "pending"
    cost: float = 1.0
    billed_cost: float = 1.0
    usage: dict[str, Any] | None = None


# ---------------------------------------------------------------------------------------------- invariant

JOB = st.tuples(
    st.integers(min_value=1, max_value=400),  # cost in cents
    st.sampled_from(["succeeded", "failed", "canceled", "expired", "refused"]),
    st.integers(min_value=0, max_value=4),  # yields before the outcome (the interleaving)
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(jobs=st.lists(JOB, min_size=1, max_size=25), cap_cents=st.integers(min_value=0, max_value=3000))
def test_reserved_plus_settled_never_exceeds_the_cap_under_concurrency(
    jobs: list[tuple[int, str, int]], cap_cents: int
) -> None:
    cap = cap_cents / 100
    seen: list[Snapshot] = []
    guard = MoneyGuard(cap=cap, on_change=seen.append)
    accepted: list[float] = []

    async def one(i: int, cost: float, outcome: str, yields: int) -> None:
        for _ in range(i % 3):
            await asyncio.sleep(0)
        if not guard.reserve(f"j{i}", cost):
            return
        accepted.append(cost)
        for _ in range(yields):
            await asyncio.sleep(0)
        view = View(state=outcome, cost=cost, billed_cost=cost)
        if outcome == "refused":
            guard.observe("failed", f"j{i}", view, {"stage": "submit", "code": "InvalidParameter", "kind": "refused"})
        elif outcome == "failed":
            guard.observe("failed", f"j{i}", view, {"stage": "task", "code": "InternalError", "kind": "task"})
        else:
            guard.observe(outcome, f"j{i}", view, {})

    async def main() -> None:
        async with asyncio.TaskGroup() as tg:
            for i, (cents, outcome, yields) in enumerate(jobs):
                tg.create_task(one(i, cents / 100, outcome, yields))

    asyncio.run(main())
    for snap in seen:  # every moment the guard's money changed
        assert snap.committed <= cap + EPS, snap
    final = guard.snapshot()
    assert final.reserved == 0  # every reservation ended in a settlement or a release
    billed = sum(c / 100 for c, o, _ in jobs if o in ("succeeded", "expired"))
    assert final.settled <= min(cap, billed) + EPS
    for _job, why in guard.refusals:  # a refusal is only ever for a job that did not fit at that moment
        assert why.committed + why.needed > why.limit + EPS / 2


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(costs=st.lists(st.integers(min_value=1, max_value=300), min_size=2, max_size=30),
       daily_cents=st.integers(min_value=0, max_value=2500))  # fmt: skip
def test_two_runs_in_threads_never_exceed_the_daily_cap(
    costs: list[int], daily_cents: int, tmp_path_factory: Any
) -> None:
    daily = daily_cents / 100
    state = tmp_path_factory.mktemp("state")
    days = DayClock(SHANGHAI, FakeClock(at("2026-12-02T12:00:00")))
    moments: list[float] = []
    lock = threading.Lock()

    def watch(snap: Snapshot) -> None:
        with lock:
            moments.append(snap.daily_total or 0.0)

    guards = [
        MoneyGuard(
            daily_cap=daily, spend=SpendLedger(state, days, durable=False), scope=state / f"out{n}", on_change=watch
        )
        for n in range(2)
    ]

    def run(n: int) -> None:
        for i, cents in enumerate(costs):
            g = guards[n]
            if g.reserve(f"j{i}", cents / 100) and i % 3 == 0:
                g.release(f"j{i}")  # some tasks fail: the money comes back
            elif i % 3 == 1:
                g.settle(f"j{i}", cents / 100)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(m <= daily + EPS for m in moments)
    assert SpendLedger(state, days).totals().total <= daily + EPS


# ---------------------------------------------------------------------------------------------- rules


def test_settle_from_usage_release_on_failure_and_expired_is_paid() -> None:
    guard = MoneyGuard(cap=10.0)
    assert guard.reserve("a", 3.0) and guard.reserve("b", 3.0) and guard.reserve("c", 3.0)
    assert not guard.reserve("d", 3.0)  # 9 + 3 > 10
    guard.observe("succeeded", "a", View(billed_cost=2.5), {})  # usage said fewer seconds
    guard.observe("failed", "b", View(), {"stage": "task", "code": "InternalError", "kind": "task"})
    guard.observe("expired", "c", View(), {})
    snap = guard.snapshot()
    assert snap.reserved == 0 and snap.settled == pytest.approx(5.5)
    assert guard.reserve("d", 3.0) and guard.reserve("e", 1.5)
    assert not guard.reserve("f", 0.01)
    message = guard.stop_message(left_jobs=1)
    assert "run budget 10.00 CNY reached" in message and "0.00 left" in message and "1 job(s)" in message


def test_a_reservation_is_idempotent_and_an_unreconciled_create_keeps_it() -> None:
    guard = MoneyGuard(cap=5.0)
    assert guard.reserve("a", 4.0) and guard.reserve("a", 4.0)  # the resend after a lost answer
    assert guard.snapshot().reserved == 4.0
    guard.observe("failed", "a", View(), {"stage": "submit", "code": "Unreconciled"})
    assert guard.snapshot().reserved == 4.0, "a create that may have made a task stays counted"
    guard.observe("canceled", "a", View(), {})
    assert guard.snapshot().reserved == 0


def test_download_failure_after_success_stays_billed() -> None:
    guard = MoneyGuard(cap=5.0)
    guard.reserve("a", 2.0)
    guard.observe("succeeded", "a", View(billed_cost=2.0), {})
    guard.observe("failed", "a", View(), {"stage": "download", "code": "VerifyError", "kind": "download"})
    assert guard.snapshot().settled == 2.0


# ---------------------------------------------------------------------------------------------- daily ledger


def test_day_boundary_is_midnight_in_the_given_timezone(tmp_path: Path) -> None:
    clock = FakeClock(at("2026-12-02T23:59:30"))
    days = DayClock(SHANGHAI, clock)
    spend = SpendLedger(tmp_path, days)
    guard = MoneyGuard(daily_cap=5.0, spend=spend, scope=tmp_path / "out")
    assert guard.reserve("a", 4.0)
    assert not guard.reserve("b", 2.0)
    assert "2026-12-02 (Asia/Shanghai)" in guard.stop_message(1)
    assert "resets at 2026-12-03 00:00" in guard.stop_message(1)
    clock.t = at("2026-12-03T00:00:01")  # a new day in Shanghai (still 2026-12-02 in UTC)
    assert datetime.fromtimestamp(clock.t, UTC).date() == date(2026, 12, 2)
    assert guard.reserve("b", 2.0)
    guard.settle("a", 4.0)  # written to the day it was reserved on
    assert spend.totals(date(2026, 12, 2)).settled == 4.0
    assert spend.totals(date(2026, 12, 3)).total == 2.0
    assert (tmp_path / "spend-2026-12-02.jsonl").is_file() and (tmp_path / "spend-2026-12-03.jsonl").is_file()


def test_daily_cap_spans_guards_and_folders_and_survives_a_crash(tmp_path: Path) -> None:
    days = DayClock(ZoneInfo("UTC"), FakeClock(at("2026-12-02T10:00:00", UTC)))
    first = MoneyGuard(daily_cap=6.0, spend=SpendLedger(tmp_path, days), scope=tmp_path / "a")
    assert first.reserve("x", 2.0) and first.reserve("y", 2.0)
    first.settle("x", 2.0)
    # the first run dies with y in flight; a second run elsewhere sees its reservation still counted
    second = MoneyGuard(daily_cap=6.0, spend=SpendLedger(tmp_path, days), scope=tmp_path / "b")
    assert second.reserve("z", 2.0)
    assert not second.reserve("w", 0.5)
    # the first folder is resumed: y is inherited (no second reservation) and settles
    resumed = MoneyGuard(daily_cap=6.0, spend=SpendLedger(tmp_path, days), scope=tmp_path / "a")
    resumed.start([("y", View(state="running", cost=2.0))])
    assert SpendLedger(tmp_path, days).totals().total == 6.0
    resumed.observe("failed", "y", View(), {"stage": "task", "code": "InternalError", "kind": "task"})
    assert SpendLedger(tmp_path, days).totals().total == 4.0
    assert resumed.snapshot().committed == 0, "inherited jobs never count against the run's own cap"
    lines = caps_lines(3.0, "CNY", 2.0, 6.0, SpendLedger(tmp_path, days))
    assert lines[0].startswith("budget per run: 2.00 CNY (stops the run after 2.00 of 3.00)")
    assert "4.00 spent or reserved today, 2.00 left (not enough for the whole plan)" in lines[1]


def test_a_torn_spend_line_is_ignored(tmp_path: Path) -> None:
    days = DayClock(ZoneInfo("UTC"), FakeClock(at("2026-12-02T10:00:00", UTC)))
    spend = SpendLedger(tmp_path, days)
    with spend.transaction() as txn:
        txn.append(days.day(), "reserve", "k1", 1.0)
    with spend.path(days.day()).open("ab") as f:
        f.write(b'{"ts": 1, "op": "reserve", "key": "k2", "amo')
    assert spend.totals().total == 1.0  # the torn tail is not read (and not remembered as read)
    other = SpendLedger(tmp_path, days)  # another run's view of the same folder
    assert other.totals().total == 1.0
    with spend.transaction() as txn:
        txn.append(days.day(), "reserve", "k3", 1.5)
    assert spend.totals().total == 2.5
    assert other.totals().total == 2.5  # it reads only what was appended since, and sees it


def test_state_dir_and_timezone_defaults() -> None:
    assert default_state_dir({"XDG_STATE_HOME": "/x/state", "HOME": "/h"}) == Path("/x/state/wanbatch")
    assert default_state_dir({"HOME": "/h"}) == Path("/h/.local/state/wanbatch")
    assert default_state_dir({"XDG_STATE_HOME": "relative", "HOME": "/h"}) == Path("/h/.local/state/wanbatch")
    assert parse_timezone(None) is None and parse_timezone("local") is None
    assert parse_timezone("Europe/Berlin") == ZoneInfo("Europe/Berlin")
    with pytest.raises(ConfigError, match="unknown timezone"):
        parse_timezone("Mars/Olympus")
    assert DayClock(None).label.startswith("local time (")
