"""A run into a folder whose ledger is missing or empty: what the folder already paid for is adopted, not paid again.

Issue 14: a folder whose ledger was emptied, its videos and sidecars still there, paid for all its jobs again.
Two records survive a lost ledger:

* each saved video's sidecar (``videos/<name>.json``) holds its job id, task id, request, usage and sha256;
* the host's register (``runner.store.claims``) holds every task this folder claimed, saved or not yet.

For every job of the manifest one of them names, the ledger gets back the lines that say so: ``planned``,
``submitting``, ``submitted`` (adopted) and, when the video is there with its sha256, ``succeeded`` and
``downloaded``. A task whose video is missing is then followed and downloaded like any other; nothing is sent.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runner.engine.context import RunContext, log
from runner.engine.job import Spec
from runner.models import MODELS
from runner.store.events import DOWNLOADED, PLANNED, SUBMITTED, SUBMITTING, SUCCEEDED
from runner.store.files import sha256_file

VIDEOS = "videos"


def planned_fields(spec: Spec, region: str) -> dict[str, object]:
    """The ``planned`` line of a job: its request and what the plan priced it at."""
    model = MODELS[spec.model]
    try:
        cost = round(model.cost(region, spec.size, spec.duration), 6)
    except KeyError:
        cost = 0.0
    return {
        "name": spec.name,
        "model": spec.model,
        "request": spec.request,
        "size": spec.size,
        "duration": spec.duration,
        "seed": spec.seed,
        "seconds": spec.duration,
        "cost": cost,
    }


async def recover(ctx: RunContext, specs: Sequence[Spec]) -> int:
    """Write back the lines of the jobs the sidecars and the register say this folder paid for; how many."""
    by_id = {s.job_id: s for s in specs}
    found = await asyncio.to_thread(_sidecars, ctx.cfg.out_dir, by_id)
    unanswered: dict[str, tuple[float, str]] = {}
    registers = {a.claims.url: a.claims for a in ctx.accounts.all if a.claims is not None}  # one per API host
    for claims in registers.values():
        register = claims.read()
        for task_id, (folder, job_id) in register.claimed.items():  # the latest claim of a job wins
            if folder == claims.folder and job_id in by_id and not found.get(job_id, {}).get("path"):
                found[job_id] = {"task_id": task_id, "account": register.account_of.get(task_id)}
        for j, t0 in register.own_intents.items():
            if j in by_id and j not in found:
                unanswered[j] = (t0, claims.account)
    for job_id, (t0, acct) in unanswered.items():  # a create that was in flight: reconciled, never sent blindly
        spec = by_id[job_id]
        await ctx.record(job_id, PLANNED, **planned_fields(spec, ctx.cfg.region))
        await ctx.record(job_id, SUBMITTING, ts=t0, attempt=1, model=spec.request.get("model", spec.model),
                         account=acct)  # fmt: skip
    for job_id, side in found.items():
        spec = by_id[job_id]
        task_id = str(side["task_id"])
        named = side.get("account")
        name = named if isinstance(named, str) else ctx.accounts.home.name
        await ctx.record(job_id, PLANNED, **planned_fields(spec, ctx.cfg.region))
        await ctx.record(job_id, SUBMITTING, attempt=1, model=spec.request.get("model", spec.model), account=name)
        await ctx.record(job_id, SUBMITTED, task_id=task_id, request_id=None, adopted=True, account=name)
        if side.get("path"):
            times = side.get("timings") or {}
            await ctx.record(job_id, SUCCEEDED, task_id=task_id, usage=side.get("usage"),
                             orig_prompt=side.get("orig_prompt"), actual_prompt=side.get("actual_prompt"),
                             submit_time=times.get("submit_time"), scheduled_time=times.get("scheduled_time"),
                             end_time=times.get("end_time"))  # fmt: skip
            await ctx.record(job_id, DOWNLOADED, path=side["path"], bytes=side["bytes"], sha256=side["sha256"])
    if found or unanswered:
        log.warning("run.recovered", jobs=len(found), saved=sum(1 for s in found.values() if s.get("path")),
                    unanswered=len(unanswered))  # fmt: skip
    return len(found) + len(unanswered)


def _sidecars(out: Path, jobs: dict[str, Spec]) -> dict[str, dict[str, Any]]:
    """Sidecars of this manifest's jobs; ``path`` set when the video is there with the sidecar's sha256."""
    found: dict[str, dict[str, Any]] = {}
    for side in sorted((out / VIDEOS).glob("*.json")):
        try:
            data = json.loads(side.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # not a sidecar of ours, or damaged: it proves nothing
        if not isinstance(data, dict) or data.get("job_id") not in jobs or not isinstance(data.get("task_id"), str):
            continue
        video = side.with_suffix(".mp4")
        if video.is_file() and data.get("sha256") and sha256_file(video) == data["sha256"]:
            data["path"] = video.relative_to(out).as_posix()
            data["bytes"] = video.stat().st_size
        found[data["job_id"]] = data
    return found
