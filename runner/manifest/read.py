"""Reading a manifest: the file's text, then its YAML as located values, or the one message that says why not.

The YAML is read by the line reader when it is written in the plain block style big generated manifests use
(``line_reader``, measured several times faster than libyaml's event stream on 100,000 jobs), else by the
libyaml loader (``located``), which also words every syntax error. Both give the same values.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from runner.errors import Issue, ManifestError
from runner.manifest.issues import short, type_name
from runner.manifest.line_reader import load_plain
from runner.manifest.located import LocatedDict, load_located


def read_text(path: str | os.PathLike[str]) -> str:
    """The manifest file's text (UTF-8, a byte-order mark dropped); ``ManifestError`` when it cannot be read."""
    file = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise ManifestError([Issue(file, 0, 0, "", f"cannot read the manifest: {reason}")]) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        col = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise ManifestError([Issue(file, line, col, "", "the manifest is not UTF-8 text")]) from None


def parse_yaml(text: str, file: str) -> LocatedDict:
    """The manifest's top-level mapping (without positions: ``IssueSink`` parses again for those, only when
    there is something to report); ``ManifestError`` for a syntax error or a document that is not a mapping."""
    data = load_plain(text)
    if data is not None:
        return data
    try:
        parsed = load_located(text, positions=False)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
        what = " ".join(p for p in (e.context, e.problem) if p)
        raise ManifestError([Issue(file, line, col, "", f"YAML syntax: {what}")]) from None
    except yaml.reader.ReaderError as e:  # a control character; the message has no mark but a position
        line, col = _line_col(text, e.position)
        code = ord(e.character) if isinstance(e.character, str) else e.character
        what = f"character U+{code:04X} is not allowed in YAML ({e.reason})"
        raise ManifestError([Issue(file, line, col, "", f"YAML syntax: {what}")]) from None
    except yaml.YAMLError as e:
        raise ManifestError([Issue(file, 0, 0, "", f"YAML syntax: {short(' '.join(str(e).split()), 200)}")]) from None
    except RecursionError:  # the loader builds nested values by recursion: the user's text, worded
        raise ManifestError([Issue(file, 0, 0, "", "YAML nesting is too deep")]) from None
    if not isinstance(parsed, LocatedDict):
        got = "an empty file" if parsed is None else f"a {type_name(parsed)}"
        at = 1 if parsed is not None else 0
        message = f"the manifest must be a mapping with at least `version: 1` and `jobs:`, got {got}"
        raise ManifestError([Issue(file, at, at, "", message)])
    return parsed


def _line_col(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of character ``index`` of ``text``."""
    index = max(0, min(index, len(text)))
    return text.count("\n", 0, index) + 1, index - (text.rfind("\n", 0, index) + 1) + 1
