"""A YAML loader that keeps where every key and value was written, so manifest errors name line and column.

PyYAML's safe constructor forgets node marks once it has built Python objects. This loader builds
``Located`` dicts and lists instead: plain ``dict``/``list`` subclasses that also remember the mark of each
key and value. It uses libyaml's C parser when present (much faster on a 100,000-job manifest) and the pure
Python one otherwise; both give the same objects. Duplicate keys, which PyYAML silently resolves to the last
one, are an error here: a manifest that says ``size`` twice is a mistake, not a choice.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.events import (
    AliasEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import ScalarNode

_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: (line, column), both 1-based.
Pos = tuple[int, int]


def _pos(mark: Any) -> Pos:
    return (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)


class LocatedDict(dict[Any, Any]):
    """A mapping from YAML that knows where it starts and, when loaded with positions, where each key and
    value were written."""

    __slots__ = ("key_pos", "pos", "value_pos")

    def __init__(self) -> None:
        super().__init__()
        self.pos: Pos = (0, 0)
        self.key_pos: dict[Any, Pos] | None = None
        self.value_pos: dict[Any, Pos] | None = None


class LocatedList(list[Any]):
    """A sequence from YAML that knows where it starts and, when loaded with positions, each item."""

    __slots__ = ("item_pos", "pos")

    def __init__(self) -> None:
        super().__init__()
        self.pos: Pos = (0, 0)
        self.item_pos: list[Pos] | None = None


_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_MERGE = "tag:yaml.org,2002:merge"


class LocatedLoader(_Base):  # type: ignore[misc]
    """Safe loader that builds ``LocatedDict``/``LocatedList`` straight from parser events.

    Speed and memory matter for 100,000-job manifests: PyYAML composes the whole node graph (two Mark
    objects per node) before building anything, which for 100,000 jobs took ~450 MB and most of the time.
    Building from the event stream keeps only the result. Plain scalars that cannot be anything but a string
    skip the implicit-type regexes; other scalars go through the safe constructor. Collections with an
    explicit tag other than map/seq (``!!set``, ``!!omap``, custom tags) are refused: a manifest never
    needs them. Merge keys (``<<: *base``) work as in YAML 1.1; a key written twice in one mapping is an
    error rather than PyYAML's silent last-one-wins.
    """

    #: First characters of the plain scalars an implicit resolver may take for something else than a string.
    first_chars = frozenset(k for k in yaml.resolver.Resolver.yaml_implicit_resolvers if k)
    positions = True
    mark: Any = None

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        #: Plain scalars whose first character lets them be something else than a string (``name``,
        #: ``true``, ``5.0``…) go through PyYAML's regexes; keys repeat on every job, so remember the result.
        #: Every value so built is immutable (str, int, float, bool, None, date), so sharing it is safe.
        self._plain: dict[str, Any] = {}

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is ScalarNode:
            if not implicit[0]:
                return _STR
            if value and value[0] not in self.first_chars and None not in self.yaml_implicit_resolvers:
                return _STR
        return super().resolve(kind, value, implicit)

    def load_document(self) -> Any:
        """The single document of the stream, or None for an empty stream."""
        self.get_event()  # StreamStart
        if self.check_event(StreamEndEvent):
            return None
        start = self.get_event()  # DocumentStart
        value = self._next({})
        self.get_event()  # DocumentEnd
        if not self.check_event(StreamEndEvent):
            event = self.get_event()
            raise ComposerError(
                "expected a single document in the stream",
                start.start_mark,
                "but found another document",
                event.start_mark,
            )
        return value

    def _next(self, anchors: dict[str, Any]) -> Any:
        """The next value of the stream, ``_END`` at the end of a collection; ``self.mark`` is left at the
        value's start."""
        event = self.get_event()
        kind = type(event)
        mark = event.start_mark
        value: Any
        if kind is ScalarEvent:
            tag = event.tag
            text = event.value
            if tag is None and event.implicit[0] and text:
                value = text if text[0] not in self.first_chars else self.plain(text, event)
            elif tag is None and not event.implicit[0]:
                value = text  # quoted or block scalar
            else:
                value = self._scalar(event)
        elif kind is MappingStartEvent:
            self._collection_tag(event, _MAP)
            value = LocatedDict()
            value.pos = (mark.line + 1, mark.column + 1)
            if event.anchor is not None:
                anchors[event.anchor] = value
            self._fill_mapping(value, event, anchors)
            self.mark = mark
            return value
        elif kind is SequenceStartEvent:
            self._collection_tag(event, _SEQ)
            value = LocatedList()
            value.pos = (mark.line + 1, mark.column + 1)
            if event.anchor is not None:
                anchors[event.anchor] = value
            self._fill_sequence(value, anchors)
            self.mark = mark
            return value
        elif kind is MappingEndEvent or kind is SequenceEndEvent:
            return _END
        elif kind is AliasEvent:
            if event.anchor not in anchors:
                raise ComposerError(None, None, f"found undefined alias {event.anchor!r}", mark)
            self.mark = mark
            return anchors[event.anchor]
        else:  # pragma: no cover - the parser yields nothing else inside a document
            raise ComposerError(None, None, f"unexpected {kind.__name__}", mark)
        if event.anchor is not None:
            anchors[event.anchor] = value
        self.mark = mark
        return value

    def plain(self, text: str, event: Any = None) -> Any:
        """The value of the non-empty plain (unquoted, untagged) scalar ``text``; ``event`` is where it was
        written, for the message if it cannot be read."""
        first = text[0]
        if first not in self.first_chars:
            return text
        if (
            first in _DIGITS
            and len(text) < 19
            and text.isdigit()
            and text.isascii()
            and (first != "0" or len(text) == 1)
        ):
            return int(text)  # what YAML 1.1 resolves a short plain run of decimal digits to
        value = self._plain.get(text, _END)  # a number, bool, null…: resolved once per distinct text
        if value is _END:
            value = self._scalar(event if event is not None else ScalarEvent(None, None, (True, False), text))
            if len(self._plain) < _PLAIN_CACHE_SIZE:
                self._plain[text] = value
        return value

    def _scalar(self, event: Any) -> Any:
        tag = event.tag
        if tag is None or tag == "!":
            tag = self.resolve(ScalarNode, event.value, event.implicit)
        if tag == _STR:
            return event.value
        if tag == _MERGE:
            return _MERGE_KEY
        constructor = self.yaml_constructors.get(tag)
        if constructor is None:
            raise ConstructorError(None, None, f"unsupported tag {tag!r}", event.start_mark)
        node = ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        try:
            return constructor(self, node)
        except (ValueError, OverflowError) as e:  # e.g. an integer of more digits than Python converts
            raise ConstructorError(None, None, f"cannot read this value ({str(e)[:60]})", event.start_mark) from None

    @staticmethod
    def _collection_tag(event: Any, expected: str) -> None:
        if event.tag not in (None, "!", expected):
            raise ConstructorError(None, None, f"unsupported tag {event.tag!r}", event.start_mark)

    def _fill_sequence(self, out: LocatedList, anchors: dict[str, Any]) -> None:
        next_value = self._next
        if not self.positions:
            while (item := next_value(anchors)) is not _END:
                out.append(item)
            return
        out.item_pos = positions = []
        while (item := next_value(anchors)) is not _END:
            out.append(item)
            positions.append(_pos(self.mark))

    def _fill_mapping(self, out: LocatedDict, start: Any, anchors: dict[str, Any]) -> None:
        track = self.positions
        if track:
            out.key_pos, out.value_pos = {}, {}
        merged: list[Any] = []
        next_value = self._next
        intern = sys.intern
        while (key := next_value(anchors)) is not _END:
            key_mark = self.mark
            value = next_value(anchors)
            if key is _MERGE_KEY:
                merged.extend(value if isinstance(value, list) else [value])
                continue
            try:
                duplicate = key in out
            except TypeError:
                raise ConstructorError(
                    "while constructing a mapping", start.start_mark, "found an unhashable key", key_mark
                ) from None
            if duplicate:
                raise ConstructorError(
                    "while constructing a mapping", start.start_mark, f"found duplicate key {str(key)[:60]!r}", key_mark
                )
            if type(key) is str:
                key = intern(key)  # 100,000 jobs share a handful of key names
            out[key] = value
            if track:
                out.key_pos[key] = _pos(key_mark)  # type: ignore[index]
                out.value_pos[key] = _pos(self.mark)  # type: ignore[index]
        for source in merged:
            if not isinstance(source, dict):
                raise ConstructorError(
                    "while constructing a mapping", start.start_mark, "a merge key (<<) needs a mapping", None
                )
            for key, value in source.items():
                if key not in out:
                    out[key] = value
                    if track and isinstance(source, LocatedDict) and source.key_pos is not None:
                        out.key_pos[key] = source.key_pos[key]  # type: ignore[index]
                        out.value_pos[key] = source.value_pos[key]  # type: ignore[index]


_MERGE_KEY = object()  # stands for a ``<<`` key while its mapping is built
_END = object()  # the end of a mapping or sequence
_DIGITS = frozenset("0123456789")
_PLAIN_CACHE_SIZE = 4096


def load_located(text: str, *, positions: bool = True) -> Any:
    """Parse one YAML document into located objects. Raises ``yaml.YAMLError`` (with a mark when known) or
    ``RecursionError`` for absurd nesting."""
    loader = LocatedLoader(text)
    loader.positions = positions
    try:
        return loader.load_document()
    finally:
        loader.dispose()


def position_of(data: Any, path: tuple[Any, ...]) -> Pos:
    """The best known position for ``path`` inside located ``data``: the value itself when it exists, the key
    when the path's last step names a key that exists, else the nearest enclosing container."""
    pos: Pos = getattr(data, "pos", (0, 0))
    node = data
    for step in path:
        if isinstance(node, LocatedDict):
            try:
                present = step in node
            except TypeError:
                present = False
            if not present:
                return node.pos
            pos = node.value_pos.get(step, node.pos) if node.value_pos is not None else node.pos
            node = node[step]
        elif isinstance(node, LocatedList) and isinstance(step, int) and 0 <= step < len(node):
            pos = node.item_pos[step] if node.item_pos is not None else node.pos
            node = node[step]
        else:
            return pos
    return pos


def key_position_of(data: Any, path: tuple[Any, ...]) -> Pos:
    """Where the key that ends ``path`` was written (for unknown-key errors), else ``position_of``."""
    if path:
        parent = data
        for step in path[:-1]:
            if not _contains(parent, step):
                return position_of(data, path)
            parent = parent[step]
        if isinstance(parent, LocatedDict) and _has(parent, path[-1]) and parent.key_pos is not None:
            return parent.key_pos[path[-1]]
    return position_of(data, path)


def _contains(node: Any, step: Any) -> bool:
    if isinstance(node, LocatedDict):
        return _has(node, step)
    return isinstance(node, LocatedList) and isinstance(step, int) and 0 <= step < len(node)


def _has(d: dict[Any, Any], key: Any) -> bool:
    try:
        return key in d
    except TypeError:
        return False
