"""The meaning rules of a manifest (API.md §1.3 per model, shots, placeholders) and the issue collector.

Split from ``manifest.py`` so the expansion loop reads as a loop. Every check names the YAML path of the value
it judges; ``IssueSink`` turns paths into file:line:col once, at the end, and reports a problem that many
expanded jobs share (a bad size in ``defaults``) once, not once per job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runner.errors import Issue
from runner.manifest_yaml import key_position_of, load_located, position_of
from runner.models import (
    MODELS,
    NEGATIVE_PROMPT_MAX_CHARS,
    REGIONS,
    SEED_MAX,
    SEED_MIN,
    TIER_SIZES,
    ModelSpec,
    all_model_names,
    resolve_model,
    tier_of,
)

if TYPE_CHECKING:
    from runner.manifest import Job
    from runner.manifest_shape import ShotModel

Path = tuple[Any, ...]

#: The request fields a manifest may set in ``defaults`` or per job (``manifest.RequestFields``), in its order.
REQUEST_FIELDS: tuple[str, ...] = (
    "model",
    "size",
    "duration",
    "shot_type",
    "prompt_extend",
    "watermark",
    "negative_prompt",
    "seed",
    "audio_url",
    "audio",
)
REQUEST_FIELD_SET = frozenset(REQUEST_FIELDS)
#: Longest job or manifest name, so file names stay well under the usual 255-byte limit.
MAX_NAME_CHARS = 100
NAME_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")

#: Order of ``parameters`` in the request body (the SDK's capture, API.md §7.4).
PARAMETER_ORDER = ("size", "duration", "prompt_extend", "watermark", "shot_type", "seed", "audio")
INPUT_FIELDS = ("negative_prompt", "audio_url")
AUDIO_URL_SCHEMES = ("http://", "https://", "oss://")

_TYPE_OF_FIELD: dict[str, str] = {
    "model": "string",
    "size": "string",
    "negative_prompt": "string",
    "audio_url": "string",
    "duration": "integer",
    "seed": "integer",
    "prompt_extend": "boolean",
    "watermark": "boolean",
    "audio": "boolean",
    "shot_type": "'single' or 'multi'",
}


def _path_str(path: Path) -> str:
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else str(step))
    return out


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
        """An issue already located (from the shape pass)."""
        self.reported += 1
        self._made.append(issue)

    def error(self, path: Path, field: str, message: str) -> None:
        self.reported += 1
        self._items.setdefault((path, field, message, False), "error")

    def error_at_key(self, path: Path, field: str, message: str) -> None:
        self.reported += 1
        self._items.setdefault((path, field, message, True), "error")

    def warning(self, path: Path, field: str, message: str) -> None:
        self.reported += 1
        self._items.setdefault((path, field, message, False), "warning")

    def has_errors(self) -> bool:
        return "error" in self._items.values() or any(i.severity == "error" for i in self._made)

    def _data(self) -> Any:
        """The manifest parsed again, this time with the position of every key and value."""
        if self._located is None:
            self._located = load_located(self.text, positions=True)
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


# ---------------------------------------------------------------------------------------------- values


def var_text(value: Any) -> str | None:
    """A var's text: strings as they are, numbers as written; None for anything else."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return None


def _type_ok(name: str, value: Any) -> bool:
    kind = _TYPE_OF_FIELD[name]
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    return value in ("single", "multi")


def value_ok(name: str, value: Any) -> bool:
    """Whether ``check_value`` would pass ``value`` without a message (a quick test that needs no path)."""
    if name == "seed":
        return bool(SEED_MIN <= value <= SEED_MAX)
    if name == "audio_url":
        return bool(value.startswith(AUDIO_URL_SCHEMES))
    if name == "negative_prompt":
        return len(value) <= NEGATIVE_PROMPT_MAX_CHARS
    return True


def check_value(sink: IssueSink, name: str, value: Any, path: Path) -> bool:
    """Rules on one value that hold whatever the model: seed range, audio_url scheme, text lengths."""
    if name == "seed" and not SEED_MIN <= value <= SEED_MAX:
        sink.error(path, _path_str(path), f"seed must be an integer from {SEED_MIN} to {SEED_MAX}")
        return False
    if name == "audio_url" and not value.startswith(AUDIO_URL_SCHEMES):
        sink.error(path, _path_str(path), "audio_url must be an http://, https:// or oss:// URL")
        return False
    if name == "negative_prompt" and len(value) > NEGATIVE_PROMPT_MAX_CHARS:
        sink.warning(
            path,
            _path_str(path),
            f"negative_prompt is {len(value)} characters; the API keeps the first {NEGATIVE_PROMPT_MAX_CHARS} "
            "and silently drops the rest",
        )
    return True


def check_axis_values(sink: IssueSink, name: str, values: list[Any], path: Path, is_var: bool) -> list[Any] | None:
    """The values of one matrix axis, typed and checked; None when any is wrong."""
    out: list[Any] = []
    ok = True
    seen: set[Any] = set()
    for k, value in enumerate(values):
        vpath = (*path, k)
        if is_var:
            text = var_text(value)
            if text is None:
                sink.error(vpath, _path_str(vpath), "a var value must be a string or a number")
                ok = False
                continue
            value = text
        elif not _type_ok(name, value):
            sink.error(vpath, _path_str(vpath), f"{name} must be {_article(_TYPE_OF_FIELD[name])}")
            ok = False
            continue
        elif not check_value(sink, name, value, vpath):
            ok = False
            continue
        key = (type(value), value)
        if key in seen:
            sink.error(vpath, _path_str(vpath), f"{_short(repr(value))} appears twice in this axis")
            ok = False
            continue
        seen.add(key)
        out.append(value)
    return out if ok else None


def _article(kind: str) -> str:
    return kind if kind.startswith("'") else f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------------------------------------- shots and text


def check_shots(sink: IssueSink, shots: list[ShotModel], path: Path) -> bool:
    """Shots are contiguous from 0, each at least one second long (the end is checked per job's duration)."""
    if not shots:
        sink.error(path, _path_str(path), "shots needs at least one shot")
        return False
    ok = True
    expected = 0
    for k, shot in enumerate(shots):
        if shot.from_ != expected:
            where = (
                "the first shot must start at 0"
                if k == 0
                else f"shot {k + 1} must start at {expected}, where shot {k} ends"
            )
            sink.error((*path, k, "from"), _path_str((*path, k, "from")), f"{where}, not {shot.from_}")
            ok = False
        if shot.to <= shot.from_:
            sink.error((*path, k, "to"), _path_str((*path, k, "to")), f"shot {k + 1} must end after it starts")
            ok = False
        expected = shot.to
    return ok


_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


def parse_template(text: str) -> list[tuple[str, str | None]]:
    """``"a {x} b"`` → ``[("a ", None), ("", "x"), (" b", None)]``-style parts: (literal, var name).

    ``{{`` and ``}}`` stand for literal braces; braces around anything but a name stay as written.
    """
    parts: list[tuple[str, str | None]] = []
    last = 0
    for m in _PLACEHOLDER.finditer(text):
        literal = text[last : m.start()]
        token = m.group(0)
        if m.group(1) is None:
            parts.append((literal + token[0], None))
        else:
            parts.append((literal, m.group(1)))
        last = m.end()
    parts.append((text[last:], None))
    return parts


def _render(parts: list[tuple[str, str | None]], values: dict[str, str]) -> str:
    return "".join(lit + values[var] if var is not None else lit for lit, var in parts)


def _format_string(parts: list[tuple[str, str | None]]) -> str:
    """The parts as a ``str.format_map`` string: literal braces doubled, each placeholder ``{name}``. Rendering it
    is one C call per job instead of a join over the parts."""
    return "".join(lit.replace("{", "{{").replace("}", "}}") + ("{" + var + "}" if var else "") for lit, var in parts)


@dataclass(frozen=True, slots=True)
class Templates:
    """A job's prompt text with its placeholders parsed once, rendered per expanded job."""

    form: str  # the whole prompt as a format string (pieces joined by a space)
    path: Path
    constant: str | None

    def render(self, values: dict[str, str]) -> str:
        if self.constant is not None:
            return self.constant
        return self.form.format_map(values)


def job_templates(sink: IssueSink, job: Job, jpath: Path, known: set[str] | frozenset[str]) -> Templates | None:
    """Parse prompt (or intro + shots) of a job; unknown placeholders are errors."""
    sources: list[tuple[str, str, Path]] = []  # (prefix, text, path)
    if job.prompt is not None and "{" not in job.prompt and "}" not in job.prompt:
        prompt = job.prompt.strip()
        if prompt:  # the common case, made cheap: no placeholders to look for
            return Templates("", (*jpath, "prompt"), prompt)
    elif job.prompt is not None and "{{" not in job.prompt and "}}" not in job.prompt:
        prompt = job.prompt.strip()
        names = _PLACEHOLDER.findall(prompt)
        if names and prompt.count("{") == len(names) == prompt.count("}") and known.issuperset(names):
            return Templates(prompt, (*jpath, "prompt"), None)  # each brace is a known placeholder: as it is
    if job.prompt is not None:
        sources.append(("", job.prompt.strip(), (*jpath, "prompt")))
        prompt_path: Path = (*jpath, "prompt")
    else:
        assert job.shots is not None
        prompt_path = (*jpath, "shots")
        if not job.shots:
            return None  # reported by check_shots
        if job.intro is not None and job.intro.strip():
            sources.append(("", job.intro.strip(), (*jpath, "intro")))
        for k, shot in enumerate(job.shots):
            prefix = f"Shot {k + 1} [{shot.from_}–{shot.to} s]: "
            sources.append((prefix, shot.text.strip(), (*jpath, "shots", k, "text")))
    pieces = []
    ok = True
    uses_vars = False
    for prefix, text, path in sources:
        parts = parse_template(text)
        for _, var in parts:
            if var is None:
                continue
            uses_vars = True
            if var not in known:
                have = ", ".join(sorted(known)) or "none"
                sink.error(path, _path_str(path), f"unknown placeholder {{{var}}}; known vars: {have}")
                ok = False
        pieces.append((prefix, parts))
    if not ok:
        return None
    if not "".join(text for _, text, _ in sources):
        sink.error(prompt_path, _path_str(prompt_path), "the prompt is empty")
        return None
    if not uses_vars:
        return Templates("", prompt_path, " ".join(p + _render(parts, {}) for p, parts in pieces))
    form = " ".join(_format_string([(p, None), *parts]) for p, parts in pieces)
    return Templates(form, prompt_path, None)


# ---------------------------------------------------------------------------------------------- per job


def suffix_part(name: str, value: Any, index: int, is_var: bool) -> str:
    """The readable piece an axis adds to an expanded job's name."""
    if name == "size":
        return str(value).replace("*", "x")
    if name == "duration":
        return f"{value}s"
    if name == "seed":
        return f"seed{value}"
    if name in ("prompt_extend", "watermark", "audio"):
        return f"{name}-{'on' if value else 'off'}"
    if name == "negative_prompt":
        return f"neg{index + 1}"
    if name == "audio_url":
        return f"audio{index + 1}"
    slug = re.sub(r"[^A-Za-z0-9.-]+", "-", str(value)).strip("-.")[:40]
    return slug or f"{name}{index + 1}"


_TIER_OF_SIZE = {size: t for t, sizes in TIER_SIZES.items() for size in sizes}


def tier(size: str) -> str:
    """The resolution tier of ``size`` ("" for an unknown size), by one dict look-up: it runs per job."""
    return _TIER_OF_SIZE.get(size, "")


Fields = dict[str, tuple[Any, Path]]

#: Each model's sizes as a set (``ModelSpec.sizes`` builds a tuple on every call).
_SIZES = {name: frozenset(spec.sizes) for name, spec in MODELS.items()}


def prompt_warning(sink: IssueSink, spec: ModelSpec, prompt: str, prompt_path: Path) -> None:
    if len(prompt) > spec.prompt_max_chars:
        sink.warning(
            prompt_path,
            _path_str(prompt_path),
            f"the prompt is {len(prompt)} characters; {spec.name} keeps the first {spec.prompt_max_chars} "
            "and silently drops the rest",
        )


def check_fields(
    sink: IssueSink, region: str, fields: Fields, jpath: Path, shots: list[ShotModel] | None
) -> tuple[ModelSpec, bool] | None:
    """The rules of API.md §1.3 for one job, but the prompt length: the model and whether every other rule held,
    or None when there is no usable model."""
    if "model" not in fields:
        allowed = ", ".join(MODELS)
        sink.error(jpath, _path_str((*jpath, "model")), f"no model: set model in defaults or in the job ({allowed})")
        return None
    model_name, model_path = fields["model"]
    spec = resolve_model(model_name)
    if spec is None:
        sink.error(
            model_path,
            _path_str(model_path),
            f"unknown model {_short(repr(model_name))}; allowed: {', '.join(all_model_names())}",
        )
        return None
    ok = True
    if region not in spec.prices:
        offered = [m.name_in(region) for m in MODELS.values() if region in m.prices]
        sink.error(
            model_path,
            _path_str(model_path),
            f"{spec.name} is not offered in {region} ({REGIONS[region].title}); offered there: {', '.join(offered)}",
        )
        ok = False
    if "size" in fields:
        size, path = fields["size"]
        if size not in _SIZES[spec.name]:
            what = "is not allowed for" if tier_of(size) else "is not a size of"
            sink.error(
                path, _path_str(path), f"size {_short(repr(size))} {what} {spec.name}; allowed: {', '.join(spec.sizes)}"
            )
            ok = False
    duration = spec.default_duration
    if "duration" in fields:
        duration, path = fields["duration"]
        if duration not in spec.durations:
            sink.error(
                path,
                _path_str(path),
                f"duration {duration} is not allowed for {spec.name}; allowed: {spec.describe_durations()}",
            )
            ok = False
    if shots and shots[-1].to != duration:
        path = (*jpath, "shots", len(shots) - 1, "to")
        whose = "" if "duration" in fields else f" ({spec.name}'s default; set duration)"
        sink.error(
            path, _path_str(path), f"the last shot ends at {shots[-1].to} s but the job lasts {duration} s{whose}"
        )
        ok = False
    for name in ("shot_type", "audio_url", "audio"):
        if name in fields and not getattr(spec, "shot_type" if name == "shot_type" else "audio_url"):
            path = fields[name][1]
            takers = [
                m.name for m in MODELS.values() if getattr(m, "shot_type" if name == "shot_type" else "audio_url")
            ]
            sink.error(path, _path_str(path), f"{spec.name} does not take {name}; only {', '.join(takers)} do")
            ok = False
    if "shot_type" in fields and "prompt_extend" in fields and fields["prompt_extend"][0] is False:
        path = fields["shot_type"][1]
        sink.warning(path, _path_str(path), "shot_type takes effect only when prompt_extend is true")
    return spec, ok
