"""The schema of a manifest: strict pydantic models with ``extra="forbid"`` for the top level, the defaults, each
job and each shot. ``validate`` checks the top level, then the defaults and each job apart, so one bad job does
not hide the problems of the others; every message names the field and what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from runner.manifest.issues import IssueSink, Path, path_str, short


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
    """The top level of a manifest file; ``defaults`` and each job are validated on their own, so one bad
    job does not hide the problems of the others."""

    version: int
    name: str | None = None
    defaults: dict[str, Any] = Field(default_factory=dict)
    vars: dict[str, Any] = Field(default_factory=dict)
    matrix: dict[str, list[Any]] = Field(default_factory=dict)
    jobs: list[Any]


#: The keys of the top level, of the request fields (``defaults`` and per job), of a job and of a shot, in the
#: models' order: what an unknown-key message lists.
TOP_KEYS: tuple[str, ...] = tuple(ManifestModel.model_fields)
REQUEST_FIELDS: tuple[str, ...] = tuple(RequestFields.model_fields)
JOB_KEYS: tuple[str, ...] = tuple(JobModel.model_fields)
SHOT_KEYS: tuple[str, ...] = tuple(f.alias or name for name, f in ShotModel.model_fields.items())


@dataclass
class Parts:
    """What the schema let through: each part is None when it had an error (already reported)."""

    version: int | None
    name: str | None
    defaults: RequestFields | None
    vars: dict[str, Any] | None
    matrix: dict[str, list[Any]] | None
    jobs: list[tuple[int, JobModel]]  # the valid jobs, with their index in ``jobs``
    complete: bool  # every part and every job is valid


_M = TypeVar("_M", bound=BaseModel)


def validate(data: Any, sink: IssueSink) -> Parts:
    """Validate the top level, then ``defaults`` and each job apart; report every problem to ``sink``."""
    bad: set[Any] = set()
    try:
        top = ManifestModel.model_validate(data)
        parts: dict[str, Any] = dict(top)
    except ValidationError as e:
        for err in e.errors(include_url=False, include_input=False):
            _report_pydantic(sink, err, ())
            bad.add(err["loc"][0] if err["loc"] else None)
        parts = {}
        for key, info in ManifestModel.model_fields.items():
            if key not in bad:
                parts[key] = data[key] if key in data else info.get_default(call_default_factory=True)
    defaults = _validate_part(RequestFields, parts.get("defaults"), sink, ("defaults",))
    raw_jobs = parts.get("jobs") or []
    jobs: list[tuple[int, JobModel]] = []
    try:  # one call for the whole list is much faster than one per job; per job only to sort out errors
        jobs = list(enumerate(_JOB_LIST.validate_python(raw_jobs)))
    except ValidationError:
        for i, raw in enumerate(raw_jobs):
            job = _validate_part(JobModel, raw, sink, ("jobs", i))
            if job is not None:
                jobs.append((i, job))
    except RecursionError:
        sink.error(("jobs",), "jobs", "a job refers to itself (recursive YAML alias)")
    complete = not bad and defaults is not None and len(jobs) == len(raw_jobs)
    return Parts(
        parts.get("version"), parts.get("name"), defaults, parts.get("vars"), parts.get("matrix"), jobs, complete
    )


_JOB_LIST: TypeAdapter[list[JobModel]] = TypeAdapter(list[JobModel])


def _validate_part(model: type[_M], raw: Any, sink: IssueSink, base: Path) -> _M | None:
    if raw is None:
        return None
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        for err in e.errors(include_url=False, include_input=False):
            _report_pydantic(sink, err, base)
        return None
    except RecursionError:
        sink.error(base, path_str(base), "refers to itself (recursive YAML alias)")
        return None


def _allowed_keys(loc: Path) -> tuple[str, ...] | None:
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


def _report_pydantic(sink: IssueSink, err: Any, base: Path) -> None:
    """Turn one pydantic error into a located issue that names the field and what is allowed."""
    raw_loc = tuple(err["loc"])
    loc = (*base, *(p for p in raw_loc if p != "[key]"))
    kind = err["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc)
        message = f"unknown key {short(repr(loc[-1]))}"
        if allowed:
            message += f"; allowed: {', '.join(allowed)}"
        sink.error_at_key(loc, path_str(loc[:-1]), message)
    elif kind == "missing":
        sink.error(loc[:-1], path_str(loc), "required key is missing")
    elif kind == "invalid_key" or (raw_loc and raw_loc[-1] == "[key]"):
        sink.error(loc, path_str(loc[:-1]), f"keys must be strings, got {short(repr(loc[-1]))}")
    else:
        message = err["msg"]
        if kind.endswith("_type") or kind == "literal_error":
            message = f"{message[0].lower()}{message[1:]}"
        sink.error(loc, path_str(loc), message)
