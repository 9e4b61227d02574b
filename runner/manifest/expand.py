"""Expansion: the validated manifest checked against every rule and turned into its ``JobSpec``s.

Each job expands over its matrix axes (the top level's it does not set itself, then its own) and its
``repeat``; each expanded job gets its fields (defaults, then the job's own, then the axes' values), its
prompt, its combination checked by ``RequestRules`` (once per distinct combination), its local audio file
checked (``runner.manifest.audio``, once per file), its request body (``build_request``, the one place a body is
made), its id (``job_id``, the one place an id is made) and a name. Names and ids must be unique. Every problem is
reported to the ``IssueSink``; the caller raises them.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Iterable, Iterator
from hashlib import sha256
from pathlib import Path as FsPath
from typing import Any

from runner.errors import ManifestError
from runner.manifest.audio import AudioFiles, LocalAudio, is_local
from runner.manifest.format_rules import Axis, check_axes, check_job, check_vars, manifest_name
from runner.manifest.issues import IssueSink, Path, path_str
from runner.manifest.rules import COMBINATION_FIELDS, Combination, Fields, RequestRules, check_values, prompt_warning
from runner.manifest.schema import REQUEST_FIELDS, JobModel, Parts, RequestFields
from runner.manifest.spec import JobSpec
from runner.manifest.templates import Templates, job_templates
from runner.models import REGIONS, UPLOAD_REGIONS

#: A manifest may expand to at most this many jobs (a typo in a matrix should not eat the machine).
MAX_JOBS = 250_000

_REQUEST_SET = frozenset(REQUEST_FIELDS)
#: Canonical JSON, what job ids hash: sorted keys, no spaces, UTF-8 text as it is. No circular-reference check
#: (a public option of the encoder): what it encodes is a tree built here.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, check_circular=False)


def canonical_json(value: Any) -> str:
    """``value`` as canonical JSON (sorted keys, compact, UTF-8 text as it is)."""
    return _CANONICAL.encode(value)


def job_id(request: dict[str, Any], model: str, take: int, audio_sha256: str | None = None) -> str:
    """The stable job id (the one place it is made): sha256 of the request's canonical JSON, with the model
    spelled canonically (so the id does not depend on the region), and the take. A local audio file stands in
    the request as ``"sha256:<its SHA-256>"`` (``audio_sha256``): its content, not where it lives nor the
    temporary URL a run uploads it to, so a re-upload or a resume never makes a new job."""
    if request["model"] != model:
        request = {**request, "model": model}
    if audio_sha256 is not None:
        request = {**request, "input": {**request["input"], "audio_url": f"sha256:{audio_sha256}"}}
    canonical = canonical_json(request)
    return sha256(f'{{"request":{canonical},"take":{take},"v":1}}'.encode()).hexdigest()[:32]


def build_request(combination: Combination, fields: Fields, prompt: str) -> dict[str, Any]:
    """The job's request body, the exact POST body for the region (the one place a body is made): the model as
    the region spells it, the prompt and inputs, the parameters in the API's order."""
    inputs: dict[str, Any] = {"prompt": prompt}
    for name in combination.inputs:
        inputs[name] = fields[name][0]
    if not combination.params:
        return {"model": combination.sent_model, "input": inputs}
    params = {name: fields[name][0] for name in combination.params}
    return {"model": combination.sent_model, "input": inputs, "parameters": params}


def expand(
    parts: Parts,
    sink: IssueSink,
    job_lines: list[int],
    region: str,
    default_name: str,
    base_dir: FsPath | None = None,
    also: tuple[str, ...] = (),
) -> tuple[str, list[JobSpec]]:
    """The manifest's name and its jobs; every problem goes to ``sink`` (``ManifestError`` at once only when the
    manifest would expand to more than ``MAX_JOBS``). ``job_lines[i]`` is the line of job ``i``; relative local
    audio files are read from ``base_dir`` (default: the current folder); ``also``: the regions of the run's other
    accounts (a model offered in one of them is valid)."""
    return _Expansion(parts, sink, job_lines, region, base_dir or FsPath.cwd(), also).run(default_name)


class _Expansion:
    """One manifest's expansion: the names and ids taken so far, and the rules' memory of combinations."""

    def __init__(
        self, parts: Parts, sink: IssueSink, job_lines: list[int], region: str, base_dir: FsPath, also: tuple[str, ...]
    ) -> None:
        self.parts, self.sink, self.job_lines, self.region = parts, sink, job_lines, region
        self.requests = RequestRules(sink, region, also)
        self.audio = AudioFiles(base_dir)
        self.names: dict[str, int] = {}  # name -> line of the job that has it
        self.ids: dict[str, tuple[int, str]] = {}  # id -> line and name of the job that has it

    def run(self, default_name: str) -> tuple[str, list[JobSpec]]:
        p, sink = self.parts, self.sink
        if p.version is not None and p.version != 1:
            sink.error(("version",), "version", f"unsupported manifest version {p.version!r}; allowed: 1")
        name = manifest_name(sink, p.name, default_name)
        var_values, vars_ok = check_vars(sink, p.vars or {})
        if p.defaults is not None:
            check_values(sink, p.defaults, ("defaults",))
        top_axes = check_axes(sink, p.matrix, ("matrix",), set(var_values)) if p.matrix is not None else None
        if p.complete and not p.jobs:
            sink.error(("jobs",), "jobs", "at least one job is required")
        planned = 0
        plans: list[tuple[int, JobModel, list[Axis], Templates]] = []
        declared = {k for k in (p.vars or {}) if isinstance(k, str)}
        var_names = set(var_values)
        for i, job in p.jobs:
            axes = check_job(sink, i, job, top_axes, var_names)
            templates = None
            if (job.prompt is None) != (job.shots is None):  # else already reported
                templates = job_templates(sink, job, ("jobs", i), declared)
            if axes is None or templates is None:
                continue
            planned += (math.prod([len(a.values) for a in axes]) if axes else 1) * max(job.repeat, 1)
            plans.append((i, job, axes, templates))
        if planned > MAX_JOBS:
            sink.error(("jobs",), "jobs", f"the manifest expands to {planned:,} jobs; at most {MAX_JOBS:,}")
            raise ManifestError(sink.errors())
        jobs: list[JobSpec] = []
        if p.defaults is not None and vars_ok and top_axes is not None and p.vars is not None:
            default_fields = _default_fields(p.defaults)
            # Consumed front to back so each job's model is freed once it is expanded: with 100,000 jobs the
            # models and the JobSpecs would otherwise all be alive at the peak (~80 MB more).
            p.jobs.clear()
            plans.reverse()
            while plans:
                i, job, axes, templates = plans.pop()
                self._expand_job(i, job, axes, templates, default_fields, var_values, jobs)
        return name, jobs

    def _expand_job(
        self,
        i: int,
        job: JobModel,
        axes: list[Axis],
        templates: Templates,
        default_fields: Fields,
        var_values: dict[str, str],
        out: list[JobSpec],
    ) -> None:
        jpath: Path = ("jobs", i)
        base = _job_fields(job, default_fields, jpath)
        line = self.job_lines[i] if i < len(self.job_lines) else 0
        shots, repeat, prompt_path = job.shots, job.repeat, templates.path
        variants: Iterable[tuple[Fields, str, dict[str, str]]]
        variants = _variants(job.name, axes, base, var_values) if axes else ((base, job.name, var_values),)
        # With no axis on a field the rules read, every variant has the combination of the first one (when that
        # one passed without a message); only the prompt's length is left to check.
        same_combination = bool(axes) and not any(a.name in COMBINATION_FIELDS for a in axes)
        fixed: Combination | None = None
        for fields, variant, vars_now in variants:
            audio, audio_ok = self._local_audio(fields)
            prompt = templates.render(vars_now)
            if fixed is not None:
                combination = fixed
                if len(prompt) > fixed.spec.prompt_max_chars:
                    prompt_warning(self.sink, fixed.spec, prompt, prompt_path)
            else:
                checked = self.requests.check(fields, prompt, prompt_path, jpath, shots)
                if checked is None:
                    continue
                combination = checked
                if same_combination and self.requests.remembers(combination):
                    fixed = combination
            if not audio_ok:
                continue
            if audio is not None:  # the body carries the file's absolute file:// URL; its content makes the id
                fields = {**fields, "audio_url": (audio.uri, fields["audio_url"][1])}
            seed = fields["seed"][0] if "seed" in fields else None
            for take in range(1, repeat + 1):
                request = build_request(combination, fields, prompt)
                jid = job_id(request, combination.spec.name, take, audio.sha256 if audio is not None else None)
                name = variant if repeat == 1 else f"{variant}_take{take}"
                if self._claim(jpath, name, jid, line):
                    out.append(
                        JobSpec(
                            jid,
                            name,
                            combination.spec.name,
                            request,
                            combination.size,
                            combination.duration,
                            seed,
                            combination.shot_type,
                            prompt,
                            take,
                            line,
                            combination.tier,
                            audio,
                        )
                    )

    def _local_audio(self, fields: Fields) -> tuple[LocalAudio | None, bool]:
        """The local audio file the job names, checked once per file: (it, True); (None, True) when the job names
        none (or a URL); (None, False) when the file is wrong (reported at the place that names it)."""
        entry = fields.get("audio_url")
        if entry is None or not is_local(entry[0]):
            return None, True
        audio = self.audio.check(self.sink, entry[0], entry[1])
        if audio is not None and self.region not in UPLOAD_REGIONS:
            where = ", ".join(f"{r} ({REGIONS[r].title})" for r in UPLOAD_REGIONS)
            self.sink.warning(
                entry[1],
                path_str(entry[1]),
                f"a local file is uploaded to DashScope's temporary storage, which the vendor documents for {where} "
                f"only; in {self.region} the upload may be refused (host the file at an https:// URL instead)",
            )
        return audio, audio is not None

    def _claim(self, jpath: Path, name: str, jid: str, line: int) -> bool:
        """Record the job's name and id as taken; False (and the error) when an earlier job has either."""
        names, ids = self.names, self.ids
        if name not in names and jid not in ids:
            names[name] = line
            ids[jid] = (line, name)
            return True
        if name in names:
            self.sink.error(
                (*jpath, "name"),
                path_str((*jpath, "name")),
                f"job name {name!r} is used twice (also by the job on line {names[name]})",
            )
        else:
            other_line, other_name = ids[jid]
            self.sink.error(
                jpath,
                path_str(jpath),
                f"job {name!r} makes the same request as {other_name!r} (line {other_line}): same job id; "
                "use repeat for more takes",
            )
        return False


def _default_fields(defaults: RequestFields) -> Fields:
    """The defaults that are set, each with its path."""
    return {key: (value, ("defaults", key)) for key in REQUEST_FIELDS if (value := getattr(defaults, key)) is not None}


def _job_fields(job: JobModel, default_fields: Fields, jpath: Path) -> Fields:
    """The manifest's defaults with the job's own request fields over them (an explicit null removes one)."""
    fields = dict(default_fields)
    for name in job.model_fields_set & _REQUEST_SET:
        value = getattr(job, name)
        if value is None:
            fields.pop(name, None)
        else:
            fields[name] = (value, (*jpath, name))
    return fields


def _variants(
    job_name: str, axes: list[Axis], base: Fields, var_values: dict[str, str]
) -> Iterator[tuple[Fields, str, dict[str, str]]]:
    """Each combination of the axes' values: its fields, its name and its vars."""
    multi = any(len(a.values) > 1 for a in axes)
    # Per axis and value, once per job rather than once per variant: the field entry (value, path) and the
    # piece of the name ("" for a one-value axis, which does not rename).
    entries = [[(v, (*a.path, k)) for k, v in enumerate(a.values)] for a in axes]
    pieces = [[_suffix_part(a.name, v, k) if len(a.values) > 1 else "" for k, v in enumerate(a.values)] for a in axes]
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


def _suffix_part(name: str, value: Any, index: int) -> str:
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
