"""A line reader for the plain block style big manifests are written in, several times faster than libyaml.

libyaml hands Python one event object with two marks per key and value: for a 100,000-job manifest (800,000
events) that alone cost more than the whole plan may take. Manifests that size are generated, one key per
line, so this reads that style straight from the lines, one at a time: block mappings and sequences (indented
or not), keys that are plain words, values that are plain one-line scalars or quoted ones without escapes,
blank lines and whole-line comments. On anything else (flow collections, anchors, tags, multi-line or block
scalars, escapes, trailing comments, tabs, a duplicate key, odd indentation, a value the YAML constructor
refuses, nesting deeper than ``MAX_DEPTH``…) it returns None, and the caller parses with
``located.load_located``, which also makes every syntax error message. No exception is the signal: each
reading step returns ``_NOT_PLAIN`` where the text leaves the subset, so a bug here is a traceback, not a
silent switch to libyaml.

What it returns is exactly what ``load_located`` returns for the same text, with or without positions (tested
against it): plain scalars are resolved by the same loader code; containers, keys and values carry the same
line and column.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from operator import methodcaller
from typing import Any

from yaml.constructor import ConstructorError

from runner.manifest.located import LocatedDict, LocatedList, LocatedLoader

#: Characters this reader accepts anywhere: printable YAML characters except tab, CR, NEL, the Unicode line and
#: paragraph separators and the byte-order mark (each has a meaning of its own in YAML).
_OUTSIDE = re.compile("[^\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]")
_ASCII_ALLOWED = bytes(range(0x20, 0x7F)) + b"\n"
#: One line: indent, "- " (a sequence entry), a plain key followed by ":" and spaces (or the line's end), the rest.
_LINE = re.compile(r"^( *)(- +)?(?:([A-Za-z_][A-Za-z0-9_]*):( +|$))?(.*)$", re.MULTILINE)
_DOUBLE = re.compile(r'"([^"\\]*)" *')
_SINGLE = re.compile(r"'([^']*)' *")
#: A plain scalar cannot start with these (some may when a non-space follows, but that is left to libyaml).
_INDICATORS = frozenset("-?:,[]{}#&*!|>'\"%@` ")
_DIGITS = frozenset("0123456789")
#: Deeper blocks are left to libyaml (a manifest nests four deep at most; this keeps the reader's recursion short).
MAX_DEPTH = 32

Token = tuple[str, str, str, str, str]  # indent, "- " part, key, spaces after its colon, rest ("" when absent)
#: A line's match as a ``Token`` (read one line at a time: a list of every line's token took ~100 MB for
#: 100,000 jobs, and was no faster).
_TOKEN = methodcaller("groups", "")


class _NotPlain:
    """The one value a reading step returns when the text leaves the subset."""


_NOT_PLAIN: Any = _NotPlain()


def _allowed(text: str) -> bool:
    """No character outside the subset (``_OUTSIDE``); ASCII text by a quicker test (~6x)."""
    if text.isascii():
        return not text.encode("ascii").translate(None, _ASCII_ALLOWED)
    return _OUTSIDE.search(text) is None


def load_plain(text: str, *, positions: bool = False) -> LocatedDict | None:
    """The top-level mapping of ``text``, or None when the text is not in the subset (or not a mapping). With
    ``positions``, every key and value keeps where it was written, as ``load_located`` places them."""
    if not _allowed(text):
        return None
    loader = LocatedLoader("")
    try:
        reader = _Reader(text, loader, positions)
        if not reader.skip() or reader.token is None or reader.token[0] or reader.token[1]:
            return None
        data = reader.mapping(0, None, 0)
        return data if data is not _NOT_PLAIN and reader.token is None else None
    finally:
        loader.dispose()


class _Reader:
    """Reads containers from the lines' tokens; ``token`` is the next one not read yet (None at the end), on line
    ``line``, always a significant line (blank and comment lines are skipped as soon as they are reached).
    Every method returns ``_NOT_PLAIN`` (or False) where the text leaves the subset."""

    def __init__(self, text: str, loader: LocatedLoader, positions: bool) -> None:
        self.tokens: Iterator[Token] = map(_TOKEN, _LINE.finditer(text))
        self.token: Token | None = next(self.tokens, None)
        self.line = 1
        self.positions = positions
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
        token, line, tokens = self.token, self.line, self.tokens
        while token is not None:
            _, dash, key, _, rest = token
            if key or dash:
                break
            stripped = rest.lstrip(" ")
            if stripped and stripped[0] != "#":
                return False
            token = next(tokens, None)
            line += 1
        self.token, self.line = token, line
        return True

    def mapping(self, indent: int, first: Token | None, depth: int) -> Any:
        """Entries at column ``indent``; ``first`` is the entry already read on a ``- key:`` line (the line
        before ``self.line``), else the entry is ``self.token``."""
        if depth > MAX_DEPTH:
            return _NOT_PLAIN
        tokens = self.tokens
        out = LocatedDict()
        keys, text_start, digits = self.keys, self.text_start, _DIGITS
        margin = " " * indent
        track = self.positions
        key_pos: dict[Any, tuple[int, int]] = {}
        value_pos: dict[Any, tuple[int, int]] = {}
        if track:
            out.key_pos, out.value_pos = key_pos, value_pos
        # ``token`` is the entry being read, on ``line``; ``self.token``/``self.line`` are kept as the next one
        # around every call that reads on, in locals otherwise.
        if first is None:
            token, line = self.token, self.line
            assert token is not None
            following, following_line = next(tokens, None), line + 1
        else:
            token, line = first, self.line - 1
            following, following_line = self.token, self.line
        out.pos = (line, indent + 1)
        while True:
            key = token[2]
            if not key or (key not in keys and not self.new_key(key)):
                return _NOT_PLAIN
            key = keys[key]
            if key in out:
                return _NOT_PLAIN  # a duplicate key: libyaml's path reports it
            rest = token[4]
            if track:  # the key's line and column, the value's after the colon
                column = len(token[0]) + len(token[1]) + 1
                key_pos[key] = (line, column)
                value_pos[key] = (line, column + len(key) + 1 + (len(token[3]) if rest else 0))
            if not rest:
                self.token, self.line = following, following_line
                value = self.nested(indent, depth) if self.skip() else _NOT_PLAIN
                following, following_line = self.token, self.line
                if track and isinstance(value, LocatedDict | LocatedList):
                    value_pos[key] = value.pos  # a block: where it starts (a null stays just after the colon)
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
            if following is None:
                break
            if not (following[1] or following[2]):
                self.token, self.line = following, following_line
                if not self.skip():
                    return _NOT_PLAIN
                following, following_line = self.token, self.line
                if following is None:
                    break
            if following[0] != margin or following[1]:
                if len(following[0]) > indent:
                    return _NOT_PLAIN
                break
            token, line = following, following_line
            following, following_line = next(tokens, None), line + 1
        self.token, self.line = following, following_line
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
        token = self.token
        if token is None:
            return None
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
        out = LocatedList()
        out.pos = (self.line, indent + 1)
        item_pos: list[tuple[int, int]] | None = None
        if self.positions:
            out.item_pos = item_pos = []
        while (token := self.token) is not None:
            dash = token[1]
            if len(token[0]) != indent or not dash:
                break
            line = self.line
            self.token, self.line = next(self.tokens, None), line + 1
            if token[2]:
                item = self.mapping(indent + len(dash), token, depth + 1)
            elif token[4]:
                item = self.scalar(token[4])
                if not self.skip():
                    return _NOT_PLAIN
            else:
                return _NOT_PLAIN
            if item is _NOT_PLAIN:
                return _NOT_PLAIN
            out.append(item)
            if item_pos is not None:
                item_pos.append(item.pos if isinstance(item, LocatedDict) else (line, indent + len(dash) + 1))
        if self.token is not None and len(self.token[0]) > indent:
            return _NOT_PLAIN
        return out
