"""``make demo``: the whole product in well under a minute, with no account and no cost.

Prints the plan of every example manifest, starts the local emulator in a thread (fast simulated time,
quotas on), runs the detective and matrix examples through the real command line (``python -m runner run``
in a child process, so what a user types is what is exercised), then ``status`` of each, and says where the
videos, ledger and gallery are.

Every ``make demo`` starts its runs fresh: the emulator that answered the previous demo is gone, so its
tasks cannot be resumed. Only a folder whose ledger says it was made against a local (loopback) server is
cleared; anything else is refused, so a real paid run is never deleted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from runner.emulator.config import EmulatorConfig
from runner.emulator.server import run_in_thread
from runner.errors import InputError, LedgerError
from runner.manifest import build_plan, load_manifest, render_table
from runner.models import DEFAULT_REGION
from runner.store.ledger import LEDGER_NAME
from runner.store.lock import RunLock
from runner.store.replay import replay

REPO = Path(__file__).resolve().parent.parent
#: A key of the emulator's accepted shape (any ``sk-…``); handed to the child through its environment only.
DEMO_KEY = "sk-wanbatch-demo"
#: Simulated time runs this much faster: a 1–5 minute task (720P, 5 s) takes 0.5–2.5 s.
SPEED = 120.0
SEED = 7
RUN_TIMEOUT = 90.0
#: Rows of a plan shown before it is cut short (the nightly example has 60).
PLAN_ROWS = 8
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
#: (output folder name, manifest file) of the runs; ``--quick`` keeps the first only.
RUNS = (("detective", "detective.yaml"), ("matrix", "matrix.yaml"))
EXIT_USAGE, EXIT_INTERRUPTED = 2, 130


def _say(text: str = "") -> None:
    print(text, flush=True)


def _heading(text: str) -> None:
    _say()
    _say(f"== {text}")


def print_plans(manifests: Path) -> None:
    """The plan of every example manifest, as ``wanbatch plan`` prints it."""
    for path in sorted(manifests.glob("*.yaml")):
        _heading(f"wanbatch plan {_show(path)}")
        _say(_shorten(render_table(build_plan(load_manifest(path, DEFAULT_REGION))), _show(path)))


def _shorten(table: str, shown: str, keep: int = PLAN_ROWS) -> str:
    """A long plan keeps its first ``keep`` rows and its totals; ``wanbatch plan`` shows every row."""
    rows, _, totals = table.rstrip().partition("\n\n")
    lines = rows.splitlines()
    if len(lines) - 1 <= keep + 1:
        return table.rstrip()
    more = len(lines) - 1 - keep
    head = "\n".join(lines[: keep + 1])
    return f"{head}\n… {more} more rows (`wanbatch plan {shown}` shows them all)\n\n{totals}"


def _show(path: Path) -> str:
    """``path`` relative to the working directory when it lies under it (shorter, copy-pasteable)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def clear_previous(out: Path) -> None:
    """Remove a previous demo's output folder; refuse one that talked to anything but a local server."""
    if not out.exists():
        return
    ledger = out / LEDGER_NAME
    if ledger.is_file():
        url = replay(ledger).base_url
        host = urlsplit(url).hostname if url else None
        if host not in LOOPBACK:
            raise InputError(f"{out} holds a run against {url}; not clearing it (use --runs to pick another folder)")
    elif any(out.iterdir()):
        raise InputError(f"{out} is not empty and holds no ledger; not clearing it (use --runs to pick another folder)")
    with RunLock(out):  # LockHeld when another run (another demo) is using it
        pass
    shutil.rmtree(out)


def _run_cli(args: list[str], env: dict[str, str], quiet: bool) -> tuple[int, str]:
    """``python -m runner ARGS`` in a child; its stderr (progress or JSON logs) is shown on a terminal only."""
    cmd = [sys.executable, "-m", "runner", *args]
    stderr = None if not quiet and sys.stderr.isatty() else subprocess.PIPE
    try:
        done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True, timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        return 1, f"timed out after {e.timeout:.0f} s\n"
    tail = "\n".join((done.stderr or "").splitlines()[-15:])
    return done.returncode, done.stdout + (f"{tail}\n" if done.returncode != 0 and tail else "")


def run_one(name: str, manifest: Path, out: Path, base_url: str, env: dict[str, str], quiet: bool) -> int:
    """Run one manifest through the CLI, then ``status``; build the gallery if the run did not."""
    clear_previous(out)
    args = ["run", _show(manifest), "--out", _show(out), "--base-url", base_url]  # no hints: wanbatch learns
    _heading(f"wanbatch {' '.join(args)}")
    start = time.monotonic()
    code, text = _run_cli(args, env, quiet)
    _say(text.rstrip())
    _say(f"(exit {code}, {time.monotonic() - start:.1f} s)")
    _heading(f"wanbatch status {_show(out)}")
    status_code, text = _run_cli(["status", _show(out)], env, quiet)
    _say(text.rstrip())
    if not (out / "index.html").is_file() and (out / LEDGER_NAME).is_file():
        from runner.report.gallery import write_report

        write_report(out)
    return code or status_code


def _say_stats(stats: dict[str, Any], outs: Sequence[Path]) -> None:
    """The emulator's own count of create requests: the proof that no job was paid for twice."""
    jobs = sum(len(replay(out / LEDGER_NAME).jobs) for out in outs if (out / LEDGER_NAME).is_file())
    twice = sum(1 for n in stats.get("submissions_by_body", {}).values() if n > 1)
    _heading("the emulator's count")
    _say(f"{stats.get('submitted', 0)} create requests accepted for {jobs} jobs; {twice} request bodies sent twice")


def where(outs: Sequence[Path]) -> None:
    _heading("where things are")
    for out in outs:
        videos = sorted((out / "videos").glob("*.mp4"))
        _say(f"{_show(out)}/")
        _say(f"  videos   {_show(out / 'videos')}/ ({len(videos)} .mp4, each with a .json sidecar)")
        _say(f"  ledger   {_show(out / LEDGER_NAME)}")
        _say(f"  gallery  {_show(out / 'index.html')} (open it in a browser)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m runner.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", default="runs", help="folder for the runs' output folders (default runs)")
    p.add_argument("--manifests", default=str(REPO / "manifests"), help="folder of the example manifests")
    p.add_argument("--quick", action="store_true", help="run the detective example only")
    p.add_argument("--quiet", action="store_true", help="never show the runs' progress or logs")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.monotonic()
    manifests, runs = Path(args.manifests), Path(args.runs)
    try:
        print_plans(manifests)
    except InputError as e:
        print(f"demo: {e}", file=sys.stderr)
        return EXIT_USAGE
    config = EmulatorConfig(port=0, speed=SPEED, seed=SEED, quotas=True)
    env = {k: v for k, v in os.environ.items() if k != "DASHSCOPE_HTTP_BASE_URL"}
    env["DASHSCOPE_API_KEY"] = DEMO_KEY
    env.setdefault("PYTHONUNBUFFERED", "1")
    # the child imports this checkout's runner, whatever the venv's install points at
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    worst = 0
    outs: list[Path] = []
    emulator = run_in_thread(config)
    try:
        _heading(f"emulator listening on {emulator.base_url} (speed x{SPEED:g}, seed {SEED}, quotas on)")
        for name, file in RUNS[:1] if args.quick else RUNS:
            out = runs / name
            try:
                code = run_one(name, manifests / file, out, emulator.base_url, env, args.quiet)
            except (InputError, LedgerError) as e:  # LockHeld is a LedgerError
                print(f"demo: {e}", file=sys.stderr)
                return EXIT_USAGE
            outs.append(out)
            worst = worst or code
        _say_stats(emulator.stats(), outs)
    except KeyboardInterrupt:  # Ctrl-C reached the runs too: each saved its state and exited 130
        print("demo: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        emulator.stop()
    where(outs)
    _say()
    verdict = "every run finished" if worst == 0 else f"a run failed (exit {worst})"
    _say(f"demo: {verdict} in {time.monotonic() - started:.1f} s")
    return worst


if __name__ == "__main__":
    sys.exit(main())
