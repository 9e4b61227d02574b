"""The commands behind the CLI: each builds its objects from the arguments and the environment, calls the
library, and turns the outcome into an exit code (0 done, 1 some jobs failed or left, 2 bad input, 3 folder
locked, 4 the account or the network refused work, 130 interrupted).

The API key is read from ``DASHSCOPE_API_KEY`` only (never argv, never the manifest) and handed to the API
client and the log redactor; nothing here prints, logs or writes it.

``run`` (``runner.commands.run``), ``status`` and ``cancel`` (``runner.commands.folder``), ``doctor``
(``runner.commands.doctor``); what they share is here.
"""

from __future__ import annotations

import argparse
import os
import sys

from runner.accounts import ACCOUNTS_ENV, AccountConfig, default_account, load_accounts
from runner.errors import ConfigError
from runner.models import DEFAULT_REGION, REGIONS

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_LOCKED, EXIT_REFUSED, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
KEY_ENV = "DASHSCOPE_API_KEY"
BASE_URL_ENV = "DASHSCOPE_HTTP_BASE_URL"


def print_error(message: str) -> None:
    print(f"wanbatch: {message}", file=sys.stderr)


def api_key() -> str:
    """The key from the environment; ConfigError (exit 2) when it is missing."""
    key = os.environ.get(KEY_ENV, "").strip()
    if not key:
        raise ConfigError(f"set the API key in the environment variable {KEY_ENV} (it is never read from arguments)")
    return key


def base_url(arg: str | None, region: str, recorded: str | None = None) -> str:
    """``--base-url``, else ``DASHSCOPE_HTTP_BASE_URL``, else the URL a run recorded, else the region's host."""
    url = arg or os.environ.get(BASE_URL_ENV) or recorded or REGIONS[region].base_url
    if not url:
        raise ConfigError(f"region {region} has only workspace hosts: give --base-url or {BASE_URL_ENV}")
    return url.rstrip("/")


def accounts_path(args: argparse.Namespace) -> str | None:
    """The accounts file a command is given: ``--accounts FILE``, else ``WANBATCH_ACCOUNTS``; None: neither."""
    return getattr(args, "accounts", None) or os.environ.get(ACCOUNTS_ENV, "").strip() or None


def run_accounts(args: argparse.Namespace) -> tuple[list[AccountConfig], bool]:
    """The accounts a command drives, and whether they come from an accounts file (issue 18): ``--accounts FILE``
    or ``WANBATCH_ACCOUNTS``; else the single ``default`` account of ``DASHSCOPE_API_KEY``, ``--region`` and
    ``--base-url``. The file names each account's region and host, so those flags do not go with it (exit 2)."""
    path = accounts_path(args)
    if path is None:
        region = getattr(args, "region", None) or DEFAULT_REGION
        return [default_account(api_key(), region, base_url(getattr(args, "base_url", None), region))], False
    for flag in ("region", "base_url"):
        if getattr(args, flag, None):
            raise ConfigError(
                f"--{flag.replace('_', '-')} applies to the single account of {KEY_ENV}; with an accounts file "
                f"({path}) each account names its own region and host"
            )
    return load_accounts(path), True
