"""Posting one local file to the upload host a DashScope upload policy names (issue 19), as the official SDK does
(dashscope ``utils/oss_utils.py``): a multipart form with ``OSSAccessKeyId``, ``Signature``, ``policy``, ``key``
(``upload_dir/<file name>``), ``x-oss-object-acl``, ``x-oss-forbid-overwrite``, ``success_action_status=200``,
``x-oss-content-type`` and, last, ``file``; the object is then ``oss://<key>``.

The upload host is object storage, not DashScope: the request goes out on a session of its own that never holds
the API key (API.md decision 11, as downloads), signed by the policy alone. Its answers are object storage's (XML
errors) and become the ``runner.errors`` exceptions ``runner.engine.classify`` judges (``op="upload"``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import aiohttp

from runner.engine.wire import UploadPolicy, error_for_status, snippet
from runner.errors import ApiError, ConnectionLost, RequestTimeout

_XML_FIELD = re.compile(r"<(Code|Message|RequestId)>([^<]*)</\1>")


@dataclass(frozen=True)
class UploadFile:
    """The bytes to post and how to name them."""

    name: str  # the object's name inside the policy's upload_dir (the SDK uses the file's base name)
    data: bytes
    content_type: str


async def post_object(policy: UploadPolicy, file: UploadFile, *, seconds: float, user_agent: str) -> str:
    """POST ``file`` to ``policy.upload_host`` within ``seconds``; its ``oss://`` URL. Raises an ``ApiError``
    subclass on failure."""
    key = f"{policy.upload_dir}/{file.name}"
    form = aiohttp.FormData(quote_fields=False)
    for name, value in (
        ("OSSAccessKeyId", policy.oss_access_key_id),
        ("Signature", policy.signature),
        ("policy", policy.policy),
        ("key", key),
        ("x-oss-object-acl", policy.x_oss_object_acl),
        ("x-oss-forbid-overwrite", policy.x_oss_forbid_overwrite),
        ("success_action_status", "200"),
        ("x-oss-content-type", file.content_type),
    ):
        form.add_field(name, value)
    form.add_field("file", file.data, filename=file.name, content_type=file.content_type)
    headers = {"User-Agent": user_agent, "Accept": "application/json"}  # no credential of DashScope, ever
    limits = aiohttp.ClientTimeout(total=seconds, sock_connect=min(seconds, 10.0))
    try:
        async with (
            aiohttp.ClientSession(timeout=limits) as session,
            session.post(policy.upload_host, data=form, headers=headers, allow_redirects=False) as resp,
        ):
            raw = await resp.read()
            status = resp.status
            answer_headers = resp.headers
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise RequestTimeout(f"upload: no answer in time ({type(exc).__name__})") from None
    except (aiohttp.ClientError, OSError) as exc:
        raise ConnectionLost(f"upload: connection failed ({type(exc).__name__}: {exc})") from None
    if 200 <= status < 300:
        return f"oss://{key}"
    raise _oss_error(status, raw, answer_headers.get("x-oss-request-id"))


def _oss_error(status: int, raw: bytes, request_id: str | None) -> ApiError:
    """Object storage's XML error (``<Code>``, ``<Message>``) as the exception for its status."""
    found = dict(_XML_FIELD.findall(raw.decode("utf-8", "replace")))
    code = found.get("Code") or None
    message = found.get("Message") or (snippet(raw, "") if raw.strip() else f"HTTP {status}")
    rid = found.get("RequestId") or request_id
    return error_for_status(status, code=code, message=f"upload: {message}", request_id=rid, retry_after=None)
