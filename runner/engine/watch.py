"""Watching each account a run drives, apart from any job: at the start, whether its key still knows the
ledger's tasks (``check_accounts``); all along, whether its host answers at all (``outage_watch``). Both end in
``RunContext.refuse`` — the account's fault, never a job's (issues 17 and 18)."""

from __future__ import annotations

import asyncio
from functools import partial

from runner.engine.accounts import Account
from runner.engine.context import RunContext, log
from runner.engine.waiting import Stopped
from runner.errors import ApiError
from runner.models import RETENTION_SECONDS

__all__ = ["check_accounts", "outage_watch"]


async def check_accounts(ctx: RunContext) -> None:
    """For each account, ask about the youngest tasks this ledger holds with it (up to 3): when the server knows
    none of them under its key, the key is another account's — that account stops before anything is expired or
    sent again (the others go on)."""
    await asyncio.gather(*(_check_one(ctx, account) for account in ctx.accounts.all))


async def _check_one(ctx: RunContext, account: Account) -> None:
    client = account.client
    try:  # one cheap answer first: its Date tells the server's clock (intents record it; ages are read by it)
        await ctx.call("list", partial(client.list_tasks, page_size=1), tries=1, account=account)
    except (ApiError, Stopped) as exc:
        log.warning("run.clock_unknown", error=str(exc), account=account.name)
    young = sorted(
        (j for j in ctx.jobs.values() if j.state.task_id and j.id in ctx.open_jobs and j.state.answered_at
         and ctx.account_of(j) is account and ctx.task_age(j.state) < RETENTION_SECONDS - 600),
        key=lambda j: -(j.state.answered_at or 0.0),
    )[:3]  # fmt: skip
    if not young:
        return
    try:
        for job in young:
            info = await ctx.call("get", partial(client.get, job.state.task_id or ""), account=account)
            if info.status != "UNKNOWN":
                return
    except (ApiError, Stopped) as exc:
        log.warning("run.account_check_skipped", error=str(exc), account=account.name)
        return
    job = young[0]
    await ctx.account_unknown_task(job, job.state.task_id or "")
    for other in young[1:]:
        ctx.leave(other, "account")


async def outage_watch(ctx: RunContext, account: Account, every: float = 1.0, say: float = 30.0) -> None:
    """The API answering nothing usable (unreachable, DNS, TLS, 5xx, a proxy's pages) is not any job's failure:
    the run waits, saying so every ``say`` seconds, and after ``--max-outage`` stops with exit 4 (jobs unsent stay
    as they were; the same command resumes). With several accounts, only the account whose host is down drops
    out, its jobs left as they are; the run stops when none is left."""
    client = account.client
    reach = client.reach
    said = 0.0
    while await ctx.sleep(every):
        down = reach.seconds()
        if down <= 0:
            said = 0.0
            continue
        if down >= said + say:
            said = down
            log.warning("run.waiting", host=client.config.base_url, seconds=round(down), account=account.name,
                        gives_up_in=round(max(0.0, ctx.cfg.max_outage - down)), error=reach.last)  # fmt: skip
        if down > ctx.cfg.max_outage:
            message = f"{client.config.base_url} answered nothing usable for {down:.0f} s: {reach.last}"
            await ctx.refuse("Unreachable", message, scope="network", account=account)
            ctx.abandon(account, "unreachable")
            return
