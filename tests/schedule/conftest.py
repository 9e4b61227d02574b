"""Helpers for the nightly-run tests: an emulator on 127.0.0.1, small manifests whose jobs cost 1.20 CNY
each, ``wanbatch`` called in-process, and a local aiohttp server that records notifications."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from runner.cli import main
from runner.emulator.config import EmulatorConfig
from runner.emulator.server import ThreadedEmulator, run_in_thread

KEY = "sk-nightlyTESTkey4242"
#: wan2.6-t2v, 720P, 2 s in cn-beijing: 0.6 CNY/s x 2 s.
JOB_COST = 1.2


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DASHSCOPE_HTTP_BASE_URL",):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DASHSCOPE_API_KEY", KEY)


@pytest.fixture
def emulator() -> Iterator[ThreadedEmulator]:
    emu = run_in_thread(EmulatorConfig(speed=600, task_time=90, port=0, seed=11))
    try:
        yield emu
    finally:
        emu.stop()


def write_manifest(path: Path, names: list[str], *, name: str = "nightly") -> Path:
    """One wan2.6 job per name, each with its own prompt (a resubmission shows as a duplicate)."""
    jobs = "".join(f"  - name: {n}\n    prompt: Night scene {n}, a lighthouse beam over dark water.\n" for n in names)
    path.write_text(
        f'version: 1\nname: {name}\ndefaults:\n  model: wan2.6-t2v\n  size: "1280*720"\n  duration: 2\n'
        f"  prompt_extend: false\njobs:\n{jobs}",
        encoding="utf-8",
    )
    return path


def wanbatch(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``wanbatch ARGV`` in this process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert KEY not in out + err
    return code, out, err


def ledger(out: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (out / "ledger.jsonl").read_text(encoding="utf-8").splitlines() if x]


def calm_timezone() -> str:
    """An ``Etc/GMT±k`` zone where it is about noon now, so no test day boundary falls inside the test."""
    k = (12 - datetime.now(UTC).hour) % 24
    if k > 14:
        k -= 24
    return "Etc/GMT" if k == 0 else f"Etc/GMT-{k}" if k > 0 else f"Etc/GMT+{-k}"


class HookServer:
    """An aiohttp server in a thread: ``POST /hook`` answers 503 to the first request and stores the JSON of
    the next ones; ``POST /reject`` answers 400."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.attempts = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _hook(self, request: web.Request) -> web.Response:
        self.attempts += 1
        if self.attempts == 1:
            return web.Response(status=503)
        self.received.append(await request.json())
        return web.json_response({"ok": True})

    async def _reject(self, request: web.Request) -> web.Response:
        return web.Response(status=400)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        app.router.add_post("/reject", self._reject)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(runner.addresses[0][1])
        self._stop = asyncio.Event()
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    def __enter__(self) -> HookServer:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
