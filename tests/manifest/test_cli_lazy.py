"""`wanbatch plan` does not pay for the emulator's imports; `wanbatch emulator` still has all its options."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from runner.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]


def test_plan_does_not_import_the_emulator() -> None:
    code = (
        "import sys, contextlib, io\n"
        "from runner.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    rc = main(['plan', 'manifests/detective.yaml'])\n"
        "print(rc, any(m.startswith('runner.emulator') for m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "False"]


def test_emulator_options_are_there_when_asked_for() -> None:
    args = build_parser().parse_args(["emulator", "--port", "0", "--speed", "80"])
    assert (args.port, args.speed) == (0, 80.0)
    full = subprocess.run(
        [sys.executable, "-m", "runner", "-v", "emulator", "--help"], cwd=ROOT, capture_output=True, text=True
    )
    assert full.returncode == 0 and "--concurrency-mode" in full.stdout
