"""Local files a create carries (issue 19): a job whose request names its audio by a ``file://`` URL (the manifest's
local audio, ``runner.manifest.audio``) has the file uploaded to DashScope's temporary storage and sends the
``oss://`` URL instead, with the header ``X-DashScope-OssResourceResolve: enable`` — the official SDK's way.

* **Once per file and model.** The service binds a temporary file to the model it was uploaded for, so an upload
  is keyed by (the file's sha256, the model): the first job that needs it uploads it, every other waits for that
  upload (a lock per key) and reuses it. It happens before the job's create takes its submit-limiter token, so a
  slow upload never bunches creates into one rate window.
* **Kept in the ledger.** Each upload is an ``uploaded`` line (``runner.store.events``): the file, its sha256, the
  model, the ``oss://`` URL and its expiry (48 h after the upload began, on the server's clock), durable before
  any create uses it. A resume reuses an upload while more than ``REUSE_MARGIN`` of it is left; an expired one is
  uploaded again (a new line replaces it). The job id never depends on the URL (the manifest hashes the content).
* **The same discipline as every request.** The policy (``GET /uploads?action=getPolicy``, with the key) goes
  through ``RunContext.call``; the post to the upload host (``runner.engine.oss``, never with the key) is retried
  as ``classify(op="upload")`` says. An upload makes nothing that bills, so it is never ambiguous. A refusal of
  the upload itself fails the job (kind ``refused``: nothing was made); an outage that outlasts the retries, an
  account refusal or a drain leaves the job as it was, for the next run.
* **Lost on the server.** A create refused 400 naming the ``oss://`` URL it carried (``classify.upload_lost``: the
  service no longer has the file) drops that upload: the file is uploaded again and the create sent again, once
  per job.
"""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

from runner.engine.accounts import Account
from runner.engine.classify import Action, classify, upload_lost
from runner.engine.context import RunContext, log
from runner.engine.job import Job
from runner.engine.oss import UploadFile, post_object
from runner.engine.submitter import fail
from runner.engine.waiting import Stopped
from runner.errors import ApiError, PermanentError
from runner.models import UPLOAD_TTL_SECONDS
from runner.store.events import REFUSED, UNSENT, UPLOADED

#: An upload with less than this left (server clock) is not reused: the create, and its task, must still find it.
REUSE_MARGIN = 3600.0
#: The header a create naming an ``oss://`` file carries (API.md §1.2).
RESOLVE = {"X-DashScope-OssResourceResolve": "enable"}

_Key = tuple[str, str, str]  # (sha256, canonical model, account): a file is read only by its account's creates


@dataclass(frozen=True)
class LocalFile:
    path: Path
    sha256: str
    bytes: int


def audio_url(request: dict[str, Any]) -> str | None:
    inp = request.get("input")
    url = inp.get("audio_url") if isinstance(inp, dict) else None
    return url if isinstance(url, str) else None


def local_file(request: dict[str, Any]) -> Path | None:
    """The local file a request's ``input.audio_url`` names by its ``file://`` URL, or None."""
    url = audio_url(request)
    if url is None or not url.startswith("file://"):
        return None
    parts = urlsplit(url)
    return Path(url2pathname(parts.path))


def _hash_file(path: Path) -> LocalFile | str:
    """The file's sha256 and size, or why it cannot be read."""
    try:
        data = path.read_bytes()
    except OSError as e:
        return f"the audio file {path} cannot be read ({e.strerror or e})"
    return LocalFile(path, hashlib.sha256(data).hexdigest(), len(data))


def _read_checked(file: LocalFile) -> bytes | str:
    """The file's bytes when they are still the ones hashed, else why not."""
    try:
        data = file.path.read_bytes()
    except OSError as e:
        return f"the audio file {file.path} cannot be read ({e.strerror or e})"
    if hashlib.sha256(data).hexdigest() != file.sha256:
        return f"the audio file {file.path} changed while the run used it"
    return data


@dataclass(frozen=True)
class _Outcome:
    """How an upload attempt ended: uploaded; failed (the service refused it: the job fails); or left (no fault of
    the job: an outage, the account, a drain)."""

    ok: bool
    code: str | None = None
    message: str = ""
    fail: bool = False


class Uploads:
    """One run's local files (the module docstring): ``ready`` before a create's token, ``create_args`` for its
    body and headers, ``lost`` when the service says the file is gone, ``describe`` for the sidecar."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self._files: dict[Path, LocalFile | str] = {}
        self._locks: dict[_Key, asyncio.Lock] = {}
        self._ended: dict[_Key, _Outcome] = {}  # keys whose upload failed or gave up this run
        self._dropped: set[str] = set()  # URLs the service said it no longer has
        self._sent: dict[str, str] = {}  # job id -> the oss:// URL its last create carried
        self._relost: set[str] = set()  # jobs whose upload was lost once this run (sent again once only)

    async def ready(self, job: Job) -> bool:
        """Make the job's local file available (reuse its upload, or upload it): True when its create may go; False
        when the job was failed or left (its slot and group given back)."""
        path = local_file(job.spec.request)
        if path is None:
            return True
        file = self._files.get(path)
        if file is None:
            file = self._files[path] = await asyncio.to_thread(_hash_file, path)
        if isinstance(file, str):
            return await self._end(job, _Outcome(False, "AudioUnreadable", file, fail=True))
        key = (file.sha256, job.spec.model, self.ctx.account_of(job).name)
        if key in self._ended:
            return await self._end(job, self._ended[key])
        ctx = self.ctx
        lock = self._locks.setdefault(key, asyncio.Lock())
        ok, _ = await ctx.until_stop(lock.acquire(), ctx.draining)
        if not ok:
            return await self._end(job, _Outcome(False, None, "the run stopped before the upload"))
        try:
            if self._usable(key):
                return True
            if key in self._ended:  # the upload this job waited for failed
                return await self._end(job, self._ended[key])
            outcome = await self._upload(job, file, key)
        finally:
            lock.release()
        if outcome.ok:
            return True
        if not ctx.stopping and not ctx.draining.is_set():
            self._ended[key] = outcome
        return await self._end(job, outcome)

    def create_args(self, job: Job) -> tuple[dict[str, Any], dict[str, str] | None]:
        """The body to send (the ``oss://`` URL in place of the ``file://`` one) and the headers to add: the
        resolve header only on a body that names an ``oss://`` file."""
        request = job.spec.request
        path = local_file(request)
        if path is None:
            url = audio_url(request)
            return request, (RESOLVE if url is not None and url.startswith("oss://") else None)
        file = self._files.get(path)
        key = (file.sha256, job.spec.model, self.ctx.account_of(job).name) if isinstance(file, LocalFile) else None
        upload = self.ctx.state.uploads.get(key) if key is not None else None
        if upload is None:  # not ready(): sent as it is, the service refuses a file:// URL (nothing is made)
            job.log.error("upload.missing", file=str(path))
            return request, None
        self._sent[job.id] = upload.url
        return {**request, "input": {**request["input"], "audio_url": upload.url}}, RESOLVE

    def lost(self, job: Job, exc: ApiError) -> bool:
        """The create was refused because the service no longer has the file it named: drop that upload and say
        True (upload again, send again), once per job; else False."""
        url = self._sent.get(job.id)
        if url is None or job.id in self._relost or not upload_lost(exc, url):
            return False
        self._relost.add(job.id)
        self._dropped.add(url)
        job.log.warning("upload.lost", url=url, code=exc.code, message=exc.message)
        return True

    def describe(self, job: Job) -> dict[str, Any] | None:
        """The job's local file for its sidecar: the file, its sha256 and the ``oss://`` URL it was sent as."""
        path = local_file(job.spec.request)
        if path is None:
            return None
        file = self._files.get(path)
        sha = file.sha256 if isinstance(file, LocalFile) else None
        uploads = [
            u
            for u in self.ctx.state.uploads.values()
            if u.file == str(path) and u.model == job.spec.model and (sha is None or u.sha256 == sha)
        ]
        newest = max(uploads, key=lambda u: u.ts, default=None)
        return {
            "file": str(path),
            "sha256": sha if sha is not None else (newest.sha256 if newest else None),
            "url": self._sent.get(job.id) or (newest.url if newest else None),
        }

    # ------------------------------------------------------------------------------------------ inside

    def _usable(self, key: _Key) -> bool:
        upload = self.ctx.state.uploads.get(key)
        return (
            upload is not None
            and upload.url not in self._dropped
            and upload.expires - self._account(key).server_clock.now() > REUSE_MARGIN
        )

    def _account(self, key: _Key) -> Account:
        return self.ctx.accounts.get(key[2]) or self.ctx.accounts.home

    async def _upload(self, job: Job, file: LocalFile, key: _Key) -> _Outcome:
        """Ask for a policy and post the file (retried as ``classify`` says); the ``uploaded`` line on success."""
        ctx = self.ctx
        account = self._account(key)
        client = account.client
        job.log.info("upload.start", file=file.path.name, bytes=file.bytes, model=job.model)
        began = time.monotonic()
        attempt = 0
        while True:
            try:
                policy = await ctx.call(
                    "policy", partial(client.upload_policy, account.spelling(job.spec.model)), account=account
                )
            except Stopped:
                return _Outcome(False, None, "the run stopped during the upload")
            except ApiError as exc:
                return await self._refused(job, exc, classify(exc, op="policy", attempt=attempt))
            started = account.server_clock.now()  # the object's 48 h run from here at the latest (the server's clock)
            data = await asyncio.to_thread(_read_checked, file)
            if isinstance(data, str):
                return _Outcome(False, "AudioChanged", data, fail=True)
            name = file.path.name
            content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
            sending = post_object(
                policy,
                UploadFile(name, data, content_type),
                seconds=client.config.timeouts.upload,
                user_agent=client.config.user_agent,
            )
            try:
                ok, url = await ctx.until_stop(sending, ctx.draining)
            except ApiError as exc:
                verdict = classify(exc, op="upload", attempt=attempt)
                attempt += 1
                if verdict.action is not Action.RETRY:
                    return await self._refused(job, exc, verdict)
                job.log.info("upload.retry", reason=verdict.reason, delay=round(verdict.delay, 3))
                slept, _ = await ctx.until_stop(asyncio.sleep(verdict.delay), ctx.draining)
                if not slept:
                    return _Outcome(False, None, "the run stopped during the upload")
                continue
            if not ok:
                return _Outcome(False, None, "the run stopped during the upload")
            expires = started + UPLOAD_TTL_SECONDS
            await ctx.record(None, UPLOADED, file=str(file.path), sha256=file.sha256, bytes=file.bytes,
                             model=key[1], url=url, expires=round(expires, 3), account=account.name)  # fmt: skip
            job.log.info("upload.done", file=name, url=url, seconds=round(time.monotonic() - began, 3))
            return _Outcome(True)

    async def _refused(self, job: Job, exc: ApiError, verdict: Any) -> _Outcome:
        """A failed policy or post that is not retried (any more): what it means for the job."""
        code = exc.code or (f"HTTP{exc.status}" if exc.status else type(exc).__name__)
        if verdict.action is Action.REFUSED:  # the account (or the model for it): stop there, blame no job
            await self.ctx.refuse(code, exc.message, exc.request_id, scope=verdict.scope, model=job.spec.model,
                                  account=self.ctx.account_of(job))  # fmt: skip
            return _Outcome(False, code, f"{code}: {exc.message}")
        if isinstance(exc, PermanentError):  # the service refused this upload: the same file is refused again
            return _Outcome(False, code, exc.message, fail=True)
        return _Outcome(False, code, f"{verdict.reason}: {exc}")  # an outage outlasting the retries

    async def _end(self, job: Job, outcome: _Outcome) -> bool:
        """The job goes no further this run: failed (nothing was made) or left as it was; always False."""
        ctx = self.ctx
        if outcome.fail:
            job.log.warning("upload.failed", code=outcome.code, message=outcome.message)
            await fail(ctx, job, "upload", outcome.code, outcome.message, kind=REFUSED)
            return False
        if job.state.state == "submitting":  # its last create was refused (nothing made): planned again
            await ctx.record(job, UNSENT, reason=f"upload: {outcome.message}")
        await ctx.free_slot(job)
        ctx.close_group(job)
        if not ctx.stopping:
            log.warning("upload.left", job_id=job.id, name=job.spec.name, reason=outcome.message)
            ctx.leave(job, "drain" if ctx.draining.is_set() else "upload")
        return False
