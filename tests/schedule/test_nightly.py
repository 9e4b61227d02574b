"""Nightly runs against the emulator: the run budget under concurrency (and with failing tasks), the daily
budget across two runs and folders, fill-missing over three scheduled "nights" of a growing manifest,
notifications to a local server, and a stale lock taken over."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from runner.emulator.config import EmulatorConfig
from runner.emulator.server import ThreadedEmulator, run_in_thread
from runner.schedule.budget import MoneyCaps, MoneyGuard, Snapshot
from runner.store.lock import LOCK_NAME
from runner.store.replay import replay

from .conftest import JOB_COST, HookServer, calm_timezone, ledger, wanbatch, write_manifest


def _committed_timeline(lines: list[dict[str, object]]) -> list[float]:
    """Reserved + settled money after every ledger line, as the ledger shows it: a job counts from its first
    ``submitting`` until a ``failed`` at the task or submit stage gives it back."""
    cost = {str(x["job_id"]): float(x["cost"]) for x in lines if x["event"] == "planned"}  # type: ignore[arg-type]
    holding: dict[str, float] = {}
    out = []
    for x in lines:
        job = str(x.get("job_id"))
        if x["event"] == "submitting":
            holding[job] = cost[job]
        elif x["event"] == "failed" and x.get("stage") in ("task", "submit"):
            holding.pop(job, None)
        out.append(sum(holding.values()))
    return out


@pytest.fixture
def moments(monkeypatch: pytest.MonkeyPatch) -> list[Snapshot]:
    """Every change of the run's money guard, as the guard saw it (it calls ``on_change`` under its lock)."""
    seen: list[Snapshot] = []
    real = MoneyCaps.guard

    def watched(*a: Any, **kw: Any) -> MoneyGuard | None:
        guard = real(*a, **kw)
        if guard is not None:
            guard.on_change = seen.append
        return guard

    monkeypatch.setattr(MoneyCaps, "guard", watched)
    return seen


def test_run_budget_is_never_exceeded_with_five_in_flight(
    tmp_path: Path, emulator: ThreadedEmulator, capsys: pytest.CaptureFixture[str], moments: list[Snapshot]
) -> None:
    m = write_manifest(tmp_path / "m.yaml", [f"c{i}" for i in range(8)])
    out = tmp_path / "out"
    code, _, err = wanbatch(capsys, "run", str(m), "--out", str(out), "--base-url", emulator.base_url,
                                 "--budget", "5", "--max-in-flight", "5")  # fmt: skip
    assert code == 1, err
    assert "run budget 5.00 CNY reached: 4.80 spent or reserved, 0.20 left" in err
    assert "4 job(s) not submitted (the cheapest needs 1.20 CNY)" in err
    stats = emulator.stats()
    assert stats["submitted"] == 4 and stats["duplicates"] == 0
    summary = replay(out / "ledger.jsonl").summary()
    assert summary["states"]["downloaded"] == 4 and summary["states"]["planned"] == 4
    assert summary["cost"] == pytest.approx(4 * JOB_COST)
    assert max(_committed_timeline(ledger(out))) <= 5 + 1e-9
    assert len(moments) >= 8 and all(m.committed <= 5 + 1e-9 for m in moments)
    assert moments[-1].reserved == 0 and moments[-1].settled == pytest.approx(4.8)


def test_run_budget_with_failing_tasks_gives_the_money_back_and_never_overspends(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], moments: list[Snapshot]
) -> None:
    faults = EmulatorConfig.parse_faults(["fail=0.4"])
    with run_in_thread(EmulatorConfig(speed=600, task_time=90, port=0, seed=5, faults=faults)) as emu:
        m = write_manifest(tmp_path / "m.yaml", [f"c{i}" for i in range(10)])
        out = tmp_path / "out"
        code, _, _ = wanbatch(capsys, "run", str(m), "--out", str(out), "--base-url", emu.base_url,
                                "--budget", "6")  # fmt: skip
        stats = emu.stats()
    summary = replay(out / "ledger.jsonl").summary()
    assert summary["cost"] <= 6 + 1e-9  # billed: only succeeded tasks
    assert max(_committed_timeline(ledger(out))) <= 6 + 1e-9
    assert moments and all(m.committed <= 6 + 1e-9 for m in moments)
    assert code == 1
    # a failed task is not billed: its money is reserved again for another job, so more than 5 creates went out
    failed_tasks = sum(1 for x in ledger(out) if x["event"] == "failed" and x.get("stage") == "task")
    assert failed_tasks > 0 and stats["submitted"] == summary["states"]["downloaded"] + failed_tasks


def test_daily_budget_holds_across_two_runs_and_folders(
    tmp_path: Path, emulator: ThreadedEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    tz = calm_timezone()
    state = tmp_path / "state"
    common = ["--base-url", emulator.base_url, "--daily-budget", "6", "--state-dir", str(state), "--timezone", tz]
    a = write_manifest(tmp_path / "a.yaml", ["a0", "a1", "a2"], name="alpha")
    b = write_manifest(tmp_path / "b.yaml", ["b0", "b1", "b2", "b3"], name="beta")
    code, _, err = wanbatch(capsys, "run", str(a), "--out", str(tmp_path / "A"), *common)
    assert code == 0, err
    code, stdout, err = wanbatch(capsys, "plan", str(b), "--budget", "2", "--daily-budget", "6",
                                 "--state-dir", str(state), "--timezone", tz)  # fmt: skip
    assert code == 0
    assert "budget per run: 2.00 CNY (stops the run after 2.00 of 4.80)" in stdout
    assert f"({tz}); 3.60 spent or reserved today, 2.40 left (not enough for the whole plan)" in stdout
    code, _, err = wanbatch(capsys, "run", str(b), "--out", str(tmp_path / "B"), *common)
    assert code == 1
    today = datetime.now(UTC).astimezone(__import__("zoneinfo").ZoneInfo(tz)).date().isoformat()
    assert f"daily budget 6.00 CNY for {today} ({tz}) reached: 6.00 spent or reserved today, 0.00 left" in err
    assert "2 job(s) not submitted" in err
    assert emulator.stats()["submitted"] == 5
    spend = [json.loads(x) for x in (state / f"spend-{today}.jsonl").read_text().splitlines()]
    assert sum(x["amount"] for x in spend if x["op"] == "settle") == pytest.approx(5 * JOB_COST)


def test_notification_reaches_a_local_server_and_a_hook(
    tmp_path: Path, emulator: ThreadedEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    m = write_manifest(tmp_path / "m.yaml", ["n0", "n1"])
    out = tmp_path / "out"
    got = tmp_path / "hook.json"
    with HookServer() as hooks:
        code, _, err = wanbatch(
            capsys, "run", str(m), "--out", str(out), "--base-url", emulator.base_url,
            "--notify", hooks.url + "/hook", "--notify", hooks.url + "/reject",
            "--on-finish", f"cat > {got}", "--on-finish", "exit 3",
        )  # fmt: skip
    assert code == 0, err  # a refused notification and a failing hook never fail the run
    assert hooks.attempts == 2, "the first answer was 503: sent again"
    (body,) = hooks.received
    assert body["event"] == "wanbatch.run.finished" and body["ok"] is True and body["exit_code"] == 0
    assert body["states"]["downloaded"] == 2 and body["jobs"] == 2
    assert body["cost"] == pytest.approx(2 * JOB_COST) and body["currency"] == "CNY" and body["seconds"] == 4
    assert body["out_dir"] == str(out) and body["failures_by_code"] == {}
    assert json.loads(got.read_text()) == body
    assert "notify.failed" in err and "hook.failed" in err
    assert "/reject" not in err, "only the webhook's host is logged"


def test_a_lock_left_by_a_killed_run_is_taken_over(
    tmp_path: Path, emulator: ThreadedEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    m = write_manifest(tmp_path / "m.yaml", ["l0"])
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / LOCK_NAME).write_text(f"{dead.pid}\n")
    code, _, err = wanbatch(capsys, "run", str(m), "--out", str(out), "--base-url", emulator.base_url)
    assert code == 0, err
    assert "lock.taken_over" in err and str(dead.pid) in err
    assert not (out / LOCK_NAME).exists()


def test_three_nights_of_a_growing_manifest_fill_the_missing_jobs_only(
    tmp_path: Path, emulator: ThreadedEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    m = tmp_path / "grow.yaml"
    out = tmp_path / "out"
    nights = [
        ["j0", "j1", "j2", "j3"],  # night 1: 4 jobs, 3 allowed
        ["j0", "j1", "j2", "j3", "j4", "j5"],  # night 2: 2 appended; the one left from night 1 goes first
        ["j1", "j2", "j3", "j4", "j5", "j6"],  # night 3: j0 removed (reported, untouched), j6 appended
    ]
    expect_done = [{"j0", "j1", "j2"}, set(nights[1]), set(nights[2]) | {"j0"}]
    codes = []
    for n, names in enumerate(nights):
        write_manifest(m, names, name="grow")
        code, stdout, err = wanbatch(capsys, "run", str(m), "--out", str(out), "--base-url", emulator.base_url,
                                     "--max-jobs", "3")  # fmt: skip
        codes.append(code)
        done = {j.name for j in replay(out / "ledger.jsonl").jobs.values() if j.state == "downloaded"}
        assert done == expect_done[n], err[-2000:]
    assert codes == [1, 0, 0]
    assert "1 job(s) in the ledger are no longer in the manifest" in stdout
    assert (out / "videos").is_dir() and len(list((out / "videos").glob("j0__*.mp4"))) == 1
    stats = emulator.stats()
    assert stats["submitted"] == 7 and stats["duplicates"] == 0, "no job was submitted twice"
    tasks: dict[str, int] = {}  # (an intent may be written twice: a 429 answer proves nothing was made)
    for x in ledger(out):
        if x["event"] == "submitted":
            tasks[str(x["job_id"])] = tasks.get(str(x["job_id"]), 0) + 1
    assert sorted(tasks.values()) == [1] * 7, "one task per job over the three nights"


def test_bad_budget_settings_exit_2_before_any_request(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = write_manifest(tmp_path / "m.yaml", ["x0"])
    base = ["run", str(m), "--out", str(tmp_path / "out"), "--base-url", "http://127.0.0.1:9/api/v1"]
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, _, err = wanbatch(capsys, *base, "--daily-budget", "5", "--state-dir", str(blocker / "state"))
    assert code == 2 and "cannot use the state folder" in err
    code, _, err = wanbatch(capsys, *base, "--daily-budget", "5", "--timezone", "Atlantis/Lost")
    assert code == 2 and "unknown timezone" in err
    code, _, err = wanbatch(capsys, *base, "--budget", "-1")
    assert code == 2 and "must be 0 or more" in err
    assert not (tmp_path / "out" / "ledger.jsonl").exists()
