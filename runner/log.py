"""Logging: structlog with a console renderer on a terminal and JSON lines otherwise (cron, CI, pipes).

Callers log stable dotted event names (``job.submitted``, ``task.failed``) with fields; this module only
decides how they are rendered and makes sure no secret is ever written. ``Redactor`` is a processor that
runs on every event before rendering: it replaces each configured secret (the API key) and anything that
looks like a DashScope key (``sk-…``) or a bearer token with ``***``, in every field, nested containers
and exception text included.

``configure()`` is called once by the CLI with the key passed in; structlog's configuration and one
handler on the stdlib root logger (so library records are redacted too) are the only global state.
"""

from __future__ import annotations

import json as _json
import logging
import re
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, TextIO

import structlog

MASK = "***"

#: ``Bearer <anything>`` and DashScope-style keys. Keys are ``sk-`` followed by letters and digits.
_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[^\s\"',;]+"),
    re.compile(r"\bsk-[A-Za-z0-9_\-]{4,}"),
)
#: Fields whose value is a credential whatever it looks like.
_SECRET_KEYS = frozenset({"api_key", "apikey", "authorization", "password", "secret", "token", "x-api-key"})
_SCALARS = (int, float, bool, type(None))


class Redactor:
    """structlog processor: mask secrets in every field of an event (see the module docstring)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # longest first, so a secret that contains another is masked whole; tiny strings would mask noise
        self._secrets = tuple(sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True))

    def text(self, s: str) -> str:
        """``s`` with every secret masked."""
        for secret in self._secrets:
            if secret in s:
                s = s.replace(secret, MASK)
        if "sk-" in s or "earer" in s or "EARER" in s:
            s = _PATTERNS[0].sub(lambda m: m.group(1) + MASK, s)
            s = _PATTERNS[1].sub(MASK, s)
        return s

    def value(self, v: Any, depth: int = 0) -> Any:
        """A copy of ``v`` with secrets masked; objects whose text holds a secret become masked text."""
        if isinstance(v, str):
            return self.text(v)
        if isinstance(v, _SCALARS):
            return v
        if depth > 8:
            return self.text(repr(v))
        if isinstance(v, Mapping):
            return {
                k: (MASK if isinstance(k, str) and k.lower() in _SECRET_KEYS else self.value(x, depth + 1))
                for k, x in v.items()
            }
        if isinstance(v, tuple):
            return tuple(self.value(x, depth + 1) for x in v)
        if isinstance(v, list | set | frozenset):
            return [self.value(x, depth + 1) for x in v]
        if isinstance(v, BaseException):
            masked = self.text(str(v))
            return v if masked == str(v) else f"{type(v).__name__}: {masked}"
        try:
            text = str(v)
        except Exception:  # an object that cannot print itself cannot leak through the renderer either
            return v
        masked = self.text(text)
        return v if masked == text else masked

    def __call__(self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> Any:
        # every log line passes here (one per job at 500 submissions/s): plain strings and scalars, nearly
        # all fields, are handled inline rather than through ``value``
        for key, v in list(event_dict.items()):
            if key.lower() in _SECRET_KEYS:
                event_dict[key] = MASK
            elif type(v) is str:
                event_dict[key] = self.text(v)
            elif v is None or type(v) in (bool, int, float):
                continue
            else:
                event_dict[key] = self.value(v)
        return event_dict


#: One encoder for every JSON log line (``json.dumps`` with options builds a new one per call).
_JSON = _json.JSONEncoder(ensure_ascii=False, default=str)


def _dumps(obj: Any, **_: Any) -> str:
    return _JSON.encode(obj)


class _LineLogger:
    """structlog's ``PrintLogger`` in one write per line (``print`` wrote the text and the newline
    separately, then flushed)."""

    def __init__(self, file: Any) -> None:
        self._file = file

    def msg(self, message: str) -> None:
        self._file.write(message + "\n")
        self._file.flush()

    log = debug = info = warn = warning = err = error = critical = exception = fatal = failure = msg


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the time of writing, not at ``configure`` time (a test
    harness or a progress display may swap it; a stale reference would write to a closed file)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def level_for(verbosity: int) -> int:
    """``-v`` count → logging level: info by default, debug from ``-v``; -1 (a progress view owns the
    terminal, so per-job info lines would only scroll it away) → warnings only."""
    if verbosity < 0:
        return logging.WARNING
    return logging.DEBUG if verbosity >= 1 else logging.INFO


def configure(
    *,
    verbosity: int = 0,
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
    json: bool | None = None,
) -> None:
    """Set up structlog once for the process: renderer by terminal or not, level, redaction.

    ``json=None`` picks JSON lines unless ``stream`` is a terminal.
    """
    out: Any = stream if stream is not None else _CurrentStderr()
    if json is None:
        json = not (hasattr(out, "isatty") and out.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_dumps)
        if json
        else structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
    )
    redactor = Redactor(secrets)
    common: list[Any] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,  # exception text becomes a field, so it is redacted too
        redactor,
    ]
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, *common, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level_for(verbosity)),
        logger_factory=lambda *_: _LineLogger(out),
        cache_logger_on_first_use=False,
    )
    _route_stdlib(common, renderer, logging.DEBUG if verbosity >= 2 else logging.WARNING, out)


def _route_stdlib(pre_chain: list[Any], renderer: Any, level: int, out: TextIO) -> None:
    """Send the stdlib ``logging`` records of libraries (aiohttp, asyncio's "exception never retrieved")
    through the same redaction and renderer, so nothing reaches the output unmasked. Replaces the handler
    a previous ``configure`` installed rather than adding a second one."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if h.get_name() == _HANDLER:
            root.removeHandler(h)
    handler = logging.StreamHandler(out)
    handler.set_name(_HANDLER)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=pre_chain,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root.addHandler(handler)
    root.setLevel(level)


_HANDLER = "wanbatch"


def get_logger(name: str = "wanbatch") -> Any:
    """A structlog logger; events go through the processors set by ``configure``."""
    return structlog.get_logger(name)
