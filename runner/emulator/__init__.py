"""The local DashScope emulator: an independent witness of the Wan video API (API.md), built on aiohttp.

It imports ``runner.models`` and nothing else of the runner. Entry points: ``create_app``,
``EmulatorServer`` (async, in the current loop), ``run_in_thread`` (sync clients), ``wanbatch emulator``.
"""

from runner.emulator.app import create_app
from runner.emulator.clock import ManualClock, system_clock
from runner.emulator.config import EmulatorConfig
from runner.emulator.faults import FaultRule, parse_fault
from runner.emulator.protocol import body_digest
from runner.emulator.server import EmulatorServer, ThreadedEmulator, run_in_thread
from runner.emulator.state import EmulatorState

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
