"""Fixtures for the emulator's tests: an emulator in the test's loop with a manual clock, and a client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from runner.emulator import EmulatorConfig, EmulatorServer, ManualClock

KEY = "sk-test-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}
CREATE_HEADERS = {**AUTH, "X-DashScope-Async": "enable", "Content-Type": "application/json"}
SEED_PROMPT = (
    "A thrilling detective chase story with cinematic storytelling. Shot 1 [0–3 s]: Wide shot of a rainy "
    "New York street at night, neon lights flickering, a detective in a black trench coat walking briskly."
)


def body(model: str = "wan2.6-t2v", prompt: str = "a cat", **params: Any) -> dict[str, Any]:
    b: dict[str, Any] = {"model": model, "input": {"prompt": prompt}}
    if params:
        b["parameters"] = params
    return b


class Client:
    """A thin aiohttp client for one emulator: JSON in, (status, json, headers) out."""

    def __init__(self, emu: EmulatorServer, session: aiohttp.ClientSession) -> None:
        self.emu = emu
        self.session = session
        self.clock: ManualClock = emu.state.base_clock  # type: ignore[assignment]

    async def call(
        self, method: str, path: str, *, json: Any = None, headers: dict[str, str] | None = None, data: Any = None
    ) -> tuple[int, Any, Any]:
        url = path if path.startswith("http") else self.emu.url + path
        async with self.session.request(method, url, json=json, headers=headers, data=data) as r:
            if "json" in r.content_type:
                return r.status, await r.json(), r.headers
            return r.status, await r.read(), r.headers

    async def create(
        self, b: dict[str, Any] | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any, Any]:
        return await self.call(
            "POST",
            "/api/v1/services/aigc/video-generation/video-synthesis",
            json=b or body(),
            headers=CREATE_HEADERS if headers is None else headers,
        )

    async def create_ok(self, b: dict[str, Any] | None = None) -> str:
        status, data, _ = await self.create(b)
        assert status == 200, data
        return str(data["output"]["task_id"])

    async def get(self, task_id: str, suffix: str = "") -> dict[str, Any]:
        status, data, _ = await self.call("GET", f"/api/v1/tasks/{task_id}{suffix}", headers=AUTH)
        assert status == 200, data
        return dict(data)

    async def status_of(self, task_id: str) -> str:
        return str((await self.get(task_id))["output"]["task_status"])

    async def stats(self) -> dict[str, Any]:
        _, data, _ = await self.call("GET", "/_emulator/stats")
        return dict(data)


MakeClient = Callable[..., Awaitable[Client]]


@pytest.fixture
async def make_client() -> AsyncIterator[MakeClient]:
    """``client = await make_client(speed=..., ...)``: an emulator on port 0 with a ManualClock."""
    servers: list[EmulatorServer] = []
    session = aiohttp.ClientSession()

    async def make(**kwargs: Any) -> Client:
        clock = ManualClock()
        emu = EmulatorServer(EmulatorConfig(**kwargs), clock=clock)
        await emu.start()
        servers.append(emu)
        return Client(emu, session)

    yield make
    await session.close()
    for emu in servers:
        await emu.stop()


@pytest.fixture
async def client(make_client: MakeClient) -> Client:
    """Default emulator: fixed 100 s tasks (25 s PENDING, 75 s RUNNING) at speed 1, quotas on."""
    return await make_client(task_time=100.0)
