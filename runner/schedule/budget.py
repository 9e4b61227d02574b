"""The money guard: a run never submits a job whose cost does not fit under its caps.

Algorithm (one lock, so it holds for asyncio tasks and threads alike):

* ``reserve(job, cost)`` before the job's create request: it succeeds only when this run's
  ``reserved + settled + cost <= --budget`` and today's ``spent + reserved + cost <= --daily-budget``
  (the daily figure read from the shared spend ledger under its file lock, ``runner/spend.py``); the
  reservation is written there before the request leaves. A refusal leaves the job for a later run.
* ``settle(job, billed)`` when the task succeeded (the cost from its ``usage``), or when it expired
  unsaved (paid, lost: the reservation becomes spending);
* ``release(job)`` when the task failed or was canceled (neither is billed), or the request was refused with
  the service's code; never for a task that exists or may exist (an outage, a lost answer: undecided).

``observe()`` maps the run's ledger events to those calls, so the stages only need the one ``reserve``
gate. Jobs already in flight when a run resumes are ``inherit``-ed: the daily ledger keeps (or takes) their
reservation, but they were paid for by the run that submitted them, so they do not count against this
run's ``--budget``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Protocol

import structlog

from runner.errors import ConfigError
from runner.schedule.spend import DayClock, SpendLedger, default_state_dir, parse_timezone

log = structlog.get_logger("wanbatch.budget")

#: Amounts are compared with this tolerance (prices have at most 6 decimals).
EPS = 1e-9


@dataclass(frozen=True)
class Snapshot:
    """The guard's money at one moment (what the invariant is about)."""

    cap: float | None
    reserved: float
    settled: float
    daily_cap: float | None = None
    daily_total: float | None = None  # today's settled + reserved in the spend ledger, all runs

    @property
    def committed(self) -> float:
        return self.reserved + self.settled


@dataclass(frozen=True)
class Refusal:
    """Why a job was not submitted: which cap, what it holds, what the job needed."""

    cap: str  # "run" | "daily"
    limit: float
    committed: float
    needed: float
    day: date | None = None

    @property
    def left(self) -> float:
        return max(0.0, self.limit - self.committed)


class JobView(Protocol):
    """What the guard reads of a job's ledger state (``runner.store.state.JobState``)."""

    @property
    def state(self) -> str: ...
    @property
    def cost(self) -> float: ...
    @property
    def billed_cost(self) -> float: ...
    @property
    def usage(self) -> dict[str, Any] | None: ...


class _Book:
    """Amounts per job with their sum kept exact (integer nano-units): O(1) per change, however many jobs."""

    _NANO = 1_000_000_000

    def __init__(self) -> None:
        self._amounts: dict[str, float] = {}
        self._sum = 0

    def __contains__(self, job_id: str) -> bool:
        return job_id in self._amounts

    def get(self, job_id: str, default: float | None = None) -> float | None:
        return self._amounts.get(job_id, default)

    def put(self, job_id: str, amount: float) -> None:
        self.pop(job_id)
        self._amounts[job_id] = amount
        self._sum += round(amount * self._NANO)

    def pop(self, job_id: str, default: float | None = None) -> float | None:
        amount = self._amounts.pop(job_id, None)
        if amount is None:
            return default
        self._sum -= round(amount * self._NANO)
        return amount

    @property
    def total(self) -> float:
        return self._sum / self._NANO


class MoneyGuard:
    """Reservations, settlements and releases of one run against ``--budget`` and ``--daily-budget``."""

    def __init__(
        self,
        *,
        cap: float | None = None,
        daily_cap: float | None = None,
        spend: SpendLedger | None = None,
        scope: str | os.PathLike[str] = "",
        currency: str = "CNY",
        on_change: Callable[[Snapshot], None] | None = None,
    ) -> None:
        if daily_cap is not None and spend is None:
            raise ValueError("a daily cap needs a spend ledger")
        self.cap = cap
        self.daily_cap = daily_cap
        self.spend = spend if daily_cap is not None else None
        self.scope = str(Path(scope).resolve()) if scope else ""
        self.currency = currency
        self.on_change = on_change
        self._lock = threading.Lock()
        self._reserved = _Book()
        self._settled = _Book()
        self._inherited: dict[str, float] = {}  # in flight from an earlier run: daily ledger only
        self._days: dict[str, date] = {}  # the spend-ledger day of each job's reservation
        self._last_daily: float | None = None
        self.refusals: list[tuple[str, Refusal]] = []  # (job id, why), in order

    @property
    def active(self) -> bool:
        return self.cap is not None or self.daily_cap is not None

    def _key(self, job_id: str) -> str:
        return f"{self.scope}#{job_id}"

    # ------------------------------------------------------------------------------------------ gate

    def reserve(self, job_id: str, cost: float) -> bool:
        """Reserve ``cost`` for the job's submission; False (and a recorded ``Refusal``) when a cap is in
        the way. Idempotent: a job that holds a reservation keeps it (a resend after a lost answer)."""
        with self._lock:
            if job_id in self._reserved or job_id in self._inherited:
                return True
            if self.cap is not None:
                committed = self._run_committed()
                if committed + cost > self.cap + EPS:
                    return self._refuse(job_id, Refusal("run", self.cap, committed, cost))
            if self.spend is not None and self.daily_cap is not None:
                with self.spend.transaction() as txn:
                    day = self.spend.days.day()
                    totals = txn.totals(day)
                    if totals.total + cost > self.daily_cap + EPS:
                        return self._refuse(job_id, Refusal("daily", self.daily_cap, totals.total, cost, day))
                    txn.append(day, "reserve", self._key(job_id), cost)
                    self._days[job_id] = day
                    self._last_daily = totals.total + cost
            self._reserved.put(job_id, cost)
            self._changed()
            return True

    def _refuse(self, job_id: str, why: Refusal) -> bool:
        self.refusals.append((job_id, why))
        log.info("budget.refused", job_id=job_id, cap=why.cap, limit=why.limit, committed=round(why.committed, 6),
                 needed=round(why.needed, 6))  # fmt: skip
        return False

    # ------------------------------------------------------------------------------------------ outcomes

    def settle(self, job_id: str, billed: float) -> None:
        """The job's task was billed ``billed`` (its usage): the reservation becomes spending."""
        with self._lock:
            if job_id in self._inherited:
                self._inherited.pop(job_id)
                self._daily(job_id, "settle", billed)
                return
            if job_id not in self._reserved and job_id not in self._settled:
                return  # not ours: settled by the run that submitted it
            reserved = self._reserved.pop(job_id, None)
            if reserved is not None and billed > reserved + EPS:
                log.warning("budget.overrun", job_id=job_id, reserved=reserved, billed=billed)
            self._settled.put(job_id, billed)
            self._daily(job_id, "settle", billed)
            self._changed()

    def release(self, job_id: str) -> None:
        """The job's task was not billed (failed, canceled, refused): give its reservation back."""
        with self._lock:
            if job_id in self._inherited:
                self._inherited.pop(job_id)
                self._daily(job_id, "release", 0.0)
                return
            if self._reserved.pop(job_id, None) is None:
                return
            self._daily(job_id, "release", 0.0)
            self._changed()

    def inherit(self, job_id: str, cost: float) -> None:
        """A job found in flight on resume: make sure the daily ledger counts it (adopting the reservation
        an earlier run wrote, else holding one now, over the cap if need be: it is already submitted)."""
        with self._lock:
            if self.spend is None or job_id in self._reserved or job_id in self._inherited:
                return
            key = self._key(job_id)
            with self.spend.transaction() as txn:
                today = self.spend.days.day()
                for day in (today, *_days_before(today, 2)):
                    found = txn.state_of(day, key)
                    if found is not None:
                        if found[0] == "reserve":
                            self._inherited[job_id] = found[1]
                            self._days[job_id] = day
                        return  # settled or released already: nothing open
                txn.append(today, "reserve", key, cost)
            self._inherited[job_id] = cost
            self._days[job_id] = today

    def _daily(self, job_id: str, op: str, amount: float) -> None:
        if self.spend is None:
            return
        day = self._days.get(job_id)
        if day is None:
            return
        try:
            with self.spend.transaction() as txn:
                txn.append(day, "settle" if op == "settle" else "release", self._key(job_id), amount)
                if day == self.spend.days.day():
                    self._last_daily = txn.totals(day).total
        except (OSError, ConfigError) as exc:  # the money is spent either way; the run goes on
            log.error("budget.ledger_error", job_id=job_id, op=op, error=str(exc))

    # ------------------------------------------------------------------------------------------ the run's events

    def start(self, jobs: Iterable[tuple[str, JobView]]) -> None:
        """At the run's start: inherit the jobs whose tasks are in flight (see the module docstring)."""
        for job_id, st in jobs:
            if st.state in ("submitting", "pending", "running"):
                self.inherit(job_id, st.cost)

    def finish(self, jobs: Iterable[tuple[str, JobView]]) -> None:
        """At the run's end: give back the reservations of jobs whose create never left (the run stopped
        between the reservation and the intent). Tasks still in flight keep theirs for the next run."""
        for job_id, st in jobs:
            if st.state == "planned":
                self.release(job_id)

    def observe(self, event: str, job_id: str | None, st: JobView | None, fields: dict[str, Any]) -> None:
        """Map one ledger event of the run to settle / release (after the event was applied to ``st``)."""
        if job_id is None or st is None:
            return
        if event == "succeeded":
            self.settle(job_id, st.billed_cost)
        elif event == "expired":
            with self._lock:
                amount = self._reserved.get(job_id, self._inherited.get(job_id))
            if amount is not None:
                self.settle(job_id, amount)  # paid and lost
        elif event == "canceled":
            self.release(job_id)
        elif event == "failed" and fields.get("kind") in ("refused", "task"):
            # released only when the server proved nothing bills: the create was refused with its code, or the
            # task FAILED. A job whose task exists or may exist keeps its reservation (issue 14), also across runs.
            self.release(job_id)

    # ------------------------------------------------------------------------------------------ reading

    def _run_committed(self) -> float:
        return self._reserved.total + self._settled.total

    def snapshot(self) -> Snapshot:
        with self._lock:
            return self._snap()

    def _snap(self) -> Snapshot:
        return Snapshot(
            self.cap,
            self._reserved.total,
            self._settled.total,
            self.daily_cap,
            self._last_daily,
        )

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self._snap())

    @property
    def stopped(self) -> bool:
        """True when a cap kept at least one job from being submitted."""
        return bool(self.refusals)

    def stop_message(self, left_jobs: int) -> str:
        """What the user reads when a cap stopped the run: which cap, what is spent, what is left."""
        parts = []
        cur = self.currency
        kinds = {r.cap: r for _, r in self.refusals}
        snap = self.snapshot()
        if "run" in kinds and self.cap is not None:
            committed = snap.committed
            parts.append(
                f"run budget {self.cap:.2f} {cur} reached: {committed:.2f} spent or reserved, "
                f"{max(0.0, self.cap - committed):.2f} left"
            )
        if "daily" in kinds and self.daily_cap is not None and self.spend is not None:
            day = kinds["daily"].day or self.spend.days.day()
            total = self.spend.totals(day).total
            resets = self.spend.days.next_midnight()
            parts.append(
                f"daily budget {self.daily_cap:.2f} {cur} for {day.isoformat()} ({self.spend.days.label}) reached: "
                f"{total:.2f} spent or reserved today, {max(0.0, self.daily_cap - total):.2f} left; "
                f"it resets at {resets:%Y-%m-%d %H:%M}"
            )
        needed = min(r.needed for _, r in self.refusals) if self.refusals else 0.0
        jobs = f"{left_jobs} job(s) not submitted (the cheapest needs {needed:.2f} {cur})"
        return "; ".join(parts) + f"; {jobs}"


def _days_before(day: date, n: int) -> list[date]:
    return [day - timedelta(days=i) for i in range(1, n + 1)]


def caps_lines(
    cost: float, currency: str, cap: float | None, daily_cap: float | None, spend: SpendLedger | None
) -> list[str]:
    """The plan's lines about the caps: how much of the plan each one covers."""
    out = []
    if cap is not None:
        fits = "covers the whole plan" if cost <= cap + EPS else f"stops the run after {cap:.2f} of {cost:.2f}"
        out.append(f"budget per run: {cap:.2f} {currency} ({fits})")
    if daily_cap is not None:
        if spend is not None:
            t = spend.totals()
            left = max(0.0, daily_cap - t.total)
            out.append(
                f"daily budget: {daily_cap:.2f} {currency} for {t.day.isoformat()} ({spend.days.label}); "
                f"{t.total:.2f} spent or reserved today, {left:.2f} left "
                f"({'covers the plan' if cost <= left + EPS else 'not enough for the whole plan'})"
            )
        else:
            out.append(f"daily budget: {daily_cap:.2f} {currency}")
    return out


@dataclass(frozen=True)
class MoneyCaps:
    """``--budget``, ``--daily-budget``, and where (``--state-dir``) and by which day (``--timezone``) the daily
    spend is kept: the command line's money settings, made once by the CLI."""

    budget: float | None = None
    daily_budget: float | None = None
    state_dir: str | None = None
    timezone: str | None = None

    def any(self) -> bool:
        return self.budget is not None or self.daily_budget is not None

    def guard(self, out_dir: str | os.PathLike[str], currency: str) -> MoneyGuard | None:
        """The run's guard; None when no cap is given. ``ConfigError`` (exit 2) when the timezone is unknown or
        the state folder unusable."""
        if not self.any():
            return None
        return MoneyGuard(
            cap=self.budget,
            daily_cap=self.daily_budget,
            spend=self.spend() if self.daily_budget is not None else None,
            scope=out_dir,
            currency=currency,
        )

    def spend(self) -> SpendLedger:
        """The daily spend ledger these settings name (checked: it can be read)."""
        tz = parse_timezone(self.timezone)
        spend = SpendLedger(Path(self.state_dir) if self.state_dir else default_state_dir(), DayClock(tz))
        try:
            spend.totals()
        except OSError as e:
            raise ConfigError(f"cannot use the state folder {spend.dir}: {e.strerror or e}") from None
        return spend

    def plan_lines(self, cost: float, currency: str) -> str:
        """The ``plan`` command's lines about the caps (text to append)."""
        spend = self.spend() if self.daily_budget is not None else None
        lines = caps_lines(cost, currency, self.budget, self.daily_budget, spend)
        return "".join(line + "\n" for line in lines)
