"""The gallery of a real run: ``wanbatch run`` against the emulator (on 127.0.0.1), then the report.

This is the check that the report reads what the pipeline, the API client and the downloader really write
(task times, sidecars, paths), not only what the hand-made fixture says they write.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.cli import build_parser
from runner.commands.run import run_command
from runner.emulator.config import EmulatorConfig
from runner.emulator.server import ThreadedEmulator, run_in_thread
from runner.report.gallery import build_gallery, write_report
from tests.report.dom import parse

MANIFEST = """\
version: 1
name: gallery-e2e
defaults:
  model: wan2.6-t2v
  size: "1280*720"
  duration: 5
jobs:
  - name: harbor
    prompt: Fishing boats leaving a quiet harbor at dawn.
  - name: html
    prompt: "<script>alert(1)</script> a cat on a piano"
  - name: blocked
    prompt: A forbidden scene in the rain.
  - name: turbo
    model: wan2.1-t2v-turbo
    prompt: A camel caravan crossing red dunes.
"""


@pytest.fixture
def emulator() -> Iterator[ThreadedEmulator]:
    emu = run_in_thread(EmulatorConfig(speed=600, task_time=90, block_word="forbidden", port=0))
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def finished_run(emulator: ThreadedEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-gallery-test")
    manifest = tmp_path / "gallery.yaml"
    manifest.write_text(MANIFEST, encoding="utf-8")
    out = tmp_path / "out"
    args = build_parser().parse_args(["run", str(manifest), "--out", str(out), "--base-url", emulator.base_url])
    assert run_command(args) == 1  # one job failed
    return out


def test_the_gallery_of_an_emulated_run(finished_run: Path) -> None:
    g = build_gallery(finished_run)
    cards = {c.name: c for c in g.cards}
    assert set(cards) == {"harbor", "html", "blocked", "turbo"}
    assert {n: c.state for n, c in cards.items()} == {
        "harbor": "downloaded",
        "html": "downloaded",
        "blocked": "failed",
        "turbo": "downloaded",
    }
    for name in ("harbor", "html", "turbo"):
        c = cards[name]
        assert c.video and c.video.startswith("videos/") and (finished_run / c.video).is_file()
        assert c.poster and (finished_run / c.poster).read_bytes()[:2] == b"\xff\xd8"
        # the task's own submit→end times (the emulator stamps them on its clock, 600x faster)
        assert c.generation_s is not None and 0 < c.generation_s < 10
        assert c.cost > 0 and c.cost_note == ""
        assert c.task_id
    assert cards["turbo"].actual_prompt is not None, "wan2.1 rewrites the prompt; wan2.6 never does"
    assert cards["harbor"].actual_prompt is None
    assert [code for code, _ in g.failures] == ["DataInspectionFailed"]
    blocked = cards["blocked"]
    assert blocked.failure is not None and blocked.failure.request_id and blocked.cost_note == "not billed"

    html = write_report(finished_run).read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html
    doc = parse(html)
    assert len(doc.find_all("article", cls="card")) == 4
    assert len(doc.find_all("script")) == 1
    assert doc.find("dd", data_total="jobs").text().strip() == "4"
