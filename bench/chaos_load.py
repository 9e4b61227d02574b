"""Chaos 6, load: 10,000 jobs against the emulator with its quotas off. The run completes, its peak RSS
is reported, and the ledger it wrote replays in under 5 s.

The runner's own query budget (10 polls/s: half the account's 20 QPS) would make 10,000 polls take 1,000 s
alone; an account with raised quotas would raise it too. The CLI has no flag for it, so the child raises
``runner.engine.limits.QUERY_QPS`` and the poll schedule's ``budget_qps`` (8/s) before calling the unchanged
``runner.cli.main``; everything else is the CLI as shipped.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.chaos_common import check_ledger, emulator, has_traceback, reap, spawn, write_manifest
from runner.store.replay import replay

QUERY_QPS = 400
_CHILD = """
import dataclasses, sys
import runner.commands.run, runner.engine.limits, runner.engine.poll_rule
qps = float(sys.argv.pop(1))
runner.engine.limits.QUERY_QPS = qps

@dataclasses.dataclass(frozen=True)
class RaisedPolls(runner.engine.poll_rule.PollConfig):
    budget_qps: float = qps * 0.8

runner.commands.run.PollConfig = RaisedPolls
from runner.cli import main
raise SystemExit(main())
"""


def load(work: Path, *, jobs: int = 10_000, timeout: float = 600) -> dict[str, Any]:
    import sys

    work.mkdir(parents=True, exist_ok=True)
    manifest = write_manifest(work / "m.yaml", jobs, name="load")
    out = work / "out"
    with emulator(quotas=False, speed=10_000.0, task_time=5_000.0) as emu:
        argv = [
            sys.executable,
            "-c",
            _CHILD,
            str(QUERY_QPS),
            "run",
            str(manifest),
            "--out",
            str(out),
            "--base-url",
            emu.base_url,
            "--qps",
            "100000",
            "--max-in-flight",
            "100000",
        ]
        t0 = time.monotonic()
        proc = spawn(argv, work, "load")
        samples = _sample_rss(proc.pid, t0 + timeout)
        res = reap(proc, t0, work, "load", timeout=max(1.0, t0 + timeout - time.monotonic()))
        stats = emu.stats()
    t1 = time.perf_counter()
    state = replay(out / "ledger.jsonl")
    replay_s = time.perf_counter() - t1
    led = check_ledger(out)
    done = sum(1 for j in state.jobs.values() if j.state == "downloaded")
    return {
        "jobs": jobs,
        "rc": res.rc,
        "downloaded": done,
        "wall_s": round(res.wall, 1),
        "jobs_per_s": round(done / res.wall, 1) if res.wall else 0,
        "peak_rss_mb": round(res.rss_mb),
        "rss_mb_at_quarters": _quarters(samples),
        "ledger_lines": led.lines,
        "ledger_mb": round((out / "ledger.jsonl").stat().st_size / 1e6, 1),
        "replay_s": round(replay_s, 2),
        "duplicate_submissions": stats["duplicate_submissions"],
        "tracebacks": int(has_traceback(res.err)),
    }


def _sample_rss(pid: int, deadline: float) -> list[float]:
    """The child's resident set (MB) once a second until it exits (a zombie has no VmRSS line)."""
    samples: list[float] = []
    while time.monotonic() < deadline:
        try:
            text = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            break
        line = next((ln for ln in text.splitlines() if ln.startswith("VmRSS:")), None)
        if line is None:
            break
        samples.append(int(line.split()[1]) / 1024)
        time.sleep(1.0)
    return samples


def _quarters(samples: list[float]) -> list[int]:
    """RSS at 25, 50, 75 and 100 % of the run's wall time: flat means the numbers stay close."""
    if not samples:
        return []
    return [round(samples[min(len(samples) - 1, int(len(samples) * q) - 1)]) for q in (0.25, 0.5, 0.75, 1.0)]


def passed(r: dict[str, Any]) -> bool:
    return bool(r["rc"] == 0 and r["downloaded"] == r["jobs"] and r["replay_s"] < 5 and r["tracebacks"] == 0)


if __name__ == "__main__":
    import json
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        res = load(Path(d), jobs=int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
        print(json.dumps(res, indent=1), passed(res))
