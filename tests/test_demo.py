"""``make demo`` (``runner.demo.main``) end to end: plans, an emulated run through the real CLI, status and
gallery, in a temporary runs folder; a second demo starts fresh; a folder of a real run is never cleared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.demo import clear_previous, main
from runner.errors import InputError
from runner.store.replay import replay


def _task_ids(out: Path) -> set[str]:
    return {j.task_id for j in replay(out / "ledger.jsonl").jobs.values() if j.task_id}


def test_quick_demo_leaves_videos_ledger_status_and_gallery(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--runs", str(tmp_path), "--quick", "--quiet"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    out = tmp_path / "detective"
    assert "plan detective-trailer in cn-beijing" in printed
    assert "cost: 9.00 CNY" in printed
    assert "plan city-matrix" in printed and "plan nightly" in printed
    assert "more rows" in printed  # the 60-row nightly plan is cut short
    assert "detective-trailer: 1 jobs" in printed and "downloaded  1" in printed  # `wanbatch status`
    assert "demo: every run finished" in printed
    assert "1 create requests accepted for 1 jobs; 0 request bodies sent twice" in printed  # the emulator's count
    videos = sorted((out / "videos").glob("*.mp4"))
    assert len(videos) == 1 and videos[0].stat().st_size > 0
    assert videos[0].with_suffix(".json").is_file()
    assert (out / "index.html").is_file()
    events = [json.loads(line)["event"] for line in (out / "ledger.jsonl").read_text().splitlines()]
    assert events[0] == "run.started" and events[-1] == "run.finished"
    assert {"submitting", "submitted", "succeeded", "downloaded"} <= set(events)
    assert "sk-wanbatch-demo" not in (out / "ledger.jsonl").read_text()

    first = _task_ids(out)
    code = main(["--runs", str(tmp_path), "--quick", "--quiet"])  # re-running works: a fresh run
    assert code == 0, capsys.readouterr().out
    second = _task_ids(out)
    assert len(first) == len(second) == 1 and first != second
    assert len(list((out / "videos").glob("*.mp4"))) == 1


def test_a_folder_of_a_real_run_is_never_cleared(tmp_path: Path) -> None:
    out = tmp_path / "detective"
    out.mkdir()
    line = {"ts": 1.0, "event": "run.started", "job_id": None, "base_url": "https://dashscope.aliyuncs.com/api/v1"}
    (out / "ledger.jsonl").write_text(json.dumps(line) + "\n")
    with pytest.raises(InputError, match="not clearing it"):
        clear_previous(out)
    assert (out / "ledger.jsonl").is_file()
    assert main(["--runs", str(tmp_path), "--quick", "--quiet"]) == 2
    assert (out / "ledger.jsonl").is_file()


def test_a_folder_without_a_ledger_is_never_cleared(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="holds no ledger"):
        clear_previous(tmp_path)
    assert (tmp_path / "keep.txt").is_file()
