"""How fast ``wanbatch run`` stops on Ctrl-C (target: exit 130 within 2 s, issue 4), and that it loses
nothing: every rep checks that the ledger's last line is ``run.finished`` with exit code 130.

    .venv/bin/python -m bench.bench_interrupt            # 5 reps per moment
    .venv/bin/python -m bench.bench_interrupt --quick    # 2 reps

Each rep starts the emulator in a thread, the runner as a real subprocess (``python -m runner run``) on
a 20-job manifest with 3-second tasks, waits for a moment of the run (first ``submitted`` lines: creates,
polls and the ledger writer busy; or mid-run with downloads going), sends SIGINT and measures the time
until the process has exited. Figures go to ``docs/benchmarks/interrupt.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runner.emulator.config import EmulatorConfig  # noqa: E402
from runner.emulator.server import run_in_thread  # noqa: E402

OUT = ROOT / "docs" / "benchmarks" / "interrupt.md"
JOBS = 20
#: (label, ledger event, how many of them before the SIGINT)
MOMENTS = (("while submitting (2 tasks created)", "submitted", 2), ("mid-run (3 videos downloaded)", "downloaded", 3))


def _manifest(path: Path) -> Path:
    jobs = "\n".join(
        f"  - name: clip{i}\n    prompt: Take {i} of a lighthouse at dusk, waves rolling in." for i in range(JOBS)
    )
    path.write_text(
        f'version: 1\nname: bench\ndefaults:\n  model: wan2.6-t2v\n  size: "1280*720"\n  duration: 2\n'
        f"  prompt_extend: false\njobs:\n{jobs}\n",
        encoding="utf-8",
    )
    return path


def one(event: str, count: int) -> float:
    """Seconds from SIGINT to the runner's exit, at the ``count``-th ``event`` line."""
    emu = run_in_thread(EmulatorConfig(port=0, speed=3600.0, task_time=3 * 3600.0, retention=1e9, url_ttl=1e9))
    try:
        with tempfile.TemporaryDirectory(prefix="wb-int-") as tmp:
            d = Path(tmp)
            out = d / "out"
            env = {k: v for k, v in os.environ.items() if not k.startswith("DASHSCOPE")}
            env.update(DASHSCOPE_API_KEY="sk-bench0000", PYTHONPATH=str(ROOT), XDG_STATE_HOME=str(d / "state"))
            args = ["run", str(_manifest(d / "m.yaml")), "--out", str(out), "--base-url", emu.base_url]
            with open(d / "err", "w") as err:
                proc = subprocess.Popen([sys.executable, "-m", "runner", *args], cwd=d, env=env,
                                        stdout=subprocess.DEVNULL, stderr=err)  # fmt: skip
            needle = f'"event":"{event}"'.encode()
            deadline = time.monotonic() + 60
            ledger = out / "ledger.jsonl"
            while time.monotonic() < deadline:
                if ledger.exists() and ledger.read_bytes().count(needle) >= count:
                    break
                time.sleep(0.005)
            else:
                proc.kill()
                raise RuntimeError(f"no {count} {event} lines")
            sent = time.perf_counter()
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=60)
            took = time.perf_counter() - sent
            last = json.loads(ledger.read_text(encoding="utf-8").splitlines()[-1])
            if code != 130 or last.get("event") != "run.finished" or last.get("exit_code") != 130:
                raise RuntimeError(f"exit {code}, last ledger line {last}")
            return took
    finally:
        emu.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="2 reps (smoke run)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks/interrupt.md")
    a = ap.parse_args(argv)
    reps = 2 if a.quick else max(3, a.reps)
    rows = []
    for label, event, count in MOMENTS:
        times = [one(event, count) for _ in range(reps)]
        med = statistics.median(times)
        rows.append(f"| {label} | {reps} | {med:.3f} | {min(times):.3f}–{max(times):.3f} |")
        print(f"{label}: median {med:.3f} s ({min(times):.3f}–{max(times):.3f}) over {reps}", flush=True)
    text = "\n".join(
        [
            "# Ctrl-C: time from SIGINT to exit",
            "",
            "Target (issue 4): exit 130 in under 2 s, ledger flushed (last line `run.finished`, exit code 130;",
            "every rep checks it). The runner is a real `python -m runner run` subprocess against the emulator",
            f"(thread of the benchmark process), {JOBS} wan2.6 jobs, 3-second tasks, default limits.",
            "",
            "| moment of the SIGINT | reps | median s | min–max s |",
            "|---|---|---|---|",
            *rows,
            "",
            f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, {os.cpu_count()} cpus, "
            f"Python {platform.python_version()}; a shared, noisy machine.",
            "",
            "Reproduce: `.venv/bin/python -m bench.bench_interrupt` (`--quick` for 2 reps).",
            "",
        ]
    )
    if not a.no_write:
        OUT.write_text(text, encoding="utf-8")
        print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
