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
import hashlib
import ipaddress
import os
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import aiofiles
import aiohttp
from yarl import URL

from runner.errors import DiskError, DownloadError, DownloadRefused, UrlExpired
from runner.store.files import fsync_dir
from runner.store.mp4 import Expect, verify_and_trim

DEFAULT_MAX_BYTES = 2 * 1024**3
CHUNK = 256 * 1024
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


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
    if expires is not None and expires <= now():  # ``now``: the server's clock, as the run measures it
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
            await asyncio.get_running_loop().run_in_executor(verifier, verify_and_trim, part, expect)
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
    fsync_dir(final.parent)


def _describe(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    # aiohttp messages may quote the URL; a signed URL's query is a bearer credential for the object
    return re.sub(r"(https?://[^\s?'\"]+)\?[^\s'\"]*", r"\1?…", text)
