"""``wanbatch schedule --cron EXPR MANIFEST… [run options]``: check everything once (exit 2 on bad input), then
start one ``wanbatch run`` child per manifest at each time (``runner.schedule.cron``), handing it the run options
given here."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from runner import log as runlog
from runner.commands import EXIT_USAGE
from runner.errors import ConfigError
from runner.schedule.cron import Scheduler, parse_cron, serve, subprocess_launcher
from runner.schedule.spend import parse_timezone


def options_argv(actions: Sequence[argparse.Action], args: argparse.Namespace) -> list[str]:
    """The command-line options of ``actions`` that ``args`` sets to something other than their default,
    written back as arguments (how the scheduler hands its run options to each ``wanbatch run``)."""
    out: list[str] = []
    for action in actions:
        if not action.option_strings or action.dest in ("help",):
            continue
        value = getattr(args, action.dest, action.default)
        if value == action.default or value is None:
            continue
        flag = action.option_strings[-1] if action.option_strings[-1].startswith("--") else action.option_strings[0]
        if action.nargs == 0:  # a switch (store_true): present or not
            out.append(flag)
        elif isinstance(value, list):  # a repeatable option (append)
            for v in value:
                out += [flag, str(v)]
        else:
            out += [flag, str(value)]
    return out


def schedule_command(args: argparse.Namespace, run_actions: Sequence[argparse.Action]) -> int:
    """``wanbatch schedule``: check everything once at the start (exit 2 on bad input), then run forever."""

    def err(message: str) -> int:
        print(f"wanbatch: {message}", file=sys.stderr)
        return EXIT_USAGE

    try:
        parse_cron(args.cron)
        tz = parse_timezone(getattr(args, "timezone", None))
        key = os.environ.get("DASHSCOPE_API_KEY", "").strip()
        if not key:
            raise ConfigError("set the API key in the environment variable DASHSCOPE_API_KEY before scheduling")
        if len(args.manifests) > 1 and getattr(args, "out", None):
            raise ConfigError("--out names one folder: with several manifests each run uses runs/<manifest name>")
        if len(set(args.manifests)) != len(args.manifests):
            raise ConfigError("a manifest is named twice")
        for m in args.manifests:
            if not os.path.isfile(m):
                raise ConfigError(f"{m}: no such manifest")
    except ConfigError as e:
        return err(str(e))
    runlog.configure(verbosity=getattr(args, "verbose", 0), secrets=[key])
    run_argv = options_argv(run_actions, args)
    manifests = [os.path.abspath(m) for m in args.manifests]
    launcher = subprocess_launcher(run_argv, verbose=getattr(args, "verbose", 0))
    return asyncio.run(serve(Scheduler(args.cron, manifests, launcher, tz=tz)))
