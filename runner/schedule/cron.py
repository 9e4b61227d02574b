"""``wanbatch schedule --cron "0 2 * * *" MANIFEST… [run options]``: a long-running scheduler for hosts
without cron or systemd timers (docs/SCHEDULING.md shows those alternatives).

At each time of the cron expression (in ``--timezone``, default the host's local time) every manifest is
run as its own ``wanbatch run MANIFEST [run options]`` child process: a crash or a leak in one run never
takes the scheduler down, and each run keeps its own lock, ledger, exit code and notifications.

Rules:

* never overlap a run with itself: when a manifest's previous run is still going at its next time, that
  time is skipped (``schedule.skipped``), as a systemd timer does with a service still active;
* a failing run (any exit code, or a child that cannot start) is logged and the schedule goes on;
* times missed while the host slept are not made up one by one: the next time after "now" is used;
* SIGTERM or SIGINT: no new runs; running children get SIGTERM (they save their state and exit 130),
  are waited for (``grace`` seconds, then killed), and the scheduler exits 0.

The clock is injected (``Clock``), so tests move time instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Protocol

import structlog
from croniter import croniter

from runner.errors import ConfigError

log = structlog.get_logger("wanbatch.schedule")

EXIT_OK, EXIT_USAGE = 0, 2

#: A run is started as a launcher call: manifest → exit code.
Launcher = Callable[[str], Awaitable[int]]


class Clock(Protocol):
    """Wall time in epoch seconds, and a way to wait for a moment of it."""

    def now(self) -> float: ...

    async def sleep_until(self, when: float) -> None: ...


class WallClock:
    """The real clock. Sleeps in short steps and re-reads the time, so a suspended host or a clock that
    was set does not make a firing late by the length of the jump."""

    step = 30.0

    def now(self) -> float:
        return time.time()

    async def sleep_until(self, when: float) -> None:
        while (left := when - time.time()) > 0:  # noqa: ASYNC110 - polling the wall clock is the point
            await asyncio.sleep(min(left, self.step))


def parse_cron(expr: str) -> str:
    """The expression when croniter accepts it (5 fields, or 6 with seconds), else ``ConfigError``."""
    if not croniter.is_valid(expr):
        raise ConfigError(f'invalid cron expression {expr!r} (expected 5 fields, e.g. "0 2 * * *")')
    return expr


def next_time(expr: str, after: float, tz: tzinfo | None) -> float:
    """The first time of ``expr`` strictly after ``after`` (epoch seconds), read in ``tz``."""
    start = datetime.fromtimestamp(after, tz) if tz is not None else datetime.fromtimestamp(after).astimezone()
    nxt: datetime = croniter(expr, start).get_next(datetime)
    return nxt.timestamp()


@dataclass(frozen=True)
class Firing:
    """One cron time for one manifest: started (with the run's exit code, once known) or skipped."""

    when: float
    manifest: str
    action: str  # "started" | "skipped"


class Scheduler:
    """Runs each manifest at the cron times, one run per manifest at a time (see the module docstring)."""

    def __init__(
        self,
        cron: str,
        manifests: Sequence[str],
        launcher: Launcher,
        *,
        clock: Clock | None = None,
        tz: tzinfo | None = None,
    ) -> None:
        self.cron = parse_cron(cron)
        self.manifests = list(manifests)
        self.launcher = launcher
        self.clock: Clock = clock or WallClock()
        self.tz = tz
        self.running: dict[str, asyncio.Task[None]] = {}
        self.firings: list[Firing] = []
        self.results: list[tuple[str, int | None]] = []  # (manifest, exit code or None when it broke)
        self._stop = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def stop(self) -> None:
        """SIGTERM / SIGINT: start no new run; ``run()`` ends the running ones and returns."""
        log.info("schedule.stopping", running=sorted(self.running))
        self._stop.set()

    async def idle(self) -> None:
        """Wait until no run is in progress (tests, and the end of ``run``)."""
        await self._idle.wait()

    async def run(self) -> int:
        """Fire at every cron time until stopped; returns 0."""
        after = self.clock.now()
        log.info("schedule.started", cron=self.cron, manifests=self.manifests)
        try:
            while not self._stop.is_set():
                due = next_time(self.cron, after, self.tz)
                log.info("schedule.next", at=_iso(due, self.tz))
                if not await self._wait(due):
                    break
                self._fire(due)
                after = max(due, self.clock.now())  # missed times are not made up
        finally:
            await self._end_runs()
        log.info("schedule.stopped")
        return EXIT_OK

    async def _wait(self, due: float) -> bool:
        sleeper = asyncio.ensure_future(self.clock.sleep_until(due))
        stopper = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            stopper.cancel()
        return not self._stop.is_set()

    def _fire(self, due: float) -> None:
        for manifest in self.manifests:
            if manifest in self.running:
                log.warning("schedule.skipped", manifest=manifest, at=_iso(due, self.tz),
                            reason="its previous run is still going")  # fmt: skip
                self.firings.append(Firing(due, manifest, "skipped"))
                continue
            self.firings.append(Firing(due, manifest, "started"))
            self._idle.clear()
            self.running[manifest] = asyncio.create_task(self._one(manifest), name=f"run-{manifest}")

    async def _one(self, manifest: str) -> None:
        started = time.monotonic()
        log.info("schedule.run_started", manifest=manifest)
        code: int | None = None
        try:
            code = await self.launcher(manifest)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a run that cannot even start does not stop the schedule
            log.error("schedule.run_error", manifest=manifest, error=f"{type(exc).__name__}: {exc}")
        finally:
            self.results.append((manifest, code))
            self.running.pop(manifest, None)
            if not self.running:
                self._idle.set()
            log.info("schedule.run_finished", manifest=manifest, exit_code=code,
                     seconds=round(time.monotonic() - started, 1))  # fmt: skip

    async def _end_runs(self) -> None:
        tasks = list(self.running.values())
        for t in tasks:
            t.cancel()  # the launcher forwards SIGTERM to its child and waits for it
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


def _iso(ts: float, tz: tzinfo | None) -> str:
    dt = datetime.fromtimestamp(ts, tz) if tz is not None else datetime.fromtimestamp(ts).astimezone()
    return dt.isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------------------- real runs


def subprocess_launcher(run_argv: Sequence[str], *, verbose: int = 0, grace: float = 60.0) -> Launcher:
    """A launcher that runs ``python -m runner run MANIFEST RUN_ARGV…`` and returns its exit code. Cancelled
    (the scheduler stops), it sends the child SIGTERM, waits ``grace`` seconds, then kills it."""

    async def launch(manifest: str) -> int:
        argv = [sys.executable, "-m", "runner", *(["-" + "v" * verbose] if verbose else []), "run", manifest]
        proc = await asyncio.create_subprocess_exec(*argv, *run_argv, stdin=asyncio.subprocess.DEVNULL)
        try:
            return await proc.wait()
        except asyncio.CancelledError:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(asyncio.shield(proc.wait()), grace)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    await proc.wait()
            raise

    return launch


async def serve(scheduler: Scheduler) -> int:
    """Run ``scheduler`` until SIGINT or SIGTERM."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, scheduler.stop)
    try:
        return await scheduler.run()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
