"""What every emulator route shares: the app's state key, the paths, and the shapes of an answer (JSON with a
``request_id`` in the body and the ``x-request-id`` header, errors included: API.md §8), a dropped connection,
and a proxy's page."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

from aiohttp import web

from runner.emulator.protocol import (
    RATE_QUOTA,
    ApiFailure,
)
from runner.emulator.state import EmulatorState

STATE: web.AppKey[EmulatorState] = web.AppKey("emulator_state", EmulatorState)

API = "/api/v1"
CREATE_PATH = f"{API}/services/aigc/video-generation/video-synthesis"
FILE_PREFIX = "/results"
LIST_WINDOW = 24 * 3600.0

Handler = Callable[[web.Request, EmulatorState, str, str], Awaitable[web.StreamResponse]]


class Reset(Exception):
    """Drop the connection without an answer."""


def json_answer(
    status: int, body: dict[str, Any], request_id: str, headers: dict[str, str] | None = None
) -> web.Response:
    hdrs = {"x-request-id": request_id}
    if headers:
        hdrs.update(headers)
    return web.Response(
        status=status,
        body=json.dumps(body, ensure_ascii=False).encode(),
        content_type="application/json",
        headers=hdrs,
    )


def error_answer(state: EmulatorState, e: ApiFailure, request_id: str) -> web.Response:
    headers = {}
    if e.status == 429:
        state.throttled[e.code] += 1
    if e.retry_after is not None:
        headers["Retry-After"] = str(e.retry_after)
    return json_answer(e.status, {"request_id": request_id, "code": e.code, "message": e.message}, request_id, headers)


def throttle(state: EmulatorState, wait: float) -> ApiFailure:
    return ApiFailure(429, "Throttling.RateQuota", RATE_QUOTA, retry_after=state.retry_after_for_429(wait))


def abort(request: web.Request) -> NoReturn:
    """Close the connection at once: the client sees a reset / disconnect and no status line."""
    if request.transport is not None:
        request.transport.abort()
    raise asyncio.CancelledError


PAGE = "<html><head><title>{status}</title></head><body><h1>{status}</h1><hr>proxy</body></html>"
