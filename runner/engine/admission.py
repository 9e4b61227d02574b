"""The submit stage's loop: one per model, admitting queued jobs in manifest order to submission.

A job is admitted when it has, in this order: an in-flight slot of its model (held until its task is
final), its look-alike group (``RunContext.open_group``: no other create of the group is unanswered — else
it gives the slot back and waits, parked, for the group's answer), a budget reservation (``--budget``), and
a token of the model's submit limiter. The rest of its submission runs as its own task: ``submit``, and
``reconcile`` when the create's answer proved nothing.

Rate and concurrency are separate limits (aiometer style); a parked look-alike costs no slot, so jobs of
other groups go on meanwhile.
"""

from __future__ import annotations

from runner.engine.context import RunContext
from runner.engine.job import Job
from runner.engine.reconcile import reconcile
from runner.engine.submitter import submit
from runner.engine.waiting import Stopped


async def submitter(ctx: RunContext, model: str) -> None:
    """Take the model's queued jobs in manifest order and admit each; ends on stop or drain."""
    queue = ctx.submit_queues[model]
    while not ctx.stopping:
        ok, job = await ctx.until_stop(queue.get())
        if not ok:
            return
        if ctx.draining.is_set():
            ctx.leave(job, "drain")
            continue
        if not ctx.accounts.usable(model):  # every account refused the model: the job stays as it is
            ctx.leave(job, "refused")
            continue
        if not await ctx.take_slot(job):
            if ctx.draining.is_set() and not ctx.stop.is_set():
                ctx.leave(job, "drain")
                continue
            if not ctx.stopping and not ctx.accounts.usable(model):
                ctx.leave(job, "refused")
                continue
            return
        account = ctx.account_of(job)
        # checked once the slot is held: a refusal or a pause may have come while the job waited for it
        if account.refusals.blocks(job.spec.model):  # the account refused this model: another may take it
            await ctx.free_slot(job)
            if ctx.accounts.usable(model):
                queue.put_nowait(job)
            else:
                ctx.leave(job, "refused")  # the job stays as it is
            continue
        pause = account.breaker.wait(job.spec.model) if account.breaker is not None else 0.0
        if pause > 0:  # the breaker is open: the model's tasks keep failing on the server's side
            await ctx.free_slot(job)
            queue.put_nowait(job)  # (back at the end of the line; the pause is the model's, not the job's)
            if not await ctx.sleep(pause):
                return
            continue
        # issue 19: a local file the create carries is uploaded (or its upload reused) before the job takes its
        # group, budget and token; False: the job was failed or left, its slot given back
        if ctx.uploads is not None and not await ctx.uploads.ready(job):
            continue
        if not ctx.open_group(job):  # a look-alike's create is unanswered: wait for its answer, slot-free
            await ctx.free_slot(job)
            continue
        price = account.cost(job.spec.model, job.spec.size, job.spec.duration)  # in the account's region
        if ctx.guard is not None and not ctx.guard.reserve(job.id, price if price is not None else job.state.cost):
            await ctx.free_slot(job)
            ctx.close_group(job)
            ctx.leave(job, "budget")  # a cap is reached: the job waits for a later run
            continue
        # The rate limiter admits jobs here, one by one in manifest order; the rest of the submission runs
        # as its own task, so the fsync'd intents of jobs admitted together share one group commit and their
        # round trips overlap (one at a time, a submission cost two fsyncs and a round trip: ~100/s at most).
        ok, _ = await ctx.until_stop(account.limits.submit(job.spec.model).acquire())
        if not ok:
            return
        ctx.spawn(_submit_admitted(ctx, job), name=f"submit-{job.id[:8]}")


async def _submit_admitted(ctx: RunContext, job: Job) -> None:
    try:
        if not await submit(ctx, job, admitted=True):
            await reconcile(ctx, job)
    except Stopped:
        return
