"""Several accounts in one run (issue 18): makespan against the bound of one account and of three, side by side.

    .venv/bin/python -m bench.bench_accounts            # 3 repetitions, all at once (~1.5 min on 2 cores)
    .venv/bin/python -m bench.bench_accounts --quick    # smoke run: 60 jobs, 1 repetition

Every repetition of two scenarios runs at the same time, each a real ``wanbatch run`` subprocess against its own
emulator subprocess, N jobs of wan2.6-t2v 720P 2 s with a fixed task time T:

* ``1 account``: the single default account, C = QPS = 5 — bound max(N/5, ⌈N/5⌉·T);
* ``3 accounts``: an accounts file of three accounts on one emulator serving three accounts (``--account``),
  each C = QPS = 5 — bound max(N/15, ⌈N/15⌉·T).

wanbatch gets only what a user knows (the accounts file names each account's quota, no task-time hints). The
makespan is the ledger's first ``submitting`` to its last ``downloaded``. Figures: the median ÷ bound of the
repetitions, 429s per account (each must be 0), duplicate submissions and requests naming another account's
task (``foreign``, must be 0), and how the jobs split. Written to ``docs/benchmarks/accounts.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.bench_run import T_SIM_FIXED, Emulator, child_env, reap, write_manifest

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "benchmarks" / "accounts.md"
C = QPS = 5
KEYS = {"bj": "sk-bench-acct-bj", "sg": "sk-bench-acct-sg", "us": "sk-bench-acct-us"}


def bound(n: int, t: float, accounts: int) -> float:
    return max(n / (QPS * accounts), math.ceil(n / (C * accounts)) * t)


@dataclass
class Result:
    scenario: str
    rep: int
    n: int
    bound: float
    rc: int
    makespan: float = math.nan
    done: int = 0
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.makespan / self.bound


def _accounts_file(path: Path, base_url: str) -> Path:
    items = "".join(
        f"  - name: {name}\n    region: cn-beijing\n    key_env: BENCH_KEY_{name.upper()}\n    base_url: {base_url}\n"
        f"    limits: {{wan2.6-t2v: {{qps: {QPS}, max_in_flight: {C}}}}}\n"
        for name in KEYS
    )
    path.write_text(f"accounts:\n{items}", encoding="utf-8")
    return path


def run_one(scenario: str, accounts: int, n: int, t_real: float, rep: int, work: Path) -> Result:
    d = work / f"rep{rep}-{accounts}"
    d.mkdir(parents=True)
    write_manifest(d / "m.yaml", n)
    emu_args = ["--task-time", str(T_SIM_FIXED), "--speed", f"{T_SIM_FIXED / t_real:.6g}", "--seed", str(100 + rep)]
    env = child_env()
    if accounts > 1:
        emu_args += [a for name, key in KEYS.items() for a in ("--account", f"{name}={key},qps={QPS},in_flight={C}")]
        env.pop("DASHSCOPE_API_KEY", None)
        env.update({f"BENCH_KEY_{name.upper()}": key for name, key in KEYS.items()})
    emu = Emulator(emu_args)
    result = Result(scenario, rep, n, bound(n, t_real, accounts), rc=-1)
    try:
        argv = [sys.executable, "-m", "runner", "run", str(d / "m.yaml"), "--out", str(d / "out"),
                "--state-dir", str(d / "state")]  # fmt: skip
        if accounts > 1:
            argv += ["--accounts", str(_accounts_file(d / "accounts.yaml", emu.base_url))]
        else:
            argv += ["--base-url", emu.base_url]
        started = time.perf_counter()
        with open(d / "client.log", "wb") as log:
            proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
            result.rc = reap(proc, started).rc
        result.stats = emu.stats()
    finally:
        emu.stop()
    lines = [json.loads(x) for x in (d / "out" / "ledger.jsonl").read_text(encoding="utf-8").splitlines() if x]
    subs = [x["ts"] for x in lines if x["event"] == "submitting"]
    downs = [x["ts"] for x in lines if x["event"] == "downloaded"]
    result.done = len(downs)
    if subs and downs:
        result.makespan = max(downs) - min(subs)
    return result


def run_reps(n: int, t_real: float, reps: int, work: Path) -> list[Result]:
    """Every repetition's two scenarios at the same time: ratios measured under the same load, and the bench
    within ``make bench``'s 15 minutes (each run mostly waits on its quota; 2 × reps runners and emulators)."""
    results: list[Result] = []
    errors: list[BaseException] = []

    def target(scenario: str, accounts: int, rep: int) -> None:
        try:
            results.append(run_one(scenario, accounts, n, t_real, rep, work))
        except BaseException as e:  # reported after the join
            errors.append(e)

    threads = [
        threading.Thread(target=target, args=(scenario, accounts, rep))
        for rep in range(reps)
        for scenario, accounts in (("1 account", 1), ("3 accounts", 3))
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise errors[0]
    return sorted(results, key=lambda r: (r.scenario, r.rep))


def _per_account(stats: dict[str, Any], key: str) -> dict[str, int]:
    return {name: int(acct.get(key, 0)) for name, acct in stats.get("accounts", {}).items()}


def render(results: list[Result], n: int, t_real: float, reps: int, seconds: float) -> str:
    rows = []
    for scenario in ("1 account", "3 accounts"):
        runs = [r for r in results if r.scenario == scenario]
        ratios = [r.ratio for r in runs]
        throttled = [sum(_per_account(r.stats, "throttled_total").values()) or r.stats.get("throttled_total", 0)
                     for r in runs]  # fmt: skip
        dupes = [r.stats.get("duplicate_submissions", 0) for r in runs]
        foreign = [r.stats.get("foreign", 0) for r in runs]
        split = [_per_account(r.stats, "submitted") for r in runs]
        rows.append(
            f"| {scenario} | {runs[0].bound:.1f} | {statistics.median(r.makespan for r in runs):.1f} | "
            f"**{statistics.median(ratios):.3f}** ({', '.join(f'{x:.3f}' for x in ratios)}) | "
            f"{max(throttled)} | {max(dupes)} | {max(foreign)} | "
            f"{min(r.done for r in runs)}/{n} | {' · '.join(json.dumps(s, sort_keys=True) for s in split)} |"
        )
    one = [r for r in results if r.scenario == "1 account"]
    three = [r for r in results if r.scenario == "3 accounts"]
    speedup = statistics.median(a.makespan / b.makespan for a, b in zip(one, three, strict=True))
    return "\n".join(
        [
            "# Several accounts in one run (issue 18)",
            "",
            f"`python -m bench.bench_accounts` on {platform.node()} ({platform.python_version()}, "
            f"{platform.machine()}), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {reps} repetition(s), "
            f"{seconds:.0f} s in all.",
            "",
            f"N = {n} jobs of wan2.6-t2v 720P 2 s, fixed task time T = {t_real} s, C = QPS = {C} per account. All "
            "repetitions of both rows run at the same time, each against its own emulator subprocess; the 3-account "
            "row's emulator serves three accounts (`--account NAME=KEY,qps=5,in_flight=5`) and wanbatch gets an "
            "accounts file naming them with their quota. Bound: max(N / (QPS·A), ⌈N / (C·A)⌉·T) for A accounts. "
            "Target (3 accounts): ÷ bound ≤ 1.05, 0 429s, 0 duplicate submissions, 0 requests naming another "
            "account's task.",
            "",
            "| scenario | bound s | makespan s (median) | ÷ bound (median; each rep) | 429s (max) | duplicates | "
            "foreign requests | done | submissions per account (each rep) |",
            "|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            f"Three accounts finish the same night {speedup:.2f}× faster than one (median of the side-by-side ratios).",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="60 jobs, 1 repetition; the page is not written")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=300)
    ap.add_argument("--task-time", type=float, default=1.5, help="real seconds of a fixed task (default 1.5)")
    args = ap.parse_args(argv)
    n, reps = (60, 1) if args.quick else (args.jobs, args.reps)
    t0 = time.perf_counter()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-accounts-") as tmp:
        results = run_reps(n, args.task_time, reps, Path(tmp))
        for r in results:
            said = f"makespan {r.makespan:.1f} s, ÷ bound {r.ratio:.3f}, 429s {r.stats.get('throttled_total')}"
            print(f"  rep {r.rep} {r.scenario}: {r.done}/{n} done, {said}, exit {r.rc}", flush=True)
    text = render(results, n, args.task_time, reps, time.perf_counter() - t0)
    print(text)
    if not args.quick:
        PAGE.write_text(text, encoding="utf-8")
        print(f"written: {PAGE}")
    return 0 if all(r.done == n for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
