"""The API's routes (API.md §1–§3): create, query, list and cancel, each wrapped to count it, inject its faults,
check the key and apply the 20 QPS of query, list and cancel. Each request acts for the account of its key: its
quotas, its tasks (another account's task answers as an unknown id), its counters."""

from __future__ import annotations

import asyncio
import json
import math
import re
import unicodedata
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from runner.emulator.accounts import Account
from runner.emulator.answers import (
    FILE_PREFIX,
    LIST_WINDOW,
    PAGE,
    STATE,
    Handler,
    Reset,
    abort,
    error_answer,
    json_answer,
    throttle,
)
from runner.emulator.protocol import (
    ARREARAGE,
    CANCEL_NOT_PENDING,
    INPUT_INSPECTION,
    INTERNAL_ERROR,
    INVALID_API_KEY,
    MODEL_ACCESS_DENIED,
    MODEL_UNAVAILABLE,
    NO_API_KEY,
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
from runner.emulator.uploads import RESOLVE_HEADER, check_oss_audio
from runner.models import resolve_model


async def _request_fault(state: EmulatorState, request: web.Request, route: str) -> web.Response | None:
    """Apply a request-level fault (before the request has any effect); a Response replaces the answer."""
    fault = state.faults.request_fault(route)
    if fault is None or fault == "truncate":
        return None
    if fault == "slow":
        await asyncio.sleep(state.slow_seconds)
        return None
    if fault == "reset":
        raise Reset
    if fault == "429":
        raise throttle(state, 1.0)
    if fault == "500":
        raise ApiFailure(500, "InternalError", INTERNAL_ERROR)
    if fault == "503":
        raise ApiFailure(503, "ModelUnavailable", MODEL_UNAVAILABLE)
    if fault == "404":  # a proxy in front of the service: its own page, no DashScope code
        return web.Response(status=404, text=PAGE.format(status="404 Not Found"), content_type="text/html")
    # 502: a proxy in front of the service answers, not the service: plain text, no JSON, no request id.
    return web.Response(
        status=502,
        text="upstream connect error or disconnect/reset before headers. reset reason: connection failure",
        content_type="text/plain",
    )


def api(route: str, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Wrap an API handler: count, inject faults, check the key, apply the 20 QPS of query/list/cancel, and
    turn ApiFailure into the service's JSON error."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE]
        state.requests[route] += 1
        rid = str(uuid.uuid4())
        auth = request.headers.get("Authorization", "")
        scheme, _, key = auth.partition(" ")
        key = key.strip() if scheme.lower() == "bearer" else ""
        account = state.account_for(key) if key else None
        if account is not None:  # counted before any fault: what the client sent with the account's key
            account.requests[route] += 1
        try:
            replaced = await _request_fault(state, request, route)
            if replaced is not None:
                return replaced
            if not key:
                raise ApiFailure(401, "InvalidApiKey", NO_API_KEY)
            if account is None:
                raise ApiFailure(401, "InvalidApiKey", INVALID_API_KEY)
            if route != "create":
                wait = account.quotas.api(route, state.clock())
                if wait is not None:
                    raise throttle(state, wait)
            return await handler(request, state, key, rid)
        except ApiFailure as e:
            if e.status == 429 and account is not None:
                account.throttled[e.code] += 1
            return error_answer(state, e, rid)
        except Reset:
            abort(request)

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
    account = _account(state, key)
    if spec.name in state.denied_models or spec.name in account.denied_models:  # not open to this account
        raise ApiFailure(403, "Model.AccessDenied", MODEL_ACCESS_DENIED)
    if account.in_arrears(state.arrears_after):
        raise ApiFailure(400, "Arrearage", ARREARAGE)
    now = state.clock()
    wait = account.quotas.submit(spec, now)
    if wait is not None:
        raise throttle(state, wait)
    req = check_create(body, model_name, spec)
    # issue 19: an oss:// audio_url must name a live object of this model, with the header that resolves it
    check_oss_audio(state.objects, body["input"], request.headers.get(RESOLVE_HEADER, ""), spec, now)
    word = state.block_word
    if word and (word.lower() in req.prompt.lower() or word.lower() in (req.negative_prompt or "").lower()):
        raise ApiFailure(400, "DataInspectionFailed", INPUT_INSPECTION)
    concurrency = account.quotas.concurrency(spec)
    state.store.check_capacity(spec.name, now, concurrency, account.name)
    faults = state.faults.task_faults(state.store.next_seq)
    task = state.store.create(
        req,
        now=now,
        request_id=rid,
        api_key_id=state.api_key_id(key),
        faults=faults,
        concurrency=concurrency,
        account=account.name,
    )
    if state.config.quote_key_in_failures:
        task.quoted_key = key
    state.submitted += 1
    state.submitted_by_model[spec.name] += 1
    state.by_body[req.digest] += 1
    account.count_submission(spec.name, req.digest)
    if "reset_after_create" in faults:
        state.resets_after_create += 1
        raise Reset  # the paid task exists; the client never learns its id
    if "hold_after_create" in faults:  # the paid task exists; its answer comes slow_seconds late (a slow gateway)
        await asyncio.sleep(state.slow_seconds)
    odd = _odd_answer(faults, rid)
    if odd is not None:  # the paid task exists; a proxy rewrote the answer into one that proves nothing
        state.odd_answers += 1
        return odd
    return json_answer(200, {"output": {"task_status": "PENDING", "task_id": task.task_id}, "request_id": rid}, rid)


def _account(state: EmulatorState, key: str) -> Account:
    """The account of a key the wrapper accepted."""
    account = state.account_for(key)
    if account is None:  # revoked (in-process) while the request body was being read
        raise ApiFailure(401, "InvalidApiKey", INVALID_API_KEY)
    return account


def _odd_answer(faults: frozenset[str], rid: str) -> web.Response | None:
    """The answer a misbehaving proxy gives for a create the service accepted (faults.ANSWER_KINDS)."""
    if "empty_id" in faults:
        return json_answer(200, {"output": {"task_status": "PENDING", "task_id": ""}, "request_id": rid}, rid)
    if "unknown_id" in faults:
        return json_answer(
            200, {"output": {"task_status": "PENDING", "task_id": str(uuid.uuid4())}, "request_id": rid}, rid
        )
    if "no_task_id" in faults:
        return json_answer(200, {"output": {"task_status": "PENDING"}, "request_id": rid}, rid)
    if "html_400" in faults:
        return web.Response(status=400, text=PAGE.format(status="400 Bad Request"), content_type="text/html")
    if "html_200" in faults:
        return web.Response(status=200, text=PAGE.format(status="Welcome"), content_type="text/html")
    if "page_502" in faults:
        return web.Response(status=502, text="502 Bad Gateway", content_type="text/plain")
    return None


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
    task = _account(state, key).own(state.store.get(task_id))
    if task is None:
        return json_answer(200, {"request_id": rid, "output": {"task_id": task_id, "task_status": "UNKNOWN"}}, rid)
    output, usage = task_output(request, state, task, state.clock())
    body: dict[str, Any] = {"request_id": rid, "output": output}
    if usage is not None:
        body["usage"] = usage
    return json_answer(200, body, rid)


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
    account = _account(state, key)
    if q.get("task_id"):
        account.own(state.store.get(q["task_id"]))  # another account's id: not listed, and counted as foreign
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
        now=now,
        start=start,
        end=end + 0.999,
        model=model,
        status=status,
        task_id=q.get("task_id") or None,
        account=account.name,
    )
    total = len(tasks)
    page = tasks[(page_no - 1) * page_size : page_no * page_size]
    return json_answer(
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
    account = _account(state, key)
    task = account.own(state.store.get(request.match_info["task_id"]))
    concurrency = account.quotas.concurrency(task.req.spec) if task is not None else None
    if task is None or not state.store.cancel(task.task_id, state.clock(), concurrency):
        raise ApiFailure(400, "UnsupportedOperation", CANCEL_NOT_PENDING)
    account.canceled += 1
    return json_answer(200, {"request_id": rid}, rid)


async def url_error(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    state.requests["other"] += 1
    rid = str(uuid.uuid4())
    return error_answer(state, ApiFailure(400, "InvalidParameter", URL_ERROR), rid)
