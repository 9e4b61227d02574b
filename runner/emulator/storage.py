"""The object-storage stand-in: videos behind signed, expiring URLs, with Range requests and the faults of a
flaky store (like OSS, it never sees the API key and answers XML errors)."""

from __future__ import annotations

import asyncio
import hashlib
import uuid

from aiohttp import web

from runner.emulator.answers import STATE, abort
from runner.emulator.protocol import (
    fmt_time,
)
from runner.emulator.video import task_box

# -- the object-storage stand-in --------------------------------------------------------------------------


def oss_error(status: int, code: str, message: str, extra: str = "") -> web.Response:
    rid = uuid.uuid4().hex[:24].upper()
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error>\n'
        f"  <Code>{code}</Code>\n  <Message>{message}</Message>\n  <RequestId>{rid}</RequestId>\n"
        f"  <HostId>emulator.oss.local</HostId>\n{extra}</Error>\n"
    )
    return web.Response(status=status, text=xml, content_type="application/xml", headers={"x-oss-request-id": rid})


async def storage_fault(
    request: web.Request, fault: str | None, missing: tuple[str, str]
) -> tuple[int, str, str] | None:
    """``fault`` (drawn for an object-storage request) as OSS shows it: a slow answer waits, a reset aborts; else
    the (status, code, message) of the error to answer, ``missing`` the code and message of a 404. None: no error
    (or a fault the caller acts on itself, such as ``truncate``)."""
    state = request.app[STATE]
    if fault == "slow":
        await asyncio.sleep(state.slow_seconds)
    elif fault == "reset":
        abort(request)
    elif fault == "429":
        return 503, "SlowDown", "Please reduce your request rate."
    elif fault == "404":
        return 404, *missing
    elif fault in ("500", "502", "503"):
        return int(fault), "InternalError", "Please contact the server administrator."
    return None


def _parse_range(header: str, total: int) -> tuple[int, int] | None:
    """``bytes=N-`` or ``bytes=N-M`` → inclusive (first, last); None when unsatisfiable or malformed."""
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None
    first_s, _, last_s = spec.strip().partition("-")
    try:
        if first_s == "":  # suffix: the last N bytes
            n = int(last_s)
            return (max(0, total - n), total - 1) if n > 0 and total else None
        first = int(first_s)
        last = int(last_s) if last_s else total - 1
    except ValueError:
        return None
    if first >= total or last < first:
        return None
    return first, min(last, total - 1)


async def download(request: web.Request) -> web.StreamResponse:
    """GET a video behind its signed URL, like object storage: 403 when the signature is wrong or expired,
    Range requests for resumable downloads, and the ``truncate`` fault that closes mid-body."""
    state = request.app[STATE]
    state.requests["file"] += 1
    fault = state.faults.request_fault("file")
    error = await storage_fault(request, fault, ("NoSuchKey", "The specified key does not exist."))
    if error is not None:
        return oss_error(*error)
    if "Authorization" in request.headers:
        state.downloads_with_authorization += 1
    name = request.match_info["name"]
    task_id = name.removesuffix(".mp4")
    expires_s, signature = request.query.get("Expires"), request.query.get("Signature")
    if not expires_s or not signature or not expires_s.isdigit():
        return oss_error(403, "AccessDenied", "You have no right to access this object because of bucket acl.")
    expires = int(expires_s)
    if not state.signature_ok(task_id, expires, signature):
        return oss_error(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        )
    now = state.clock()
    if now > expires:
        return oss_error(
            403,
            "AccessDenied",
            "Request has expired.",
            f"  <Expires>{fmt_time(expires)}</Expires>\n  <ServerTime>{fmt_time(now)}</ServerTime>\n",
        )
    task = state.store.get(task_id)
    if task is None or task.canceled_at is not None or task.end_at > now or task.outcome()[0] != "SUCCEEDED":
        return oss_error(404, "NoSuchKey", "The specified key does not exist.")
    req = task.req
    data = await state.videos.get(req.width, req.height, req.duration) + task_box(task.task_id)
    total = len(data)
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": '"' + hashlib.md5(task.task_id.encode()).hexdigest().upper() + '"',
        "x-oss-request-id": uuid.uuid4().hex[:24].upper(),
    }
    status, first, last = 200, 0, total - 1
    range_header = request.headers.get("Range")
    if range_header:
        rng = _parse_range(range_header, total)
        if rng is None:
            headers["Content-Range"] = f"bytes */{total}"
            return web.Response(status=416, headers=headers)
        status, (first, last) = 206, rng
        headers["Content-Range"] = f"bytes {first}-{last}/{total}"
    body = data[first : last + 1]
    if request.method == "HEAD":
        return web.Response(
            status=status, headers={**headers, "Content-Length": str(len(body))}, content_type="video/mp4"
        )
    state.downloads += 1
    if fault == "truncate":
        resp = web.StreamResponse(status=status, headers=headers)
        resp.content_type = "video/mp4"
        resp.content_length = len(body)
        await resp.prepare(request)
        part = body[: len(body) // 2]
        await resp.write(part)
        state.bytes_served += len(part)
        abort(request)
    state.bytes_served += len(body)
    return web.Response(status=status, body=body, content_type="video/mp4", headers=headers)
