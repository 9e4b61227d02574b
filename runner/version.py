"""wanbatch's version, as installed (``wanbatch --version``, the User-Agent, the ledger's ``run.started``)."""

from __future__ import annotations

from importlib import metadata


def version() -> str:
    try:
        return metadata.version("wanbatch")
    except metadata.PackageNotFoundError:  # running from a bare checkout
        return "0"
