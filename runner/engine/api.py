"""The DashScope HTTP client (create, query, list, cancel) and the ONE place that classifies failures.

Wire format: API.md §1–§3 and the official SDK's captured requests (§7.4). One ``aiohttp.ClientSession``
per client gives one connection pool with keep-alive for every request of a run. Answers are parsed with
pydantic models at the boundary (unknown keys ignored, optional keys may be missing) and handed on as
frozen dataclasses. Every failure leaves this module as a ``runner.errors.ApiError`` subclass; the API key
never appears in a message, a repr or a chained exception.

``classify`` decides RETRY / NEVER / AMBIGUOUS. AMBIGUOUS exists because the create endpoint has no
idempotency key: a create whose answer was lost after the request left (timeout, reset, 5xx) may have made
a paid task, so the pipeline must reconcile through the task list before it sends again (ARCHITECTURE.md).

Downloads are not here: ``video_url`` points at object storage and must never get the key (decision 11).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import platform
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from importlib import metadata
from types import SimpleNamespace, TracebackType
from typing import Any, ClassVar, Literal, TypeVar, get_args
from urllib.parse import parse_qs, quote, urlsplit

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from runner.engine.poller import FINAL_STATUSES
from runner.engine.server_clock import ServerClock
from runner.errors import (
    ApiError,
    ConnectionLost,
    ForeignAnswer,
    PermanentError,
    RateLimited,
    RequestTimeout,
    ServerError,
    TransientError,
    refusal_scope,
)

__all__ = [
    "CREATE_PATH",
    "TERMINAL_STATUSES",
    "UTC8",
    "Action",
    "ApiConfig",
    "Backoff",
    "Created",
    "DashScopeClient",
    "ListedTask",
    "Op",
    "TaskInfo",
    "TaskPage",
    "Timeouts",
    "Verdict",
    "classify",
    "classify_task_failure",
    "format_list_time",
    "parse_retry_after",
    "parse_task_time",
    "url_expires",
    "valid_task_id",
]

CREATE_PATH = "/services/aigc/video-generation/video-synthesis"

#: A task in one of these states never changes again (API.md §2); one definition, in the poller.
TERMINAL_STATUSES = FINAL_STATUSES

#: Task times and list windows are read in UTC+8 (API.md decision 6 and 9).
UTC8 = timezone(timedelta(hours=8), "UTC+8")

#: The list endpoint refuses windows longer than this (API.md §3.1).
LIST_WINDOW_MAX = timedelta(hours=24)

Op = Literal["create", "get", "list", "cancel"]


def _version() -> str:
    try:
        return metadata.version("wanbatch")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0"


USER_AGENT = (
    f"wanbatch/{_version()} (aiohttp/{aiohttp.__version__}; python/{platform.python_version()}; "
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
    pool_size: int = 32

    def total(self, op: Op) -> float:
        return {"create": self.create, "get": self.query, "list": self.list, "cancel": self.cancel}[op]


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


# --------------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Created:
    task_id: str
    status: str
    request_id: str | None


@dataclass(frozen=True)
class TaskInfo:
    """One task as the query answers it. Times are the server's strings (UTC+8); see ``parse_task_time``."""

    task_id: str
    status: str
    submit_time: str | None = None
    scheduled_time: str | None = None
    end_time: str | None = None
    video_url: str | None = None
    orig_prompt: str | None = None
    actual_prompt: str | None = None
    usage: dict[str, Any] | None = None
    code: str | None = None
    message: str | None = None
    request_id: str | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def url_expires(self) -> int | None:
        """Epoch seconds at which ``video_url`` stops working, when the URL says so."""
        return url_expires(self.video_url)


@dataclass(frozen=True)
class ListedTask:
    task_id: str
    status: str
    model_name: str | None
    gmt_create_ms: int | None
    end_time_ms: int | None
    request_id: str | None


@dataclass(frozen=True)
class TaskPage:
    items: list[ListedTask]
    total: int
    page_no: int
    page_size: int

    @property
    def has_more(self) -> bool:
        return self.page_no * self.page_size < self.total and bool(self.items)


def parse_task_time(text: str | None) -> datetime | None:
    """``"2025-09-29 14:18:52.331"`` (UTC+8) → an aware datetime in UTC; None when absent or unreadable."""
    if not text:
        return None
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(text.strip(), fmt).replace(tzinfo=UTC8).astimezone(UTC)
        except ValueError:
            continue
    return None


def url_expires(url: str | None) -> int | None:
    """The ``Expires=`` epoch seconds of a signed OSS URL, or None."""
    if not url:
        return None
    values = parse_qs(urlsplit(url).query).get("Expires")
    if not values:
        return None
    try:
        return int(values[0])
    except ValueError:
        return None


def format_list_time(moment: datetime) -> str:
    """An aware datetime → ``YYYYMMDDhhmmss`` in UTC+8, as the list endpoint reads it (decision 9)."""
    if moment.tzinfo is None:
        raise ValueError("list_tasks needs timezone-aware datetimes")
    return moment.astimezone(UTC8).strftime("%Y%m%d%H%M%S")


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds (``"3"``, ``"1.5"``) or an HTTP date → seconds to wait (≥ 0), else None."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds and seconds != float("inf") else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


# --------------------------------------------------------------------------------------------------- wire models


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


_M = TypeVar("_M", bound=_Wire)
_E = TypeVar("_E", bound=ApiError)


#: What a task id may look like (the service's are UUIDs): an empty or odd one proves nothing (issue 13).
TASK_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"


_TASK_ID = re.compile(TASK_ID_PATTERN)


def valid_task_id(task_id: str | None) -> bool:
    """True when ``task_id`` can be a task's id (what a ledger holds may come from an older, laxer version)."""
    return bool(task_id) and _TASK_ID.match(task_id or "") is not None


class _CreateOutput(_Wire):
    task_id: str = Field(pattern=TASK_ID_PATTERN)
    task_status: str


class _CreateAnswer(_Wire):
    output: _CreateOutput
    request_id: str | None = None


class _TaskOutput(_Wire):
    task_id: str
    task_status: str
    submit_time: str | None = None
    scheduled_time: str | None = None
    end_time: str | None = None
    video_url: str | None = None
    orig_prompt: str | None = None
    actual_prompt: str | None = None
    code: str | None = None
    message: str | None = None


class _TaskAnswer(_Wire):
    output: _TaskOutput
    usage: dict[str, Any] | None = None
    request_id: str | None = None


class _ListItem(_Wire):
    task_id: str
    status: str
    model_name: str | None = None
    gmt_create: int | None = None
    end_time: int | None = None
    request_id: str | None = None


class _ListAnswer(_Wire):
    data: list[_ListItem] = Field(default_factory=list)
    total: int = 0
    page_no: int = 1
    page_size: int = 10
    request_id: str | None = None


class _ErrorAnswer(_Wire):
    code: str | int | None = None
    message: str | None = None
    msg: str | None = None
    request_id: str | None = None


# --------------------------------------------------------------------------------------------------- errors

#: 429 codes that are billing states, not rates: waiting does not help.
_BILLING_429 = frozenset({"CommodityNotPurchased", "PrepaidBillOverdue", "PostpaidBillOverdue"})


#: Anything that looks like a DashScope key (``sk-…``, ``sk-ws-…``): server text is untrusted and may quote one.
_KEYLIKE = re.compile(r"sk-[A-Za-z0-9][A-Za-z0-9_-]{5,}")


def _redact(text: str, secret: str) -> str:
    """``text`` with the API key and every key-like ``sk-…`` token replaced by ``***`` (issue 17)."""
    if secret:
        text = text.replace(secret, "***")
    return _KEYLIKE.sub("***", text)


def _scrub(text: str | None, secret: str) -> str | None:
    return None if text is None else _redact(text, secret)


def _without(text: str | None, secret: str) -> str | None:
    return text.replace(secret, "***") if text is not None and secret and secret in text else text


def _snippet(raw: bytes, secret: str, limit: int = 200) -> str:
    """The start of a body for a message, secret removed BEFORE cutting (so no partial secret survives)."""
    text = _redact(" ".join(raw.decode("utf-8", "replace").split()), secret)
    return text if len(text) <= limit else text[:limit] + "…"


def _error_for_status(
    status: int,
    *,
    code: str | None,
    message: str,
    request_id: str | None,
    retry_after: float | None,
) -> ApiError:
    """The exception for an HTTP error answer (the answer arrived, so ``sent`` is True)."""
    kw: dict[str, Any] = {"status": status, "code": code, "request_id": request_id, "sent": True}
    if status == 429:
        if code in _BILLING_429:
            return PermanentError(message, **kw)
        return RateLimited(message, retry_after=retry_after, **kw)
    if status == 408:
        return RequestTimeout(message, retry_after=retry_after, **kw)
    if status >= 500:
        return ServerError(message, retry_after=retry_after, **kw)
    if code is None:  # not the service's verdict: a proxy's or gateway's page (issue 13)
        return ForeignAnswer(message, retry_after=retry_after, **kw)
    return PermanentError(message, **kw)


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

    async def create(self, body: Mapping[str, Any]) -> Created:
        """Submit one task. ``body`` is sent as given: ``{"model", "input", "parameters"?}``."""
        payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
        if self._create_gate is None:
            raise RuntimeError("DashScopeClient is not open: use 'async with'")
        async with self._create_gate:
            data, headers = await self._request("create", "POST", CREATE_PATH, body=payload)
        answer = self._parse(_CreateAnswer, data, "create", headers)
        return Created(
            task_id=answer.output.task_id,
            status=answer.output.task_status,
            request_id=answer.request_id or headers.get("x-request-id"),
        )

    async def get(self, task_id: str) -> TaskInfo:
        """Query one task (HTTP 200 for every status, FAILED included)."""
        data, headers = await self._request("get", "GET", f"/tasks/{_quote_id(task_id)}")
        answer = self._parse(_TaskAnswer, data, "get", headers)
        out = answer.output
        if out.task_id != task_id:  # a cache or proxy answered for another task: this says nothing of ours
            raise self._bad_answer("get", 200, data, headers)
        key = self._config.api_key  # server text is untrusted: its codes, messages and URLs are scrubbed here
        return TaskInfo(
            task_id=out.task_id,
            status=out.task_status,
            submit_time=out.submit_time,
            scheduled_time=out.scheduled_time,
            end_time=out.end_time,
            video_url=_scrub(out.video_url, key) or None,
            orig_prompt=_without(out.orig_prompt, key),  # the user's own text: only the key itself is cut
            actual_prompt=_without(out.actual_prompt, key),
            usage=answer.usage,
            code=_scrub(out.code, key),
            message=_scrub(out.message, key),
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
        answer = self._parse(_ListAnswer, data, "list", headers)
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
                headers=self._header_sets[op],  # aiohttp copies them into its own multidict
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
        error = self._http_error(op, status, raw, headers)
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
        message = _redact(f"{op}: {what} {where} ({type(exc).__name__}: {detail})", self._config.api_key)
        return self._unreached(cls(message, sent=sent))

    def _http_error(self, op: Op, status: int, raw: bytes, headers: Mapping[str, str]) -> ApiError:
        retry_after = parse_retry_after(headers.get("retry-after"), now=self._clock())
        code: str | None = None
        message: str | None = None
        request_id = headers.get("x-request-id")
        try:
            err = _ErrorAnswer.model_validate_json(raw)
        except ValidationError:
            content_type = headers.get("content-type", "?").split(";")[0]
            message = (
                f"non-JSON answer ({content_type}): {_snippet(raw, self._config.api_key)}"
                if raw.strip()
                else "empty answer"
            )
        else:
            code = None if err.code is None else _redact(str(err.code), self._config.api_key)
            message = err.message or err.msg or (None if code else _snippet(raw, self._config.api_key))
            request_id = err.request_id or request_id
        message = _redact(f"{op}: {message or 'HTTP ' + str(status)}", self._config.api_key)
        return _error_for_status(status, code=code, message=message, request_id=request_id, retry_after=retry_after)

    def _bad_answer(self, op: Op, status: int, raw: bytes, headers: Mapping[str, str]) -> ApiError:
        """A 2xx whose body is not the documented shape: a server fault (AMBIGUOUS for a create)."""
        message = f"{op}: unexpected answer: {_snippet(raw, self._config.api_key)}"
        return ServerError(message, status=status, code="MalformedAnswer", request_id=headers.get("x-request-id"))

    def _parse(self, model: type[_M], raw: bytes, op: Op, headers: Mapping[str, str]) -> _M:
        """A 2xx body as ``model``, parsed and validated in one pass; not JSON or not that shape (an empty
        body included) is a malformed answer."""
        try:
            return model.model_validate_json(raw)
        except ValidationError:
            raise self._bad_answer(op, 200, raw, headers) from None


def _quote_id(task_id: str) -> str:
    if not task_id:
        raise ValueError("empty task id")
    return quote(task_id, safe="")


# --------------------------------------------------------------------------------------------------- classify


class Action(StrEnum):
    RETRY = "retry"  # send the same request again after ``delay`` seconds
    NEVER = "never"  # give up: record the failure
    AMBIGUOUS = "ambiguous"  # a create that may have made a task: reconcile through the list first
    REFUSED = "refused"  # the account (or one model for it) refuses work: stop it, blame no job (exit 4)


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: ``delay = U(0, 1) * min(cap, base * factor**attempt)``.

    ``max_attempts`` bounds retries of server/transport failures; ``max_throttled`` bounds 429 retries
    (higher, since the limiter slows down on every 429 and a throttle proves nothing was created).
    """

    base: float = 1.0
    factor: float = 2.0
    cap: float = 60.0
    max_attempts: int = 6
    max_throttled: int = 30

    def delay(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        ceiling = min(self.cap, self.base * self.factor ** max(0, attempt))
        return rng() * ceiling


@dataclass(frozen=True)
class Verdict:
    """What to do after a failure. ``delay`` is seconds to wait before a RETRY (0 otherwise)."""

    action: Action
    delay: float = 0.0
    reason: str = ""
    scope: str = ""  # for REFUSED: "account" or "model"

    RETRY: ClassVar[Action] = Action.RETRY
    NEVER: ClassVar[Action] = Action.NEVER
    AMBIGUOUS: ClassVar[Action] = Action.AMBIGUOUS

    @property
    def kind(self) -> Action:
        return self.action


DEFAULT_BACKOFF = Backoff()


def classify(
    exc: BaseException,
    *,
    op: Op,
    attempt: int = 0,
    backoff: Backoff = DEFAULT_BACKOFF,
    rng: Callable[[], float] = random.random,
) -> Verdict:
    """Decide RETRY / NEVER / AMBIGUOUS for a failed request. ``attempt`` counts earlier retries (0 first).

    * an account-level answer (``errors.refusal_scope``: a wrong key, arrears, a model not open to the account)
      → REFUSED with its scope: the account, not the job, refused; nothing was made.
    * PermanentError (4xx, billing 429s) → NEVER: the same request gets the same answer.
    * RateLimited → RETRY after Retry-After, else backoff; a 429 proves no task was made, even for create.
    * ServerError / RequestTimeout / ConnectionLost → for ``op="create"`` with ``sent`` → AMBIGUOUS (a paid
      task may exist; no idempotency key); otherwise RETRY (Retry-After honoured on 503s).
    * Anything else (a bug, an unexpected exception) → AMBIGUOUS for a create, NEVER otherwise.
    """
    if isinstance(exc, ApiError) and (scope := refusal_scope(exc)) is not None:
        return Verdict(Action.REFUSED, reason=f"the {scope} refused: {exc.code or exc.status}", scope=scope)
    if isinstance(exc, PermanentError):
        return Verdict(Action.NEVER, reason=f"refused: {exc.code or exc.status}")
    if isinstance(exc, RateLimited):
        if attempt >= backoff.max_throttled:
            return Verdict(Action.NEVER, reason=f"still throttled after {attempt} retries")
        delay = exc.retry_after if exc.retry_after is not None else backoff.delay(attempt, rng)
        return Verdict(Action.RETRY, delay=delay, reason=f"throttled: {exc.code or 429}")
    if isinstance(exc, TransientError):
        if op == "create" and exc.sent:
            return Verdict(Action.AMBIGUOUS, reason=f"create may have reached the server: {type(exc).__name__}")
        if attempt >= backoff.max_attempts:
            return Verdict(Action.NEVER, reason=f"gave up after {attempt} retries: {type(exc).__name__}")
        delay = exc.retry_after if exc.retry_after is not None else backoff.delay(attempt, rng)
        return Verdict(Action.RETRY, delay=delay, reason=type(exc).__name__)
    if isinstance(exc, ApiError):  # a bare ApiError: unknown kind, be careful
        if op == "create" and exc.sent:
            return Verdict(Action.AMBIGUOUS, reason="unclassified API error on create")
        return Verdict(Action.NEVER, reason="unclassified API error")
    if op == "create":
        return Verdict(Action.AMBIGUOUS, reason=f"unexpected {type(exc).__name__} during create")
    return Verdict(Action.NEVER, reason=f"unexpected {type(exc).__name__}")


#: FAILED task codes worth a new submission (a failed task is not billed; ERRORS.md).
RETRYABLE_TASK_CODES = frozenset(
    {"InternalError", "InternalError.Algo", "InternalError.Timeout", "SystemError", "ModelServiceFailed"}
)


def classify_task_failure(
    code: str | None,
    *,
    attempt: int = 0,
    backoff: Backoff = DEFAULT_BACKOFF,
    rng: Callable[[], float] = random.random,
) -> Verdict:
    """A task ended FAILED with ``code``: submit it again (server-side faults) or keep the failure.

    Content, parameter and account problems (DataInspectionFailed, IPInfringementSuspect, InvalidParameter,
    Arrearage, …) fail again the same way; unknown codes are final too, so nothing is paid for twice by guess.
    """
    if code in RETRYABLE_TASK_CODES:
        if attempt >= backoff.max_attempts:
            return Verdict(Action.NEVER, reason=f"task failed {attempt + 1} times: {code}")
        return Verdict(Action.RETRY, delay=backoff.delay(attempt, rng), reason=f"server-side task failure: {code}")
    return Verdict(Action.NEVER, reason=f"task failed: {code or 'no code'}")
