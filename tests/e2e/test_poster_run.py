"""A run makes each video's poster as the video lands: every poster is on disk before the run's last ledger
line, so the gallery written after it (``report.written``) decodes no video itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runner.report.poster import poster_path

from .conftest import assert_complete, cli, ledger_lines, write_manifest


def test_every_poster_is_made_before_the_gallery_step(tmp_path: Path, emulator: Any) -> None:
    emu = emulator()
    manifest = write_manifest(tmp_path / "m.yaml", 5)
    out = tmp_path / "out"
    r = cli("run", str(manifest), "--out", str(out), "--base-url", emu.base_url, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert_complete(out, 5)
    finished = [line["ts"] for line in ledger_lines(out) if line["event"] == "run.finished"]
    assert len(finished) == 1
    videos = sorted((out / "videos").glob("*.mp4"))
    page = (out / "index.html").read_text(encoding="utf-8")
    for video in videos:
        poster = poster_path(video)
        assert poster.read_bytes()[:2] == b"\xff\xd8", f"no poster for {video.name}"
        # written by the run, before run.finished; the gallery comes after that line
        assert poster.stat().st_mtime_ns <= finished[0] * 1e9, video.name
        assert poster.stat().st_mtime_ns >= video.stat().st_mtime_ns, "the gallery would make it again"
        assert f"videos/{poster.name}" in page
    assert "report.written" in r.stderr and "poster.failed" not in r.stderr
