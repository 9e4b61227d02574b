"""The submit stage: one loop per model sends create requests within the model's rate and in-flight cap.

A job's path here: wait for an in-flight slot (held until its task is terminal), wait for the submit
limiter, write the ``submitting`` intent and wait until it is durable, then POST. The answer decides:

* a task id → ``submitted``, and the job goes to the tracker;
* RETRY (a 429 or a failure before the request left: nothing was made) → slow down, wait, send again;
* NEVER (the API refused the request) → ``failed`` with the server's code;
* AMBIGUOUS (timeout, reset, 5xx after the request left: a paid task may exist, and the API has no
  idempotency key) → reconcile through the task list before anything is sent again (``reconcile.py``).
"""

from __future__ import annotations

import asyncio

from runner.api import Action, classify
from runner.context import Job, RunContext, Stopped, log
from runner.errors import ApiError, RateLimited
from runner.state import FAILED, SUBMITTED, SUBMITTING


async def submitter(ctx: RunContext, model: str) -> None:
    """Take the model's queued jobs in manifest order and submit each; ends on stop or drain."""
    queue = ctx.submit_queues[model]
    while not ctx.stopping:
        ok, job = await ctx.until_stop(queue.get())
        if not ok:
            return
        if ctx.draining.is_set():
            ctx.leave(job, "drain")
            continue
        if not await ctx.take_slot(job):
            if ctx.draining.is_set() and not ctx.stop.is_set():
                ctx.leave(job, "drain")
                continue
            return
        if ctx.guard is not None and not ctx.guard.reserve(job.id, job.state.cost):
            await ctx.free_slot(job)
            ctx.leave(job, "budget")  # a cap is reached: the job waits for a later run
            continue
        # The rate limiter admits jobs here, one by one in manifest order; the rest of the submission runs
        # as its own task, so the fsync'd intents of jobs admitted together share one group commit and their
        # round trips overlap (one at a time, a submission cost two fsyncs and a round trip: ~100/s at most).
        ok, _ = await ctx.until_stop(ctx.limits.submit(job.spec.model).acquire())
        if not ok:
            return
        ctx.spawn(_submit_admitted(ctx, job), name=f"submit-{job.id[:8]}")


async def _submit_admitted(ctx: RunContext, job: Job) -> None:
    try:
        await submit(ctx, job, admitted=True)
    except Stopped:
        return


async def submit(ctx: RunContext, job: Job, *, admitted: bool = False) -> None:
    """Send the job's create request (its slot is held) until it is answered, refused or ambiguous.
    ``admitted``: the first attempt already holds its token of the submit limiter."""
    limiter = ctx.limits.submit(job.spec.model)
    cap = ctx.limits.in_flight(job.spec.model)
    attempt = 0
    while True:
        # the slot was given back after a Throttling.Concurrency refusal: wait for room under the new cap
        if not job.slot and not await ctx.take_slot(job):
            await _left_by_drain(ctx, job)
            return
        if not admitted:
            ok, _ = await ctx.until_stop(limiter.acquire(), ctx.draining)
            if not ok:
                await _left_by_drain(ctx, job)
                return
        admitted = False
        await ctx.record(job, SUBMITTING, attempt=job.state.attempts + 1, model=job.model)
        try:
            ok, created = await ctx.until_stop(ctx.client.create(job.spec.request))
        except ApiError as exc:
            verdict = classify(exc, op="create", attempt=attempt)
            if isinstance(exc, RateLimited):
                ctx.throttled += 1
                if exc.code == "Throttling.Concurrency":
                    # The cap drops to the slots held by the others; this job gives its slot back, so it
                    # waits under the new cap instead of being refused again (as were the other jobs of
                    # the burst holding slots while waiting to retry: 4 refusals instead of 1).
                    cap.on_throttled()
                    await ctx.free_slot(job)
                else:
                    limiter.on_throttled(exc.retry_after)
            attempt += 1
            if verdict.action is Action.RETRY:
                log.info("job.retry", job_id=job.id, name=job.spec.name, reason=verdict.reason,
                         delay=round(verdict.delay, 3))  # fmt: skip
                ok, _ = await ctx.until_stop(asyncio.sleep(verdict.delay), ctx.draining)
                if not ok:
                    await _left_by_drain(ctx, job)
                    return
                continue
            if verdict.action is Action.NEVER:
                await fail(ctx, job, "submit", exc.code or f"HTTP{exc.status or ''}", exc.message, exc.request_id)
                return
            log.warning("job.ambiguous", job_id=job.id, name=job.spec.name, reason=verdict.reason)
            from runner.reconcile import reconcile  # the two stages call each other

            ctx.spawn(reconcile(ctx, job), name=f"reconcile-{job.id[:8]}")
            return
        if not ok:
            raise Stopped
        await on_submitted(ctx, job, created.task_id, created.request_id, adopted=False)
        return


async def _left_by_drain(ctx: RunContext, job: Job) -> None:
    """The run stops (raise ``Stopped``) or drains while the job waits to send its create again: a drain
    sends nothing new, so the job is left (no task was made: the last answer proved it; its intent stays in
    the ledger and the next run reconciles it)."""
    if not ctx.draining.is_set() or ctx.stopping:
        raise Stopped
    await ctx.free_slot(job)
    ctx.leave(job, "drain")


async def on_submitted(ctx: RunContext, job: Job, task_id: str, request_id: str | None, *, adopted: bool) -> None:
    """Record the job's task and hand it to the tracker."""
    ctx.known_tasks.add(task_id)  # before any await: a concurrent reconcile must not adopt it
    job.submitted_at = ctx.limits.clock.now()  # the poll schedule's clock (injectable)
    job.stalled = False
    job.reconciles = 0
    await ctx.record(job, SUBMITTED, task_id=task_id, request_id=request_id, adopted=adopted)
    log.info("job.submitted", job_id=job.id, name=job.spec.name, task_id=task_id, adopted=adopted)
    ctx.poll_inbox.put_nowait(job)


async def fail(
    ctx: RunContext,
    job: Job,
    stage: str,
    code: str | None,
    message: str | None,
    request_id: str | None = None,
    task_id: str | None = None,
) -> None:
    """Record the job as failed, free its slot, and end the run's work on it."""
    await ctx.record(job, FAILED, stage=stage, code=code, message=message, request_id=request_id, task_id=task_id)
    log.warning("job.failed", job_id=job.id, name=job.spec.name, stage=stage, code=code, message=message)
    await ctx.free_slot(job)
    ctx.settle(job)
