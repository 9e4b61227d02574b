"""The line reader for plain block YAML gives exactly what the libyaml loader gives, or gives up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.manifest.line_reader import load_plain
from runner.manifest.located import LocatedDict, LocatedList, load_located

REPO = Path(__file__).resolve().parents[2]


def same(a: Any, b: Any) -> bool:
    """Equal with the same types all the way down (1 == True == 1.0 would hide a wrong type) and the same
    positions: of each container, and (when loaded with positions) of each key, value and item."""
    if type(a) is not type(b):
        return False
    if isinstance(a, LocatedDict):
        return (
            (a.pos, a.key_pos, a.value_pos) == (b.pos, b.key_pos, b.value_pos)
            and [(type(k), k) for k in a] == [(type(k), k) for k in b]
            and all(same(a[k], b[k]) for k in a)
        )
    if isinstance(a, LocatedList):
        return (
            (a.pos, a.item_pos) == (b.pos, b.item_pos)
            and len(a) == len(b)
            and all(same(x, y) for x, y in zip(a, b, strict=True))
        )
    return bool(a == b)


def check(text: str) -> Any:
    fast = load_plain(text)
    if fast is not None:
        assert same(fast, load_located(text, positions=False)), text
        placed = load_plain(text, positions=True)
        assert placed is not None and same(placed, load_located(text, positions=True)), text
    else:
        assert load_plain(text, positions=True) is None, text
    return fast


@pytest.mark.parametrize("path", sorted((REPO / "manifests").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_manifests(path: Path) -> None:
    check(path.read_text(encoding="utf-8"))


def test_the_common_style_is_read() -> None:
    text = (
        '# a comment\n\nversion: 1\nname: x\ndefaults:\n  model: wan2.6-t2v\n  size: "1280*720"\n  duration: 5\n'
        "  prompt_extend: true\nvars:\n  city: Paris\njobs:\n  - name: job-0\n    prompt: A {city} night, take 0.\n"
        "    seed: 0\n\n  -   name: yes-1\n      prompt: 'it is'\n      seed: 007\n      size: ~\n"
        "  - name: c\n    shots:\n    - from: 0\n      to: 5\n      text: Hi, [there] {x}!\n"
    )
    data = check(text)
    assert data is not None
    assert data["jobs"][1]["seed"] == 7 and data["jobs"][1]["size"] is None


@pytest.mark.parametrize(
    "text",
    [
        "version: 1\njobs: [a]\n",  # flow
        "version: 1\nv: &a x\nw: *a\n",  # anchors
        "version: 1\nx: a # comment\n",  # trailing comment
        "version: 1\nx: a\nx: b\n",  # duplicate key
        "version: 1\nx: |\n  text\n",  # block scalar
        "version: 1\nx: two\n  lines\n",  # multi-line plain scalar
        'version: 1\nx: "a\\tb"\n',  # escape
        "version: 1\nyes: 1\n",  # a key that is not a string
        "version: 1\nx: a: b\n",  # an error libyaml reports
        "version:\t1\n",  # tab
        "  version: 1\n",  # indented top level
        "- a\n",  # not a mapping
        "version: 1\n---\nx: 1\n",  # two documents
    ],
)
def test_anything_else_is_left_to_libyaml(text: str) -> None:
    assert load_plain(text) is None


WORDS = st.sampled_from(
    ["name", "prompt", "yes", "no", "null", "~", "1", "07", "0x1F", "1_000", "1.5", "-3", ".inf", "2024-01-02",
     "a b", "a:b", "a: b", "a #b", "a#b", "'q'", '"q"', "'it''s'", '"a\\"b"', "[x]", "{x}", "x]", "&a", "*a",
     "!t", "|", ">", "%", "@", "`", "?", "? x", "- x", "-", ":", "true", "True", "on", "Off", "", " ", "é", "🎬",
     "a:", "<<", "=", "+1"]
)  # fmt: skip


KEYS = st.sampled_from(["name", "prompt", "seed", "n", "_x", "A1", "jobs", "name", "prompt", "seed", "on"])
#: Mostly values the reader takes (to compare what it makes of them), sometimes anything.
VALUES = st.one_of(
    st.sampled_from(["x", "a b", "1", "0", "07", "12.5", "null", "~", "yes", "No", "'q'", '"q r"', "it's", "a:b",
                     "T1", "2024-01-02", "1_000", "0x1F", ".5", "+1", "é 🎬", "x]", "{x}", "a, b", "fo? o"]),
    WORDS,
)  # fmt: skip


@st.composite
def block(draw: st.DrawFn, indent: int, depth: int) -> list[str]:
    """Lines of a block mapping or sequence at ``indent``, in the styles the reader supports and a few it does
    not (the words may be anything)."""
    lines: list[str] = []
    is_seq = depth > 0 and draw(st.booleans())
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.integers(0, 5)) == 0:
            lines.append(draw(st.sampled_from(["", " " * indent + "# note", "   "])))
        head = " " * indent
        if is_seq:
            dash = draw(st.sampled_from(["- ", "-  "]))
            if draw(st.booleans()):
                lines.append(head + dash + draw(VALUES))
                continue
            head += dash
            inner = indent + len(dash)
        else:
            inner = indent
        for k in range(draw(st.integers(1, 3))):
            prefix = head if k == 0 else " " * inner
            key = draw(KEYS)
            if depth < 3 and draw(st.integers(0, 3)) == 0:
                lines.append(f"{prefix}{key}:")
                step = draw(st.sampled_from([0, 2, 4]))  # 0: a sequence at the key's own column
                lines += draw(block(inner + step, depth + 1)) if step else draw(seq_at(inner, depth + 1))
            else:
                lines.append(f"{prefix}{key}: {draw(VALUES)}{draw(st.sampled_from(['', ' ']))}")
    return lines


@st.composite
def seq_at(draw: st.DrawFn, indent: int, depth: int) -> list[str]:
    return [f"{' ' * indent}- {draw(VALUES)}" for _ in range(draw(st.integers(1, 3)))]


@st.composite
def documents(draw: st.DrawFn) -> str:
    return "\n".join(draw(block(0, 0))) + draw(st.sampled_from(["", "\n", "\n\n", "\n# end\n"]))


@settings(max_examples=800, deadline=None)
@given(text=documents())
def test_generated_documents_read_the_same_or_not_at_all(text: str) -> None:
    try:
        check(text)
    except AssertionError:
        raise
    except Exception:  # libyaml rejects what the reader accepted: that is a difference too
        raise AssertionError(f"accepted, but libyaml refuses: {text!r}") from None
