"""The rules of the manifest format itself (DESIGN.md "Manifest, version 1"), whatever the model: names, vars,
matrix axes, prompt or shots, repeat. Each check reports to an ``IssueSink`` at the YAML path it judges and
says whether the part can be used.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from runner.manifest.issues import IssueSink, Path, path_str, short, type_name
from runner.manifest.rules import check_value, check_values
from runner.manifest.schema import JOB_KEYS, REQUEST_FIELDS, JobModel, ShotModel

#: Longest job or manifest name, so file names stay well under the usual 255-byte limit.
MAX_NAME_CHARS = 100
#: Letters (any script), digits, ``_``, ``-`` and ``.``, not starting with ``.``.
NAME_RE = re.compile(r"[\w-][\w.-]*")
VAR_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: A job's ``repeat`` may be at most this.
MAX_REPEAT = 10_000

_REQUEST_SET = frozenset(REQUEST_FIELDS)
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


@dataclass(frozen=True)
class Axis:
    """One axis of a matrix, its values checked: a request field, or a var (``is_var``)."""

    name: str
    values: list[Any]
    path: Path  # where the axis's list was written
    is_var: bool


# ---------------------------------------------------------------------------------------------- the top level


def manifest_name(sink: IssueSink, given: str | None, default_name: str) -> str:
    """The manifest's name: as given (checked), else the file's stem. A stem that is not a name as it stands
    (a space, a symbol) is made one and marked with a short hash of the stem, so two files never share a
    default name (and so a default output folder) by accident: ``雨`` stays ``雨``, ``my clip`` becomes
    ``my-clip-3f2a9c``."""
    if given is not None:
        check_name(sink, given, ("name",))
        return given
    name = re.sub(r"[^\w.-]+", "-", default_name).lstrip(".-")[:MAX_NAME_CHARS]
    if name != default_name:
        name = f"{name[: MAX_NAME_CHARS - 7] or 'manifest'}-{hashlib.sha256(default_name.encode()).hexdigest()[:6]}"
    return name or "manifest"


def check_name(sink: IssueSink, name: str, path: Path) -> bool:
    if not NAME_RE.fullmatch(name):
        sink.error(
            path,
            path_str(path),
            f"invalid name {short(repr(name))}: use letters (any script), digits, '.', '_' and '-' only, not "
            "starting with '.'",
        )
        return False
    if len(name) > MAX_NAME_CHARS:
        sink.error(path, path_str(path), f"name is {len(name)} characters long; at most {MAX_NAME_CHARS}")
        return False
    return True


def var_text(value: Any) -> str | None:
    """A var's text: strings as they are, numbers as written; None for anything else."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return None


def check_vars(sink: IssueSink, raw: dict[str, Any]) -> tuple[dict[str, str], bool]:
    """The vars' texts, and whether every var was good."""
    out: dict[str, str] = {}
    ok = True
    for key, value in raw.items():
        path = ("vars", key)
        if not VAR_NAME_RE.fullmatch(key):
            sink.error_at_key(path, "vars", f"invalid var name {short(repr(key))}: use letters, digits and _")
            continue
        if key in REQUEST_FIELDS or key in JOB_KEYS:
            sink.error_at_key(path, "vars", f"var name {key!r} is taken by a manifest key; rename it")
            ok = False
            continue
        text = var_text(value)
        if text is None:
            sink.error(path, path_str(path), f"a var must be a string or a number, got {type_name(value)}")
            ok = False
            continue
        out[key] = text
    return out, ok


def check_axes(sink: IssueSink, matrix: dict[str, list[Any]], base: Path, var_names: set[str]) -> list[Axis] | None:
    """The axes of a matrix (top level or a job's), or None when any is wrong."""
    axes: list[Axis] = []
    ok = True
    for name, values in matrix.items():
        path = (*base, name)
        is_var = name in var_names
        if name not in REQUEST_FIELDS and not is_var:
            allowed = ", ".join([*REQUEST_FIELDS, *sorted(var_names)])
            sink.error_at_key(
                path, path_str(base), f"unknown matrix axis {name!r}; allowed: {allowed} (a var must be in vars)"
            )
            ok = False
            continue
        if not values:
            sink.error(path, path_str(path), "a matrix axis needs at least one value")
            ok = False
            continue
        checked = _axis_values(sink, name, values, path, is_var)
        if checked is None:
            ok = False
            continue
        axes.append(Axis(name, checked, path, is_var))
    return axes if ok else None


def _axis_values(sink: IssueSink, name: str, values: list[Any], path: Path, is_var: bool) -> list[Any] | None:
    """The values of one matrix axis, typed and checked; None when any is wrong."""
    out: list[Any] = []
    ok = True
    seen: set[Any] = set()
    for k, value in enumerate(values):
        vpath = (*path, k)
        if is_var:
            text = var_text(value)
            if text is None:
                sink.error(vpath, path_str(vpath), "a var value must be a string or a number")
                ok = False
                continue
            value = text
        elif not _type_ok(name, value):
            sink.error(vpath, path_str(vpath), f"{name} must be {_article(_TYPE_OF_FIELD[name])}")
            ok = False
            continue
        elif not check_value(sink, name, value, vpath):
            ok = False
            continue
        key = (type(value), value)
        if key in seen:
            sink.error(vpath, path_str(vpath), f"{short(repr(value))} appears twice in this axis")
            ok = False
            continue
        seen.add(key)
        out.append(value)
    return out if ok else None


def _type_ok(name: str, value: Any) -> bool:
    kind = _TYPE_OF_FIELD[name]
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    return value in ("single", "multi")


def _article(kind: str) -> str:
    return kind if kind.startswith("'") else f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


# ---------------------------------------------------------------------------------------------- a job


def check_job(sink: IssueSink, i: int, job: JobModel, top: list[Axis] | None, var_names: set[str]) -> list[Axis] | None:
    """Check job ``i`` (its name, values, repeat, prompt parts and own matrix) and give the axes it expands over:
    the top-level axes it does not set itself, then its own. None when it cannot be expanded (reported)."""
    jpath: Path = ("jobs", i)
    fields_set = job.model_fields_set
    name = job.name
    ok = (NAME_RE.fullmatch(name) is not None and len(name) <= MAX_NAME_CHARS) or check_name(
        sink, name, (*jpath, "name")
    )
    check_values(sink, job, jpath, fields_set)
    if job.repeat < 1 or job.repeat > MAX_REPEAT:
        sink.error((*jpath, "repeat"), path_str((*jpath, "repeat")), f"repeat must be 1 to {MAX_REPEAT:,}")
        ok = False
    ok = _check_prompt_parts(sink, jpath, job) and ok
    if not job.matrix and not top:
        return [] if ok and top is not None else None
    own = check_axes(sink, job.matrix, (*jpath, "matrix"), var_names) if job.matrix else []
    if own is None:
        return None
    overridden = fields_set & _REQUEST_SET
    for axis in own:
        if axis.name in overridden:
            sink.error(
                axis.path, path_str(axis.path), f"the job sets {axis.name} itself; use either it or matrix.{axis.name}"
            )
            ok = False
    if top is None:
        return None
    own_names = {a.name for a in own}
    axes = [a for a in top if a.name not in own_names and a.name not in overridden] + own
    return axes if ok else None


def _check_prompt_parts(sink: IssueSink, jpath: Path, job: JobModel) -> bool:
    if job.prompt is not None and job.shots is not None:
        sink.error(jpath, path_str(jpath), "set either prompt or shots (with an optional intro), not both")
        return False
    if job.prompt is None and job.shots is None:
        sink.error(jpath, path_str(jpath), "a job needs a prompt, or shots (with an optional intro)")
        return False
    if job.intro is not None and job.shots is None:
        sink.error((*jpath, "intro"), path_str((*jpath, "intro")), "intro goes with shots; use prompt alone")
        return False
    if job.shots is not None:
        return _check_shots(sink, job.shots, (*jpath, "shots"))
    return True


def _check_shots(sink: IssueSink, shots: list[ShotModel], path: Path) -> bool:
    """Shots are contiguous from 0, each at least one second long (the end is checked per job's duration)."""
    if not shots:
        sink.error(path, path_str(path), "shots needs at least one shot")
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
            sink.error((*path, k, "from"), path_str((*path, k, "from")), f"{where}, not {shot.from_}")
            ok = False
        if shot.to <= shot.from_:
            sink.error((*path, k, "to"), path_str((*path, k, "to")), f"shot {k + 1} must end after it starts")
            ok = False
        expected = shot.to
    return ok
