"""The run: submitter, tracker and downloader as tasks of one ``asyncio.TaskGroup``; resume rules; shutdown.

``Pipeline.run()`` starts from the ledger's ``RunState`` and the manifest's jobs and puts every job where
its last known state says it belongs (DESIGN.md "Resume rules"):

* no line yet, or ``planned`` → the submit queue (``--max-jobs`` caps how many new ones go);
* ``submitting`` without an answer (undecided) → reconcile (``reconcile.py``), one look-alike group at a
  time in intent order: the create may have made a task;
* ``pending`` / ``running`` → the tracker; never submitted again;
* ``succeeded`` → the downloader (which asks the task for a fresh URL when it expired);
* ``downloaded`` → nothing, if the file is there with its sha256; otherwise the downloader;
* ``expired`` (paid, video lost) → left alone unless ``--regenerate-expired``;
* ``failed`` → left alone unless ``--retry-failed`` (then a refused create or a FAILED task is submitted
  again); a paid video that could not be saved goes back to the downloader (also without the flag, unless
  it was refused for its size or its URL kept expiring); ``canceled`` → left alone;
* ledger jobs the manifest no longer has (``orphans``): a task they may have paid for is still reconciled,
  followed and downloaded under the old name; the others are never touched.

Before anything is sent, a resumed run asks the server about its youngest tasks: when it knows none of them
under this key, the key is another account's, and the run stops (exit 4) instead of expiring or resending.

Rate and concurrency are separate limits (aiometer style): a per-model sliding-window submit limiter and a
per-model in-flight cap held from submission until the task is final, plus one shared query limiter.
Queues between stages are unbounded on purpose: they hold at most one entry per job, and the in-flight
cap is what bounds work in progress.

Shutdown: ``interrupt()`` (SIGINT/SIGTERM) sets ``stop``: every loop ends at its next await, requests in
flight are abandoned (their intents are in the ledger, so the next run reconciles them), and the run
returns within the grace time. With ``drain`` the first interrupt only stops submitting and lets the
tasks in flight finish and download; a second one stops at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.engine.accounts import Account, AccountPool
from runner.engine.admission import submitter
from runner.engine.api import DashScopeClient
from runner.engine.context import RunContext, log
from runner.engine.fetcher import fetcher
from runner.engine.hooks import Ledger
from runner.engine.job import Job, Spec
from runner.engine.limits import Limits
from runner.engine.poller import PollSchedule
from runner.engine.reconcile import reconcile
from runner.engine.recovery import planned_fields, recover
from runner.engine.refusal import Breaker, Refusal
from runner.engine.settings import PipelineConfig
from runner.engine.tracker import tracker
from runner.engine.uploads import Uploads
from runner.engine.watch import check_accounts, outage_watch
from runner.engine.wire import valid_task_id
from runner.store.claims import Claims
from runner.store.events import NOT_SAVED, ORPHANED, PLANNED, RUN_FINISHED, STATES, UNANSWERED
from runner.store.files import sha256_file
from runner.store.job import JobState
from runner.store.state import RunState

__all__ = ["Outcome", "Pipeline", "PipelineConfig"]


_PLANNED_CHUNK = 1000  # planned lines made durable together (bounded: a chunk's bytes are joined at once)


@dataclass(frozen=True)
class Outcome:
    """How the run ended: the exit code and what the user should hear about."""

    exit_code: int
    interrupted: bool
    counts: dict[str, int]  # the manifest's jobs by state
    left: list[str] = field(default_factory=list)  # names of jobs not finished (not submitted, failed, …)
    orphans: list[str] = field(default_factory=list)  # ledger jobs no longer in the manifest
    failures: list[dict[str, object]] = field(default_factory=list)
    undecided: list[dict[str, Any]] = field(default_factory=list)  # creates that may have made a task
    refusals: list[Refusal] = field(default_factory=list)  # the account refused work (exit 4)
    recovered: int = 0  # jobs a lost ledger was rebuilt with (sidecars, the register)
    missing: dict[str, str] = field(default_factory=dict)  # job name -> the account it is with, not in this run


class Pipeline:
    """One run of a manifest against the API (see the module docstring)."""

    def __init__(
        self,
        cfg: PipelineConfig,
        specs: Sequence[Spec],
        *,
        client: DashScopeClient,
        ledger: Ledger,
        state: RunState,
        limits: Limits,
        schedule: PollSchedule,
        on_change: Callable[[], None] | None = None,
        claims: Claims | None = None,
        accounts: AccountPool | None = None,
    ) -> None:
        """``accounts``: the run's accounts (issue 18), each with its client, limits, claims and poll schedule;
        without it, ``client``/``limits``/``claims``/``schedule`` are the one account named "default"."""
        if accounts is None:
            accounts = AccountPool([Account("default", cfg.region, client, limits, claims, schedule=schedule)])
        for account in accounts.all:
            if account.breaker is None:
                account.breaker = Breaker(limits.clock)
            if account.schedule is None:
                account.schedule = schedule
        self.ctx = RunContext(
            cfg=cfg, client=client, ledger=ledger, state=state, limits=limits, on_change=on_change, accounts=accounts,
        )  # fmt: skip
        self.ctx.uploads = Uploads(self.ctx)  # issue 19: local files the creates carry
        self.specs = list(specs)
        self.schedule = schedule
        self.interrupts = 0
        self.recovered = 0  # jobs adopted from sidecars and the register (a lost ledger)

    def interrupt(self) -> None:
        """SIGINT/SIGTERM: stop now, or (with ``drain``) stop submitting first and stop on the second."""
        self.interrupts += 1
        ctx = self.ctx
        if ctx.cfg.drain and self.interrupts == 1:
            log.info("run.draining")
            ctx.draining.set()
        else:
            log.info("run.interrupted")
            ctx.stop.set()

    async def run(self) -> Outcome:
        """Resume or start the run, work until every job is settled or the run is interrupted."""
        ctx = self.ctx
        await self._place_jobs()
        await check_accounts(self.ctx)
        if not ctx.open_jobs:
            ctx.done.set()
        models = sorted({j.spec.model for j in ctx.jobs.values()})
        try:
            async with asyncio.TaskGroup() as tg:
                ctx.group = tg
                # Reconciles first, in intent order: each takes its look-alike group before any submitter can,
                # so a group's undecided creates are decided one at a time, oldest first, before it sends more.
                for job in sorted(self._to_reconcile, key=lambda j: j.state.intent_ts or j.state.updated):
                    tg.create_task(reconcile(ctx, job), name=f"reconcile-{job.id[:8]}")
                for model in models:
                    tg.create_task(submitter(ctx, model), name=f"submit-{model}")
                for account in ctx.accounts.all:  # one tracker and one outage watch per account (issue 18)
                    schedule = account.schedule if account.schedule is not None else self.schedule
                    tg.create_task(tracker(ctx, schedule, account), name=f"tracker-{account.name}")
                    tg.create_task(outage_watch(ctx, account), name=f"outage-watch-{account.name}")
                tg.create_task(fetcher(ctx), name="fetcher")
                tg.create_task(self._drain_watch(), name="drain-watch")
        finally:
            ctx.group = None
        return await self._finish()

    # ------------------------------------------------------------------------------------------ start

    async def _place_jobs(self) -> None:
        ctx, cfg = self.ctx, self.ctx.cfg
        self._to_reconcile: list[Job] = []
        if not ctx.state.jobs:  # a new folder, or one whose ledger was lost: adopt what it already paid for
            self.recovered = await recover(ctx, self.specs)
        ctx.known_tasks |= ctx.state.known_task_ids()
        ctx.last_seen = ctx.state.last_ts()
        new_allowed = cfg.max_jobs if cfg.max_jobs is not None else len(self.specs)
        resumed = bool(ctx.state.jobs)
        # New jobs' `planned` lines are appended a chunk at a time, each chunk one write and one fsync (one
        # await per line cost ~0.8 ms a job: 8 s before the first create of 10,000 jobs), in manifest order.
        new = [spec for spec in self.specs if spec.job_id not in ctx.state.jobs]
        for i in range(0, len(new), _PLANNED_CHUNK):
            chunk = new[i : i + _PLANNED_CHUNK]
            await ctx.record_many(PLANNED, [(s.job_id, planned_fields(s, cfg.region)) for s in chunk])
        for spec in self.specs:
            st = ctx.state.jobs[spec.job_id]
            job = Job(spec, st, account=st.account)
            ctx.jobs[spec.job_id] = job
            ctx.submit_queues.setdefault(spec.model, asyncio.Queue())
        manifest_ids = {s.job_id for s in self.specs}
        orphans = [st for jid, st in ctx.state.jobs.items() if jid not in manifest_ids]
        self.orphans = sorted(st.name or st.job_id for st in orphans)
        if orphans:
            log.warning("run.orphans", count=len(orphans), names=self.orphans[:20])
            newly: list[tuple[str, dict[str, Any]]] = [(st.job_id, {}) for st in orphans if not st.orphan]
            await ctx.record_many(ORPHANED, newly)  # status and the gallery say so
        for st in orphans:  # a task they may have paid for is still decided, followed and saved
            if st.state in _PAID_OR_MAYBE and st.request:
                ctx.jobs[st.job_id] = Job(OrphanSpec.of(st), st, account=st.account)
                ctx.submit_queues.setdefault(st.model, asyncio.Queue())
        for job in ctx.jobs.values():
            if job.state.state in ("pending", "running", "succeeded") and not valid_task_id(job.state.task_id):
                # an older version recorded an id a proxy made up (empty, say): that answer proved nothing
                await ctx.record(job, UNANSWERED, reason="the ledger holds an invalid task id",
                                 task_id=job.state.task_id, until=job.state.answered_at)  # fmt: skip
        self.missing = _missing_accounts(ctx)
        for job in ctx.jobs.values():
            state = job.state.state
            if job.id in self.missing:
                continue  # its task is with an account this run does not have: asked about by none (left)
            if state == "failed" and _video_exists(job.state) and (cfg.retry_failed or _worth_fetching(job.state)):
                ctx.open_jobs.add(job.id)  # the task succeeded and billed: fetch its video again, never regenerate
                ctx.queue_download(job)
            elif job.id not in manifest_ids and state in ("planned", "failed", "expired", "canceled"):
                continue  # an orphan that never made a task (or is done): untouched
            elif (
                state == "planned"
                or (state == "failed" and cfg.retry_failed)
                or (state == "canceled" and cfg.retry_canceled)
                or (state == "expired" and cfg.regenerate_expired)  # paid once already: only when asked
            ):
                if new_allowed <= 0:
                    ctx.left.add(job.id)
                    continue
                new_allowed -= 1
                ctx.open_jobs.add(job.id)
                ctx.submit_queues[job.spec.model].put_nowait(job)
            elif state == "submitting":
                ctx.open_jobs.add(job.id)
                ctx.adopt_slot(job)
                self._to_reconcile.append(job)
            elif state in ("pending", "running"):
                ctx.open_jobs.add(job.id)
                ctx.adopt_slot(job)
                job.submitted_at = _submitted_clock(ctx, job.state)
                ctx.follow(job)
            elif state == "succeeded":
                ctx.open_jobs.add(job.id)
                ctx.queue_download(job)
            elif state == "downloaded" and not await _file_ok(cfg.out_dir, job.state):
                job.log.info("job.file_missing", path=job.state.path)
                ctx.open_jobs.add(job.id)
                ctx.queue_download(job)
        log.info("run.resumed" if resumed else "run.placed",
                 jobs=len(ctx.jobs), open=len(ctx.open_jobs), reconcile=len(self._to_reconcile))  # fmt: skip

    async def _drain_watch(self) -> None:
        """With ``drain``: once submitting stopped, queued jobs are left and the rest finish."""
        ctx = self.ctx
        ok, _ = await ctx.until_stop(ctx.draining.wait())
        if not ok:
            return
        for queue in ctx.submit_queues.values():
            while not queue.empty():
                ctx.leave(queue.get_nowait(), "drain")
        for job in ctx.parked_jobs():
            ctx.leave(job, "drain")

    # ------------------------------------------------------------------------------------------ end

    async def _finish(self) -> Outcome:
        ctx = self.ctx
        refusals = ctx.refused()
        refused = bool(refusals)
        several = len(ctx.accounts) > 1
        # with several accounts, a refusal another account made up for interrupts nothing (it is still said)
        stopped = ctx.stop.is_set() or (ctx.draining.is_set() and not (several and not ctx.accounts.out))
        interrupted = not refused and stopped
        counts = dict.fromkeys(STATES, 0)
        for job in ctx.jobs.values():
            counts[job.state.state] = counts.get(job.state.state, 0) + 1
        all_done = counts["downloaded"] == len(ctx.jobs)
        code = 130 if interrupted else 4 if refused and not (several and all_done) else (0 if all_done else 1)
        left = sorted(j.spec.name for j in ctx.jobs.values() if j.state.state != "downloaded")
        failures: list[dict[str, object]] = [
            {"name": j.spec.name, "code": j.state.failure.code, "message": j.state.failure.message}
            for j in ctx.jobs.values()
            if j.state.state == "failed" and j.state.failure is not None
        ]
        undecided: list[dict[str, Any]] = [
            {"name": j.spec.name, "reason": j.state.undecided, "candidates": list(j.state.candidates)}
            for j in ctx.jobs.values()
            if j.state.state == "submitting"
        ]
        await ctx.record(None, RUN_FINISHED, exit_code=code, counts=counts)
        return Outcome(
            code,
            interrupted,
            counts,
            left,
            self.orphans,
            failures,
            undecided,
            refusals,
            self.recovered,
            {ctx.jobs[j].spec.name: name for j, name in self.missing.items()},
        )


def _missing_accounts(ctx: RunContext) -> dict[str, str]:
    """Jobs whose intent or task is with an account this run does not have (job id -> the account's name): no
    other key can see their task, so they are left as they are until a run with that account (issue 18). A job
    of an older ledger names no account: it is the home account's. Other jobs are free to go to any account."""
    out: dict[str, str] = {}
    for job in ctx.jobs.values():
        st = job.state
        if st.account is None or ctx.accounts.get(st.account) is not None:
            continue
        if (st.state in _PAID_OR_MAYBE and st.state != "downloaded") or (st.state == "failed" and _video_exists(st)):
            out[job.id] = st.account
        else:
            job.account = None  # nothing of it is with that account: the job may go to any
    for job_id, name in out.items():
        job = ctx.jobs[job_id]
        ctx.left.add(job_id)
        log.error("run.account_missing", job_id=job_id, name=job.spec.name, account=name)
    return out


def _submitted_clock(ctx: RunContext, st: JobState) -> float:
    """The limiter clock's reading at the task's submission, estimated from the ledger's wall time."""
    now = ctx.limits.clock.now()
    return now - max(0.0, time.time() - st.updated) if st.updated else now


def _video_exists(st: JobState) -> bool:
    """A failed job whose task SUCCEEDED (it failed at the download stage): the video is paid for."""
    return st.failure is not None and st.failure.kind == NOT_SAVED and st.task_status == "SUCCEEDED"


def _worth_fetching(st: JobState) -> bool:
    """A paid video not saved for a reason another try may not meet again (not its size, not a URL the task
    keeps answering expired): a plain resume fetches it (issue 14)."""
    return st.failure is not None and st.failure.code not in ("DownloadRefused", "UrlExpired")


#: States in which a job's task is paid for, or may be: followed even after the job left the manifest.
_PAID_OR_MAYBE = frozenset({"submitting", "pending", "running", "succeeded", "downloaded"})


@dataclass(frozen=True)
class OrphanSpec:
    """A job no longer in the manifest, as its ``planned`` line described it (issue 14: its paid task is still
    followed and its video saved under the old name)."""

    job_id: str
    name: str
    model: str
    request: dict[str, Any]
    size: str
    duration: int
    seed: int | None

    @classmethod
    def of(cls, st: JobState) -> OrphanSpec:
        return cls(st.job_id, st.name or st.job_id[:8], st.model, st.request, st.size or "", st.duration or 0, st.seed)


async def _file_ok(out_dir: Path, st: JobState) -> bool:
    """A downloaded job's file is still there with the recorded sha256."""
    if not st.path or not st.sha256:
        return False
    path = out_dir / st.path
    if not path.is_file():
        return False
    return await asyncio.to_thread(sha256_file, path) == st.sha256
