"""The API routes and every check of API.md §1–§4, each asserting status, code and message."""

from __future__ import annotations

import re
from typing import Any

import pytest

from runner.emulator.protocol import body_digest
from tests.emulator.conftest import AUTH, CREATE_HEADERS, KEY, SEED_PROMPT, Client, MakeClient, body

CREATE = "/api/v1/services/aigc/video-generation/video-synthesis"
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$")


def assert_error(status: int, data: Any, headers: Any, want_status: int, code: str, message: str) -> None:
    assert status == want_status, data
    assert data["code"] == code
    assert data["message"] == message
    assert headers["x-request-id"] == data["request_id"]
    assert headers["Content-Type"].startswith("application/json")


async def test_create_answers_pending_task_with_request_id(client: Client) -> None:
    status, data, headers = await client.create(body(prompt=SEED_PROMPT, size="1280*720", duration=15))
    assert status == 200
    assert data["output"]["task_status"] == "PENDING"
    assert re.fullmatch(r"[0-9a-f-]{36}", data["output"]["task_id"])
    assert headers["x-request-id"] == data["request_id"]
    assert headers["Content-Type"].startswith("application/json")


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"X-DashScope-Async": "enable"}, "No API-key provided."),
        ({"X-DashScope-Async": "enable", "Authorization": "Bearer "}, "No API-key provided."),
        ({"X-DashScope-Async": "enable", "Authorization": "Bearer nope"}, "Invalid API-key provided."),
        ({"X-DashScope-Async": "enable", "Authorization": "Basic sk-abc"}, "No API-key provided."),
    ],
)
async def test_bad_key_is_401(client: Client, headers: dict[str, str], message: str) -> None:
    assert_error(*await client.create(body(), headers=headers), 401, "InvalidApiKey", message)


async def test_bad_key_on_query_list_cancel(client: Client) -> None:
    bad = {"Authorization": "Bearer xx"}
    for method, path in [("GET", "/api/v1/tasks/abc"), ("GET", "/api/v1/tasks"), ("POST", "/api/v1/tasks/abc/cancel")]:
        assert_error(*await client.call(method, path, headers=bad), 401, "InvalidApiKey", "Invalid API-key provided.")


async def test_configured_keys_only(make_client: MakeClient) -> None:
    c = await make_client(api_keys=("sk-one",))
    h = {**CREATE_HEADERS, "Authorization": "Bearer sk-two"}
    assert_error(*await c.create(body(), headers=h), 401, "InvalidApiKey", "Invalid API-key provided.")
    status, _, _ = await c.create(body(), headers={**CREATE_HEADERS, "Authorization": "Bearer sk-one"})
    assert status == 200


async def test_missing_async_header_is_403(client: Client) -> None:
    assert_error(
        *await client.create(body(), headers=AUTH),
        403,
        "AccessDenied",
        "current user api does not support synchronous calls.",
    )


@pytest.mark.parametrize(
    ("payload", "code", "message"),
    [
        (b"not json", "BadRequest.IllegalInput", "The request body is not a valid JSON object."),
        (b"[1, 2]", "BadRequest.IllegalInput", "The request body is not a valid JSON object."),
        (b'{"input": {"prompt": "x"}}', "BadRequest.EmptyModel", 'Required parameter "model" missing from request.'),
        (b'{"model": "wan2.6-t2v"}', "BadRequest.EmptyInput", 'Required parameter "input" missing from request.'),
        (
            b'{"model": "wan2.6-t2v", "input": "x"}',
            "BadRequest.IllegalInput",
            'Parameter "input" must be a JSON object.',
        ),
        (
            b'{"model": "wan2.6-t2v", "input": {"negative_prompt": "x"}}',
            "BadRequest.EmptyInput",
            'Required parameter "prompt" missing from input.',
        ),
        (
            b'{"model": "wan2.6-t2v", "input": {"prompt": "x"}, "parameters": [1]}',
            "BadRequest.EmptyParameters",
            'Parameter "parameters" must be a JSON object.',
        ),
        (b'{"model": "wan9-t2v", "input": {"prompt": "x"}}', "InvalidParameter", "Model not exist."),
    ],
)
async def test_body_shape_errors(client: Client, payload: bytes, code: str, message: str) -> None:
    assert_error(*await client.call("POST", CREATE, data=payload, headers=CREATE_HEADERS), 400, code, message)


@pytest.mark.parametrize(
    ("model", "params", "message"),
    [
        (
            "wan2.6-t2v",
            {"size": "832*480"},
            "The size is not match the allowed sizes of wan2.6-t2v: 1280*720, 720*1280, 960*960, 1088*832, "
            "832*1088, 1920*1080, 1080*1920, 1440*1440, 1632*1248, 1248*1632.",
        ),
        (
            "wanx2.1-t2v-plus",
            {"size": "1920*1080"},
            "The size is not match the allowed sizes of wanx2.1-t2v-plus: "
            "1280*720, 720*1280, 960*960, 1088*832, 832*1088.",
        ),
        ("wan2.6-t2v", {"size": "16:9"}, None),
        (
            "wan2.6-t2v",
            {"duration": 16},
            "The duration is not match the allowed durations of wan2.6-t2v: any integer from 2 to 15.",
        ),
        (
            "wan2.5-t2v-preview",
            {"duration": 7},
            "The duration is not match the allowed durations of wan2.5-t2v-preview: 5 or 10.",
        ),
        (
            "wan2.2-t2v-plus",
            {"duration": 10},
            "The duration is not match the allowed durations of wan2.2-t2v-plus: 5 (fixed).",
        ),
        ("wan2.6-t2v", {"duration": "5"}, None),
        ("wan2.6-t2v", {"seed": -1}, "Parameter seed must be an integer in [0, 2147483647]."),
        ("wan2.6-t2v", {"seed": 2147483648}, "Parameter seed must be an integer in [0, 2147483647]."),
        ("wan2.6-t2v", {"prompt_extend": "yes"}, "Parameter prompt_extend must be a boolean, got 'yes'."),
        ("wan2.6-t2v", {"watermark": 1}, "Parameter watermark must be a boolean, got 1."),
        ("wan2.6-t2v", {"shot_type": "triple"}, "Parameter shot_type must be single or multi, got 'triple'."),
    ],
)
async def test_parameter_errors(client: Client, model: str, params: dict[str, Any], message: str | None) -> None:
    status, data, headers = await client.create(body(model, **params))
    assert status == 400, data
    assert data["code"] == "InvalidParameter"
    if message is not None:
        assert data["message"] == message
    assert headers["x-request-id"] == data["request_id"]


async def test_audio_url_only_on_25_and_26(client: Client) -> None:
    b = body("wan2.2-t2v-plus")
    b["input"]["audio_url"] = "https://example.invalid/a.mp3"
    assert_error(
        *await client.create(b),
        400,
        "InvalidParameter",
        "Parameter audio_url is not supported by model wan2.2-t2v-plus.",
    )
    b = body("wan2.5-t2v-preview", size="832*480")
    b["input"]["audio_url"] = "https://example.invalid/a.mp3"
    assert (await client.create(b))[0] == 200


@pytest.mark.parametrize("model", ["wan2.1-t2v-turbo", "wanx2.1-t2v-turbo", "wan2.1-t2v-plus", "wanx2.1-t2v-plus"])
async def test_both_spellings_accepted(client: Client, model: str) -> None:
    status, data, _ = await client.create(body(model, duration=5))
    assert status == 200, data


async def test_sdk_extra_input_keys_and_audio_are_ignored(client: Client) -> None:
    b = body("wan2.6-t2v", size="1280*720", audio=False)
    b["input"].update({"extend_prompt": True, "function": "video-synthesis", "something_new": 1})
    status, data, _ = await client.create(b)
    assert status == 200, data


async def test_long_prompt_is_truncated_not_rejected(client: Client) -> None:
    prompt = "x" * 900
    tid = await client.create_ok(body("wan2.2-t2v-plus", prompt=prompt, size="832*480"))
    client.clock.advance(100)
    out = (await client.get(tid))["output"]
    assert out["task_status"] == "SUCCEEDED"
    assert out["orig_prompt"] == prompt  # as sent
    assert out["actual_prompt"].startswith("x" * 800 + " ")  # the model saw 800 characters
    assert "x" * 801 not in out["actual_prompt"]


async def test_block_word_is_400_data_inspection(make_client: MakeClient) -> None:
    c = await make_client(block_word="forbidden")
    assert_error(
        *await c.create(body(prompt="a FORBIDDEN thing")),
        400,
        "DataInspectionFailed",
        "Input data may contain inappropriate content.",
    )
    assert (await c.stats())["submitted"] == 0


async def test_lifecycle_times_and_wan26_usage(client: Client) -> None:
    tid = await client.create_ok(body(prompt=SEED_PROMPT, size="1280*720", duration=15, shot_type="multi"))
    out = (await client.get(tid))["output"]
    assert out["task_status"] == "PENDING"
    assert TIME_RE.match(out["submit_time"])
    assert "scheduled_time" not in out
    client.clock.advance(25)
    out = (await client.get(tid))["output"]
    assert out["task_status"] == "RUNNING"
    assert TIME_RE.match(out["scheduled_time"])
    assert "end_time" not in out and "video_url" not in out
    client.clock.advance(75)
    data = await client.get(tid)
    out = data["output"]
    assert out["task_status"] == "SUCCEEDED"
    assert out["submit_time"] < out["scheduled_time"] < out["end_time"]
    assert out["orig_prompt"] == SEED_PROMPT
    assert "actual_prompt" not in out  # never for wan2.6
    assert out["video_url"].startswith(client.emu.url + "/results/")
    assert "Expires=" in out["video_url"]
    assert data["usage"] == {
        "duration": 15,
        "size": "1280*720",
        "input_video_duration": 0,
        "output_video_duration": 15,
        "video_count": 1,
        "SR": 720,
    }


async def test_timestamps_are_utc_plus_8(client: Client) -> None:
    client.clock.now = 1_764_000_000.0  # 2025-11-24 16:00:00 UTC
    tid = await client.create_ok()
    assert (await client.get(tid))["output"]["submit_time"] == "2025-11-25 00:00:00.000"


async def test_legacy_usage_and_actual_prompt(client: Client) -> None:
    tid = await client.create_ok(body("wan2.5-t2v-preview", prompt="a dog", size="832*480", duration=10))
    client.clock.advance(100)
    data = await client.get(tid)
    assert data["usage"] == {"video_duration": 10, "video_ratio": "832*480", "video_count": 1}
    assert data["output"]["actual_prompt"].startswith("a dog ")
    tid = await client.create_ok(body("wan2.5-t2v-preview", prompt="a dog", size="832*480", prompt_extend=False))
    client.clock.advance(100)
    assert "actual_prompt" not in (await client.get(tid))["output"]


async def test_defaults_give_model_default_size_and_duration(client: Client) -> None:
    tid = await client.create_ok(body("wan2.6-t2v"))
    client.clock.advance(100)
    usage = (await client.get(tid))["usage"]
    assert (usage["size"], usage["duration"], usage["SR"]) == ("1920*1080", 5, 1080)


async def test_query_variants_trailing_slash_and_query_string(client: Client) -> None:
    tid = await client.create_ok()
    for suffix in ("", "/", "/?size=1280*720&duration=15&prompt_extend=true", "?x=1"):
        data = await client.get(tid, suffix)
        assert data["output"]["task_id"] == tid
        assert data["output"]["task_status"] == "PENDING"
    assert (await client.stats())["queries"] == 4


async def test_unknown_task_is_unknown_with_200(client: Client) -> None:
    data = await client.get("00000000-0000-0000-0000-000000000000")
    assert data["output"] == {"task_id": "00000000-0000-0000-0000-000000000000", "task_status": "UNKNOWN"}


async def test_retention_gives_unknown(make_client: MakeClient) -> None:
    c = await make_client(task_time=100.0, speed=10.0)  # retention 24 h / 10 = 8640 s
    tid = await c.create_ok()
    c.clock.advance(8639)
    assert await c.status_of(tid) == "SUCCEEDED"
    c.clock.advance(1)
    assert (await c.get(tid))["output"] == {"task_id": tid, "task_status": "UNKNOWN"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/nothing"),
        ("GET", CREATE),
        ("POST", "/api/v1/services/aigc/image-generation/generation"),
        ("DELETE", "/api/v1/tasks/abc"),
        ("GET", "/"),
    ],
)
async def test_unknown_url_is_400(client: Client, method: str, path: str) -> None:
    assert_error(
        *await client.call(method, path, headers=AUTH), 400, "InvalidParameter", "url error, please check url!"
    )


async def test_cancel_pending_then_canceled(client: Client) -> None:
    tid = await client.create_ok()
    status, data, headers = await client.call("POST", f"/api/v1/tasks/{tid}/cancel", headers=AUTH)
    assert status == 200
    assert set(data) == {"request_id"}
    assert headers["x-request-id"] == data["request_id"]
    out = (await client.get(tid))["output"]
    assert out["task_status"] == "CANCELED"
    assert "end_time" in out
    client.clock.advance(200)
    assert await client.status_of(tid) == "CANCELED"


async def test_cancel_with_json_body_and_trailing_slash(client: Client) -> None:
    tid = await client.create_ok()
    status, _, _ = await client.call(
        "POST", f"/api/v1/tasks/{tid}/cancel/", json={"model": "", "parameters": {}, "input": ""}, headers=AUTH
    )
    assert status == 200
    assert await client.status_of(tid) == "CANCELED"


@pytest.mark.parametrize("advance", [25.0, 100.0])
async def test_cancel_not_pending_is_400(client: Client, advance: float) -> None:
    tid = await client.create_ok()
    client.clock.advance(advance)  # RUNNING, then SUCCEEDED
    assert_error(
        *await client.call("POST", f"/api/v1/tasks/{tid}/cancel", headers=AUTH),
        400,
        "UnsupportedOperation",
        "Failed to cancel the task, please confirm if the task is in PENDING status.",
    )


async def test_cancel_unknown_task_is_400(client: Client) -> None:
    status, data, _ = await client.call("POST", "/api/v1/tasks/nope/cancel", headers=AUTH)
    assert (status, data["code"]) == (400, "UnsupportedOperation")


async def test_list_flat_answer_filters_and_paging(client: Client) -> None:
    ids = []
    for i in range(3):
        ids.append(await client.create_ok(body("wan2.6-t2v", prompt=f"p{i}")))
        client.clock.advance(1)
    legacy = await client.create_ok(body("wanx2.1-t2v-turbo"))
    status, data, headers = await client.call("GET", "/api/v1/tasks", headers=AUTH)
    assert status == 200
    assert headers["x-request-id"] == data["request_id"]
    assert "output" not in data
    assert (data["total"], data["total_page"], data["page_no"], data["page_size"]) == (4, 1, 1, 10)
    assert [d["task_id"] for d in data["data"]] == [legacy, *reversed(ids)]  # newest first
    item = data["data"][0]
    assert item["model_name"] == "wanx2.1-t2v-turbo"
    assert item["status"] == "PENDING"
    assert isinstance(item["gmt_create"], int) and item["gmt_create"] > 1e12  # epoch ms
    assert "end_time" not in item
    assert KEY not in str(data)  # never the key itself

    _, data, _ = await client.call("GET", "/api/v1/tasks/?model_name=wan2.1-t2v-turbo", headers=AUTH)
    assert [d["task_id"] for d in data["data"]] == [legacy]  # either spelling filters
    _, data, _ = await client.call("GET", "/api/v1/tasks?model_name=wan2.6-t2v&page_no=2&page_size=2", headers=AUTH)
    assert (data["total"], data["total_page"]) == (3, 2)
    assert [d["task_id"] for d in data["data"]] == [ids[0]]
    _, data, _ = await client.call("GET", f"/api/v1/tasks?task_id={ids[1]}", headers=AUTH)
    assert [d["task_id"] for d in data["data"]] == [ids[1]]

    client.clock.advance(100)
    await client.call("POST", f"/api/v1/tasks/{legacy}/cancel", headers=AUTH)  # too late: SUCCEEDED
    _, data, _ = await client.call("GET", "/api/v1/tasks?status=SUCCEEDED", headers=AUTH)
    assert data["total"] == 4
    assert all("end_time" in d for d in data["data"])


async def test_list_time_window_in_utc_plus_8(client: Client) -> None:
    client.clock.now = 1_764_000_000.0  # 2025-11-25 00:00:00 UTC+8
    tid = await client.create_ok()
    q = "start_time=20251124235959&end_time=20251125000001"
    _, data, _ = await client.call("GET", f"/api/v1/tasks?{q}", headers=AUTH)
    assert [d["task_id"] for d in data["data"]] == [tid]
    q = "start_time=20251125000001&end_time=20251125100000"
    _, data, _ = await client.call("GET", f"/api/v1/tasks?{q}", headers=AUTH)
    assert data["total"] == 0


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (
            "start_time=20251101000000&end_time=20251103000000",
            "The time range between start_time and end_time exceeds 24 hours.",
        ),
        ("start_time=20251103000000&end_time=20251101000000", "The end_time must not be earlier than the start_time."),
        ("start_time=2025-11-01", "Invalid time format: '2025-11-01', expected yyyyMMddHHmmss."),
        ("page_size=0", "Parameter page_size must be between 1 and 100."),
        ("page_no=x", "Parameter page_no must be an integer."),
        ("status=DONE", "Parameter status must be one of PENDING, RUNNING, SUCCEEDED, FAILED, CANCELED, UNKNOWN."),
    ],
)
async def test_list_parameter_errors(client: Client, query: str, message: str) -> None:
    assert_error(*await client.call("GET", f"/api/v1/tasks?{query}", headers=AUTH), 400, "InvalidParameter", message)


async def test_stats_duplicates_by_canonical_body(client: Client) -> None:
    sdk1 = body("wan2.6-t2v", prompt="same", size="1280*720")
    sdk1["input"].update({"extend_prompt": True, "function": "video-synthesis"})
    sdk2 = body("wan2.6-t2v", prompt="same", size="1280*720")
    await client.create_ok(sdk1)
    await client.create_ok(sdk2)
    await client.create_ok(body("wan2.6-t2v", prompt="other"))
    stats = await client.stats()
    assert stats["submitted"] == 3
    assert stats["duplicates"] == 1
    assert stats["duplicate_submissions"] == 1
    assert stats["submissions_by_body"][body_digest(sdk2)] == 2
    assert body_digest(sdk1) == body_digest(sdk2)
    assert stats["requests"]["create"] == 3


async def test_reset_clears_tasks_and_counters(client: Client) -> None:
    tid = await client.create_ok()
    status, data, _ = await client.call("POST", "/_emulator/reset")
    assert (status, data) == (200, {"reset": True})
    stats = await client.stats()
    assert stats["submitted"] == 0 and sum(stats["tasks_by_status"].values()) == 0
    assert await client.status_of(tid) == "UNKNOWN"
    assert await client.create_ok() != tid  # a new generation: ids are not reused
