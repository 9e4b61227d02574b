"""``wanbatch cancel DIR``: the run's PENDING tasks are cancelled and recorded; RUNNING ones cannot be and
are reported; exit 0 when every task the ledger knew as PENDING was cancelled, 1 when some had started."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

from runner.store.replay import replay

from .conftest import cli, ledger_lines, output, spawn, write_manifest
from .test_interrupt import _wait_for

JOBS = 8


def test_cancel_cancels_the_pending_tasks_and_reports_the_running_ones(tmp_path: Path, emulator: Any) -> None:
    # the server runs 5 wan2.6 tasks at once and queues the rest as PENDING. At speed 5 with seed 8 the
    # first five are RUNNING within 2 s and run at least 13 s (drawn from the seed, runner/emulator/tasks.py),
    # so the three queued ones stay PENDING far longer than the test needs
    emu = emulator(speed=5.0, task_time=None, seed=8)
    manifest = write_manifest(tmp_path / "m.yaml", JOBS)
    out = tmp_path / "out"
    # slow polling (the override, as a hint of 10-minute tasks): the interrupted run never learns that five
    # tasks started, so its ledger says PENDING
    args = ("run", str(manifest), "--out", str(out), "--base-url", emu.base_url, "--expected-task-time", "600")
    proc = spawn(*args, "--max-in-flight", str(JOBS), "--qps", "20", cwd=tmp_path, log="run")
    _wait_for(out, "submitted", JOBS)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130, output(tmp_path, "run")[1][-3000:]
    assert sum(j.state == "pending" for j in replay(out / "ledger.jsonl").jobs.values()) == JOBS
    deadline = time.monotonic() + 20
    while emu.stats()["tasks_by_status"]["RUNNING"] < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    by_status = emu.stats()["tasks_by_status"]
    assert (by_status["RUNNING"], by_status["PENDING"]) == (5, JOBS - 5), by_status

    # the three queued tasks are canceled; the five that started meanwhile are refused by the server,
    # recorded as RUNNING, and make the exit code 1
    c = cli("cancel", str(out), cwd=tmp_path)  # the base URL comes from the ledger's run.started line
    assert c.returncode == 1, (c.stdout, c.stderr[-2000:])
    stats = emu.stats()
    canceled = [line for line in ledger_lines(out) if line["event"] == "canceled"]
    assert len(canceled) == stats["canceled"] == JOBS - 5, (c.stdout, c.stderr[-2000:])
    assert (stats["tasks_by_status"]["PENDING"], stats["tasks_by_status"]["RUNNING"]) == (0, 5)
    assert "canceled 3 task(s); 5 could not be canceled" in c.stdout
    state = replay(out / "ledger.jsonl")
    assert sorted(j.state for j in state.jobs.values()) == ["canceled"] * 3 + ["running"] * 5
    assert state.summary()["states"]["canceled"] == 3

    # again: nothing is PENDING any more, nothing is sent, every PENDING task (none) was canceled: exit 0
    again = cli("cancel", str(out), cwd=tmp_path)
    assert again.returncode == 0, (again.stdout, again.stderr[-2000:])
    assert "5 task(s) were already RUNNING" in again.stdout
    assert emu.stats()["canceled"] == 3
