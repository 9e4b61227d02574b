"""A full run through the command line against the emulator: videos, sidecars, ledger order, status shape,
exit codes for a missing key and a locked folder, and no trace of the API key anywhere."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from runner.store.events import STATES
from runner.store.lock import RunLock

from .conftest import assert_complete, assert_no_key, cli, env, ledger_lines, write_manifest


def test_full_run_then_status_then_rerun(tmp_path: Path, emulator: Any) -> None:
    emu = emulator()
    manifest = write_manifest(tmp_path / "m.yaml", 6)
    out = tmp_path / "out"
    r = cli("run", str(manifest), "--out", str(out), "--base-url", emu.base_url, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert_complete(out, 6)
    stats = emu.stats()
    assert stats["submitted"] == 6
    assert stats["duplicates"] == 0
    assert stats["downloads_with_authorization"] == 0
    assert (out / "manifest.yaml").read_text(encoding="utf-8") == manifest.read_text(encoding="utf-8")
    events = [line["event"] for line in ledger_lines(out)]
    assert events[0] == "run.started" and events[-1] == "run.finished"
    planned = [line["name"] for line in ledger_lines(out) if line["event"] == "planned"]
    assert planned == [f"clip{i}" for i in range(6)], "planned lines keep the manifest's order"
    assert events.index("submitting") > max(i for i, e in enumerate(events) if e == "planned")
    page = (out / "index.html").read_text(encoding="utf-8")  # the gallery is written at the end of the run
    assert all(f"clip{i}" in page for i in range(6))
    assert "report.written" in r.stderr

    s = cli("status", str(out), "--json", cwd=tmp_path)
    assert s.returncode == 0, s.stderr
    summary = json.loads(s.stdout)
    assert set(summary) >= {"name", "jobs", "states", "seconds", "cost", "currency", "failures"}
    assert summary["name"] == "e2e" and summary["jobs"] == 6
    assert list(summary["states"]) == list(STATES)
    assert summary["states"]["downloaded"] == 6 and sum(summary["states"].values()) == 6
    assert summary["seconds"] == 12 and summary["currency"] == "CNY"
    assert abs(summary["cost"] - 6 * 2 * 0.6) < 1e-6
    assert summary["failures"] == []

    again = cli("run", str(manifest), "--out", str(out), "--base-url", emu.base_url, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert emu.stats()["submitted"] == 6, "a finished run must not submit anything again"
    assert emu.stats()["downloads"] == stats["downloads"], "verified files are not downloaded again"
    assert_no_key(out, r.stdout, r.stderr, s.stdout, s.stderr, again.stdout, again.stderr)


def test_missing_file_is_downloaded_again_without_a_new_task(tmp_path: Path, emulator: Any) -> None:
    emu = emulator()
    manifest = write_manifest(tmp_path / "m.yaml", 2)
    out = tmp_path / "out"
    args = ("run", str(manifest), "--out", str(out), "--base-url", emu.base_url)
    assert cli(*args, cwd=tmp_path).returncode == 0
    victim = sorted((out / "videos").glob("*.mp4"))[0]
    victim.unlink()
    (out / "index.html.tmp").mkdir()  # the gallery cannot be written: the run must not fail for it
    r = cli(*args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert '"report.failed"' in r.stderr
    assert_complete(out, 2)
    assert emu.stats()["submitted"] == 2


def test_missing_key_exits_2(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.yaml", 1)
    environ = env()
    del environ["DASHSCOPE_API_KEY"]
    r = cli("run", str(manifest), "--out", str(tmp_path / "out"), cwd=tmp_path, environ=environ)
    assert r.returncode == 2
    assert "DASHSCOPE_API_KEY" in r.stderr


def test_bad_manifest_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\njobs:\n  - name: x\n    prompt: hi\n    model: wan9-none\n", encoding="utf-8")
    r = cli("run", str(bad), "--out", str(tmp_path / "out"), "--base-url", "http://127.0.0.1:9/api/v1", cwd=tmp_path)
    assert r.returncode == 2
    assert "bad.yaml" in r.stderr


def test_locked_folder_exits_3(tmp_path: Path, emulator: Any) -> None:
    emu = emulator()
    manifest = write_manifest(tmp_path / "m.yaml", 1)
    out = tmp_path / "out"
    args = ("run", str(manifest), "--out", str(out), "--base-url", emu.base_url)
    out.mkdir()
    started = {"ts": 1.0, "event": "run.started", "name": "e2e", "region": "cn-beijing", "base_url": emu.base_url}
    (out / "ledger.jsonl").write_text(json.dumps(started) + "\n", encoding="utf-8")  # a run was here
    before = (out / "ledger.jsonl").read_bytes()
    with RunLock(out):
        r = cli(*args, cwd=tmp_path)
        c = cli("cancel", str(out), "--base-url", emu.base_url, cwd=tmp_path)
    assert r.returncode == 3, r.stderr
    # cancel works beside a live run (issue 17): it asks the server only, and there is nothing PENDING here
    assert c.returncode == 0 and "a run holds the folder" in c.stdout, c.stderr
    assert "in use" in r.stderr
    assert (out / "ledger.jsonl").read_bytes() == before, "a locked-out command wrote to the ledger"
    assert emu.stats()["requests"] == {}, "a locked-out command talked to the API"


def test_status_of_a_folder_without_ledger_exits_2(tmp_path: Path) -> None:
    r = cli("status", str(tmp_path), "--json", cwd=tmp_path)
    assert r.returncode == 2
    assert "ledger" in r.stderr
