"""The ``run``, ``status`` and ``cancel`` commands: build the run's objects from arguments and environment,
hand over to the pipeline, and turn the outcome into an exit code (0 done, 1 some jobs failed or left,
2 bad input, 3 folder locked, 130 interrupted).

The API key is read from ``DASHSCOPE_API_KEY`` only (never argv, never the manifest) and handed to the API
client and the log redactor; nothing here prints, logs or writes it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from runner import log as runlog
from runner.api import ApiConfig, DashScopeClient
from runner.budget import MoneyGuard, guard_from_args
from runner.context import PipelineConfig
from runner.errors import ApiError, ConfigError, DiskError, InputError, LedgerError, LockHeld, disk_trouble
from runner.ledger import LEDGER_NAME, LedgerWriter, RunLock, replay
from runner.limits import Limits, RealClock
from runner.models import DEFAULT_REGION, REGIONS
from runner.notify import notify_after_run
from runner.pipeline import Outcome, Pipeline
from runner.poller import POLL_SHARE, PollConfig, PollSchedule
from runner.spend import default_state_dir
from runner.state import CANCELED, RUN_STARTED, TASK_STATUS, RunState
from runner.task_memory import TaskMemory, host_of

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_LOCKED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
KEY_ENV = "DASHSCOPE_API_KEY"
BASE_URL_ENV = "DASHSCOPE_HTTP_BASE_URL"
MANIFEST_SNAPSHOT = "manifest.yaml"


def _err(message: str) -> None:
    print(f"wanbatch: {message}", file=sys.stderr)


def api_key() -> str:
    """The key from the environment; ConfigError (exit 2) when it is missing."""
    key = os.environ.get(KEY_ENV, "").strip()
    if not key:
        raise ConfigError(f"set the API key in the environment variable {KEY_ENV} (it is never read from arguments)")
    return key


def base_url(arg: str | None, region: str, recorded: str | None = None) -> str:
    """``--base-url``, else ``DASHSCOPE_HTTP_BASE_URL``, else the URL a run recorded, else the region's host."""
    url = arg or os.environ.get(BASE_URL_ENV) or recorded or REGIONS[region].base_url
    if not url:
        raise ConfigError(f"region {region} has only workspace hosts: give --base-url or {BASE_URL_ENV}")
    return url.rstrip("/")


# ---------------------------------------------------------------------------------------------------- run


def run_command(args: argparse.Namespace) -> int:
    """``wanbatch run MANIFEST …``: start or resume the run in the output folder."""
    try:
        key = api_key()
        verbosity = getattr(args, "verbose", 0)
        if verbosity == 0 and sys.stderr.isatty():
            verbosity = -1  # the progress view says what the info lines would; warnings still show
        runlog.configure(verbosity=verbosity, secrets=[key])
        from runner.manifest import load_manifest

        region = args.region or DEFAULT_REGION
        manifest = load_manifest(args.manifest, region)
        for issue in manifest.warnings:
            print(str(issue), file=sys.stderr)
        url = base_url(args.base_url, region)
        out = Path(args.out) if args.out else Path("runs") / manifest.name
        guard = guard_from_args(args, out, REGIONS[region].currency)
        lock = RunLock(out)
        lock.acquire()
    except LockHeld as e:
        _err(str(e))
        return EXIT_LOCKED
    except (InputError, LedgerError) as e:
        _err(str(e))
        return EXIT_USAGE
    except DiskError as e:
        _err(f"{e}; the output folder must be writable")
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
            regenerate_expired=getattr(args, "regenerate_expired", False),
            drain=args.drain,
            poll_interval=follow,
            reconcile_delay=min(1.0, follow),
        )
        poll = PollConfig(expected_task_time=expected, min_interval=min_poll or PollConfig.min_interval)
        state_dir = getattr(args, "state_dir", None)
        memory = TaskMemory(Path(state_dir) if state_dir else default_state_dir(), host_of(url))
        started = time.monotonic()
        outcome = asyncio.run(_run(cfg, manifest, ApiConfig(url, key), poll, guard, memory))
        _write_gallery(out, outcome)
    except LedgerError as e:
        _err(str(e))
        return EXIT_USAGE
    except (DiskError, OSError, BaseExceptionGroup) as e:  # the disk filled up or turned read-only mid-run
        trouble = disk_trouble(e)
        if trouble is None:
            raise
        _err(
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
        _err(note)
        code = code if code != EXIT_OK else EXIT_FAILED
    notify_after_run(
        args,
        out,
        code,
        left=len(outcome.left),
        orphans=len(outcome.orphans),
        wall_seconds=time.monotonic() - started,
        budget=note,
    )
    return code


async def _run(
    cfg: PipelineConfig,
    manifest: Any,
    api: ApiConfig,
    poll: PollConfig,
    guard: MoneyGuard | None = None,
    memory: TaskMemory | None = None,
) -> Outcome:
    out = cfg.out_dir
    out.mkdir(parents=True, exist_ok=True)
    state = await asyncio.to_thread(replay, out / LEDGER_NAME)
    await asyncio.to_thread(_write_snapshot, out / MANIFEST_SNAPSHOT, manifest.text)
    limits = Limits(RealClock(), qps=cfg.qps, in_flight=cfg.max_in_flight, query_qps=cfg.query_qps)
    # Polls get their share of whatever query rate the run has (default or --query-qps), sweeps the same
    # share of the list API's.
    poll = dataclasses.replace(
        poll, budget_qps=POLL_SHARE * limits.query.configured, sweep_qps=POLL_SHARE * limits.listing.configured
    )
    # what earlier runs against this host learned of task times (task_memory); never fatal
    remembered = await asyncio.to_thread(memory.load) if memory is not None else None
    schedule = PollSchedule(limits.clock, poll, remembered=remembered)
    interactive = sys.stderr.isatty()
    async with LedgerWriter(out / LEDGER_NAME) as ledger, DashScopeClient(api) as client:
        pipeline = Pipeline(
            cfg, manifest.jobs, client=client, ledger=ledger, state=state, limits=limits, schedule=schedule
        )
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
            base_url=api.base_url,
            pid=os.getpid(),
            version=_version(),
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, pipeline.interrupt)
        view_done = asyncio.Event()
        view_task: asyncio.Task[None] | None = None
        if interactive:
            from runner.progress import ProgressView

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
    from runner.download import release_heap  # loaded by the run already (the downloader)

    try:
        from runner.report import write_report

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


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("wanbatch")
    except metadata.PackageNotFoundError:
        return "0"


def _print_outcome(outcome: Outcome, out: Path) -> None:
    counts = ", ".join(f"{k} {v}" for k, v in outcome.counts.items() if v)
    print(f"{out}: {counts or 'no jobs'}")
    for f in outcome.failures:
        print(f"  failed: {f['name']}: {f['code']}: {f['message']}")
    if outcome.orphans:
        print(f"  {len(outcome.orphans)} job(s) in the ledger are no longer in the manifest (left untouched)")
    if outcome.exit_code == EXIT_INTERRUPTED:
        print("interrupted: state saved; run the same command again to resume", file=sys.stderr)
    elif outcome.exit_code != EXIT_OK and outcome.left:
        print(f"  not done: {len(outcome.left)} job(s); see `wanbatch status {out}`")


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
        _err(str(e))
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
    return EXIT_OK


# ---------------------------------------------------------------------------------------------------- cancel


def cancel_command(args: argparse.Namespace) -> int:
    """``wanbatch cancel DIR``: cancel the run's PENDING tasks (RUNNING ones cannot be cancelled).

    Exit 0 when every task the ledger knows as PENDING was cancelled, 1 when some could not be (it had
    started meanwhile: that job is left running), 2 bad input, 3 a run holds the folder."""
    try:
        key = api_key()
        runlog.configure(verbosity=getattr(args, "verbose", 0), secrets=[key])
        state = _load_state(args.dir)
        region = args.region or state.region or DEFAULT_REGION
        url = base_url(args.base_url, region, state.base_url)
        lock = RunLock(args.dir)
        lock.acquire()
    except LockHeld as e:
        _err(str(e))
        return EXIT_LOCKED
    except (InputError, LedgerError) as e:
        _err(str(e))
        return EXIT_USAGE
    running = sum(1 for j in state.jobs.values() if j.state == "running")
    try:
        canceled, kept = asyncio.run(_cancel(Path(args.dir), state, ApiConfig(url, key)))
    finally:
        lock.release()
    print(f"{args.dir}: canceled {canceled} task(s); {kept} could not be canceled (already running or done)")
    if running:
        print(f"  {running} task(s) were already RUNNING (the API cancels PENDING tasks only); they will finish")
    return EXIT_OK if kept == 0 else EXIT_FAILED


async def _cancel(out: Path, state: RunState, api: ApiConfig) -> tuple[int, int]:
    canceled = kept = 0
    targets = [j for j in state.jobs.values() if j.state == "pending" and j.task_id]
    async with LedgerWriter(out / LEDGER_NAME) as ledger, DashScopeClient(api) as client:
        for job in targets:
            assert job.task_id is not None
            try:
                await client.cancel(job.task_id)
            except ApiError as e:
                kept += 1
                with contextlib.suppress(ApiError):
                    info = await client.get(job.task_id)
                    if info.status in ("PENDING", "RUNNING") and info.status != job.task_status:
                        await ledger.append(TASK_STATUS, job.job_id, task_id=job.task_id, status=info.status)
                runlog.get_logger("wanbatch.cancel").info("cancel.refused", job_id=job.job_id, error=str(e))
                continue
            await ledger.append(CANCELED, job.job_id, task_id=job.task_id)
            canceled += 1
    return canceled, kept
