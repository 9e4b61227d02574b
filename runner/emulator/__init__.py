"""The local DashScope emulator: an independent witness of the Wan video API (API.md), built on aiohttp.

It imports ``runner.models`` and nothing else of the runner. Entry points: ``create_app``,
``EmulatorServer`` (async, in the current loop), ``run_in_thread`` (sync clients), ``wanbatch emulator``.

The names below are imported on first use (PEP 562), so ``wanbatch run`` — whose parser adds the
emulator's options from ``runner.emulator.cli`` — does not pay for the server, numpy and the MP4 writer.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runner.emulator.app import create_app
    from runner.emulator.clock import ManualClock, system_clock
    from runner.emulator.config import EmulatorConfig
    from runner.emulator.faults import FaultRule, parse_fault
    from runner.emulator.protocol import body_digest
    from runner.emulator.server import EmulatorServer, ThreadedEmulator, run_in_thread
    from runner.emulator.state import EmulatorState

_WHERE = {
    "create_app": "app",
    "ManualClock": "clock",
    "system_clock": "clock",
    "EmulatorConfig": "config",
    "FaultRule": "faults",
    "parse_fault": "faults",
    "body_digest": "protocol",
    "EmulatorServer": "server",
    "ThreadedEmulator": "server",
    "run_in_thread": "server",
    "EmulatorState": "state",
}

__all__ = [
    "EmulatorConfig",
    "EmulatorServer",
    "EmulatorState",
    "FaultRule",
    "ManualClock",
    "ThreadedEmulator",
    "body_digest",
    "create_app",
    "parse_fault",
    "run_in_thread",
    "system_clock",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"runner.emulator.{module}"), name)
