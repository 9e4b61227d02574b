"""The engine's rules for uploads of local files (issue 19): how their failures classify (idempotent: never
ambiguous; the upload host's 403 is not the account's), when a refused create means the file is gone, how the policy
answer is read, how object storage's errors are read, and which file a request names."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.engine.classify import Action, classify, upload_lost
from runner.engine.oss import _oss_error
from runner.engine.uploads import local_file
from runner.engine.wire import parse_policy
from runner.errors import ApiError, ConnectionLost, ForeignAnswer, PermanentError, RequestTimeout, ServerError

HALF = lambda: 0.5  # noqa: E731 - a fixed "random" source
URL = "oss://dashscope-instant/abc/2026-01-01/u/voice.wav"


@pytest.mark.parametrize("op", ["policy", "upload"])
@pytest.mark.parametrize("exc", [ConnectionLost("x", sent=True), RequestTimeout("x"), ServerError("x", status=503)])
def test_an_upload_that_may_have_arrived_is_retried_never_ambiguous(op: str, exc: ApiError) -> None:
    assert classify(exc, op=op, attempt=0, rng=HALF).action is Action.RETRY  # type: ignore[arg-type]
    assert classify(exc, op=op, attempt=6, rng=HALF).action is Action.NEVER  # type: ignore[arg-type]


def test_the_upload_hosts_403_is_about_the_upload_not_the_account() -> None:
    denied = PermanentError("upload: Policy expired.", status=403, code="AccessDenied")
    assert classify(denied, op="upload").action is Action.NEVER
    # the same answer from DashScope (the policy route) is the account refusing work
    assert classify(denied, op="policy").action is Action.REFUSED
    key = PermanentError("policy: Invalid API-key provided.", status=401, code="InvalidApiKey")
    assert classify(key, op="policy").action is Action.REFUSED


def test_a_create_refused_naming_its_oss_url_means_the_file_is_gone() -> None:
    gone = PermanentError(f"create: The oss resource {URL} does not exist.", status=400, code="InvalidParameter")
    assert upload_lost(gone, URL)
    assert not upload_lost(gone, URL.replace("voice", "other"))
    size = PermanentError("create: The size is not match", status=400, code="InvalidParameter")
    assert not upload_lost(size, URL)
    assert not upload_lost(ServerError(f"create: {URL}", status=500), URL)  # proves nothing: reconcile's


def test_the_policy_answer_is_read_and_checked() -> None:
    raw = (
        b'{"request_id": "r1", "data": {"policy": "cG9s", "signature": "c2ln", "upload_dir": "dashscope-instant/a/b/",'
        b' "upload_host": "https://dashscope-file-mgr.oss-cn-beijing.aliyuncs.com", "expire_in_seconds": 300,'
        b' "max_file_size_mb": 100, "capacity_limit_mb": 999999999, "oss_access_key_id": "LTAI",'
        b' "x_oss_object_acl": "private", "x_oss_forbid_overwrite": "true"}}'
    )
    p = parse_policy(raw, {}, "sk-secret")
    assert (p.upload_dir, p.max_file_size_mb, p.request_id) == ("dashscope-instant/a/b", 100, "r1")
    assert p.upload_host.startswith("https://dashscope-file-mgr")
    with pytest.raises(ServerError):  # not a policy: a malformed answer
        parse_policy(b'{"data": {"upload_host": "ftp://x"}}', {}, "sk-secret")


def test_object_storages_errors() -> None:
    xml = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<Error>\n  <Code>EntityTooLarge</Code>\n'
        b"  <Message>Your proposed upload exceeds the maximum allowed size.</Message>\n"
        b"  <RequestId>5C3D9175B6FC201293AD****</RequestId>\n</Error>\n"
    )
    e = _oss_error(400, xml, None)
    assert isinstance(e, PermanentError) and e.code == "EntityTooLarge" and e.request_id == "5C3D9175B6FC201293AD****"
    assert e.message == "upload: Your proposed upload exceeds the maximum allowed size."
    assert isinstance(_oss_error(503, b"<Error><Code>SlowDown</Code></Error>", None), ServerError)
    assert isinstance(_oss_error(400, b"<html>proxy</html>", None), ForeignAnswer)  # no code: not the store's


def test_the_local_file_a_request_names() -> None:
    path = Path("/data/voice overs/a.wav")
    assert local_file({"model": "m", "input": {"prompt": "p", "audio_url": path.as_uri()}}) == path
    assert local_file({"model": "m", "input": {"prompt": "p", "audio_url": URL}}) is None
    assert local_file({"model": "m", "input": {"prompt": "p"}}) is None
