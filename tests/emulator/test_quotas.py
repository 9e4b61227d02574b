"""Per-account quotas (API.md §5, decision 8): sliding 1-second submit window per model, concurrency with
queue or reject, 20 QPS on query/list/cancel. Time is a ManualClock: nothing sleeps."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from runner.emulator.quotas import SlidingWindow
from tests.emulator.conftest import AUTH, Client, MakeClient, body


@given(st.lists(st.floats(min_value=0, max_value=0.5, allow_nan=False), min_size=1, max_size=60))
def test_sliding_window_never_admits_more_than_limit_in_any_second(gaps: list[float]) -> None:
    w = SlidingWindow(5)
    now, admitted = 0.0, []
    for g in gaps:
        now += g
        if w.try_acquire(now):
            admitted.append(now)
    for i, t in enumerate(admitted):
        assert sum(1 for u in admitted[i:] if u < t + 1.0) <= 5


def test_sliding_window_refuses_burst_after_leaky_bucket_pattern() -> None:
    """5 at once, then one every 0.2 s (a leaky bucket) breaks the window: the 6th is refused."""
    w = SlidingWindow(5)
    assert all(w.try_acquire(0.0) for _ in range(5))
    assert not w.try_acquire(0.2)
    assert w.retry_in(0.2) == 0.8
    assert w.try_acquire(1.0)


async def test_submit_qps_429_rate_quota_then_recovers(make_client: MakeClient) -> None:
    c = await make_client(task_time=1000.0)
    for _ in range(5):
        await c.create_ok()
    c.clock.advance(0.5)
    status, data, headers = await c.create()
    assert status == 429
    assert data["code"] == "Throttling.RateQuota"
    assert data["message"] == "Requests rate limit exceeded, please try again later."
    assert headers["x-request-id"] == data["request_id"]
    c.clock.advance(0.5)
    assert (await c.create())[0] == 200
    stats = await c.stats()
    assert stats["throttled"] == {"Throttling.RateQuota": 1}
    assert stats["submitted"] == 6


async def test_submit_qps_is_per_model_and_shared_by_spellings(make_client: MakeClient) -> None:
    c = await make_client(task_time=1000.0)
    await c.create_ok(body("wan2.1-t2v-turbo"))
    await c.create_ok(body("wanx2.1-t2v-turbo"))
    assert (await c.create(body("wan2.1-t2v-turbo")))[1]["code"] == "Throttling.RateQuota"
    assert (await c.create(body("wan2.6-t2v")))[0] == 200  # another model, its own window


async def test_retry_after_on_some_429s_and_not_others(make_client: MakeClient) -> None:
    c = await make_client(task_time=1000.0, seed=7)
    for _ in range(5):
        await c.create_ok()
    seen = []
    for _ in range(20):
        status, _, headers = await c.create()
        assert status == 429
        seen.append(headers.get("Retry-After"))
    assert None in seen
    assert "1" in seen  # whole seconds until the window has room
    again = await make_client(task_time=1000.0, seed=7)
    for _ in range(5):
        await again.create_ok()
    assert [(await again.create())[2].get("Retry-After") for _ in range(20)] == seen  # same seed, same answers


async def test_queue_mode_extra_tasks_wait_pending(make_client: MakeClient) -> None:
    c = await make_client(task_time=100.0)  # wan2.2: concurrency 2, QPS 2
    ids = [await c.create_ok(body("wan2.2-t2v-plus", size="832*480"))]
    ids.append(await c.create_ok(body("wan2.2-t2v-plus", size="832*480")))
    c.clock.advance(1)
    ids.append(await c.create_ok(body("wan2.2-t2v-plus", size="832*480")))
    c.clock.advance(30)
    assert [await c.status_of(t) for t in ids] == ["RUNNING", "RUNNING", "PENDING"]
    c.clock.advance(70)  # t=101: first two done, third admitted at 100, dispatched at 125
    assert [await c.status_of(t) for t in ids] == ["SUCCEEDED", "SUCCEEDED", "PENDING"]
    c.clock.advance(25)
    assert await c.status_of(ids[2]) == "RUNNING"
    c.clock.advance(75)
    assert await c.status_of(ids[2]) == "SUCCEEDED"
    stats = await c.stats()
    assert stats["max_concurrent"] == 3  # queued tasks count as PENDING
    assert stats["max_concurrent_by_model"] == {"wan2.2-t2v-plus": 3}


async def test_cancel_of_queued_task_moves_the_queue_up(make_client: MakeClient) -> None:
    c = await make_client(task_time=100.0)
    mk = body("wan2.2-t2v-plus", size="832*480")
    a = await c.create_ok(mk)
    b = await c.create_ok(mk)
    c.clock.advance(1)
    q1 = await c.create_ok(mk)
    q2 = await c.create_ok(mk)  # queued behind q1: admitted at 100 (lane of a) / 100 (lane of b)
    c.clock.advance(10)
    assert (await c.call("POST", f"/api/v1/tasks/{a}/cancel", headers=AUTH))[0] == 200  # a was PENDING
    # a's slot is free now: q1 is admitted at once and runs 25 s later
    c.clock.advance(25)
    assert [await c.status_of(t) for t in (a, b, q1, q2)] == ["CANCELED", "RUNNING", "RUNNING", "PENDING"]


async def test_reject_mode_429_concurrency(make_client: MakeClient) -> None:
    c = await make_client(task_time=100.0, concurrency_mode="reject")
    mk = body("wan2.2-t2v-plus", size="832*480")
    await c.create_ok(mk)
    await c.create_ok(mk)
    c.clock.advance(1)
    status, data, _ = await c.create(mk)
    assert (status, data["code"], data["message"]) == (429, "Throttling.Concurrency", "Too many concurrent requests.")
    c.clock.advance(99)  # both done
    await c.create_ok(mk)
    assert (await c.stats())["throttled"] == {"Throttling.Concurrency": 1}


async def test_query_list_cancel_20_qps_each(client: Client) -> None:
    tid = await client.create_ok()
    for _ in range(20):
        await client.get(tid)
    status, data, _ = await client.call("GET", f"/api/v1/tasks/{tid}", headers=AUTH)
    assert (status, data["code"]) == (429, "Throttling.RateQuota")
    status, _, _ = await client.call("GET", "/api/v1/tasks", headers=AUTH)
    assert status == 200  # list has its own window
    client.clock.advance(1.0)
    assert (await client.get(tid))["output"]["task_id"] == tid


async def test_no_quotas_and_scale(make_client: MakeClient) -> None:
    free = await make_client(task_time=100.0, quotas=False, concurrency_mode="reject")
    for _ in range(30):
        await free.create_ok(body("wan2.2-t2v-plus", size="832*480"))
    scaled = await make_client(task_time=100.0, qps_scale=2.0)
    for _ in range(4):
        await scaled.create_ok(body("wan2.2-t2v-plus", size="832*480"))
    assert (await scaled.create(body("wan2.2-t2v-plus", size="832*480")))[0] == 429
