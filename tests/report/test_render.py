"""The gallery without a browser: render to a string, parse it, check cards, escaping, totals, files."""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import av
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.cli import main as cli_main
from runner.commands.folder import report_command
from runner.errors import LedgerError
from runner.report.formats import fmt_bytes, fmt_duration
from runner.report.gallery import (
    Card,
    Gallery,
    RunInfo,
    Totals,
    build_gallery,
    render,
    write_report,
)
from runner.store.events import STATES
from tests.report.dom import Node, parse
from tests.report.runfolder import JOBS, XSS_PROMPT, build_run

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _page(run_dir: Path) -> tuple[str, Node]:
    html = write_report(run_dir, now=NOW).read_text(encoding="utf-8")
    return html, parse(html)


def _cards(doc: Node) -> dict[str, Node]:
    return {n.attrs["data-name"] or "": n for n in doc.find_all("article", cls="card")}


def test_every_job_has_a_card_with_its_state(run_dir: Path) -> None:
    _, doc = _page(run_dir)
    cards = _cards(doc)
    assert len(cards) == len(JOBS)
    for job in JOBS:
        card = cards[job.name]
        assert card.attrs["id"] == f"job-{job.job_id}"
        assert card.attrs["data-state"] == job.end
        assert job.model in card.text()


def test_prompt_with_html_is_text_not_markup(run_dir: Path) -> None:
    html, doc = _page(run_dir)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    scripts = doc.find_all("script")
    assert len(scripts) == 1, "only the gallery's own script"
    assert "alert(" not in scripts[0].text()
    assert not [n for n in doc.find_all("img") if n.attrs.get("src") == "x"]
    assert not [n for n in doc.iter() if any(k.startswith("on") for k in n.attrs)], "no event-handler attribute"
    card = _cards(doc)["html-in-prompt"]
    assert card.find("p", cls="prompt").text() == XSS_PROMPT


def test_totals_states_and_costs(run_dir: Path) -> None:
    _, doc = _page(run_dir)
    totals = {n.attrs["data-total"]: n for n in doc.find_all("dd") if "data-total" in n.attrs}
    assert totals["jobs"].text().strip() == str(len(JOBS))
    billed = [j for j in JOBS if j.end in ("downloaded", "expired")]  # their tasks succeeded: billed
    assert totals["cost"].text().startswith(f"{sum(j.cost for j in billed):,.2f}")
    assert f"of {sum(j.cost for j in JOBS):,.2f} planned" in totals["cost"].text()
    assert totals["seconds"].text().startswith(str(sum(j.duration for j in billed)))
    pills = {n.attrs["data-state-count"]: int(n.find("b").text()) for n in doc.find_all("li", cls="pill")}
    expected: dict[str, int] = {}
    for j in JOBS:
        expected[j.end] = expected.get(j.end, 0) + 1
    assert pills == expected


def test_failures_grouped_by_code_with_messages_and_request_ids(run_dir: Path) -> None:
    _, doc = _page(run_dir)
    groups = {n.attrs["data-code"]: n for n in doc.find(cls="failures").find_all("details")}
    failed = [j for j in JOBS if j.end == "failed"]
    assert set(groups) == {j.code for j in failed}
    assert next(iter(groups)) == "InvalidParameter", "the most frequent code first"
    for j in failed:
        rows = groups[j.code or ""].find_all("tr")
        row = next(r for r in rows if j.name in r.text())
        assert j.message in row.text()
        assert f"req-{j.job_id[:8]}-0001" in row.text()


def test_canceled_expired_running_shown_as_such(run_dir: Path) -> None:
    _, doc = _page(run_dir)
    cards = _cards(doc)
    assert "canceled" in cards["ocean-timelapse"].find(cls="ph").text()
    assert "expired" in cards["old-city-tour"].find(cls="ph").text()
    assert "running" in cards["moon-landing"].find(cls="ph").text()
    assert "estimate" in cards["moon-landing"].text()
    assert "not billed" in cards["red-carpet"].text()


def test_card_facts_times_and_rewritten_prompt(run_dir: Path) -> None:
    g = build_gallery(run_dir, now=NOW)
    by_name = {c.name: c for c in g.cards}
    ny = by_name["detective-new-york"]
    assert ny.generation_s == pytest.approx(287.1, abs=0.002)  # from the task's UTC+8 submit/end times
    assert ny.queue_s == pytest.approx(6.9, abs=0.002)
    assert ny.download_s == pytest.approx(1.8)  # from the sidecar's timings
    assert (ny.seed, ny.shot_type, ny.size, ny.duration) == (42, "multi", "1280×720", 10)
    assert ny.actual_prompt is None  # wan2.6 never rewrites
    harbor = by_name["harbor-dawn"]
    assert harbor.actual_prompt is not None and harbor.actual_prompt.startswith("A serene harbor")
    _, doc = _page(run_dir)
    assert "A serene harbor" in _cards(doc)["harbor-dawn"].find("details", cls="actual").text()


def test_posters_are_real_jpegs_beside_the_videos_with_relative_links(run_dir: Path) -> None:
    _, doc = _page(run_dir)
    videos = sorted((run_dir / "videos").glob("*.mp4"))
    assert len(videos) == sum(j.end == "downloaded" for j in JOBS)
    for video in videos:
        poster = video.with_name(video.stem + ".poster.jpg")
        assert poster.read_bytes()[:2] == b"\xff\xd8"
        with av.open(str(poster)) as c:
            frame = next(c.decode(video=0))
        assert 100 < frame.width <= 480
    for n in doc.iter():
        for attr in ("src", "href"):
            value = n.attrs.get(attr)
            if value is not None:
                assert not re.match(r"^([a-z][a-z0-9+.-]*:|//|/)", value, re.I), f"not relative: {value}"
                target = value.split("#")[0]
                if target:
                    assert (run_dir / target).is_file(), target


def test_poster_is_made_once_and_a_broken_video_does_not_break_the_page(run_dir: Path) -> None:
    write_report(run_dir, now=NOW)
    poster = next((run_dir / "videos").glob("detective-new-york*.poster.jpg"))
    os.utime(poster, ns=(1, poster.stat().st_mtime_ns + 10**9))
    stamp = poster.stat().st_mtime_ns
    video = next((run_dir / "videos").glob("harbor-dawn*.mp4"))
    video.with_name(video.stem + ".poster.jpg").unlink()
    video.write_bytes(b"not an mp4 at all")
    _, doc = _page(run_dir)
    assert poster.stat().st_mtime_ns == stamp, "an up-to-date poster is reused"
    harbor = _cards(doc)["harbor-dawn"]
    assert harbor.find("a", cls="play").find_all("img") == []
    assert "video" in harbor.find(cls="ph").text()


def test_csp_allows_exactly_the_inline_script_and_style(run_dir: Path) -> None:
    _, doc = _page(run_dir)
    csp = doc.find("meta", http_equiv="Content-Security-Policy").attrs["content"] or ""

    def sha(text: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"

    assert "default-src 'none'" in csp
    assert f"script-src {sha(doc.find('script').text())}" in csp
    assert f"style-src {sha(doc.find('style').text())}" in csp
    assert "http" not in csp


def test_torn_last_line_is_ignored(run_dir: Path) -> None:
    with (run_dir / "ledger.jsonl").open("ab") as f:
        f.write(b'{"ts": 1, "event": "failed", "job_id": "')
    _, doc = _page(run_dir)
    assert len(_cards(doc)) == len(JOBS)


def test_a_video_path_outside_the_folder_is_not_linked(tmp_path: Path) -> None:
    run = build_run(tmp_path / "run", jobs=JOBS[:1])
    ledger = run / "ledger.jsonl"
    text = ledger.read_text(encoding="utf-8")
    (tmp_path / "secret.mp4").write_bytes(b"x")
    ledger.write_text(re.sub(r'"path":"[^"]+"', '"path":"../secret.mp4"', text), encoding="utf-8")
    (card,) = build_gallery(run, now=NOW).cards
    assert card.state == "downloaded" and card.video is None


def test_report_command_and_cli(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert report_command(argparse.Namespace(dir=str(run_dir))) == 0
    assert capsys.readouterr().out.strip() == str(run_dir / "index.html")
    (run_dir / "index.html").unlink()
    assert cli_main(["report", str(run_dir)]) == 0
    assert (run_dir / "index.html").is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli_main(["report", str(empty)]) == 2
    assert "no ledger" in capsys.readouterr().err
    with pytest.raises(LedgerError):
        write_report(empty)


def test_an_empty_run_renders(tmp_path: Path) -> None:
    run = build_run(tmp_path / "run", jobs=())
    _, doc = _page(run)
    assert _cards(doc) == {}
    assert "no jobs yet" in doc.text()


def _one_card_gallery(prompt: str, name: str) -> Gallery:
    card = Card(
        job_id="0123456789abcdef",
        order=0,
        name=name,
        state="downloaded",
        model="wan2.6-t2v",
        size="1280×720",
        duration=5,
        seed=None,
        shot_type=None,
        prompt=prompt,
        actual_prompt=prompt + "!",
        cost=3.0,
        cost_note="",
        task_id="t",
        generation_s=None,
        queue_s=None,
        download_s=None,
        video=None,
        poster=None,
        bytes=None,
        failure=None,
    )
    totals = Totals(1, {s: int(s == "downloaded") for s in STATES}, 5, 3.0, 5, 3.0, 0, 0, 0.0)
    return Gallery(RunInfo(title=name), (card,), totals, (), "now")


_PIECES = st.one_of(
    st.sampled_from(["<", ">", "&", '"', "'", "/", "=", "<script>", "</p>", "&amp;", "{{", " "]), st.characters()
)
_HTMLISH = st.lists(_PIECES, min_size=1, max_size=30).map("".join)


@settings(max_examples=60, deadline=None)
@given(prompt=_HTMLISH.filter(bool), name=_HTMLISH.filter(bool))
def test_any_text_round_trips_as_text(prompt: str, name: str) -> None:
    # the parser (like a browser) normalises CR and drops NUL; the service would see the same prompt
    prompt = prompt.replace("\r", "\n").replace("\x00", "")
    name = name.replace("\r", "\n").replace("\x00", "")
    doc = parse(render(_one_card_gallery(prompt, name)))
    (card,) = doc.find_all("article", cls="card")
    assert card.attrs["data-name"] == name
    assert card.find("h3").text() == name
    assert card.find("p", cls="prompt").text() == prompt
    assert len(doc.find_all("script")) == 1


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "–"), (2.44, "2.4 s"), (42, "42 s"), (287.1, "4 min 47 s"), (120, "2 min"), (7300, "2 h 1 min")],
)
def test_fmt_duration(seconds: float | None, text: str) -> None:
    assert fmt_duration(seconds) == text


def test_fmt_bytes() -> None:
    assert [fmt_bytes(n) for n in (None, 999, 11_300, 2_500_000_000)] == ["–", "999 B", "11.3 KB", "2.5 GB"]
