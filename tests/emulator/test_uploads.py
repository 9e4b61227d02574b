"""Local-file uploads in the emulator (issue 19): the policy route, the upload host (signature, key prefix, size
limit, x-oss-forbid-overwrite, 48-h objects), and a create naming an oss:// object (the header, a missing or expired
object, another model's object, audio the service would not take), each answered as the real pair would."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.audio_files import audio_bytes
from tests.emulator.conftest import AUTH, CREATE_HEADERS, Client, MakeClient, body

RESOLVE = {**CREATE_HEADERS, "X-DashScope-OssResourceResolve": "enable"}


async def policy(client: Client, model: str = "wan2.6-t2v") -> dict[str, Any]:
    status, data, _ = await client.call("GET", f"/api/v1/uploads?action=getPolicy&model={model}", headers=AUTH)
    assert status == 200, data
    return dict(data["data"])


def form(p: dict[str, Any], data: bytes, name: str = "voice.wav", **override: str) -> aiohttp.FormData:
    """The SDK's form (dashscope utils/oss_utils.py), fields in its order, the file last."""
    fields = {
        "OSSAccessKeyId": p["oss_access_key_id"],
        "Signature": p["signature"],
        "policy": p["policy"],
        "key": f"{p['upload_dir']}/{name}",
        "x-oss-object-acl": p["x_oss_object_acl"],
        "x-oss-forbid-overwrite": p["x_oss_forbid_overwrite"],
        "success_action_status": "200",
        "x-oss-content-type": "audio/x-wav",
        **override,
    }
    f = aiohttp.FormData()
    for k, v in fields.items():
        f.add_field(k, v)
    f.add_field("file", data, filename=name, content_type="application/octet-stream")
    return f


async def upload(client: Client, data: bytes, model: str = "wan2.6-t2v", **override: str) -> tuple[int, Any, str]:
    p = await policy(client, model)
    f = form(p, data, **override)
    status, answer, _ = await client.call("POST", p["upload_host"], data=f)
    return status, answer, f"oss://{p['upload_dir']}/voice.wav"


async def create_with(client: Client, url: str, headers: dict[str, str] | None = None, model: str = "wan2.6-t2v"):  # type: ignore[no-untyped-def]
    b = body(model, duration=5, size="1280*720")
    b["input"]["audio_url"] = url
    return await client.create(b, headers=RESOLVE if headers is None else headers)


async def test_the_policy_names_the_upload_host_and_a_signed_policy(client: Client) -> None:
    p = await policy(client)
    assert p["upload_host"] == client.emu.url + "/oss"
    assert p["upload_dir"].startswith("dashscope-instant/")
    assert p["x_oss_forbid_overwrite"] == "true" and p["max_file_size_mb"] == 100 and p["expire_in_seconds"] == 300
    status, data, _ = await client.call("GET", "/api/v1/uploads?action=getPolicy&model=wan2.6-t2v")
    assert status == 401 and data["code"] == "InvalidApiKey"
    status, data, _ = await client.call("GET", "/api/v1/uploads?action=getPolicy&model=nope", headers=AUTH)
    assert status == 400 and data["message"] == "Model not exist."


async def test_an_uploaded_file_makes_a_task_with_the_header(client: Client) -> None:
    status, answer, url = await upload(client, audio_bytes(4.0))
    assert status == 200 and answer == b""
    status, data, _ = await create_with(client, url)
    assert status == 200, data
    stats = await client.stats()
    assert stats["uploads"] == 1 and stats["upload_policies"] == 1 and stats["uploads_with_authorization"] == 0


async def test_without_the_header_or_the_object_the_create_is_refused_naming_the_url(client: Client) -> None:
    _, _, url = await upload(client, audio_bytes(4.0))
    status, data, _ = await create_with(client, url, headers=CREATE_HEADERS)
    assert status == 400 and data["code"] == "InvalidParameter" and url in data["message"]
    assert "X-DashScope-OssResourceResolve: enable" in data["message"]
    missing = url.replace("voice.wav", "other.wav")
    status, data, _ = await create_with(client, missing)
    assert status == 400 and data["code"] == "InvalidParameter"
    assert (
        data["message"]
        == f"The oss resource {missing} does not exist or has expired (temporary files are kept 48 hours)."
    )
    assert (await client.stats())["submitted"] == 0


async def test_an_object_lives_48_hours_of_simulated_time(make_client: MakeClient) -> None:
    client = await make_client(speed=2.0)
    _, _, url = await upload(client, audio_bytes(4.0))
    client.clock.advance(24 * 3600 - 1)  # 48 h simulated at speed 2
    assert (await create_with(client, url))[0] == 200
    client.clock.advance(2)
    status, data, _ = await create_with(client, url)
    assert status == 400 and "does not exist or has expired" in data["message"]


async def test_an_object_serves_only_the_model_it_was_uploaded_for(client: Client) -> None:
    _, _, url = await upload(client, audio_bytes(4.0), model="wan2.5-t2v-preview")
    status, data, _ = await create_with(client, url)
    assert status == 400 and "was uploaded for model wan2.5-t2v-preview" in data["message"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (audio_bytes(31.0), "lasts 31.0 s; it must last 3 to 30 s"),
        (audio_bytes(2.0, "mp3"), "lasts 2.0 s"),
        (audio_bytes(4.0, "flac"), "is not wav or mp3"),
        (b"hello, not audio", "is not wav or mp3"),
        (audio_bytes(4.0) + bytes(15 * 1024 * 1024), "at most 15728640 (15 MB)"),
    ],
    ids=["too-long", "too-short", "flac", "text", "too-big"],
)
async def test_audio_the_service_would_not_take_is_refused_at_the_create(
    client: Client, data: bytes, expected: str
) -> None:
    status, _, url = await upload(client, data)
    assert status == 200  # the store keeps any bytes under its limit; the service reads them at the create
    status, answer, _ = await create_with(client, url)
    assert status == 400 and answer["code"] == "InvalidParameter" and answer["message"].startswith(f"The audio {url} ")
    assert expected in answer["message"]


async def test_the_upload_hosts_checks(make_client: MakeClient) -> None:
    client = await make_client(upload_max_mb=0.05)  # 52 KB
    p = await policy(client)
    host = p["upload_host"]

    async def post(f: aiohttp.FormData, **headers: str) -> tuple[int, bytes]:
        status, answer, _ = await client.call("POST", host, data=f, headers=headers)
        return status, answer

    status, answer = await post(form(p, audio_bytes(4.0)))  # 64 KB
    assert status == 400 and b"<Code>EntityTooLarge</Code>" in answer
    small = audio_bytes(3.0, "mp3")
    status, answer = await post(form(p, small, Signature="forged"))
    assert status == 403 and b"SignatureDoesNotMatch" in answer
    status, answer = await post(form(p, small, key="elsewhere/voice.wav"))
    assert status == 403 and b"starts-with" in answer
    assert (await post(form(p, small)))[0] == 200
    status, answer = await post(form(p, small))  # the same key again: x-oss-forbid-overwrite
    assert status == 409 and b"FileAlreadyExists" in answer
    assert (await post(form(p, small, name="b.mp3"), Authorization="Bearer sk-nope"))[0] == 200
    stats = await client.stats()
    assert stats["uploads"] == 2 and stats["uploads_with_authorization"] == 1
    assert stats["uploads_refused"] == {"EntityTooLarge": 1, "SignatureDoesNotMatch": 1, "AccessDenied": 1,
                                        "FileAlreadyExists": 1}  # fmt: skip
    client.clock.advance(301)
    status, answer = await post(form(p, small, name="late.mp3"))
    assert status == 403 and b"Policy expired" in answer


async def test_faults_hit_the_upload_routes_only_when_named(make_client: MakeClient) -> None:
    from runner.emulator.config import EmulatorConfig

    client = await make_client(faults=EmulatorConfig.parse_faults(["500@upload=1x1", "503@policy=1x1", "500=1"]))
    status, data, _ = await client.call("GET", "/api/v1/uploads?action=getPolicy&model=wan2.6-t2v", headers=AUTH)
    assert status == 503 and data["code"] == "ModelUnavailable"
    p = await policy(client)
    status, answer, _ = await client.call("POST", p["upload_host"], data=form(p, audio_bytes(4.0)))
    assert status == 500 and b"InternalError" in answer
    status, _, _ = await client.call("POST", p["upload_host"], data=form(p, audio_bytes(4.0)))
    assert status == 200  # the unscoped 500=1 is the API routes' only


async def test_reset_forgets_the_objects(client: Client) -> None:
    _, _, url = await upload(client, audio_bytes(4.0))
    await client.call("POST", "/_emulator/reset")
    status, data, _ = await create_with(client, url)
    assert status == 400 and "does not exist" in data["message"]
