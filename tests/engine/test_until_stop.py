"""``RunContext.until_stop`` and ``sleep``: ``aw`` runs in the caller's task and a stop interrupts it by
cancelling that task; these pin the edges of that (our cancel vs someone else's, a stop that lands after the
wait, a wait that swallows the cancel)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from runner.context import Flag, RunContext
from runner.state import RunState


def _ctx() -> RunContext:
    return RunContext(cfg=None, client=None, ledger=None, state=RunState(), limits=None)  # type: ignore[arg-type]


async def test_result_when_no_stop() -> None:
    ctx = _ctx()
    q: asyncio.Queue[int] = asyncio.Queue()
    q.put_nowait(7)
    assert await ctx.until_stop(q.get()) == (True, 7)


async def test_stop_during_the_wait_cancels_aw_and_leaves_the_caller_uncancelled() -> None:
    ctx = _ctx()
    seen: list[str] = []

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    asyncio.get_running_loop().call_soon(ctx.stop.set)
    assert await ctx.until_stop(forever()) == (False, None)
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

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append("aw cancelled")
            raise

    async def caller() -> Any:
        return await ctx.until_stop(forever())

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


async def test_flag_future_follows_set_and_clear() -> None:
    f = Flag()
    fut = f.fired()
    assert not fut.done()
    f.set()
    assert fut.done() and f.fired() is fut
    f.clear()
    assert not f.fired().done()
