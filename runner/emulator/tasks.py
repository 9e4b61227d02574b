"""The simulated tasks: lifecycle computed lazily from timestamps (no timer per task), the per-model queue
of the concurrency limit, cancel, list, and the counters behind ``/_emulator/stats``.

A task's life, in real seconds after ``speed`` scaling::

    submit_at ── (queued: waits for a slot) ── admit_at ── (dispatch) ── scheduled_at ── (running) ── end_at
      PENDING ...................................................... | RUNNING ......... | SUCCEEDED/FAILED

and UNKNOWN from ``submit_at + retention``. A task cancelled while PENDING is CANCELED from that moment.
A "stuck" task (fault) never leaves PENDING until the 3 h task timeout fails it (InternalError.Timeout).

Every task belongs to one account (``Task.account``, ``DEFAULT_ACCOUNT`` when none is configured): the concurrency
slots are per (account, model) and ``listing`` / the statistics can be narrowed to one account. Which account may
see a task is the routes' business (``accounts.Account.own``); one store keeps every task so a test reading
``store.order`` sees them all.
"""

from __future__ import annotations

import bisect
import math
import random
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

from runner.emulator.protocol import (
    CONCURRENCY,
    INTERNAL_ERROR,
    OUTPUT_INSPECTION,
    TASK_TIMEOUT,
    ApiFailure,
    TaskRequest,
)
from runner.models import TASK_TIMEOUT_SECONDS, tier_of

Pool = tuple[str, str]  # (account, canonical model): what one concurrency limit counts
Status = Literal["PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELED", "UNKNOWN"]
STATUSES: tuple[Status, ...] = ("PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELED", "UNKNOWN")
INF = float("inf")
#: The account of every key when no account is configured (and of tasks made without naming one).
DEFAULT_ACCOUNT = "default"


@dataclass(slots=True)
class Task:
    """One accepted create. Mutable on purpose: the queue may move ``admit_at`` and cancel sets ``canceled_at``;
    everything else is fixed at creation so the status at any moment is a pure function of the clock."""

    seq: int
    task_id: str
    request_id: str
    api_key_id: str
    req: TaskRequest
    submit_at: float
    admit_at: float
    pending_s: float  # dispatch delay after admission (real seconds)
    run_s: float  # running time (real seconds)
    faults: frozenset[str]
    timeout_s: float
    canceled_at: float | None = None
    quoted_key: str = ""  # a FAILED message quotes this key (EmulatorConfig.quote_key_in_failures)
    account: str = DEFAULT_ACCOUNT  # the account whose key made it: only that account's keys see it

    @property
    def stuck(self) -> bool:
        return "stuck" in self.faults

    @property
    def scheduled_at(self) -> float:
        return INF if self.stuck else self.admit_at + self.pending_s

    @property
    def end_at(self) -> float:
        return self.submit_at + self.timeout_s if self.stuck else self.scheduled_at + self.run_s

    @property
    def terminal_at(self) -> float:
        """When the task stopped being PENDING or RUNNING."""
        return self.canceled_at if self.canceled_at is not None else self.end_at

    def outcome(self) -> tuple[Status, str | None, str | None]:
        """The final status with its ``output.code`` / ``output.message`` when FAILED."""
        if self.stuck:
            return "FAILED", "InternalError.Timeout", TASK_TIMEOUT
        quote = f" (request made with api key {self.quoted_key})" if self.quoted_key else ""
        if "fail" in self.faults:
            return "FAILED", "InternalError", INTERNAL_ERROR + quote
        if "inspection" in self.faults:
            return "FAILED", "DataInspectionFailed", OUTPUT_INSPECTION + quote
        return "SUCCEEDED", None, None

    def status(self, now: float, retention_s: float) -> Status:
        if now >= self.submit_at + retention_s:
            return "UNKNOWN"
        if self.canceled_at is not None:
            return "CANCELED"
        if now >= self.end_at:
            return self.outcome()[0]
        if now < self.scheduled_at:
            return "PENDING"
        return "RUNNING"


#: Running time against a 720P 5-s wan2.6 task's, by model, by tier, and as (duration / 5 s) ** DURATION_PACE:
#: a 480P 5-s turbo task takes 0.3 times as long, a 1080P 15-s wan2.6 task 3.6 times.
MODEL_PACE = {"wan2.1-t2v-turbo": 0.5, "wan2.2-t2v-plus": 0.9, "wan2.1-t2v-plus": 1.2}
TIER_PACE = {"480P": 0.6, "720P": 1.0, "1080P": 1.6}
DURATION_PACE = 0.75


def pace(model: str, size: str, duration: int) -> float:
    """How many times longer than a 720P 5-s wan2.6 task a task of this kind runs (its own draw aside)."""
    tier = tier_of(size) or "720P"
    return MODEL_PACE.get(model, 1.0) * TIER_PACE.get(tier, 1.0) * math.pow(duration / 5.0, DURATION_PACE)


def _task_uuid() -> str:
    """Random, like the real service: a restarted emulator (same seed) must never hand out an id a client's
    ledger already holds for another task. Everything else about a task is reproducible from the seed."""
    return str(uuid.uuid4())


class TaskStore:
    """Every task of every account, plus the per-(account, model) slot schedule of the concurrency limit.

    ``concurrency`` is the limit of the task's model in its account (None: unlimited). Queue mode gives each task
    the earliest free slot ("lane") of its account and model in submission order; reject mode refuses a create
    while those slots are all busy. Queued tasks hold no slot until admitted; stuck tasks hold none at all.
    """

    def __init__(
        self,
        *,
        seed: int,
        speed: float,
        task_time: float | None,
        retention: float,
        url_ttl: float,
        concurrency_mode: str,
    ) -> None:
        self.seed = seed
        self.speed = speed
        self.task_time = task_time
        self.retention_s = retention / speed
        self.url_ttl_s = url_ttl / speed
        self.timeout_s = TASK_TIMEOUT_SECONDS / speed
        self.mode = concurrency_mode
        self.clear()

    def clear(self) -> None:
        self.tasks: dict[str, Task] = {}
        self.order: list[Task] = []  # by submission
        self._active: dict[Pool, list[Task]] = {}  # (account, model) -> tasks that may hold or wait for a slot
        self._lanes: dict[Pool, list[float]] = {}  # (account, model) -> time each slot becomes free
        self.canceled = 0

    # -- creation -----------------------------------------------------------------------------------------

    def _durations(self, seq: int, req: TaskRequest) -> tuple[float, float]:
        """(dispatch, running) in simulated seconds: fixed by ``task_time``, or drawn (seeded) for the request's
        kind: 1–5 min for a 720P 5-s wan2.6 task, longer for longer and larger videos (``pace``)."""
        if self.task_time is not None:
            return self.task_time * 0.25, self.task_time * 0.75
        rng = random.Random(f"durations:{self.seed}:{seq}")
        dispatch = rng.uniform(2.0, 10.0)
        return dispatch, rng.triangular(50.0, 290.0, 95.0) * pace(req.spec.name, req.size, req.duration)

    def _prune(self, pool: Pool, now: float) -> list[Task]:
        active = [t for t in self._active.get(pool, ()) if t.terminal_at > now]
        self._active[pool] = active
        return active

    def create(
        self,
        req: TaskRequest,
        *,
        now: float,
        request_id: str,
        api_key_id: str,
        faults: frozenset[str],
        concurrency: int | None,
        account: str = DEFAULT_ACCOUNT,
    ) -> Task:
        """Accept a task of ``account`` (call ``check_capacity`` first in reject mode)."""
        pool = (account, req.spec.name)
        stuck = "stuck" in faults
        seq = len(self.order)
        dispatch, run = self._durations(seq, req)
        if "late" in faults:
            run *= 4.0  # ends well after the tasks submitted next to it
        task = Task(
            seq=seq,
            task_id=_task_uuid(),
            request_id=request_id,
            api_key_id=api_key_id,
            req=req,
            submit_at=now,
            admit_at=now,
            pending_s=dispatch / self.speed,
            run_s=run / self.speed,
            faults=faults,
            timeout_s=self.timeout_s,
            account=account,
        )
        if concurrency is not None and self.mode == "queue" and not stuck:
            lanes = self._lanes.get(pool)
            if lanes is None or len(lanes) != concurrency:
                lanes = self._lanes[pool] = self._rebuilt_lanes(pool, now, concurrency)
            i = min(range(len(lanes)), key=lanes.__getitem__)
            task.admit_at = max(now, lanes[i])
            lanes[i] = task.end_at
        self.tasks[task.task_id] = task
        self.order.append(task)
        if concurrency is not None:
            self._prune(pool, now).append(task)
        return task

    def check_capacity(self, model: str, now: float, concurrency: int | None, account: str = DEFAULT_ACCOUNT) -> None:
        """Reject mode: raise 429 ``Throttling.Concurrency`` while every slot of ``model`` in ``account`` is busy."""
        if concurrency is None or self.mode != "reject":
            return
        busy = sum(1 for t in self._prune((account, model), now) if not t.stuck)
        if busy >= concurrency:
            raise ApiFailure(429, "Throttling.Concurrency", CONCURRENCY)

    @property
    def next_seq(self) -> int:
        return len(self.order)

    def _rebuilt_lanes(self, pool: Pool, now: float, concurrency: int) -> list[float]:
        """Re-plan the slots of an (account, model) from scratch (after a cancel): admitted tasks keep theirs,
        queued ones are given the earliest free slot again in submission order."""
        active = [t for t in self._prune(pool, now) if not t.stuck]
        admitted = [t for t in active if t.admit_at <= now]
        lanes = sorted(t.end_at for t in admitted)[:concurrency]
        lanes += [now] * (concurrency - len(lanes))
        for t in sorted((t for t in active if t.admit_at > now), key=lambda t: t.seq):
            i = min(range(len(lanes)), key=lanes.__getitem__)
            t.admit_at = max(now, lanes[i])
            lanes[i] = t.end_at
        return lanes

    # -- reading and cancelling ---------------------------------------------------------------------------

    def get(self, task_id: str) -> Task | None:
        return self.tasks.get(task_id)

    def status(self, task: Task, now: float) -> Status:
        return task.status(now, self.retention_s)

    def cancel(self, task_id: str, now: float, concurrency: int | None) -> bool:
        """Cancel a PENDING task; False when it is not PENDING (or unknown)."""
        task = self.tasks.get(task_id)
        if task is None or self.status(task, now) != "PENDING":
            return False
        task.canceled_at = now
        self.canceled += 1
        pool = (task.account, task.req.spec.name)
        if concurrency is not None and self.mode == "queue" and pool in self._lanes:
            self._lanes[pool] = self._rebuilt_lanes(pool, now, concurrency)
        return True

    def url_expires(self, task: Task) -> int:
        """The ``Expires`` (epoch seconds) of the task's signed video URL."""
        if "expired_url" in task.faults:
            return int(task.end_at) - 1
        return int(task.end_at + self.url_ttl_s)

    def listing(
        self,
        *,
        now: float,
        start: float,
        end: float,
        model: str | None,
        status: str | None,
        task_id: str | None,
        account: str | None = None,
    ) -> list[Task]:
        """Tasks submitted in [start, end], newest first, still retained, matching the filters (``account``:
        that account's only)."""
        lo = bisect.bisect_left(self.order, start, key=lambda t: t.submit_at)
        hi = bisect.bisect_right(self.order, end, key=lambda t: t.submit_at)
        out = []
        for t in reversed(self.order[lo:hi]):
            st = self.status(t, now)
            if st == "UNKNOWN":
                continue
            if model is not None and t.req.spec.name != model:
                continue
            if status is not None and st != status:
                continue
            if task_id is not None and t.task_id != task_id:
                continue
            if account is not None and t.account != account:
                continue
            out.append(t)
        return out

    # -- statistics ---------------------------------------------------------------------------------------

    def _of(self, account: str | None) -> list[Task]:
        return self.order if account is None else [t for t in self.order if t.account == account]

    def by_status(self, now: float, account: str | None = None) -> dict[str, int]:
        counts: Counter[str] = Counter({s: 0 for s in STATUSES})
        for t in self._of(account):
            counts[self.status(t, now)] += 1
        return dict(counts)

    def max_concurrent(self, now: float, account: str | None = None) -> tuple[int, dict[str, int]]:
        """Most tasks PENDING or RUNNING at one moment up to ``now`` (queued ones included), overall and per
        model, of every account or of one: a sweep over the intervals [submit_at, terminal_at)."""
        events: dict[str, list[tuple[float, int]]] = {}
        for t in self._of(account):
            ev = events.setdefault(t.req.spec.name, [])
            ev.append((t.submit_at, 1))
            if t.terminal_at <= now:
                ev.append((t.terminal_at, -1))
        per_model = {m: _sweep(ev) for m, ev in events.items()}
        overall = _sweep([e for ev in events.values() for e in ev])
        return overall, per_model

    def as_stats(self, now: float, account: str | None = None) -> dict[str, Any]:
        overall, per_model = self.max_concurrent(now, account)
        return {
            "tasks_by_status": self.by_status(now, account),
            "max_concurrent": overall,
            "max_concurrent_by_model": per_model,
        }


def _sweep(events: list[tuple[float, int]]) -> int:
    """Maximum running sum; at equal times ends (-1) come before starts (+1)."""
    best = cur = 0
    for _, delta in sorted(events):
        cur += delta
        best = max(best, cur)
    return best
