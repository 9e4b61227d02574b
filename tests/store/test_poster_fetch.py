"""The run makes each video's poster as the video lands, on the verify thread, after the download is
recorded; a poster that cannot be made is logged and never fails (or holds up) the download."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import structlog

from runner.engine.api import ApiConfig, DashScopeClient
from runner.engine.context import RunContext
from runner.engine.fetcher import fetch_one, poster_then_trim, video_path
from runner.engine.job import Job
from runner.engine.limits import Limits
from runner.engine.settings import PipelineConfig
from runner.report.poster import ensure_poster, poster_path
from runner.store.events import DOWNLOADED, PLANNED, SUBMITTED, SUBMITTING, SUCCEEDED
from runner.store.ledger import LedgerWriter
from runner.store.state import RunState


@dataclass(frozen=True)
class Spec:
    job_id: str = "0123abcd-job"
    name: str = "clip"
    model: str = "wan2.6-t2v"
    request: dict[str, Any] = field(default_factory=dict)
    size: str = "320*180"  # the storage fixture's MP4
    duration: int = 2
    seed: int | None = 7


async def _fetch(tmp_path: Path, ledger: LedgerWriter, url: str, **kw: Any) -> tuple[RunContext, Job]:
    """One succeeded job fetched through ``fetch_one`` with a verify thread like the run's."""
    ctx = RunContext(
        cfg=PipelineConfig(out_dir=tmp_path, region="cn-beijing"),
        client=DashScopeClient(ApiConfig("http://127.0.0.1:9/api/v1", "sk-test")),  # never asked: the URL is fresh
        ledger=ledger,
        state=RunState(),
        limits=Limits(),
    )
    spec = Spec()
    await ctx.record(spec.job_id, PLANNED, name=spec.name, model=spec.model)
    job = Job(spec, ctx.state.jobs[spec.job_id])
    ctx.jobs[job.id] = job
    ctx.open_jobs.add(job.id)
    await ctx.record(job, SUBMITTING, attempt=1, model=spec.model)
    await ctx.record(job, SUBMITTED, task_id="t-1")
    await ctx.record(job, SUCCEEDED, task_id="t-1", video_url=url)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="wanbatch-verify") as verifier:
        async with aiohttp.ClientSession() as session:
            await fetch_one(ctx, session, job, verifier, **kw)
    return ctx, job


async def test_the_poster_is_made_on_the_verify_thread_and_the_gallery_keeps_it(
    storage: Any, mp4: bytes, tmp_path: Path
) -> None:
    st, server = storage
    st.bodies["/v.mp4"] = mp4
    seen: list[str] = []

    def maker(video: Path) -> Path | None:
        seen.append(threading.current_thread().name)
        return ensure_poster(video, codec_threads=False)

    async with LedgerWriter(tmp_path / "ledger.jsonl") as ledger:
        ctx, job = await _fetch(tmp_path, ledger, st.url(server, "/v.mp4"), poster=maker)
    video = tmp_path / video_path(job)
    poster = poster_path(video)
    assert job.state.state == DOWNLOADED and ctx.done.is_set()
    assert seen and seen[0].startswith("wanbatch-verify")
    assert poster.read_bytes()[:2] == b"\xff\xd8"
    made = poster.stat().st_mtime_ns
    assert made >= video.stat().st_mtime_ns, "the gallery would make it again"
    assert ensure_poster(video) == poster and poster.stat().st_mtime_ns == made  # kept, not made again


async def test_a_poster_that_fails_never_fails_the_download(storage: Any, mp4: bytes, tmp_path: Path) -> None:
    st, server = storage
    st.bodies["/v.mp4"] = mp4

    def broken(video: Path) -> Path | None:
        raise RuntimeError("no poster today")

    async with LedgerWriter(tmp_path / "ledger.jsonl") as ledger:
        with structlog.testing.capture_logs() as logs:
            ctx, job = await _fetch(tmp_path, ledger, st.url(server, "/v.mp4"), poster=broken)
    video = tmp_path / video_path(job)
    assert job.state.state == DOWNLOADED and job.state.sha256 and ctx.done.is_set()
    assert video.read_bytes() == mp4 and video.with_suffix(".json").is_file()
    assert not poster_path(video).exists()
    failed = [e for e in logs if e["event"] == "poster.failed"]
    assert len(failed) == 1 and "no poster today" in failed[0]["error"], logs
    assert failed[0]["log_level"] in ("debug", "info")


def test_an_undecodable_video_is_reported_not_raised(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x00\x00\x18ftypmp42 and nothing else")
    assert poster_then_trim(ensure_poster, junk) == "the video does not decode for a poster"
    assert poster_then_trim(lambda v: poster_path(v), junk) is None
