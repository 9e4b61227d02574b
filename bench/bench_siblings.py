"""What one unanswered create per look-alike group costs (issue 13): a pure seed sweep against distinct prompts.

    .venv/bin/python -m bench.bench_siblings                     # writes docs/benchmarks/siblings.md
    .venv/bin/python -m bench.bench_siblings --baseline DIR      # also the code of another checkout, interleaved
    .venv/bin/python -m bench.bench_siblings --quick             # smaller, prints only

Two manifests of N jobs: one prompt with N seeds (every job a look-alike of every other: the submitter sends
one create at a time and waits for its answer), and N distinct prompts (N groups, no waiting). Each runs as the
real CLI against the emulator on 127.0.0.1, in two settings:

* **quota**: the account's real quota for wan2.6 (5 submissions/s, 5 in flight), tasks of a fixed time: the
  makespan, the figure a user pays in;
* **open**: quotas off (``--qps``, ``--max-in-flight`` and ``--query-qps`` high, emulator quotas off): creates
  per second from the first to the last the emulator accepted — the gate's own cost, one round trip per create.

wanbatch is given only what a user would know (the quota); nothing about the emulator's task times.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.chaos_common import child_env
from runner.emulator.config import EmulatorConfig
from runner.emulator.server import run_in_thread

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks" / "siblings.md"
PROMPT = "A lighthouse at dusk, waves rolling in, cinematic."


def manifest(path: Path, n: int, sweep: bool) -> Path:
    head = 'version: 1\nname: sib\ndefaults:\n  model: wan2.6-t2v\n  size: "1280*720"\n  duration: 2\n'
    head += "  prompt_extend: false\njobs:\n"
    if sweep:
        body = f"  - name: sweep\n    prompt: {PROMPT}\n    matrix:\n      seed: [{', '.join(map(str, range(n)))}]\n"
    else:
        body = "".join(f"  - name: j{i}\n    prompt: Shot {i} of a lighthouse at dusk.\n" for i in range(n))
    path.write_text(head + body, encoding="utf-8")
    return path


def one(root: Path, work: Path, n: int, sweep: bool, open_quota: bool) -> dict[str, float]:
    """One run: makespan (s) and creates per second between the first and the last accepted create."""
    cfg: dict[str, Any] = {"speed": 3600.0, "task_time": 3600.0, "retention": 1e12, "url_ttl": 1e12, "seed": 1}
    if open_quota:
        cfg.update(quotas=False, task_time=36.0)
    emu = run_in_thread(EmulatorConfig(port=0, **cfg))
    try:
        m = manifest(work / f"m{int(sweep)}.yaml", n, sweep)
        out = work / f"out-{time.monotonic_ns()}"
        extra = ["--qps", "100000", "--max-in-flight", "100000", "--query-qps", "1000"] if open_quota else []
        env = child_env(PYTHONPATH=str(root), XDG_STATE_HOME=str(work / "state"))
        t0 = time.monotonic()
        rc = subprocess.call([sys.executable, "-m", "runner", "run", str(m), "--out", str(out), "--base-url",
                              emu.base_url, *extra], cwd=root, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)  # fmt: skip
        wall = time.monotonic() - t0
        if rc != 0:
            raise RuntimeError(f"run exited {rc}")
        times = sorted(t.submit_at for t in emu.state.store.order)
        span = times[-1] - times[0] if len(times) > 1 else 0.0
        return {"makespan": wall, "creates_per_s": (len(times) - 1) / span if span else float("inf"),
                "tasks": float(len(times))}  # fmt: skip
    finally:
        emu.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--baseline", default=None, help="a checkout of other code, run interleaved with this one")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args(argv)
    roots = {"this": ROOT} | ({"baseline": Path(args.baseline).resolve()} if args.baseline else {})
    n_quota, n_open = (20, 100) if args.quick else (40, 300)
    runs = 1 if args.quick else args.runs
    results: dict[tuple[str, str, bool], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-siblings-") as tmp:
        for _ in range(runs):
            for setting, n, open_quota in (("quota", n_quota, False), ("open", n_open, True)):
                for sweep in (True, False):
                    for label, root in roots.items():
                        r = one(root, Path(tmp), n, sweep, open_quota)
                        results.setdefault((label, setting, sweep), []).append(r)
                        kind = "sweep" if sweep else "distinct"
                        print(f"{label:8} {setting:5} {kind:8} n={n}: makespan {r['makespan']:.2f} s, "
                              f"{r['creates_per_s']:.1f} creates/s", flush=True)  # fmt: skip
    lines = [
        "# Look-alike groups: what one unanswered create per group costs",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `python -m bench.bench_siblings"
        f"{' --baseline ' + args.baseline if args.baseline else ''}` on {os.cpu_count()} cores "
        f"(load {os.getloadavg()[0]:.1f}); median of {runs} interleaved run(s), min–max in brackets.",
        "",
        "| code | setting | manifest | jobs | makespan s | creates / s |",
        "|---|---|---|---|---|---|",
    ]
    for (label, setting, sweep), rs in results.items():
        mk = [r["makespan"] for r in rs]
        cps = [r["creates_per_s"] for r in rs]
        lines.append(
            f"| {label} | {setting} | {'seed sweep' if sweep else 'distinct prompts'} | {int(rs[0]['tasks'])} | "
            f"{statistics.median(mk):.2f} ({min(mk):.2f}–{max(mk):.2f}) | "
            f"{statistics.median(cps):.1f} ({min(cps):.1f}–{max(cps):.1f}) |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.quick:
        DOC.write_text(text + NOTES, encoding="utf-8")
        print(f"wrote {DOC.relative_to(ROOT)}")
    return 0


NOTES = """
**quota**: 5 submissions/s and 5 tasks in flight (the account's quota for wan2.6), tasks of 1 real second: the
in-flight cap decides the makespan, and a look-alike waits only for its sibling's *answer* (one round trip on
loopback), never for its task, so a seed sweep costs what distinct prompts cost. **open**: quotas off, so the
submitter's own pace shows: a seed sweep sends one create per round trip (the group's gate), distinct prompts
overlap their round trips. Lost answers are not part of this bench: a lost answer holds its group until
reconcile has decided, which takes the window (≈ 1.6 s) plus the task's own time (tests/e2e/test_reconcile.py).
"""


if __name__ == "__main__":
    raise SystemExit(main())
