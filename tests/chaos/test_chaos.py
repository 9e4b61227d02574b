"""The fast subset of ``make chaos`` (bench/chaos.py): the same scenario code, smaller. The assertions are
invariants of any run (nothing lost, nothing paid twice, no traceback), so random kill moments cannot flake."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench import chaos_crash, chaos_disk, chaos_faults, chaos_input
from bench.chaos_common import KEY


def test_crash_resume_20_jobs_5_sigkills_loses_nothing_and_pays_nothing_twice(tmp_path: Path) -> None:
    r = chaos_crash.crash_resume(tmp_path, jobs=20, kills=5, seed=3, delay=(0.2, 2.5), final_timeout=120)
    assert r["videos_verified"] == 20 and r["jobs_lost"] == 0, r
    assert r["duplicate_submissions"] == 0 and r["bodies_paid_twice"] == 0 and r["orphan_tasks"] == 0, r
    assert r["unreadable_lines"] == 0 and r["replay_errors_after_a_kill"] == 0, r
    assert r["part_files_left"] == 0 and r["tracebacks"] == 0, r
    assert r["final_rc"] == 0 and r["final_runs"] == 1, r


def test_small_fault_run_ends_every_job_with_a_video_or_a_code(tmp_path: Path) -> None:
    faults = tuple(f for f in chaos_faults.FAULTS if not f.startswith("429"))  # 429s: see docs/RELIABILITY.md
    r = chaos_faults.fault_run(tmp_path, jobs=16, blocked=2, seed=5, slow_seconds=0.3, faults=faults, timeout=120)
    assert chaos_faults.passed(r), r
    assert r["failed"] >= 2 and r["rc"] == 1  # the blocked prompts fail with the server's code


def _can_mount(tmp_path: Path) -> bool:
    where = tmp_path / "probe"
    where.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)], capture_output=True)
    if r.returncode == 0:
        subprocess.run(["umount", str(where)], capture_output=True)
    return r.returncode == 0


def test_a_full_disk_stops_the_run_clearly_and_the_resume_sends_nothing_twice(tmp_path: Path) -> None:
    if not _can_mount(tmp_path):
        pytest.skip("needs mount -t tmpfs (root)")
    # 1 MB holds about 40 of these videos: the first run stops on ENOSPC part-way
    with chaos_disk.tmpfs(tmp_path / "mnt", "1m") as mnt:
        assert mnt is not None
        from bench.chaos_common import emulator

        with emulator(quotas=False) as emu:
            c = chaos_disk._case(tmp_path, mnt, emu, "full", 60)
            dup = emu.stats()["duplicate_submissions"]
    assert c["first_rc"] == 1 and c["clear_error"], c
    assert "No space left on device" in c["message"] and KEY not in c["message"]
    assert c["ledger_unreadable"] == 0 and c["status_rc"] == 0, c
    assert c["final_rc"] == 0 and c["verified"] == 60 and c["submitted"] == 60 and dup == 0, c
    assert c["tracebacks"] == 0, c


def test_a_sample_of_bad_manifests_and_ledgers_never_traceback(tmp_path: Path) -> None:
    m = chaos_input.bad_manifests(tmp_path / "m", count=80, subprocesses=1, seed=9)
    assert m["problems"] == 0, m
    good = tmp_path / "good.jsonl"
    good.write_text(
        '{"ts": 1.0, "event": "run.started", "job_id": null, "run_id": "r", "manifest": "m.yaml"}\n'
        '{"ts": 2.0, "event": "planned", "job_id": "j1", "name": "a", "model": "wan2.6-t2v", "request": {},'
        ' "size": "1280*720", "duration": 5, "seed": null, "seconds": 5, "cost": 3.0}\n'
        '{"ts": 3.0, "event": "submitting", "job_id": "j1", "attempt": 1, "model": "wan2.6-t2v"}\n',
        encoding="utf-8",
    )
    g = chaos_input.bad_ledgers(tmp_path / "l", good, count=100, subprocesses=1)
    assert g["problems"] == 0 and g["exit_2"] > 0, g
