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
from runner.commands.schedule import options_argv
from runner.emulator.server import ThreadedEmulator
from runner.errors import ConfigError
from runner.schedule.cron import Scheduler, next_time, parse_cron

from .clock import FakeClock, settle
from .conftest import KEY, ledger, wanbatch, write_manifest

ROOT = Path(__file__).resolve().parents[2]


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
    await settle()
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
    argv = options_argv(run_options_parser().recorded, args)
    assert argv == ["--max-jobs", "50", "--retry-failed", "--budget", "20.0", "--timezone", "UTC",
                    "--notify", "http://h/1", "--notify", "http://h/2"]  # fmt: skip
    again = build_parser().parse_args(["run", "a.yaml", *argv])
    for dest in ("max_jobs", "budget", "retry_failed", "notify", "timezone"):
        assert getattr(again, dest) == getattr(args, dest)


def _env(**extra: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("DASHSCOPE")}
    e.update(PYTHONPATH=str(ROOT), DASHSCOPE_API_KEY=KEY, **extra)
    return e


def test_a_real_schedule_runs_a_manifest_and_stops_cleanly_on_sigterm(
    tmp_path: Path, emulator: ThreadedEmulator
) -> None:
    """``wanbatch schedule`` as a process, every second: it starts a real run against the emulator with the
    run options it was given, never a second one while the first goes on, and exits 0 on SIGTERM."""
    manifest = write_manifest(tmp_path / "m.yaml", ["s0", "s1"])
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", "schedule", "--cron", "* * * * * *", str(manifest), "--out", str(out),
         "--base-url", emulator.base_url, "--max-jobs", "1", "--timezone", "UTC"],
        cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            lines = ledger(out) if (out / "ledger.jsonl").exists() else []
            if any(x["event"] == "run.finished" for x in lines):
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    assert "schedule.run_started" in err and "schedule.stopped" in err
    starts = [x for x in ledger(out) if x["event"] == "run.started"]
    finished = [x for x in ledger(out) if x["event"] == "run.finished"]
    assert finished and finished[0]["exit_code"] == 1  # --max-jobs 1 was handed over: one of two jobs done
    assert len(starts) - len(finished) <= 1  # a run cut short by SIGTERM saves its state (exit 130)
    for a, b in zip(starts[1:], finished, strict=False):  # each run began after the previous one ended
        assert a["ts"] >= b["ts"]
    assert emulator.stats()["duplicates"] == 0
    assert KEY not in err


def test_schedule_refuses_bad_input_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path / "m.yaml", ["a"])
    code, _, err = wanbatch(capsys, "schedule", "--cron", "nightly", str(manifest))
    assert code == 2 and "invalid cron" in err
    code, _, err = wanbatch(capsys, "schedule", "--cron", "0 2 * * *", str(manifest), str(manifest), "--out", "x")
    assert code == 2 and "--out" in err
    code, _, err = wanbatch(capsys, "schedule", "--cron", "0 2 * * *", str(tmp_path / "missing.yaml"))
    assert code == 2 and "no such manifest" in err
    code, _, err = wanbatch(capsys, "schedule", "--cron", "0 2 * * *", str(manifest), "--timezone", "Nowhere/Land")
    assert code == 2 and "unknown timezone" in err
    code, _, err = wanbatch(capsys, "schedule", str(manifest))
    assert code == 2 and "--cron" in err
