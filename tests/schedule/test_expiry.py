"""Expiry: a run resumed after the server's retention marks the jobs whose tasks became UNKNOWN before
their videos were saved as ``expired`` (paid, lost) — in the ledger, the summary and the money guard —
and generates them again only with ``--regenerate-expired``."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.emulator.clock import ManualClock
from runner.emulator.config import EmulatorConfig
from runner.emulator.server import run_in_thread
from runner.store.replay import replay

from .conftest import KEY, ledger, wanbatch, write_manifest

ROOT = Path(__file__).resolve().parents[2]
DAY = 24 * 3600.0


class Ticker:
    """Moves a ManualClock forward (500x real time) while running, so tasks finish when we want them to."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.clock.advance(5.0)

    def __enter__(self) -> Ticker:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture
def frozen() -> Iterator[tuple[ManualClock, str, object]]:
    clock = ManualClock()
    emu = run_in_thread(EmulatorConfig(speed=1, task_time=60, port=0, seed=3), clock=clock)
    try:
        yield clock, emu.base_url, emu
    finally:
        emu.stop()


def _env() -> dict[str, str]:
    import os

    e = {k: v for k, v in os.environ.items() if not k.startswith("DASHSCOPE")}
    e.update(PYTHONPATH=str(ROOT), DASHSCOPE_API_KEY=KEY)
    return e


def test_tasks_lost_to_retention_are_expired_and_regenerated_only_when_asked(
    tmp_path: Path, frozen: tuple[ManualClock, str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    clock, base_url, emu = frozen
    m = write_manifest(tmp_path / "m.yaml", ["e0", "e1"])
    out = tmp_path / "out"
    run = ["run", str(m), "--out", str(out), "--base-url", base_url]
    # night 1: both tasks are submitted, then the run is killed (the emulator's clock stands still, so
    # they never finish)
    proc = subprocess.Popen([sys.executable, "-m", "runner", *run], cwd=tmp_path, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if (out / "ledger.jsonl").exists() and sum(x["event"] == "submitted" for x in ledger(out)) == 2:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
    assert emu.stats()["submitted"] == 2  # type: ignore[attr-defined]

    clock.advance(DAY + 3600)  # the next night: the server has forgotten both tasks
    code, stdout, err = wanbatch(capsys, *run, "--budget", "10")
    assert code == 1, err
    summary = replay(out / "ledger.jsonl").summary()
    assert summary["states"]["expired"] == 2 and summary["states"]["downloaded"] == 0
    assert "expired 2" in stdout
    assert [x["event"] for x in ledger(out) if x["job_id"]].count("expired") == 2

    # --retry-failed is about failures: expired videos were paid for once already, so they stay
    code, _, _ = wanbatch(capsys, *run, "--retry-failed")
    assert code == 1
    assert emu.stats()["submitted"] == 2  # type: ignore[attr-defined]

    with Ticker(clock):
        code, _, err = wanbatch(capsys, *run, "--regenerate-expired")
    assert code == 0, err
    summary = replay(out / "ledger.jsonl").summary()
    assert summary["states"]["downloaded"] == 2
    assert emu.stats()["submitted"] == 4  # type: ignore[attr-defined]
