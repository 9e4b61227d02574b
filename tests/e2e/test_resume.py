"""Crash and resume: the runner is killed with SIGKILL at many moments (random ones from a fixed seed, and
right after a ``submitting`` intent is durable, the moment a create's answer can be lost); the run that
follows finishes every job with exactly one verified video, and the emulator proves no body was sent
twice."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from .conftest import (
    assert_complete,
    assert_never_paid_twice,
    assert_no_key,
    cli,
    ledger_lines,
    spawn,
    write_manifest,
)

JOBS = 12
ROUNDS = 8


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _count(out: Path, event: str) -> int:
    path = out / "ledger.jsonl"
    return path.read_bytes().count(f'"event":"{event}"'.encode()) if path.exists() else 0


def _wait_for_more(out: Path, event: str, seen: int, proc: subprocess.Popen[str], timeout: float) -> bool:
    """Wait until the ledger holds more ``event`` lines than ``seen``; False when the process ended first or
    the time ran out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if _count(out, event) > seen:
            return True
        time.sleep(0.005)
    return False


def test_sigkill_at_many_moments_then_resume_pays_once_per_job(tmp_path: Path, emulator: Any) -> None:
    # 1.5 real seconds per task, two at a time, so the run outlives the kills (tasks go on while the runner
    # is dead); retention and URL lifetime long enough for a slow machine
    emu = emulator(speed=3600.0, task_time=1.5 * 3600.0, retention=1e9, url_ttl=1e9, seed=5)
    manifest = write_manifest(tmp_path / "m.yaml", JOBS)
    out = tmp_path / "out"
    args = ("run", str(manifest), "--out", str(out), "--base-url", emu.base_url, "--max-in-flight", "2")
    rng = random.Random(20261202)
    kills = 0
    for round_no in range(ROUNDS):
        started, intents = _count(out, "run.started"), _count(out, "submitting")
        proc = spawn(*args, cwd=tmp_path, log=f"kill{round_no}")
        # every kill comes after the run is under way (Python's start-up takes most of a second)
        assert _wait_for_more(out, "run.started", started, proc, 30.0), "the run did not start"
        if round_no % 2 == 0:  # a random moment
            time.sleep(rng.uniform(0.0, 1.0))
        else:  # just after an intent reached the disk, before (or while) its create is answered
            _wait_for_more(out, "submitting", intents, proc, 5.0)
            time.sleep(rng.uniform(0.0, 0.02))
        if proc.poll() is not None:  # it finished before the kill: nothing left to interrupt
            break
        _kill(proc)
        kills += 1
    assert kills >= ROUNDS - 2, f"the run finished after {kills} kills; make it longer"

    r = cli(*args[:-2], "--max-in-flight", "5", cwd=tmp_path, timeout=60)  # the last run may go faster
    assert r.returncode == 0, r.stderr[-3000:]
    assert_complete(out, JOBS)
    stats = emu.stats()
    assert stats["duplicates"] == 0, {k: n for k, n in stats["submissions_by_body"].items() if n > 1}
    assert_never_paid_twice(emu, out)
    assert stats["submitted"] == JOBS
    lines = ledger_lines(out)
    assert sum(1 for line in lines if line["event"] == "run.started") == kills + 1
    assert_no_key(out, r.stdout, r.stderr)
