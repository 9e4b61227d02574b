"""What the stages of a run share: the settings, the jobs, the ledger view and the shutdown events.

The pipeline's stages (``submitter``, ``reconcile``, ``tracker``, ``fetcher``) are functions over one
``RunContext``; this module holds it so they can live in separate files without importing each other's
loops. Every transition goes through ``RunContext.record``: the line is made durable by the ledger writer
and folded into the in-memory ``RunState`` with the same ``ts``, so ``status`` from the file and the
progress display from memory always agree.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import structlog

from runner.engine.accounts import Account, AccountPool
from runner.engine.api import DashScopeClient
from runner.engine.classify import Action, classify
from runner.engine.hooks import Ledger, MoneyGuard, PosterMaker, Uploader
from runner.engine.job import Job
from runner.engine.limits import Limits
from runner.engine.refusal import Refusal
from runner.engine.settings import PipelineConfig
from runner.engine.waiting import Flag, Shutdown, Stopped, opened_flag
from runner.engine.wire import Op
from runner.errors import ApiError, RateLimited, what_to_check
from runner.store.events import FINAL_STATES, RUN_REFUSED, Line
from runner.store.job import JobState
from runner.store.state import RunState

log = structlog.get_logger("wanbatch.run")

T = TypeVar("T")


@dataclass
class RunContext(Shutdown):
    """Everything the stages share. Not frozen: it is the run's working state, owned by one event loop."""

    cfg: PipelineConfig
    client: DashScopeClient
    ledger: Ledger
    state: RunState
    limits: Limits
    jobs: dict[str, Job] = field(default_factory=dict)
    submit_queues: dict[str, asyncio.Queue[Job]] = field(default_factory=dict)  # per canonical model
    inboxes: dict[str, asyncio.Queue[Job]] = field(default_factory=dict)  # per account: tasks for its tracker
    fetch_inbox: asyncio.PriorityQueue[tuple[float, int, str]] = field(default_factory=asyncio.PriorityQueue)
    known_tasks: set[str] = field(default_factory=set)  # every task id some job owns (reconcile skips them)
    open_jobs: set[str] = field(default_factory=set)  # jobs this run still works on
    left: set[str] = field(default_factory=set)  # jobs this run will not touch (max-jobs, drain, failed)
    throttled: int = 0  # 429 answers seen
    started: float = field(default_factory=time.monotonic)
    on_change: Callable[[], None] | None = None  # the progress display's hook
    guard: MoneyGuard | None = None  # --budget / --daily-budget (runner/schedule/budget.py): settles from the events
    poster: PosterMaker | None = None  # makes each video's gallery poster as it lands (None: no posters)
    uploads: Uploader | None = None  # local files the creates carry (issue 19: runner/engine/uploads.py)
    last_seen: float | None = None  # ts of the ledger's last job line before this run (when a dead run last wrote)
    open_groups: dict[str, str] = field(default_factory=dict)  # look-alike group -> the job whose create is open
    _parked: dict[str, deque[Job]] = field(default_factory=dict)  # jobs waiting for their group, to submit
    _group_waiters: dict[str, deque[tuple[Job, asyncio.Future[None]]]] = field(default_factory=dict)  # to reconcile
    _seq: int = 0
    _unanswered: int = 0  # jobs with ``unanswered`` set
    _window_open: Flag = field(default_factory=lambda: opened_flag())  # set while _unanswered < submit_window
    group: asyncio.TaskGroup | None = None  # the run's TaskGroup, for per-job tasks (reconcile, retries)
    # issue 18: the accounts the run drives, each with its client, limits, claims, refusals, breaker and server
    # clock; built from client and limits as the one "default" account when not given
    accounts: AccountPool = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.accounts is None and self.client is not None:
            self.accounts = AccountPool([Account("default", self.cfg.region, self.client, self.limits)])
        if self.accounts is not None:
            home = self.accounts.home  # the home account's client and limits stand for the run's
            self.client, self.limits = home.client, home.limits
            for account in self.accounts.all:
                self.inboxes.setdefault(account.name, asyncio.Queue())

    # -- the job's account (issue 18) ---------------------------------------------------------------------------

    def account_of(self, job: Job | JobState) -> Account:
        """The account a job's slot, intent and task are with (the home account when it names none)."""
        name = job.account
        got = self.accounts.get(name) if name else None
        return got if got is not None else self.accounts.home

    def follow(self, job: Job) -> None:
        """Hand ``job``'s task to the tracker of its account."""
        self.inboxes[self.account_of(job).name].put_nowait(job)

    def task_age(self, st: JobState) -> float:
        """Seconds since the job's current task was answered, by the server's clock (the retention's): the host
        time of the answer moved by the offset measured when its intent was written (0 when not known)."""
        answered = st.answered_at if st.answered_at is not None else st.updated
        skew = st.intent_skew if st.intent_skew is not None else 0.0
        clock = self.account_of(st).server_clock
        return clock.now() - (answered + skew)

    # -- the account refusing work ---------------------------------------------------------------------------

    async def refuse(
        self, code: str, message: str, request_id: str | None = None, *, scope: str = "account",
        model: str | None = None, account: Account | None = None,
    ) -> None:  # fmt: skip
        """The account (``scope`` "account"), one model for it ("model"), or the network ("network") refused
        work: stop submitting there, blame no job; tasks already made are still followed and saved (exit 4).
        The first refusal of each kind is written to the ledger (``run.refused``) and logged. With several
        accounts only that one drops out (its unsent jobs go to the others); the run drains once all have."""
        acct = account if account is not None else self.accounts.home
        label = acct.name if acct.labelled else None
        refusal = Refusal(code, message, request_id, scope, model, acct.base_url, acct.region, what_to_check(code),
                          label)  # fmt: skip
        if acct.refusals.add(refusal):
            await self.record(None, RUN_REFUSED, code=code, message=message, request_id=request_id, scope=scope,
                              model=model, host=refusal.host, region=refusal.region, check=refusal.check,
                              account=label)  # fmt: skip
            log.error("run.refused", code=code, message=message, request_id=request_id, scope=scope, model=model,
                      account=label)  # fmt: skip
        if scope != "model" and self.accounts.out:
            self.draining.set()

    def refused(self) -> list[Refusal]:
        """Every account's refusals (the run's exit 4 and its message)."""
        return [r for a in self.accounts.all for r in a.refusals.all()] if self.accounts is not None else []

    def abandon(self, account: Account, why: str) -> None:
        """``account`` can no longer be asked about its tasks (its key no longer reads them, its host is down):
        leave every open job bound to it — as they are, for a later run — and stop the run when no account is
        left. (One account: the run stops, as it always did.)"""
        if self.accounts.out:
            self.stop.set()
            return
        for job in list(self.jobs.values()):
            bound = job.state.state in ("submitting", "pending", "running", "succeeded") or job.slot
            if job.id in self.open_jobs and bound and self.account_of(job) is account:
                self.leave(job, why)

    async def account_unknown_task(self, job: Job, task_id: str) -> None:
        """A task this run has seen is UNKNOWN to the server under this key, long before its retention ends:
        the key is another account's (a rotation). Not the job's fault, and the task is not expired."""
        st = self.state
        acct = self.account_of(job)
        made = f" (they were made through {st.base_url}, region {st.region})" if st.base_url else ""
        await self.refuse(
            "UnknownTasks",
            f"the server does not know task {task_id} (job {job.spec.name}) under this API key, though it is "
            f"younger than the 24-h retention: the key belongs to another account than the run's tasks{made}",
            account=acct,
        )
        self.leave(job, "account")

    # -- look-alike groups: one unanswered create each (issue 13) -------------------------------------------

    def open_group(self, job: Job) -> bool:
        """Let ``job`` send a create for its group if no other job of it has one unanswered; else park the job
        (the submitter gets it back once the group closes) and say False."""
        holder = self.open_groups.get(job.group)
        if holder is None or holder == job.id:
            self.open_groups[job.group] = job.id
            return True
        self._parked.setdefault(job.group, deque()).append(job)
        return False

    async def wait_group(self, job: Job) -> bool:
        """Take ``job``'s group for a reconcile, waiting behind the group's open create (waiters go in the
        order they came: intent order on resume); False when the run stops first."""
        holder = self.open_groups.get(job.group)
        if holder is None or holder == job.id:
            self.open_groups[job.group] = job.id
            return True
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._group_waiters.setdefault(job.group, deque()).append((job, fut))
        ok, _ = await self.until_stop(fut)
        return ok

    def close_group(self, job: Job) -> None:
        """``job``'s create is answered (or it sends none): the group's next waiter may go — a reconcile first,
        then a parked submission."""
        if self.open_groups.get(job.group) != job.id:
            return
        del self.open_groups[job.group]
        waiters = self._group_waiters.get(job.group)
        while waiters:
            nxt, fut = waiters.popleft()
            if not fut.done():
                self.open_groups[job.group] = nxt.id
                fut.set_result(None)
                return
        parked = self._parked.get(job.group)
        if parked:
            nxt = parked.popleft()
            self.submit_queues[nxt.spec.model].put_nowait(nxt)

    def parked_jobs(self) -> list[Job]:
        """Jobs waiting for their group to submit (a drain leaves them)."""
        out = [job for waiting in self._parked.values() for job in waiting]
        for waiting in self._parked.values():
            waiting.clear()
        return out

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``coro`` under the run's TaskGroup (so an interrupt ends it with everything else)."""
        assert self.group is not None, "spawn() outside the pipeline's TaskGroup"
        self.group.create_task(coro, name=name)

    async def take_slot(self, job: Job) -> bool:
        """Admit ``job`` to submission: wait for room in the submission window (``cfg.submit_window`` jobs
        admitted and not answered yet), then for an in-flight slot of its model on an account that may take it
        (the one with the most room: ``AccountPool.slot``); False when the run stops or drains first, or no
        account may take the model any more."""
        while self._unanswered >= self.cfg.submit_window:
            ok, _ = await self.until_stop(self._window_open.wait(), self.draining)
            if not ok:
                return False
        if not job.slot:
            # the job holds no slot, so no create of it is open: it may go to any account (issue 18)
            candidates = self.accounts.usable(job.spec.model)
            if not candidates:
                return False
            ok, acct = await self.until_stop(self.accounts.slot(job.spec.model, candidates), self.draining)
            job.slot = ok
            if not ok:
                return False
            job.account = acct.name
        if not job.unanswered:
            job.unanswered = True
            self._unanswered += 1
            if self._unanswered >= self.cfg.submit_window:
                self._window_open.clear()
        return True

    def _answered(self, job: Job) -> None:
        """``job`` leaves the submission window (its create was answered, refused, or never sent)."""
        if job.unanswered:
            job.unanswered = False
            self._unanswered -= 1
            if self._unanswered < self.cfg.submit_window:
                self._window_open.set()

    def adopt_slot(self, job: Job) -> None:
        """Count a task found in flight on resume against its model's cap, even beyond it."""
        if not job.slot:
            self.account_of(job).limits.in_flight(job.spec.model).adopt()
            job.slot = True

    async def free_slot(self, job: Job) -> None:
        """The job's task is terminal (or was never made): give its slot back."""
        self._answered(job)
        if job.slot:
            job.slot = False
            await self.account_of(job).limits.in_flight(job.spec.model).release()

    async def call(
        self, op: Op, fn: Callable[[], Awaitable[T]], *, tries: int = 6, account: Account | None = None
    ) -> T:
        """A query, list or cancel through its limiter (lists have their own) — ``account``'s, the home account's
        by default — retried as ``classify`` says.

        Raises the last ``ApiError`` when it is final (NEVER) or ``tries`` ran out; ``Stopped`` when the run
        stops while waiting.
        """
        attempt = 0
        limits = account.limits if account is not None else self.limits
        limiter = limits.listing if op == "list" else limits.query
        while True:
            ok, _ = await self.until_stop(limiter.acquire())
            if not ok:
                raise Stopped
            try:
                ok, result = await self.until_stop(fn())
            except ApiError as exc:
                verdict = classify(exc, op=op, attempt=attempt)
                if isinstance(exc, RateLimited):
                    self.throttled += 1
                    limiter.on_throttled(exc.retry_after)
                attempt += 1
                if verdict.action is not Action.RETRY or attempt >= tries:
                    raise
                log.debug("api.retry", op=op, reason=verdict.reason, delay=round(verdict.delay, 3))
                if not await self.sleep(verdict.delay):
                    raise Stopped from None
                continue
            if not ok:
                raise Stopped
            return cast(T, result)

    async def record(self, job: Job | str | None, event: str, **fields: Any) -> None:
        """Append one ledger line about ``job`` (a Job, a job id, or None for run lines); durable on return,
        and folded into ``state``."""
        job_id = job.id if isinstance(job, Job) else job
        data, line = self.ledger.prepare(event, job_id, fields)
        await self.ledger.append_raw(data)
        self._fold(event, job_id, fields, line)
        if isinstance(job, Job) and job.unanswered and job.state.state not in ("planned", "submitting"):
            self._answered(job)
        if self.on_change is not None:
            self.on_change()

    async def record_many(self, event: str, lines: list[tuple[str, dict[str, Any]]]) -> None:
        """Append one ``event`` line per (job id, fields), durable together (one pending write, so one
        fsync at most) on return, and fold them into ``state``: the start of a 10,000-job run writes 10,000
        ``planned`` lines, and a task plus a future per line cost more than the lines."""
        if not lines:
            return
        prepared = [self.ledger.prepare(event, job_id, fields) for job_id, fields in lines]
        await self.ledger.append_raw(b"".join(data for data, _ in prepared))
        for (job_id, fields), (_, line) in zip(lines, prepared, strict=True):
            self._fold(event, job_id, fields, line)
        if self.on_change is not None:
            self.on_change()

    def _fold(self, event: str, job_id: str | None, fields: dict[str, Any], line: Line) -> None:
        """A durable line into ``state`` (the model validated from the dict it was written from) and the
        money guard."""
        self.state.apply(line)
        if self.guard is not None and job_id is not None:
            self.guard.observe(event, job_id, self.state.jobs.get(job_id), fields)

    def queue_download(self, job: Job) -> None:
        """Hand a succeeded job to the downloader; the soonest-expiring URL goes first."""
        expires = job.state.url_expires
        self._seq += 1
        self.fetch_inbox.put_nowait((expires if expires is not None else math.inf, self._seq, job.id))

    def settle(self, job: Job) -> None:
        """The run is done with ``job`` (final state, or left alone); ends the run with the last one."""
        self.open_jobs.discard(job.id)
        if not self.open_jobs:
            self.done.set()

    def leave(self, job: Job, why: str) -> None:
        """Leave ``job`` untouched this run (it stays in its state for a later run)."""
        self.left.add(job.id)
        job.log.info("job.left", reason=why)
        self.settle(job)

    def is_final(self, job: Job) -> bool:
        return job.state.state in FINAL_STATES
