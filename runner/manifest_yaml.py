"""A YAML loader that keeps where every key and value was written, so manifest errors name line and column.

PyYAML's safe constructor forgets node marks once it has built Python objects. This loader builds
``Located`` dicts and lists instead: plain ``dict``/``list`` subclasses that also remember the mark of each
key and value. It uses libyaml's C parser when present (much faster on a 100,000-job manifest) and the pure
Python one otherwise; both give the same objects. Duplicate keys, which PyYAML silently resolves to the last
one, are an error here: a manifest that says ``size`` twice is a mistake, not a choice.
"""

from __future__ import annotations

import gc
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: (line, column), both 1-based.
Pos = tuple[int, int]


def _pos(mark: Any) -> Pos:
    return (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)


class LocatedDict(dict[Any, Any]):
    """A mapping from YAML that knows where it starts and where each key and value were written."""

    __slots__ = ("key_pos", "pos", "value_pos")

    def __init__(self) -> None:
        super().__init__()
        self.pos: Pos = (0, 0)
        self.key_pos: dict[Any, Pos] = {}
        self.value_pos: dict[Any, Pos] = {}


class LocatedList(list[Any]):
    """A sequence from YAML that knows where it starts and where each item was written."""

    __slots__ = ("item_pos", "pos")

    def __init__(self) -> None:
        super().__init__()
        self.pos: Pos = (0, 0)
        self.item_pos: list[Pos] = []


_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_MERGE = "tag:yaml.org,2002:merge"


class LocatedLoader(_Base):  # type: ignore[misc]
    """Safe loader producing ``LocatedDict``/``LocatedList`` and refusing duplicate keys.

    Speed matters for 100,000-job manifests, so it skips PyYAML's generic construction for the common
    nodes (plain strings, maps, sequences) and resolves plain scalars that cannot be anything but a string
    without running the implicit-type regexes; every other node goes through the safe constructor.
    """

    _first_chars = frozenset(k for k in yaml.resolver.Resolver.yaml_implicit_resolvers if k)

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is ScalarNode:
            if not implicit[0]:
                return _STR
            if value and value[0] not in self._first_chars and None not in self.yaml_implicit_resolvers:
                return _STR
        return super().resolve(kind, value, implicit)

    def build(self, node: Node, memo: dict[int, Any]) -> Any:
        """The located Python value of ``node`` (aliases share one object, as in PyYAML)."""
        tag = node.tag
        if tag == _STR and isinstance(node, ScalarNode):
            return node.value
        if tag == _MAP and isinstance(node, MappingNode):
            found = memo.get(id(node))
            if found is not None:
                return found
            out = LocatedDict()
            memo[id(node)] = out
            self._fill_mapping(node, out, memo)
            return out
        if tag == _SEQ and isinstance(node, SequenceNode):
            found = memo.get(id(node))
            if found is not None:
                return found
            seq = LocatedList()
            memo[id(node)] = seq
            seq.pos = _pos(node.start_mark)
            for child in node.value:
                seq.append(self.build(child, memo))
                seq.item_pos.append(_pos(child.start_mark))
            return seq
        return self.construct_object(node, deep=True)

    def _fill_mapping(self, node: MappingNode, out: LocatedDict, memo: dict[int, Any]) -> None:
        seen: dict[str, Node] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag != _MERGE:
                if key_node.value in seen and key_node.tag == seen[key_node.value].tag:
                    raise ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"found duplicate key {key_node.value!r}",
                        key_node.start_mark,
                    )
                seen[key_node.value] = key_node
        self.flatten_mapping(node)
        out.pos = _pos(node.start_mark)
        for key_node, value_node in node.value:
            key = self.build(key_node, memo)
            try:
                hash(key)
            except TypeError:
                raise ConstructorError(
                    "while constructing a mapping", node.start_mark, "found an unhashable key", key_node.start_mark
                ) from None
            out[key] = self.build(value_node, memo)
            out.key_pos[key] = _pos(key_node.start_mark)
            out.value_pos[key] = _pos(value_node.start_mark)


def load_located(text: str) -> Any:
    """Parse one YAML document into located objects. Raises ``yaml.YAMLError`` (with a mark when known),
    ``RecursionError`` for absurd nesting, or ``ValueError`` for unconvertible scalars (e.g. an integer of
    100,000 digits). The cyclic garbage collector is paused meanwhile: the objects built are acyclic
    and a collection pass every few thousand allocations made parsing quadratic-looking on huge files."""
    was_enabled = gc.isenabled()
    gc.disable()
    loader = LocatedLoader(text)
    try:
        node = loader.get_single_node()
        return None if node is None else loader.build(node, {})
    finally:
        loader.dispose()
        if was_enabled:
            gc.enable()


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
            pos = node.value_pos.get(step, node.pos)
            node = node[step]
        elif isinstance(node, LocatedList) and isinstance(step, int) and 0 <= step < len(node):
            pos = node.item_pos[step]
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
        if isinstance(parent, LocatedDict) and _has(parent, path[-1]):
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
