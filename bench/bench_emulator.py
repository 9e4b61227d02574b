"""Emulator throughput: requests per second it answers on loopback under a create + query mix.

    .venv/bin/python bench/bench_emulator.py                       # 3 runs of 5 s, 64 connections
    .venv/bin/python bench/bench_emulator.py --runs 5 --seconds 10 --connections 128 --queries-per-create 2

The emulator runs in its own process (``python -m runner.emulator --no-quotas``) pinned to CPU 0; the load
comes from this process (aiohttp, one event loop, ``--connections`` keep-alive connections) pinned to CPU 1,
so on a 2-core machine each side has one core. Each worker loops: create a task, then query it
``--queries-per-create`` times. Only 200 answers count. Results print as median (min–max) and go, by hand,
into docs/benchmarks/emulator.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
CREATE = "/api/v1/services/aigc/video-generation/video-synthesis"
HEADERS = {"Authorization": "Bearer sk-bench", "X-DashScope-Async": "enable", "Content-Type": "application/json"}
BODY = json.dumps(
    {
        "model": "wan2.6-t2v",
        "parameters": {"size": "1280*720", "duration": 15, "shot_type": "multi", "prompt_extend": True},
        "input": {
            "prompt": "A thrilling detective chase story with cinematic storytelling. Shot 1 [0–3 s]: Wide shot "
            "of a rainy New York street at night, neon lights flickering, a detective in a black trench coat.",
            "extend_prompt": True,
            "function": "video-synthesis",
        },
    }
).encode()


def pin(pid: int, cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > cpu:
        os.sched_setaffinity(pid, {cpu})


def start_emulator(extra: list[str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner.emulator", "--port", "0", "--no-quotas", "--speed", "1000", *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("emulator listening on "):
        proc.kill()
        raise SystemExit(f"emulator did not start: {line!r}")
    pin(proc.pid, 0)
    return proc, line.removeprefix("emulator listening on ").removesuffix("/api/v1")


async def one_run(root: str, seconds: float, connections: int, queries: int) -> dict[str, float]:
    conn = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=conn) as s:
        async with s.post(root + "/_emulator/reset") as r:
            assert r.status == 200
        ok = errors = 0
        latencies: list[float] = []
        stop_at = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal ok, errors
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                async with s.post(root + CREATE, data=BODY, headers=HEADERS) as r:
                    data = await r.json()
                latencies.append(time.perf_counter() - t0)
                if r.status != 200:
                    errors += 1
                    continue
                ok += 1
                url = f"{root}/api/v1/tasks/{data['output']['task_id']}"
                for _ in range(queries):
                    t0 = time.perf_counter()
                    async with s.get(url, headers=HEADERS) as r:
                        await r.read()
                    latencies.append(time.perf_counter() - t0)
                    if r.status == 200:
                        ok += 1
                    else:
                        errors += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - t0
        async with s.get(root + "/_emulator/stats") as r:
            stats = await r.json()
    latencies.sort()
    return {
        "rps": ok / elapsed,
        "ok": ok,
        "errors": errors,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
        "submitted": stats["submitted"],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--queries-per-create", type=int, default=2)
    ap.add_argument("--emulator-arg", action="append", default=[], help="extra emulator option (repeatable)")
    args = ap.parse_args()

    proc, root = start_emulator(args.emulator_arg)
    pin(0, 1)
    try:
        asyncio.run(one_run(root, 1.0, args.connections, args.queries_per_create))  # warm-up
        runs = [
            asyncio.run(one_run(root, args.seconds, args.connections, args.queries_per_create))
            for _ in range(args.runs)
        ]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    for i, r in enumerate(runs, 1):
        print(
            f"run {i}: {r['rps']:.0f} req/s, {r['ok']:.0f} ok, {r['errors']:.0f} errors, "
            f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, {r['submitted']:.0f} tasks"
        )
    rps = [r["rps"] for r in runs]
    print(
        f"emulator: {statistics.median(rps):.0f} req/s median ({min(rps):.0f}–{max(rps):.0f}), "
        f"{args.runs} runs x {args.seconds:.0f} s, {args.connections} connections, "
        f"1 create : {args.queries_per_create} queries, cpus={os.cpu_count()}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
