"""The emulator's HTTP face: the routes of API.md (create, query, list, cancel), the signed file route that
stands in for object storage, and the ``/_emulator/*`` test endpoints. Every API answer is JSON with a
``request_id`` in the body and the ``x-request-id`` header, errors included (API.md §8)."""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json
import math
import re
import unicodedata
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from runner.emulator.clock import Clock, system_clock
from runner.emulator.config import EmulatorConfig
from runner.emulator.faults import FaultRule, FaultSyntaxError, parse_fault
from runner.emulator.protocol import (
    ARREARAGE,
    CANCEL_NOT_PENDING,
    INPUT_INSPECTION,
    INTERNAL_ERROR,
    INVALID_API_KEY,
    MODEL_ACCESS_DENIED,
    MODEL_UNAVAILABLE,
    NO_API_KEY,
    RATE_QUOTA,
    SYNC_NOT_SUPPORTED,
    URL_ERROR,
    ApiFailure,
    actual_prompt_of,
    check_create,
    fmt_time,
    parse_list_time,
    resolve_body_model,
    usage_of,
)
from runner.emulator.state import EmulatorState
from runner.emulator.tasks import STATUSES, Task
from runner.emulator.video import task_box
from runner.models import resolve_model

STATE: web.AppKey[EmulatorState] = web.AppKey("emulator_state", EmulatorState)

API = "/api/v1"
CREATE_PATH = f"{API}/services/aigc/video-generation/video-synthesis"
FILE_PREFIX = "/results"
LIST_WINDOW = 24 * 3600.0

Handler = Callable[[web.Request, EmulatorState, str, str], Awaitable[web.StreamResponse]]


class _Reset(Exception):
    """Drop the connection without an answer."""


def _json(status: int, body: dict[str, Any], request_id: str, headers: dict[str, str] | None = None) -> web.Response:
    hdrs = {"x-request-id": request_id}
    if headers:
        hdrs.update(headers)
    return web.Response(
        status=status,
        body=json.dumps(body, ensure_ascii=False).encode(),
        content_type="application/json",
        headers=hdrs,
    )


def _error(state: EmulatorState, e: ApiFailure, request_id: str) -> web.Response:
    headers = {}
    if e.status == 429:
        state.throttled[e.code] += 1
    if e.retry_after is not None:
        headers["Retry-After"] = str(e.retry_after)
    return _json(e.status, {"request_id": request_id, "code": e.code, "message": e.message}, request_id, headers)


def _throttle(state: EmulatorState, wait: float) -> ApiFailure:
    return ApiFailure(429, "Throttling.RateQuota", RATE_QUOTA, retry_after=state.retry_after_for_429(wait))


def _abort(request: web.Request) -> NoReturn:
    """Close the connection at once: the client sees a reset / disconnect and no status line."""
    if request.transport is not None:
        request.transport.abort()
    raise asyncio.CancelledError


async def _request_fault(state: EmulatorState, request: web.Request, route: str) -> web.Response | None:
    """Apply a request-level fault (before the request has any effect); a Response replaces the answer."""
    fault = state.faults.request_fault(route)
    if fault is None or fault == "truncate":
        return None
    if fault == "slow":
        await asyncio.sleep(state.slow_seconds)
        return None
    if fault == "reset":
        raise _Reset
    rid = str(uuid.uuid4())
    if fault == "429":
        return _error(state, _throttle(state, 1.0), rid)
    if fault == "500":
        return _error(state, ApiFailure(500, "InternalError", INTERNAL_ERROR), rid)
    if fault == "503":
        return _error(state, ApiFailure(503, "ModelUnavailable", MODEL_UNAVAILABLE), rid)
    if fault == "404":  # a proxy in front of the service: its own page, no DashScope code
        return web.Response(status=404, text=_PAGE.format(status="404 Not Found"), content_type="text/html")
    # 502: a proxy in front of the service answers, not the service: plain text, no JSON, no request id.
    return web.Response(
        status=502,
        text="upstream connect error or disconnect/reset before headers. reset reason: connection failure",
        content_type="text/plain",
    )


def _api(route: str, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Wrap an API handler: count, inject faults, check the key, apply the 20 QPS of query/list/cancel, and
    turn ApiFailure into the service's JSON error."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE]
        state.requests[route] += 1
        rid = str(uuid.uuid4())
        try:
            replaced = await _request_fault(state, request, route)
            if replaced is not None:
                return replaced
            auth = request.headers.get("Authorization", "")
            scheme, _, key = auth.partition(" ")
            key = key.strip()
            if not auth or scheme.lower() != "bearer" or not key:
                raise ApiFailure(401, "InvalidApiKey", NO_API_KEY)
            if not state.key_accepted(key):
                raise ApiFailure(401, "InvalidApiKey", INVALID_API_KEY)
            if route != "create":
                wait = state.quotas.api(route, state.clock())
                if wait is not None:
                    raise _throttle(state, wait)
            return await handler(request, state, key, rid)
        except ApiFailure as e:
            return _error(state, e, rid)
        except _Reset:
            _abort(request)

    return wrapped


# -- the API ----------------------------------------------------------------------------------------------


async def create(request: web.Request, state: EmulatorState, key: str, rid: str) -> web.StreamResponse:
    if request.headers.get("X-DashScope-Async", "").strip().lower() != "enable":
        raise ApiFailure(403, "AccessDenied", SYNC_NOT_SUPPORTED)
    raw = await request.read()
    try:
        body = json.loads(raw)
    except ValueError:
        raise ApiFailure(400, "BadRequest.IllegalInput", "The request body is not a valid JSON object.") from None
    body, model_name, spec = resolve_body_model(body)
    if spec.name in state.denied_models:  # the model is not open to this account
        raise ApiFailure(403, "Model.AccessDenied", MODEL_ACCESS_DENIED)
    if state.arrears_after is not None and state.submitted >= state.arrears_after:
        raise ApiFailure(400, "Arrearage", ARREARAGE)
    now = state.clock()
    wait = state.quotas.submit(spec, now)
    if wait is not None:
        raise _throttle(state, wait)
    req = check_create(body, model_name, spec)
    word = state.block_word
    if word and (word.lower() in req.prompt.lower() or word.lower() in (req.negative_prompt or "").lower()):
        raise ApiFailure(400, "DataInspectionFailed", INPUT_INSPECTION)
    concurrency = state.quotas.concurrency(spec)
    state.store.check_capacity(spec.name, now, concurrency)
    faults = state.faults.task_faults(state.store.next_seq)
    task = state.store.create(
        req, now=now, request_id=rid, api_key_id=state.api_key_id(key), faults=faults, concurrency=concurrency
    )
    if state.config.quote_key_in_failures:
        task.quoted_key = key
    state.submitted += 1
    state.submitted_by_model[spec.name] += 1
    state.by_body[req.digest] += 1
    if "reset_after_create" in faults:
        state.resets_after_create += 1
        raise _Reset  # the paid task exists; the client never learns its id
    odd = _odd_answer(faults, rid)
    if odd is not None:  # the paid task exists; a proxy rewrote the answer into one that proves nothing
        state.odd_answers += 1
        return odd
    return _json(200, {"output": {"task_status": "PENDING", "task_id": task.task_id}, "request_id": rid}, rid)


def _odd_answer(faults: frozenset[str], rid: str) -> web.Response | None:
    """The answer a misbehaving proxy gives for a create the service accepted (faults.ANSWER_KINDS)."""
    if "empty_id" in faults:
        return _json(200, {"output": {"task_status": "PENDING", "task_id": ""}, "request_id": rid}, rid)
    if "unknown_id" in faults:
        return _json(200, {"output": {"task_status": "PENDING", "task_id": str(uuid.uuid4())}, "request_id": rid}, rid)
    if "no_task_id" in faults:
        return _json(200, {"output": {"task_status": "PENDING"}, "request_id": rid}, rid)
    if "html_400" in faults:
        return web.Response(status=400, text=_PAGE.format(status="400 Bad Request"), content_type="text/html")
    if "html_200" in faults:
        return web.Response(status=200, text=_PAGE.format(status="Welcome"), content_type="text/html")
    if "page_502" in faults:
        return web.Response(status=502, text="502 Bad Gateway", content_type="text/plain")
    return None


_PAGE = "<html><head><title>{status}</title></head><body><h1>{status}</h1><hr>proxy</body></html>"


def _echo(prompt: str) -> str:
    """A lenient service's echo of the prompt: NFC, whitespace runs folded to one space, ends trimmed."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFC", prompt)).strip()


def video_url(request: web.Request, state: EmulatorState, task: Task) -> str:
    expires = state.store.url_expires(task)
    sig = state.sign(task.task_id, expires)
    return (
        f"{request.scheme}://{request.host}{FILE_PREFIX}/{task.task_id}.mp4"
        f"?Expires={expires}&OSSAccessKeyId=LTAIemulator&Signature={sig}"
    )


def task_output(request: web.Request, state: EmulatorState, task: Task, now: float) -> tuple[dict[str, Any], Any]:
    """``output`` (and top-level ``usage``) of a task as the query answers it at ``now`` (API.md §2)."""
    status = state.store.status(task, now)
    out: dict[str, Any] = {"task_id": task.task_id, "task_status": status}
    if status == "UNKNOWN":
        return out, None
    out["submit_time"] = fmt_time(task.submit_at)
    if task.scheduled_at <= min(now, task.terminal_at):
        out["scheduled_time"] = fmt_time(task.scheduled_at)
    if status in ("PENDING", "RUNNING"):
        return out, None
    out["end_time"] = fmt_time(task.terminal_at)
    if status == "CANCELED":
        return out, None
    if status == "FAILED":
        _, code, message = task.outcome()
        out["code"], out["message"] = code, message
        return out, None
    out["orig_prompt"] = _echo(task.req.prompt) if state.config.echo_normalized else task.req.prompt
    actual = actual_prompt_of(task.req)
    if actual is not None:
        out["actual_prompt"] = actual
    out["video_url"] = video_url(request, state, task)
    return out, usage_of(task.req)


async def query(request: web.Request, state: EmulatorState, key: str, rid: str) -> web.StreamResponse:
    state.queries += 1
    task_id = request.match_info["task_id"]
    task = state.store.get(task_id)
    if task is None:
        return _json(200, {"request_id": rid, "output": {"task_id": task_id, "task_status": "UNKNOWN"}}, rid)
    output, usage = task_output(request, state, task, state.clock())
    body: dict[str, Any] = {"request_id": rid, "output": output}
    if usage is not None:
        body["usage"] = usage
    return _json(200, body, rid)


def _int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiFailure(400, "InvalidParameter", f"Parameter {name} must be an integer.") from None
    if not lo <= value <= hi:
        raise ApiFailure(400, "InvalidParameter", f"Parameter {name} must be between {lo} and {hi}.")
    return value


def _ms(epoch: float) -> int:
    return int(epoch * 1000)


def list_item(state: EmulatorState, task: Task, now: float) -> dict[str, Any]:
    status = state.store.status(task, now)
    item: dict[str, Any] = {
        "api_key_id": task.api_key_id,
        "caller_parent_id": "1000000000000000",
        "caller_uid": "1000000000000000",
        "gmt_create": _ms(task.submit_at),
        "start_time": _ms(task.submit_at),
        "model_name": task.req.model_name,
        "region": "cn-beijing",
        "request_id": task.request_id,
        "status": status,
        "task_id": task.task_id,
        "user_api_unique_key": f"apikey:v1:aigc:video-generation:video-synthesis:{task.req.model_name}",
    }
    if status not in ("PENDING", "RUNNING"):
        item["end_time"] = _ms(task.terminal_at)
    return item


async def list_tasks(request: web.Request, state: EmulatorState, key: str, rid: str) -> web.StreamResponse:
    now = state.clock()
    q = request.query
    end = parse_list_time(q["end_time"]) if q.get("end_time") else None
    start = parse_list_time(q["start_time"]) if q.get("start_time") else None
    if end is None:
        end = now if start is None else start + LIST_WINDOW
    if start is None:
        start = end - LIST_WINDOW
    if end < start:
        raise ApiFailure(400, "InvalidParameter", "The end_time must not be earlier than the start_time.")
    if end - start > LIST_WINDOW:
        raise ApiFailure(400, "InvalidParameter", "The time range between start_time and end_time exceeds 24 hours.")
    page_no = _int_param(request, "page_no", 1, 1, 1_000_000)
    page_size = _int_param(request, "page_size", 10, 1, 100)
    status = q.get("status") or None
    if status is not None and status not in STATUSES:
        raise ApiFailure(400, "InvalidParameter", f"Parameter status must be one of {', '.join(STATUSES)}.")
    model: str | None = None
    if q.get("model_name"):
        spec = resolve_model(q["model_name"])
        model = spec.name if spec is not None else "\x00unknown"
    tasks = state.store.listing(
        now=now, start=start, end=end + 0.999, model=model, status=status, task_id=q.get("task_id") or None
    )
    total = len(tasks)
    page = tasks[(page_no - 1) * page_size : page_no * page_size]
    return _json(
        200,
        {
            "request_id": rid,
            "total": total,
            "total_page": math.ceil(total / page_size),
            "page_no": page_no,
            "page_size": page_size,
            "data": [list_item(state, t, now) for t in page],
        },
        rid,
    )


async def cancel(request: web.Request, state: EmulatorState, key: str, rid: str) -> web.StreamResponse:
    task = state.store.get(request.match_info["task_id"])
    concurrency = state.quotas.concurrency(task.req.spec) if task is not None else None
    if task is None or not state.store.cancel(task.task_id, state.clock(), concurrency):
        raise ApiFailure(400, "UnsupportedOperation", CANCEL_NOT_PENDING)
    return _json(200, {"request_id": rid}, rid)


async def url_error(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    state.requests["other"] += 1
    rid = str(uuid.uuid4())
    return _error(state, ApiFailure(400, "InvalidParameter", URL_ERROR), rid)


# -- the object-storage stand-in --------------------------------------------------------------------------


def _oss_error(status: int, code: str, message: str, extra: str = "") -> web.Response:
    rid = uuid.uuid4().hex[:24].upper()
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error>\n'
        f"  <Code>{code}</Code>\n  <Message>{message}</Message>\n  <RequestId>{rid}</RequestId>\n"
        f"  <HostId>emulator.oss.local</HostId>\n{extra}</Error>\n"
    )
    return web.Response(status=status, text=xml, content_type="application/xml", headers={"x-oss-request-id": rid})


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
    if fault == "slow":
        await asyncio.sleep(state.slow_seconds)
    elif fault == "reset":
        _abort(request)
    elif fault == "429":
        return _oss_error(503, "SlowDown", "Please reduce your request rate.")
    elif fault == "404":
        return _oss_error(404, "NoSuchKey", "The specified key does not exist.")
    elif fault in ("500", "502", "503"):
        return _oss_error(int(fault), "InternalError", "Please contact the server administrator.")
    if "Authorization" in request.headers:
        state.downloads_with_authorization += 1
    name = request.match_info["name"]
    task_id = name.removesuffix(".mp4")
    expires_s, signature = request.query.get("Expires"), request.query.get("Signature")
    if not expires_s or not signature or not expires_s.isdigit():
        return _oss_error(403, "AccessDenied", "You have no right to access this object because of bucket acl.")
    expires = int(expires_s)
    if not state.signature_ok(task_id, expires, signature):
        return _oss_error(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        )
    now = state.clock()
    if now > expires:
        return _oss_error(
            403,
            "AccessDenied",
            "Request has expired.",
            f"  <Expires>{fmt_time(expires)}</Expires>\n  <ServerTime>{fmt_time(now)}</ServerTime>\n",
        )
    task = state.store.get(task_id)
    if task is None or task.canceled_at is not None or task.end_at > now or task.outcome()[0] != "SUCCEEDED":
        return _oss_error(404, "NoSuchKey", "The specified key does not exist.")
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
        _abort(request)
    state.bytes_served += len(body)
    return web.Response(status=status, body=body, content_type="video/mp4", headers=headers)


# -- the test endpoints -----------------------------------------------------------------------------------


class FaultObject(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str
    route: str | None = None
    rate: float = Field(ge=0.0, le=1.0)
    count: int | None = Field(default=None, ge=0)

    def spec(self) -> str:
        scope = f"@{self.route}" if self.route else ""
        times = f"x{self.count}" if self.count is not None else ""
        return f"{self.kind}{scope}={self.rate}{times}"


class FaultsPayload(BaseModel):
    """Body of ``POST /_emulator/faults``: replaces the rules; the other fields change only when given."""

    model_config = ConfigDict(extra="forbid")
    faults: list[str | FaultObject] = []
    block_word: str | None = None
    slow_seconds: float | None = Field(default=None, ge=0.0)
    seed: int | None = None


def _faults_json(state: EmulatorState) -> dict[str, Any]:
    return {
        "faults": state.faults.as_json(),
        "block_word": state.block_word,
        "slow_seconds": state.slow_seconds,
        "seed": state.faults.seed,
    }


async def get_faults(request: web.Request) -> web.StreamResponse:
    return web.json_response(_faults_json(request.app[STATE]))


async def set_faults(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    try:
        payload = FaultsPayload.model_validate_json(await request.read())
        rules: tuple[FaultRule, ...] = tuple(parse_fault(f if isinstance(f, str) else f.spec()) for f in payload.faults)
    except (ValidationError, FaultSyntaxError) as e:
        return web.json_response({"code": "InvalidParameter", "message": str(e)}, status=400)
    state.faults.replace(rules)
    if "block_word" in payload.model_fields_set:
        state.block_word = payload.block_word or None
    if payload.slow_seconds is not None:
        state.slow_seconds = payload.slow_seconds
    if payload.seed is not None:
        state.faults.seed = payload.seed
    return web.json_response(_faults_json(state))


async def get_stats(request: web.Request) -> web.StreamResponse:
    return web.json_response(request.app[STATE].stats())


async def reset(request: web.Request) -> web.StreamResponse:
    request.app[STATE].reset()
    return web.json_response({"reset": True})


class ClockPayload(BaseModel):
    """Body of ``POST /_emulator/clock``: set the offset from the host's clock, or move it forward."""

    model_config = ConfigDict(extra="forbid")
    offset: float | None = None
    advance: float | None = Field(default=None, ge=0.0)


async def set_clock(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    try:
        payload = ClockPayload.model_validate_json(await request.read())
    except ValidationError as e:
        return web.json_response({"code": "InvalidParameter", "message": str(e)}, status=400)
    if payload.offset is not None:
        state.clock_offset = payload.offset
    if payload.advance is not None:
        state.clock_offset += payload.advance
    return web.json_response({"clock_offset": state.clock_offset, "now": state.clock()})


async def get_tasks(request: web.Request) -> web.StreamResponse:
    """Every task with the digest of the body that made it: the witness tests count payments against."""
    state = request.app[STATE]
    now = state.clock()
    rows = [
        {
            "task_id": t.task_id,
            "digest": t.req.digest,
            "status": state.store.status(t, now),
            "api_key_id": t.api_key_id,
            "submit_at": t.submit_at,
        }
        for t in state.store.order
    ]
    return web.json_response(rows)


async def _server_date(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer's ``Date`` is the emulator's clock (which may run ahead of or behind the host's)."""
    state = request.app[STATE]
    response.headers["Date"] = email.utils.formatdate(state.clock(), usegmt=True)


def create_app(
    config: EmulatorConfig, *, clock: Clock = system_clock, state: EmulatorState | None = None
) -> web.Application:
    """The emulator as an aiohttp application (serve it with ``web.run_app``, AppRunner or TestServer)."""
    state = state if state is not None else EmulatorState(config, clock)
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app[STATE] = state
    r = app.router
    r.add_post(CREATE_PATH, _api("create", create))
    r.add_post(CREATE_PATH + "/", _api("create", create))
    for suffix in ("", "/"):
        r.add_get(f"{API}/tasks{suffix}", _api("list", list_tasks), allow_head=False)
        r.add_get(f"{API}/tasks/{{task_id}}{suffix}", _api("query", query), allow_head=False)
        r.add_post(f"{API}/tasks/{{task_id}}/cancel{suffix}", _api("cancel", cancel))
    r.add_get(FILE_PREFIX + "/{name}", download)
    r.add_get("/_emulator/stats", get_stats, allow_head=False)
    r.add_get("/_emulator/faults", get_faults, allow_head=False)
    r.add_post("/_emulator/faults", set_faults)
    r.add_post("/_emulator/reset", reset)
    r.add_post("/_emulator/clock", set_clock)
    r.add_get("/_emulator/tasks", get_tasks, allow_head=False)
    app.on_response_prepare.append(_server_date)
    r.add_route("*", "/{tail:.*}", url_error)

    async def _close(app: web.Application) -> None:
        state.videos.close()

    app.on_cleanup.append(_close)
    return app
