"""Reconcile: find the task a lost create answer may have made, before anything is sent again.

The create endpoint has no idempotency key, so a create whose answer never arrived (timeout, reset,
5xx after sending, or a crash between the ``submitting`` intent and its answer) may have made a paid
task. Sending again blindly could pay twice. Instead (DESIGN.md "Resume rules", API.md decision 9):

1. list the model's tasks in a window starting 8 h 10 min before the intent (so both readings of the
   list's clock, UTC and UTC+8, cover the moment), at most 24 h long, every page;
2. drop the tasks some job of this ledger already owns, the ones that cost nothing (FAILED, CANCELED,
   UNKNOWN), and the ones created well before the intent;
3. query the rest; list items and unfinished tasks carry no prompt, so a PENDING or RUNNING candidate
   is followed until it finishes; a SUCCEEDED one whose ``orig_prompt`` and usage (size, duration) equal
   the job's is adopted;
4. only when no candidate matches is the create sent again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from runner.api import TaskInfo, TaskPage
from runner.context import Job, RunContext, Stopped, log
from runner.errors import ApiError
from runner.models import resolve_model
from runner.submitter import fail, on_submitted, submit

#: Statuses of tasks that cost nothing and are never adopted.
_NOT_ADOPTABLE = frozenset({"FAILED", "CANCELED", "UNKNOWN"})
#: The list window starts this long before the intent (API.md decision 9).
_LOOKBACK = timedelta(hours=8, minutes=10)
_WINDOW = timedelta(hours=24) - timedelta(seconds=1)


async def reconcile(ctx: RunContext, job: Job) -> None:
    """Adopt the job's lost task, or submit again when there is none; the job's slot stays held."""
    try:
        while True:
            job.reconciles += 1
            if job.reconciles > ctx.cfg.max_reconciles:
                await fail(ctx, job, "submit", "Unreconciled", "create answers kept getting lost; gave up")
                return
            if not await ctx.sleep(ctx.cfg.reconcile_delay):
                return
            try:
                info = await find_task(ctx, job)
            except ApiError as exc:
                log.warning("reconcile.error", job_id=job.id, name=job.spec.name, error=str(exc))
                continue
            if info is not None:
                log.info("reconcile.adopted", job_id=job.id, name=job.spec.name, task_id=info.task_id)
                await on_submitted(ctx, job, info.task_id, None, adopted=True)
                return
            log.info("reconcile.none", job_id=job.id, name=job.spec.name)
            await submit(ctx, job)
            return
    except Stopped:
        return


async def find_task(ctx: RunContext, job: Job) -> TaskInfo | None:
    """The finished task of this job that no other job owns, or None (see the module docstring)."""
    intent = job.state.submitting_since or job.state.updated
    start = datetime.fromtimestamp(intent, UTC) - _LOOKBACK
    end = start + _WINDOW
    earliest_ms = (intent - ctx.cfg.reconcile_slack) * 1000
    candidates: list[tuple[float, str]] = []
    page_no = 1
    while True:
        page: TaskPage = await ctx.call(
            "list",
            partial(ctx.client.list_tasks, start=start, end=end, model=job.model, page_no=page_no, page_size=100),
        )
        for t in page.items:
            if t.task_id in ctx.known_tasks or t.status in _NOT_ADOPTABLE:
                continue
            if t.gmt_create_ms is not None and t.gmt_create_ms < earliest_ms:
                continue
            created = (t.gmt_create_ms or intent * 1000) / 1000
            candidates.append((abs(created - intent), t.task_id))
        if not page.has_more:
            break
        page_no += 1
    following = [tid for _, tid in sorted(candidates)]
    log.info("reconcile.candidates", job_id=job.id, name=job.spec.name, count=len(following))
    while following:
        for tid in list(following):
            if tid in ctx.known_tasks:  # another job adopted or submitted it meanwhile
                following.remove(tid)
                continue
            info = await ctx.call("get", partial(ctx.client.get, tid))
            if not info.terminal:
                continue
            following.remove(tid)
            if info.status == "SUCCEEDED" and tid not in ctx.known_tasks and matches(job, info):
                return info
        if following and not await ctx.sleep(ctx.cfg.poll_interval):
            raise Stopped
    return None


def matches(job: Job, info: TaskInfo) -> bool:
    """True when ``info`` is the task the job's request makes: same prompt as sent, same size and duration."""
    request: dict[str, Any] = job.spec.request
    prompt = str((request.get("input") or {}).get("prompt", ""))
    if info.orig_prompt is None or not _same_prompt(job, prompt, info.orig_prompt):
        return False
    usage = info.usage or {}
    size = usage.get("size") or usage.get("video_ratio")
    if size and str(size) != job.spec.size:
        return False
    duration = usage.get("output_video_duration", usage.get("video_duration"))
    if duration is not None:
        try:
            if float(duration) != float(job.spec.duration):
                return False
        except (TypeError, ValueError):
            return False
    return True


def _same_prompt(job: Job, sent: str, seen: str) -> bool:
    """The server truncates an over-long prompt silently (API.md §1.3), so compare up to its limit."""
    if seen == sent:
        return True
    spec = resolve_model(job.spec.model)
    limit = spec.prompt_max_chars if spec else len(sent)
    return len(sent) > limit and seen == sent[:limit]
