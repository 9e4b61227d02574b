"""Client, limiter and poll-schedule figures: real timings on loopback plus virtual-time simulations.

    .venv/bin/python bench/bench_limits.py                  # all, 3 runs of each timing
    .venv/bin/python bench/bench_limits.py --runs 5 --seconds 5 --concurrency 32

Timings (median (min–max) of ``--runs``):

* ``client``: ``DashScopeClient.get`` against a minimal aiohttp server in a subprocess pinned to CPU 0,
  the client pinned to CPU 1, ``--concurrency`` coroutines over one session; next to it the same GETs with
  a bare ``aiohttp.ClientSession`` (no parsing, no typed results) to show the client's own cost.
* ``limiter``: microseconds per ``WindowLimiter.acquire()`` when the limit never binds (the bookkeeping).

Simulations (virtual time, deterministic, so one run each):

* ``aimd``: a server allowing 5 creates in any strict 1-s window, a limiter configured for 20 (4x too high),
  one hour of unbounded demand: 429s, accepted creates per second.
* ``poll``: 1,000 tasks with durations uniform in 60–300 s through ``PollSchedule``: detection delay as a
  fraction of the task's time (p50, p95, max) and polls per task.

Results go, by hand, into docs/benchmarks/limits.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runner.engine.api import ApiConfig, DashScopeClient  # noqa: E402
from runner.engine.clock import RealClock  # noqa: E402
from runner.engine.limits import WindowLimiter  # noqa: E402
from runner.engine.poll_rule import PollConfig  # noqa: E402
from runner.engine.poller import PollSchedule  # noqa: E402
from runner.engine.task_times import Kind  # noqa: E402
from tests.engine.clock import FakeClock  # noqa: E402

SERVER = """
import sys
from aiohttp import web
BODY = b'{"request_id":"r","output":{"task_id":"t","task_status":"RUNNING","submit_time":"2026-11-25 12:00:00.000"}}'
async def get(request):
    return web.Response(body=BODY, content_type="application/json")
app = web.Application()
app.router.add_get("/api/v1/tasks/{id}", get)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > cpu:
        os.sched_setaffinity(0, {cpu})


def fmt(values: list[float], unit: str, digits: int = 0) -> str:
    return f"{statistics.median(values):,.{digits}f} {unit} ({min(values):,.{digits}f}–{max(values):,.{digits}f})"


# ------------------------------------------------------------------------------------------- timings


async def client_rate(base: str, seconds: float, concurrency: int, bare: bool) -> tuple[float, float]:
    """(requests per second, client CPU microseconds per request)."""
    done = 0
    end = time.perf_counter() + seconds

    if bare:
        headers = {"Authorization": "Bearer sk-bench", "Accept": "application/json; charset=utf-8"}
        async with aiohttp.ClientSession() as session:

            async def worker_bare() -> None:
                nonlocal done
                while time.perf_counter() < end:
                    async with session.get(f"{base}/tasks/t", headers=headers) as resp:
                        await resp.read()
                    done += 1

            t0, c0 = time.perf_counter(), time.process_time()
            await asyncio.gather(*(worker_bare() for _ in range(concurrency)))
            return done / (time.perf_counter() - t0), (time.process_time() - c0) / done * 1e6

    async with DashScopeClient(ApiConfig(base, "sk-bench")) as client:

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < end:
                await client.get("t")
                done += 1

        t0, c0 = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.perf_counter() - t0), (time.process_time() - c0) / done * 1e6


def bench_client(runs: int, seconds: float, concurrency: int) -> None:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])
    try:
        if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(server.pid, {0})
        pin(1)
        base = f"http://127.0.0.1:{port}/api/v1"
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        asyncio.run(client_rate(base, 0.5, concurrency, bare=False))  # warm-up
        ours, bare = [], []
        for _ in range(runs):  # interleaved, so drift on the machine hits both alike
            ours.append(asyncio.run(client_rate(base, seconds, concurrency, bare=False)))
            bare.append(asyncio.run(client_rate(base, seconds, concurrency, bare=True)))
    finally:
        server.terminate()
        server.wait()
    for name, xs in (("DashScopeClient.get", ours), ("bare aiohttp GET   ", bare)):
        rates, cpu = [x[0] for x in xs], [x[1] for x in xs]
        print(f"client  {name}: {fmt(rates, 'req/s')}, client CPU {fmt(cpu, 'µs/req')}")


async def limiter_cost(n: int) -> float:
    limiter = WindowLimiter(1e9, RealClock(), min_gap=0.0)
    t0 = time.perf_counter()
    for _ in range(n):
        await limiter.acquire()
    return (time.perf_counter() - t0) / n * 1e6


def bench_limiter(runs: int) -> None:
    values = [asyncio.run(limiter_cost(200_000)) for _ in range(runs)]
    print(f"limiter acquire() (not binding): {fmt(values, 'µs', 2)}")


# ------------------------------------------------------------------------------------------- simulations


async def aimd(configured: float, true_limit: int, seconds: float) -> tuple[int, int, list[float]]:
    clock = FakeClock(0.0)
    limiter = WindowLimiter(configured, clock)
    accepted: deque[float] = deque()
    ok = refused = 0
    when: list[float] = []

    async def submitter() -> None:
        nonlocal ok, refused
        while clock.now() < seconds:
            await limiter.acquire()
            now = clock.now()
            while accepted and accepted[0] <= now - 1.0:
                accepted.popleft()
            if len(accepted) >= true_limit:
                refused += 1
                when.append(now)
                limiter.on_throttled(None)
            else:
                accepted.append(now)
                ok += 1

    task = asyncio.create_task(submitter())
    await clock.run_until_idle()
    await task
    return ok, refused, when


def sim_aimd() -> None:
    for configured, true_limit in ((5, 5), (20, 5), (5, 2)):
        ok, refused, when = asyncio.run(aimd(configured, true_limit, 3600.0))
        first = ", ".join(f"{t:.0f}" for t in when[:4])
        print(
            f"aimd    configured {configured}/s, server {true_limit}/s, 1 h: {refused} x 429 "
            f"(first at {first or '-'} s), {ok / 3600:.2f} accepted/s"
        )


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += seconds


def sim_poll() -> None:
    rng = random.Random(1)
    clock = _Clock()
    schedule = PollSchedule(clock, PollConfig(budget_qps=1e9, burst=1e9))
    ratios: list[float] = []
    polls: list[int] = []
    for n in range(1000):
        duration = rng.uniform(60.0, 300.0)
        start = clock.t
        schedule.add(f"t{n}", "wan2.6-t2v", start)
        count = 0
        while f"t{n}" in schedule:
            wake = schedule.next_wakeup()
            assert wake is not None
            clock.t = wake
            for tid in schedule.due():
                count += 1
                finished = clock.t - start >= duration
                schedule.observe(tid, "SUCCEEDED" if finished else "RUNNING", clock.t)
                if finished:
                    ratios.append((clock.t - start - duration) / duration)
        polls.append(count)
    q = statistics.quantiles(ratios, n=100)
    print(
        f"poll    1000 tasks, 60–300 s: delay/T p50 {q[49]:.2%}, p95 {q[94]:.2%}, max {max(ratios):.2%}; "
        f"polls/task mean {statistics.mean(polls):.1f}, max {max(polls)}"
    )


def sim_sweep() -> None:
    """The same draw, 5 tasks in flight, RUNNING tasks swept by list requests (as ``wanbatch run`` does)."""
    rng = random.Random(1)
    todo: list[tuple[Kind | str, float]] = [("wan2.6-t2v", rng.uniform(60.0, 300.0)) for _ in range(1000)]
    ratios, queries, sweeps = _swept(PollConfig(budget_qps=8.0, sweep_qps=8.0), todo)
    q = statistics.quantiles(ratios, n=100)
    print(
        f"sweep   1000 tasks, 60–300 s, 5 in flight: delay/T p50 {q[49]:.2%}, p95 {q[94]:.2%}, max {max(ratios):.2%}; "
        f"requests/task {(queries + sweeps) / 1000:.1f} ({queries / 1000:.1f} queries + {sweeps / 1000:.1f} sweeps)"
    )


def _swept(config: PollConfig, todo: list[tuple[Kind | str, float]]) -> tuple[list[float], int, int]:
    """Tasks (kind, seconds) taken from the end of ``todo``, 5 in flight, followed by one ``PollSchedule`` on a
    virtual clock, sweeps answered at once: (delay / task time of each, task queries, sweeps)."""
    clock = _Clock()
    schedule = PollSchedule(clock, config)
    ends: dict[str, tuple[float, float]] = {}
    ratios: list[float] = []
    queries = sweeps = 0

    def fill() -> None:
        while todo and len(schedule) < 5:
            task_id = f"t{len(todo)}"
            kind, seconds = todo.pop()
            ends[task_id] = (clock.t + seconds, seconds)
            schedule.add(task_id, kind, clock.t)

    fill()
    while len(schedule):
        covered = schedule.sweep()
        if covered is not None:
            sweeps += 1
            schedule.sweep_done(covered, {t for t in covered if clock.t < ends[t][0]}, complete=True)
        for tid in schedule.due():
            queries += 1
            end, seconds = ends[tid]
            if clock.t >= end:
                ratios.append((clock.t - end) / seconds)
                schedule.observe(tid, "SUCCEEDED", clock.t, seconds=seconds)
            else:
                schedule.observe(tid, "RUNNING", clock.t)
        fill()
        wake = schedule.next_wakeup()
        if wake is None:
            break
        clock.t = max(wake, clock.t)
    return ratios, queries, sweeps


def sim_frontier(n: int = 1000) -> None:
    """The engine's own schedule on the long row's mix of kinds (bench_run: 720P 2 s, 1080P 5 s, 720P 5 s,
    1080P 2 s; the emulator's draw), 5 in flight, swept as ``wanbatch run`` does, for several detection targets
    (``PollConfig.fraction``): what requests per task each p95 costs (issue 16's ≤ 2 % with ≤ 10 requests)."""
    for fraction in (0.02, 0.025, 0.03, 0.04):
        p95, queries, sweeps = _frontier_point(fraction, n)
        print(
            f"frontier {n} tasks of the long row's mix, 5 in flight, fraction {fraction:.1%}: delay/T p95 {p95:.2%}; "
            f"requests/task {queries + sweeps:.1f} ({queries:.1f} queries + {sweeps:.1f} sweeps)"
        )


def sim_floor(n: int = 2000) -> None:
    """An idealized sweeper on the same mix, for comparison with ``sim_frontier``: it knows each kind's 5 %
    quantile exactly (no learning), answers take no time, and it sends a sweep exactly when the most urgent task
    in flight is due (from its kind's early quantile on, every ``fraction`` of its age; each sweep looks at all 5
    tasks), plus the one query per task that fetches its outcome: an optimistic reference (the engine pays for learning,
    latency and a first poll of each PENDING task)."""
    from bench.bench_run import MIX, MODEL
    from runner.emulator.tasks import pace

    def draw(kind: tuple[str, int], rng: random.Random) -> float:
        return rng.uniform(2.0, 10.0) + rng.triangular(50.0, 290.0, 95.0) * pace(MODEL, *kind)

    early = {}
    for kind in MIX:
        sample = sorted(draw(kind, rng) for rng in [random.Random(str(kind))] for _ in range(20000))
        early[kind] = sample[len(sample) // 20]
    for fraction in (0.02, 0.025, 0.03, 0.04):
        rng = random.Random(1)
        tasks = [(MIX[i % 4], draw(MIX[i % 4], rng)) for i in range(n)]
        sweeps, shares = 0, []
        # (start, time, kind, last look) of the tasks in flight
        running: list[tuple[float, float, tuple[str, int], float]] = [(0.0, t, k, 0.0) for k, t in tasks[:5]]
        todo = tasks[5:][::-1]
        while running:
            now = min(max(s + early[k], last + fraction * max(last - s, early[k])) for s, _, k, last in running)
            sweeps += 1
            shares += [(now - s - t) / t for s, t, _, _ in running if s + t <= now]
            running = [(s, t, k, now) for s, t, k, _ in running if s + t > now]
            while todo and len(running) < 5:
                kind, seconds = todo.pop()
                running.append((now, seconds, kind, now))
        p95 = statistics.quantiles(shares, n=100)[94]
        print(
            f"floor    {n} tasks of the long row's mix, ideal sweeper, fraction {fraction:.1%}: delay/T p95 "
            f"{p95:.2%}; requests/task {sweeps / n + 1:.1f}"
        )


def _frontier_point(fraction: float, n: int) -> tuple[float, float, float]:
    """(delay/T p95, queries per task, sweeps per task) of one ``sim_frontier`` setting."""
    from bench.bench_run import MIX, MODEL  # the long row's kinds
    from runner.emulator.tasks import pace  # the emulator's draw, as bench_run repeats it

    rng = random.Random(1)
    todo: list[tuple[Kind | str, float]] = []
    for i in range(n):
        size, duration = MIX[i % len(MIX)]
        seconds = rng.uniform(2.0, 10.0) + rng.triangular(50.0, 290.0, 95.0) * pace(MODEL, size, duration)
        todo.append((Kind.of(MODEL, size, duration), seconds))
    todo.reverse()
    ratios, queries, sweeps = _swept(PollConfig(budget_qps=8.0, sweep_qps=8.0, fraction=fraction), todo)
    return statistics.quantiles(ratios, n=100)[94], queries / n, sweeps / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--only", choices=["client", "limiter", "aimd", "poll"])
    args = parser.parse_args()
    if args.only in (None, "aimd"):
        sim_aimd()
    if args.only in (None, "poll"):
        sim_poll()
        sim_sweep()
        sim_frontier()
        sim_floor()
    if args.only in (None, "limiter"):
        bench_limiter(args.runs)
    if args.only in (None, "client"):
        bench_client(args.runs, args.seconds, args.concurrency)


if __name__ == "__main__":
    main()
