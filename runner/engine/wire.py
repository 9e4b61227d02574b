"""What the service answers, parsed: the results handed on (frozen dataclasses), the pydantic models of the
wire at the boundary (unknown keys ignored, optional keys may be missing), the server's times and URLs, and
the scrubbing of server text. The one place answers are parsed: every code, message and URL the service sends
is scrubbed here of the API key and any ``sk-…`` token before anything else sees it (issue 17).
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from runner.errors import (
    ApiError,
    ForeignAnswer,
    PermanentError,
    RateLimited,
    RequestTimeout,
    ServerError,
)
from runner.store.download import url_expiry
from runner.times import UTC8

#: The kinds of request, as timeouts, limiters and ``classify`` tell them apart. ``policy`` asks DashScope where to
#: upload a local file, ``upload`` posts it to that object store (issue 19: never with the key).
Op = Literal["create", "get", "list", "cancel", "policy", "upload"]

#: A task in one of these states never changes again (API.md §2).
TERMINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED", "CANCELED", "UNKNOWN"})


#: The list endpoint refuses windows longer than this (API.md §3.1).
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
    def url_expires(self) -> float | None:
        """Epoch seconds (the server's clock) at which ``video_url`` stops working, when the URL says so."""
        return url_expiry(self.video_url) if self.video_url else None


@dataclass(frozen=True)
class ListedTask:
    task_id: str
    status: str
    model_name: str | None
    gmt_create_ms: int | None
    end_time_ms: int | None
    request_id: str | None


@dataclass(frozen=True)
class UploadPolicy:
    """Where and how to upload one local file (the getPolicy answer's ``data``; dashscope ``utils/oss_utils.py``):
    the form fields the upload host checks, the folder the object's key must lie in, and its size limit."""

    upload_host: str
    upload_dir: str
    policy: str
    signature: str
    oss_access_key_id: str
    x_oss_object_acl: str
    x_oss_forbid_overwrite: str
    max_file_size_mb: float | None
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


class WireModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


_M = TypeVar("_M", bound=WireModel)


#: What a task id may look like (the service's are UUIDs): an empty or odd one proves nothing (issue 13).
TASK_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"


TASK_ID = re.compile(TASK_ID_PATTERN)


def valid_task_id(task_id: str | None) -> bool:
    """True when ``task_id`` can be a task's id (what a ledger holds may come from an older, laxer version)."""
    return bool(task_id) and TASK_ID.match(task_id or "") is not None


class CreateOutput(WireModel):
    task_id: str = Field(pattern=TASK_ID_PATTERN)
    task_status: str


class CreateAnswer(WireModel):
    output: CreateOutput
    request_id: str | None = None


class TaskOutput(WireModel):
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


class TaskAnswer(WireModel):
    output: TaskOutput
    usage: dict[str, Any] | None = None
    request_id: str | None = None


class ListItem(WireModel):
    task_id: str
    status: str
    model_name: str | None = None
    gmt_create: int | None = None
    end_time: int | None = None
    request_id: str | None = None


class ListAnswer(WireModel):
    data: list[ListItem] = Field(default_factory=list)
    total: int = 0
    page_no: int = 1
    page_size: int = 10
    request_id: str | None = None


class PolicyData(WireModel):
    upload_host: str = Field(pattern=r"^https?://")
    upload_dir: str = Field(min_length=1)
    policy: str
    signature: str
    oss_access_key_id: str
    x_oss_object_acl: str = "private"
    x_oss_forbid_overwrite: str = "true"
    max_file_size_mb: float | None = None


class PolicyAnswer(WireModel):
    data: PolicyData
    request_id: str | None = None


def parse_policy(raw: bytes, headers: Mapping[str, str], key: str) -> UploadPolicy:
    """The getPolicy answer as an ``UploadPolicy`` (the host scrubbed like any URL the service sends)."""
    answer = parse_answer(PolicyAnswer, raw, "policy", headers, key)
    d = answer.data
    return UploadPolicy(
        upload_host=redact(d.upload_host, key),
        upload_dir=d.upload_dir.strip("/"),
        policy=d.policy,
        signature=d.signature,
        oss_access_key_id=d.oss_access_key_id,
        x_oss_object_acl=d.x_oss_object_acl,
        x_oss_forbid_overwrite=d.x_oss_forbid_overwrite,
        max_file_size_mb=d.max_file_size_mb,
        request_id=answer.request_id or headers.get("x-request-id"),
    )


class ErrorAnswer(WireModel):
    code: str | int | None = None
    message: str | None = None
    msg: str | None = None
    request_id: str | None = None


# --------------------------------------------------------------------------------------------------- errors

#: 429 codes that are billing states, not rates: waiting does not help.
BILLING_429 = frozenset({"CommodityNotPurchased", "PrepaidBillOverdue", "PostpaidBillOverdue"})


#: Anything that looks like a DashScope key (``sk-…``, ``sk-ws-…``): server text is untrusted and may quote one.
KEYLIKE = re.compile(r"sk-[A-Za-z0-9][A-Za-z0-9_-]{5,}")


def redact(text: str, secret: str) -> str:
    """``text`` with the API key and every key-like ``sk-…`` token replaced by ``***`` (issue 17)."""
    if secret:
        text = text.replace(secret, "***")
    return KEYLIKE.sub("***", text)


def scrub(text: str | None, secret: str) -> str | None:
    return None if text is None else redact(text, secret)


def without_key(text: str | None, secret: str) -> str | None:
    return text.replace(secret, "***") if text is not None and secret and secret in text else text


def snippet(raw: bytes, secret: str, limit: int = 200) -> str:
    """The start of a body for a message, secret removed BEFORE cutting (so no partial secret survives)."""
    text = redact(" ".join(raw.decode("utf-8", "replace").split()), secret)
    return text if len(text) <= limit else text[:limit] + "…"


def error_for_status(
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
        if code in BILLING_429:
            return PermanentError(message, **kw)
        return RateLimited(message, retry_after=retry_after, **kw)
    if status == 408:
        return RequestTimeout(message, retry_after=retry_after, **kw)
    if status >= 500:
        return ServerError(message, retry_after=retry_after, **kw)
    if code is None:  # not the service's verdict: a proxy's or gateway's page (issue 13)
        return ForeignAnswer(message, retry_after=retry_after, **kw)
    return PermanentError(message, **kw)


def http_error(op: Op, status: int, raw: bytes, headers: Mapping[str, str], key: str, *, now: float) -> ApiError:
    """The exception for an HTTP error answer: the service's code and message when it sent them (scrubbed), the
    start of the page otherwise; ``Retry-After`` read against ``now`` (epoch seconds)."""
    retry_after = parse_retry_after(headers.get("retry-after"), now=now)
    code: str | None = None
    message: str | None = None
    request_id = headers.get("x-request-id")
    try:
        err = ErrorAnswer.model_validate_json(raw)
    except ValidationError:
        content_type = headers.get("content-type", "?").split(";")[0]
        message = f"non-JSON answer ({content_type}): {snippet(raw, key)}" if raw.strip() else "empty answer"
    else:
        code = None if err.code is None else redact(str(err.code), key)
        message = err.message or err.msg or (None if code else snippet(raw, key))
        request_id = err.request_id or request_id
    message = redact(f"{op}: {message or 'HTTP ' + str(status)}", key)
    return error_for_status(status, code=code, message=message, request_id=request_id, retry_after=retry_after)


def bad_answer(op: Op, status: int, raw: bytes, headers: Mapping[str, str], key: str) -> ApiError:
    """A 2xx whose body is not the documented shape: a server fault (AMBIGUOUS for a create)."""
    message = f"{op}: unexpected answer: {snippet(raw, key)}"
    return ServerError(message, status=status, code="MalformedAnswer", request_id=headers.get("x-request-id"))


def parse_answer(model: type[_M], raw: bytes, op: Op, headers: Mapping[str, str], key: str) -> _M:
    """A 2xx body as ``model``, parsed and validated in one pass; not JSON or not that shape (an empty body
    included) is a malformed answer."""
    try:
        return model.model_validate_json(raw)
    except ValidationError:
        raise bad_answer(op, 200, raw, headers, key) from None
