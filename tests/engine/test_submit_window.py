"""The submission window: ``take_slot`` admits at most ``submit_window`` jobs whose create is unanswered, so
a run with quotas off never writes thousands of intents ahead of their requests."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.engine.context import RunContext
from runner.engine.job import Job
from runner.engine.settings import PipelineConfig
from runner.store.events import PLANNED, SUBMITTED, SUBMITTING
from runner.store.ledger import LedgerWriter
from runner.store.state import RunState


@dataclass(frozen=True)
class Spec:
    job_id: str
    name: str = "clip"
    model: str = "wan2.6-t2v"
    request: dict[str, Any] = field(default_factory=dict)
    size: str = "1280*720"
    duration: int = 5
    seed: int | None = None


async def _setup(tmp_path: Path, ledger: LedgerWriter, n: int, window: int) -> tuple[RunContext, list[Job]]:
    cfg = PipelineConfig(out_dir=tmp_path, region="cn-beijing", submit_window=window)
    ctx = RunContext(cfg=cfg, client=None, ledger=ledger, state=RunState(), limits=None)  # type: ignore[arg-type]
    jobs = []
    for i in range(n):
        jid = f"job{i}"
        await ctx.record(jid, PLANNED, name=f"clip{i}", model="wan2.6-t2v")
        job = Job(Spec(jid), ctx.state.jobs[jid])
        job.slot = True  # the in-flight cap is not what these tests are about
        jobs.append(job)
    return ctx, jobs


async def _waits(aw: Any) -> asyncio.Task[Any]:
    t = asyncio.ensure_future(aw)
    for _ in range(5):
        await asyncio.sleep(0)
    return t


async def test_a_third_job_waits_until_an_answer_is_recorded(tmp_path: Path) -> None:
    async with LedgerWriter(tmp_path / "ledger.jsonl") as ledger:
        ctx, (a, b, c) = await _setup(tmp_path, ledger, 3, window=2)
        assert await ctx.take_slot(a) and await ctx.take_slot(b)
        third = await _waits(ctx.take_slot(c))
        assert not third.done()
        await ctx.record(a, SUBMITTING, attempt=1, model="wan2.6-t2v")
        for _ in range(5):
            await asyncio.sleep(0)
        assert not third.done()  # an intent is not an answer
        await ctx.record(a, SUBMITTED, task_id="t-a")
        assert await asyncio.wait_for(third, timeout=5) is True
        assert not a.unanswered and b.unanswered and c.unanswered


async def test_a_job_given_up_before_its_create_frees_its_place(tmp_path: Path) -> None:
    async with LedgerWriter(tmp_path / "ledger.jsonl") as ledger:
        ctx, (a, b) = await _setup(tmp_path, ledger, 2, window=1)
        assert await ctx.take_slot(a)
        second = await _waits(ctx.take_slot(b))
        assert not second.done()
        a.slot = False  # (no Limits here: only the window's bookkeeping is exercised)
        await ctx.free_slot(a)  # e.g. over budget: left without a request
        assert await asyncio.wait_for(second, timeout=5) is True


async def test_drain_ends_the_wait_for_the_window(tmp_path: Path) -> None:
    async with LedgerWriter(tmp_path / "ledger.jsonl") as ledger:
        ctx, (a, b) = await _setup(tmp_path, ledger, 2, window=1)
        assert await ctx.take_slot(a)
        second = await _waits(ctx.take_slot(b))
        ctx.draining.set()
        assert await asyncio.wait_for(second, timeout=5) is False
        assert not b.unanswered
