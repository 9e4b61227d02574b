"""``wanbatch run MANIFEST``: start or resume the run in its output folder, and say how it ended."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from runner import log as runlog
from runner.accounts import AccountConfig
from runner.commands import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_LOCKED,
    EXIT_OK,
    EXIT_USAGE,
    print_error,
    run_accounts,
)
from runner.engine.accounts import Account, AccountPool
from runner.engine.api import ApiConfig, DashScopeClient
from runner.engine.clock import RealClock
from runner.engine.limits import Limits
from runner.engine.pipeline import Outcome, Pipeline
from runner.engine.poll_rule import PollConfig
from runner.engine.poller import POLL_SHARE, PollSchedule
from runner.engine.settings import PipelineConfig
from runner.engine.task_memory import TaskMemory, host_of
from runner.errors import ConfigError, DiskError, InputError, LedgerError, LockHeld, disk_trouble
from runner.models import REGIONS
from runner.report.poster import background_poster
from runner.schedule.budget import MoneyCaps, MoneyGuard
from runner.schedule.notify import NotifySettings, notify_after_run
from runner.schedule.spend import default_state_dir
from runner.store.claims import Claims
from runner.store.events import RUN_STARTED
from runner.store.ledger import LEDGER_NAME, LedgerWriter
from runner.store.lock import RunLock
from runner.store.replay import replay
from runner.version import version

# ---------------------------------------------------------------------------------------------------- run

MANIFEST_SNAPSHOT = "manifest.yaml"


def run_command(args: argparse.Namespace) -> int:
    """``wanbatch run MANIFEST …``: start or resume the run in the output folder."""
    try:
        accounts, from_file = run_accounts(args)
        verbosity = getattr(args, "verbose", 0)
        if verbosity == 0 and sys.stderr.isatty():
            verbosity = -1  # the progress view says what the info lines would; warnings still show
        runlog.configure(verbosity=verbosity, secrets=[a.key for a in accounts])
        from runner.manifest import load_manifest

        region = accounts[0].region  # the manifest is checked for its accounts' regions, the first's spelling
        manifest = load_manifest(args.manifest, region, tuple(a.region for a in accounts[1:]))
        for issue in manifest.warnings:
            print(str(issue), file=sys.stderr)
        _check_offers(accounts, manifest.jobs, getattr(args, "accounts", None))
        url = accounts[0].url()
        out = Path(args.out) if args.out else Path("runs") / manifest.name
        caps = money_caps(args)
        currencies = sorted({REGIONS[a.region].currency for a in accounts})
        if len(currencies) > 1 and (caps.budget is not None or caps.daily_budget is not None):
            raise ConfigError(
                f"the accounts bill in {' and '.join(currencies)}: a --budget or --daily-budget needs accounts "
                "of regions that bill in one currency"
            )
        guard = caps.guard(out, REGIONS[region].currency)
        lock = RunLock(out)
        lock.acquire()
    except LockHeld as e:
        print_error(str(e))
        return EXIT_LOCKED
    except (InputError, LedgerError) as e:
        print_error(str(e))
        return EXIT_USAGE
    except DiskError as e:
        print_error(f"{e}; the output folder must be writable")
        return EXIT_USAGE
    try:
        expected = getattr(args, "expected_task_time", None)
        min_poll = getattr(args, "min_poll_interval", None)
        # a task reconcile follows: on a hint, a tenth of it; without one, the SDK's first poll interval
        follow = max(min_poll or 0.05, min(15.0, expected / 10)) if expected else 1.0
        cfg = PipelineConfig(
            out_dir=out,
            region=region,
            qps=args.qps,
            max_in_flight=args.max_in_flight,
            query_qps=getattr(args, "query_qps", None),
            max_video_bytes=(
                int(args.max_video_mb * 1024 * 1024)
                if getattr(args, "max_video_mb", None)
                else PipelineConfig.max_video_bytes
            ),
            max_jobs=args.max_jobs,
            retry_failed=args.retry_failed,
            retry_canceled=getattr(args, "retry_canceled", False),
            max_outage=getattr(args, "max_outage", PipelineConfig.max_outage),
            regenerate_expired=getattr(args, "regenerate_expired", False),
            drain=args.drain,
            poll_interval=follow,
            reconcile_delay=min(1.0, follow),
        )
        poll = PollConfig(expected_task_time=expected, min_interval=min_poll or PollConfig.min_interval)
        state_dir = Path(getattr(args, "state_dir", None) or default_state_dir())
        memory = TaskMemory(state_dir, host_of(url))
        started = time.monotonic()
        outcome = asyncio.run(_run(cfg, manifest, accounts, poll, guard, state_dir, memory, labelled=from_file))
        _write_gallery(out, outcome)
    except (LedgerError, ConfigError) as e:
        print_error(str(e))
        return EXIT_USAGE
    except (DiskError, OSError, BaseExceptionGroup) as e:  # the disk filled up or turned read-only mid-run
        trouble = disk_trouble(e)
        if trouble is None:
            raise
        print_error(
            f"{trouble}; the run stopped with its state saved: free space (or make {out} writable) "
            "and run the same command again"
        )
        return EXIT_FAILED
    finally:
        lock.release()
    _print_outcome(outcome, out)
    code = outcome.exit_code
    note = None
    if guard is not None and guard.stopped:  # a cap stopped the run: say which, and what is left
        note = guard.stop_message(len({job for job, _ in guard.refusals}))
        print_error(note)
        code = code if code != EXIT_OK else EXIT_FAILED
    notify_after_run(
        NotifySettings(tuple(getattr(args, "notify", None) or ()), tuple(getattr(args, "on_finish", None) or ())),
        out,
        code,
        left=len(outcome.left),
        orphans=len(outcome.orphans),
        wall_seconds=time.monotonic() - started,
        budget=note,
    )
    return code


def _check_offers(accounts: list[AccountConfig], jobs: Any, where: str | None) -> None:
    """Every model of the manifest is offered in some account's region (a model is never sent where it is not)."""
    for model in sorted({job.model for job in jobs}):
        if not any(a.offers(model) for a in accounts):
            regions = ", ".join(sorted({a.region for a in accounts}))
            raise ConfigError(f"{where or 'the account'}: model {model} is offered in none of the regions {regions}")


async def _run(
    cfg: PipelineConfig,
    manifest: Any,
    configs: list[AccountConfig],
    poll: PollConfig,
    guard: MoneyGuard | None = None,
    state_dir: Path | None = None,
    memory: TaskMemory | None = None,
    *,
    labelled: bool = False,
) -> Outcome:
    out = cfg.out_dir
    out.mkdir(parents=True, exist_ok=True)
    state = await asyncio.to_thread(replay, out / LEDGER_NAME)
    if state.name and state.name != manifest.name:  # two manifests must never share a folder by accident
        raise ConfigError(
            f"{out} holds the run of the manifest named {state.name!r}, not {manifest.name!r}: give another --out "
            "(a manifest keeps its folder while its name stays the same)"
        )
    await asyncio.to_thread(_write_snapshot, out / MANIFEST_SNAPSHOT, manifest.text)
    clock = RealClock()
    # what earlier runs against this host learned of task times (task_memory); never fatal
    remembered = await asyncio.to_thread(memory.load) if memory is not None else None
    interactive = sys.stderr.isatty()
    async with LedgerWriter(out / LEDGER_NAME) as ledger, contextlib.AsyncExitStack() as stack:
        accounts: list[Account] = []
        schedule: PollSchedule | None = None
        for conf in configs:  # each account its own client (key, host, clocks), limits, claims and poll schedule
            client = await stack.enter_async_context(DashScopeClient(ApiConfig(conf.url(), conf.key)))
            per_model = {m: (lim.qps, lim.max_in_flight) for m, lim in conf.limits.items()}
            limits = Limits(clock, qps=cfg.qps, in_flight=cfg.max_in_flight, query_qps=cfg.query_qps,
                            per_model=per_model)  # fmt: skip
            # Polls get their share of whatever query rate the account has (default or --query-qps), sweeps the
            # same share of the list API's.
            polls = dataclasses.replace(
                poll, budget_qps=POLL_SHARE * limits.query.configured, sweep_qps=POLL_SHARE * limits.listing.configured
            )
            # one service: the accounts' schedules learn task times together
            shared = schedule.times if schedule is not None else None  # (a schedule's len is its tasks: not `or`)
            mine = PollSchedule(clock, polls, remembered=remembered, times=shared)
            schedule = schedule if schedule is not None else mine
            claims = Claims(state_dir, out, conf.url(), account=conf.name) if state_dir is not None else None
            accounts.append(Account(conf.name, conf.region, client, limits, claims, schedule=mine, labelled=labelled))
        pool = AccountPool(accounts)
        home = pool.home
        assert schedule is not None
        pipeline = Pipeline(
            cfg, manifest.jobs, client=home.client, ledger=ledger, state=state, limits=home.limits, schedule=schedule,
            claims=home.claims, accounts=pool,
        )  # fmt: skip
        pipeline.ctx.poster = background_poster  # the engine is handed the report's poster maker
        if guard is not None:
            pipeline.ctx.guard = guard
            guard.start(state.jobs.items())
        await pipeline.ctx.record(
            None,
            RUN_STARTED,
            run_id=uuid.uuid4().hex,
            name=manifest.name,
            manifest=str(manifest.path),
            region=cfg.region,
            base_url=home.base_url,
            accounts=[a.name for a in accounts] if labelled else None,
            pid=os.getpid(),
            version=version(),
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, pipeline.interrupt)
        view_done = asyncio.Event()
        view_task: asyncio.Task[None] | None = None
        if interactive:
            from runner.report.progress import ProgressView

            view = ProgressView(state, {j.job_id for j in manifest.jobs}, name=manifest.name)
            view_task = asyncio.create_task(view.run(view_done))
        try:
            return await pipeline.run()
        finally:
            if memory is not None:  # what this run learned, for the next one (a few ms; never fails the run)
                await asyncio.to_thread(memory.save, schedule.times.new_samples())
            if guard is not None:
                guard.finish(state.jobs.items())
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            view_done.set()
            if view_task is not None:
                with contextlib.suppress(Exception):
                    await view_task


def _write_gallery(out: Path, outcome: Outcome) -> None:
    """Rebuild ``index.html`` (still under the run's lock). Skipped after an interrupt, which must exit within
    about a second while poster frames cost a decode per new video: the next run, or ``wanbatch report``,
    writes it. A failure here never fails the run: the videos and the ledger are what matter. The run made
    the posters as the videos landed, so this is mostly the ledger replay and the HTML; the heap that cost
    (the ledger's states, the page's text) is handed back to the OS afterwards."""
    logger = runlog.get_logger("wanbatch.run")
    if outcome.interrupted:
        logger.info("report.skipped", reason="interrupted")
        return
    from runner.store.mp4 import release_heap  # loaded by the run already (the downloader)

    try:
        from runner.report.gallery import write_report

        index = write_report(out)
    except Exception as e:  # any failure of the gallery is only logged
        logger.warning("report.failed", error=f"{type(e).__name__}: {e}")
        return
    finally:
        release_heap()
    logger.info("report.written", path=str(index))


def _write_snapshot(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _print_outcome(outcome: Outcome, out: Path) -> None:
    counts = ", ".join(f"{k} {v}" for k, v in outcome.counts.items() if v)
    print(f"{out}: {counts or 'no jobs'}")
    if outcome.recovered:
        print(
            f"  the ledger was missing: {outcome.recovered} job(s) this folder had already paid for were adopted "
            "from their sidecars and the host's register, not sent again"
        )
    for f in outcome.failures:
        print(f"  failed: {f['name']}: {f['code']}: {f['message']}")
    for u in outcome.undecided:
        why = u["reason"] or "its create's answer proved nothing; the next run reconciles it"
        tasks = f" (tasks {', '.join(map(str, u['candidates']))})" if u["candidates"] else ""
        print(f"  undecided (may be paid, nothing sent again): {u['name']}: {why}{tasks}")
    if outcome.orphans:
        print(
            f"  {len(outcome.orphans)} job(s) in the ledger are no longer in the manifest "
            "(a task they made is still followed and saved)"
        )
    for name, account in outcome.missing.items():
        print(f"  left: {name}: its task is with account {account}, which this run does not have (give the accounts "
              "file that names it; no other key can see the task)")  # fmt: skip
    for refusal in outcome.refusals:
        print(f"wanbatch: {refusal.line()}", file=sys.stderr)
    if outcome.refusals:
        print("  no job is blamed, nothing unsent was touched: fix it and run the same command again", file=sys.stderr)
    if outcome.exit_code == EXIT_INTERRUPTED:
        print("interrupted: state saved; run the same command again to resume", file=sys.stderr)
    elif outcome.exit_code != EXIT_OK and outcome.left:
        print(f"  not done: {len(outcome.left)} job(s); see `wanbatch status {out}`")


def money_caps(args: argparse.Namespace) -> MoneyCaps:
    """The run's money settings from its arguments."""
    return MoneyCaps(
        getattr(args, "budget", None),
        getattr(args, "daily_budget", None),
        getattr(args, "state_dir", None),
        getattr(args, "timezone", None),
    )
