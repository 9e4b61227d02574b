"""The gallery in a real browser: Debian's headless Chromium driven by Playwright's bundled driver.

Chromium is installed by ``install_chromium.sh`` when missing (CI calls the same script); the tests skip,
saying why, only when that is impossible. ``playwright install`` is never run: the system Chromium is used.
The page is opened from disk (file://), as a user would open it; any request that is not a file is a failure.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from runner.report.gallery import build_gallery, write_report
from tests.report.runfolder import JOBS, XSS_PROMPT

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")

CHROMIUM = Path("/usr/bin/chromium")
INSTALLER = Path(__file__).with_name("install_chromium.sh")
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "gallery.png"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

pytestmark = pytest.mark.timeout(900)  # the first test may wait for apt-get to install Chromium


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.exists():
        try:
            done = subprocess.run(["bash", str(INSTALLER)], capture_output=True, text=True, timeout=850)
            why = (done.stderr or done.stdout).strip()[-400:]
        except (OSError, subprocess.TimeoutExpired) as e:
            why = str(e)
        if not CHROMIUM.exists():
            pytest.skip(f"headless Chromium is not installed and {INSTALLER.name} could not install it: {why}")
    return CHROMIUM


@pytest.fixture(scope="module")
def page_url(pristine_run: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    run = Path(shutil.copytree(pristine_run, tmp_path_factory.mktemp("browser") / "detective-trailer"))
    return write_report(run, now=NOW).as_uri()


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        yield p


class Browser:
    """One Chromium with a fresh profile; records console messages, dialogs and every request."""

    def __init__(self, playwright: Any, chromium: Path, profile: Path, *, js: bool = True) -> None:
        self.context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(chromium),
            args=ARGS,
            headless=True,
            java_script_enabled=js,
            viewport={"width": 1400, "height": 1300},
            device_scale_factor=1,
        )
        self.console: list[str] = []
        self.dialogs: list[str] = []
        self.requests: list[str] = []
        self.page = self.context.pages[0] if self.context.pages else self.context.new_page()
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))
        self.page.on("dialog", self._dialog)
        self.page.on("request", lambda r: self.requests.append(r.url))

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def open(self, url: str) -> Any:
        self.page.goto(url, wait_until="load")
        return self.page

    def visible_names(self) -> list[str]:
        names: list[str] = self.page.eval_on_selector_all(
            "article.card", "cs => cs.filter(c => c.offsetParent !== null).map(c => c.dataset.name)"
        )
        return names

    def close(self) -> None:
        self.context.close()


def wait_true(page: Any, expression: str, timeout: float = 15.0) -> None:
    """Wait until ``expression`` is true in the page, polled from here. ``page.evaluate`` goes through the
    DevTools protocol, which the gallery's CSP does not govern; ``wait_for_function``'s own polling builds a
    ``Function`` inside the page, which the CSP (no unsafe-eval) refuses whenever the first try is false — the
    flake of issue 15. The page keeps its CSP."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"not true within {timeout} s: {expression}"
        time.sleep(0.05)


@pytest.fixture
def browser(playwright: Any, chromium: Path, tmp_path: Path) -> Iterator[Browser]:
    b = Browser(playwright, chromium, tmp_path / "profile")
    yield b
    b.close()


def test_every_card_shows_and_the_html_prompt_stays_text(browser: Browser, page_url: str) -> None:
    page = browser.open(page_url)
    assert browser.visible_names() == [j.name for j in JOBS]
    for job in JOBS:
        assert page.locator(f"#job-{job.job_id}").is_visible()
    prompt = page.locator(f"#job-{JOBS[4].job_id} p.prompt")
    assert prompt.inner_text() == XSS_PROMPT
    assert page.locator("script").count() == 1
    assert page.locator('img[src="x"]').count() == 0
    assert page.evaluate("typeof window.alert") == "function"
    assert browser.dialogs == [], "a script from a prompt ran"
    assert not [m for m in browser.console if "Content Security Policy" in m or m.startswith("pageerror")]
    assert all(u.startswith("file://") for u in browser.requests), browser.requests


def test_posters_load_from_the_folder(browser: Browser, page_url: str) -> None:
    page = browser.open(page_url)
    page.set_viewport_size({"width": 1400, "height": 4000})  # every lazy poster in view
    wait_true(page, "Array.from(document.images).every(i => i.complete)")
    widths = page.eval_on_selector_all("article.card img", "is => is.map(i => i.naturalWidth)")
    assert len(widths) == sum(j.end == "downloaded" for j in JOBS)
    assert all(w > 0 for w in widths)


def test_filter_hides_and_shows_cards(browser: Browser, page_url: str) -> None:
    page = browser.open(page_url)
    everyone = [j.name for j in JOBS]
    assert page.locator("#controls").is_visible()
    page.select_option("#f-state", "failed")
    assert browser.visible_names() == [j.name for j in JOBS if j.end == "failed"]
    assert page.locator("#f-count").inner_text() == f"3 of {len(JOBS)} jobs shown"
    page.select_option("#f-state", "")
    assert browser.visible_names() == everyone
    page.fill("#f-text", "harbor")
    assert browser.visible_names() == ["harbor-dawn"]
    page.fill("#f-text", "invalidparameter")
    assert browser.visible_names() == ["bad-size", "bad-duration"]
    page.fill("#f-text", "no such words")
    assert browser.visible_names() == []
    assert page.locator("#empty").is_visible()
    page.fill("#f-text", "")
    assert browser.visible_names() == everyone
    page.click('li.pill[data-state-count="expired"]')
    assert browser.visible_names() == ["old-city-tour"]
    page.reload(wait_until="load")  # the choice lives in the address
    assert browser.visible_names() == ["old-city-tour"]
    bad = JOBS[6].job_id
    page.click(f'#failures a[href="#job-{bad}"]')  # a failure's link finds its card although the filter hid it
    wait_true(page, f"!document.getElementById('job-{bad}').hidden")
    assert browser.visible_names() == everyone


def test_sort_by_name_cost_and_time(browser: Browser, page_url: str, pristine_run: Path) -> None:
    page = browser.open(page_url)
    cards = build_gallery(pristine_run, posters=False).cards
    page.select_option("#f-sort", "name")
    assert browser.visible_names() == sorted(j.name for j in JOBS)
    page.select_option("#f-sort", "cost-desc")
    by_cost = [c.name for c in sorted(cards, key=lambda c: (-c.cost, c.order))]
    assert browser.visible_names() == by_cost
    assert by_cost[0] == "detective-shanghai"
    page.select_option("#f-sort", "time-desc")
    timed = sorted((c for c in cards if c.generation_s is not None), key=lambda c: -(c.generation_s or 0))
    assert browser.visible_names()[: len(timed)] == [c.name for c in timed]
    page.select_option("#f-sort", "order")
    assert browser.visible_names() == [j.name for j in JOBS]


def test_a_click_plays_the_video(browser: Browser, page_url: str) -> None:
    page = browser.open(page_url)
    page.click(f"#job-{JOBS[0].job_id} a.play")
    assert page.locator("#player").is_visible()
    assert page.locator("#player-title").inner_text() == JOBS[0].name
    wait_true(page, "document.getElementById('player-video').readyState >= 1")
    assert page.evaluate("document.getElementById('player-video').duration") == pytest.approx(2.0, abs=0.2)
    page.click("#player-close")
    assert not page.locator("#player").is_visible()


def test_without_javascript_every_card_is_readable(
    playwright: Any, chromium: Path, tmp_path: Path, page_url: str
) -> None:
    b = Browser(playwright, chromium, tmp_path / "profile", js=False)
    try:
        page = b.open(page_url)
        assert b.visible_names() == [j.name for j in JOBS]
        assert not page.locator("#controls").is_visible()
        assert page.locator(f"#job-{JOBS[4].job_id} p.prompt").inner_text() == XSS_PROMPT
        href = page.get_attribute(f"#job-{JOBS[0].job_id} a.play", "href")
        assert href is not None and href.startswith("videos/") and href.endswith(".mp4")
    finally:
        b.close()


def test_screenshot_for_the_docs(browser: Browser, page_url: str) -> None:
    """Saves docs/screenshots/gallery.png (rewritten only when the pixels' encoding changed)."""
    page = browser.open(page_url)
    wait_true(
        page,
        "Array.from(document.images).filter(i => i.getBoundingClientRect().top < 1300)"
        ".every(i => i.complete && i.naturalWidth > 0)",
    )
    png: bytes = page.screenshot(full_page=False)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    if not SCREENSHOT.exists() or SCREENSHOT.read_bytes() != png:
        SCREENSHOT.write_bytes(png)
    assert SCREENSHOT.read_bytes() == png
