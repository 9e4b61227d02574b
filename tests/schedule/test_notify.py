"""Notification delivery on its own: retries on what may pass, none on a refusal, a timeout per attempt, a
hook that gets the JSON on stdin without the API key in its environment, and nothing ever raised."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from aiohttp import web

from runner.schedule.notify import build_summary, deliver, post_json, run_hook

STATUS = {
    "name": "nightly",
    "jobs": 3,
    "states": {"downloaded": 1, "failed": 2},
    "seconds": 5,
    "cost": 3.0,
    "currency": "CNY",
    "failures": [
        {"name": "a", "code": "DataInspectionFailed", "message": "m"},
        {"name": "b", "code": "DataInspectionFailed", "message": "m"},
    ],
}


async def _server(handler: Any) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/h/{token}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/h/secret-token"


async def test_retries_5xx_and_timeouts_then_delivers() -> None:
    answers = ["slow", 500, 429, 200]
    got: list[dict[str, Any]] = []

    async def handler(request: web.Request) -> web.Response:
        what = answers.pop(0)
        if what == "slow":
            await asyncio.sleep(1)
        got.append(await request.json())
        return web.Response(status=int(what) if what != "slow" else 200)

    runner, url = await _server(handler)
    try:
        summary = build_summary(STATUS, out_dir="/runs/n", exit_code=1, left=2, wall_seconds=12.5, now=1.0)
        assert summary.failures_by_code == {"DataInspectionFailed": 2} and summary.ok is False
        ok = await deliver(summary, [url], attempts=4, per_try_timeout=0.3, backoff=0.0)
    finally:
        await runner.cleanup()
    assert ok
    assert answers == []
    assert got[-1] == json.loads(summary.model_dump_json())


async def test_a_refusal_is_not_retried_and_nothing_raises() -> None:
    calls = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        return web.Response(status=404)

    runner, url = await _server(handler)
    try:
        assert await post_json(url, b"{}", attempts=5, backoff=0.0) is False
    finally:
        await runner.cleanup()
    assert calls == 1
    assert await post_json("http://127.0.0.1:9/nothing", b"{}", attempts=2, backoff=0.0) is False
    assert await post_json("not a url", b"{}", attempts=1) is False


async def test_hook_reads_the_summary_without_the_api_key(tmp_path: Path) -> None:
    dump = tmp_path / "dump"
    env = {"PATH": "/usr/bin:/bin", "DASHSCOPE_API_KEY": "sk-hookSECRET99", "KEEP": "yes"}
    cmd = f'cat > {dump}.json; echo "key=${{DASHSCOPE_API_KEY:-none}} keep=$KEEP" > {dump}.env'
    assert await run_hook(cmd, b'{"x": 1}', environ=env)
    written, seen_env = await asyncio.to_thread(
        lambda: (Path(f"{dump}.json").read_text(), Path(f"{dump}.env").read_text())
    )
    assert json.loads(written) == {"x": 1}
    assert seen_env.strip() == "key=none keep=yes"
    assert not await run_hook("exit 4", b"{}", environ=env)
    assert not await run_hook("sleep 30 & sleep 30", b"{}", environ=env, time_limit=0.3)
