"""``RunContext.until_stop`` and ``sleep``: ``aw`` runs in the caller's task and a stop interrupts it by
cancelling that task; these pin the edges of that (our cancel vs someone else's, a stop that lands after the
wait, a wait that swallows the cancel)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from runner.engine.context import RunContext
from runner.engine.waiting import Flag
from runner.store.state import RunState


def _ctx() -> RunContext:
    return RunContext(cfg=None, client=None, ledger=None, state=RunState(), limits=None)  # type: ignore[arg-type]


async def _forever(seen: list[str], tag: str) -> None:
    """Wait until cancelled; note the cancellation in ``seen``."""
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        seen.append(tag)
        raise


async def test_result_when_no_stop() -> None:
    ctx = _ctx()
    q: asyncio.Queue[int] = asyncio.Queue()
    q.put_nowait(7)
    assert await ctx.until_stop(q.get()) == (True, 7)


async def test_stop_during_the_wait_cancels_aw_and_leaves_the_caller_uncancelled() -> None:
    ctx = _ctx()
    seen: list[str] = []
    asyncio.get_running_loop().call_soon(ctx.stop.set)
    assert await ctx.until_stop(_forever(seen, "cancelled")) == (False, None)
    assert seen == ["cancelled"]
    me = asyncio.current_task()
    assert me is not None and me.cancelling() == 0
    await asyncio.sleep(0)  # no cancellation left pending on the caller


async def test_already_stopped_does_not_start_aw() -> None:
    ctx = _ctx()
    ctx.done.set()
    started: list[int] = []

    async def work() -> int:
        started.append(1)
        return 1

    assert await ctx.until_stop(work()) == (False, None)
    assert started == []


async def test_a_stop_set_by_aw_itself_after_which_it_returns_does_not_hit_the_caller_later() -> None:
    ctx = _ctx()

    async def sets_then_returns() -> str:
        ctx.stop.set()  # the flag's callbacks are scheduled now and run after the wait is over
        return "ok"

    assert await ctx.until_stop(sets_then_returns()) == (True, "ok")
    for _ in range(3):
        await asyncio.sleep(0)  # a late callback must not cancel this task


async def test_a_wait_that_swallows_the_cancel_still_reports_the_stop() -> None:
    ctx = _ctx()

    async def stubborn() -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return "swallowed"
        return "never"

    asyncio.get_running_loop().call_soon(ctx.stop.set)
    assert await ctx.until_stop(stubborn()) == (False, None)
    me = asyncio.current_task()
    assert me is not None and me.cancelling() == 0
    await asyncio.sleep(0)


async def test_cancelling_the_caller_cancels_aw_and_propagates() -> None:
    ctx = _ctx()
    seen: list[str] = []

    async def caller() -> Any:
        return await ctx.until_stop(_forever(seen, "aw cancelled"))

    t = asyncio.create_task(caller())
    await asyncio.sleep(0)
    t.cancel()
    with pytest.raises(asyncio.CancelledError):
        await t
    assert seen == ["aw cancelled"]


async def test_an_outside_cancel_together_with_a_stop_still_cancels_the_caller() -> None:
    ctx = _ctx()

    async def caller() -> Any:
        return await ctx.until_stop(asyncio.Event().wait())

    t = asyncio.create_task(caller())
    await asyncio.sleep(0)
    ctx.stop.set()
    t.cancel()
    with pytest.raises(asyncio.CancelledError):
        await t


async def test_an_extra_flag_and_a_plain_event_both_end_the_wait() -> None:
    ctx = _ctx()
    asyncio.get_running_loop().call_soon(ctx.draining.set)
    assert await ctx.until_stop(asyncio.Event().wait(), ctx.draining) == (False, None)
    plain = asyncio.Event()
    asyncio.get_running_loop().call_soon(plain.set)
    assert await ctx.until_stop(asyncio.Event().wait(), plain) == (False, None)
    q: asyncio.Queue[int] = asyncio.Queue()
    q.put_nowait(3)
    assert await ctx.until_stop(q.get(), asyncio.Event()) == (True, 3)


async def test_sleep_ends_early_on_stop_and_runs_out_otherwise() -> None:
    ctx = _ctx()
    assert await ctx.sleep(0.001) is True
    asyncio.get_running_loop().call_soon(ctx.stop.set)
    assert await ctx.sleep(3600) is False
    assert await ctx.sleep(1) is False  # already stopped


async def test_flag_watchers_run_from_the_loop_once_per_set() -> None:
    f = Flag()
    calls: list[str] = []
    f.add_watcher(lambda: calls.append("a"))
    gone = lambda: calls.append("gone")  # noqa: E731
    f.add_watcher(gone)
    f.remove_watcher(gone)
    f.set()
    assert calls == []  # never inside set()
    await asyncio.sleep(0)
    assert calls == ["a"]
    f.add_watcher(lambda: calls.append("late"))  # already set: called soon
    await asyncio.sleep(0)
    assert calls == ["a", "late"]


async def test_ten_thousand_waiters_all_end_on_one_stop_and_leave_no_watcher() -> None:
    ctx = _ctx()

    async def waiter() -> bool:
        ok, _ = await ctx.until_stop(asyncio.Event().wait())
        return ok

    tasks = [asyncio.create_task(waiter()) for _ in range(10_000)]
    await asyncio.sleep(0)
    assert len(ctx.stop._watchers) == 10_000
    ctx.stop.set()
    assert not any(await asyncio.gather(*tasks))
    assert not ctx.stop._watchers and not ctx.done._watchers
