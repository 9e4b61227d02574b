"""Limits configured 4× above the account's quotas, against an emulator that refuses (reject mode): a job
refused with ``Throttling.Concurrency`` gives its slot back and waits under the lowered cap, so the run
settles on the quota and every job still ends with one verified video and one task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .conftest import assert_complete, cli, write_manifest


def test_a_cap_above_the_quota_settles_and_every_job_is_done_once(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(concurrency_mode="reject")
    manifest = write_manifest(tmp_path / "m.yaml", 24)
    out = tmp_path / "out"
    r = cli("run", str(manifest), "--out", str(out), "--base-url", emu.base_url, "--qps", "20",
            "--max-in-flight", "20", cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert_complete(out, 24)
    stats = emu.stats()
    assert stats["submitted"] == 24  # each job made exactly one task
    assert stats["throttled_total"] >= 1  # the quota was met (else this test proves nothing)
