"""The download stage: fetch each succeeded job's video, soonest-expiring URL first, and record it.

A few workers share one credential-free ``aiohttp`` session (object storage never gets the API key,
API.md decision 11). ``runner.store.download`` streams, hashes and verifies; this stage decides what to do
when that fails: an expired URL is refreshed by querying the task again (never by generating again); a
broken transfer or a video that fails verification is tried again a few times, then the job is
``failed`` at the download stage — it stays billed and its task id stays in the ledger.

Once a video is recorded, its gallery poster is made on the same verify thread (the run mostly waits on its
quota meanwhile), so the gallery at the end of the run only writes HTML. A poster is decoration: when it
cannot be made the run logs ``poster.failed`` and goes on; ``wanbatch report`` tries again.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp

from runner.engine.context import RunContext
from runner.engine.hooks import PosterMaker
from runner.engine.job import Job
from runner.engine.submitter import fail
from runner.engine.tracker import on_unknown
from runner.engine.waiting import Stopped
from runner.errors import ApiError, DownloadError, DownloadRefused, UrlExpired
from runner.models import parse_size
from runner.store.download import Retry, download
from runner.store.events import DOWNLOADED, NOT_SAVED, SUCCEEDED
from runner.store.files import video_filename, write_sidecar
from runner.store.mp4 import Expect, release_heap

VIDEOS = "videos"
#: A URL this close to its expiry is refreshed before the download starts.
_EXPIRY_MARGIN = 5.0
#: Queries that may answer an already-expired URL (clock skew, a lagging store) before the job is failed;
#: more would loop forever on a task whose video is gone.
_STALE_REFRESHES = 1


def _expired(ctx: RunContext, job: Job) -> bool:
    """The URL's ``Expires`` (the server's clock) has passed, by the server's clock as measured here."""
    expires = job.state.url_expires
    return expires is not None and expires <= ctx.account_of(job).server_clock.now() + _EXPIRY_MARGIN


def video_path(job: Job) -> Path:
    """The job's video, relative to the output folder (DESIGN.md "Output folder")."""
    s = job.spec
    return Path(VIDEOS) / video_filename(s.name, s.size, s.duration, s.seed, s.job_id)


async def fetcher(ctx: RunContext) -> None:
    """Run the download workers until the run stops or every job is settled. Every MP4 check of the run
    runs on one thread of its own (see ``runner.store.download.download``: RSS stays flat over 10,000 videos), and
    so does every poster. Work still queued there when the run stops is dropped (an interrupt waits for the
    one in progress only); a finished run has none, every job awaits its own."""
    verifier = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wanbatch-verify")
    try:
        async with aiohttp.ClientSession() as session, asyncio.TaskGroup() as tg:
            for n in range(max(1, ctx.cfg.download_workers)):
                tg.create_task(_worker(ctx, session, verifier), name=f"download-{n}")
    finally:
        verifier.shutdown(wait=True, cancel_futures=True)


async def _worker(ctx: RunContext, session: aiohttp.ClientSession, verifier: Executor | None) -> None:
    while not ctx.stopping:
        ok, item = await ctx.until_stop(ctx.fetch_inbox.get())
        if not ok:
            return
        job = ctx.jobs[item[2]]
        try:
            await fetch_one(ctx, session, job, verifier, ctx.poster)
        except Stopped:
            return


async def fetch_one(
    ctx: RunContext,
    session: aiohttp.ClientSession,
    job: Job,
    verifier: Executor | None = None,
    poster: PosterMaker | None = None,
) -> None:
    """Download, verify and record one job's video, then make its poster with ``poster`` (see the module
    docstring); None makes none."""
    rel = video_path(job)
    dest = ctx.cfg.out_dir / rel
    width, height = parse_size(job.spec.size)
    expect = Expect(width, height, float(job.spec.duration))
    retry = Retry(attempts=3, base=0.5, cap=10.0)
    failures = 0
    stale = 0  # refreshes in a row that answered an already-expired URL
    while True:
        url = job.state.video_url
        if not url or _expired(ctx, job):
            if stale > _STALE_REFRESHES:
                expires = job.state.url_expires
                when = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(expires)) if expires else "?"
                message = f"the task keeps answering a video URL that expired at {when}"
                await fail(ctx, job, "download", "UrlExpired", message, task_id=job.state.task_id, kind=NOT_SAVED)
                return
            if stale and not await ctx.sleep(min(10.0, 0.5 * 2**stale)):
                raise Stopped
            stale += 1
            if not await refresh(ctx, job):
                return
            continue
        try:
            fetch = download(
                session, url, dest, expect=expect, retry=retry, max_bytes=ctx.cfg.max_video_bytes, verifier=verifier,
                now=ctx.account_of(job).server_clock.now,  # a URL's Expires is the server's time (its account's)
            )  # fmt: skip
            ok, result = await ctx.until_stop(fetch)
        except UrlExpired:
            job.log.info("download.url_expired")
            failures += 1
            if failures > ctx.cfg.download_retries:
                await fail(
                    ctx, job, "download", "UrlExpired", "the video URL kept expiring", task_id=job.state.task_id,
                    kind=NOT_SAVED,
                )  # fmt: skip
                return
            if not await refresh(ctx, job):
                return
            stale = 0
            continue
        except DownloadError as exc:
            failures += 1
            final = isinstance(exc, DownloadRefused) or failures > ctx.cfg.download_retries
            job.log.warning("download.error", error=str(exc), final=final)
            if final:
                await fail(
                    ctx, job, "download", type(exc).__name__, str(exc), task_id=job.state.task_id, kind=NOT_SAVED
                )
                return
            if not await ctx.sleep(min(30.0, 0.5 * 2**failures)):
                raise Stopped from None
            continue
        if not ok:
            raise Stopped
        break
    audio = ctx.uploads.describe(job) if ctx.uploads is not None else None  # issue 19: the local file it was sent
    await asyncio.to_thread(write_sidecar, dest, sidecar(job, result.sha256, result.bytes, audio))
    await ctx.record(job, DOWNLOADED, path=rel.as_posix(), bytes=result.bytes, sha256=result.sha256)
    job.log.info("job.downloaded", path=rel.as_posix(), bytes=result.bytes)
    if poster is not None:
        # before settle: the last job's settle ends the run, and the gallery must find this poster made
        await make_poster(job, dest, poster, verifier)
    ctx.settle(job)


async def make_poster(job: Job, video: Path, poster: PosterMaker, verifier: Executor | None) -> None:
    """Make ``video``'s poster on the verify thread (``None``: the loop's default executor). Never raises
    but for cancellation: the job is already recorded as downloaded, and a poster failure is only logged."""
    try:
        why = await asyncio.get_running_loop().run_in_executor(verifier, poster_then_trim, poster, video)
    except Exception as e:  # the executor itself refused (shut down): still only a poster
        why = f"{type(e).__name__}: {e}"
    if why is not None:
        job.log.info("poster.failed", path=video.name, error=why)


def poster_then_trim(poster: PosterMaker, video: Path) -> str | None:
    """Run ``poster`` on ``video``, then hand FFmpeg's freed buffers back (as after each MP4 check); what
    went wrong, or None. Runs in the verify thread: it logs nothing, the event loop does."""
    try:
        made = poster(video)
    except Exception as e:  # decoration: no failure of it may reach the download
        return f"{type(e).__name__}: {e}"
    finally:
        release_heap()
    return None if made is not None else "the video does not decode for a poster"


async def refresh(ctx: RunContext, job: Job) -> bool:
    """Ask the task for a fresh video URL; False when the job ended instead (expired or failed). A query that
    fails is asked again with back-off for as long as the run lasts: the video is paid for (issue 14)."""
    task_id = job.state.task_id
    if task_id is None:
        await fail(ctx, job, "download", "NoTask", "no task id to ask for a video URL", kind=NOT_SAVED)
        return False
    errors = 0
    account = ctx.account_of(job)  # the task's own account: another's key sees nothing of it (issue 18)
    while True:
        try:
            info = await ctx.call("get", partial(account.client.get, task_id), account=account)
            break
        except ApiError as exc:
            errors += 1
            job.log.warning("download.refresh_error", errors=errors, error=str(exc))
            if not await ctx.sleep(min(60.0, 2.0**errors)):
                raise Stopped from None
    if info.status == "SUCCEEDED" and info.video_url:
        if info.video_url == job.state.video_url and info.url_expires == job.state.url_expires:
            return True  # nothing new to record
        await ctx.record(
            job,
            SUCCEEDED,
            task_id=task_id,
            video_url=info.video_url,
            url_expires=info.url_expires,
            usage=info.usage,
            orig_prompt=info.orig_prompt,
            actual_prompt=info.actual_prompt,
            submit_time=info.submit_time,
            scheduled_time=info.scheduled_time,
            end_time=info.end_time,
        )
        return True
    if info.status == "UNKNOWN":
        await on_unknown(ctx, job, task_id)
        return False
    await fail(
        ctx, job, "download", info.code or "NoVideo", f"task is {info.status} with no video URL", task_id=task_id,
        kind=NOT_SAVED,
    )  # fmt: skip
    return False


def sidecar(job: Job, sha256: str, size: int, audio: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON written next to a video: what was asked, what the API answered, and the file's hash; with a local
    audio file, that file, its sha256 and the oss:// URL it was sent as (``audio``)."""
    st = job.state
    out = {
        "job_id": job.id,
        "name": job.spec.name,
        "model": job.spec.model,
        "request": job.spec.request,
        "task_id": st.task_id,
        "account": st.account or "default",  # the account that made the task (a lost ledger's resume asks it)
        "orig_prompt": st.orig_prompt,
        "actual_prompt": st.actual_prompt,
        "usage": st.usage,
        "timings": dict(st.times),
        "sha256": sha256,
        "bytes": size,
    }
    if audio is not None:
        out["audio"] = audio
    return out
