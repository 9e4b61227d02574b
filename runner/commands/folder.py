"""``wanbatch status DIR`` (the run from its ledger alone) and ``wanbatch cancel DIR`` (its PENDING tasks)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from pathlib import Path

from runner import log as runlog
from runner.commands import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    accounts_path,
    api_key,
    base_url,
    print_error,
    run_accounts,
)
from runner.engine.api import ApiConfig, DashScopeClient
from runner.errors import ApiError, ConfigError, InputError, LedgerError, LockHeld
from runner.models import DEFAULT_REGION
from runner.store.events import CANCELED, TASK_STATUS
from runner.store.ledger import LEDGER_NAME, LedgerWriter
from runner.store.lock import RunLock
from runner.store.replay import replay
from runner.store.state import RunState

# ---------------------------------------------------------------------------------------------------- status


def _load_state(folder: str) -> RunState:
    path = Path(folder) / LEDGER_NAME
    if not path.is_file():
        raise ConfigError(f"{folder}: no {LEDGER_NAME} here; is this a run's output folder?")
    return replay(path)


def status_command(args: argparse.Namespace) -> int:
    """``wanbatch status DIR [--json]``: the run's summary from its ledger alone (no network)."""
    try:
        state = _load_state(args.dir)
    except (InputError, LedgerError) as e:
        print_error(str(e))
        return EXIT_USAGE
    summary = state.summary()
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
        return EXIT_OK
    print(f"{summary['name'] or args.dir}: {summary['jobs']} jobs")
    for st, n in summary["states"].items():
        if n:
            print(f"  {st:<11} {n}")
    print(f"  billed      {summary['seconds']} s, {summary['cost']:.2f} {summary['currency']}")
    for f in summary["failures"]:
        rid = f" (request_id {f['request_id']})" if f.get("request_id") else ""
        print(f"  failed: {f['name']}: {f['code']}: {f['message']}{rid}")
    for u in summary["undecided"]:
        tasks = f" (tasks {', '.join(u['candidates'])})" if u["candidates"] else ""
        print(f"  undecided (may be paid, not yet saved): {u['name']}: {u['reason']}{tasks}")
    if summary["orphans"]:
        print(f"  no longer in the manifest (a paid task is still saved): {', '.join(summary['orphans'][:20])}")
    accounts = summary["accounts"]
    if set(accounts) - {"default"}:  # a run with an accounts file (issue 18): the counts per account
        for name, counts in sorted(accounts.items()):
            print(f"  account {name}: " + ", ".join(f"{st} {n}" for st, n in counts.items() if n))
    return EXIT_OK


# ---------------------------------------------------------------------------------------------------- cancel


def cancel_command(args: argparse.Namespace) -> int:
    """``wanbatch cancel DIR``: cancel the run's PENDING tasks (RUNNING ones cannot be cancelled).

    Exit 0 when every task the ledger knows as PENDING was cancelled, 1 when some could not be (it had
    started meanwhile: that job is left running), 2 bad input. While a run holds the folder, its PENDING tasks
    are cancelled on the server only; the live run sees them CANCELED and records it (issue 17)."""
    try:
        state = _load_state(args.dir)
        if accounts_path(args) is not None:
            configs, _ = run_accounts(args)
            apis = {c.name: ApiConfig(c.url(), c.key) for c in configs}
        else:  # the single account: the region and host the run recorded, unless given
            key = api_key()
            region = args.region or state.region or DEFAULT_REGION
            apis = {"default": ApiConfig(base_url(args.base_url, region, state.base_url), key)}
        runlog.configure(verbosity=getattr(args, "verbose", 0), secrets=[a.api_key for a in apis.values()])
    except (InputError, LedgerError) as e:
        print_error(str(e))
        return EXIT_USAGE
    lock = RunLock(args.dir)
    try:
        lock.acquire()
        live = False
    except LockHeld:
        live = True  # the run's own ledger writer owns the file: only the server is asked
    running = sum(1 for j in state.jobs.values() if j.state == "running")
    try:
        canceled, kept = asyncio.run(_cancel(Path(args.dir), state, apis, write=not live))
    finally:
        if not live:
            lock.release()
    print(f"{args.dir}: canceled {canceled} task(s); {kept} could not be canceled (already running or done)")
    if live:
        print("  a run holds the folder: it records the cancelled tasks as it sees them")
    if running:
        print(f"  {running} task(s) were already RUNNING (the API cancels PENDING tasks only); they will finish")
    return EXIT_OK if kept == 0 else EXIT_FAILED


async def _cancel(out: Path, state: RunState, apis: dict[str, ApiConfig], *, write: bool = True) -> tuple[int, int]:
    """Cancel the PENDING tasks, each with its own account's key (``apis`` by account name; with one, every task
    is its); ``write``: record what happened (not while a live run owns the ledger)."""
    canceled = kept = 0
    targets = [j for j in state.jobs.values() if j.state == "pending" and j.task_id]
    only = next(iter(apis)) if len(apis) == 1 else None
    async with contextlib.AsyncExitStack() as stack:
        clients = {name: await stack.enter_async_context(DashScopeClient(api)) for name, api in apis.items()}
        ledger = await stack.enter_async_context(LedgerWriter(out / LEDGER_NAME)) if write else None
        for job in targets:
            assert job.task_id is not None
            client = clients.get(only or job.account or "default")
            if client is None:  # another key would not see the task: asking would only be refused
                kept += 1
                print(f"  {job.name}: its task is with account {job.account}, not in the accounts given")
                continue
            try:
                await client.cancel(job.task_id)
            except ApiError as e:
                kept += 1
                with contextlib.suppress(ApiError):
                    info = await client.get(job.task_id)
                    if ledger is not None and info.status in ("PENDING", "RUNNING") and info.status != job.task_status:
                        await ledger.append(TASK_STATUS, job.job_id, task_id=job.task_id, status=info.status)
                runlog.get_logger("wanbatch.cancel").info("cancel.refused", job_id=job.job_id, error=str(e))
                continue
            if ledger is not None:
                await ledger.append(CANCELED, job.job_id, task_id=job.task_id)
            canceled += 1
    return canceled, kept


# ---------------------------------------------------------------------------------------------------- report


def report_command(args: argparse.Namespace) -> int:
    """``wanbatch report DIR``: 0 and the page's path on stdout; 2 when DIR holds no readable ledger."""
    from runner.report.gallery import write_report

    try:
        index = write_report(Path(args.dir))
    except LedgerError as e:
        print(f"report: {e}", file=sys.stderr)
        return 2
    print(index)
    return 0
