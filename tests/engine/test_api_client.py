"""DashScopeClient against a small canned aiohttp server on 127.0.0.1: exact wire format, typed results, errors."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from runner.engine.api import CREATE_PATH, ApiConfig, DashScopeClient, Timeouts
from runner.engine.classify import Action, classify
from runner.engine.wire import Created, ListedTask, TaskInfo
from runner.errors import (
    ApiError,
    ConnectionLost,
    ForeignAnswer,
    PermanentError,
    RateLimited,
    RequestTimeout,
    ServerError,
)

KEY = "sk-test-0123456789abcdef-SECRET"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class Canned:
    """The test server: records every request and answers with ``handler`` (replaced per test)."""

    seen: list[Seen] = field(default_factory=list)
    handler: Handler | None = None
    port: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1"


def json_answer(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response(payload, status=status, headers=headers)

    return handler


@pytest.fixture
async def server() -> AsyncIterator[Canned]:
    canned = Canned()

    async def catch_all(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        canned.seen.append(Seen(request.method, request.path, dict(request.query), dict(request.headers.items()), body))
        assert canned.handler is not None
        return await canned.handler(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", catch_all)
    srv = TestServer(app, host="127.0.0.1", port=0)
    await srv.start_server()
    assert srv.port is not None
    canned.port = srv.port
    try:
        yield canned
    finally:
        await srv.close()


def client(server: Canned, **kw: Any) -> DashScopeClient:
    return DashScopeClient(ApiConfig(server.base, KEY, **kw))


def assert_no_key(exc: BaseException) -> None:
    for text in (str(exc), repr(exc), str(exc.args), repr(exc.__cause__), repr(exc.__context__)):
        assert KEY not in text


# ------------------------------------------------------------------------------------------- config


def test_config_repr_hides_key() -> None:
    cfg = ApiConfig("https://dashscope.aliyuncs.com/api/v1", KEY)
    assert KEY not in repr(cfg)
    assert KEY not in str(cfg)
    assert KEY not in repr(DashScopeClient(cfg))


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError):
        ApiConfig("dashscope.aliyuncs.com/api/v1", KEY)
    with pytest.raises(ValueError):
        ApiConfig("https://x/api/v1", "")
    for bad in (KEY + "\n", " " + KEY, KEY + "\x00", "sk-é"):
        with pytest.raises(ValueError) as info:
            ApiConfig("https://x/api/v1", bad)
        assert KEY not in str(info.value) and "é" not in str(info.value)


async def test_client_must_be_opened() -> None:
    with pytest.raises(RuntimeError, match="async with"):
        await DashScopeClient(ApiConfig("http://127.0.0.1:9/api/v1", KEY)).get("t")


# ------------------------------------------------------------------------------------------- create

BODY = {
    "model": "wan2.6-t2v",
    "input": {"prompt": "一只小猫在月光下奔跑 — a kitten"},
    "parameters": {"size": "1280*720", "duration": 5, "prompt_extend": True, "seed": 7},
}


async def test_create_sends_exact_headers_and_body(server: Canned) -> None:
    server.handler = json_answer({"output": {"task_status": "PENDING", "task_id": "t-1"}, "request_id": "r-1"})
    async with client(server) as c:
        created = await c.create(BODY)
    assert created == Created(task_id="t-1", status="PENDING", request_id="r-1")
    (seen,) = server.seen
    assert seen.method == "POST"
    assert seen.path == "/api/v1" + CREATE_PATH == "/api/v1/services/aigc/video-generation/video-synthesis"
    h = seen.headers
    assert h["Authorization"] == f"Bearer {KEY}"
    assert h["X-DashScope-Async"] == "enable"
    assert h["Content-Type"] == "application/json; charset=utf-8"
    assert h["Accept"] == "application/json; charset=utf-8"
    assert h["User-Agent"].startswith("wanbatch/")
    assert "X-DashScope-WorkSpace" not in h
    assert seen.body == json.dumps(BODY, ensure_ascii=False).encode("utf-8")
    assert json.loads(seen.body) == BODY
    assert list(json.loads(seen.body)) == ["model", "input", "parameters"]  # sent as given, order kept


async def test_create_workspace_header_and_keep_alive(server: Canned) -> None:
    server.handler = json_answer({"output": {"task_status": "PENDING", "task_id": "t-1"}})
    async with client(server, workspace="ws-1") as c:
        await c.create(BODY)
        await c.create(BODY)
    assert [s.headers["X-DashScope-WorkSpace"] for s in server.seen] == ["ws-1", "ws-1"]
    assert all(s.headers.get("Connection", "keep-alive").lower() == "keep-alive" for s in server.seen)


async def test_create_request_id_from_header_when_body_lacks_it(server: Canned) -> None:
    server.handler = json_answer(
        {"output": {"task_status": "PENDING", "task_id": "t-1"}}, headers={"x-request-id": "hdr"}
    )
    async with client(server) as c:
        assert (await c.create(BODY)).request_id == "hdr"


async def test_create_malformed_200_is_server_error_and_ambiguous(server: Canned) -> None:
    server.handler = json_answer({"output": {"task_id": "t-1"}, "request_id": "r"})  # no task_status
    async with client(server) as c:
        with pytest.raises(ServerError) as info:
            await c.create(BODY)
    assert info.value.code == "MalformedAnswer"
    assert info.value.sent is True
    assert classify(info.value, op="create").action is Action.AMBIGUOUS


# ------------------------------------------------------------------------------------------- get


SUCCEEDED = {
    "request_id": "caa62a12",
    "output": {
        "task_id": "eff1443c",
        "task_status": "SUCCEEDED",
        "submit_time": "2025-09-29 14:18:52.331",
        "scheduled_time": "2025-09-29 14:18:59.290",
        "end_time": "2025-09-29 14:23:39.407",
        "orig_prompt": "a cat",
        "video_url": "https://dashscope-result-sh.oss-accelerate.aliyuncs.com/x.mp4?Expires=1759213419&Signature=a%2Bb",
        "task_metrics": {"TOTAL": 1, "SUCCEEDED": 1, "FAILED": 0},
    },
    "usage": {"duration": 10, "size": "1280*720", "input_video_duration": 0, "output_video_duration": 10, "SR": 720},
}


async def test_get_succeeded(server: Canned) -> None:
    server.handler = json_answer(SUCCEEDED)
    async with client(server) as c:
        info = await c.get("eff1443c")
    (seen,) = server.seen
    assert (seen.method, seen.path, seen.body) == ("GET", "/api/v1/tasks/eff1443c", b"")
    assert seen.headers["Authorization"] == f"Bearer {KEY}"
    assert seen.headers["Accept"] == "application/json; charset=utf-8"
    assert "X-DashScope-Async" not in seen.headers
    assert "Content-Type" not in seen.headers
    assert info.status == "SUCCEEDED" and info.terminal
    assert info.end_time == "2025-09-29 14:23:39.407"
    assert info.usage == SUCCEEDED["usage"]
    assert info.url_expires == 1759213419
    assert info.actual_prompt is None and info.code is None
    assert info.request_id == "caa62a12"


async def test_get_failed_keeps_code_from_output(server: Canned) -> None:
    server.handler = json_answer(
        {
            "request_id": "r",
            "output": {"task_id": "t", "task_status": "FAILED", "code": "InternalError.Algo", "message": "boom"},
        }
    )
    async with client(server) as c:
        info = await c.get("t")
    assert info == TaskInfo(
        task_id="t", status="FAILED", code="InternalError.Algo", message="boom", request_id="r", usage=None
    )


async def test_get_minimal_unknown_and_running(server: Canned) -> None:
    answers = iter(
        [
            {"output": {"task_id": "t", "task_status": "UNKNOWN"}},
            {"output": {"task_id": "t", "task_status": "RUNNING", "submit_time": "x", "scheduled_time": "y"}},
        ]
    )

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response(next(answers))

    server.handler = handler
    async with client(server) as c:
        unknown = await c.get("t")
        running = await c.get("t")
    assert unknown.status == "UNKNOWN" and unknown.terminal and unknown.request_id is None
    assert running.status == "RUNNING" and not running.terminal and running.scheduled_time == "y"


async def test_get_quotes_task_id_into_one_path_segment(server: Canned) -> None:
    server.handler = json_answer({"output": {"task_id": "a/../b?x", "task_status": "UNKNOWN"}})
    async with client(server) as c:
        await c.get("a/../b?x")
    assert server.seen[0].path.startswith("/api/v1/tasks/a")
    assert server.seen[0].query == {}
    with pytest.raises(ValueError):
        async with client(server) as c:
            await c.get("")


async def test_get_accepts_json_with_text_content_type(server: Canned) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(text=json.dumps({"output": {"task_id": "t", "task_status": "PENDING"}}))

    server.handler = handler
    async with client(server) as c:
        assert (await c.get("t")).status == "PENDING"


# ------------------------------------------------------------------------------------------- list / cancel


async def test_list_tasks_formats_window_in_utc8(server: Canned) -> None:
    server.handler = json_answer(
        {
            "total": 3,
            "total_page": 2,
            "page_no": 1,
            "page_size": 2,
            "request_id": "r",
            "data": [
                {
                    "task_id": "a",
                    "status": "RUNNING",
                    "model_name": "wan2.6-t2v",
                    "gmt_create": 1745568428109,
                    "start_time": 1745568428138,
                    "request_id": "ra",
                    "api_key_id": "15",
                },
                {"task_id": "b", "status": "SUCCEEDED", "gmt_create": 1, "end_time": 2},
            ],
        }
    )
    start = datetime(2026, 11, 25, 0, 0, 0, tzinfo=UTC)
    async with client(server) as c:
        page = await c.list_tasks(
            start=start, end=start + timedelta(hours=23), model="wan2.6-t2v", status="RUNNING", page_size=2
        )
    (seen,) = server.seen
    assert (seen.method, seen.path) == ("GET", "/api/v1/tasks")
    assert seen.query == {
        "page_no": "1",
        "page_size": "2",
        "start_time": "20261125080000",
        "end_time": "20261126070000",
        "model_name": "wan2.6-t2v",
        "status": "RUNNING",
    }
    assert page.total == 3 and page.page_no == 1 and page.page_size == 2 and page.has_more
    assert page.items == [
        ListedTask("a", "RUNNING", "wan2.6-t2v", 1745568428109, None, "ra"),
        ListedTask("b", "SUCCEEDED", None, 1, 2, None),
    ]


async def test_list_tasks_without_a_window_sends_none(server: Canned) -> None:
    server.handler = json_answer({"request_id": "r", "total": 0, "data": []})
    async with client(server) as c:
        await c.list_tasks(status="RUNNING")
        with pytest.raises(ValueError, match="both start and end"):
            await c.list_tasks(start=datetime(2026, 1, 1, tzinfo=UTC))
    (seen,) = server.seen  # the server's default window: the last 24 h, no time-zone reading involved
    assert seen.query == {"page_no": "1", "page_size": "100", "status": "RUNNING"}


async def test_list_tasks_accepts_other_timezones_and_omits_filters(server: Canned) -> None:
    server.handler = json_answer({"request_id": "r"})  # data and total missing: an empty page
    tz = timezone(timedelta(hours=-5))
    async with client(server) as c:
        page = await c.list_tasks(start=datetime(2026, 1, 1, 19, tzinfo=tz), end=datetime(2026, 1, 2, 1, tzinfo=tz))
    assert server.seen[0].query["start_time"] == "20260102080000"
    assert "model_name" not in server.seen[0].query and "status" not in server.seen[0].query
    assert page.items == [] and page.total == 0 and not page.has_more


async def test_list_tasks_rejects_naive_long_or_reversed_windows(server: Canned) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    async with client(server) as c:
        with pytest.raises(ValueError, match="24 hours"):
            await c.list_tasks(start=now, end=now + timedelta(hours=24, seconds=1))
        with pytest.raises(ValueError, match="before"):
            await c.list_tasks(start=now, end=now - timedelta(seconds=1))
        with pytest.raises(ValueError, match="aware"):
            await c.list_tasks(start=datetime(2026, 1, 1), end=datetime(2026, 1, 1, 1))
    assert server.seen == []


async def test_cancel_posts_empty_body(server: Canned) -> None:
    server.handler = json_answer({"request_id": "r"})
    async with client(server) as c:
        assert await c.cancel("t-9") is None
    (seen,) = server.seen
    assert (seen.method, seen.path, seen.body) == ("POST", "/api/v1/tasks/t-9/cancel", b"")
    assert seen.headers.get("Content-Length") == "0"
    assert "Content-Type" not in seen.headers
    assert "X-DashScope-Async" not in seen.headers
    assert seen.headers["Authorization"] == f"Bearer {KEY}"


async def test_cancel_of_running_task_is_permanent(server: Canned) -> None:
    server.handler = json_answer(
        {
            "code": "UnsupportedOperation",
            "message": "Failed to cancel the task, please confirm if the task is in PENDING status.",
            "request_id": "r",
        },
        status=400,
    )
    async with client(server) as c:
        with pytest.raises(PermanentError) as info:
            await c.cancel("t")
    assert info.value.code == "UnsupportedOperation" and info.value.status == 400
    assert classify(info.value, op="cancel").action is Action.NEVER


# ------------------------------------------------------------------------------------------- HTTP errors


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "InvalidParameter", PermanentError),
        (400, "DataInspectionFailed", PermanentError),
        (400, "Arrearage", PermanentError),
        (401, "InvalidApiKey", PermanentError),
        (403, "AccessDenied", PermanentError),
        (404, "ModelNotFound", PermanentError),
        (429, "Throttling.RateQuota", RateLimited),
        (429, "Throttling.Concurrency", RateLimited),
        (429, "PrepaidBillOverdue", PermanentError),
        (500, "InternalError", ServerError),
        (503, "ModelUnavailable", ServerError),
        (408, "RequestTimeOut", RequestTimeout),
    ],
)
async def test_error_answers_become_typed_errors(server: Canned, status: int, code: str, cls: type[ApiError]) -> None:
    server.handler = json_answer({"code": code, "message": f"msg {code}", "request_id": "rq"}, status=status)
    async with client(server) as c:
        with pytest.raises(ApiError) as info:
            await c.create(BODY)
    exc = info.value
    assert type(exc) is cls
    assert (exc.status, exc.code, exc.request_id, exc.sent) == (status, code, "rq", True)
    assert f"msg {code}" in exc.message
    assert exc.retry_after is None
    assert_no_key(exc)


async def test_429_retry_after_seconds(server: Canned) -> None:
    server.handler = json_answer(
        {"code": "Throttling.RateQuota", "message": "slow down"}, status=429, headers={"Retry-After": "3"}
    )
    async with client(server) as c:
        with pytest.raises(RateLimited) as info:
            await c.create(BODY)
    assert info.value.retry_after == 3.0
    verdict = classify(info.value, op="create", rng=lambda: 0.5)
    assert verdict.action is Action.RETRY and verdict.delay == 3.0


async def test_429_retry_after_http_date(server: Canned) -> None:
    now = 1_800_000_000.0
    when = datetime.fromtimestamp(now + 7, tz=UTC)
    server.handler = json_answer(
        {"code": "Throttling", "message": "x"}, status=429, headers={"Retry-After": format_datetime(when, usegmt=True)}
    )
    async with DashScopeClient(ApiConfig(server.base, KEY), clock=lambda: now) as c:
        with pytest.raises(RateLimited) as info:
            await c.get("t")
    assert info.value.retry_after == pytest.approx(7.0)


async def test_503_retry_after_is_honoured_for_queries(server: Canned) -> None:
    server.handler = json_answer({"code": "ModelUnavailable", "message": "x"}, status=503, headers={"Retry-After": "2"})
    async with client(server) as c:
        with pytest.raises(ServerError) as info:
            await c.get("t")
    verdict = classify(info.value, op="get")
    assert verdict.action is Action.RETRY and verdict.delay == 2.0


async def test_non_json_502_is_a_clean_server_error(server: Canned) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        html = "<html><head><title>502 Bad Gateway</title></head>\n<body>" + "x" * 5000 + "</body></html>"
        return web.Response(status=502, text=html, content_type="text/html", headers={"x-request-id": "gw"})

    server.handler = handler
    async with client(server) as c:
        with pytest.raises(ServerError) as info:
            await c.get("t")
    exc = info.value
    assert exc.status == 502 and exc.code is None and exc.request_id == "gw"
    assert "non-JSON answer (text/html)" in exc.message and "502 Bad Gateway" in exc.message
    assert len(exc.message) < 400
    assert classify(exc, op="get").action is Action.RETRY


async def test_error_body_echoing_the_key_is_redacted(server: Canned) -> None:
    server.handler = json_answer({"code": "InvalidApiKey", "message": f"Invalid API-key provided: {KEY}"}, status=401)
    async with client(server) as c:
        with pytest.raises(PermanentError) as info:
            await c.get("t")
    assert "***" in str(info.value)
    assert_no_key(info.value)


async def test_error_with_msg_field_and_empty_body(server: Canned) -> None:
    answers = iter([web.json_response({"code": "X", "msg": "from msg"}, status=400), web.Response(status=500)])

    async def handler(request: web.Request) -> web.StreamResponse:
        return next(answers)

    server.handler = handler
    async with client(server) as c:
        with pytest.raises(PermanentError, match="from msg"):
            await c.get("t")
        with pytest.raises(ServerError, match="empty answer"):
            await c.get("t")


# ------------------------------------------------------------------------------------------- transport failures


async def test_connection_refused_is_not_sent() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with DashScopeClient(ApiConfig(f"http://127.0.0.1:{port}/api/v1", KEY)) as c:
        with pytest.raises(ConnectionLost) as info:
            await c.create(BODY)
    exc = info.value
    assert exc.sent is False and exc.status is None
    assert "before the request was sent" in exc.message
    assert exc.__cause__ is None and exc.__suppress_context__
    assert_no_key(exc)
    # nothing reached a server: the create can simply be sent again
    assert classify(exc, op="create", rng=lambda: 0.0).action is Action.RETRY


async def test_connection_reset_after_request_is_ambiguous_for_create(server: Canned) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.abort()
        await asyncio.sleep(0.05)
        return web.Response(text="never arrives")

    server.handler = handler
    async with client(server) as c:
        with pytest.raises(ConnectionLost) as info:
            await c.create(BODY)
        with pytest.raises(ConnectionLost) as info_get:
            await c.get("t")
    assert info.value.sent is True
    assert "after the request was sent" in info.value.message
    assert_no_key(info.value)
    assert classify(info.value, op="create").action is Action.AMBIGUOUS
    assert classify(info_get.value, op="get").action is Action.RETRY
    # the server did receive the create, exactly once: aiohttp never re-sends a POST by itself
    # (it may re-send an idempotent GET once on a dropped pooled connection, which is harmless)
    assert [s.method for s in server.seen].count("POST") == 1
    assert server.seen[0].method == "POST"


async def test_slow_answer_times_out_and_is_ambiguous_for_create(server: Canned) -> None:
    release = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        await release.wait()
        return web.json_response({"output": {"task_id": "late", "task_status": "PENDING"}})

    server.handler = handler
    async with client(server, timeouts=Timeouts(create=0.2, query=0.2)) as c:
        with pytest.raises(RequestTimeout) as info:
            await c.create(BODY)
    release.set()
    exc = info.value
    assert exc.sent is True and exc.status is None
    assert "no answer in time" in exc.message
    assert_no_key(exc)
    assert classify(exc, op="create").action is Action.AMBIGUOUS
    assert classify(exc, op="get", rng=lambda: 1.0).action is Action.RETRY


async def test_odd_json_error_bodies(server: Canned) -> None:
    answers = iter(
        [
            web.json_response({"code": 500, "message": "numeric code"}, status=500),
            web.json_response({"error": {"message": "openai style"}}, status=400),
        ]
    )

    async def handler(request: web.Request) -> web.StreamResponse:
        return next(answers)

    server.handler = handler
    async with client(server) as c:
        with pytest.raises(ServerError) as numeric:
            await c.get("t")
        with pytest.raises(ForeignAnswer) as other:  # no DashScope code: not the service's verdict (issue 13)
            await c.get("t")
    assert numeric.value.code == "500" and "numeric code" in numeric.value.message
    assert other.value.code is None and "openai style" in other.value.message
    assert classify(other.value, op="create").action is Action.AMBIGUOUS
    assert classify(other.value, op="get").action is Action.RETRY


async def test_key_cut_by_the_snippet_limit_leaves_no_fragment(server: Canned) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=502, text="x" * 190 + KEY + "y" * 50, content_type="text/html")

    server.handler = handler
    async with client(server) as c:
        with pytest.raises(ServerError) as info:
            await c.get("t")
    assert KEY[:10] not in info.value.message
    assert_no_key(info.value)


@pytest.mark.parametrize(
    ("raised", "cls", "what"),
    [
        (lambda: aiohttp.ConnectionTimeoutError("connect"), ConnectionLost, "connect timed out"),
        (lambda: aiohttp.SocketTimeoutError("read"), RequestTimeout, "no answer in time"),
        (lambda: aiohttp.ServerDisconnectedError(), ConnectionLost, "connection failed"),
        (lambda: aiohttp.ClientPayloadError("short body"), ConnectionLost, "connection failed"),
        (lambda: OSError(104, "Connection reset by peer"), ConnectionLost, "connection failed"),
    ],
)
async def test_transport_exceptions_map_to_transient_errors(
    monkeypatch: pytest.MonkeyPatch, raised: Callable[[], BaseException], cls: type[ApiError], what: str
) -> None:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise raised()

    async with DashScopeClient(ApiConfig("http://127.0.0.1:9/api/v1", KEY)) as c:
        assert c._session is not None
        monkeypatch.setattr(c._session, "request", boom)
        with pytest.raises(ApiError) as info:
            await c.get("t")
    assert type(info.value) is cls
    assert what in info.value.message
    assert info.value.sent is False  # the request never reached the wire here
    assert_no_key(info.value)
