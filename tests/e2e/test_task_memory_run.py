"""Task times kept across runs, end to end: a run leaves what it learned in its state folder, the next run
against the same host reads it, and a state file that is garbage costs one warning, never the run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .conftest import assert_complete, cli, write_manifest

JOBS = 6


def _events(stderr: str) -> list[str]:
    return [json.loads(line).get("event", "") for line in stderr.splitlines() if line.startswith("{")]


def test_a_run_leaves_its_task_times_for_the_next_and_survives_a_corrupt_file(tmp_path: Path, emulator: Any) -> None:
    emu = emulator()  # 0.5-s tasks
    state = tmp_path / "state"
    host = urlsplit(emu.base_url).netloc
    first = write_manifest(tmp_path / "a.yaml", JOBS, name="a")
    r = cli("run", str(first), "--out", str(tmp_path / "a"), "--base-url", emu.base_url, "--state-dir", str(state),
            cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert_complete(tmp_path / "a", JOBS)
    kept = json.loads((state / "task-times.json").read_text())
    samples = kept["hosts"][host]["wan2.6-t2v|720P|2"]  # the manifest's jobs: 1280*720, 2 s
    assert len(samples) == JOBS and all(0.4 < seconds < 0.7 for _, seconds in samples)
    assert "poll.memory_ignored" not in _events(r.stderr)

    (state / "task-times.json").write_bytes(b'{"app": "wanbatch", "format": 1, "hosts": {"x"')  # torn: corrupt
    second = write_manifest(tmp_path / "b.yaml", JOBS, name="b", tag=" again")
    r = cli("run", str(second), "--out", str(tmp_path / "b"), "--base-url", emu.base_url, "--state-dir", str(state),
            cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert_complete(tmp_path / "b", JOBS)
    assert _events(r.stderr).count("poll.memory_ignored") == 1
    kept = json.loads((state / "task-times.json").read_text())  # replaced by what this run learned
    assert len(kept["hosts"][host]["wan2.6-t2v|720P|2"]) == JOBS
