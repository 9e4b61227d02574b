"""Several accounts in one emulator (issue 18, API.md §2 and §5): each has its own quotas, its own tasks (another
account's key sees them as unknown ids) and its own counters. Time is a ManualClock: nothing sleeps."""

from __future__ import annotations

from typing import Any

import pytest

from runner.emulator.accounts import AccountSpec
from runner.emulator.quotas import Quotas
from runner.models import MODELS
from tests.emulator.conftest import KEY, Client, MakeClient, body

KEY_A, KEY_A2, KEY_B, KEY_C = "sk-acct-a-1", "sk-acct-a-2", "sk-acct-b-1", "sk-acct-c-1"
ACCOUNTS = (
    AccountSpec("a", KEY_A),
    AccountSpec("a", KEY_A2),  # a second key of the same account
    AccountSpec("b", KEY_B, qps=2, in_flight=2),
    AccountSpec("c", KEY_C, qps=10, in_flight=1),
)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def create_headers(key: str) -> dict[str, str]:
    return {**auth(key), "X-DashScope-Async": "enable", "Content-Type": "application/json"}


async def create(c: Client, key: str, b: dict[str, Any] | None = None) -> tuple[int, Any]:
    status, data, _ = await c.create(b or body(), headers=create_headers(key))
    return status, data


async def create_ok(c: Client, key: str, b: dict[str, Any] | None = None) -> str:
    status, data = await create(c, key, b)
    assert status == 200, data
    return str(data["output"]["task_id"])


async def query(c: Client, key: str, task_id: str) -> tuple[int, Any]:
    status, data, _ = await c.call("GET", f"/api/v1/tasks/{task_id}", headers=auth(key))
    return status, data


async def cancel(c: Client, key: str, task_id: str) -> tuple[int, Any]:
    status, data, _ = await c.call("POST", f"/api/v1/tasks/{task_id}/cancel", headers=auth(key))
    return status, data


async def status_as(c: Client, key: str, task_id: str) -> str:
    status, data = await query(c, key, task_id)
    assert status == 200, data
    return str(data["output"]["task_status"])


async def listing(c: Client, key: str, query_string: str = "") -> list[str]:
    status, data, _ = await c.call("GET", f"/api/v1/tasks?page_size=100{query_string}", headers=auth(key))
    assert status == 200, data
    return [item["task_id"] for item in data["data"]]


@pytest.fixture
async def accounts(make_client: MakeClient) -> Client:
    return await make_client(task_time=100.0, accounts=ACCOUNTS)


# -- quotas -----------------------------------------------------------------------------------------------


def test_an_accounts_qps_and_in_flight_set_the_wan26_class_and_scale_the_others() -> None:
    wan26, wan25, wan22 = MODELS["wan2.6-t2v"], MODELS["wan2.5-t2v-preview"], MODELS["wan2.2-t2v-plus"]
    table = Quotas()
    assert (table.submit_qps(wan26), table.concurrency(wan26), table.submit_qps(wan22)) == (5, 5, 2)
    own = Quotas(qps=10, in_flight=3)
    assert (own.submit_qps(wan26), own.submit_qps(wan25), own.submit_qps(wan22)) == (10, 10, 4)
    assert (own.concurrency(wan26), own.concurrency(wan22)) == (3, 1)  # round(2 * 3 / 5) = 1
    assert Quotas(qps=1, in_flight=1).submit_qps(wan22) == 1  # never below 1
    assert Quotas(qps=3, in_flight=3, scale=2.0).concurrency(wan26) == 6  # --qps-scale applies on top
    assert Quotas(enabled=False, in_flight=3).concurrency(wan26) is None


async def test_a_429_on_one_account_does_not_touch_another(accounts: Client) -> None:
    c = accounts
    for _ in range(5):
        await create_ok(c, KEY_A)
    status, data = await create(c, KEY_A2)  # the account's other key shares its window
    assert (status, data["code"]) == (429, "Throttling.RateQuota")
    await create_ok(c, KEY_B)  # b's window is its own ...
    await create_ok(c, KEY_B)
    assert (await create(c, KEY_B))[0] == 429  # ... and holds 2 (qps=2)
    for _ in range(10):  # c: qps=10
        await create_ok(c, KEY_C)
    assert (await create(c, KEY_C))[0] == 429
    stats = await c.stats()
    per = stats["accounts"]
    assert {n: (a["submitted"], a["throttled_total"]) for n, a in per.items()} == {
        "a": (5, 1),
        "b": (2, 1),
        "c": (10, 1),
    }
    assert per["b"]["throttled"] == {"Throttling.RateQuota": 1}
    assert stats["submitted"] == 17 and stats["throttled_total"] == 3  # the global counters stay


async def test_concurrency_is_per_account_in_queue_mode(accounts: Client) -> None:
    c = accounts
    first = await create_ok(c, KEY_C)  # c: in_flight=1
    queued = await create_ok(c, KEY_C)
    mine = [await create_ok(c, KEY_A) for _ in range(2)]
    c.clock.advance(30)  # past the 25 s dispatch of the admitted tasks
    assert await status_as(c, KEY_C, first) == "RUNNING"
    assert await status_as(c, KEY_C, queued) == "PENDING"  # waits for c's single slot
    assert [await status_as(c, KEY_A, t) for t in mine] == ["RUNNING", "RUNNING"]  # a's slots are its own
    c.clock.advance(100)
    assert await status_as(c, KEY_C, queued) == "RUNNING"
    per = (await c.stats())["accounts"]
    assert (per["c"]["max_concurrent"], per["a"]["max_concurrent"]) == (2, 2)  # queued ones count as PENDING
    assert per["c"]["max_concurrent_by_model"] == {"wan2.6-t2v": 2}


async def test_concurrency_is_per_account_in_reject_mode(make_client: MakeClient) -> None:
    c = await make_client(task_time=100.0, accounts=ACCOUNTS, concurrency_mode="reject")
    await create_ok(c, KEY_C)
    c.clock.advance(1)
    status, data = await create(c, KEY_C)
    assert (status, data["code"]) == (429, "Throttling.Concurrency")
    await create_ok(c, KEY_A)
    await create_ok(c, KEY_B)
    assert (await c.stats())["accounts"]["c"]["throttled"] == {"Throttling.Concurrency": 1}


async def test_query_list_cancel_qps_are_per_account(accounts: Client) -> None:
    c = accounts
    task = await create_ok(c, KEY_A)
    for _ in range(20):
        assert (await query(c, KEY_A, task))[0] == 200
    assert (await query(c, KEY_A2, task))[0] == 429  # 20 QPS per account, whatever the key
    assert (await query(c, KEY_B, task))[0] == 200  # b's own 20 (and it sees nothing)
    assert (await c.stats())["accounts"]["a"]["requests"] == {"create": 1, "query": 21}


# -- isolation --------------------------------------------------------------------------------------------


async def test_another_accounts_task_is_an_unknown_id(accounts: Client) -> None:
    c = accounts
    task = await create_ok(c, KEY_A)
    theirs = await create_ok(c, KEY_B)
    status, data = await query(c, KEY_B, task)
    assert status == 200 and data["output"] == {"task_id": task, "task_status": "UNKNOWN"}
    status, data = await cancel(c, KEY_B, task)
    assert (status, data["code"]) == (400, "UnsupportedOperation")
    assert await listing(c, KEY_B) == [theirs]
    assert await listing(c, KEY_B, f"&task_id={task}") == []
    assert await listing(c, KEY_A, f"&task_id={task}") == [task]
    assert await status_as(c, KEY_A2, task) == "PENDING"  # untouched, and any key of a reads it
    assert await listing(c, KEY_A2) == [task]
    assert (await cancel(c, KEY_A2, task))[0] == 200
    stats = await c.stats()
    assert stats["accounts"]["b"]["foreign"] == 3  # the query, the cancel, the list naming a's task
    assert stats["accounts"]["a"]["foreign"] == 0 and stats["foreign"] == 3
    assert (stats["accounts"]["a"]["canceled"], stats["accounts"]["b"]["canceled"], stats["canceled"]) == (1, 0, 1)


async def test_keys_no_account_has_are_refused(accounts: Client) -> None:
    c = accounts
    for key in (KEY, "sk-anything", "not-a-key"):  # no implicit sk- account once accounts are configured
        status, data = await create(c, key)
        assert (status, data["code"], data["message"]) == (401, "InvalidApiKey", "Invalid API-key provided.")
    status, data, _ = await c.call("GET", "/api/v1/tasks")
    assert (status, data["message"]) == (401, "No API-key provided.")
    assert (await c.stats())["accounts"]["a"]["requests"] == {}


async def test_the_signed_file_route_serves_any_accounts_video(make_client: MakeClient) -> None:
    c = await make_client(task_time=10.0, accounts=ACCOUNTS)
    task = await create_ok(c, KEY_B, body("wan2.2-t2v-plus", size="832*480"))
    c.clock.advance(11)
    status, data = await query(c, KEY_B, task)
    assert data["output"]["task_status"] == "SUCCEEDED"
    status, video, headers = await c.call("GET", data["output"]["video_url"])  # no key at all
    assert status == 200 and headers["Content-Type"] == "video/mp4" and task.encode() in video


# -- account faults ---------------------------------------------------------------------------------------


async def test_arrears_and_denied_models_per_account(make_client: MakeClient) -> None:
    c = await make_client(
        task_time=100.0,
        accounts=(
            AccountSpec("a", KEY_A, arrears_after=1),
            AccountSpec("b", KEY_B, denied_models=("wanx2.1-t2v-turbo",)),  # either spelling names the model
        ),
    )
    await create_ok(c, KEY_A)
    status, data = await create(c, KEY_A)
    assert (status, data["code"]) == (400, "Arrearage")
    await create_ok(c, KEY_B)  # b is in good standing
    status, data = await create(c, KEY_B, body("wan2.1-t2v-turbo"))
    assert (status, data["code"]) == (403, "Model.AccessDenied")
    state = c.emu.state
    state.accounts["a"].arrears_after = None  # paid
    await create_ok(c, KEY_A, body("wan2.1-t2v-turbo"))  # and open to a


async def test_global_account_faults_apply_to_each_account(make_client: MakeClient) -> None:
    c = await make_client(task_time=100.0, arrears_after=1, denied_models=("wan2.2-t2v-plus",), accounts=ACCOUNTS[:3])
    await create_ok(c, KEY_A)
    await create_ok(c, KEY_B)  # each account makes its own first create
    assert (await create(c, KEY_A2))[1]["code"] == "Arrearage"
    c.emu.state.arrears_after = None
    assert (await create(c, KEY_B, body("wan2.2-t2v-plus", size="832*480")))[1]["code"] == "Model.AccessDenied"


async def test_a_revoked_account_answers_invalid_key(accounts: Client) -> None:
    c = accounts
    task = await create_ok(c, KEY_B)
    c.emu.state.accounts["b"].revoked = True
    assert (await query(c, KEY_B, task))[1]["code"] == "InvalidApiKey"
    await create_ok(c, KEY_A)
    c.emu.state.accounts["b"].revoked = False
    assert (await query(c, KEY_B, task))[1]["output"]["task_status"] == "PENDING"


# -- stats and in-process access --------------------------------------------------------------------------


async def test_stats_tasks_and_state_name_each_tasks_account(accounts: Client) -> None:
    c = accounts
    a1 = await create_ok(c, KEY_A, body(prompt="same"))
    a2 = await create_ok(c, KEY_A2, body(prompt="same"))
    b1 = await create_ok(c, KEY_B, body(prompt="same"))
    state = c.emu.state
    assert [state.account_of(t) for t in (a1, a2, b1, "nope")] == ["a", "a", "b", None]
    _, rows, _ = await c.call("GET", "/_emulator/tasks")
    assert [(r["task_id"], r["account"]) for r in rows] == [(a1, "a"), (a2, "a"), (b1, "b")]
    stats = await c.stats()
    a = stats["accounts"]["a"]
    assert set(a) >= {
        "submitted",
        "submitted_by_model",
        "submissions_by_body",
        "duplicate_submissions",
        "tasks_by_status",
        "max_concurrent",
        "max_concurrent_by_model",
        "canceled",
        "throttled",
        "throttled_total",
        "requests",
        "foreign",
    }
    assert list(a["submissions_by_body"].values()) == [2] and a["duplicate_submissions"] == 1
    assert list(stats["accounts"]["b"]["submissions_by_body"].values()) == [1]
    assert stats["duplicate_submissions"] == 2  # globally, the body was accepted three times
    assert a["tasks_by_status"]["PENDING"] == 2 and stats["accounts"]["c"]["tasks_by_status"]["PENDING"] == 0
    assert stats["tasks_by_status"]["PENDING"] == 3
    await c.call("POST", "/_emulator/reset")
    after = (await c.stats())["accounts"]
    assert after["a"]["submitted"] == 0 and after["a"]["requests"] == {} and after["b"]["foreign"] == 0


async def test_without_accounts_every_sk_key_is_the_default_account(client: Client) -> None:
    task = await client.create_ok()
    assert await status_as(client, "sk-some-other-key", task) == "PENDING"  # today's behaviour
    stats = await client.stats()
    assert list(stats["accounts"]) == ["default"]
    assert stats["accounts"]["default"]["submitted"] == 1 and stats["foreign"] == 0
    assert client.emu.state.account_of(task) == "default"


async def test_api_keys_without_accounts_are_the_default_accounts_keys(make_client: MakeClient) -> None:
    c = await make_client(task_time=100.0, api_keys=(KEY,))
    task = await c.create_ok()
    assert (await query(c, "sk-other", task))[0] == 401
    assert c.emu.state.account_of(task) == "default"
