"""The poll stage: follow every task in flight until it is final, on ``PollSchedule``'s due times.

One loop takes new tasks from ``ctx.poll_inbox``, asks ``PollSchedule`` which tasks are due, and queries
them concurrently through the query limiter; tasks known RUNNING are swept by one list request for all
of them (through the list limiter) when the schedule says so. SUCCEEDED, FAILED, CANCELED and UNKNOWN are final:
the job's in-flight slot is freed at that moment (the server's concurrency counts processing tasks, not
downloads). A FAILED task whose code is a server-side fault is submitted again, a bounded number of
times (a failed task is not billed); any other failure is recorded with the server's code and message.

A task that exists is paid for if it succeeds, so nothing on our side of the wire ends it (issue 14): a query
that fails — an outage, a proxy's page, a 404 that is not the service's — is asked again later with back-off,
for as long as the run lasts. UNKNOWN for a task younger than the retention is not ``expired``: a task id no
query ever confirmed was an answer that proved nothing (reconcile finds the real task); a confirmed one means
the server does not know this run's tasks under this key (an account problem: the run stops, nothing expires).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial

from runner.engine.accounts import Account
from runner.engine.classify import Action, classify, classify_task_failure
from runner.engine.context import RunContext, log
from runner.engine.job import Job
from runner.engine.poller import PollSchedule
from runner.engine.reconcile import reconcile
from runner.engine.task_times import Kind
from runner.engine.waiting import Stopped
from runner.engine.wire import TaskInfo, TaskPage
from runner.errors import ApiError
from runner.models import RETENTION_SECONDS
from runner.store.events import CANCELED, EXPIRED, FAILED, SUCCEEDED, TASK_FAILED, TASK_STATUS, UNANSWERED
from runner.times import parse_task_time

#: Longest wait between two queries of a task the API keeps failing to answer about.
_MAX_ERROR_DELAY = 60.0
#: A task this much younger than the retention (seconds since its answer) cannot have expired.
_YOUNG = RETENTION_SECONDS - 600.0
#: A sweep reads up to this many pages of this many RUNNING tasks (the API allows 100 a page).
SWEEP_PAGE_SIZE = 100
SWEEP_PAGES = 10


async def tracker(ctx: RunContext, schedule: PollSchedule, account: Account | None = None) -> None:
    """Poll due tasks of ``account`` (the home account by default) until the run stops or every job is settled:
    each account's tasks are asked about with its key, through its limiters, on its own schedule (issue 18)."""
    account = account if account is not None else ctx.accounts.home
    client, inbox = account.client, ctx.inboxes[account.name]
    clock = ctx.limits.clock
    tasks: dict[str, Job] = {}
    errors: dict[str, int] = {}
    wake = asyncio.Event()

    async def poll(task_id: str) -> None:
        job = tasks[task_id]
        try:
            info = await ctx.call("get", partial(client.get, task_id), tries=1, account=account)
        except Stopped:
            return
        except ApiError as exc:  # never the job's failure: ask again later (the module docstring)
            n = errors.get(task_id, 0)
            verdict = classify(exc, op="get", attempt=n)
            if verdict.action is Action.REFUSED:  # the key no longer reads the account's tasks: stop (exit 4)
                await ctx.refuse(exc.code or f"HTTP{exc.status}", exc.message, exc.request_id, account=account)
                ctx.abandon(account, "account")
                return
            errors[task_id] = n + 1
            delay = verdict.delay if verdict.action is Action.RETRY else min(_MAX_ERROR_DELAY, 2.0 ** min(n, 6))
            (job.log.warning if n and n % 10 == 0 else job.log.info)(
                "task.poll_error", task_id=task_id, errors=n + 1, error=str(exc)
            )
            schedule.poll_failed(task_id, min(_MAX_ERROR_DELAY, delay))
            return
        finally:
            wake.set()
        errors.pop(task_id, None)
        if info.status != "UNKNOWN":
            job.seen = True
        # the job moved on (a retry, a cancel), or the run left it (its account's key no longer sees its tasks)
        if job.state.task_id != task_id or ctx.is_final(job) or job.id not in ctx.open_jobs:
            schedule.remove(task_id)
            tasks.pop(task_id, None)
            return
        sweeping = schedule.sweeping
        if info.terminal:
            schedule.observe(task_id, info.status, seconds=server_seconds(info))
            tasks.pop(task_id, None)
            await on_final(ctx, job, info)
            return
        if schedule.observe(task_id, info.status):
            job.log.warning("task.stalled", task_id=task_id, status=info.status)
        if sweeping and not schedule.sweeping:
            log.warning("poll.sweep_off", error="the list showed running tasks as ended")
        if info.status != job.state.task_status:
            await ctx.record(job, TASK_STATUS, task_id=task_id, status=info.status)

    async def sweep(covered: frozenset[str]) -> None:
        """One list request (a page per 100 RUNNING tasks) for every task known RUNNING (``PollSchedule.sweep``)."""

        def fetch(page_no: int) -> Awaitable[TaskPage]:
            lister = partial(client.list_tasks, status="RUNNING", page_no=page_no, page_size=SWEEP_PAGE_SIZE)
            return ctx.call("list", lister, tries=1, account=account)

        try:
            running, complete = await running_tasks(fetch)
        except Stopped:
            return
        except ApiError as exc:
            if schedule.sweep_failed():
                log.warning("poll.sweep_off", error=str(exc))
            else:
                log.info("poll.sweep_error", error=str(exc))
            return
        finally:
            wake.set()
        result = schedule.sweep_done(covered, running, complete=complete)
        for task_id in result.stalled:
            job = tasks.get(task_id)
            if job is not None:
                job.log.warning("task.stalled", task_id=task_id, status="RUNNING")
        for task_id in result.running:
            job = tasks.get(task_id)
            if job is not None and job.state.task_id == task_id and job.state.task_status != "RUNNING":
                await ctx.record(job, TASK_STATUS, task_id=task_id, status="RUNNING")

    async with asyncio.TaskGroup() as polls:
        while not ctx.stopping:
            while not inbox.empty():
                job = inbox.get_nowait()
                task_id = job.state.task_id
                if task_id is None:
                    continue
                tasks[task_id] = job
                submitted = job.submitted_at if job.submitted_at is not None else clock.now()
                kind = Kind.of(job.spec.model, job.spec.size, job.spec.duration)  # what its time depends on
                schedule.add(task_id, kind, submitted, status=job.state.task_status or "PENDING")
            for task_id in schedule.due():
                polls.create_task(poll(task_id), name=f"poll-{task_id[:8]}")
            covered = schedule.sweep()
            if covered is not None:
                polls.create_task(sweep(covered), name="poll-sweep")
            wakeup = schedule.next_wakeup()
            timeout = None if wakeup is None else max(0.0, wakeup - clock.now())
            wake.clear()
            getter = asyncio.ensure_future(inbox.get())
            waiter = asyncio.ensure_future(wake.wait())
            ok, _ = await ctx.until_stop(
                asyncio.wait({getter, waiter}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            )
            waiter.cancel()
            if getter.done() and not getter.cancelled():
                inbox.put_nowait(getter.result())
            else:
                getter.cancel()
            if not ok:
                return


async def running_tasks(
    fetch: Callable[[int], Awaitable[TaskPage]], max_pages: int = SWEEP_PAGES
) -> tuple[set[str], bool]:
    """The ids the list shows RUNNING, page by page, and whether they are all of them (the last page read).

    Pages of a list that changes while it is read may shift: a task skipped that way looks ended and costs
    one query that finds it still RUNNING; nothing is lost. Past ``max_pages`` the answer is incomplete and
    confirms only the tasks it shows.
    """
    running: set[str] = set()
    for page_no in range(1, max_pages + 1):
        page = await fetch(page_no)
        running.update(item.task_id for item in page.items if item.status == "RUNNING")
        if not page.has_more:
            return running, True
    return running, False


def server_seconds(info: TaskInfo) -> float | None:
    """The task's own time by the server's clock (submit → end), or None when the answer lacks it.

    The poll schedule learns from these rather than from when a poll saw the task end: a time seen by a
    poll includes that poll's own lateness, so learning it would push every later first poll later still
    (measured at T = 1.5 s: the first poll 3 ms before the end, the second 30 ms after it, ~50 ms delay).
    """
    start, end = parse_task_time(info.submit_time), parse_task_time(info.end_time)
    if start is None or end is None:
        return None
    seconds = (end - start).total_seconds()
    return seconds if seconds > 0 else None


async def on_final(ctx: RunContext, job: Job, info: TaskInfo) -> None:
    """The job's task ended: record how, free its slot, and hand it on (download, retry, or done)."""
    task_id = info.task_id
    await ctx.free_slot(job)
    if info.status == "SUCCEEDED":
        await ctx.record(
            job,
            SUCCEEDED,
            task_id=task_id,
            video_url=info.video_url,
            url_expires=info.url_expires,
            usage=info.usage,
            orig_prompt=info.orig_prompt,
            actual_prompt=info.actual_prompt,
            submit_time=info.submit_time,
            scheduled_time=info.scheduled_time,
            end_time=info.end_time,
        )
        job.log.info("task.succeeded", task_id=task_id)
        breaker = ctx.account_of(job).breaker
        if breaker is not None:
            breaker.succeeded(job.spec.model)
        ctx.queue_download(job)
    elif info.status == "FAILED":
        await _failed(ctx, job, task_id, info.code, info.message, info.request_id)
    elif info.status == "CANCELED":
        await ctx.record(job, CANCELED, task_id=task_id)
        job.log.info("task.canceled", task_id=task_id)
        ctx.settle(job)
    else:  # UNKNOWN: older than the retention, an id that was never a task, or not visible to this key
        await on_unknown(ctx, job, task_id)


async def on_unknown(ctx: RunContext, job: Job, task_id: str) -> None:
    """The task answered UNKNOWN (the module docstring): expired only when it is old enough to be."""
    st = job.state
    answered = st.answered_at if st.answered_at is not None else st.updated
    if ctx.task_age(st) >= _YOUNG:
        await ctx.record(job, EXPIRED, task_id=task_id)
        job.log.warning("task.unknown", task_id=task_id)
        ctx.settle(job)
        return
    if ctx.account_of(job).out:  # the account refused work (a key of another account): nothing here is proof
        ctx.leave(job, "account")
        return
    if not (st.confirmed or job.seen):  # the answer named a task that does not exist: it proved nothing
        job.log.warning("task.never_existed", task_id=task_id)
        ctx.adopt_slot(job)  # the real task, if the create made one, is in flight on the server
        await ctx.record(job, UNANSWERED, reason="the answer named a task the server does not know",
                         task_id=task_id, until=answered)  # fmt: skip
        ctx.spawn(reconcile(ctx, job), name=f"reconcile-{job.id[:8]}")
        return
    await ctx.account_unknown_task(job, task_id)


async def _failed(
    ctx: RunContext, job: Job, task_id: str, code: str | None, message: str | None, request_id: str | None
) -> None:
    await ctx.free_slot(job)
    await ctx.record(
        job, FAILED, stage="task", code=code, message=message, request_id=request_id, task_id=task_id, kind=TASK_FAILED
    )
    verdict = classify_task_failure(code, attempt=job.task_failures)
    retry = verdict.action is Action.RETRY and job.task_failures < ctx.cfg.task_retries
    account = ctx.account_of(job)
    breaker = account.breaker
    if verdict.action is Action.RETRY and breaker is not None:  # a server-side code: count it per model
        pause = breaker.failed(job.spec.model, code)
        if pause is not None:
            log.warning("model.paused", model=job.spec.model, code=code, seconds=round(pause, 1), account=account.name,
                        reason=f"{breaker.threshold} tasks failed in a row with {code}")  # fmt: skip
    job.log.warning("task.failed", task_id=task_id, code=code, retry=retry)
    if not retry or ctx.draining.is_set():
        ctx.settle(job)
        return
    job.task_failures += 1
    ctx.spawn(_resubmit_later(ctx, job, verdict.delay), name=f"resubmit-{job.id[:8]}")


async def _resubmit_later(ctx: RunContext, job: Job, delay: float) -> None:
    if await ctx.sleep(delay) and not ctx.draining.is_set():
        ctx.submit_queues[job.spec.model].put_nowait(job)
    elif ctx.draining.is_set():
        ctx.leave(job, "drain")
