"""Downloading a finished video: stream to ``<final>.part``, verify, fsync, rename.

* The URL points at object storage, not DashScope (API.md decision 11): the request carries no
  credential, and a session that would add one is refused.
* Only ``https`` URLs are fetched, except to loopback hosts (the emulator, tests).
* The body is hashed (sha256) while it streams and written with aiofiles; ``Content-Length`` (or the
  total of ``Content-Range``) must match; a size cap stops a runaway body.
* A transfer that breaks is retried with exponential backoff; when the server answers a
  ``Range: bytes=N-`` request with 206 the download continues from byte N, otherwise it restarts.
* A signed URL that expired (403 from storage, or ``Expires=`` already past) raises ``UrlExpired``: the
  pipeline asks the task for a fresh URL. A failed download never causes a new generation.
* The finished file must decode as MP4 with the requested width, height and duration (PyAV, in a thread)
  before it is renamed into place, so a file at its final name is always a verified video.

Deciding WHETHER to download again (resume rules) is the pipeline's job, not this module's.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import hashlib
import ipaddress
import json
import os
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

import aiofiles
import aiohttp
from yarl import URL

from runner.errors import DiskError, DownloadError, DownloadRefused, UrlExpired, VerifyError

DEFAULT_MAX_BYTES = 2 * 1024**3
CHUNK = 256 * 1024
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_NAME_UNSAFE = re.compile(r"[^\w.-]+")  # letters of any script stay (issue 17)


@dataclass(frozen=True)
class Expect:
    """What the video must be: the requested size and duration (seconds), within ``tolerance`` seconds."""

    width: int
    height: int
    duration: float
    tolerance: float = 0.5


@dataclass(frozen=True)
class DownloadResult:
    """A verified video at ``path``."""

    path: Path
    bytes: int
    sha256: str
    seconds: float  # wall time of the whole download, retries included
    attempts: int
    resumed: bool  # some bytes came from a Range request


@dataclass(frozen=True)
class Retry:
    """How often and how patiently to retry a broken transfer: ``attempts`` in all, delays doubling from
    ``base`` up to ``cap`` seconds, each scaled by a jitter factor in [0.5, 1)."""

    attempts: int = 5
    base: float = 0.5
    cap: float = 30.0

    def delay(self, failures: int, jitter: float) -> float:
        return float(min(self.cap, self.base * 2.0 ** (failures - 1)) * (0.5 + jitter / 2))


class _Broken(Exception):
    """A transfer that may succeed when tried again (5xx, short body, dropped connection)."""


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_url(url: str) -> None:
    """Raise ``DownloadRefused`` unless ``url`` is https, or http(s) to a loopback host."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError as e:
        raise DownloadRefused(f"not a usable URL: {e}") from None
    if parts.scheme == "https" and host:
        return
    if parts.scheme == "http" and host and _is_loopback(host):
        return
    raise DownloadRefused(f"refusing to download from {parts.scheme}://{host or '?'}: only https (or loopback)")


def url_expiry(url: str) -> float | None:
    """The epoch second in a signed URL's ``Expires=`` parameter (OSS style), or None."""
    try:
        query = urlsplit(url).query
    except ValueError:
        return None
    for key, value in parse_qsl(query):
        if key.lower() == "expires":
            try:
                return float(value)
            except ValueError:
                return None
    return None


def expiry_order(items: list[tuple[float | None, Any]]) -> list[Any]:
    """Payloads ordered by URL expiry, soonest first; unknown expiry last (the downloader's queue order)."""
    return [item for _, item in sorted(items, key=lambda p: (p[0] is None, p[0] or 0.0))]


def video_filename(name: str, size: str, duration: int | float, seed: int | None, job_id: str) -> str:
    """``<name>__<W>x<H>__<dur>s__<seed|rnd>__<id8>.mp4`` (DESIGN.md "Output folder"), safe as a file name."""
    safe = _NAME_UNSAFE.sub("-", name).strip(".-") or "job"
    dur = int(duration) if float(duration).is_integer() else duration
    return f"{safe[:100]}__{size.replace('*', 'x')}__{dur}s__{'rnd' if seed is None else seed}__{job_id[:8]}.mp4"


def sidecar_path(video: str | os.PathLike[str]) -> Path:
    """``videos/x.mp4`` → ``videos/x.json``."""
    return Path(video).with_suffix(".json")


def write_sidecar(video: str | os.PathLike[str], data: Mapping[str, Any]) -> Path:
    """Write the JSON sidecar next to a video atomically (temp file, fsync, rename). Blocking: call it
    through ``asyncio.to_thread`` from the event loop."""
    path = sidecar_path(video)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    text = json.dumps(dict(data), ensure_ascii=False, indent=2, sort_keys=True, default=str) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise DiskError(str(path), e) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    _fsync_dir(path.parent)
    return path


def sha256_file(path: str | os.PathLike[str]) -> str:
    """sha256 of a file on disk (resume checks a downloaded video against the ledger). Blocking."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_mp4(path: str | os.PathLike[str], expect: Expect) -> None:
    """Raise ``VerifyError`` unless ``path`` decodes as an MP4 of the expected width, height and duration.

    Opens the container, decodes the first video frame and demuxes every packet (which catches a
    truncated file) without decoding them all. Blocking: run it in a thread.
    """
    import av  # imported here: PyAV is heavy and only the downloader needs it

    name = Path(path).name
    try:
        with av.open(str(path), mode="r") as container:
            fmt = container.format.name or ""
            if "mp4" not in fmt.split(","):
                raise VerifyError(f"{name}: not an MP4 (container {fmt!r})")
            if not container.streams.video:
                raise VerifyError(f"{name}: no video stream")
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            if container.duration:
                duration = container.duration / 1_000_000
            elif stream.duration and stream.time_base:
                duration = float(stream.duration * stream.time_base)
            else:
                duration = 0.0
            frame = next(iter(container.decode(stream)), None)
            if frame is None:
                raise VerifyError(f"{name}: the video stream has no decodable frame")
            for _ in container.demux(stream):
                pass
    except VerifyError:
        raise
    except (av.FFmpegError, OSError, ValueError, EOFError) as e:
        raise VerifyError(f"{name}: does not decode as MP4: {e}") from None
    if (width, height) != (expect.width, expect.height):
        raise VerifyError(f"{name}: video is {width}x{height}, expected {expect.width}x{expect.height}")
    if abs(duration - expect.duration) > expect.tolerance:
        raise VerifyError(f"{name}: video lasts {duration:.2f} s, expected {expect.duration:g} s")


def _verify_and_trim(path: Path, expect: Expect) -> None:
    """``verify_mp4``, then hand the freed heap back to the OS: FFmpeg frees its frame and codec buffers
    (MBs per video) into malloc's free lists, which glibc does not return by itself; over 10,000 videos
    that was most of a run's RSS growth (2,000 checks on one thread: 60 -> 73 MB without, flat at 62 MB
    with; ``malloc_trim`` runs in this worker thread, without the GIL)."""
    try:
        verify_mp4(path, expect)
    finally:
        release_heap()


def release_heap() -> None:
    """Give the heap's free pages back to the OS (glibc ``malloc_trim``; nothing where there is none).
    Called after each FFmpeg job of the verify thread and after the end-of-run gallery (~1.5 ms)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where there is none (macOS, musl)."""
    try:
        return cast(Callable[[int], int], ctypes.CDLL(None).malloc_trim)
    except (OSError, AttributeError):
        return None


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _total_from(resp: aiohttp.ClientResponse, offset: int) -> int | None:
    """The whole object's size per the answer's headers, or None when the server did not say."""
    if resp.status == 206:
        m = _CONTENT_RANGE.fullmatch(resp.headers.get("Content-Range", "").strip())
        if m and m.group(3) != "*":
            return int(m.group(3))
    if resp.content_length is not None:
        return offset + resp.content_length
    return None


async def download(
    session: aiohttp.ClientSession,
    url: str,
    dest: str | os.PathLike[str],
    *,
    expect: Expect | None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    retry: Retry = Retry(),
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
    now: Callable[[], float] = time.time,
    jitter: Callable[[], float] = random.random,
    read_timeout: float = 60.0,
    chunk_size: int = CHUNK,
    verifier: Executor | None = None,
) -> DownloadResult:
    """Fetch ``url`` to ``dest`` (via ``dest + '.part'``), verified; see the module docstring.

    ``verifier``: the executor the MP4 check runs in (default: the loop's default executor). A run passes ONE
    thread for all its checks: FFmpeg's frame buffers allocated by whichever pool thread was free spread
    over glibc's per-thread arenas and fragmented them (measured: 2,000 checks on 4 workers, RSS 64 ->
    107 MB and still growing; on one thread it stays flat).

    Raises ``UrlExpired`` (ask the task again), ``DownloadRefused`` (URL or size not allowed),
    ``VerifyError`` (wrong bytes), ``DownloadError`` (gave up after ``retry.attempts``) or ``DiskError`` (the
    file cannot be written: no space, read-only; the run must stop, not fail the job).
    ``expect=None`` skips the MP4 check (only for callers that check otherwise).
    """
    check_url(url)
    if "Authorization" in session.headers or session.auth is not None:
        raise DownloadRefused("the download session carries credentials; object storage must not get them")
    expires = url_expiry(url)
    if expires is not None and expires <= now():
        raise UrlExpired(f"the video URL expired at {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(expires))}Z")

    final = Path(dest)
    part = final.with_name(final.name + ".part")
    try:
        return await _download(session, url, final, part, expect, max_bytes, retry, sleep, clock, jitter,
                               read_timeout, chunk_size, verifier)  # fmt: skip
    except OSError as e:
        if isinstance(e, aiohttp.ClientError | TimeoutError):  # the network's, not the disk's
            raise
        raise DiskError(str(part), e) from None


async def _download(
    session: aiohttp.ClientSession,
    url: str,
    final: Path,
    part: Path,
    expect: Expect | None,
    max_bytes: int,
    retry: Retry,
    sleep: Callable[[float], Awaitable[None]],
    clock: Callable[[], float],
    jitter: Callable[[], float],
    read_timeout: float,
    chunk_size: int,
    verifier: Executor | None,
) -> DownloadResult:
    """``download`` past its checks; a local ``OSError`` (disk full, read-only) escapes as it is."""
    final.parent.mkdir(parents=True, exist_ok=True)
    started = clock()
    hasher = hashlib.sha256()
    received = 0
    resumed = False
    attempts = 0
    failures = 0
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=read_timeout)
    done = False
    try:
        async with aiofiles.open(part, "wb") as f:
            while True:
                attempts += 1
                try:
                    # identity: the bytes hashed and counted are the bytes of the object, never a gzip of them
                    headers = {"Accept-Encoding": "identity"}
                    if received:
                        headers["Range"] = f"bytes={received}-"
                    async with _get(session, url, headers, timeout) as resp:
                        if resp.status in (403, 410):
                            raise UrlExpired(f"object storage answered {resp.status}: the video URL is no longer valid")
                        if resp.status == 416 or (received and resp.status == 200):
                            # the server will not resume: start again from the first byte
                            await f.seek(0)
                            await f.truncate()
                            hasher, received = hashlib.sha256(), 0
                            if resp.status == 416:
                                raise _Broken("416 Range Not Satisfiable")
                        elif resp.status == 206:
                            m = _CONTENT_RANGE.fullmatch(resp.headers.get("Content-Range", "").strip())
                            if not m or int(m.group(1)) != received:
                                raise _Broken(f"206 for the wrong range ({resp.headers.get('Content-Range')!r})")
                            resumed = resumed or received > 0
                        elif resp.status == 429 or resp.status >= 500:
                            raise _Broken(f"object storage answered {resp.status}")
                        elif resp.status != 200:
                            raise DownloadError(f"object storage answered {resp.status} {resp.reason or ''}".strip())
                        total = _total_from(resp, received)
                        if total is not None and total > max_bytes:
                            raise DownloadRefused(f"the video is {total} bytes, over the cap of {max_bytes}")
                        async for chunk in resp.content.iter_chunked(chunk_size):
                            if received + len(chunk) > max_bytes:
                                raise DownloadRefused(f"the video passed the size cap of {max_bytes} bytes")
                            await f.write(chunk)
                            hasher.update(chunk)
                            received += len(chunk)
                        if total is not None and received != total:
                            if received > total:
                                await f.seek(0)
                                await f.truncate()
                                hasher, received = hashlib.sha256(), 0
                            raise _Broken(f"body ended at byte {received} of {total}")
                    break
                except (TimeoutError, _Broken, aiohttp.ClientError) as e:
                    failures += 1
                    if failures >= retry.attempts:
                        raise DownloadError(f"download failed after {attempts} attempts: {_describe(e)}") from None
                    await sleep(retry.delay(failures, jitter()))
            await f.flush()
        await asyncio.to_thread(_fsync_path, part)
        if expect is not None:
            await asyncio.get_running_loop().run_in_executor(verifier, _verify_and_trim, part, expect)
        await asyncio.to_thread(_rename, part, final)
        done = True
    finally:
        if not done:
            with contextlib.suppress(OSError):
                part.unlink()  # noqa: ASYNC240 - a finally that may run under cancellation must not await
    return DownloadResult(final, received, hasher.hexdigest(), clock() - started, attempts, resumed)


_REDIRECTS = frozenset({301, 302, 303, 307, 308})


@contextlib.asynccontextmanager
async def _get(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], limits: aiohttp.ClientTimeout
) -> AsyncIterator[aiohttp.ClientResponse]:
    """GET following redirects by hand, so every hop passes ``check_url`` BEFORE it is requested (aiohttp
    would follow an https → http downgrade on its own)."""
    for _ in range(6):
        resp = await session.get(url, headers=headers, timeout=limits, allow_redirects=False, auto_decompress=False)
        location = resp.headers.get("Location")
        if resp.status in _REDIRECTS and location:
            resp.release()
            url = str(resp.url.join(URL(location)))
            check_url(url)
            continue
        try:
            yield resp
        finally:
            resp.release()
        return
    raise DownloadRefused("too many redirects")


def _rename(part: Path, final: Path) -> None:
    os.replace(part, final)
    _fsync_dir(final.parent)


def _describe(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    # aiohttp messages may quote the URL; a signed URL's query is a bearer credential for the object
    return re.sub(r"(https?://[^\s?'\"]+)\?[^\s'\"]*", r"\1?…", text)
