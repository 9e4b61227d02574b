"""Poll sweeps against the emulator: list requests follow the RUNNING tasks, and a list API that fails
turns them off without losing a job."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from runner.emulator.config import EmulatorConfig

from .conftest import assert_complete, assert_never_paid_twice, cli, ledger_lines, write_manifest

JOBS = 12
#: Task times drawn from the emulator's shape (720P 2-s videos: 0.5-2.5 min), compressed so a task takes
#: ~0.5-2.5 real seconds: long enough that following each task on its own costs several queries a task. No
#: polling hints: the run learns the times as it goes.
SPEED = 60.0


def _events(stderr: str) -> list[dict[str, Any]]:
    out = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def _run(tmp_path: Path, emu: Any) -> tuple[Path, str]:
    """Run JOBS jobs against ``emu`` to completion and check none is lost or paid twice: (out, stderr)."""
    manifest = write_manifest(tmp_path / "m.yaml", JOBS)
    out = tmp_path / "out"
    r = cli("run", str(manifest), "--out", str(out), "--base-url", emu.base_url, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert_complete(out, JOBS)
    assert_never_paid_twice(emu, out)
    return out, r.stderr


def test_running_tasks_are_followed_by_sweeps(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(speed=SPEED, task_time=None, seed=5)
    out, _ = _run(tmp_path, emu)
    stats = emu.stats()
    assert stats["requests"].get("list", 0) > 0  # sweeps went
    assert stats["throttled_total"] == 0
    running = [line for line in ledger_lines(out) if line["event"] == "task.status" and line["status"] == "RUNNING"]
    assert running, "no task was seen RUNNING"
    # A task found gone from RUNNING is queried once for its outcome, so a task costs about its first poll and
    # that query (measured under load: 19 queries for 12 jobs; 61 when every task is polled on its own).
    assert stats["queries"] <= 3 * JOBS, stats["queries"]


def test_a_failing_list_api_turns_sweeps_off_and_the_run_completes(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(speed=SPEED, task_time=None, seed=5, faults=EmulatorConfig.parse_faults(["500@list=1"]))
    _, stderr = _run(tmp_path, emu)
    names = [e.get("event") for e in _events(stderr)]
    assert names.count("poll.sweep_off") == 1, names
    # PollConfig.sweep_failures, then never again; and the one list request of the run's start (the clock probe)
    assert emu.stats()["requests"]["list"] == 3 + 1
