"""Sending one job's create request, and recording what its answer proves.

The job holds an in-flight slot and its look-alike group (``RunContext.open_group``: no other create of the
group is unanswered), and its first attempt may already hold its submit-limiter token. ``submit`` writes the
``submitting`` intent (with the server clock's offset) and waits until it is durable, notes it in the host's
register (``runner.store.claims``), then POSTs. The answer decides:

* a task id → ``submitted``; the group opens for the next look-alike; the job goes to the tracker;
* RETRY (a 429, or a failure before the request left: nothing was made) → slow down, wait, send again;
* NEVER (the service refused it with its own code) → ``failed``, kind ``refused``: nothing was made;
* AMBIGUOUS (timeout, reset, 5xx or a page that is not the service's, after the request left: a paid task may
  exist, and the API has no idempotency key) → ``unanswered``; ``submit`` returns False and the caller hands
  the job to reconcile, which keeps the group closed until it has decided.
"""

from __future__ import annotations

import asyncio
import time

from runner.engine.classify import Action, classify
from runner.engine.context import RunContext
from runner.engine.job import Job
from runner.engine.waiting import Stopped
from runner.errors import ApiError, PermanentError, RateLimited
from runner.store.events import FAILED, REFUSED, SUBMITTED, SUBMITTING, UNANSWERED, UNSENT


async def submit(ctx: RunContext, job: Job, *, admitted: bool = False) -> bool:
    """Send the job's create request (its slot and group are held) until it is answered, refused or ambiguous.
    ``admitted``: the first attempt already holds its token of the submit limiter. False when the answer was
    ambiguous (the caller reconciles); True otherwise (answered, refused, or left by a drain)."""
    attempt = 0
    while True:
        # the slot was given back after a Throttling.Concurrency refusal: wait for room under the new cap (on
        # whichever account has it: the refused create made nothing)
        if not job.slot and not await ctx.take_slot(job):
            await _left_by_drain(ctx, job)
            return True
        account = ctx.account_of(job)  # (fixed while the job holds its slot)
        limiter = account.limits.submit(job.spec.model)
        cap = account.limits.in_flight(job.spec.model)
        if not admitted:
            # issue 19: the local file is uploaded (or its upload reused) before the token; False: failed or left
            if ctx.uploads is not None and not await ctx.uploads.ready(job):
                return True
            ok, _ = await ctx.until_stop(limiter.acquire(), ctx.draining)
            if not ok:
                await _left_by_drain(ctx, job)
                return True
        admitted = False
        clock = account.server_clock
        known = clock.known
        model = account.spelling(job.spec.model)  # the model as the account's region spells it
        await ctx.record(
            job, SUBMITTING, attempt=job.state.attempts + 1, model=model,
            skew=round(clock.offset, 3) if known else None, skew_err=round(clock.error, 3) if known else None,
            account=account.name, cost=account.cost(job.spec.model, job.spec.size, job.spec.duration),
        )  # fmt: skip
        if account.claims is not None:  # other runs on this host see the intent before the request leaves
            account.claims.intent(job.id, job.group, job.body_digest)
        # issue 19: the body names an uploaded local file by its oss:// URL, with the header that resolves it
        body, headers = ctx.uploads.create_args(job) if ctx.uploads is not None else (job.spec.request, None)
        if body.get("model") != model:
            body = {**body, "model": model}
        try:
            ok, created = await ctx.until_stop(account.client.create(body, headers))
        except ApiError as exc:
            if ctx.uploads is not None and ctx.uploads.lost(job, exc):  # issue 19: the file is gone: upload again
                attempt += 1
                continue  # (not admitted: the next attempt uploads, then takes a token)
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
            if verdict.action is Action.REFUSED:  # the account (or this model for it), not the job: exit 4
                if account.claims is not None:
                    account.claims.done(job.id)
                code = exc.code or f"HTTP{exc.status}"
                await ctx.refuse(code, exc.message, exc.request_id, scope=verdict.scope, model=job.spec.model,
                                 account=account)  # fmt: skip
                await ctx.record(job, UNSENT, reason=f"{code}: {exc.message}")  # as it was: planned
                await ctx.free_slot(job)
                ctx.close_group(job)
                if ctx.accounts.usable(job.spec.model) and not ctx.draining.is_set():
                    ctx.submit_queues[job.spec.model].put_nowait(job)  # issue 18: another account takes it
                else:
                    ctx.leave(job, "refused")
                return True
            if verdict.action is Action.NEVER and isinstance(exc, PermanentError):
                if account.claims is not None:
                    account.claims.done(job.id)
                code = exc.code or f"HTTP{exc.status or ''}"
                await fail(ctx, job, "submit", code, exc.message, exc.request_id, kind=REFUSED)
                return True
            if verdict.action is not Action.AMBIGUOUS:  # nothing was made: wait and send again
                # (an outage that lasts is the run's to judge: it stops after --max-outage, blaming nobody)
                delay = verdict.delay if verdict.action is Action.RETRY else min(60.0, 2.0 ** min(attempt, 6))
                job.log.info("job.retry", reason=verdict.reason,
                         delay=round(delay, 3))  # fmt: skip
                ok, _ = await ctx.until_stop(asyncio.sleep(delay), ctx.draining)
                if not ok:  # the last answer proved nothing was made: the job is as it was before
                    await ctx.record(job, UNSENT, reason=verdict.reason)
                    await _left_by_drain(ctx, job)
                    return True
                continue
            job.log.warning("job.ambiguous", reason=verdict.reason)
            await ctx.record(job, UNANSWERED, reason=verdict.reason, until=time.time())
            return False
        if not ok:
            raise Stopped
        await on_submitted(ctx, job, created.task_id, created.request_id, adopted=False)
        return True


async def _left_by_drain(ctx: RunContext, job: Job) -> None:
    """The run stops (raise ``Stopped``) or drains while the job waits to send its create again: a drain
    sends nothing new, so the job is left (no task was made: the last answer proved it; its intent stays in
    the ledger and the next run reconciles it)."""
    if not ctx.draining.is_set() or ctx.stopping:
        raise Stopped
    await ctx.free_slot(job)
    ctx.close_group(job)
    ctx.leave(job, "drain")


async def on_submitted(ctx: RunContext, job: Job, task_id: str, request_id: str | None, *, adopted: bool) -> None:
    """Record the job's task, open its group for the next look-alike, and hand it to the tracker."""
    ctx.known_tasks.add(task_id)  # before any await: a concurrent reconcile must not adopt it
    account = ctx.account_of(job)
    if account.claims is not None and not adopted:  # (reconcile claims what it adopts itself, atomically)
        account.claims.claim(job.id, [task_id])
    job.submitted_at = ctx.limits.clock.now()  # the poll schedule's clock (injectable)
    job.stalled = False
    job.seen = False
    await ctx.record(job, SUBMITTED, task_id=task_id, request_id=request_id, adopted=adopted, account=account.name)
    ctx.close_group(job)
    job.log.info("job.submitted", task_id=task_id, adopted=adopted, account=account.name)
    ctx.follow(job)


async def fail(
    ctx: RunContext,
    job: Job,
    stage: str,
    code: str | None,
    message: str | None,
    request_id: str | None = None,
    task_id: str | None = None,
    *,
    kind: str,
) -> None:
    """Record the job as failed (``kind``: what it means for money, ``runner.store.state``), free its slot and its
    group, and end the run's work on it."""
    await ctx.record(
        job, FAILED, stage=stage, code=code, message=message, request_id=request_id, task_id=task_id, kind=kind
    )
    job.log.warning("job.failed", stage=stage, code=code, message=message)
    await ctx.free_slot(job)
    ctx.close_group(job)
    ctx.settle(job)
