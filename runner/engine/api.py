"""The DashScope HTTP client: create, query, list and cancel over one ``aiohttp.ClientSession``.

Wire format: API.md §1–§3 and the official SDK's captured requests (§7.4). One ``aiohttp.ClientSession``
per client gives one connection pool with keep-alive for every request of a run. Answers are parsed with
pydantic models at the boundary (unknown keys ignored, optional keys may be missing) and handed on as
frozen dataclasses. Every failure leaves this module as a ``runner.errors.ApiError`` subclass; the API key
never appears in a message, a repr or a chained exception.

Answers are parsed and scrubbed in ``runner.engine.wire``; whether a failure is retried, never retried,
ambiguous or a refusal of the account is decided in ``runner.engine.classify``.

Downloads are not here: ``video_url`` points at object storage and must never get the key (decision 11).
"""

from __future__ import annotations

import asyncio
import json
import platform
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import SimpleNamespace, TracebackType
from typing import Any, TypeVar, get_args
from urllib.parse import quote

import aiohttp

from runner.engine.server_clock import ServerClock
from runner.engine.wire import (
    CreateAnswer,
    Created,
    ListAnswer,
    ListedTask,
    Op,
    TaskAnswer,
    TaskInfo,
    TaskPage,
    UploadPolicy,
    bad_answer,
    format_list_time,
    http_error,
    parse_answer,
    parse_policy,
    redact,
    scrub,
    without_key,
)
from runner.errors import (
    ApiError,
    ConnectionLost,
    ForeignAnswer,
    RequestTimeout,
    ServerError,
    TransientError,
)
from runner.version import version

CREATE_PATH = "/services/aigc/video-generation/video-synthesis"

LIST_WINDOW_MAX = timedelta(hours=24)


_E = TypeVar("_E", bound=ApiError)


USER_AGENT = (
    f"wanbatch/{version()} (aiohttp/{aiohttp.__version__}; python/{platform.python_version()}; "
    f"{platform.system().lower()})"
)


# --------------------------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class Timeouts:
    """Seconds per request kind. ``connect`` bounds the TCP/TLS set-up only, so waiting for a free pooled
    connection never counts as a connect failure; the per-kind values bound the whole request."""

    connect: float = 10.0
    create: float = 60.0
    query: float = 30.0
    list: float = 60.0
    cancel: float = 30.0
    upload: float = 600.0  # issue 19: a local file (≤ 15 MB) posted to the upload host (runner/engine/oss.py)
    pool_size: int = 32

    def total(self, op: Op) -> float:
        return {"create": self.create, "get": self.query, "list": self.list, "cancel": self.cancel,
                "policy": self.query, "upload": self.upload}[op]  # fmt: skip


@dataclass(frozen=True)
class ApiConfig:
    """Where to send requests and with which key. ``base_url`` ends in ``/api/v1`` (as the SDK takes it)."""

    base_url: str
    api_key: str = field(repr=False)
    timeouts: Timeouts = field(default_factory=Timeouts)
    workspace: str | None = None  # sent as X-DashScope-WorkSpace when set
    user_agent: str = USER_AGENT

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        if not self.api_key:
            raise ValueError("api_key is empty")
        if not (self.api_key.isascii() and self.api_key.isprintable()) or any(c.isspace() for c in self.api_key):
            # never echo the value: it is a secret even when malformed (a pasted newline, a stray space)
            raise ValueError("api_key contains whitespace or non-printable characters")

    @property
    def root(self) -> str:
        return self.base_url.rstrip("/")


# --------------------------------------------------------------------------------------------------- client


async def _on_headers_sent(
    session: aiohttp.ClientSession, ctx: SimpleNamespace, params: aiohttp.TraceRequestHeadersSentParams
) -> None:
    flag = ctx.trace_request_ctx
    if isinstance(flag, dict):
        flag["sent"] = True


@dataclass
class Reachability:
    """Whether the service answers at all: since when nothing has (transport failures, 5xx, pages that are not
    the service's), and the last such failure. Any answer of the service, a refusal included, resets it. The run
    waits on an outage up to ``--max-outage`` and then stops (exit 4), never failing a job for it (issue 17)."""

    since: float | None = None  # time.monotonic() of the first failure in a row
    last: str = ""

    def answered(self) -> None:
        self.since = None

    def failed(self, exc: ApiError) -> None:
        if self.since is None:
            self.since = time.monotonic()
        self.last = str(exc)

    def seconds(self) -> float:
        return 0.0 if self.since is None else time.monotonic() - self.since


class DashScopeClient:
    """Async context manager owning one ``aiohttp.ClientSession``.

    ``clock`` gives wall-clock seconds for HTTP-date ``Retry-After`` values (injectable for tests);
    ``server_clock`` learns the server's clock from every answer's ``Date`` header.
    """

    def __init__(
        self,
        config: ApiConfig,
        *,
        clock: Callable[[], float] = time.time,
        server_clock: ServerClock | None = None,
    ) -> None:
        self._config = config
        self._clock = clock
        self.server_clock = server_clock if server_clock is not None else ServerClock(clock)
        self.reach = Reachability()
        self._session: aiohttp.ClientSession | None = None
        # built once: at hundreds of requests a second, rebuilding them per request shows in the profile
        self._header_sets = {op: self._build_headers(op) for op in get_args(Op)}
        t = config.timeouts
        # Creates wait here, before aiohttp builds a request, rather than in the connector's queue: a run
        # that admits thousands of jobs at once (quotas off) held a request object, a timer and a trace per
        # waiting create (~10 KB each: 100 MB at 10,000 jobs), and the connection wait counted against the
        # create's timeout. A quarter of the pool stays free for queries, so polls never queue behind creates.
        self._create_slots = max(1, t.pool_size - max(1, t.pool_size // 4))
        self._create_gate: asyncio.Semaphore | None = None  # made on entry, in the loop that uses it
        self._timeouts = {op: aiohttp.ClientTimeout(total=t.total(op), sock_connect=t.connect) for op in get_args(Op)}

    def __repr__(self) -> str:
        return f"DashScopeClient(base_url={self._config.base_url!r})"

    @property
    def config(self) -> ApiConfig:
        return self._config

    async def __aenter__(self) -> DashScopeClient:
        trace = aiohttp.TraceConfig()
        trace.on_request_headers_sent.append(_on_headers_sent)
        connector = aiohttp.TCPConnector(limit=self._config.timeouts.pool_size, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(
            connector=connector, trace_configs=[trace], raise_for_status=False, auto_decompress=True
        )
        self._create_gate = asyncio.Semaphore(self._create_slots)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ------------------------------------------------------------------------------------------ operations

    async def create(self, body: Mapping[str, Any], extra_headers: Mapping[str, str] | None = None) -> Created:
        """Submit one task. ``body`` is sent as given: ``{"model", "input", "parameters"?}``; ``extra_headers`` join
        the create's own (issue 19: ``X-DashScope-OssResourceResolve`` on a body naming an oss:// file)."""
        payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
        if self._create_gate is None:
            raise RuntimeError("DashScopeClient is not open: use 'async with'")
        async with self._create_gate:
            data, headers = await self._request("create", "POST", CREATE_PATH, body=payload, extra=extra_headers)
        answer = parse_answer(CreateAnswer, data, "create", headers, self._config.api_key)
        return Created(
            task_id=answer.output.task_id,
            status=answer.output.task_status,
            request_id=answer.request_id or headers.get("x-request-id"),
        )

    async def get(self, task_id: str) -> TaskInfo:
        """Query one task (HTTP 200 for every status, FAILED included)."""
        data, headers = await self._request("get", "GET", f"/tasks/{_quote_id(task_id)}")
        answer = parse_answer(TaskAnswer, data, "get", headers, self._config.api_key)
        out = answer.output
        if out.task_id != task_id:  # a cache or proxy answered for another task: this says nothing of ours
            raise bad_answer("get", 200, data, headers, self._config.api_key)
        key = self._config.api_key  # server text is untrusted: its codes, messages and URLs are scrubbed here
        return TaskInfo(
            task_id=out.task_id,
            status=out.task_status,
            submit_time=out.submit_time,
            scheduled_time=out.scheduled_time,
            end_time=out.end_time,
            video_url=scrub(out.video_url, key) or None,
            orig_prompt=without_key(out.orig_prompt, key),  # the user's own text: only the key itself is cut
            actual_prompt=without_key(out.actual_prompt, key),
            usage=answer.usage,
            code=scrub(out.code, key),
            message=scrub(out.message, key),
            request_id=answer.request_id or headers.get("x-request-id"),
        )

    async def list_tasks(
        self,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        model: str | None = None,
        status: str | None = None,
        page_no: int = 1,
        page_size: int = 100,
    ) -> TaskPage:
        """One page of the account's tasks created in ``[start, end]`` (aware datetimes, span ≤ 24 h), or
        without both in the server's default window, the last 24 hours (no time-zone reading involved)."""
        params: dict[str, str] = {"page_no": str(page_no), "page_size": str(page_size)}
        if (start is None) != (end is None):
            raise ValueError("list_tasks: give both start and end, or neither")
        if start is not None and end is not None:
            if end < start:
                raise ValueError("list_tasks: end is before start")
            if end - start > LIST_WINDOW_MAX:
                raise ValueError("list_tasks: the window may not exceed 24 hours")
            params["start_time"] = format_list_time(start)
            params["end_time"] = format_list_time(end)
        if model:
            params["model_name"] = model
        if status:
            params["status"] = status
        data, headers = await self._request("list", "GET", "/tasks", params=params)
        answer = parse_answer(ListAnswer, data, "list", headers, self._config.api_key)
        items = [
            ListedTask(
                task_id=i.task_id,
                status=i.status,
                model_name=i.model_name,
                gmt_create_ms=i.gmt_create,
                end_time_ms=i.end_time,
                request_id=i.request_id,
            )
            for i in answer.data
        ]
        return TaskPage(items=items, total=answer.total, page_no=answer.page_no, page_size=answer.page_size)

    async def cancel(self, task_id: str) -> None:
        """Cancel a PENDING task; a non-PENDING one answers 400 UnsupportedOperation (PermanentError)."""
        await self._request("cancel", "POST", f"/tasks/{_quote_id(task_id)}/cancel")

    async def upload_policy(self, model: str) -> UploadPolicy:
        """Issue 19: where and how to upload a local file for ``model`` (``GET /uploads?action=getPolicy``, as the
        SDK asks). The file itself goes to the policy's upload host, never with the key (``runner.engine.oss``)."""
        data, headers = await self._request("policy", "GET", "/uploads", params={"action": "getPolicy", "model": model})
        return parse_policy(data, headers, self._config.api_key)

    # ------------------------------------------------------------------------------------------ transport

    def _build_headers(self, op: Op) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self._config.api_key}",
            "Accept": "application/json; charset=utf-8",
            "User-Agent": self._config.user_agent,
        }
        if op == "create":
            headers["X-DashScope-Async"] = "enable"
            headers["Content-Type"] = "application/json; charset=utf-8"
        if self._config.workspace:
            headers["X-DashScope-WorkSpace"] = self._config.workspace
        return headers

    async def _request(
        self,
        op: Op,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> tuple[bytes, Mapping[str, str]]:
        """Send one request; the body of a 2xx answer with its headers (case-insensitive), or an ApiError.
        Never retries."""
        if self._session is None:
            raise RuntimeError("DashScopeClient is not open: use 'async with'")
        timeout = self._timeouts[op]
        flag: dict[str, bool] = {"sent": False}
        url = self._config.root + path
        sent_at = self._clock()
        try:
            async with self._session.request(
                method,
                url,
                params=params,
                data=body,
                headers={**self._header_sets[op], **extra} if extra else self._header_sets[op],  # aiohttp copies them
                timeout=timeout,
                trace_request_ctx=flag,
                allow_redirects=False,
                # a body-less POST (cancel) goes out as the SDK sends it: Content-Length 0, no Content-Type
                skip_auto_headers=("Content-Type",) if body is None else (),
            ) as resp:
                raw = await resp.read()
                status = resp.status
                headers: Mapping[str, str] = resp.headers  # a case-insensitive multidict, kept after release
        except aiohttp.ConnectionTimeoutError as exc:  # no connection within ``connect``: nothing was sent
            raise self._transport_error(ConnectionLost, op, exc, flag["sent"], "connect timed out") from None
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise self._transport_error(RequestTimeout, op, exc, flag["sent"], "no answer in time") from None
        except aiohttp.ClientError as exc:
            raise self._transport_error(ConnectionLost, op, exc, flag["sent"], "connection failed") from None
        except OSError as exc:
            raise self._transport_error(ConnectionLost, op, exc, flag["sent"], "connection failed") from None
        self.server_clock.observe(headers.get("date"), sent_at, self._clock())
        if 200 <= status < 300:
            self.reach.answered()
            return raw, headers
        error = http_error(op, status, raw, headers, self._config.api_key, now=self._clock())
        if isinstance(error, ServerError | ForeignAnswer):
            raise self._unreached(error)
        self.reach.answered()  # the service itself answered (a refusal, a 429): it is there
        raise error

    def _unreached(self, exc: _E) -> _E:
        """Note an answer that was not the service's (the outage clock) and hand ``exc`` back to raise."""
        self.reach.failed(exc)
        return exc

    def _transport_error(
        self, cls: type[TransientError], op: Op, exc: BaseException, sent: bool, what: str
    ) -> TransientError:
        detail = str(exc) or type(exc).__name__
        where = "after the request was sent" if sent else "before the request was sent"
        message = redact(f"{op}: {what} {where} ({type(exc).__name__}: {detail})", self._config.api_key)
        return self._unreached(cls(message, sent=sent))


def _quote_id(task_id: str) -> str:
    if not task_id:
        raise ValueError("empty task id")
    return quote(task_id, safe="")
