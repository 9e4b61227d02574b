"""Fault injection: the rule syntax, reproducibility from the seed, and every kind over HTTP."""

from __future__ import annotations

import time

import aiohttp
import pytest

from runner.emulator.faults import FaultInjector, FaultRule, FaultSyntaxError, parse_fault
from tests.emulator.conftest import AUTH, MakeClient, body


def test_parse_rules_and_default_scopes() -> None:
    assert parse_fault("500@create=0.1") == FaultRule("500", ("create",), 0.1, None, "500@create=0.1")
    assert parse_fault("reset=0.5").routes == ("create", "query", "list", "cancel")
    assert parse_fault("truncate=1").routes == ("file",)
    assert parse_fault("fail=1x2") == FaultRule("fail", ("create",), 1.0, 2, "fail=1x2")
    assert parse_fault("reset_after_create@create=0.05").routes == ("create",)


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("500", "expected KIND[@ROUTE]=RATE"),
        ("boom=0.1", "unknown kind 'boom'"),
        ("500@uploads=0.1", "unknown route 'uploads'"),
        ("500=1.5", "rate must be in [0, 1]"),
        ("fail@query=0.1", "scope it @create"),
        ("truncate@create=0.1", "downloads only"),
    ],
)
def test_parse_errors_say_what_is_allowed(spec: str, fragment: str) -> None:
    with pytest.raises(FaultSyntaxError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        parse_fault(spec)


def test_decisions_are_reproducible_and_near_the_rate() -> None:
    rules = (parse_fault("500@create=0.3"),)
    inj, twin = FaultInjector(rules, 42), FaultInjector(rules, 42)
    seq = [inj.request_fault("create") for _ in range(1000)]
    assert [twin.request_fault("create") for _ in range(1000)] == seq
    assert 250 < seq.count("500") < 350
    other = FaultInjector(rules, 43)
    assert [other.request_fault("create") for _ in range(1000)] != seq
    assert all(inj.request_fault("query") is None for _ in range(100))  # scoped to create


def test_count_limits_injections() -> None:
    inj = FaultInjector((parse_fault("503=1x2"),), 0)
    assert [inj.request_fault("query") for _ in range(4)] == ["503", "503", None, None]


@pytest.mark.parametrize(
    ("spec", "status", "code", "message"),
    [
        ("429@create=1", 429, "Throttling.RateQuota", "Requests rate limit exceeded, please try again later."),
        (
            "500@create=1",
            500,
            "InternalError",
            "An internal error has occured, please try again later or contact service support.",
        ),
        ("503@create=1", 503, "ModelUnavailable", "Model is unavailable, please try again later."),
    ],
)
async def test_error_faults_answer_json_and_create_nothing(
    make_client: MakeClient, spec: str, status: int, code: str, message: str
) -> None:
    c = await make_client(task_time=100.0, faults=(parse_fault(spec),))
    got, data, headers = await c.create()
    assert (got, data["code"], data["message"]) == (status, code, message)
    assert headers["x-request-id"] == data["request_id"]
    stats = await c.stats()
    assert stats["submitted"] == 0
    assert stats["faults_injected"] == {spec.split("@")[0]: 1}


async def test_502_is_a_plain_text_proxy_page(make_client: MakeClient) -> None:
    c = await make_client(faults=(parse_fault("502@query=1"),))
    status, data, headers = await c.call("GET", "/api/v1/tasks/x", headers=AUTH)
    assert status == 502
    assert headers["Content-Type"].startswith("text/plain")
    assert b"upstream connect error" in data


async def test_reset_drops_connection_without_creating(make_client: MakeClient) -> None:
    c = await make_client(faults=(parse_fault("reset@create=1x1"),))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await c.create()
    assert (await c.stats())["submitted"] == 0
    assert (await c.create())[0] == 200  # x1: only once


async def test_reset_after_create_makes_a_task_the_client_never_hears_of(make_client: MakeClient) -> None:
    c = await make_client(task_time=100.0, faults=(parse_fault("reset_after_create=1x1"),))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await c.create(body(prompt="lost answer"))
    stats = await c.stats()
    assert stats["submitted"] == 1
    assert stats["resets_after_create"] == 1
    _, data, _ = await c.call("GET", "/api/v1/tasks", headers=AUTH)
    assert data["total"] == 1  # the paid task exists and reconcile can find it
    assert data["data"][0]["status"] == "PENDING"


async def test_slow_answers(make_client: MakeClient) -> None:
    c = await make_client(faults=(parse_fault("slow@list=1"),), slow_seconds=0.2)
    t0 = time.monotonic()
    status, _, _ = await c.call("GET", "/api/v1/tasks", headers=AUTH)
    assert status == 200
    assert time.monotonic() - t0 >= 0.2


@pytest.mark.parametrize(
    ("spec", "code", "message"),
    [
        (
            "fail=1",
            "InternalError",
            "An internal error has occured, please try again later or contact service support.",
        ),
        ("inspection=1", "DataInspectionFailed", "Output data may contain inappropriate content."),
    ],
)
async def test_failed_tasks(make_client: MakeClient, spec: str, code: str, message: str) -> None:
    c = await make_client(task_time=100.0, faults=(parse_fault(spec),))
    tid = await c.create_ok()
    c.clock.advance(100)
    data = await c.get(tid)
    out = data["output"]
    assert (out["task_status"], out["code"], out["message"]) == ("FAILED", code, message)
    assert "video_url" not in out and "usage" not in data
    assert "end_time" in out


async def test_stuck_task_stays_pending_until_the_3h_timeout(make_client: MakeClient) -> None:
    c = await make_client(task_time=100.0, speed=10.0, faults=(parse_fault("stuck=1"),))
    tid = await c.create_ok()
    c.clock.advance(1079)  # 3 h / 10 = 1080 s
    assert await c.status_of(tid) == "PENDING"
    c.clock.advance(1)
    out = (await c.get(tid))["output"]
    assert (out["task_status"], out["code"]) == ("FAILED", "InternalError.Timeout")


async def test_runtime_fault_endpoint_replaces_rules(make_client: MakeClient) -> None:
    c = await make_client(task_time=100.0)
    status, data, _ = await c.call(
        "POST",
        "/_emulator/faults",
        json={
            "faults": ["500@create=1x1", {"kind": "429", "route": "query", "rate": 1, "count": 1}],
            "block_word": "zap",
        },
    )
    assert status == 200
    assert [f["spec"] for f in data["faults"]] == ["500@create=1x1", "429@query=1.0x1"]
    assert data["block_word"] == "zap"
    assert (await c.create())[0] == 500
    tid = await c.create_ok()
    assert (await c.call("GET", f"/api/v1/tasks/{tid}", headers=AUTH))[0] == 429
    assert (await c.create(body(prompt="zap it")))[1]["code"] == "DataInspectionFailed"
    _, data, _ = await c.call("GET", "/_emulator/faults")
    assert len(data["faults"]) == 2
    status, data, _ = await c.call("POST", "/_emulator/faults", json={"faults": ["nope=1"]})
    assert status == 400 and "unknown kind" in data["message"]
    status, data, _ = await c.call("POST", "/_emulator/faults", json={"faults": []})
    assert (status, data["faults"]) == (200, [])
