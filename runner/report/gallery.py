"""The gallery of a run: ``DIR/index.html``, built from the ledger (the one record of what happened), the
sidecars (timings the ledger does not hold) and the downloaded videos (poster frames).

The page is self-contained and safe to open from disk: inline CSS and JS only (allowed by hash in a
Content-Security-Policy that forbids every network fetch), every text escaped by Jinja2's autoescape,
links relative to the folder. Without JavaScript every card is visible and readable; the script adds the
filter, the sort and the in-page player.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import jinja2
from markupsafe import Markup

from runner.errors import LedgerError
from runner.report.formats import fmt_bytes, fmt_duration, fmt_money, number, span, text, when, whole
from runner.report.poster import ensure_poster
from runner.store.events import STATES
from runner.store.job import Failure, JobState
from runner.store.ledger import LEDGER_NAME
from runner.store.replay import replay

INDEX_NAME = "index.html"
#: States in which the job has not ended: its cost is still an estimate.
OPEN_STATES = frozenset({"planned", "submitting", "pending", "running"})

#: The API's task timestamps are ``YYYY-MM-DD HH:mm:ss.SSS`` in UTC+8 (API.md decision 6).


@dataclass(frozen=True)
class RunInfo:
    """The run as a whole: facts of its ``run.started`` lines."""

    title: str
    run_id: str | None = None
    manifest: str | None = None
    region: str | None = None
    attempts: int = 0
    currency: str = "CNY"


@dataclass(frozen=True)
class Card:
    """One job as the page shows it; plain data, escaped by the template."""

    job_id: str
    order: int
    name: str
    state: str
    model: str
    size: str
    duration: int | None
    seed: int | None
    shot_type: str | None
    prompt: str
    actual_prompt: str | None  # only when the service rewrote the prompt
    cost: float  # billed when the task succeeded, the plan's estimate while open, 0 otherwise
    cost_note: str  # "", "estimate" or "not billed"
    task_id: str | None
    generation_s: float | None  # task submit_time → end_time
    queue_s: float | None  # task submit_time → scheduled_time
    download_s: float | None
    video: str | None  # href relative to the output folder (percent-encoded)
    poster: str | None  # href likewise
    bytes: int | None
    failure: Failure | None
    audio: str | None = None  # the soundtrack the video was made with: a local file's name, or the URL (issue 19)
    account: str | None = None  # the account that made its task, in a run with an accounts file (issue 18)

    @property
    def code(self) -> str:
        return (self.failure.code if self.failure else None) or "(no code)"


@dataclass(frozen=True)
class Totals:
    jobs: int
    states: Mapping[str, int]
    seconds: float  # planned, every job
    cost: float
    billed_seconds: float  # what the API billed (as ``status`` counts it)
    billed_cost: float
    bytes: int
    videos: int
    generation_s: float


@dataclass(frozen=True)
class Gallery:
    """Everything the template needs."""

    run: RunInfo
    cards: tuple[Card, ...]
    totals: Totals
    failures: tuple[tuple[str, tuple[Card, ...]], ...]  # by code, most frequent first
    generated: str


# ---------------------------------------------------------------------------------------------------------
# Reading the run


def _sidecar(out_dir: Path, video: Path | None) -> Mapping[str, Any]:
    """The video's ``.json`` sidecar, or {} when absent or unreadable (it only adds detail)."""
    if video is None:
        return {}
    try:
        data = json.loads(video.with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _download_seconds(sidecar: Mapping[str, Any]) -> float | None:
    """Download time from the sidecar's ``timings`` (``download_s``, or started/finished stamps)."""
    timings = sidecar.get("timings")
    if not isinstance(timings, dict):
        return None
    for key in ("download_s", "download_seconds", "download"):
        value = number(timings.get(key))
        if value is not None:
            return value
    for a, b in (("download_started", "download_finished"), ("download_start", "download_end")):
        start, end = when(timings.get(a)), when(timings.get(b))
        if start is not None and end is not None and end >= start:
            return end - start
    return None


def _local_file(out_dir: Path, rel: str | None) -> Path | None:
    """``rel`` as a file inside ``out_dir``, or None when missing or pointing outside the folder."""
    if not rel or "://" in rel or rel.startswith(("/", "\\")):
        return None
    path = (out_dir / rel).resolve()
    root = out_dir.resolve()
    return path if path.is_relative_to(root) and path.is_file() else None


def _href(out_dir: Path, path: Path) -> str:
    return quote(path.relative_to(out_dir.resolve()).as_posix())


def _card(job: JobState, order: int, out_dir: Path, *, posters: bool) -> Card:
    request = job.request
    inp = request.get("input")
    params = request.get("parameters")
    inp = inp if isinstance(inp, dict) else {}
    params = params if isinstance(params, dict) else {}
    prompt = text(inp.get("prompt")) or job.orig_prompt or ""
    actual = job.actual_prompt if job.actual_prompt and job.actual_prompt.strip() != prompt.strip() else None
    video = _local_file(out_dir, job.path)
    poster: str | None = None
    if video is not None and posters:
        made = ensure_poster(video)
        poster = _href(out_dir, made) if made else None
    if job.billed:
        cost, note = job.billed_cost, ""
    elif job.state in OPEN_STATES:
        cost, note = job.cost, "estimate"
    else:
        cost, note = 0.0, "not billed"
    submit = when(job.times.get("submit_time"))
    return Card(
        job_id=job.job_id,
        order=order,
        name=job.name or job.job_id[:8],
        state=job.state,
        model=job.model or text(request.get("model")) or "",
        size=(job.size or text(params.get("size")) or "").replace("*", "×"),
        duration=job.duration if job.duration is not None else whole(params.get("duration")),
        seed=job.seed if job.seed is not None else whole(params.get("seed")),
        shot_type=text(params.get("shot_type")),
        prompt=prompt,
        actual_prompt=actual,
        cost=cost,
        cost_note=note,
        task_id=job.task_id,
        account=job.account if job.account not in (None, "default") else None,
        generation_s=span(submit, when(job.times.get("end_time"))),
        queue_s=span(submit, when(job.times.get("scheduled_time"))),
        download_s=_download_seconds(_sidecar(out_dir, video)),
        video=_href(out_dir, video) if video is not None else None,
        poster=poster,
        bytes=job.bytes,
        failure=job.failure,
        audio=_audio_name(inp.get("audio_url")),
    )


def _audio_name(url: Any) -> str | None:
    """A soundtrack as the card names it: a local file (``file://``) by its name, a URL as it is."""
    if not isinstance(url, str) or not url:
        return None
    if url.startswith("file://"):
        return unquote(url.rstrip("/").rsplit("/", 1)[-1])
    return url


def build_gallery(out_dir: Path, *, posters: bool = True, now: datetime | None = None) -> Gallery:
    """Read the run in ``out_dir`` (ledger via ``replay``, sidecars, videos) into the page's data.

    Makes missing poster frames unless ``posters`` is False. ``LedgerError`` when there is no ledger.
    """
    out_dir = Path(out_dir)
    ledger = out_dir / LEDGER_NAME
    if not ledger.is_file():
        raise LedgerError(f"{ledger}: no ledger here (is this a run's output folder?)")
    state = replay(ledger)
    run = RunInfo(
        title=state.name or out_dir.resolve().name,
        run_id=state.run_ids[-1] if state.run_ids else None,
        manifest=state.manifest,
        region=state.region,
        attempts=len(state.run_ids),
        currency=state.currency,
    )
    cards = tuple(_card(j, i, out_dir, posters=posters) for i, j in enumerate(state.jobs.values()))
    summary = state.summary()
    videos = [c for c in cards if c.video]
    totals = Totals(
        jobs=len(cards),
        states=state.counts(),
        seconds=sum(j.seconds for j in state.jobs.values()),
        cost=sum(j.cost for j in state.jobs.values()),
        billed_seconds=float(summary["seconds"]),
        billed_cost=float(summary["cost"]),
        bytes=sum(c.bytes or 0 for c in videos),
        videos=len(videos),
        generation_s=sum(c.generation_s or 0.0 for c in cards),
    )
    by_code: dict[str, list[Card]] = {}
    for c in cards:
        if c.state == "failed":
            by_code.setdefault(c.code, []).append(c)
    failures = tuple((code, tuple(cs)) for code, cs in sorted(by_code.items(), key=lambda kv: (-len(kv[1]), kv[0])))
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return Gallery(run=run, cards=cards, totals=totals, failures=failures, generated=stamp)


# ---------------------------------------------------------------------------------------------------------
# Rendering


def _asset(name: str) -> str:
    return resources.files("runner.report").joinpath("templates", name).read_text(encoding="utf-8")


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("runner.report", "templates"),
        autoescape=True,  # every {{ }} is escaped whatever the file's extension
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["dur"] = fmt_duration
    env.filters["money"] = fmt_money
    env.filters["size_b"] = fmt_bytes
    return env


def render(gallery: Gallery) -> str:
    """The page as a string. CSS and JS are inlined and allowed by their hashes in the page's CSP."""
    css, js = _asset("gallery.css"), _asset("gallery.js")
    csp = "; ".join(
        (
            "default-src 'none'",
            "img-src 'self' file: data:",
            "media-src 'self' file:",
            f"style-src {_csp_hash(css)}",
            f"script-src {_csp_hash(js)}",
            "base-uri 'none'",
            "form-action 'none'",
        )
    )
    template = _environment().get_template("gallery.html.j2")
    return template.render(
        g=gallery,
        css=Markup(css),
        js=Markup(js),
        csp=csp,
        states=STATES,
        present_states=iter_states(gallery.cards),
    )


def write_report(out_dir: Path, *, now: datetime | None = None) -> Path:
    """(Re)build ``out_dir/index.html`` from the run's ledger and files; returns its path.

    Written to a temporary file and renamed, so a browser never sees half a page. Raises ``LedgerError``
    when the folder has no readable ledger.
    """
    out_dir = Path(out_dir)
    html = render(build_gallery(out_dir, now=now))
    index = out_dir / INDEX_NAME
    tmp = index.with_name(index.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, index)
    return index


def iter_states(cards: Iterable[Card]) -> list[str]:
    """The states present among ``cards``, in lifecycle order (the filter's choices)."""
    present = {c.state for c in cards}
    return [s for s in STATES if s in present]
