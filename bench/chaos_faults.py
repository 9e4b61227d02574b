"""Chaos 2, faults: a server that answers 5xx, 429, resets connections, fails tasks, truncates downloads,
hands out expired URLs and is slow. Every job must end downloaded or failed with a code, in bounded time,
with bounded retries, and the exit code must say whether any failed."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from bench.chaos_common import (
    check_ledger,
    emulator,
    has_traceback,
    paid_twice,
    run_cli,
    verify_videos,
    write_manifest,
)
from runner.emulator.config import EmulatorConfig

#: The issue's mix. Request kinds apply to every API route unless scoped; the first matching rule wins, so
#: the effective rates are slightly lower than written. Task kinds are decided once per accepted create.
FAULTS = (
    "500=0.04",
    "502=0.03",
    "503=0.03",
    "429=0.05",
    "reset=0.05",
    "slow=0.03",
    "500@file=0.05",
    "reset@file=0.02",
    "truncate=0.05",
    "fail=0.02",
    "expired_url=0.03",
)
#: A word that makes the server refuse a prompt (400 DataInspectionFailed): the run must exit 1.
BLOCK = "forbiddenword"
#: Generous bounds: a create is retried at most a handful of times, a poll is cheap.
MAX_CREATES_PER_JOB = 12
WALL_PER_JOB_S = 1.0


def _manifest(path: Path, jobs: int, blocked: int) -> Path:
    write_manifest(path, jobs, name="faults")
    if blocked:
        text = path.read_text(encoding="utf-8")
        for i in range(blocked):
            text = text.replace(f"Shot {i} of", f"Shot {i} {BLOCK} of", 1)
        path.write_text(text, encoding="utf-8")
    return path


def fault_run(
    work: Path,
    *,
    jobs: int,
    blocked: int = 2,
    seed: int = 31,
    slow_seconds: float = 1.0,
    faults: tuple[str, ...] = FAULTS,
    timeout: float | None = None,
) -> dict[str, Any]:
    """One run of ``jobs`` jobs (the first ``blocked`` refused by the server) against every fault at once."""
    work.mkdir(parents=True, exist_ok=True)
    manifest = _manifest(work / "m.yaml", jobs, blocked)
    out = work / "out"
    bound = 30.0 + WALL_PER_JOB_S * jobs
    with emulator(
        seed=seed,
        qps_scale=4.0,  # 20 creates/s and 20 tasks at once for wan2.6: faults, not quotas, set the pace
        slow_seconds=slow_seconds,
        block_word=BLOCK,
        faults=EmulatorConfig.parse_faults(faults),
    ) as emu:
        r = run_cli(
            "run",
            str(manifest),
            "--out",
            str(out),
            "--base-url",
            emu.base_url,
            "--qps",
            "20",
            "--max-in-flight",
            "20",
            cwd=work,
            timeout=timeout or bound + 60,
        )
        stats = emu.stats()
        twice, orphans = paid_twice(emu, out)
    ver = verify_videos(out)
    led = check_ledger(out)
    attempts: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    uncoded = 0
    for line in (out / "ledger.jsonl").read_text(encoding="utf-8").splitlines():
        obj = json.loads(line)
        if obj["event"] == "submitting":
            attempts[obj["job_id"]] += 1
        elif obj["event"] == "failed":
            codes[str(obj.get("code"))] += 1
    from runner.store.replay import replay

    state = replay(out / "ledger.jsonl")
    final_codes: Counter[str] = Counter()
    for job in state.jobs.values():
        if job.state == "failed":
            f = job.failure
            if f is None or not f.code or not f.message:
                uncoded += 1
            else:
                final_codes[f.code] += 1
    failed = ver.states.get("failed", 0)
    other = sum(n for s, n in ver.states.items() if s not in ("downloaded", "failed"))
    blocked_ok = all(
        j.state == "failed" and j.failure is not None and j.failure.code == "DataInspectionFailed"
        for j in state.jobs.values()
        if int(j.name.removeprefix("clip")) < blocked
    )
    return {
        "jobs": jobs,
        "downloaded_verified": ver.downloaded,
        "failed": failed,
        "failed_codes": dict(final_codes),
        "failed_without_code": uncoded,
        "blocked_failed_with_server_code": blocked_ok,
        "neither_downloaded_nor_failed": other + (jobs - len(state.jobs)),
        "bad_files": ver.bad_files[:5],
        "rc": r.rc,
        "rc_ok": r.rc == (1 if failed else 0),
        "wall_s": round(r.wall, 1),
        "wall_bound_s": bound,
        "max_creates_per_job": max(attempts.values(), default=0),
        "creates_per_job": round(stats["requests"].get("create", 0) / jobs, 2),
        "queries_per_job": round(stats["requests"].get("query", 0) / jobs, 2),
        "downloads_per_job": round(stats["requests"].get("file", 0) / jobs, 2),
        "faults_injected": stats["faults_injected"],
        "bodies_paid_twice": twice,
        "orphan_tasks": orphans,
        "unreadable_lines": led.unreadable,
        "tracebacks": int(has_traceback(r.err)),
        "key_in_output": KEY_IN(r.out + r.err),
        "stderr_tail": "" if r.rc in (0, 1) else r.err[-1500:],
    }


def KEY_IN(text: str) -> bool:
    from bench.chaos_common import KEY

    return KEY in text


def covered(r: dict[str, Any], kinds: tuple[str, ...] = ("500", "502", "503", "reset", "truncate", "fail")) -> bool:
    """Every kind of the mix was injected at least once (seed 31 makes sure of it at the sizes of make chaos),
    so a pass proves something about each."""
    return all(r["faults_injected"].get(k, 0) > 0 for k in kinds)


def passed(r: dict[str, Any]) -> bool:
    return (
        r["downloaded_verified"] + r["failed"] == r["jobs"]
        and r["neither_downloaded_nor_failed"] == 0
        and r["failed_without_code"] == 0
        and r["blocked_failed_with_server_code"]
        and r["rc_ok"]
        and r["wall_s"] <= r["wall_bound_s"]
        and r["max_creates_per_job"] <= MAX_CREATES_PER_JOB
        and r["bodies_paid_twice"] == 0
        and r["orphan_tasks"] == 0
        and r["unreadable_lines"] == 0
        and r["tracebacks"] == 0
        and not r["key_in_output"]
        and not r["bad_files"]
    )


if __name__ == "__main__":
    import sys
    import tempfile

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    with tempfile.TemporaryDirectory() as d:
        res = fault_run(Path(d), jobs=n)
        print(json.dumps(res, indent=1), passed(res))
