"""Where a manifest's problems are collected and placed: ``IssueSink`` and the helpers its messages use.

Every check names the YAML path of the value it judges (``("jobs", 3, "size")``); the sink turns paths into
file:line:col once, at the end, from a second parse that keeps the position of every key and value (the first
one does not, to stay lean), and reports a problem that many expanded jobs share (a bad size in ``defaults``)
once, not once per job.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from runner.errors import Issue
from runner.manifest.line_reader import load_plain
from runner.manifest.located import key_position_of, load_located, position_of

#: Where a value was written: the keys and indexes from the top of the document.
Path = tuple[Any, ...]


class IssueSink:
    """Collects issues by YAML path; the same (path, message) from many jobs is reported once."""

    def __init__(self, file: str, text: str) -> None:
        self.file, self.text = file, text
        self._located: Any = None
        self._items: dict[tuple[Path, str, str, bool], str] = {}  # (path, field, message, at_key) -> severity
        self._made: list[Issue] = []
        #: How many times something was reported (repeats included): a check that leaves it unchanged was clean.
        self.reported = 0

    def add(self, issue: Issue) -> None:
        """An issue already located."""
        self.reported += 1
        self._made.append(issue)

    def error(self, path: Path, field: str, message: str) -> None:
        self.reported += 1
        self._items.setdefault((path, field, message, False), "error")

    def error_at_key(self, path: Path, field: str, message: str) -> None:
        """An error placed at the key that ends ``path`` (an unknown or misnamed key)."""
        self.reported += 1
        self._items.setdefault((path, field, message, True), "error")

    def warning(self, path: Path, field: str, message: str) -> None:
        self.reported += 1
        self._items.setdefault((path, field, message, False), "warning")

    def has_errors(self) -> bool:
        return "error" in self._items.values() or any(i.severity == "error" for i in self._made)

    def _data(self) -> Any:
        """The manifest parsed again, this time with the position of every key and value (by the line reader
        when it takes the text: libyaml's events for 100,000 jobs took seconds and 150 MB more)."""
        if self._located is None:
            located = load_plain(self.text, positions=True)
            self._located = located if located is not None else load_located(self.text, positions=True)
        return self._located

    def _issues(self, severity: str) -> list[Issue]:
        out = [i for i in self._made if i.severity == severity]
        data = self._data() if severity in self._items.values() else None
        for (path, field, message, at_key), sev in self._items.items():
            if sev != severity:
                continue
            line, col = key_position_of(data, path) if at_key else position_of(data, path)
            out.append(Issue(self.file, line, col, field, message, severity))
        return sorted(dict.fromkeys(out), key=lambda i: (i.line, i.column, i.field, i.message))

    def errors(self) -> list[Issue]:
        return self._issues("error")

    def warnings(self) -> list[Issue]:
        return self._issues("warning")


def path_str(path: Iterable[Any]) -> str:
    """``("jobs", 3, "shots", 0, "from")`` → ``jobs[3].shots[0].from``."""
    out = ""
    for step in path:
        if isinstance(step, int):
            out += f"[{step}]"
        else:
            out += f".{step}" if out else str(step)
    return out


def short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def type_name(value: Any) -> str:
    """What a YAML value is, in a message's words."""
    for kind, name in (
        (bool, "boolean"),
        (int, "integer"),
        (float, "number"),
        (str, "string"),
        (dict, "mapping"),
        (list, "list"),
    ):
        if isinstance(value, kind):
            return name
    return "null" if value is None else type(value).__name__
