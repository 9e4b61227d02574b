"""Submissions overlap: when the limits allow several creates at once, the runner does not wait for one
create's answer before writing the next job's intent (one at a time it could never pass ~100 submissions/s:
each costs two fsyncs and a round trip; see docs/benchmarks/run.md, "Overhead at scale")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runner.emulator.config import EmulatorConfig

from .conftest import assert_complete, cli, ledger_lines, write_manifest


def test_next_intent_is_written_while_a_create_is_still_unanswered(tmp_path: Path, emulator: Any) -> None:
    # every create is answered 1.5 s late; the limits admit all 4 jobs at once
    emu = emulator(faults=EmulatorConfig.parse_faults(["slow@create=1"]), slow_seconds=1.5)
    manifest = write_manifest(tmp_path / "m.yaml", 4)
    out = tmp_path / "out"
    r = cli("run", str(manifest), "--out", str(out), "--base-url", emu.base_url, "--qps", "50",
            "--max-in-flight", "4", cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert_complete(out, 4)
    events = [line["event"] for line in ledger_lines(out)]
    first_answer = events.index("submitted")
    assert events[:first_answer].count("submitting") >= 2, events
    assert emu.stats()["submitted"] == 4
