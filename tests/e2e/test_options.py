"""Run options that set limits: the download size cap and the query rate, both checked end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runner.store.replay import replay

from .conftest import cli, write_manifest


def test_a_video_over_the_cap_fails_its_job_and_is_never_generated_again(tmp_path: Path, emulator: Any) -> None:
    emu = emulator()
    manifest = write_manifest(tmp_path / "m.yaml", 2)
    out = tmp_path / "out"
    args = ("run", str(manifest), "--out", str(out), "--base-url", emu.base_url, "--max-video-mb", "0.001")
    r = cli(*args, cwd=tmp_path)
    assert r.returncode == 1, r.stderr[-3000:]
    state = replay(out / "ledger.jsonl")
    assert {j.state for j in state.jobs.values()} == {"failed"}
    for job in state.jobs.values():
        assert job.failure is not None and job.failure.code == "DownloadRefused", job.failure
        assert "over the cap" in (job.failure.message or "")
    assert not list((out / "videos").glob("*.mp4")) and not list((out / "videos").glob("*.part"))
    again = cli(*args, "--retry-failed", cwd=tmp_path)  # billed tasks: fetched again, never regenerated
    assert again.returncode == 1
    assert emu.stats()["submitted"] == 2


def test_limit_options_must_be_positive(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.yaml", 1)
    for option in ("--query-qps", "--max-video-mb"):
        for bad in ("0", "-1", "x", "inf"):
            r = cli("run", str(manifest), "--out", str(tmp_path / "out"), option, bad, cwd=tmp_path)
            assert r.returncode == 2, (option, bad, r.stderr)
            assert option in r.stderr
    assert not (tmp_path / "out").exists()


def test_a_raised_query_rate_runs_to_completion(tmp_path: Path, emulator: Any) -> None:
    emu = emulator()
    manifest = write_manifest(tmp_path / "m.yaml", 3)
    out = tmp_path / "out"
    r = cli("run", str(manifest), "--out", str(out), "--base-url", emu.base_url, "--query-qps", "40", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert {j.state for j in replay(out / "ledger.jsonl").jobs.values()} == {"downloaded"}
