"""Reconcile: decide a create whose answer proved nothing, before anything is sent again.

The create endpoint has no idempotency key, so a create whose answer was lost (timeout, reset, 5xx, a
proxy's page, an id nobody knows, or a crash between the intent and its answer) may have made a paid task.
A run adopts only a task it can prove is its own (issue 13; ARCHITECTURE.md "Reconcile"):

1. **The window.** The task was made between the intent (written before the request left) and the
   moment the answer failed (or, after a crash, shortly after the dead run's last line) — on the server's
   clock: the host times are moved by the offset the answers' ``Date`` headers measured
   (``runner.engine.server_clock``), widened by that offset's error and ``reconcile_slack``.
2. **The candidates.** The model's tasks listed in that window (both readings of the list's time zone,
   API.md decision 9), minus the tasks this ledger or any run on this host claims (``runner.store.claims``),
   minus those that cost nothing (FAILED, CANCELED, UNKNOWN). Unfinished ones carry no prompt and are
   followed until they end; then a candidate matches when ``runner.engine.matching.matches`` says so.
3. **The rivals.** Other unanswered creates of the same look-alike group whose windows overlap: older
   ledgers' siblings, and other folders' open intents in the register. The submitter lets a group have one
   unanswered create at a time, so a run of this version makes none itself.
4. **The decision.** No match: nothing was made, the create is sent again (after the window closed). One
   match and no rival: adopted. Rivals that all asked for the very same body: the first unclaimed match is
   claimed atomically in the register (any of them is that body's video). Anything else cannot be proved:
   after ``undecided_rounds`` tries the job is left ``undecided``, the user is told which tasks look alike,
   and nothing is sent. An intent older than the 24-h retention, whose task the list can no longer show,
   becomes ``expired`` (it may have been paid); only ``--regenerate-expired`` sends it again.

The job keeps its in-flight slot and its group until the decision, so no look-alike is sent meanwhile.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial

from runner.engine.context import RunContext
from runner.engine.job import Job
from runner.engine.matching import matches
from runner.engine.submitter import on_submitted, submit
from runner.engine.waiting import Stopped
from runner.engine.wire import ListedTask, TaskInfo
from runner.errors import ApiError
from runner.models import RETENTION_SECONDS
from runner.store.claims import Register
from runner.store.events import EXPIRED, UNDECIDED

#: Statuses of tasks that cost nothing and are never adopted.
_NOT_ADOPTABLE = frozenset({"FAILED", "CANCELED", "UNKNOWN"})
#: The list answers a moment late: a window is read only this long after it closed (server seconds).
_LIST_LAG = 0.5
#: Past this age (server seconds since the intent) the list may already have dropped the task.
_TOO_OLD = RETENTION_SECONDS - 600.0
#: The other reading of the list's times (UTC instead of UTC+8, API.md decision 9).
_OTHER_READING = timedelta(hours=8)
_MAX_PAGES = 50


@dataclass(frozen=True)
class Window:
    """Where the job's task must lie, in server epoch seconds."""

    start: float
    end: float
    intent: float  # the intent, in server seconds
    host_start: float  # the same bounds in host seconds (rivals on this host are compared here)
    host_end: float


@dataclass
class Decision:
    """``adopt`` (the job's task), ``resend``, ``expired``, ``wait`` (seconds) or ``undecided``."""

    kind: str
    task_id: str | None = None
    reason: str = ""
    candidates: list[str] = field(default_factory=list)
    wait: float = 0.0
    settled: bool = False  # undecided for good this run: only this ledger's own creates overlap (nothing to wait for)


async def reconcile(ctx: RunContext, job: Job) -> None:
    """Decide the job's unanswered create (see the module docstring); its slot stays held until then."""
    if job.reconciling:
        return
    job.reconciling = True
    try:
        if await ctx.wait_group(job):
            await _reconcile(ctx, job)
    except Stopped:
        return
    finally:
        job.reconciling = False


async def _reconcile(ctx: RunContext, job: Job) -> None:
    delay = ctx.cfg.reconcile_delay
    failing_since: float | None = None
    undecided = 0
    while True:
        if not await ctx.sleep(delay):
            raise Stopped
        try:
            decision = await decide(ctx, job)
        except ApiError as exc:  # the list or a query could not be read: undecided, not failed
            now = time.monotonic()
            failing_since = failing_since if failing_since is not None else now
            if now - failing_since > ctx.cfg.max_outage:
                await _leave_undecided(ctx, job, f"the task list could not be read for {now - failing_since:.0f} s: "
                                       f"{exc}", [])  # fmt: skip
                return
            job.log.warning("reconcile.error", error=str(exc))
            delay = min(60.0, max(ctx.cfg.reconcile_delay, 2 * delay))
            continue
        failing_since = None
        if decision.kind == "wait":
            delay = decision.wait
            continue
        if decision.kind == "adopt":
            assert decision.task_id is not None
            job.log.info("reconcile.adopted", task_id=decision.task_id)
            await on_submitted(ctx, job, decision.task_id, None, adopted=True)
            return
        if decision.kind == "resend":
            job.log.info("reconcile.none")
            job.resends += 1
            if job.resends > ctx.cfg.max_resends:  # every answer proved nothing: stop paying into the dark
                why = f"its create was sent {job.resends} times this run and no answer proved a task"
                await _leave_undecided(ctx, job, why + " (lost, or naming tasks the server does not know)", [])
                return
            if await submit(ctx, job):
                return
            delay = ctx.cfg.reconcile_delay  # this create's answer proved nothing either: decide it too
            continue
        if decision.kind == "expired":
            job.log.warning("reconcile.expired", reason=decision.reason)
            await ctx.record(job, EXPIRED, task_id=None, reason=decision.reason)
            await ctx.free_slot(job)
            ctx.close_group(job)
            ctx.settle(job)
            return
        undecided += 1
        job.log.warning("reconcile.undecided", reason=decision.reason,
                    candidates=decision.candidates, round=undecided)  # fmt: skip
        if decision.settled or undecided >= ctx.cfg.undecided_rounds:
            await _leave_undecided(ctx, job, decision.reason, decision.candidates)
            return
        delay = min(60.0, ctx.cfg.poll_interval * 2 ** (undecided - 1))  # other runs' claims may settle it meanwhile


async def _leave_undecided(ctx: RunContext, job: Job, reason: str, candidates: list[str]) -> None:
    """Nothing can be proved this run: say so in the ledger (``status`` shows it), send nothing, go on."""
    await ctx.record(job, UNDECIDED, reason=reason, candidates=candidates)
    await ctx.free_slot(job)
    ctx.close_group(job)
    ctx.leave(job, "undecided")


def window(ctx: RunContext, job: Job) -> Window:
    """Where the job's task lies on the server's clock (the module docstring, step 1)."""
    st, clock, cfg = job.state, ctx.account_of(job).server_clock, ctx.cfg
    intent = st.intent_ts if st.intent_ts is not None else st.updated
    skew = st.intent_skew if st.intent_skew is not None else clock.offset
    err = st.intent_skew_err if st.intent_skew_err is not None else clock.error
    slack = err + cfg.reconcile_slack
    if st.window_end is not None:
        end = max(intent, st.window_end)
    else:  # the run died with the request in flight: it left before that run's last line, or soon after
        end = max(intent, ctx.last_seen or intent) + cfg.crash_window
    return Window(intent + skew - slack, end + skew + slack, intent + skew, intent - slack, end + slack)


async def decide(ctx: RunContext, job: Job) -> Decision:
    """One look at the task list for the job's unanswered create (the module docstring, steps 1-4)."""
    account = ctx.account_of(job)  # the account its create went to: only its list can show the task (issue 18)
    clock, claims = account.server_clock, account.claims
    if not clock.known:  # one cheap answer tells the server's clock
        await ctx.call("list", partial(account.client.list_tasks, page_size=1), account=account)
    w = window(ctx, job)
    now = clock.now()
    age = now - w.intent
    if age > RETENTION_SECONDS:
        return Decision("expired", reason=f"its create was sent {age / 3600:.1f} h ago, past the tasks' 24-h "
                        "retention: the list can no longer show whether it made a task")  # fmt: skip
    if now < w.end + _LIST_LAG:
        return Decision("wait", wait=w.end + _LIST_LAG - now)
    register = claims.read() if claims is not None else Register()
    mine = (claims.mine(register, job.id) if claims is not None else set()) - ctx.known_tasks
    if mine:  # this folder claimed a task for this job, then died before its ledger line: proven its own
        return Decision("adopt", task_id=min(mine))
    listed = await _listed(ctx, job, w)
    taken = ctx.known_tasks | register.claimed.keys()
    following = [t.task_id for t in sorted(listed, key=lambda t: _created(t) or 0.0) if t.task_id not in taken]
    job.log.info("reconcile.candidates", count=len(following))
    found: list[TaskInfo] = []
    while following:
        for task_id in list(following):
            info = await ctx.call("get", partial(account.client.get, task_id), account=account)
            if not info.terminal:
                continue
            following.remove(task_id)
            if info.status == "SUCCEEDED" and matches(job.spec, info.orig_prompt, info.usage):
                found.append(info)
        if following and not await ctx.sleep(ctx.cfg.poll_interval):
            raise Stopped
    if found:  # runs may have claimed some while they were followed
        register = claims.read() if claims is not None else Register()
        found = [i for i in found if i.task_id not in ctx.known_tasks and i.task_id not in register.claimed]
    if not found:
        if age > _TOO_OLD:
            return Decision("expired", reason=f"its create was sent {age / 3600:.1f} h ago: the list may already "
                            "have dropped its task")  # fmt: skip
        return Decision("resend")
    ids = [i.task_id for i in found]
    rivals, foreign = _rivals(ctx, job, w, register)
    if not rivals:
        if len(found) > 1:
            why = f"{len(found)} tasks on the account look like this job's and were made while its create was "
            return Decision("undecided", reason=why + "unanswered: none can be proved its own", candidates=ids)
        return await _claim(ctx, job, found, ids)
    if all(body == job.body_digest for body in rivals) and len(found) <= len(rivals) + 1:
        return await _claim(ctx, job, found, ids)  # the very same request each time: any of them is its video
    return Decision("undecided", reason=f"{len(rivals)} other unanswered create(s) of look-alike jobs overlap this "
                    f"one and {len(found)} task(s) match: which is whose cannot be proved", candidates=ids,
                    settled=not foreign)  # fmt: skip


async def _claim(ctx: RunContext, job: Job, found: list[TaskInfo], ids: list[str]) -> Decision:
    claims = ctx.account_of(job).claims
    got = claims.claim_first(job.id, ids) if claims is not None else ids[0]
    if got is None:  # another run claimed them first: look again
        return Decision("wait", wait=ctx.cfg.reconcile_delay)
    return Decision("adopt", task_id=got)


def _rivals(ctx: RunContext, job: Job, w: Window, register: Register) -> tuple[list[str], bool]:
    """Body digests of other unanswered creates of the job's group whose windows overlap its own, and whether
    any of them is another run's (which may still settle; this ledger's own will not, this run)."""
    out = []
    account = ctx.account_of(job)
    for other in ctx.jobs.values():
        if other is job or other.group != job.group or other.state.state != "submitting":
            continue
        if ctx.account_of(other) is not account:  # another account's task never shows in this one's list
            continue
        ow = window(ctx, other)
        if ow.host_start <= w.host_end and w.host_start <= ow.host_end:
            out.append(other.body_digest)
    own = len(out)
    for intent in register.intents:  # other folders' (their ends are unknown: a create lasts a minute at most)
        if intent.group == job.group and w.host_start - 60.0 <= intent.t0 <= w.host_end:
            out.append(intent.body)
    return out, len(out) > own


async def _listed(ctx: RunContext, job: Job, w: Window) -> list[ListedTask]:
    """The model's tasks made in the window, under both readings of the list's times, that may bill."""
    start = datetime.fromtimestamp(w.start - 1, UTC)
    end = datetime.fromtimestamp(w.end + 1, UTC)
    seen: dict[str, ListedTask] = {}
    account = ctx.account_of(job)
    model = account.spelling(job.spec.model)  # as its create named it
    for shift in (timedelta(0), _OTHER_READING):
        for page_no in range(1, _MAX_PAGES + 1):
            lister = partial(account.client.list_tasks, start=start - shift, end=end - shift, model=model,
                             page_no=page_no, page_size=100)  # fmt: skip
            page = await ctx.call("list", lister, account=account)
            for t in page.items:
                if t.status in _NOT_ADOPTABLE:
                    continue
                created = _created(t)
                if created is None or w.start <= created <= w.end:
                    seen[t.task_id] = t
            if not page.has_more:
                break
    return list(seen.values())


def _created(t: ListedTask) -> float | None:
    return t.gmt_create_ms / 1000 if t.gmt_create_ms is not None else None
