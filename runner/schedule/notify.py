"""Telling someone how a run went: ``--notify URL`` POSTs a JSON summary, ``--on-finish CMD`` runs a shell
command with the same JSON on its stdin.

Why it can never fail the run: the run's work is done and recorded by the time we notify; a webhook that
is down or a hook script that crashes is logged (``notify.failed``, ``hook.failed``) and the exit code
stays the run's. POSTs are retried on what may pass (connection errors, timeouts, 429, 5xx), each attempt
with a timeout; other 4xx answers are final. Only the URL's scheme and host are logged (a webhook URL
often carries its token in the path), and the hook runs without ``DASHSCOPE_API_KEY`` in its environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import structlog
from pydantic import BaseModel, ConfigDict

log = structlog.get_logger("wanbatch.notify")

#: Environment variables the hook never sees.
_SECRET_ENV = ("DASHSCOPE_API_KEY",)


class Failure(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    code: str | None
    message: str | None


class RunSummary(BaseModel):
    """The JSON a notification carries (the boundary: its shape is the contract with webhooks)."""

    model_config = ConfigDict(frozen=True)

    event: str = "wanbatch.run.finished"
    name: str | None
    out_dir: str
    exit_code: int
    ok: bool
    jobs: int
    states: dict[str, int]
    seconds: float  # seconds of video billed
    cost: float
    currency: str
    failures_by_code: dict[str, int]
    failures: list[Failure]  # the first 50
    left: int  # jobs of the manifest not finished this run
    orphans: int  # ledger jobs no longer in the manifest
    wall_seconds: float
    finished_at: float  # epoch seconds
    budget: str | None = None  # the cap's message when a cap stopped the run


def build_summary(
    status: Mapping[str, Any],
    *,
    out_dir: str | os.PathLike[str],
    exit_code: int,
    left: int = 0,
    orphans: int = 0,
    wall_seconds: float = 0.0,
    budget: str | None = None,
    now: float | None = None,
) -> RunSummary:
    """The summary from ``RunState.summary()`` (the ``status --json`` object) and the run's outcome."""
    failures = list(status.get("failures") or [])
    by_code: dict[str, int] = {}
    for f in failures:
        code = str(f.get("code") or "unknown")
        by_code[code] = by_code.get(code, 0) + 1
    return RunSummary(
        name=status.get("name"),
        out_dir=str(out_dir),
        exit_code=exit_code,
        ok=exit_code == 0,
        jobs=int(status.get("jobs") or 0),
        states=dict(status.get("states") or {}),
        seconds=float(status.get("seconds") or 0),
        cost=float(status.get("cost") or 0.0),
        currency=str(status.get("currency") or "CNY"),
        failures_by_code=dict(sorted(by_code.items())),
        failures=[
            Failure(name=str(f.get("name") or ""), code=f.get("code"), message=f.get("message")) for f in failures[:50]
        ],
        left=left,
        orphans=orphans,
        wall_seconds=round(wall_seconds, 3),
        finished_at=time.time() if now is None else now,
        budget=budget,
    )


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")


async def post_json(
    url: str,
    payload: bytes,
    *,
    attempts: int = 3,
    per_try_timeout: float = 10.0,
    backoff: float = 1.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> bool:
    """POST ``payload`` (JSON) to ``url``; True on a 2xx answer. Never raises."""
    where = _where(url)
    headers = {"Content-Type": "application/json", "User-Agent": "wanbatch"}
    last = ""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=per_try_timeout)) as session:
        for attempt in range(1, attempts + 1):
            try:
                async with session.post(url, data=payload, headers=headers, allow_redirects=False) as resp:
                    await resp.read()
                    if 200 <= resp.status < 300:
                        log.info("notify.sent", url=where, status=resp.status, attempt=attempt)
                        return True
                    last = f"HTTP {resp.status}"
                    if resp.status != 429 and resp.status < 500:
                        break  # the receiver refused it: sending again will not help
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
                last = type(exc).__name__
            if attempt < attempts:
                await sleep(backoff * 2 ** (attempt - 1))
    log.warning("notify.failed", url=where, error=last, attempts=attempt)
    return False


async def run_hook(
    cmd: str, payload: bytes, *, time_limit: float = 120.0, environ: Mapping[str, str] | None = None
) -> bool:
    """Run ``cmd`` in the shell with ``payload`` on stdin; True when it exits 0 in time. Never raises."""
    env = {k: v for k, v in (os.environ if environ is None else environ).items() if k not in _SECRET_ENV}
    try:
        proc = await asyncio.create_subprocess_shell(
            cmd,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group: a timeout ends the children it started too
        )
    except OSError as exc:
        log.warning("hook.failed", error=str(exc))
        return False
    try:
        out, _ = await asyncio.wait_for(proc.communicate(payload), time_limit)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        log.warning("hook.failed", error=f"still running after {time_limit:g} s: killed")
        return False
    if proc.returncode != 0:
        tail = out.decode(errors="replace")[-500:] if out else ""
        log.warning("hook.failed", exit_code=proc.returncode, output=tail)
        return False
    log.info("hook.done")
    return True


async def deliver(
    summary: RunSummary,
    urls: Iterable[str] = (),
    hooks: Iterable[str] = (),
    *,
    attempts: int = 3,
    per_try_timeout: float = 10.0,
    backoff: float = 1.0,
) -> bool:
    """Send the summary to every URL and hook, concurrently; True when all of them took it."""
    payload = json.dumps(summary.model_dump(), ensure_ascii=False).encode()
    jobs = [post_json(u, payload, attempts=attempts, per_try_timeout=per_try_timeout, backoff=backoff) for u in urls]
    jobs += [run_hook(c, payload) for c in hooks]
    if not jobs:
        return True
    results = await asyncio.gather(*jobs, return_exceptions=True)
    return all(r is True for r in results)


@dataclass(frozen=True)
class NotifySettings:
    """``--notify URL`` (repeatable) and ``--on-finish CMD`` (repeatable), made once by the CLI."""

    urls: tuple[str, ...] = ()
    hooks: tuple[str, ...] = ()


def notify_after_run(
    settings: NotifySettings, out_dir: Path, exit_code: int, *, left: int = 0, orphans: int = 0,
    wall_seconds: float = 0.0, budget: str | None = None,
) -> None:  # fmt: skip
    """The ``run`` command's last step: when ``--notify`` / ``--on-finish`` were given, read the run's
    summary from its ledger and deliver it. Any error is logged, never raised."""
    urls, hooks = list(settings.urls), list(settings.hooks)
    if not urls and not hooks:
        return
    try:
        from runner.store.ledger import LEDGER_NAME
        from runner.store.replay import replay

        status = replay(out_dir / LEDGER_NAME).summary()
        summary = build_summary(
            status, out_dir=out_dir, exit_code=exit_code, left=left, orphans=orphans, wall_seconds=wall_seconds,
            budget=budget,
        )  # fmt: skip
        asyncio.run(deliver(summary, urls, hooks))
    except Exception as exc:  # a notification never fails the run
        log.warning("notify.failed", error=f"{type(exc).__name__}: {exc}")
