"""Starting and stopping the emulator: inside the current event loop (``EmulatorServer``, for async tests),
in a thread with its own loop (``run_in_thread``, for sync clients such as the official SDK), or in the
foreground until SIGINT/SIGTERM (``serve``, for the command line)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import threading
from types import TracebackType
from typing import Any

from aiohttp import web

from runner.emulator.answers import STATE
from runner.emulator.app import create_app
from runner.emulator.clock import Clock, system_clock
from runner.emulator.config import EmulatorConfig
from runner.emulator.state import EmulatorState


class EmulatorServer:
    """``async with EmulatorServer(config) as emu:`` serves on 127.0.0.1, port 0 (a free one) unless the
    config names a port, inside the running loop; ``emu.base_url`` ends in ``/api/v1``."""

    def __init__(self, config: EmulatorConfig | None = None, *, clock: Clock = system_clock, port: int = 0) -> None:
        self.config = config if config is not None else EmulatorConfig()
        self.app = create_app(self.config, clock=clock)
        self.state: EmulatorState = self.app[STATE]
        self._port = port
        self._runner: web.AppRunner | None = None
        self.host = self.config.host
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/api/v1"

    def stats(self) -> dict[str, Any]:
        return self.state.stats()

    async def start(self) -> None:
        kwargs: dict[str, Any] = {} if self.config.access_log else {"access_log": None}
        runner = web.AppRunner(self.app, **kwargs)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self._port, reuse_address=True)
        await site.start()
        self._runner = runner
        self.port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> EmulatorServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


class ThreadedEmulator:
    """An emulator running in a daemon thread with its own event loop; ``stop()`` (or leaving the ``with``
    block) shuts it down and joins the thread."""

    def __init__(self, config: EmulatorConfig, clock: Clock = system_clock, port: int = 0) -> None:
        self._server = EmulatorServer(config, clock=clock, port=port)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stopped: asyncio.Event | None = None
        self.error_answer: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="emulator", daemon=True)

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def base_url(self) -> str:
        return self._server.base_url

    @property
    def state(self) -> EmulatorState:
        return self._server.state

    def stats(self) -> dict[str, Any]:
        """A consistent snapshot, taken on the emulator's own loop."""
        return asyncio.run_coroutine_threadsafe(self._stats(), self._loop).result(timeout=10)

    async def _stats(self) -> dict[str, Any]:
        return self._server.stats()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._stopped = asyncio.Event()
        try:
            await self._server.start()
        except BaseException as e:
            self.error_answer = e
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._stopped.wait()
        finally:
            await self._server.stop()

    def start(self) -> ThreadedEmulator:
        self._thread.start()
        self._ready.wait(timeout=30)
        if self.error_answer is not None:
            raise RuntimeError(f"emulator failed to start: {self.error_answer}") from self.error_answer
        return self

    def stop(self) -> None:
        if self._thread.is_alive() and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
            self._thread.join(timeout=30)

    def __enter__(self) -> ThreadedEmulator:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def run_in_thread(
    config: EmulatorConfig | None = None, *, clock: Clock = system_clock, port: int = 0
) -> ThreadedEmulator:
    """Start an emulator in a background thread (for sync clients); returns once it listens."""
    return ThreadedEmulator(config if config is not None else EmulatorConfig(), clock, port).start()


async def serve(config: EmulatorConfig) -> None:
    """Serve ``config.host:config.port`` until SIGINT or SIGTERM; prints the base URL once listening."""
    server = EmulatorServer(config, port=config.port)
    await server.start()
    print(f"emulator listening on {server.base_url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()
        print("emulator stopped", file=sys.stderr, flush=True)
