"""The ``wanbatch`` command line: argument parsing and exit codes only; each command's work lives in
its own module, imported when the command runs so ``plan`` never pays for the network stack.

Exit codes (DESIGN.md): 0 every job done; 1 some jobs failed or were left; 2 bad input; 3 another run
holds the lock; 130 interrupted (state saved, resume with the same command).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from runner.models import DEFAULT_REGION, REGIONS
from runner.version import version

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_LOCKED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def _cmd_plan(args: argparse.Namespace) -> int:
    from runner.manifest import PlanSettings, plan_command
    from runner.schedule.budget import MoneyCaps

    settings = PlanSettings(
        manifest=args.manifest, region=args.region or DEFAULT_REGION, as_json=args.json, accounts=args.accounts
    )
    caps = MoneyCaps(args.budget, args.daily_budget, args.state_dir, args.timezone)
    with _gc_paused():
        return plan_command(settings, caps=caps.plan_lines if caps.any() else None)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off for one command (``plan``), on again once its objects are freed. Loading a
    big manifest allocates millions of small acyclic objects: the collector's passes over the growing heap,
    and its first full pass once they are alive (~0.2 s for 100,000 jobs), cost it time and find nothing.
    Here, at the command, because the switch is process-wide: library code never touches it."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _cmd_run(args: argparse.Namespace) -> int:
    from runner.commands.run import run_command

    return run_command(args)


def _cmd_schedule(args: argparse.Namespace) -> int:
    from runner.commands.schedule import schedule_command

    return schedule_command(args, run_options_parser().recorded)


def _cmd_status(args: argparse.Namespace) -> int:
    from runner.commands.folder import status_command

    return status_command(args)


def _cmd_cancel(args: argparse.Namespace) -> int:
    from runner.commands.folder import cancel_command

    return cancel_command(args)


def _cmd_doctor(args: argparse.Namespace) -> int:
    from runner.commands.doctor import doctor_command

    return doctor_command(args)


def _cmd_report(args: argparse.Namespace) -> int:
    from runner.commands.folder import report_command

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


def _add_accounts(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--accounts",
        default=None,
        metavar="FILE",
        help="YAML file of the accounts to drive (else WANBATCH_ACCOUNTS; else the one of DASHSCOPE_API_KEY)",
    )


def _amount(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an amount: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"an amount must be 0 or more: {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more: {text!r}")
    return value


def _add_caps(p: argparse.ArgumentParser) -> None:
    """The money options (run and plan): amounts are in the region's currency (CNY)."""
    p.add_argument(
        "--budget",
        type=_amount,
        default=None,
        metavar="AMOUNT",
        help="spend at most AMOUNT (CNY) in this run: a job whose cost does not fit is not submitted",
    )
    p.add_argument(
        "--daily-budget",
        type=_amount,
        default=None,
        metavar="AMOUNT",
        help="spend at most AMOUNT (CNY) per day across all runs using the same --state-dir",
    )
    p.add_argument(
        "--state-dir",
        default=None,
        metavar="DIR",
        help="where the daily spend ledger and the learned task times live (default $XDG_STATE_HOME/wanbatch "
        "or ~/.local/state/wanbatch)",
    )
    p.add_argument(
        "--timezone",
        default=None,
        metavar="TZ",
        help="IANA timezone of the day boundary and of cron times (default: the host's local time)",
    )


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number: {text!r}")
    return value


def _duration(text: str) -> float:
    """``90``, ``90s``, ``30m``, ``2h`` → seconds (> 0)."""
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    raw = text.strip().lower()
    scale = units.get(raw[-1:])
    number = raw[:-1] if scale is not None else raw
    try:
        value = float(number) * (scale or 1.0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: a duration like 90s, 30m or 2h") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: must be more than 0")
    return value


class _RecordingParser(argparse.ArgumentParser):
    """A parser that keeps the actions it was given (``recorded``): ``schedule`` writes its run options back
    as arguments for each run it starts, and argparse has no public list of a parser's actions."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.recorded: list[argparse.Action] = []

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        self.recorded.append(action)
        return action


def run_options_parser() -> _RecordingParser:
    """The options of ``run``, shared by ``schedule`` (which hands them to each run it starts)."""
    p = _RecordingParser(add_help=False)
    p.add_argument("--out", default=None, help="output folder (default runs/<manifest name>)")
    _add_region(p)
    p.add_argument("--base-url", default=None, help="API base URL with /api/v1 (else DASHSCOPE_HTTP_BASE_URL)")
    _add_accounts(p)
    p.add_argument("--qps", type=float, default=None, help="submissions per second (default: the model's)")
    p.add_argument("--max-in-flight", type=int, default=None, help="tasks in flight (default: the model's)")
    p.add_argument(
        "--query-qps",
        type=_positive_float,
        default=None,
        metavar="QPS",
        help="status queries per second for the whole run (default 10: half the account's 20; raise it only "
        "with a raised quota)",
    )
    p.add_argument(
        "--max-video-mb",
        type=_positive_float,
        default=None,
        metavar="MB",
        help="stop a download larger than this (default 2048)",
    )
    p.add_argument(
        "--max-jobs",
        type=_positive_int,
        default=None,
        metavar="N",
        help="submit at most N new jobs this run (a later run continues)",
    )
    p.add_argument("--retry-failed", action="store_true", help="submit failed jobs again")
    p.add_argument("--retry-canceled", action="store_true", help="submit canceled jobs again")
    p.add_argument(
        "--max-outage",
        type=_duration,
        default=1800.0,
        metavar="TIME",
        help="how long the run waits on an API that answers nothing usable before it stops with exit 4 "
        "(e.g. 90s, 30m, 2h; default 30m); no job is failed for it",
    )
    p.add_argument(
        "--regenerate-expired",
        action="store_true",
        help="generate again the jobs whose videos expired on the server before they were saved (paid again)",
    )
    p.add_argument("--drain", action="store_true", help="on Ctrl-C, wait for tasks in flight to finish")
    _add_caps(p)
    p.add_argument(
        "--notify",
        action="append",
        default=None,
        metavar="URL",
        help="POST a JSON summary to URL when the run ends (repeatable; never fails the run)",
    )
    p.add_argument(
        "--on-finish",
        action="append",
        default=None,
        metavar="CMD",
        help="run the shell command CMD with the JSON summary on stdin when the run ends",
    )
    p.add_argument(
        "--expected-task-time",
        type=_positive_float,
        default=None,
        metavar="S",
        help="override: seconds a task usually takes, for every kind of task this run has not learned yet "
        "(not needed: wanbatch learns task times per model, resolution and duration, and keeps them in "
        "--state-dir for the next run)",
    )
    p.add_argument(
        "--min-poll-interval",
        type=_positive_float,
        default=None,
        metavar="S",
        help="override: the shortest gap between two polls of a task (default 0.02; the query rate is the limit)",
    )
    return p


class _Quieter(argparse.Action):
    """``-q``: one step less log output (the same counter ``-v`` raises)."""

    def __call__(self, parser: argparse.ArgumentParser, ns: argparse.Namespace, values: Any, opt: Any = None) -> None:
        setattr(ns, self.dest, (getattr(ns, self.dest, 0) or 0) - 1)


def _add_global(p: argparse.ArgumentParser, *, default: Any) -> None:
    p.add_argument("-v", "--verbose", action="count", default=default, help="more log output (repeatable)")
    p.add_argument("-q", "--quiet", action=_Quieter, nargs=0, dest="verbose", default=default,
                   help="less log output: warnings and errors only")  # fmt: skip


def build_parser(emulator: bool = True) -> argparse.ArgumentParser:
    """The whole command line. ``emulator=False`` leaves the emulator's options out: defining them imports
    the emulator package (~0.1 s of every ``wanbatch plan``), and only ``wanbatch emulator`` needs them."""
    parser = argparse.ArgumentParser(
        prog="wanbatch",
        description="Batch runner for DashScope's Wan text-to-video API.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    _add_global(parser, default=0)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # the global options are accepted after the command too (``wanbatch run -v …``)
    sub_add = sub.add_parser

    def add_parser(name: str, **kw: Any) -> argparse.ArgumentParser:
        p = sub_add(name, **kw)
        _add_global(p, default=argparse.SUPPRESS)
        return p

    sub.add_parser = add_parser  # type: ignore[method-assign]

    p = sub.add_parser("plan", help="expand and validate a manifest, estimate seconds and cost (no network)")
    p.add_argument("manifest", help="the manifest YAML file")
    p.add_argument("--json", action="store_true", help="print the plan as one JSON object")
    _add_region(p)
    _add_accounts(p)
    _add_caps(p)
    p.set_defaults(func=_cmd_plan)

    p = sub.add_parser(
        "run", help="run a manifest; resumes when the output folder has a ledger", parents=[run_options_parser()]
    )
    p.add_argument("manifest", help="the manifest YAML file")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser(
        "schedule",
        help="run manifests at cron times (a long-running scheduler for hosts without cron)",
        parents=[run_options_parser()],
    )
    p.add_argument("--cron", required=True, metavar="EXPR", help='cron expression, e.g. "0 2 * * *" (02:00 daily)')
    p.add_argument("manifests", nargs="+", metavar="MANIFEST", help="the manifests to run at each time")
    p.set_defaults(func=_cmd_schedule)

    p = sub.add_parser("status", help="summarise a run's output folder from its ledger")
    p.add_argument("dir", help="the run's output folder")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=_cmd_status)

    p = sub.add_parser("cancel", help="cancel the run's PENDING tasks")
    p.add_argument("dir", help="the run's output folder")
    p.add_argument("--base-url", default=None, help="API base URL with /api/v1 (else DASHSCOPE_HTTP_BASE_URL)")
    _add_region(p)
    _add_accounts(p)
    p.set_defaults(func=_cmd_cancel)

    p = sub.add_parser("doctor", help="check the key, the host, the network, the clock and the folders (no task made)")
    p.add_argument("--base-url", default=None, help="API base URL with /api/v1 (else DASHSCOPE_HTTP_BASE_URL)")
    _add_region(p)
    p.add_argument("--out", default="runs", help="the output folder to check (default runs)")
    p.add_argument("--state-dir", default=None, help="the state folder to check (default as for run)")
    p.add_argument("--json", action="store_true", help="print the checks as one JSON object")
    _add_accounts(p)
    p.set_defaults(func=_cmd_doctor)

    p = sub.add_parser("report", help="(re)build DIR/index.html, the gallery of a run")
    p.add_argument("dir", help="the run's output folder")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("emulator", help="serve the local DashScope emulator")
    if emulator:
        _add_emulator_arguments(p)
    p.set_defaults(func=_cmd_emulator)
    return parser


def _add_emulator_arguments(p: argparse.ArgumentParser) -> None:
    from runner.emulator.cli import add_arguments

    add_arguments(p)


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    command = next((w for w in words if not w.startswith("-")), None)
    parser = build_parser(emulator=command in (None, "emulator"))
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
