"""When to ask about each task in flight: the poll schedule, as pure logic (no HTTP, injectable clock). The
interval between two polls of a task is ``poll_rule.poll_interval`` (its docstring has the rule).

All tasks share one due-time heap and one query budget: polls due beyond the budget are handed out in due order
as it refills (spread, never dropped). A task PENDING or RUNNING long after ``late`` is flagged once as stalled.
**Sweeps** (``sweep_qps > 0``): one list request (``GET /api/v1/tasks?status=RUNNING``) answers for every task
known RUNNING at once, on the list API's own 20 QPS. Those tasks sit on a second heap with the same due times;
when the earliest is due, one sweep covers all of them and each is rescheduled by the rule. A covered task
missing from a complete answer has ended (RUNNING only moves to a final status), so it is queried at once, ahead
of every other poll, for its outcome and video URL (the list carries neither). PENDING tasks, and a RUNNING task
when it is the only one, are polled on their own. After ``sweep_failures`` failed sweeps in a row, or as many
tasks in a row that a sweep said had ended and their query found running (a lagging list), sweeping stops.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from runner.engine.clock import Clock
from runner.engine.poll_rule import PollConfig, poll_interval
from runner.engine.task_times import Expectation, Kind, TaskTimes, Weighted
from runner.engine.wire import TERMINAL_STATUSES
from runner.models import TYPICAL_TASK_SECONDS

__all__ = ["POLL_SHARE", "PollSchedule", "SweepResult"]

POLL_SHARE = 0.8  # the share of the run's query rate (``Limits.query``) polls may use; list and cancel the rest
_ONE = 1.0 - 1e-9  # a whole query token, up to float error (see due())


@dataclass
class _Task:
    task_id: str
    kind: Kind
    submitted_at: float
    status: str = "PENDING"
    due_at: float = 0.0
    version: int = 0
    outstanding: bool = False  # handed out by due(), answer not yet observed
    stalled: bool = False
    polls: int = 0
    listed: bool = False  # known RUNNING and followed by sweeps (on the sweep heap)
    swept_out: bool = False  # a sweep found it gone from RUNNING; its query is the check


@dataclass(frozen=True)
class SweepResult:
    """What a sweep's answer changed: tasks first seen RUNNING (for the ledger), tasks newly stalled, and how
    many covered tasks it found ended."""

    running: list[str]
    stalled: list[str]
    ended: int


class PollSchedule:
    """One due-time heap for every task in flight.

    Use: ``add`` when a task is submitted (or adopted on resume); ``due()`` gives the ids to ask about now
    (each is then outstanding until ``observe`` or ``poll_failed``); ``next_wakeup()`` says when to call
    ``due()`` again. A final status removes the task; SUCCEEDED also feeds the duration statistics.
    """

    def __init__(
        self,
        clock: Clock,
        config: PollConfig | None = None,
        *,
        remembered: Mapping[Kind, Sequence[Weighted]] | None = None,
        times: TaskTimes | None = None,  # shared with the other accounts' schedules (issue 18)
    ) -> None:
        self._clock = clock
        self._cfg = cfg = config or PollConfig()
        self._times = times or TaskTimes(
            remembered, expected=cfg.expected_task_time, min_samples=cfg.min_samples, sample_size=cfg.sample_size
        )
        self._tasks: dict[str, _Task] = {}
        self._heap: list[tuple[float, int, str, int]] = []
        self._seq = itertools.count()
        self._tokens = self._cfg.burst
        self._tokens_at = clock.now()
        self._sweeping = self._cfg.sweep_qps > 0
        self._sweep_heap: list[tuple[float, int, str, int]] = []
        self._listed: set[str] = set()
        self._ended: deque[str] = deque()  # a sweep found these gone from RUNNING: queried before anything else
        self._sweep_out: frozenset[str] | None = None  # the tasks the outstanding sweep covers
        self._sweep_fails = 0
        self._false_ends = 0  # tasks a sweep said had ended that their query found still running, in a row
        self._sweep_tokens = 1.0
        self._sweep_tokens_at = clock.now()

    @property
    def config(self) -> PollConfig:
        return self._cfg

    @property
    def times(self) -> TaskTimes:
        """What this schedule has learned (``TaskTimes.new_samples()`` is what the memory keeps)."""
        return self._times

    def record_completion(self, kind: Kind | str, seconds: float) -> None:
        """A task of ``kind`` took ``seconds`` from submission to its end, by the server's own times."""
        self._learn(_kind(kind), seconds, seen=False, now=self._clock.now())

    def expectation(self, kind: Kind | str) -> Expectation | None:
        """What tasks of ``kind`` are expected to take; None when nothing is known (``task_times``)."""
        return self._times.expectation(_kind(kind))

    def _learn(self, kind: Kind, seconds: float, *, seen: bool, now: float) -> None:
        """Learn a duration; while the kind is still being learned, tasks of its model in flight that the new
        knowledge makes due sooner are re-filed (the rest of a first wave is asked at once)."""
        settled = self._times.learned(kind)
        self._times.add(kind, seconds, seen=seen)
        if settled:
            return
        for task in self._tasks.values():
            if task.kind.model != kind.model or task.outstanding or task.swept_out:
                continue
            at = now + self.interval(task.kind, now - task.submitted_at)
            if at < task.due_at - 1e-9:
                self._schedule(task, at)

    # ------------------------------------------------------------------------------------------ intervals

    def interval(self, kind: Kind | str, elapsed: float, *, seen: bool = True) -> float:
        """Seconds until the next poll of a task of ``kind`` that has run ``elapsed`` seconds; ``seen=False``
        for a task this run has not looked at yet (its last look was its submission)."""
        return poll_interval(self._cfg, self._times.expectation(_kind(kind)), elapsed, seen=seen)

    def next_delay(self, task_id: str) -> float:
        task = self._tasks[task_id]
        return self.interval(task.kind, self._clock.now() - task.submitted_at)

    # ------------------------------------------------------------------------------------------ tasks

    def __len__(self) -> int:
        return len(self._tasks)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._tasks

    def status(self, task_id: str) -> str:
        return self._tasks[task_id].status

    def add(
        self, task_id: str, kind: Kind | str, submitted_at: float | None = None, *, status: str = "PENDING"
    ) -> None:
        """Track a task; its first poll is scheduled by the rule above (``submitted_at`` in clock seconds). A
        plain string is a kind known by its model only."""
        now = self._clock.now()
        task = _Task(task_id, _kind(kind), now if submitted_at is None else submitted_at, status=status)
        self._tasks[task_id] = task
        self._schedule(task, now + self.interval(task.kind, now - task.submitted_at, seen=False))

    def remove(self, task_id: str) -> None:
        self._tasks.pop(task_id, None)  # heap entries (and an _ended entry) die lazily
        self._listed.discard(task_id)

    @property
    def sweeping(self) -> bool:
        return self._sweeping

    def observe(self, task_id: str, status: str, at: float | None = None, *, seconds: float | None = None) -> bool:
        """The answer of a poll. Returns True exactly once per task: when it is first seen stalled.

        A final status removes the task; a SUCCEEDED one records its duration (``seconds`` when the caller
        knows it from the server's times, else ``at - submitted_at``).
        """
        task = self._tasks.get(task_id)
        if task is None:
            return False
        now = self._clock.now() if at is None else at
        task.status = status
        task.outstanding = False
        task.polls += 1
        if task.swept_out:  # a sweep said it ended: was the list right?
            task.swept_out = False
            self._false_ends = 0 if status in TERMINAL_STATUSES else self._false_ends + 1
            if self._false_ends >= self._cfg.sweep_failures:
                self._stop_sweeping()  # a list that lags the tasks would cost a query per task per sweep
        if status in TERMINAL_STATUSES:
            self.remove(task_id)
            if status == "SUCCEEDED":
                took = seconds if seconds is not None else now - task.submitted_at
                self._learn(task.kind, took, seen=seconds is None, now=now)
            return False
        return self._still_running(task, now)

    def _still_running(self, task: _Task, now: float) -> bool:
        """Reschedule a task that is not final yet; True when it is first seen stalled."""
        elapsed = now - task.submitted_at
        newly_stalled = False
        exp = self._times.expectation(task.kind)
        late = exp.late if exp is not None else TYPICAL_TASK_SECONDS[1]
        if not task.stalled and elapsed > self._cfg.stall_factor * late:
            task.stalled = newly_stalled = True
        self._schedule(task, now + self.interval(task.kind, elapsed))
        return newly_stalled

    def poll_failed(self, task_id: str, delay: float | None = None) -> None:
        """The poll got no answer: ask again after ``delay`` (the classifier's) or the normal interval."""
        task = self._tasks.get(task_id)
        if task is None:
            return
        now = self._clock.now()
        task.outstanding = False
        wait = delay if delay is not None else self.interval(task.kind, now - task.submitted_at)
        self._schedule(task, now + max(self._cfg.min_interval, wait))

    def stalled(self) -> list[str]:
        return [t.task_id for t in self._tasks.values() if t.stalled]

    # ------------------------------------------------------------------------------------------ the heap

    def _schedule(self, task: _Task, at: float) -> None:
        """(Re)file a task by its status: known RUNNING on the sweep heap while sweeping, else the poll heap."""
        task.version = next(self._seq)  # unique across re-adds, so stale heap entries never come back to life
        task.due_at = at
        task.listed = self._sweeping and task.status == "RUNNING"
        if task.listed:
            self._listed.add(task.task_id)
        else:
            self._listed.discard(task.task_id)
        heap = self._sweep_heap if task.listed else self._heap
        heapq.heappush(heap, (at, task.version, task.task_id, task.version))

    def _top(self, heap: list[tuple[float, int, str, int]] | None = None) -> tuple[float, str] | None:
        """The earliest live entry of ``heap`` (the poll heap by default), dropping dead ones."""
        heap = self._heap if heap is None else heap
        while heap:
            at, _, task_id, version = heap[0]
            task = self._tasks.get(task_id)
            if task is None or task.version != version or task.outstanding:
                heapq.heappop(heap)
                continue
            return at, task_id
        return None

    def _lone(self, now: float) -> bool:
        """True when the RUNNING task due is the only one known RUNNING: a sweep would look at it alone, and a
        query tells as much, and the outcome too when it has ended. With others RUNNING a sweep looks at all of
        them for the same one request and leaves the query budget to the ended tasks' outcomes (querying a
        task due alone instead, as before, cost the compressed drawn rows 2-10 points of detection p95)."""
        if self._sweep_out is not None or len(self._listed) != 1:
            return False  # the covered tasks wait for its answer; or a sweep is worth more than a query
        top = self._top(self._sweep_heap)
        return top is not None and top[0] <= now

    def _poll_heaps(self, now: float) -> list[list[tuple[float, int, str, int]]]:
        """Heaps whose due tasks are polled one by one: the sweep heap too when a sweep buys nothing."""
        return [self._heap, self._sweep_heap] if self._lone(now) else [self._heap]

    def _earliest(self, now: float) -> tuple[float, str, list[tuple[float, int, str, int]]] | None:
        best: tuple[float, str, list[tuple[float, int, str, int]]] | None = None
        for heap in self._poll_heaps(now):
            top = self._top(heap)
            if top is not None and (best is None or top[0] < best[0]):
                best = (top[0], top[1], heap)
        return best

    def _take(self, task: _Task, out: list[str]) -> None:
        task.outstanding = True
        self._tokens -= 1.0
        out.append(task.task_id)

    def _refill(self, now: float) -> None:
        cfg = self._cfg
        self._tokens = min(cfg.burst, self._tokens + max(0.0, now - self._tokens_at) * cfg.budget_qps)
        self._tokens_at = now

    def due(self, now: float | None = None) -> list[str]:
        """Ids to poll now, earliest due first, as many as the query budget allows; each becomes outstanding."""
        now = self._clock.now() if now is None else now
        self._refill(now)
        out: list[str] = []
        # _ONE absorbs float error: a refill that should give exactly one token may give 0.999…, and a
        # wakeup of now + 1e-16 is now itself at large clock values (a busy loop).
        while self._tokens >= _ONE and self._ended:
            task_or_none = self._tasks.get(self._ended.popleft())
            if task_or_none is not None and not task_or_none.outstanding and not task_or_none.listed:
                self._take(task_or_none, out)
        while self._tokens >= _ONE and (top := self._earliest(now)) is not None and top[0] <= now:
            heapq.heappop(top[2])
            self._take(self._tasks[top[1]], out)
        return out

    def next_wakeup(self, now: float | None = None) -> float | None:
        """Clock time at which ``due()`` will next have something, or None when nothing is scheduled."""
        now = self._clock.now() if now is None else now
        self._refill(now)
        budget_at = now + (1.0 - self._tokens) / self._cfg.budget_qps if self._tokens < _ONE else now
        top = self._top()
        wakeups = [] if top is None else [max(top[0], budget_at)]
        if self._ended:
            wakeups.append(budget_at)
        sweep_top = self._top(self._sweep_heap) if self._sweep_out is None else None
        if sweep_top is not None:
            if sweep_top[0] > now:
                wakeups.append(sweep_top[0])  # then it is a sweep or a lone poll; decided at that time
            elif self._lone(now):
                wakeups.append(budget_at)
            else:
                self._refill_sweep(now)
                tokens = self._sweep_tokens
                wakeups.append(now + (1.0 - tokens) / self._cfg.sweep_qps if tokens < _ONE else now)
        return min(wakeups) if wakeups else None

    # ------------------------------------------------------------------------------------------ sweeps

    def _refill_sweep(self, now: float) -> None:
        self._sweep_tokens = min(1.0, self._sweep_tokens + max(0.0, now - self._sweep_tokens_at) * self._cfg.sweep_qps)
        self._sweep_tokens_at = now

    def sweep(self, now: float | None = None) -> frozenset[str] | None:
        """The tasks a list request sent now would cover, or None when no sweep should go now.

        A sweep goes when a task known RUNNING is due and another will be before the first one's next poll
        (else that task is polled on its own, see ``_lone``), no sweep is outstanding and the sweep budget
        allows. Every covered task stays put until ``sweep_done`` or ``sweep_failed``.
        """
        if not self._sweeping or self._sweep_out is not None:
            return None
        now = self._clock.now() if now is None else now
        top = self._top(self._sweep_heap)
        if top is None or top[0] > now or self._lone(now):
            return None
        self._refill_sweep(now)
        if self._sweep_tokens < _ONE:
            return None
        self._sweep_tokens -= 1.0
        self._sweep_out = frozenset(t for t in self._listed if not self._tasks[t].outstanding)
        return self._sweep_out

    def sweep_done(
        self, covered: Collection[str], running: Collection[str], *, complete: bool, at: float | None = None
    ) -> SweepResult:
        """The answer of a sweep: ``running`` are the ids the list showed RUNNING; ``complete`` when that is
        every RUNNING task of the account (one page held them all).

        Covered tasks in ``running`` are rescheduled; covered tasks missing from a complete answer have ended
        and go to the front of the poll queue; missing from an incomplete one, they go back to their own polls.
        Tracked tasks last seen PENDING that the list shows RUNNING move to sweeps.
        """
        now = self._clock.now() if at is None else at
        self._sweep_out = None
        self._sweep_fails = 0
        running = set(running)
        seen_running: list[str] = []
        stalled: list[str] = []
        ended = 0
        for task_id in covered:
            task = self._tasks.get(task_id)
            if task is None or task.outstanding or not task.listed:
                continue  # gone, or being queried on its own (that answer decides)
            task.polls += 1
            if task_id in running:
                if self._still_running(task, now):
                    stalled.append(task_id)
            elif complete:
                task.listed = False
                task.version = next(self._seq)  # its sweep-heap entry dies
                self._listed.discard(task_id)
                task.swept_out = True
                self._ended.append(task_id)
                ended += 1
            else:
                task.status = "PENDING"  # unknown again: followed by its own polls until one sees it
                self._schedule(task, now)
        for task_id in running:
            task = self._tasks.get(task_id)
            if task is not None and not task.listed and not task.outstanding and task.status == "PENDING":
                task.status = "RUNNING"
                seen_running.append(task_id)
                if self._still_running(task, now):
                    stalled.append(task_id)
        return SweepResult(seen_running, stalled, ended)

    def sweep_failed(self) -> bool:
        """A sweep got no answer. True when this failure stops sweeping for the run (tasks go back to polls)."""
        self._sweep_out = None
        self._sweep_fails += 1
        if self._sweep_fails < self._cfg.sweep_failures:
            return False
        self._stop_sweeping()
        return True

    def _stop_sweeping(self) -> None:
        self._sweeping = False
        for task_id in list(self._listed):
            task = self._tasks[task_id]
            self._schedule(task, task.due_at)  # refiled on the poll heap, same due time


def _kind(kind: Kind | str) -> Kind:
    return Kind(kind) if isinstance(kind, str) else kind
