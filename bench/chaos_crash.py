"""Chaos 1, crash/resume: the run is killed with SIGKILL at seeded random moments, started again each
time, then left to finish. Nothing may be lost, paid twice, or left unreadable in the ledger."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from bench.chaos_common import (
    check_ledger,
    emulator,
    has_traceback,
    paid_twice,
    reap,
    run_cli,
    runner_argv,
    spawn,
    verify_videos,
    write_manifest,
)


def crash_resume(
    work: Path,
    *,
    jobs: int,
    kills: int,
    seed: int = 1,
    delay: tuple[float, float] = (0.3, 4.0),
    final_timeout: float = 600.0,
) -> dict[str, Any]:
    """Run ``jobs`` jobs, SIGKILL the runner ``kills`` times after a seeded uniform ``delay`` (seconds after
    its start), then run it to completion. Returns the figures (see ``bench/chaos.py``)."""
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    manifest = write_manifest(work / "m.yaml", jobs, name="crash")
    out = work / "out"
    t0 = time.monotonic()
    with emulator(seed=seed, quotas=False) as emu:
        args: tuple[str, ...] = ("run", str(manifest), "--out", str(out), "--base-url", emu.base_url, "--qps", "50")
        args += ("--max-in-flight", "50")
        torn = unreadable_after_kill = replay_errors = tracebacks = 0
        early_exits: list[int] = []
        for k in range(kills):
            wait = rng.uniform(*delay)
            started = time.monotonic()
            proc = spawn(runner_argv(*args), work, f"kill{k}")
            time.sleep(wait)
            if proc.poll() is None:
                proc.kill()
            res = reap(proc, started, work, f"kill{k}")
            if res.rc not in (-9, 0):
                early_exits.append(res.rc)
            tracebacks += has_traceback(res.err)
            led = check_ledger(out)
            torn += led.torn_tail
            unreadable_after_kill = max(unreadable_after_kill, led.unreadable)
            replay_errors += led.replay_error is not None
        final = run_cli(*args, cwd=work, log="final", timeout=final_timeout)
        tracebacks += has_traceback(final.err)
        runs_to_finish = 1
        while final.rc != 0 and runs_to_finish < 3:  # a resume that ended early: one more is allowed, counted
            runs_to_finish += 1
            final = run_cli(*args, cwd=work, log=f"final{runs_to_finish}", timeout=final_timeout)
        stats = emu.stats()
        twice, orphans = paid_twice(emu, out)
    led = check_ledger(out)
    ver = verify_videos(out, [f"clip{i}" for i in range(jobs)])
    parts = len(list((out / "videos").glob("*.part"))) if (out / "videos").exists() else 0
    return {
        "jobs": jobs,
        "kills": kills,
        "videos_verified": ver.downloaded,
        "jobs_lost": jobs - ver.downloaded,
        "bad_files": ver.bad_files[:5],
        "duplicate_submissions": stats["duplicate_submissions"],
        "submitted": stats["submitted"],
        "bodies_paid_twice": twice,
        "orphan_tasks": orphans,
        "unreadable_lines": led.unreadable + (led.replay_error is not None),
        "unreadable_after_a_kill": unreadable_after_kill,
        "replay_errors_after_a_kill": replay_errors,
        "torn_tails_seen": torn,
        "part_files_left": parts,
        "tracebacks": tracebacks,
        "early_exits": early_exits,
        "final_rc": final.rc,
        "final_runs": runs_to_finish,
        "final_stderr_tail": final.err[-1500:] if final.rc else "",
        "states": dict(ver.states),
        "wall_s": round(time.monotonic() - t0, 1),
    }


def passed(r: dict[str, Any]) -> bool:
    return bool(
        r["videos_verified"] == r["jobs"]
        and r["jobs_lost"] == 0
        and r["duplicate_submissions"] == 0
        and r["bodies_paid_twice"] == 0
        and r["orphan_tasks"] == 0
        and r["unreadable_lines"] == 0
        and r["replay_errors_after_a_kill"] == 0
        and r["part_files_left"] == 0
        and r["tracebacks"] == 0
        and r["final_rc"] == 0
        and r["final_runs"] == 1
    )


if __name__ == "__main__":  # a quick manual look: python -m bench.chaos_crash
    import json
    import sys
    import tempfile

    n, k = (int(sys.argv[1]), int(sys.argv[2])) if len(sys.argv) > 2 else (20, 5)
    with tempfile.TemporaryDirectory() as d:
        print(json.dumps(crash_resume(Path(d), jobs=n, kills=k), indent=1))
