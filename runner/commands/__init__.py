"""The commands behind the CLI: each builds its objects from the arguments and the environment, calls the
library, and turns the outcome into an exit code (0 done, 1 some jobs failed or left, 2 bad input, 3 folder
locked, 4 the account or the network refused work, 130 interrupted).

The API key is read from ``DASHSCOPE_API_KEY`` only (never argv, never the manifest) and handed to the API
client and the log redactor; nothing here prints, logs or writes it.

``run`` (``runner.commands.run``), ``status`` and ``cancel`` (``runner.commands.folder``), ``doctor``
(``runner.commands.doctor``); what they share is here.
"""

from __future__ import annotations

import os
import sys

from runner.errors import ConfigError
from runner.models import REGIONS

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
