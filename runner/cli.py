"""The ``wanbatch`` command line: argument parsing and exit codes only; each command's work lives in
its own module, imported when the command runs so ``plan`` never pays for the network stack.

Exit codes (DESIGN.md): 0 every job done; 1 some jobs failed or were left; 2 bad input; 3 another run
holds the lock; 130 interrupted (state saved, resume with the same command).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from runner.models import DEFAULT_REGION, REGIONS

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_LOCKED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def _cmd_plan(args: argparse.Namespace) -> int:
    from runner.plan import plan_command

    return plan_command(args)


def _cmd_run(args: argparse.Namespace) -> int:
    from runner.commands import run_command

    return run_command(args)


def _cmd_status(args: argparse.Namespace) -> int:
    from runner.commands import status_command

    return status_command(args)


def _cmd_cancel(args: argparse.Namespace) -> int:
    from runner.commands import cancel_command

    return cancel_command(args)


def _cmd_report(args: argparse.Namespace) -> int:
    from runner.report import report_command

    return report_command(args)


def _cmd_emulator(args: argparse.Namespace) -> int:
    from runner.emulator.cli import command

    return command(args)


def _add_region(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--region",
        default=None,
        choices=sorted(REGIONS),
        help=f"region: picks the host, the model spelling and the price column (default {DEFAULT_REGION})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wanbatch",
        description="Batch runner for DashScope's Wan text-to-video API.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("plan", help="expand and validate a manifest, estimate seconds and cost (no network)")
    p.add_argument("manifest", help="the manifest YAML file")
    p.add_argument("--json", action="store_true", help="print the plan as one JSON object")
    _add_region(p)
    p.set_defaults(func=_cmd_plan)

    p = sub.add_parser("run", help="run a manifest; resumes when the output folder has a ledger")
    p.add_argument("manifest", help="the manifest YAML file")
    p.add_argument("--out", default=None, help="output folder (default runs/<manifest name>)")
    _add_region(p)
    p.add_argument("--base-url", default=None, help="API base URL with /api/v1 (else DASHSCOPE_HTTP_BASE_URL)")
    p.add_argument("--qps", type=float, default=None, help="submissions per second (default: the model's)")
    p.add_argument("--max-in-flight", type=int, default=None, help="tasks in flight (default: the model's)")
    p.add_argument("--max-jobs", type=int, default=None, help="submit at most N new jobs this run")
    p.add_argument("--retry-failed", action="store_true", help="submit failed jobs again")
    p.add_argument("--drain", action="store_true", help="on Ctrl-C, wait for tasks in flight to finish")
    p.add_argument(
        "--expected-task-time", type=float, default=None, metavar="S", help="seconds a task usually takes (polling)"
    )
    p.add_argument("--min-poll-interval", type=float, default=None, metavar="S", help="shortest gap between polls")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("status", help="summarise a run's output folder from its ledger")
    p.add_argument("dir", help="the run's output folder")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=_cmd_status)

    p = sub.add_parser("cancel", help="cancel the run's PENDING tasks")
    p.add_argument("dir", help="the run's output folder")
    p.add_argument("--base-url", default=None, help="API base URL with /api/v1 (else DASHSCOPE_HTTP_BASE_URL)")
    _add_region(p)
    p.set_defaults(func=_cmd_cancel)

    p = sub.add_parser("report", help="(re)build DIR/index.html, the gallery of a run")
    p.add_argument("dir", help="the run's output folder")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("emulator", help="serve the local DashScope emulator")
    _add_emulator_arguments(p)
    p.set_defaults(func=_cmd_emulator)
    return parser


def _add_emulator_arguments(p: argparse.ArgumentParser) -> None:
    from runner.emulator.cli import add_arguments

    add_arguments(p)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits 2 on bad arguments, 0 on --help
        return int(e.code or 0)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
