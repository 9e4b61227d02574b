"""Manifest v1: YAML → pydantic → expanded ``JobSpec`` list with stable ids (DESIGN.md "Manifest, version 1").

Loading is three passes, each reporting every problem it finds before giving up, so a user fixes a manifest
in one round: (1) YAML with the position of every key and value (``manifest_yaml``); (2) the shape, by pydantic
models with ``extra="forbid"``; (3) the meaning, per expanded job, against the model table (``manifest_rules``).
Errors are ``ManifestError([Issue…])``; warnings (text the server would truncate) ride on ``Manifest.warnings``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from runner import manifest_rules as rules
from runner.errors import ConfigError, Issue, ManifestError
from runner.manifest_yaml import key_position_of, load_located, position_of
from runner.models import DEFAULT_REGION, MODELS, REGIONS, resolve_model

#: A manifest may expand to at most this many jobs (a typo in a matrix should not eat the machine).
MAX_JOBS = 250_000
#: A job's ``repeat`` may be at most this.
MAX_REPEAT = 10_000
#: Longest job or manifest name, so file names stay well under the usual 255-byte limit.
MAX_NAME_CHARS = 100

NAME_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
VAR_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# ---------------------------------------------------------------------------------------------- the shape


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class RequestFields(_Strict):
    """The request fields a manifest may set in ``defaults`` or per job; unset fields are not sent."""

    model: str | None = None
    size: str | None = None
    duration: int | None = None
    shot_type: Literal["single", "multi"] | None = None
    prompt_extend: bool | None = None
    watermark: bool | None = None
    negative_prompt: str | None = None
    seed: int | None = None
    audio_url: str | None = None
    audio: bool | None = None


class ShotModel(_Strict):
    """One shot of a multi-shot prompt: ``{from, to, text}`` in whole seconds."""

    from_: int = Field(alias="from")
    to: int
    text: str


class JobModel(RequestFields):
    """One entry of ``jobs``: a name, its prompt (or intro + shots), overrides, repeat and matrix."""

    name: str
    prompt: str | None = None
    intro: str | None = None
    shots: list[ShotModel] | None = None
    repeat: int = 1
    matrix: dict[str, list[Any]] | None = None


class ManifestModel(_Strict):
    """The top level of a manifest file."""

    version: int
    name: str | None = None
    defaults: RequestFields = Field(default_factory=RequestFields)
    vars: dict[str, Any] = Field(default_factory=dict)
    matrix: dict[str, list[Any]] = Field(default_factory=dict)
    jobs: list[JobModel]


REQUEST_FIELDS: tuple[str, ...] = tuple(RequestFields.model_fields)
TOP_KEYS: tuple[str, ...] = tuple(ManifestModel.model_fields)
JOB_KEYS: tuple[str, ...] = tuple(JobModel.model_fields)
SHOT_KEYS: tuple[str, ...] = ("from", "to", "text")


# ---------------------------------------------------------------------------------------------- the result


@dataclass(frozen=True)
class JobSpec:
    """One expanded job: what ``run`` submits and the ledger keys by ``job_id``."""

    job_id: str  # 32 hex chars: sha256 of the canonical request (canonical model name) + take
    name: str  # unique within the manifest, file-name safe
    model: str  # canonical model name (models.MODELS key)
    request: dict[str, Any]  # the exact POST body for the region: {"model", "input", "parameters"?}
    size: str  # effective size (the request's or the model's default), "W*H"
    duration: int  # effective duration in seconds
    seed: int | None
    shot_type: str | None
    prompt: str
    take: int  # 1..repeat
    line: int  # manifest line of the job entry, for messages
    tier: str = ""  # resolution tier of ``size`` (480P/720P/1080P)


@dataclass(frozen=True)
class Manifest:
    """A loaded, validated, expanded manifest."""

    name: str
    path: str
    region: str
    jobs: list[JobSpec]
    warnings: list[Issue] = field(default_factory=list)
    text: str = ""  # the manifest as read, for the run's snapshot


# ---------------------------------------------------------------------------------------------- loading


def load_manifest(path: str | os.PathLike[str], region: str | None = None) -> Manifest:
    """Read, validate and expand the manifest at ``path`` for ``region`` (default cn-beijing).

    Raises ``ManifestError`` listing every problem found, or ``ConfigError`` for an unknown region.
    """
    file = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise ManifestError([Issue(file, 0, 0, "", f"cannot read the manifest: {reason}")]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        col = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise ManifestError([Issue(file, line, col, "", "the manifest is not UTF-8 text")]) from None
    stem = Path(file).stem
    return parse_manifest(text, file=file, region=region, default_name=stem)


def parse_manifest(
    text: str, *, file: str = "<manifest>", region: str | None = None, default_name: str = "manifest"
) -> Manifest:
    """Validate and expand manifest ``text`` (``file`` only names it in messages)."""
    region = region or DEFAULT_REGION
    if region not in REGIONS:
        raise ConfigError(f"unknown region {region!r}; known: {', '.join(sorted(REGIONS))}")
    data = _parse_yaml(text, file)
    model = _validate_shape(data, file)
    return _Expander(data, model, file, region, text, default_name).run()


def _parse_yaml(text: str, file: str) -> Any:
    try:
        data = load_located(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
        what = " ".join(p for p in (e.context, e.problem) if p)
        raise ManifestError([Issue(file, line, col, "", f"YAML syntax: {what}")]) from None
    except yaml.YAMLError as e:
        raise ManifestError([Issue(file, 0, 0, "", f"YAML syntax: {e}")]) from None
    except RecursionError:
        raise ManifestError([Issue(file, 0, 0, "", "YAML nesting is too deep")]) from None
    except ValueError as e:  # e.g. an integer literal with more digits than Python converts
        raise ManifestError([Issue(file, 0, 0, "", f"YAML value cannot be read: {_short(str(e))}")]) from None
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {_type_name(data)}"
        raise ManifestError(
            [
                Issue(
                    file,
                    1 if data is not None else 0,
                    1 if data is not None else 0,
                    "",
                    f"the manifest must be a mapping with at least `version: 1` and `jobs:`, got {got}",
                )
            ]
        )
    return data


def _validate_shape(data: Any, file: str) -> ManifestModel:
    try:
        return ManifestModel.model_validate(data)
    except ValidationError as e:
        issues = [_issue_from_pydantic(data, file, err) for err in e.errors(include_url=False, include_input=False)]
        raise ManifestError(_dedupe_sorted(issues)) from None
    except RecursionError:
        raise ManifestError([Issue(file, 0, 0, "", "the manifest refers to itself (recursive YAML alias)")]) from None


def _allowed_keys(loc: tuple[Any, ...]) -> tuple[str, ...] | None:
    parent = loc[:-1]
    if len(parent) == 0:
        return TOP_KEYS
    if parent == ("defaults",):
        return REQUEST_FIELDS
    if len(parent) == 2 and parent[0] == "jobs":
        return JOB_KEYS
    if len(parent) == 4 and parent[0] == "jobs" and parent[2] == "shots":
        return SHOT_KEYS
    return None


def _issue_from_pydantic(data: Any, file: str, err: Any) -> Issue:
    loc = tuple(p for p in err["loc"] if p != "[key]")
    kind = err["type"]
    field_name = path_str(loc)
    if kind == "extra_forbidden":
        line, col = key_position_of(data, loc)
        allowed = _allowed_keys(loc)
        message = f"unknown key {_short(repr(loc[-1]))}"
        if allowed:
            message += f"; allowed: {', '.join(allowed)}"
        return Issue(file, line, col, path_str(loc[:-1]), message)
    if kind == "missing":
        line, col = position_of(data, loc[:-1])
        return Issue(file, line, col, field_name, "required key is missing")
    if kind == "invalid_key":
        line, col = position_of(data, loc)
        return Issue(file, line, col, path_str(loc[:-1]), f"keys must be strings, got {_short(repr(loc[-1]))}")
    line, col = position_of(data, loc)
    if err["loc"] and err["loc"][-1] == "[key]":
        return Issue(file, line, col, path_str(loc[:-1]), f"keys must be strings, got {_short(repr(loc[-1]))}")
    message = err["msg"]
    if kind.endswith("_type") or kind == "literal_error":
        message = f"{message[0].lower()}{message[1:]}"
    return Issue(file, line, col, field_name, message)


# ---------------------------------------------------------------------------------------------- expansion


@dataclass(frozen=True)
class _Axis:
    name: str
    values: list[Any]
    path: tuple[Any, ...]  # where the axis's list was written
    is_var: bool


class _Expander:
    """Walks the validated manifest, checks every rule, and builds the jobs (one instance per load)."""

    def __init__(self, data: Any, m: ManifestModel, file: str, region: str, text: str, default_name: str) -> None:
        self.data, self.m, self.file, self.region, self.text = data, m, file, region, text
        self.default_name = default_name
        self.issues = rules.IssueSink(file, data)

    def run(self) -> Manifest:
        m = self.m
        if m.version != 1:
            self.issues.error(("version",), "version", f"unsupported manifest version {m.version!r}; allowed: 1")
        name = self._manifest_name()
        var_values = self._vars()
        self._check_fields(m.defaults, ("defaults",))
        top_axes = self._axes(m.matrix, ("matrix",), set(var_values))
        if not m.jobs:
            self.issues.error(("jobs",), "jobs", "at least one job is required")
        planned = 0
        job_plans: list[tuple[int, JobModel, list[_Axis]]] = []
        for i, job in enumerate(m.jobs):
            axes = self._job_axes(i, job, top_axes, set(var_values))
            if axes is None:
                continue
            count = math.prod(len(a.values) for a in axes) * max(job.repeat, 1)
            planned += count
            job_plans.append((i, job, axes))
        if planned > MAX_JOBS:
            self.issues.error(("jobs",), "jobs", f"the manifest expands to {planned:,} jobs; at most {MAX_JOBS:,}")
            raise ManifestError(self.issues.errors())
        jobs: list[JobSpec] = []
        seen_ids: dict[str, tuple[int, str]] = {}
        seen_names: dict[str, int] = {}
        for i, job, axes in job_plans:
            self._expand_job(i, job, axes, var_values, jobs, seen_ids, seen_names)
        if self.issues.has_errors():
            raise ManifestError(self.issues.errors())
        return Manifest(name, self.file, self.region, jobs, self.issues.warnings(), self.text)

    # -- top-level parts

    def _manifest_name(self) -> str:
        if self.m.name is not None:
            self._check_name(self.m.name, ("name",))
            return self.m.name
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", self.default_name).lstrip(".-")[:MAX_NAME_CHARS]
        return name or "manifest"

    def _check_name(self, name: str, path: tuple[Any, ...]) -> bool:
        if not NAME_RE.fullmatch(name):
            self.issues.error(
                path,
                path_str(path),
                f"invalid name {_short(repr(name))}: use letters, digits, '.', '_' and '-' only, not starting with '.'",
            )
            return False
        if len(name) > MAX_NAME_CHARS:
            self.issues.error(path, path_str(path), f"name is {len(name)} characters long; at most {MAX_NAME_CHARS}")
            return False
        return True

    def _vars(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, value in self.m.vars.items():
            path = ("vars", key)
            if not VAR_NAME_RE.fullmatch(key):
                self.issues.error_at_key(
                    path, "vars", f"invalid var name {_short(repr(key))}: use letters, digits and _"
                )
                continue
            if key in REQUEST_FIELDS or key in JOB_KEYS:
                self.issues.error_at_key(path, "vars", f"var name {key!r} is taken by a manifest key; rename it")
                continue
            text = rules.var_text(value)
            if text is None:
                self.issues.error(path, path_str(path), f"a var must be a string or a number, got {_type_name(value)}")
                continue
            out[key] = text
        return out

    def _axes(self, matrix: dict[str, list[Any]], base: tuple[Any, ...], var_names: set[str]) -> list[_Axis] | None:
        axes: list[_Axis] = []
        ok = True
        for name, values in matrix.items():
            path = (*base, name)
            is_var = name in var_names
            if name not in REQUEST_FIELDS and not is_var:
                allowed = ", ".join([*REQUEST_FIELDS, *sorted(var_names)])
                self.issues.error_at_key(
                    path, path_str(base), f"unknown matrix axis {name!r}; allowed: {allowed} (a var must be in vars)"
                )
                ok = False
                continue
            if not values:
                self.issues.error(path, path_str(path), "a matrix axis needs at least one value")
                ok = False
                continue
            checked = rules.check_axis_values(self.issues, name, values, path, is_var)
            if checked is None:
                ok = False
                continue
            axes.append(_Axis(name, checked, path, is_var))
        return axes if ok else None

    # -- jobs

    def _check_fields(self, fields: RequestFields, path: tuple[Any, ...]) -> None:
        for name in REQUEST_FIELDS:
            value = getattr(fields, name)
            if value is not None:
                rules.check_value(self.issues, name, value, (*path, name))

    def _job_axes(self, i: int, job: JobModel, top: list[_Axis] | None, var_names: set[str]) -> list[_Axis] | None:
        jpath: tuple[Any, ...] = ("jobs", i)
        ok = self._check_name(job.name, (*jpath, "name"))
        self._check_fields(job, jpath)
        if job.repeat < 1 or job.repeat > MAX_REPEAT:
            self.issues.error((*jpath, "repeat"), path_str((*jpath, "repeat")), f"repeat must be 1 to {MAX_REPEAT:,}")
            ok = False
        ok = self._check_prompt_parts(i, job) and ok
        own = self._axes(job.matrix or {}, (*jpath, "matrix"), var_names)
        if own is None or top is None:
            return None
        overridden = {n for n in job.model_fields_set if n in REQUEST_FIELDS}
        for axis in own:
            if axis.name in overridden:
                self.issues.error(
                    axis.path,
                    path_str(axis.path),
                    f"the job sets {axis.name} itself; use either it or matrix.{axis.name}",
                )
                ok = False
        own_names = {a.name for a in own}
        axes = [a for a in top if a.name not in own_names and a.name not in overridden] + own
        return axes if ok else None

    def _check_prompt_parts(self, i: int, job: JobModel) -> bool:
        jpath: tuple[Any, ...] = ("jobs", i)
        if job.prompt is not None and job.shots is not None:
            self.issues.error(jpath, path_str(jpath), "set either prompt or shots (with an optional intro), not both")
            return False
        if job.prompt is None and job.shots is None:
            self.issues.error(jpath, path_str(jpath), "a job needs a prompt, or shots (with an optional intro)")
            return False
        if job.intro is not None and job.shots is None:
            self.issues.error((*jpath, "intro"), path_str((*jpath, "intro")), "intro goes with shots; use prompt alone")
            return False
        if job.shots is not None:
            return rules.check_shots(self.issues, job.shots, (*jpath, "shots"))
        return True

    def _expand_job(
        self,
        i: int,
        job: JobModel,
        axes: list[_Axis],
        var_values: dict[str, str],
        out: list[JobSpec],
        seen_ids: dict[str, tuple[int, str]],
        seen_names: dict[str, int],
    ) -> None:
        jpath: tuple[Any, ...] = ("jobs", i)
        known_vars = set(var_values) | {a.name for a in axes if a.is_var}
        templates = rules.job_templates(self.issues, job, jpath, known_vars)
        if templates is None:
            return
        base: dict[str, tuple[Any, tuple[Any, ...]]] = {}
        for name in REQUEST_FIELDS:
            value = getattr(self.m.defaults, name)
            if value is not None:
                base[name] = (value, ("defaults", name))
        for name in job.model_fields_set:
            if name in REQUEST_FIELDS:
                value = getattr(job, name)
                if value is None:
                    base.pop(name, None)  # an explicit null removes the default
                else:
                    base[name] = (value, (*jpath, name))
        line = position_of(self.data, jpath)[0]
        multi = [a for a in axes if len(a.values) > 1]
        for combo in itertools.product(*(range(len(a.values)) for a in axes)):
            fields = dict(base)
            vars_now = var_values
            suffix: list[str] = []
            for axis, k in zip(axes, combo, strict=True):
                value = axis.values[k]
                if axis.is_var:
                    if vars_now is var_values:
                        vars_now = dict(var_values)
                    vars_now[axis.name] = value
                else:
                    fields[axis.name] = (value, (*axis.path, k))
                if len(axis.values) > 1:
                    suffix.append(rules.suffix_part(axis.name, value, k, axis.is_var))
            prompt, prompt_path = templates.render(vars_now)
            checked = rules.check_request(self.issues, self.region, fields, prompt, prompt_path, jpath, job.shots)
            if checked is None:
                continue
            spec, body = checked
            canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            body["model"] = spec.name_in(self.region)
            variant = job.name if not multi else "_".join([job.name, *suffix])
            for take in range(1, job.repeat + 1):
                digest = hashlib.sha256(f'{{"request":{canonical},"take":{take},"v":1}}'.encode()).hexdigest()
                job_id = digest[:32]
                name = variant if job.repeat == 1 else f"{variant}_take{take}"
                if name in seen_names:
                    self.issues.error(
                        jpath,
                        "name",
                        f"job name {name!r} is used twice (also by the job on line {seen_names[name]})",
                    )
                    continue
                if job_id in seen_ids:
                    other_line, other_name = seen_ids[job_id]
                    self.issues.error(
                        jpath,
                        path_str(jpath),
                        f"job {name!r} makes the same request as {other_name!r} (line {other_line}): same job id; "
                        "use repeat for more takes",
                    )
                    continue
                seen_names[name] = line
                seen_ids[job_id] = (line, name)
                size = fields["size"][0] if "size" in fields else spec.default_size
                out.append(
                    JobSpec(
                        job_id=job_id,
                        name=name,
                        model=spec.name,
                        request=body if job.repeat == 1 else _copy_body(body),
                        size=size,
                        duration=fields["duration"][0] if "duration" in fields else spec.default_duration,
                        seed=fields["seed"][0] if "seed" in fields else None,
                        shot_type=fields["shot_type"][0] if "shot_type" in fields else None,
                        prompt=prompt,
                        take=take,
                        line=line,
                        tier=rules.tier(size),
                    )
                )


def _copy_body(body: dict[str, Any]) -> dict[str, Any]:
    out = {"model": body["model"], "input": dict(body["input"])}
    if "parameters" in body:
        out["parameters"] = dict(body["parameters"])
    return out


# ---------------------------------------------------------------------------------------------- helpers


def path_str(path: Iterable[Any]) -> str:
    """``("jobs", 3, "shots", 0, "from")`` → ``jobs[3].shots[0].from``."""
    out = ""
    for step in path:
        if isinstance(step, int):
            out += f"[{step}]"
        else:
            out += f".{step}" if out else str(step)
    return out


def _type_name(value: Any) -> str:
    for kind, name in (
        (bool, "boolean"),
        (int, "integer"),
        (float, "number"),
        (str, "string"),
        (dict, "mapping"),
        (list, "list"),
    ):
        if isinstance(value, kind):
            return name
    return "null" if value is None else type(value).__name__


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _dedupe_sorted(issues: list[Issue]) -> list[Issue]:
    return sorted(dict.fromkeys(issues), key=lambda i: (i.line, i.column, i.field, i.message))


__all__ = [
    "MAX_JOBS",
    "MODELS",
    "REQUEST_FIELDS",
    "JobSpec",
    "Manifest",
    "load_manifest",
    "parse_manifest",
    "path_str",
    "resolve_model",
]
