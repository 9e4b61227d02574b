"""The routes of local-file uploads (issue 19; ``runner.emulator.uploads`` holds what they store): the policy
(``GET /api/v1/uploads?action=getPolicy&model=M``, an API route: key, faults and quota as every other) and the
upload host (``POST /oss``, object storage's PostObject: a multipart form, the policy's signature instead of a key,
its size limit and ``x-oss-forbid-overwrite``, XML errors, the faults of a flaky store)."""

from __future__ import annotations

import hashlib
import uuid

from aiohttp import BodyPartReader, web

from runner.emulator.answers import STATE, json_answer
from runner.emulator.protocol import MODEL_NOT_EXIST, ApiFailure
from runner.emulator.state import EmulatorState
from runner.emulator.storage import oss_error, storage_fault
from runner.emulator.uploads import ACCESS_KEY_ID
from runner.models import resolve_model

#: Where the emulated upload host takes its POSTs (``upload_host`` in every policy).
OSS_PATH = "/oss"


async def get_policy(request: web.Request, state: EmulatorState, key: str, rid: str) -> web.StreamResponse:
    """An upload policy for the model: where and how to post one file."""
    if request.query.get("action") != "getPolicy":
        raise ApiFailure(400, "InvalidParameter", "Parameter action must be getPolicy.")
    spec = resolve_model(request.query.get("model") or "")
    if spec is None:
        raise ApiFailure(400, "InvalidParameter", MODEL_NOT_EXIST)
    host = f"{request.scheme}://{request.host}{OSS_PATH}"
    data = state.objects.issue(spec.name, state.api_key_id(key), state.clock(), host)
    return json_answer(200, {"request_id": rid, "data": data}, rid)


async def post_object(request: web.Request) -> web.StreamResponse:
    """PostObject: store the form's ``file`` under its ``key`` when the policy allows it."""
    state = request.app[STATE]
    state.requests["upload"] += 1
    store = state.objects
    fault = state.faults.request_fault("upload")
    error = await storage_fault(request, fault, ("NoSuchBucket", "The specified bucket does not exist."))
    if error is not None:
        return _refuse(state, *error)
    if "Authorization" in request.headers:
        store.with_authorization += 1
    if not request.content_type.startswith("multipart/form-data"):
        return _refuse(state, 400, "InvalidArgument", "The request must be a multipart form (PostObject).")
    fields: dict[str, str] = {}
    data: bytes | None = None
    too_big = False
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            continue
        if part.name != "file":
            fields[part.name or ""] = await part.text()
            continue
        data, too_big = await _read_file(part, store.max_bytes)
        break  # like OSS, fields after the file are not read
    policy = store.policy_of(fields.get("policy", ""))
    now = state.clock()
    if fields.get("OSSAccessKeyId") != ACCESS_KEY_ID:
        return _refuse(
            state, 403, "InvalidAccessKeyId", "The OSS Access Key Id you provided does not exist in our records."
        )
    if not fields.get("Signature") or fields["Signature"] != store.sign(fields.get("policy", "")) or policy is None:
        return _refuse(state, 403, "SignatureDoesNotMatch",
                       "The request signature we calculated does not match the signature you provided.")  # fmt: skip
    if policy.expires_at < now:
        return _refuse(state, 403, "AccessDenied", "Invalid according to Policy: Policy expired.")
    key = fields.get("key", "")
    if not key.startswith(policy.upload_dir + "/") or key == policy.upload_dir + "/":
        return _refuse(state, 403, "AccessDenied",
                       f'Invalid according to Policy: Policy Condition failed: ["starts-with", "$key", '
                       f'"{policy.upload_dir}"]')  # fmt: skip
    if data is None:
        return _refuse(state, 400, "InvalidArgument", "The form has no file field.")
    if too_big:
        return _refuse(state, 400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size.")
    if fields.get("x-oss-forbid-overwrite", "false").lower() == "true" and store.get(key, now) is not None:
        return _refuse(state, 409, "FileAlreadyExists",
                       "The object you specified already exists and can not be overwritten.")  # fmt: skip
    store.put(key, data, policy, fields.get("x-oss-content-type", "application/octet-stream"), now)
    status = int(fields["success_action_status"]) if fields.get("success_action_status") in ("200", "201") else 204
    etag = '"' + hashlib.md5(data).hexdigest().upper() + '"'
    return web.Response(status=status, headers={"ETag": etag, "x-oss-request-id": uuid.uuid4().hex[:24].upper()})


async def _read_file(part: BodyPartReader, limit: int) -> tuple[bytes, bool]:
    """The file part's bytes (up to ``limit``) and whether it was longer; the rest is read and dropped, so the
    client gets its answer instead of a reset."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await part.read_chunk(1 << 16):
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
    return b"".join(chunks), size > limit


def _refuse(state: EmulatorState, status: int, code: str, message: str) -> web.Response:
    state.objects.refused[code] += 1
    return oss_error(status, code, message)
