"""The gallery with voice-overs (issue 19): the player plays a video with its sound (nothing mutes it), and a card
names the soundtrack its video was made with."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from runner.report.gallery import write_report
from tests.report.dom import parse
from tests.report.runfolder import Job, build_run

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
TEMPLATES = Path(__file__).resolve().parents[2] / "runner" / "report" / "templates"


def test_the_player_is_never_muted() -> None:
    doc = parse((TEMPLATES / "gallery.html.j2").read_text(encoding="utf-8"))
    videos = doc.find_all("video")
    assert len(videos) == 1
    assert "controls" in videos[0].attrs and "muted" not in videos[0].attrs and "autoplay" not in videos[0].attrs
    script = (TEMPLATES / "gallery.js").read_text(encoding="utf-8")
    assert "muted" not in script and "volume" not in script  # play() follows the user's click: sound allowed


def test_a_card_names_its_soundtrack(tmp_path: Path) -> None:
    jobs = (
        Job("narrated", "wan2.6-t2v", "1280*720", 5, "A harbour at dawn.", "downloaded", seed=1,
            extra={"input": {"audio_url": "file:///data/voice%20overs/harbour%20take%202.wav"}}),
        Job("hosted", "wan2.5-t2v-preview", "832*480", 5, "A quiet street.", "downloaded", seed=2,
            extra={"input": {"audio_url": "https://example.com/a.mp3"}}),
        Job("silent", "wan2.6-t2v", "1280*720", 5, "A field.", "downloaded", seed=3),
    )  # fmt: skip
    out = build_run(tmp_path / "run", jobs, name="voices")
    doc = parse(write_report(out, now=NOW).read_text(encoding="utf-8"))
    cards = {n.attrs["data-name"]: n for n in doc.find_all("article", cls="card")}

    def audio(name: str) -> str | None:
        for fact in cards[name].find_all("div"):
            dts = fact.find_all("dt")
            if dts and dts[0].text() == "audio":
                return fact.find_all("dd")[0].text()
        return None

    assert audio("narrated") == "harbour take 2.wav"
    assert audio("hosted") == "https://example.com/a.mp3"
    assert audio("silent") is None
