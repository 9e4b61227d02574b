"""The account pool (issue 18): a job's slot goes to the usable account with the most room, a wait for room takes
nothing until a slot is free, and an account refusing a model, or a region not offering it, is never chosen.
No sleeping: slots are released by the test, and time is a FakeClock."""

from __future__ import annotations

import asyncio

import pytest

from runner.engine.accounts import Account, AccountPool
from runner.engine.api import ApiConfig, DashScopeClient
from runner.engine.limits import Limits
from runner.engine.refusal import Refusal
from tests.engine.clock import FakeClock

MODEL = "wan2.6-t2v"


def account(name: str, cap: int, clock: FakeClock, region: str = "cn-beijing") -> Account:
    client = DashScopeClient(ApiConfig("http://127.0.0.1:9/api/v1", f"sk-{name}-key"))  # never asked here
    return Account(name, region, client, Limits(clock, per_model={MODEL: (None, cap)}), labelled=True)


async def test_a_slot_goes_to_the_account_with_the_most_room() -> None:
    clock = FakeClock()
    a, b = account("a", 2, clock), account("b", 4, clock)
    pool = AccountPool([a, b])
    got = [(await pool.slot(MODEL, pool.usable(MODEL))).name for _ in range(6)]
    assert got == ["b", "b", "a", "b", "a", "b"]  # most room first; ties in file order
    assert a.limits.in_flight(MODEL).held == 2 and b.limits.in_flight(MODEL).held == 4


async def test_a_wait_takes_the_first_slot_freed_anywhere_and_a_cancelled_wait_takes_none() -> None:
    clock = FakeClock()
    a, b = account("a", 1, clock), account("b", 1, clock)
    pool = AccountPool([a, b])
    for _ in range(2):
        await pool.slot(MODEL, pool.usable(MODEL))
    waiter = asyncio.create_task(pool.slot(MODEL, pool.usable(MODEL)))
    await asyncio.sleep(0)
    assert not waiter.done()
    await b.limits.in_flight(MODEL).release()
    assert (await asyncio.wait_for(waiter, 5)).name == "b"
    cancelled = asyncio.create_task(pool.slot(MODEL, pool.usable(MODEL)))
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    await a.limits.in_flight(MODEL).release()
    assert a.limits.in_flight(MODEL).held == 0  # the cancelled wait took nothing


async def test_an_account_refusing_the_model_or_a_region_without_it_is_not_usable() -> None:
    clock = FakeClock()
    a, b, us = account("a", 5, clock), account("b", 5, clock), account("us", 5, clock, region="us-east-1")
    pool = AccountPool([a, b, us])
    assert [x.name for x in pool.usable("wan2.1-t2v-turbo")] == ["a", "b"]  # not offered in us-east-1
    assert [x.name for x in pool.usable("wan2.6-t2v-us")] == ["us"]
    a.refusals.add(Refusal("Model.AccessDenied", "no", scope="model", model=MODEL))
    assert [x.name for x in pool.usable(MODEL)] == ["b", "us"] and not a.out
    b.refusals.add(Refusal("Arrearage", "pay"))
    assert [x.name for x in pool.usable(MODEL)] == ["us"] and b.out and not pool.out
    us.refusals.add(Refusal("InvalidApiKey", "wrong"))
    a.refusals.add(Refusal("InvalidApiKey", "wrong"))
    assert pool.out and pool.usable(MODEL) == []


def test_each_account_spells_and_prices_the_model_in_its_region() -> None:
    clock = FakeClock()
    bj, sg = account("bj", 2, clock), account("sg", 2, clock, region="ap-southeast-1")
    assert (
        bj.spelling("wan2.1-t2v-turbo") == "wanx2.1-t2v-turbo" and sg.spelling("wan2.1-t2v-turbo") == "wan2.1-t2v-turbo"
    )
    assert bj.cost(MODEL, "1280*720", 5) != sg.cost(MODEL, "1280*720", 5)
    assert bj.cost("wan2.6-t2v-us", "1280*720", 5) is None  # not offered there: no price


def test_an_accounts_own_limits_win_over_the_flags_and_the_model_table() -> None:
    clock = FakeClock()
    limits = Limits(clock, qps=3, in_flight=4, per_model={MODEL: (2, 7)})
    assert limits.in_flight(MODEL).limit == 7 and limits.submit(MODEL).configured == 2
    assert limits.in_flight("wan2.5-t2v-preview").limit == 4  # the flag where the file says nothing
    assert Limits(clock).in_flight(MODEL).limit == 5  # the model table's default
