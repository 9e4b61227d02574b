"""A line reader for the plain block style big manifests are written in, several times faster than libyaml.

libyaml hands Python one event object with two marks per key and value: for a 100,000-job manifest (800,000
events) that alone cost more than the whole plan may take. Manifests that size are generated, one key per
line, so this reads that style straight from the lines: block mappings and sequences (indented or not), keys
that are plain words, values that are plain one-line scalars or quoted ones without escapes, blank lines and
whole-line comments. On anything else (flow collections, anchors, tags, multi-line or block scalars, escapes,
trailing comments, tabs, a duplicate key, odd indentation…) it gives up and returns None, and the caller
parses with ``manifest_yaml.load_located``, which also makes every syntax error message. What it returns is
exactly what ``load_located(text, positions=False)`` returns for the same text (tested against it): plain
scalars are resolved by the same loader code, containers carry the same start positions.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import yaml

from runner.manifest_yaml import LocatedDict, LocatedList, LocatedLoader

#: Characters this reader accepts anywhere: printable YAML characters except tab, CR, NEL, the Unicode line and
#: paragraph separators and the byte-order mark (each has a meaning of its own in YAML).
_OUTSIDE = re.compile("[^\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]")
#: One line: indent, "- " (a sequence entry), a plain key followed by ": " or the line's end, and the rest.
_LINE = re.compile(r"^( *)(- +)?(?:([A-Za-z_][A-Za-z0-9_]*):(?: +|$))?(.*)$", re.MULTILINE)
_DOUBLE = re.compile(r'"([^"\\]*)" *')
_SINGLE = re.compile(r"'([^']*)' *")
#: A plain scalar cannot start with these (some may when a non-space follows, but that is left to libyaml).
_INDICATORS = frozenset("-?:,[]{}#&*!|>'\"%@` ")
_DIGITS = frozenset("0123456789")

Token = tuple[str, str, str, str]  # indent, "- " part, key, rest ("" when absent)


_ASCII_ALLOWED = bytes(range(0x20, 0x7F)) + b"\n"


def _allowed(text: str) -> bool:
    """No character outside the subset (``_OUTSIDE``); ASCII text by a quicker test (~6x)."""
    if text.isascii():
        return not text.encode("ascii").translate(None, _ASCII_ALLOWED)
    return _OUTSIDE.search(text) is None


class GiveUp(Exception):
    """The text is outside the subset; libyaml reads it."""


def load_plain(text: str) -> LocatedDict | None:
    """The top-level mapping of ``text``, or None when the text is not in the subset (or not a mapping)."""
    if not _allowed(text):
        return None
    tokens: list[Token] = _LINE.findall(text)
    if len(tokens) != text.count("\n") + 1:  # pragma: no cover - one match per line, by construction
        return None
    loader = LocatedLoader("")
    try:
        reader = _Reader(tokens, loader)
        reader.skip()
        if reader.at == len(tokens) or tokens[reader.at][0] or tokens[reader.at][1]:
            return None
        data = reader.mapping(0, None)
        return data if reader.at == len(tokens) else None
    except (GiveUp, yaml.YAMLError, RecursionError, ValueError):
        return None
    finally:
        loader.dispose()


class Scalars:
    """What this reader makes of the text after ``key: `` (or ``- ``): ``scalar`` for any such text, the two
    shortcuts of ``_Reader.mapping`` for the common cases besides. Raises ``GiveUp`` outside the subset."""

    def __init__(self, loader: LocatedLoader) -> None:
        self.loader = loader
        self.first_chars: frozenset[str] = loader._first_chars
        #: Characters a plain scalar may start with that make it a string, whatever follows.
        self.text_start = frozenset(chr(c) for c in range(0x20, 0x7F)) - _INDICATORS - self.first_chars

    def scalar(self, rest: str) -> Any:
        first = rest[0]
        if first == '"':
            m = _DOUBLE.fullmatch(rest)
            if m is None:
                raise GiveUp
            return m.group(1)
        if first == "'":
            m = _SINGLE.fullmatch(rest)
            if m is None:
                raise GiveUp
            return m.group(1)
        if first in _INDICATORS or "#" in rest or ": " in rest:
            raise GiveUp
        text = rest.rstrip(" ")
        if text[-1] == ":":
            raise GiveUp
        return text if first not in self.first_chars else self.loader.plain(text)


class _Reader(Scalars):
    """Reads containers from the line tokens; ``at`` is the next token, always at a significant line or the
    end (blank and comment lines are skipped as soon as they are reached)."""

    def __init__(self, tokens: list[Token], loader: LocatedLoader) -> None:
        super().__init__(loader)
        self.tokens, self.at = tokens, 0
        self.keys: dict[str, str] = {}  # keys seen and found to be string keys, interned

    def skip(self) -> None:
        """Past blank lines and whole-line comments; give up on a line that is neither and has no structure."""
        tokens, at, n = self.tokens, self.at, len(self.tokens)
        while at < n:
            _, dash, key, rest = tokens[at]
            if key or dash:
                break
            stripped = rest.lstrip(" ")
            if stripped and stripped[0] != "#":
                raise GiveUp
            at += 1
        self.at = at

    def mapping(self, indent: int, first: Token | None) -> LocatedDict:
        """Entries at column ``indent``; ``first`` is the entry already read on a ``- key:`` line."""
        tokens = self.tokens
        n = len(tokens)
        at = self.at  # kept in a local in the loop, written back around every call that reads on
        out = LocatedDict()
        out.pos = (at + (0 if first is not None else 1), indent + 1)
        keys, text_start, digits = self.keys, self.text_start, _DIGITS
        margin = " " * indent
        if first is None:
            token = tokens[at]
            at += 1
        else:
            token = first
        while True:
            key = token[2]
            if not key:
                raise GiveUp
            if key not in keys:
                self.new_key(key)
            key = keys[key]
            if key in out:
                raise GiveUp  # a duplicate key: libyaml's path reports it
            rest = token[3]
            if not rest:
                self.at = at
                self.skip()
                out[key] = self.nested(indent)
                at = self.at
            elif rest[0] in text_start and "#" not in rest and ": " not in rest:
                value = rest.rstrip(" ")
                if value[-1] == ":":
                    raise GiveUp
                out[key] = value
            elif rest[0] in digits and len(rest) < 19 and rest.isdigit() and rest.isascii() and rest[0] != "0":
                out[key] = int(rest)  # as ``LocatedLoader.plain`` reads a plain run of digits
            else:
                out[key] = self.scalar(rest)
            if at == n:
                break
            token = tokens[at]
            if not (token[1] or token[2]):
                self.at = at
                self.skip()
                at = self.at
                if at == n:
                    break
                token = tokens[at]
            if token[0] != margin or token[1]:
                if len(token[0]) > indent:
                    raise GiveUp
                break
            at += 1
        self.at = at
        return out

    def new_key(self, key: str) -> None:
        if key[0] in self.first_chars and self.loader.plain(key) != key:  # null, true, yes…: not a string key
            raise GiveUp
        self.keys[key] = sys.intern(key)

    def nested(self, indent: int) -> Any:
        """The value of a key with nothing after its colon: a block below it, a sequence at its own column,
        or null."""
        tokens = self.tokens
        if self.at == len(tokens):
            return None
        token = tokens[self.at]
        column = len(token[0])
        if column > indent:
            if token[1]:
                return self.sequence(column)
            return self.mapping(column, None)
        if column == indent and token[1]:
            return self.sequence(indent)
        return None

    def sequence(self, indent: int) -> LocatedList:
        tokens = self.tokens
        n = len(tokens)
        out = LocatedList()
        out.pos = (self.at + 1, indent + 1)
        while self.at < n:
            token = tokens[self.at]
            dash = token[1]
            if len(token[0]) != indent or not dash:
                break
            self.at += 1
            if token[2]:
                out.append(self.mapping(indent + len(dash), token))
            elif token[3]:
                out.append(self.scalar(token[3]))
                self.skip()
            else:
                raise GiveUp
        if self.at < n and len(tokens[self.at][0]) > indent:
            raise GiveUp
        return out
