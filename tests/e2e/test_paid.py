"""A paid task is never given up (issue 14): outages of the list and query APIs, a proxy's 404 pages, budgets
across two runs, an edited manifest, the billed figure after expiry, and a lost ledger. Each case checks with
the emulator's own record (``assert_witness``) that every paid task's video is saved after at most one plain
resume, that no body is accepted twice (also after ``--retry-failed``), and that billing stays under a cap."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

from runner.emulator.config import EmulatorConfig
from runner.emulator.faults import parse_fault
from runner.store.replay import replay

from .conftest import assert_witness, cli, output, spawn, wait_submitted, write_manifest


def run(emu: Any, manifest: Path, out: Path, *extra: str, timeout: float = 120) -> Any:
    return cli("run", str(manifest), "--out", str(out), "--base-url", emu.base_url, *extra,
               cwd=manifest.parent, timeout=timeout)  # fmt: skip


def outage(emu: Any, rules: list[str], seconds: float) -> threading.Timer:
    """Turn ``rules`` on now and off again after ``seconds`` (an outage of that long)."""
    emu.state.faults.replace(tuple(parse_fault(r) for r in rules))
    timer = threading.Timer(seconds, emu.state.faults.replace, args=((),))
    timer.start()
    return timer


def no_failures(out: Path) -> None:
    state = replay(out / "ledger.jsonl")
    assert not [(j.name, j.failure) for j in state.jobs.values() if j.state == "failed"]


def test_a_list_outage_while_answers_are_lost_fails_no_job(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(seed=12)
    manifest = write_manifest(tmp_path / "m.yaml", 10)
    timer = outage(emu, ["503@list=1", "reset_after_create=0.5"], 4.0)
    try:
        r = run(emu, manifest, tmp_path / "out")
    finally:
        timer.cancel()
    assert r.returncode == 0, r.stderr[-3000:]
    assert emu.stats()["resets_after_create"] >= 2
    no_failures(tmp_path / "out")
    assert assert_witness(emu, tmp_path / "out") == {"billed": 10, "saved": 10}
    # and --retry-failed afterwards sends nothing
    again = run(emu, manifest, tmp_path / "out", "--retry-failed")
    assert again.returncode == 0 and emu.stats()["submitted"] == 10


def test_a_proxys_404_pages_on_queries_fail_no_job(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(seed=3, faults=EmulatorConfig.parse_faults(["404@query=1x20"]))
    manifest = write_manifest(tmp_path / "m.yaml", 10)
    r = run(emu, manifest, tmp_path / "out")
    assert r.returncode == 0, r.stderr[-3000:]
    assert emu.stats()["faults_injected"]["404"] == 20
    no_failures(tmp_path / "out")
    assert assert_witness(emu, tmp_path / "out") == {"billed": 10, "saved": 10}
    summary = json.loads(cli("status", str(tmp_path / "out"), "--json", cwd=tmp_path).stdout)
    assert summary["cost"] == 10 * 2 * 0.6  # 10 jobs of 2 s at 0.6 CNY/s, as billed
    again = run(emu, manifest, tmp_path / "out", "--retry-failed")
    assert again.returncode == 0 and emu.stats()["submitted"] == 10


def test_a_query_outage_fails_no_job(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(seed=4)
    manifest = write_manifest(tmp_path / "m.yaml", 10)
    timer = outage(emu, ["503@query=1", "503@list=1"], 5.0)
    try:
        r = run(emu, manifest, tmp_path / "out")
    finally:
        timer.cancel()
    assert r.returncode == 0, r.stderr[-3000:]
    no_failures(tmp_path / "out")
    assert assert_witness(emu, tmp_path / "out") == {"billed": 10, "saved": 10}


def test_the_caps_hold_across_two_runs_while_tasks_are_undecided(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(seed=5, task_time=3600.0)  # 1.2 CNY a job; 6.00 covers five
    manifest = write_manifest(tmp_path / "m.yaml", 10)
    out = tmp_path / "out"
    caps = ("--budget", "6", "--daily-budget", "6", "--state-dir", str(tmp_path / "state"))
    emu.state.faults.replace((parse_fault("404@query=1"), parse_fault("404@list=1")))  # nothing can be asked
    proc = spawn("run", str(manifest), "--out", str(out), "--base-url", emu.base_url, *caps, cwd=tmp_path)
    deadline = time.monotonic() + 30
    while emu.stats()["submitted"] < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(1.0)  # the run keeps asking, and gives up no task (nor its reservation)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130, output(tmp_path)[1][-3000:]
    assert emu.stats()["submitted"] == 5
    no_failures(out)
    emu.state.faults.replace(())
    r = run(emu, manifest, out, *caps)  # the same day: the five paid tasks are saved, nothing more is sent
    assert r.returncode == 1, r.stderr[-3000:]
    assert "daily budget 6.00 CNY" in r.stderr
    assert emu.stats()["submitted"] == 5
    billed = sum(2 * 0.6 for t in emu.state.store.order if t.outcome()[0] == "SUCCEEDED")
    assert billed <= 6.0 + 1e-9
    assert assert_witness(emu, out)["saved"] == 5


def test_an_edited_manifest_still_saves_the_old_jobs_paid_task(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(seed=6, task_time=3 * 3600.0)
    manifest = write_manifest(tmp_path / "m.yaml", 2)
    out = tmp_path / "out"
    proc = spawn("run", str(manifest), "--out", str(out), "--base-url", emu.base_url, cwd=tmp_path)
    wait_submitted(out, 2)
    proc.send_signal(signal.SIGINT)  # both tasks pending
    assert proc.wait(timeout=30) == 130
    old_names = {j.name for j in replay(out / "ledger.jsonl").jobs.values()}
    text = manifest.read_text(encoding="utf-8").replace("Shot 1 of", "Shot 1, fixed, of")  # one prompt fixed
    manifest.write_text(text, encoding="utf-8")
    r = run(emu, manifest, out)
    assert r.returncode == 0, r.stderr[-3000:]
    assert emu.stats()["submitted"] == 3
    counts = assert_witness(emu, out)
    assert counts == {"billed": 3, "saved": 3}, counts
    state = replay(out / "ledger.jsonl")
    orphans = [j for j in state.jobs.values() if j.orphan]
    assert len(orphans) == 1 and orphans[0].state == "downloaded" and orphans[0].name in old_names
    assert "no longer in the manifest" in r.stdout
    status = cli("status", str(out), cwd=tmp_path)
    assert "no longer in the manifest" in status.stdout and orphans[0].name in status.stdout


def test_status_bills_expired_tasks_as_the_server_did(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(seed=7, retention=24 * 3600.0, task_time=1800.0)
    manifest = write_manifest(tmp_path / "m.yaml", 5)  # all in flight at once (the quota is 5)
    out = tmp_path / "out"
    emu.state.faults.replace((parse_fault("404@query=1"), parse_fault("404@list=1")))  # nothing is seen ending
    proc = spawn("run", str(manifest), "--out", str(out), "--base-url", emu.base_url, cwd=tmp_path)
    deadline = time.monotonic() + 30
    while emu.stats()["submitted"] < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    emu.state.faults.replace(())
    time.sleep(1.0)  # every task succeeds (billed) ...
    emu.state.clock_offset += 25 * 3600.0  # ... and is forgotten before its video was saved
    r = run(emu, manifest, out)
    assert r.returncode == 1, r.stderr[-3000:]
    assert {j.state for j in replay(out / "ledger.jsonl").jobs.values()} == {"expired"}
    server_billed = sum(t.req.duration * 0.6 for t in emu.state.store.order if t.outcome()[0] == "SUCCEEDED")
    summary = json.loads(cli("status", str(out), "--json", cwd=tmp_path).stdout)
    assert abs(summary["cost"] - server_billed) < 1e-6, (summary["cost"], server_billed)


def test_a_lost_ledger_is_rebuilt_from_sidecars_and_the_register(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(seed=8)
    manifest = write_manifest(tmp_path / "m.yaml", 6)
    out = tmp_path / "out"
    assert run(emu, manifest, out).returncode == 0
    (out / "ledger.jsonl").write_bytes(b"")  # emptied; videos and sidecars still there
    r = run(emu, manifest, out)
    assert r.returncode == 0, r.stderr[-3000:]
    assert emu.stats()["submitted"] == 6, "a job the folder had paid for was paid again"
    assert "adopted from their sidecars" in r.stdout
    assert assert_witness(emu, out) == {"billed": 6, "saved": 6}

    # the ledger lost while tasks were in flight (no sidecar yet): the host's register names them
    slow = emulator(seed=9, task_time=3 * 3600.0)
    out2 = tmp_path / "out2"
    proc = spawn("run", str(manifest), "--out", str(out2), "--base-url", slow.base_url, cwd=tmp_path)
    wait_submitted(out2, 5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    paid = slow.stats()["submitted"]
    (out2 / "ledger.jsonl").unlink()
    r = run(slow, manifest, out2)
    assert r.returncode == 0, r.stderr[-3000:]
    assert slow.stats()["submitted"] <= 6 and slow.stats()["duplicates"] == 0, (paid, slow.stats()["submitted"])
    assert assert_witness(slow, out2)["saved"] == 6
