"""A line reader for the plain block style big manifests are written in, several times faster than libyaml.

libyaml hands Python one event object with two marks per key and value: for a 100,000-job manifest (800,000
events) that alone cost more than the whole plan may take. Manifests that size are generated, one key per
line, so this reads that style straight from the lines: block mappings and sequences (indented or not), keys
that are plain words, values that are plain one-line scalars or quoted ones without escapes, blank lines and
whole-line comments. On anything else (flow collections, anchors, tags, multi-line or block scalars, escapes,
trailing comments, tabs, a duplicate key, odd indentation, a value the YAML constructor refuses, nesting
deeper than ``MAX_DEPTH``…) it returns None, and the caller parses with ``located.load_located``, which
also makes every syntax error message. No exception is the signal: each reading step returns ``_NOT_PLAIN``
where the text leaves the subset, so a bug here is a traceback, not a silent switch to libyaml. What it returns is
exactly what ``load_located(text, positions=False)`` returns for the same text (tested against it): plain
scalars are resolved by the same loader code, containers carry the same start positions.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from yaml.constructor import ConstructorError

from runner.manifest.located import LocatedDict, LocatedList, LocatedLoader

#: Characters this reader accepts anywhere: printable YAML characters except tab, CR, NEL, the Unicode line and
#: paragraph separators and the byte-order mark (each has a meaning of its own in YAML).
_OUTSIDE = re.compile("[^\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]")
_ASCII_ALLOWED = bytes(range(0x20, 0x7F)) + b"\n"
#: One line: indent, "- " (a sequence entry), a plain key followed by ": " or the line's end, and the rest.
_LINE = re.compile(r"^( *)(- +)?(?:([A-Za-z_][A-Za-z0-9_]*):(?: +|$))?(.*)$", re.MULTILINE)
_DOUBLE = re.compile(r'"([^"\\]*)" *')
_SINGLE = re.compile(r"'([^']*)' *")
#: A plain scalar cannot start with these (some may when a non-space follows, but that is left to libyaml).
_INDICATORS = frozenset("-?:,[]{}#&*!|>'\"%@` ")
_DIGITS = frozenset("0123456789")
#: Deeper blocks are left to libyaml (a manifest nests four deep at most; this keeps the reader's recursion short).
MAX_DEPTH = 32

Token = tuple[str, str, str, str]  # indent, "- " part, key, rest ("" when absent)


class _NotPlain:
    """The one value a reading step returns when the text leaves the subset."""


_NOT_PLAIN: Any = _NotPlain()


def _allowed(text: str) -> bool:
    """No character outside the subset (``_OUTSIDE``); ASCII text by a quicker test (~6x)."""
    if text.isascii():
        return not text.encode("ascii").translate(None, _ASCII_ALLOWED)
    return _OUTSIDE.search(text) is None


def load_plain(text: str) -> LocatedDict | None:
    """The top-level mapping of ``text``, or None when the text is not in the subset (or not a mapping)."""
    if not _allowed(text):
        return None
    tokens: list[Token] = _LINE.findall(text)
    loader = LocatedLoader("")
    try:
        reader = _Reader(tokens, loader)
        if not reader.skip() or reader.at == len(tokens) or tokens[reader.at][0] or tokens[reader.at][1]:
            return None
        data = reader.mapping(0, None, 0)
        return data if data is not _NOT_PLAIN and reader.at == len(tokens) else None
    finally:
        loader.dispose()


class _Reader:
    """Reads containers from the line tokens; ``at`` is the next token, always at a significant line or the
    end (blank and comment lines are skipped as soon as they are reached). Every method returns ``_NOT_PLAIN``
    (or False) where the text leaves the subset."""

    def __init__(self, tokens: list[Token], loader: LocatedLoader) -> None:
        self.tokens, self.at = tokens, 0
        self.loader = loader
        self.first_chars: frozenset[str] = loader.first_chars
        #: Characters a plain scalar may start with that make it a string, whatever follows.
        self.text_start = frozenset(chr(c) for c in range(0x20, 0x7F)) - _INDICATORS - self.first_chars
        self.keys: dict[str, str] = {}  # keys seen and found to be string keys, interned

    def scalar(self, rest: str) -> Any:
        """The value of the text after ``key: `` (or ``- ``)."""
        first = rest[0]
        if first == '"':
            m = _DOUBLE.fullmatch(rest)
            return _NOT_PLAIN if m is None else m.group(1)
        if first == "'":
            m = _SINGLE.fullmatch(rest)
            return _NOT_PLAIN if m is None else m.group(1)
        if first in _INDICATORS or "#" in rest or ": " in rest:
            return _NOT_PLAIN
        text = rest.rstrip(" ")
        if text[-1] == ":":
            return _NOT_PLAIN
        return text if first not in self.first_chars else self.resolved(text)

    def resolved(self, text: str) -> Any:
        """A plain scalar as the libyaml loader makes it (a number, bool, null…); ``_NOT_PLAIN`` when the YAML
        constructor refuses it (an out-of-range date, an integer of thousands of digits): libyaml then reads
        the file and reports it with its line and column."""
        try:
            return self.loader.plain(text)
        except ConstructorError:
            return _NOT_PLAIN

    def skip(self) -> bool:
        """Past blank lines and whole-line comments; False at a line that is neither and has no structure."""
        tokens, at, n = self.tokens, self.at, len(self.tokens)
        while at < n:
            _, dash, key, rest = tokens[at]
            if key or dash:
                break
            stripped = rest.lstrip(" ")
            if stripped and stripped[0] != "#":
                return False
            at += 1
        self.at = at
        return True

    def mapping(self, indent: int, first: Token | None, depth: int) -> Any:
        """Entries at column ``indent``; ``first`` is the entry already read on a ``- key:`` line."""
        if depth > MAX_DEPTH:
            return _NOT_PLAIN
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
            if not key or (key not in keys and not self.new_key(key)):
                return _NOT_PLAIN
            key = keys[key]
            if key in out:
                return _NOT_PLAIN  # a duplicate key: libyaml's path reports it
            rest = token[3]
            if not rest:
                self.at = at
                value = self.nested(indent, depth) if self.skip() else _NOT_PLAIN
                at = self.at
            elif rest[0] in text_start and "#" not in rest and ": " not in rest:
                value = rest.rstrip(" ")
                if value[-1] == ":":
                    return _NOT_PLAIN
            elif rest[0] in digits and len(rest) < 19 and rest.isdigit() and rest.isascii() and rest[0] != "0":
                value = int(rest)  # as ``LocatedLoader.plain`` reads a plain run of digits
            else:
                value = self.scalar(rest)
            if value is _NOT_PLAIN:
                return _NOT_PLAIN
            out[key] = value
            if at == n:
                break
            token = tokens[at]
            if not (token[1] or token[2]):
                self.at = at
                if not self.skip():
                    return _NOT_PLAIN
                at = self.at
                if at == n:
                    break
                token = tokens[at]
            if token[0] != margin or token[1]:
                if len(token[0]) > indent:
                    return _NOT_PLAIN
                break
            at += 1
        self.at = at
        return out

    def new_key(self, key: str) -> bool:
        """Remember ``key`` as a string key; False when YAML reads it as something else (null, true, yes…)."""
        if key[0] in self.first_chars and self.resolved(key) != key:
            return False
        self.keys[key] = sys.intern(key)
        return True

    def nested(self, indent: int, depth: int) -> Any:
        """The value of a key with nothing after its colon: a block below it, a sequence at its own column,
        or null."""
        tokens = self.tokens
        if self.at == len(tokens):
            return None
        token = tokens[self.at]
        column = len(token[0])
        if column > indent:
            if token[1]:
                return self.sequence(column, depth + 1)
            return self.mapping(column, None, depth + 1)
        if column == indent and token[1]:
            return self.sequence(indent, depth + 1)
        return None

    def sequence(self, indent: int, depth: int) -> Any:
        if depth > MAX_DEPTH:
            return _NOT_PLAIN
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
                item = self.mapping(indent + len(dash), token, depth + 1)
            elif token[3]:
                item = self.scalar(token[3])
                if not self.skip():
                    return _NOT_PLAIN
            else:
                return _NOT_PLAIN
            if item is _NOT_PLAIN:
                return _NOT_PLAIN
            out.append(item)
        if self.at < n and len(tokens[self.at][0]) > indent:
            return _NOT_PLAIN
        return out
