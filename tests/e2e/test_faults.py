"""Every fault kind of the emulator at once: the run ends (bounded time), each job is downloaded or failed
with the server's code, the exit code says which, and no request body is paid for twice."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from runner.emulator.config import EmulatorConfig
from runner.emulator.faults import REQUEST_KINDS
from runner.store.replay import replay

from .conftest import assert_never_paid_twice, assert_no_key, cli, ledger_lines, write_manifest

#: Every kind at a moderate rate. Request kinds hit every API route (and the file route where they apply);
#: task kinds are decided once per accepted create.
FAULTS = (
    "429=0.08",
    "500=0.04",
    "502=0.02",
    "503=0.04",
    "reset=0.04",
    "slow=0.05",
    "truncate=0.15",
    "500@file=0.1",
    "reset@file=0.05",
    "reset_after_create=0.12",
    "fail=0.1",
    "inspection=0.08",
    "stuck=0.05",
    "expired_url=0.08",
)
#: Task-level codes the emulator gives (runner/emulator/tasks.py) and download failures the runner records.
SERVER_CODES = {"InternalError", "InternalError.Timeout", "DataInspectionFailed"}
JOBS = 14
#: The runner's limits to match the scaled quotas.
QUICK = ["--qps", "20", "--max-in-flight", "20"]


def test_every_fault_kind_ends_each_job_downloaded_or_failed_with_its_code(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(
        speed=3600.0,
        task_time=1800.0,  # half a real second
        retention=3600.0 * 24 * 365,
        slow_seconds=0.3,
        seed=11,
        qps_scale=4.0,  # 20 creates/s and 20 tasks at once for wan2.6: the run is bound by the faults, not quotas
        faults=EmulatorConfig.parse_faults(FAULTS),
    )
    manifest = write_manifest(tmp_path / "m.yaml", JOBS)
    out = tmp_path / "out"
    t0 = time.monotonic()
    r = cli("run", str(manifest), "--out", str(out), "--base-url", emu.base_url, *QUICK, cwd=tmp_path, timeout=90)
    wall = time.monotonic() - t0
    assert wall < 60, f"the run took {wall:.1f} s"
    stats = emu.stats()
    injected = stats["faults_injected"]
    # task kinds are decided by the accepted create's number, so seed 11 hits these among the first 14
    for kind in ("reset_after_create", "fail", "inspection", "stuck", "expired_url"):
        assert injected.get(kind, 0) > 0, f"seed 11 no longer injects {kind}: {injected}"
    # request kinds land on whichever request comes n-th, so only their total is certain
    assert sum(n for k, n in injected.items() if k in REQUEST_KINDS) >= 5, injected

    state = replay(out / "ledger.jsonl")
    assert len(state.jobs) == JOBS
    by_state = Counter(j.state for j in state.jobs.values())
    assert set(by_state) <= {"downloaded", "failed"}, by_state
    for job in state.jobs.values():
        if job.state == "failed":
            assert job.failure is not None and job.failure.code, job
            assert job.failure.code in SERVER_CODES or job.failure.code.startswith("UrlExpired"), (
                job.name,
                job.failure,
            )
    assert r.returncode == (1 if by_state["failed"] else 0), (by_state, r.stderr[-3000:])
    assert by_state["downloaded"] > 0

    # a lost create answer is adopted, not sent again; a body is sent again only after its task FAILED
    assert_never_paid_twice(emu, out)
    adopted = [line for line in ledger_lines(out) if line["event"] == "submitted" and line.get("adopted")]
    assert len(adopted) >= 1 and stats["resets_after_create"] >= 1
    assert_no_key(out, r.stdout, r.stderr)


def test_a_task_that_only_answers_expired_urls_fails_the_job_and_retry_never_regenerates(
    tmp_path: Path, emulator: Any
) -> None:
    # regression: the downloader asked the task for a fresh URL forever when every answer was expired
    emu = emulator(speed=3600.0, task_time=1800.0, faults=EmulatorConfig.parse_faults(["expired_url=1"]))
    manifest = write_manifest(tmp_path / "m.yaml", 1)
    out = tmp_path / "out"
    args = ("run", str(manifest), "--out", str(out), "--base-url", emu.base_url)
    r = cli(*args, cwd=tmp_path, timeout=40)
    assert r.returncode == 1, r.stderr[-3000:]
    (job,) = replay(out / "ledger.jsonl").jobs.values()
    assert job.state == "failed" and job.failure is not None
    assert (job.failure.stage, job.failure.code) == ("download", "UrlExpired")
    assert "UrlExpired" in r.stdout
    queries = emu.stats()["queries"]
    assert queries < 20, f"{queries} queries for one task"

    # regression: --retry-failed submitted a job again whose task had succeeded (and billed) when only its
    # download had failed; it must go back to the downloader instead
    again = cli(*args, "--retry-failed", cwd=tmp_path, timeout=40)
    assert again.returncode == 1, again.stderr[-3000:]
    assert emu.stats()["submitted"] == 1, "a billed task was generated again"
    (job,) = replay(out / "ledger.jsonl").jobs.values()
    assert job.failure is not None and job.failure.code == "UrlExpired"
