"""Written-out jobs in one pass: the YAML lines of each entry straight to its ``JobSpec``, or give up.

A 100,000-job manifest is mostly entries of a few scalar fields (name, prompt, seed…), one per line. The
general path reads them into dicts, wraps them as jobs, checks them in one pass and builds them in another;
this does all of it per entry, with what only depends on an entry's layout (its keys and the types of its
values) and on its request's combination worked out once. It only ever takes the path a valid job takes:
on anything else (a line outside the plain style, a key or value the general path would question, any error
or warning, a name or id used twice) it raises ``GiveUp`` and the caller loads the manifest the general way
from the start, which finds and words every message. So what it returns is what the general path returns
for the same text (tested against it), and a manifest with a problem costs a little more than before.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from hashlib import sha256
from typing import Any

from runner import manifest_rules as rules
from runner.errors import Issue
from runner.manifest_fastyaml import GiveUp, JobSection, Scalars
from runner.manifest_flat import FlatJob, layout_ok
from runner.manifest_request import KEYED, RequestRules, RequestShape, value_json
from runner.models import SEED_MAX, SEED_MIN

#: Builds a ``manifest.JobSpec`` from its fields in order (passed in: this module sits below ``manifest``).
NewJob = Callable[..., Any]

_ENCODE: Callable[[str], str] = json.encoder.encode_basestring
_VALUE_RULES = ("audio_url", "negative_prompt")  # seed is checked inline
_PROMPT_SEED = ("prompt", "seed")


class StrictSink(rules.IssueSink):
    """A sink that gives up at the first message, but for a prompt's length warning: that one is kept (once
    per path, as ``IssueSink`` keeps it) for ``Bulk.warnings`` to place."""

    def __init__(self) -> None:
        super().__init__("", "")
        self.prompt_warnings: dict[tuple[rules.Path, str, str], None] = {}

    def error(self, path: rules.Path, field: str, message: str) -> None:
        raise GiveUp

    def error_at_key(self, path: rules.Path, field: str, message: str) -> None:
        raise GiveUp

    def warning(self, path: rules.Path, field: str, message: str) -> None:
        if path[-1] != "prompt":  # the only warning with this path is rules.prompt_warning's
            raise GiveUp
        self.prompt_warnings[path, field, message] = None


@dataclass(frozen=True, slots=True, eq=False)  # compared and hashed by identity: it keys a dict per entry
class _Layout:
    """What the keys of an entry and the types of its values decide, once per layout."""

    name_at: int
    prompt_at: int
    seed_at: int  # -1: the seed comes from the defaults, or there is none
    sets: tuple[tuple[int, str], ...]  # (position, field) of each request field with a value
    drops: tuple[str, ...]  # request fields set to null (they drop the default)
    keyed_at: tuple[int, ...]  # positions of the fields that pick the request's combination
    checks: tuple[tuple[int, str], ...]  # (position, field) of values with a rule of their own, but the seed


@dataclass(frozen=True, slots=True)
class _Combination:
    """A clean request combination with what its jobs share, and ``idform``, the id text with holes."""

    shape: RequestShape
    quick: bool  # body = prompt + fixed parameters + the seed last: built inline
    idform: str | None
    max_chars: int


@dataclass(frozen=True, slots=True, eq=False)
class _EntryShape:
    """Entries with these keys in this order and values written the same way (plain text, a plain decimal
    number, double- or single-quoted text), read by one regex over the entry. Each value's pattern accepts
    exactly the text ``Bulk._read`` would read as that kind, and gives the same value: so an entry this
    matches has the values and layout ``_read`` would give it."""

    match: Callable[[str], re.Match[str] | None]
    ints: tuple[int, ...]  # positions of the numbers
    layout: _Layout
    lines: int


_PLAIN, _INT = "plain", "int"


def _entry_shape(
    keys: tuple[str, ...], written: tuple[str, ...], layout: _Layout, inner: str, text_start: frozenset[str]
) -> _EntryShape | None:
    if "" in written:
        return None
    start = "".join(re.escape(c) for c in sorted(text_start))
    patterns = {
        # _read's first shortcut: a text-start character, no "#", no ": "; here also no space or ":" at the end
        # (those go through _read, which drops the spaces or gives up), so the group is the value as it is
        _PLAIN: f"(?![^\\n]*: )([{start}][^\\n#]*)(?<![ :])",
        _INT: "([1-9][0-9]{0,17})",  # its second: up to 18 ASCII digits, not starting with 0, nothing after
        '"': '"([^"\\\\\\n]*)" *',  # the line reader's _DOUBLE and _SINGLE, within the line
        "'": "'([^'\\n]*)' *",
    }
    regex = re.escape(inner).join(
        f"{re.escape(key)}: {patterns[kind]}" for key, kind in zip(keys, written, strict=True)
    )
    ints = tuple(k for k, kind in enumerate(written) if kind == _INT)
    return _EntryShape(re.compile(regex).fullmatch, ints, layout, len(keys))


def _layout(keys: tuple[str, ...], kinds: tuple[type, ...]) -> _Layout:
    if not layout_ok(keys, kinds) or "repeat" in keys or "intro" in keys or kinds[keys.index("name")] is not str:
        raise GiveUp
    if "prompt" not in keys or kinds[keys.index("prompt")] is not str:
        raise GiveUp
    request = [(k, key) for k, key in enumerate(keys) if key in rules.REQUEST_FIELD_SET]
    sets = tuple((k, key) for k, key in request if kinds[k] is not type(None))
    return _Layout(
        keys.index("name"),
        keys.index("prompt"),
        next((k for k, key in sets if key == "seed"), -1),
        sets,
        tuple(key for k, key in request if kinds[k] is type(None)),
        tuple(k for k, key in sets if key in KEYED),
        tuple((k, key) for k, key in sets if key in _VALUE_RULES),
    )


class Bulk:
    """Expands the entries of a ``JobSection`` (one instance per load)."""

    def __init__(
        self,
        file: str,
        section: JobSection,
        scalars: Scalars,
        default_fields: rules.Fields,
        var_values: dict[str, str],
        region: str,
        new_job: NewJob,
    ) -> None:
        self.section, self.scalars = section, scalars
        self.default_fields, self.var_values = default_fields, var_values
        self.file = file
        self.sink = StrictSink()
        self.requests = RequestRules(self.sink, region)
        self.new_job = new_job
        self.known = frozenset(var_values)

    def warnings(self) -> list[Issue]:
        """The prompts' length warnings, each where libyaml places the prompt's value (its first character
        or quote), in ``IssueSink``'s order. Placed from the entries' lines: the general path parses the whole
        text again with positions for them, which for 100,000 jobs took seconds and over 300 MB."""
        kept = self.sink.prompt_warnings
        if not kept:
            return []
        wanted = {path[1] for path, _, _ in kept}
        inner = self.section.inner
        column = len(inner) - 1 + len("prompt: ") + 1  # 1-based, when one space follows the colon
        where: dict[int, tuple[int, int]] = {}
        line = self.section.first_line
        for i, entry in enumerate(self.section.entries):
            if i in wanted:
                for k, piece in enumerate(entry.split(inner)):
                    key, _, rest = piece.partition(": ")
                    if key == "prompt":
                        where[i] = (line + k, column + len(rest) - len(rest.lstrip(" ")))
            line += entry.count(inner) + 1
        issues = [Issue(self.file, *where[path[1]], field, message, "warning") for path, field, message in kept]
        return sorted(dict.fromkeys(issues), key=lambda i: (i.line, i.column, i.field, i.message))

    def jobs(self) -> list[Any]:
        """Every entry's ``JobSpec``, in order; raises ``GiveUp`` where the general path is needed."""
        section, new_job = self.section, self.new_job
        var_values, known = self.var_values, self.known
        default_seed = self.default_fields["seed"][0] if "seed" in self.default_fields else None
        name_ok, placeholders, encode, hash_ = rules.NAME_RE.fullmatch, rules.PLACEHOLDER.findall, _ENCODE, sha256
        layouts: dict[tuple[tuple[str, ...], tuple[type, ...]], _Layout] = {}
        shapes: dict[tuple[tuple[str, ...], tuple[str, ...]], _EntryShape | None] = {}
        combinations: dict[Any, _Combination] = {}
        names: set[str] = set()
        ids: set[str] = set()
        out: list[Any] = []
        line = section.first_line
        # The entry shapes last seen, the last matched first: most entries match one of them, and then one regex
        # reads the whole entry (see _EntryShape); any other entry is read line by line by _read.
        last: _EntryShape | None = None
        before: _EntryShape | None = None
        values: list[Any]
        for i, entry in enumerate(section.entries):
            m = last.match(entry) if last is not None else None
            if m is None and before is not None:
                m = before.match(entry)
                if m is not None:
                    last, before = before, last
            if m is not None:
                assert last is not None
                values = list(m.groups())
                for k in last.ints:
                    values[k] = int(values[k])
                layout, lines = last.layout, last.lines
            else:
                values, layout, lines, seen = self._read(entry, layouts, shapes)
                if seen is not None and seen is not last:
                    last, before = seen, last
            name = values[layout.name_at]
            if name_ok(name) is None or len(name) > rules.MAX_NAME_CHARS:
                raise GiveUp
            text = values[layout.prompt_at]
            if "{" not in text and "}" not in text:
                prompt = text.strip()
                if not prompt:
                    raise GiveUp
            elif "{{" not in text and "}}" not in text:  # job_templates' "as written" case, or its general one
                prompt = text.strip()
                used = placeholders(prompt)
                if used and prompt.count("{") == len(used) == prompt.count("}") and known.issuperset(used):
                    prompt = prompt.format_map(var_values)
                else:
                    prompt = self._prompt(i, name, text)
            else:
                prompt = self._prompt(i, name, text)
            if layout.seed_at >= 0:
                seed = values[layout.seed_at]
                if not SEED_MIN <= seed <= SEED_MAX:
                    raise GiveUp
            else:
                seed = default_seed if "seed" not in layout.drops else None
            for k, field in layout.checks:
                if not rules.value_ok(field, values[k]):
                    raise GiveUp
            key: Any = (layout, *[values[k] for k in layout.keyed_at]) if layout.keyed_at else layout
            combination = combinations.get(key)
            if combination is None:
                combination = combinations[key] = self._combination(i, layout, values, prompt)
            elif len(prompt) > combination.max_chars:
                rules.prompt_warning(self.sink, combination.shape.spec, prompt, ("jobs", i, "prompt"))
            shape = combination.shape
            if combination.quick:
                params = shape.fixed_params.copy()  # type: ignore[union-attr]
                if seed is not None:
                    params["seed"] = seed
                    form: tuple[str, ...] = (encode(prompt), int.__repr__(seed))
                else:
                    form = (encode(prompt),)
                body = {"model": shape.sent_model, "input": {"prompt": prompt}, "parameters": params}
                job_id = hash_((combination.idform % form).encode()).hexdigest()[:32]  # type: ignore[operator]
            else:
                body, canonical = shape.make(self._fields(i, layout, values), prompt)
                job_id = hash_(f'{{"request":{canonical},"take":1,"v":1}}'.encode()).hexdigest()[:32]
            if name in names or job_id in ids:
                raise GiveUp
            names.add(name)
            ids.add(job_id)
            out.append(
                new_job(job_id, name, shape.spec.name, body, shape.size, shape.duration, seed, shape.shot_type, prompt,
                        1, line, shape.tier)
            )  # fmt: skip
            line += lines
        if line - section.first_line != section.lines:
            raise GiveUp  # a line that is neither an entry's first nor one of its others
        return out

    def _read(
        self,
        entry: str,
        layouts: dict[tuple[tuple[str, ...], tuple[type, ...]], _Layout],
        shapes: dict[tuple[tuple[str, ...], tuple[str, ...]], _EntryShape | None],
    ) -> tuple[list[Any], _Layout, int, _EntryShape | None]:
        """One entry read line by line: its values, its layout, its lines and its ``_EntryShape`` (None when a
        value is of a kind that has none)."""
        pieces = entry.split(self.section.inner)
        raw = dict([piece.split(": ", 1) for piece in pieces])  # ValueError: a line without ": "
        if len(raw) != len(pieces):
            raise GiveUp  # a key written twice: the general path words it
        text_start, scalar = self.scalars.text_start, self.scalars.scalar
        values: list[Any] = []
        kinds_written: list[str] = []
        value: Any
        for rest in raw.values():  # _Reader.mapping's two shortcuts, then its scalar reader
            first = rest[0]
            if first in text_start and "#" not in rest and ": " not in rest:
                value = rest.rstrip(" ")
                if value[-1] == ":":
                    raise GiveUp
                kinds_written.append(_PLAIN)
            elif first in _DIGITS and len(rest) < 19 and rest.isdigit() and rest.isascii() and first != "0":
                value = int(rest)
                kinds_written.append(_INT)
            else:  # (an empty value, left for the general path: IndexError)
                value = scalar(rest.lstrip(" ") if first == " " else rest)
                kinds_written.append(first if first in "'\"" and type(value) is str else "")
            values.append(value)
        keys = tuple(raw)
        kinds = tuple(map(type, values))
        layout = layouts.get((keys, kinds))
        if layout is None:
            layout = layouts[keys, kinds] = _layout(keys, kinds)
        written = tuple(kinds_written)
        if (keys, written) not in shapes:
            shapes[keys, written] = _entry_shape(keys, written, layout, self.section.inner, text_start)
        return values, layout, len(pieces), shapes[keys, written]

    def _prompt(self, i: int, name: str, text: str) -> str:
        """The prompt by ``job_templates`` itself, for a text with literal or unknown braces."""
        templates = rules.job_templates(self.sink, FlatJob({"name": name, "prompt": text}), ("jobs", i), self.known)
        if templates is None:  # pragma: no cover - job_templates reports (and so gives up) before it says None
            raise GiveUp
        return templates.render(self.var_values)

    def _fields(self, i: int, layout: _Layout, values: list[Any]) -> rules.Fields:
        """The entry's request fields as the general path has them: the defaults, the entry's own over them."""
        fields = dict(self.default_fields)
        for field in layout.drops:
            fields.pop(field, None)
        for k, field in layout.sets:
            fields[field] = (values[k], ("jobs", i, field))
        return fields

    def _combination(self, i: int, layout: _Layout, values: list[Any], prompt: str) -> _Combination:
        """The request shape of this entry's combination, checked by ``RequestRules`` (which gives up on any
        message); when its body is prompt + fixed parameters + seed, also its id text with holes for those."""
        fields = self._fields(i, layout, values)
        if fields.get("shot_type", _UNSET)[0] not in _SHOT_TYPES:
            raise GiveUp  # pydantic's Literal refuses it
        jpath = ("jobs", i)
        shape = self.requests.shape(fields, frozenset(fields), prompt, (*jpath, "prompt"), jpath, None)
        if shape is None:  # pragma: no cover - a problem is reported first, and that gives up
            raise GiveUp
        slow = _Combination(shape, False, None, shape.spec.prompt_max_chars)
        if shape.fixed_params is None or shape.canonical is None or shape.holes not in (_PROMPT_SEED, _PROMPT):
            return slow
        quick = _Combination(
            shape, True, f'{{"request":{shape.canonical},"take":1,"v":1}}', shape.spec.prompt_max_chars
        )
        # The loop builds such a body and id text inline; this entry's must be what shape.make gives.
        seed = fields["seed"][0] if "seed" in fields else None
        body, canonical = shape.make(fields, prompt)
        params = {**shape.fixed_params, **({"seed": seed} if seed is not None else {})}
        form = (_ENCODE(prompt), value_json(seed)) if seed is not None else (_ENCODE(prompt),)
        inline = {"model": shape.sent_model, "input": {"prompt": prompt}, "parameters": params}
        if inline != body or quick.idform % form != f'{{"request":{canonical},"take":1,"v":1}}':  # type: ignore[operator]
            return slow  # pragma: no cover - the same construction
        return quick


_DIGITS = frozenset("0123456789")
_UNSET = (None, None)
_SHOT_TYPES = (None, "single", "multi")
_PROMPT = ("prompt",)
