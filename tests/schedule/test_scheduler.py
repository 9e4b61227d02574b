"""The scheduler with an injected clock: it fires at the cron times in the given timezone, never overlaps a
manifest's run with itself, survives failing runs, does not make up missed times, and stops cleanly;
plus the real thing: ``wanbatch schedule`` as a process stops on SIGTERM with exit 0."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from runner.cli import build_parser, run_options_parser
from runner.errors import ConfigError
from runner.schedule import Scheduler, next_time, options_argv, parse_cron

ROOT = Path(__file__).resolve().parents[2]


class FakeClock:
    """Virtual wall time: ``sleep_until`` waits until the test moves time past the moment."""

    def __init__(self, start: float) -> None:
        self.t = start
        self.waiters: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self.t

    async def sleep_until(self, when: float) -> None:
        if when <= self.t:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append((when, fut))
        await fut

    async def advance_to(self, t: float) -> None:
        """Move time to ``t`` through every waiter's moment in order, letting tasks react at each one."""
        while True:
            await _settle()
            due = sorted(w for w, f in self.waiters if not f.done() and w <= t)
            if not due:
                break
            self.t = max(self.t, due[0])
            for w, f in self.waiters:
                if w <= self.t and not f.done():
                    f.set_result(None)
            self.waiters = [(w, f) for w, f in self.waiters if not f.done()]
        self.t = max(self.t, t)
        await _settle()


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_next_time_reads_the_expression_in_the_timezone() -> None:
    after = utc("2026-12-01T12:00:00")
    assert next_time("0 2 * * *", after, ZoneInfo("UTC")) == utc("2026-12-02T02:00:00")
    # 02:00 in Shanghai is 18:00 UTC the day before
    assert next_time("0 2 * * *", after, ZoneInfo("Asia/Shanghai")) == utc("2026-12-01T18:00:00")
    assert next_time("*/15 * * * *", utc("2026-12-01T12:00:00"), ZoneInfo("UTC")) == utc("2026-12-01T12:15:00")
    with pytest.raises(ConfigError, match="invalid cron expression"):
        parse_cron("every night")


async def test_fires_at_the_cron_times_never_overlaps_and_survives_failures() -> None:
    clock = FakeClock(utc("2026-12-01T12:00:00"))
    starts: list[tuple[str, float]] = []
    durations = {"long.yaml": 30 * 3600.0, "short.yaml": 600.0, "broken.yaml": 5.0}

    active: dict[str, int] = {}
    most: dict[str, int] = {}

    async def launch(manifest: str) -> int:
        starts.append((manifest, clock.now()))
        active[manifest] = active.get(manifest, 0) + 1
        most[manifest] = max(most.get(manifest, 0), active[manifest])
        try:
            await clock.sleep_until(clock.now() + durations[manifest])
        finally:
            active[manifest] -= 1
        if manifest == "broken.yaml":
            raise RuntimeError("cannot start")
        return 1 if manifest == "short.yaml" else 0  # a failing run

    sched = Scheduler("0 2 * * *", list(durations), launch, clock=clock, tz=ZoneInfo("UTC"))
    task = asyncio.create_task(sched.run())
    await clock.advance_to(utc("2026-12-04T12:00:00"))
    nights = [utc(f"2026-12-0{d}T02:00:00") for d in (2, 3, 4)]
    assert sorted({t for _, t in starts}) == nights
    assert [t for m, t in starts if m == "short.yaml"] == nights
    assert [t for m, t in starts if m == "broken.yaml"] == nights, "a run that broke does not stop the schedule"
    # the 30 h run started on night 1 is still going on night 2: that firing is skipped, night 3 runs again
    assert [t for m, t in starts if m == "long.yaml"] == [nights[0], nights[2]]
    skipped = [(f.manifest, f.when) for f in sched.firings if f.action == "skipped"]
    assert skipped == [("long.yaml", nights[1])]
    assert ("short.yaml", 1) in sched.results and ("broken.yaml", None) in sched.results
    assert most == dict.fromkeys(durations, 1), "a manifest ran twice at once"

    assert "long.yaml" in sched.running  # night 3's long run is still going: stop cancels it
    sched.stop()
    assert await asyncio.wait_for(task, 5) == 0
    assert not sched.running and task.done() and active["long.yaml"] == 0


async def test_missed_times_are_not_made_up() -> None:
    clock = FakeClock(utc("2026-12-01T00:00:00"))
    starts: list[float] = []

    async def launch(manifest: str) -> int:
        starts.append(clock.now())
        return 0

    sched = Scheduler("0 * * * *", ["m.yaml"], launch, clock=clock, tz=ZoneInfo("UTC"))
    task = asyncio.create_task(sched.run())
    await _settle()
    clock.t = utc("2026-12-01T05:30:00")  # the host slept five and a half hours
    await clock.advance_to(utc("2026-12-01T06:00:00"))
    sched.stop()
    await asyncio.wait_for(task, 5)
    assert starts == [utc("2026-12-01T05:30:00"), utc("2026-12-01T06:00:00")]  # one late firing, then on time


def test_run_options_are_handed_to_each_run() -> None:
    args = build_parser().parse_args(
        ["schedule", "--cron", "0 2 * * *", "a.yaml", "--max-jobs", "50", "--budget", "20", "--retry-failed",
         "--notify", "http://h/1", "--notify", "http://h/2", "--timezone", "UTC"]
    )  # fmt: skip
    argv = options_argv(run_options_parser()._actions, args)
    assert argv == ["--max-jobs", "50", "--retry-failed", "--budget", "20.0", "--timezone", "UTC",
                    "--notify", "http://h/1", "--notify", "http://h/2"]  # fmt: skip
    again = build_parser().parse_args(["run", "a.yaml", *argv])
    for dest in ("max_jobs", "budget", "retry_failed", "notify", "timezone"):
        assert getattr(again, dest) == getattr(args, dest)


def _env(**extra: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("DASHSCOPE")}
    e.update(PYTHONPATH=str(ROOT), DASHSCOPE_API_KEY="sk-schedTESTkey0001", **extra)
    return e


def test_schedule_process_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text("version: 1\njobs:\n  - name: a\n    prompt: hi\n", encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", "schedule", "--cron", "0 2 * * *", str(manifest)],
        cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        assert proc.stderr is not None
        seen = ""
        while "schedule.next" not in seen and time.monotonic() < deadline:
            seen += proc.stderr.readline()
        assert "schedule.next" in seen, seen
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "schedule.stopped" in err
    assert "sk-schedTESTkey0001" not in seen + err


def test_schedule_refuses_bad_input_at_once(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text("version: 1\njobs:\n  - name: a\n    prompt: hi\n", encoding="utf-8")

    def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "runner", "schedule", *args], cwd=tmp_path, env=_env(**env),
                              capture_output=True, text=True, timeout=30, check=False)  # fmt: skip

    assert "invalid cron" in run("--cron", "nightly", str(manifest)).stderr
    r = run("--cron", "0 2 * * *", str(manifest), str(manifest), "--out", "x")
    assert r.returncode == 2 and "--out" in r.stderr
    r = run("--cron", "0 2 * * *", str(tmp_path / "missing.yaml"))
    assert r.returncode == 2 and "no such manifest" in r.stderr
    r = run("--cron", "0 2 * * *", str(manifest), "--timezone", "Nowhere/Land")
    assert r.returncode == 2 and "unknown timezone" in r.stderr
