"""Ledger benchmarks: append throughput with group commit (real fsync), and replay of a large ledger.

    .venv/bin/python bench/bench_ledger.py                 # all, 3 runs each
    .venv/bin/python bench/bench_ledger.py --lines 1000000 --runs 3 --dir /tmp/wb-bench
    .venv/bin/python bench/bench_ledger.py --skip-append --baseline /tmp/base   # old vs new replay

Each replay runs in a fresh subprocess so its peak RSS (ru_maxrss) is its own. With ``--baseline`` (a
checkout of other code, e.g. ``git archive <commit> | tar -x -C /tmp/base``) the replays of that code and
of this one alternate on the same ledger, so a noisy machine's load falls on both alike. Results are
printed as median (min–max) and go, by hand, into docs/benchmarks/ledger.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runner.store.events import PLANNED, SUBMITTING
from runner.store.ledger import LedgerWriter

PROMPT = (
    "A thrilling detective chase story with cinematic storytelling. Shot 1 [0–3 s]: Wide shot of a rainy New "
    "York street at night, neon lights flickering. Shot 2 [3–6 s]: Medium shot of the detective entering an "
    "old building."
)


def job_lines(i: int, ts: float) -> list[dict[str, object]]:
    """The eight lines of one job's happy path, as the pipeline writes them."""
    jid = f"{i:016x}cafe"
    task = f"{i:08x}-ccab-4676-aad3-{i:012x}"
    request = {
        "model": "wan2.6-t2v",
        "input": {"prompt": PROMPT},
        "parameters": {"size": "1280*720", "duration": 6, "shot_type": "multi", "prompt_extend": True},
    }
    usage = {"duration": 6, "size": "1280*720", "input_video_duration": 0, "output_video_duration": 6,
             "video_count": 1, "SR": 720}  # fmt: skip
    return [
        {"ts": ts, "event": "planned", "job_id": jid, "name": f"detective-{i}", "model": "wan2.6-t2v",
         "request": request, "size": "1280*720", "duration": 6, "seed": None, "seconds": 6, "cost": 3.6},
        {"ts": ts + 1, "event": "submitting", "job_id": jid, "attempt": 1, "model": "wan2.6-t2v"},
        {"ts": ts + 2, "event": "submitted", "job_id": jid, "task_id": task, "request_id": "rq-" + task,
         "adopted": False},
        {"ts": ts + 3, "event": "task.status", "job_id": jid, "task_id": task, "status": "PENDING"},
        {"ts": ts + 4, "event": "task.status", "job_id": jid, "task_id": task, "status": "RUNNING"},
        {"ts": ts + 5, "event": "succeeded", "job_id": jid, "task_id": task,
         "video_url": f"https://dashscope-result-sh.oss-accelerate.aliyuncs.com/{task}.mp4?Expires=1764065931",
         "url_expires": 1764065931.0, "usage": usage, "orig_prompt": PROMPT, "actual_prompt": None,
         "submit_time": "2025-09-29 14:18:52.331", "scheduled_time": "2025-09-29 14:18:59.290",
         "end_time": "2025-09-29 14:23:39.407"},
        {"ts": ts + 6, "event": "task.status", "job_id": jid, "task_id": task, "status": "SUCCEEDED"},
        {"ts": ts + 7, "event": "downloaded", "job_id": jid, "path": f"videos/detective-{i}.mp4",
         "bytes": 4_812_345, "sha256": f"{i:064x}"},
    ]  # fmt: skip


def make_ledger(path: Path, lines: int) -> int:
    """Write a ledger of ``lines`` lines (whole jobs); returns its size in bytes."""
    with path.open("w", encoding="utf-8") as f:
        written, i = 0, 0
        while written < lines:
            for obj in job_lines(i, 1.7e9 + i)[: lines - written]:
                f.write(json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n")
                written += 1
            i += 1
    return path.stat().st_size


REPLAY_CHILD = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[2])
t0 = time.perf_counter()
from runner.store.replay import replay
t1, c1 = time.perf_counter(), time.process_time()
s = replay(sys.argv[1])
t2, c2 = time.perf_counter(), time.process_time()
summary = s.summary()
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "replay": t2 - t1, "replay_cpu": c2 - c1, "summary": t3 - t2,
                  "lines": s.lines, "jobs": len(s.jobs),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def bench_replay(path: Path, runs: int, roots: list[str]) -> dict[str, list[dict[str, float]]]:
    """``runs`` replays of ``path`` with the code of each root, the roots taking turns."""
    out: dict[str, list[dict[str, float]]] = {root: [] for root in roots}
    for _ in range(runs):
        for root in roots:
            res = subprocess.run([sys.executable, "-c", REPLAY_CHILD, str(path), root], capture_output=True, text=True)
            if res.returncode:
                raise SystemExit(res.stderr)
            out[root].append(json.loads(res.stdout))
    return out


async def _appends(path: Path, lines: int, producers: int) -> tuple[float, int, int]:
    """``producers`` concurrent tasks append ``lines`` lines in all, each awaiting durability."""
    await asyncio.to_thread(path.unlink, missing_ok=True)
    per = lines // producers
    plan = {"model": "wan2.6-t2v", "request": {"input": {"prompt": PROMPT}}, "size": "1280*720", "duration": 6,
            "seed": None, "seconds": 6, "cost": 3.6}  # fmt: skip
    async with LedgerWriter(path) as w:

        async def producer(p: int) -> None:
            for k in range(per):
                jid = f"{p:08x}{k:08x}"
                if k % 2:
                    await w.append(SUBMITTING, jid, attempt=1, model="wan2.6-t2v")
                else:
                    await w.append(PLANNED, jid, **plan, name=jid)

        t0 = time.perf_counter()
        await asyncio.gather(*(producer(p) for p in range(producers)))
        elapsed = time.perf_counter() - t0
        return elapsed, w.lines, w.fsyncs


def bench_append(path: Path, lines: int, producers: int, runs: int) -> list[tuple[float, int, int]]:
    return [asyncio.run(_appends(path, lines, producers)) for _ in range(runs)]


def fmt(values: list[float], unit: str = "", digits: int = 2) -> str:
    med = statistics.median(values)
    return f"{med:.{digits}f}{unit} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", default=None, help="where to write (default: a temp dir; use a real disk)")
    ap.add_argument("--skip-append", action="store_true")
    ap.add_argument("--skip-replay", action="store_true")
    ap.add_argument("--baseline", default=None, help="a checkout of other code: its replay alternates with this one's")
    args = ap.parse_args()
    base = Path(args.dir or tempfile.mkdtemp(prefix="wb-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, dir {base}")

    if not args.skip_append:
        for producers, lines in ((1, 500), (10, 5_000), (100, 20_000), (1000, 20_000)):
            res = bench_append(base / "append.jsonl", lines, producers, args.runs)
            rates = [n / t for t, n, _ in res]
            per_fsync = [n / f for _, n, f in res]
            print(f"append  producers={producers:5d} lines={lines:6d}: {fmt(rates, ' lines/s', 0)}, "
                  f"lines per fsync {fmt(per_fsync, '', 1)}, fsyncs {[f for _, _, f in res]}")  # fmt: skip

    if not args.skip_replay:
        path = base / "replay.jsonl"
        t0 = time.perf_counter()
        size = make_ledger(path, args.lines)
        print(f"made {args.lines} lines, {size / 1e6:.0f} MB in {time.perf_counter() - t0:.1f} s")
        here = str(Path(__file__).resolve().parents[1])
        roots = [here] + ([str(Path(args.baseline).resolve())] if args.baseline else [])
        for root, res in bench_replay(path, args.runs, roots).items():
            replay_s = fmt([r["replay"] for r in res], " s") + " wall, "
            replay_s += fmt([r["replay_cpu"] for r in res], " s") + " cpu"
            summary_s = fmt([r["summary"] for r in res], " s", 3)
            rss = fmt([r["rss_mb"] for r in res], " MB", 0)
            head = f"replay  {res[0]['lines']} lines, {res[0]['jobs']} jobs" + (f" [{root}]" if args.baseline else "")
            print(f"{head}: {replay_s}, summary {summary_s}, peak RSS {rss}")
        path.unlink()
    print(f"bench process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
