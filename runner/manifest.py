"""Manifest v1: YAML → pydantic → expanded ``JobSpec`` list with stable ids (DESIGN.md "Manifest, version 1").

Loading is three passes, each reporting every problem it finds before giving up, so a user fixes a manifest
in one round: (1) YAML with the position of every key and value (``manifest_yaml``); (2) the shape, by pydantic
models with ``extra="forbid"``; (3) the meaning, per expanded job, against the model table (``manifest_rules``).
Errors are ``ManifestError([Issue…])``; warnings (text the server would truncate) ride on ``Manifest.warnings``.
"""

from __future__ import annotations

import itertools
import math
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import yaml

from runner import manifest_rules as rules
from runner.errors import ConfigError, Issue, ManifestError
from runner.manifest_fastyaml import load_plain
from runner.manifest_request import COMBINATION_FIELDS, RequestRules, RequestShape, canonical_json
from runner.manifest_yaml import load_located
from runner.models import DEFAULT_REGION, MODELS, REGIONS, resolve_model

if TYPE_CHECKING:
    from runner.manifest_shape import JobModel, RequestFields

#: A manifest may expand to at most this many jobs (a typo in a matrix should not eat the machine).
MAX_JOBS = 250_000
#: A job's ``repeat`` may be at most this.
MAX_REPEAT = 10_000
#: Longest job or manifest name, so file names stay well under the usual 255-byte limit.
MAX_NAME_CHARS = rules.MAX_NAME_CHARS

NAME_RE = rules.NAME_RE
VAR_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# ---------------------------------------------------------------------------------------------- the shape


#: A job as the shape pass made it.
Job: TypeAlias = "JobModel"


@dataclass
class Shape:
    """What survived the shape pass: each part is None when it had an error (already reported)."""

    version: int | None
    name: str | None
    defaults: RequestFields | None
    vars: dict[str, Any] | None
    matrix: dict[str, list[Any]] | None
    jobs: list[tuple[int, Job]]
    complete: bool  # every part and every job is valid


REQUEST_FIELDS: tuple[str, ...] = rules.REQUEST_FIELDS  # RequestFields' fields (tested)
_REQUEST_SET = frozenset(REQUEST_FIELDS)
#: The fields ``rules.check_value`` has a rule for (the others are judged per model, per expanded job).
_VALUE_RULES = frozenset({"seed", "audio_url", "negative_prompt"})
#: The keys of the top level and of a job (``ManifestModel``'s and ``JobModel``'s fields, tested), for messages.
TOP_KEYS: tuple[str, ...] = ("version", "name", "defaults", "vars", "matrix", "jobs")
JOB_KEYS: tuple[str, ...] = (*REQUEST_FIELDS, "name", "prompt", "intro", "shots", "repeat", "matrix")
SHOT_KEYS: tuple[str, ...] = ("from", "to", "text")


# ---------------------------------------------------------------------------------------------- the result


@dataclass(frozen=True, slots=True)
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
    del raw  # 14 MB for a 100,000-job file, not needed while the jobs are built
    stem = Path(file).stem
    return parse_manifest(text, file=file, region=region, default_name=stem)


def parse_manifest(
    text: str, *, file: str = "<manifest>", region: str | None = None, default_name: str = "manifest"
) -> Manifest:
    """Validate and expand manifest ``text`` (``file`` only names it in messages)."""
    region = region or DEFAULT_REGION
    if region not in REGIONS:
        raise ConfigError(f"unknown region {region!r}; known: {', '.join(sorted(REGIONS))}")
    return _load_general(text, file, region, default_name)


def _load_general(text: str, file: str, region: str, default_name: str) -> Manifest:
    """YAML, shape and meaning, each pass reporting every problem it finds (see the module docstring)."""
    data = _parse_yaml(text, file)
    sink = rules.IssueSink(file, text)
    from runner.manifest_shape import validate_shape  # pydantic, ~0.2 s to import: only on this path

    shape = validate_shape(data, sink)
    job_lines = [getattr(raw, "pos", (0, 0))[0] for raw in _raw_jobs(data)]
    del data  # positions for messages come from a second parse, only when there is something to report
    return _Expander(shape, sink, job_lines, file, region, text, default_name).run()


def _raw_jobs(data: dict[Any, Any]) -> list[Any]:
    jobs = data.get("jobs")
    return jobs if isinstance(jobs, list) else []


def _parse_yaml(text: str, file: str) -> Any:
    data: Any = load_plain(text)  # the common block style, read line by line; None for anything else
    if data is not None:
        return data
    try:
        data = load_located(text, positions=False)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
        what = " ".join(p for p in (e.context, e.problem) if p)
        raise ManifestError([Issue(file, line, col, "", f"YAML syntax: {what}")]) from None
    except yaml.reader.ReaderError as e:  # a control character; the message has no mark but a position
        line, col = _line_col(text, e.position)
        code = ord(e.character) if isinstance(e.character, str) else e.character
        what = f"character U+{code:04X} is not allowed in YAML ({e.reason})"
        raise ManifestError([Issue(file, line, col, "", f"YAML syntax: {what}")]) from None
    except yaml.YAMLError as e:
        raise ManifestError([Issue(file, 0, 0, "", f"YAML syntax: {_one_line(str(e))}")]) from None
    except RecursionError:
        raise ManifestError([Issue(file, 0, 0, "", "YAML nesting is too deep")]) from None
    except ValueError as e:  # e.g. an integer literal with more digits than Python converts
        raise ManifestError([Issue(file, 0, 0, "", f"YAML value cannot be read: {short(str(e))}")]) from None
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


# ---------------------------------------------------------------------------------------------- expansion


@dataclass(frozen=True)
class _Axis:
    name: str
    values: list[Any]
    path: tuple[Any, ...]  # where the axis's list was written
    is_var: bool


def _default_fields(defaults: RequestFields) -> rules.Fields:
    """The defaults that are set, each with its path."""
    return {key: (value, ("defaults", key)) for key in REQUEST_FIELDS if (value := getattr(defaults, key)) is not None}


def _job_fields(job: Job, default_fields: rules.Fields, jpath: tuple[Any, ...]) -> rules.Fields:
    """The manifest's defaults with the job's own request fields over them (an explicit null removes one)."""
    fields = dict(default_fields)
    for name in job.model_fields_set & _REQUEST_SET:
        value = getattr(job, name)
        if value is None:
            fields.pop(name, None)
        else:
            fields[name] = (value, (*jpath, name))
    return fields


def job_id(request: dict[str, Any], model: str, take: int) -> str:
    """The stable job id (the one place it is made): sha256 of the request's canonical JSON, with the model spelled
    canonically (so the id does not depend on the region), and the take."""
    text = canonical_json({"request": {**request, "model": model}, "take": take, "v": 1})
    return sha256(text.encode()).hexdigest()[:32]


class _Expander:
    """Walks the validated manifest, checks every rule, and builds the jobs (one instance per load)."""

    def __init__(
        self,
        shape: Shape,
        sink: rules.IssueSink,
        job_lines: list[int],
        file: str,
        region: str,
        text: str,
        default_name: str,
    ) -> None:
        self.shape, self.issues, self.job_lines = shape, sink, job_lines
        self.file, self.region, self.text, self.default_name = file, region, text, default_name

    def top(self) -> tuple[str, dict[str, str], bool, RequestFields | None, list[_Axis] | None]:
        """The top level checked: the manifest's name, the vars' texts (and whether all were good), the
        defaults and the top-level matrix's axes (None when it had an error)."""
        s = self.shape
        if s.version is not None and s.version != 1:
            self.issues.error(("version",), "version", f"unsupported manifest version {s.version!r}; allowed: 1")
        name = self._manifest_name(s.name)
        var_values, vars_ok = self._vars(s.vars or {})
        defaults = s.defaults
        if defaults is not None:
            self._check_fields(defaults, ("defaults",))
        top_axes = self._axes(s.matrix, ("matrix",), set(var_values)) if s.matrix is not None else None
        return name, var_values, vars_ok, defaults, top_axes

    def run(self) -> Manifest:
        s = self.shape
        name, var_values, vars_ok, defaults, top_axes = self.top()
        if s.complete and not s.jobs:
            self.issues.error(("jobs",), "jobs", "at least one job is required")
        expandable = s.defaults is not None and vars_ok and top_axes is not None and s.vars is not None
        planned = 0
        job_plans: list[tuple[int, Job, list[_Axis], rules.Templates]] = []
        declared = {k for k in (s.vars or {}) if isinstance(k, str)}
        var_names = set(var_values)
        for i, job in s.jobs:
            axes = self._job_axes(i, job, job.model_fields_set, top_axes, var_names)
            templates = None
            if (job.prompt is None) != (job.shots is None):  # else already reported
                templates = rules.job_templates(self.issues, job, ("jobs", i), declared)
            if axes is None or templates is None:
                continue
            planned += (math.prod([len(a.values) for a in axes]) if axes else 1) * max(job.repeat, 1)
            job_plans.append((i, job, axes, templates))
        if planned > MAX_JOBS:
            self.issues.error(("jobs",), "jobs", f"the manifest expands to {planned:,} jobs; at most {MAX_JOBS:,}")
            raise ManifestError(self.issues.errors())
        jobs: list[JobSpec] = []
        if expandable and defaults is not None:
            seen_ids: dict[str, tuple[int, str]] = {}
            seen_names: dict[str, int] = {}
            default_fields = _default_fields(defaults)
            # Consumed front to back so each job's pydantic model is freed once it is expanded: with 100,000
            # jobs the models and the JobSpecs would otherwise all be alive at the peak (~80 MB more).
            s.jobs.clear()
            job_plans.reverse()
            requests = RequestRules(self.issues, self.region)
            while job_plans:
                i, job, axes, templates = job_plans.pop()
                self._expand_job(
                    i, job, axes, templates, default_fields, var_values, requests, jobs, seen_ids, seen_names
                )
        if self.issues.has_errors():
            raise ManifestError(self.issues.errors())
        return Manifest(name, self.file, self.region, jobs, self.issues.warnings(), self.text)

    # -- top-level parts

    def _manifest_name(self, given: str | None) -> str:
        if given is not None:
            self._check_name(given, ("name",))
            return given
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", self.default_name).lstrip(".-")[:MAX_NAME_CHARS]
        return name or "manifest"

    def _check_name(self, name: str, path: tuple[Any, ...]) -> bool:
        if not NAME_RE.fullmatch(name):
            self.issues.error(
                path,
                path_str(path),
                f"invalid name {short(repr(name))}: use letters, digits, '.', '_' and '-' only, not starting with '.'",
            )
            return False
        if len(name) > MAX_NAME_CHARS:
            self.issues.error(path, path_str(path), f"name is {len(name)} characters long; at most {MAX_NAME_CHARS}")
            return False
        return True

    def _vars(self, raw: dict[str, Any]) -> tuple[dict[str, str], bool]:
        out: dict[str, str] = {}
        ok = True
        for key, value in raw.items():
            path = ("vars", key)
            if not VAR_NAME_RE.fullmatch(key):
                self.issues.error_at_key(
                    path, "vars", f"invalid var name {short(repr(key))}: use letters, digits and _"
                )
                continue
            if key in REQUEST_FIELDS or key in JOB_KEYS:
                self.issues.error_at_key(path, "vars", f"var name {key!r} is taken by a manifest key; rename it")
                ok = False
                continue
            text = rules.var_text(value)
            if text is None:
                self.issues.error(path, path_str(path), f"a var must be a string or a number, got {_type_name(value)}")
                ok = False
                continue
            out[key] = text
        return out, ok

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

    def _check_fields(self, fields: RequestFields, path: tuple[Any, ...], fields_set: set[str] | None = None) -> None:
        for name in (fields.model_fields_set if fields_set is None else fields_set) & _VALUE_RULES:
            value = getattr(fields, name)
            if value is not None and not rules.value_ok(name, value):
                rules.check_value(self.issues, name, value, (*path, name))

    def _job_axes(
        self, i: int, job: Job, fields_set: set[str], top: list[_Axis] | None, var_names: set[str]
    ) -> list[_Axis] | None:
        jpath: tuple[Any, ...] = ("jobs", i)
        name = job.name
        ok = (NAME_RE.fullmatch(name) is not None and len(name) <= MAX_NAME_CHARS) or self._check_name(
            name, (*jpath, "name")
        )
        self._check_fields(job, jpath, fields_set)
        if job.repeat < 1 or job.repeat > MAX_REPEAT:
            self.issues.error((*jpath, "repeat"), path_str((*jpath, "repeat")), f"repeat must be 1 to {MAX_REPEAT:,}")
            ok = False
        ok = self._check_prompt_parts(i, job) and ok
        if not job.matrix and not top:
            return [] if ok and top is not None else None
        own = self._axes(job.matrix, (*jpath, "matrix"), var_names) if job.matrix else []
        if own is None:
            return None
        overridden = fields_set & _REQUEST_SET
        for axis in own:
            if axis.name in overridden:
                self.issues.error(
                    axis.path,
                    path_str(axis.path),
                    f"the job sets {axis.name} itself; use either it or matrix.{axis.name}",
                )
                ok = False
        if top is None:
            return None
        own_names = {a.name for a in own}
        axes = [a for a in top if a.name not in own_names and a.name not in overridden] + own
        return axes if ok else None

    def _check_prompt_parts(self, i: int, job: Job) -> bool:
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
        job: Job,
        axes: list[_Axis],
        templates: rules.Templates,
        default_fields: rules.Fields,
        var_values: dict[str, str],
        requests: RequestRules,
        out: list[JobSpec],
        seen_ids: dict[str, tuple[int, str]],
        seen_names: dict[str, int],
    ) -> None:
        jpath: tuple[Any, ...] = ("jobs", i)
        base = _job_fields(job, default_fields, jpath)
        line = self.job_lines[i] if i < len(self.job_lines) else 0
        shots, repeat, job_name, prompt_path = job.shots, job.repeat, job.name, templates.path
        if axes:
            present = frozenset([*base, *(a.name for a in axes if not a.is_var)])
            combos: Iterable[tuple[Any, str, dict[str, str]]] = self._combos(job_name, axes, base, var_values)
        else:
            present = frozenset(base)
            combos = ((base, job_name, var_values),)
        # With no axis on a field the rules read, every combination has the shape of the first one (when that
        # one passed without a message); only the prompt's length is left to check.
        varies = not axes or any(a.name in COMBINATION_FIELDS for a in axes)
        fixed: RequestShape | None = None
        for fields, variant, vars_now in combos:
            prompt = templates.render(vars_now)
            if fixed is not None:
                shape: RequestShape | None = fixed
                if len(prompt) > fixed.spec.prompt_max_chars:
                    rules.prompt_warning(self.issues, fixed.spec, prompt, prompt_path)
            else:
                shape = requests.shape(fields, present, prompt, prompt_path, jpath, shots)
                if shape is None:
                    continue
                if not varies and requests.remembers(shape):
                    fixed = shape
            assert shape is not None
            seed = fields["seed"][0] if "seed" in fields else None
            for take in range(1, repeat + 1):
                body = shape.body(fields, prompt)
                jid = job_id(body, shape.spec.name, take)
                name = variant if repeat == 1 else f"{variant}_take{take}"
                if not self._claim(jpath, name, jid, line, seen_ids, seen_names):
                    continue
                out.append(
                    JobSpec(
                        jid,
                        name,
                        shape.spec.name,
                        body,
                        shape.size,
                        shape.duration,
                        seed,
                        shape.shot_type,
                        prompt,
                        take,
                        line,
                        shape.tier,
                    )
                )

    def _claim(
        self,
        jpath: tuple[Any, ...],
        name: str,
        job_id: str,
        line: int,
        seen_ids: dict[str, tuple[int, str]],
        seen_names: dict[str, int],
    ) -> bool:
        """Record the job's name and id as taken; False (and the error) when an earlier job has either."""
        if name in seen_names or job_id in seen_ids:
            self._clash(jpath, name, job_id, seen_ids, seen_names)
            return False
        seen_names[name] = line
        seen_ids[job_id] = (line, name)
        return True

    def _clash(
        self,
        jpath: tuple[Any, ...],
        name: str,
        job_id: str,
        seen_ids: dict[str, tuple[int, str]],
        seen_names: dict[str, int],
    ) -> None:
        """Report a job whose name, or else whose id, an earlier job already has."""
        if name in seen_names:
            self.issues.error(
                (*jpath, "name"),
                path_str((*jpath, "name")),
                f"job name {name!r} is used twice (also by the job on line {seen_names[name]})",
            )
            return
        other_line, other_name = seen_ids[job_id]
        self.issues.error(
            jpath,
            path_str(jpath),
            f"job {name!r} makes the same request as {other_name!r} (line {other_line}): same job id; "
            "use repeat for more takes",
        )

    @staticmethod
    def _combos(
        job_name: str, axes: list[_Axis], base: rules.Fields, var_values: dict[str, str]
    ) -> Iterator[tuple[rules.Fields, str, dict[str, str]]]:
        """Each combination of the axes' values: its fields, its name and its vars."""
        multi = any(len(a.values) > 1 for a in axes)
        # Per axis and value, once per job rather than once per combination: the field entry (value, path)
        # and the piece of the name ("" for a one-value axis, which does not rename).
        entries = [[(v, (*a.path, k)) for k, v in enumerate(a.values)] for a in axes]
        pieces = [
            [rules.suffix_part(a.name, v, k, a.is_var) if len(a.values) > 1 else "" for k, v in enumerate(a.values)]
            for a in axes
        ]
        for combo in itertools.product(*(range(len(a.values)) for a in axes)):
            fields = dict(base)
            vars_now = var_values
            suffix: list[str] = []
            for n, k in enumerate(combo):
                axis = axes[n]
                if axis.is_var:
                    if vars_now is var_values:
                        vars_now = dict(var_values)
                    vars_now[axis.name] = axis.values[k]
                else:
                    fields[axis.name] = entries[n][k]
                if pieces[n][k]:
                    suffix.append(pieces[n][k])
            yield fields, ("_".join([job_name, *suffix]) if multi else job_name), vars_now


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


def _line_col(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of character ``index`` of ``text``."""
    index = max(0, min(index, len(text)))
    return text.count("\n", 0, index) + 1, index - (text.rfind("\n", 0, index) + 1) + 1


def _one_line(text: str) -> str:
    return short(" ".join(text.split()), 200)


def short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


__all__ = [
    "MAX_JOBS",
    "MODELS",
    "REQUEST_FIELDS",
    "JobSpec",
    "Manifest",
    "canonical_json",
    "load_manifest",
    "parse_manifest",
    "path_str",
    "resolve_model",
]
