"""``wanbatch emulator``: the options of DESIGN.md plus the knobs tests and benchmarks need.

``runner/cli.py`` wires the subcommand to ``add_arguments`` and ``command``; ``python -m runner.emulator``
runs the same thing stand-alone.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from runner.emulator.accounts import SYNTAX, AccountSpec, AccountSyntaxError, parse_account, parse_accounts
from runner.emulator.config import EmulatorConfig
from runner.emulator.faults import KINDS, ROUTES, FaultSyntaxError, parse_fault

#: Accepted keys from the environment (comma-separated), so they need not appear in argv.
KEYS_ENV = "WANBATCH_EMULATOR_API_KEYS"
#: Accounts from the environment (``;`` between accounts, each as ``--account``), keys out of argv likewise.
ACCOUNTS_ENV = "WANBATCH_EMULATOR_ACCOUNTS"


def _fault(spec: str) -> str:
    try:
        parse_fault(spec)
    except FaultSyntaxError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return spec


def _account(spec: str) -> AccountSpec:
    try:
        return parse_account(spec)
    except AccountSyntaxError as e:  # the message never quotes the key; argparse then exits 2
        raise argparse.ArgumentTypeError(str(e)) from None


def _env_accounts() -> tuple[AccountSpec, ...]:
    try:
        return parse_accounts(os.environ.get(ACCOUNTS_ENV, ""))
    except AccountSyntaxError as e:
        raise AccountSyntaxError(f"{ACCOUNTS_ENV}: {e}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the emulator's options to ``parser``."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="simulated time runs X times faster: a 120 s task takes 120/X s (also retention, URL lifetime)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of task times, faults and Retry-After choices (default 0)"
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        type=_fault,
        metavar="KIND[@ROUTE]=RATE[xN]",
        help=f"inject faults (repeatable). Kinds: {', '.join(KINDS)}. Routes: {', '.join(ROUTES)}",
    )
    parser.add_argument(
        "--concurrency-mode",
        choices=("queue", "reject"),
        default="queue",
        help="over the model's concurrent-task limit: queue as PENDING (default) or answer 429",
    )
    parser.add_argument(
        "--api-key",
        action="append",
        default=[],
        metavar="KEY",
        help="accepted API key (repeatable; default: any key starting with sk-). Visible in ps: test keys only; "
        f"to keep keys out of argv set {KEYS_ENV}=KEY1,KEY2 instead",
    )
    parser.add_argument(
        "--account", action="append", default=[], type=_account, metavar=SYNTAX,
        help="serve this account (repeatable; a NAME again with another key adds a key to it): its own quotas "
        "(qps, in_flight: those of wan2.6, other models scale alike), tasks and faults (arrears after K creates, "
        f"models denied). Without any, every key is one account. Keys out of argv: {ACCOUNTS_ENV}='A=KEY;B=KEY,qps=2'",
    )  # fmt: skip
    parser.add_argument(
        "--task-time",
        type=float,
        default=None,
        metavar="SECONDS",
        help="fixed simulated submit-to-end time of every task (default: drawn from 1-5 min)",
    )
    parser.add_argument(
        "--retention",
        type=float,
        default=None,
        metavar="SECONDS",
        help="simulated seconds a task stays queryable before UNKNOWN (default 86400)",
    )
    parser.add_argument(
        "--url-ttl",
        type=float,
        default=None,
        metavar="SECONDS",
        help="simulated seconds a video_url stays valid after the task ends (default 86400)",
    )
    parser.add_argument("--qps-scale", type=float, default=1.0, help="multiply every quota (default 1)")
    parser.add_argument("--no-quotas", action="store_true", help="disable every quota (load tests)")
    parser.add_argument("--block-word", default=None, help="a prompt containing it gets 400 DataInspectionFailed")
    parser.add_argument("--slow-seconds", type=float, default=2.0, help="delay of a 'slow' fault (default 2)")
    parser.add_argument("--fps", type=int, default=1, help="frame rate of the generated videos (default 1)")
    parser.add_argument("--access-log", action="store_true", help="log every request")
    parser.add_argument(
        "--clock-offset", type=float, default=0.0, metavar="SECONDS",
        help="run the emulator's clock this far ahead of the host's (negative: behind)",
    )  # fmt: skip
    parser.add_argument(
        "--arrears-after", type=int, default=None, metavar="K",
        help="the account falls into arrears after K accepted creates (then 400 Arrearage)",
    )  # fmt: skip
    parser.add_argument(
        "--deny-model", action="append", default=[], metavar="MODEL",
        help="a model not open to the account (403 Model.AccessDenied; repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--echo-normalized", action="store_true",
        help="answer orig_prompt NFC-normalised with whitespace folded (a server that does not echo byte for byte)",
    )  # fmt: skip


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    defaults = EmulatorConfig()
    return EmulatorConfig(
        host=args.host,
        port=args.port,
        speed=args.speed,
        seed=args.seed,
        faults=EmulatorConfig.parse_faults(args.fault),
        concurrency_mode=args.concurrency_mode,
        api_keys=tuple(args.api_key) + tuple(k.strip() for k in os.environ.get(KEYS_ENV, "").split(",") if k.strip()),
        accounts=tuple(args.account) + _env_accounts(),
        task_time=args.task_time,
        retention=args.retention if args.retention is not None else defaults.retention,
        url_ttl=args.url_ttl if args.url_ttl is not None else defaults.url_ttl,
        quotas=not args.no_quotas,
        qps_scale=args.qps_scale,
        block_word=args.block_word,
        slow_seconds=args.slow_seconds,
        fps=args.fps,
        access_log=args.access_log,
        clock_offset=args.clock_offset,
        echo_normalized=args.echo_normalized,
        arrears_after=args.arrears_after,
        denied_models=tuple(args.deny_model),
    )


def command(args: argparse.Namespace) -> int:
    """Run the emulator in the foreground until SIGINT/SIGTERM; 0 on a clean stop, 2 on bad options."""
    from runner.emulator.server import serve

    try:
        config = config_from_args(args)
    except ValueError as e:
        print(f"wanbatch emulator: {e}", file=sys.stderr)
        return 2
    if config.access_log:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        asyncio.run(serve(config))
    except OSError as e:
        print(f"wanbatch emulator: cannot listen on {config.host}:{config.port}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runner.emulator", description="the local DashScope emulator")
    add_arguments(parser)
    return command(parser.parse_args(argv))
