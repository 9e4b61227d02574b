"""The API's rules for a request (API.md §1.3): what each model takes (sizes, durations, shot type, audio), the
ranges of seeds and texts, and the region's offer; checked once per distinct combination of request values.

A 100,000-job manifest has a handful of distinct (model, size, duration, …) combinations, and the rules and
the layout of the body depend on those alone. ``RequestRules`` checks a combination once and remembers it
when it passed without any message; every later job with the same values reuses it (only its prompt length is
checked again). A combination that produced a message is checked again for each job, so every job's message
names its own place in the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runner.manifest.audio import scheme_ok
from runner.manifest.issues import IssueSink, Path, path_str, short
from runner.manifest.schema import RequestFields, ShotModel
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

#: Order of ``parameters`` in the request body (the SDK's capture, API.md §7.4), and the inputs beside the prompt.
PARAMETER_ORDER = ("size", "duration", "prompt_extend", "watermark", "shot_type", "seed", "audio")
INPUT_FIELDS = ("negative_prompt", "audio_url")
#: The fields with a rule of their own, whatever the model (``check_value``).
VALUE_RULES = frozenset({"seed", "audio_url", "negative_prompt"})

#: An expanded job's request fields: each value with the path where it was written (for messages).
Fields = dict[str, tuple[Any, Path]]

_TIER_OF_SIZE = {size: t for t, sizes in TIER_SIZES.items() for size in sizes}
#: Each model's sizes as a set (``ModelSpec.sizes`` builds a tuple on every call).
_SIZES = {name: frozenset(spec.sizes) for name, spec in MODELS.items()}


def tier(size: str) -> str:
    """The resolution tier of ``size`` ("" for an unknown size), by one dict look-up: it runs per job."""
    return _TIER_OF_SIZE.get(size, "")


# ---------------------------------------------------------------------------------------------- values


def value_ok(name: str, value: Any) -> bool:
    """Whether ``check_value`` would pass ``value`` without a message (a quick test that needs no path)."""
    if name == "seed":
        return bool(SEED_MIN <= value <= SEED_MAX)
    if name == "audio_url":
        return scheme_ok(value)
    if name == "negative_prompt":
        return len(value) <= NEGATIVE_PROMPT_MAX_CHARS
    return True


def check_value(sink: IssueSink, name: str, value: Any, path: Path) -> bool:
    """Rules on one value that hold whatever the model: seed range, audio_url scheme, text lengths. (A local audio
    file is checked itself where jobs are expanded: ``runner.manifest.audio``.)"""
    if name == "seed" and not SEED_MIN <= value <= SEED_MAX:
        sink.error(path, path_str(path), f"seed must be an integer from {SEED_MIN} to {SEED_MAX}")
        return False
    if name == "audio_url" and not scheme_ok(value):
        sink.error(
            path,
            path_str(path),
            "audio_url must be an http://, https:// or oss:// URL, or a local wav or mp3 file (a path relative to "
            "the manifest, or a file:// URL)",
        )
        return False
    if name == "negative_prompt" and len(value) > NEGATIVE_PROMPT_MAX_CHARS:
        sink.warning(
            path,
            path_str(path),
            f"negative_prompt is {len(value)} characters; the API keeps the first {NEGATIVE_PROMPT_MAX_CHARS} "
            "and silently drops the rest",
        )
    return True


def check_values(sink: IssueSink, fields: RequestFields, path: Path, fields_set: set[str] | None = None) -> None:
    """``check_value`` on the values ``defaults`` or a job sets (``fields_set``: the fields written)."""
    for name in (fields.model_fields_set if fields_set is None else fields_set) & VALUE_RULES:
        value = getattr(fields, name)
        if value is not None and not value_ok(name, value):
            check_value(sink, name, value, (*path, name))


# ---------------------------------------------------------------------------------------------- per model


def prompt_warning(sink: IssueSink, spec: ModelSpec, prompt: str, prompt_path: Path) -> None:
    if len(prompt) > spec.prompt_max_chars:
        sink.warning(
            prompt_path,
            path_str(prompt_path),
            f"the prompt is {len(prompt)} characters; {spec.name} keeps the first {spec.prompt_max_chars} "
            "and silently drops the rest",
        )


def check_fields(
    sink: IssueSink,
    region: str,
    fields: Fields,
    jpath: Path,
    shots: list[ShotModel] | None,
    also: tuple[str, ...] = (),
) -> tuple[ModelSpec, bool] | None:
    """The rules of API.md §1.3 for one job, but the prompt length: the model and whether every other rule held,
    or None when there is no usable model. ``also``: the regions of a run's other accounts (issue 18), where a
    model not offered in ``region`` may be sent instead."""
    if "model" not in fields:
        allowed = ", ".join(MODELS)
        sink.error(jpath, path_str((*jpath, "model")), f"no model: set model in defaults or in the job ({allowed})")
        return None
    model_name, model_path = fields["model"]
    spec = resolve_model(model_name)
    if spec is None:
        sink.error(
            model_path,
            path_str(model_path),
            f"unknown model {short(repr(model_name))}; allowed: {', '.join(all_model_names())}",
        )
        return None
    ok = True
    if region not in spec.prices and not any(r in spec.prices for r in also):
        offered = [m.name_in(region) for m in MODELS.values() if region in m.prices]
        where = f"{region} ({REGIONS[region].title})" + "".join(f" or {r}" for r in also)
        there = f"in {region}" if also else "there"
        sink.error(model_path, path_str(model_path), f"{spec.name} is not offered in {where}; offered {there}: "
                   f"{', '.join(offered)}")  # fmt: skip
        ok = False
    if "size" in fields:
        size, path = fields["size"]
        if size not in _SIZES[spec.name]:
            what = "is not allowed for" if tier_of(size) else "is not a size of"
            sink.error(
                path, path_str(path), f"size {short(repr(size))} {what} {spec.name}; allowed: {', '.join(spec.sizes)}"
            )
            ok = False
    duration = spec.default_duration
    if "duration" in fields:
        duration, path = fields["duration"]
        if duration not in spec.durations:
            sink.error(
                path,
                path_str(path),
                f"duration {duration} is not allowed for {spec.name}; allowed: {spec.describe_durations()}",
            )
            ok = False
    if shots and shots[-1].to != duration:
        path = (*jpath, "shots", len(shots) - 1, "to")
        whose = "" if "duration" in fields else f" ({spec.name}'s default; set duration)"
        sink.error(
            path, path_str(path), f"the last shot ends at {shots[-1].to} s but the job lasts {duration} s{whose}"
        )
        ok = False
    for name in ("shot_type", "audio_url", "audio"):
        if name in fields and not getattr(spec, "shot_type" if name == "shot_type" else "audio_url"):
            path = fields[name][1]
            takers = [
                m.name for m in MODELS.values() if getattr(m, "shot_type" if name == "shot_type" else "audio_url")
            ]
            sink.error(path, path_str(path), f"{spec.name} does not take {name}; only {', '.join(takers)} do")
            ok = False
    if "shot_type" in fields and "prompt_extend" in fields and fields["prompt_extend"][0] is False:
        path = fields["shot_type"][1]
        sink.warning(path, path_str(path), "shot_type takes effect only when prompt_extend is true")
    return spec, ok


# ---------------------------------------------------------------------------------------------- per combination


@dataclass(frozen=True, slots=True)
class Combination:
    """What a checked combination of request values means: the model, effective size and duration, and which
    inputs and parameters the request body carries, in the body's order."""

    spec: ModelSpec
    sent_model: str  # the model as spelled in the region
    size: str
    duration: int
    tier: str
    shot_type: str | None
    inputs: tuple[str, ...]  # input fields besides the prompt, in body order
    params: tuple[str, ...]  # parameters in body order


#: The fields whose values pick the combination: what ``check_fields`` reads, and the other parameters.
COMBINATION_FIELDS = ("model", "size", "duration", "shot_type", "prompt_extend", "watermark", "audio")
_NOT_SET: tuple[None, None] = (None, None)


class RequestRules:
    """``check_fields`` once per distinct combination, for one load: see the module docstring."""

    def __init__(self, sink: IssueSink, region: str, also: tuple[str, ...] = ()) -> None:
        self.sink, self.region, self.also = sink, region, also
        self._clean: dict[tuple[Any, ...], Combination] = {}
        self._remembered: set[int] = set()  # ids of the combinations in _clean (kept alive there)

    def remembers(self, combination: Combination) -> bool:
        """Whether ``combination`` passed without any message: then any job with the same values has it too."""
        return id(combination) in self._remembered

    def check(
        self, fields: Fields, prompt: str, prompt_path: Path, jpath: Path, shots: list[ShotModel] | None
    ) -> Combination | None:
        """The job's combination, or None when it breaks a rule (reported)."""
        get = fields.get
        key = (
            get("model", _NOT_SET)[0],
            get("size", _NOT_SET)[0],
            get("duration", _NOT_SET)[0],
            get("shot_type", _NOT_SET)[0],
            get("prompt_extend", _NOT_SET)[0],
            get("watermark", _NOT_SET)[0],
            get("audio", _NOT_SET)[0],
            "negative_prompt" in fields,
            "audio_url" in fields,
            "seed" in fields,
            shots[-1].to if shots else None,
        )
        combination = self._clean.get(key)
        if combination is not None:
            if len(prompt) > combination.spec.prompt_max_chars:
                prompt_warning(self.sink, combination.spec, prompt, prompt_path)
            return combination
        reported = self.sink.reported
        checked = check_fields(self.sink, self.region, fields, jpath, shots, self.also)
        clean = self.sink.reported == reported
        if checked is not None:
            prompt_warning(self.sink, checked[0], prompt, prompt_path)
        if checked is None or not checked[1]:
            return None
        spec = checked[0]
        size = fields["size"][0] if "size" in fields else spec.default_size
        combination = Combination(
            spec,
            spec.name_in(self.region),
            size,
            fields["duration"][0] if "duration" in fields else spec.default_duration,
            tier(size),
            fields["shot_type"][0] if "shot_type" in fields else None,
            tuple(n for n in INPUT_FIELDS if n in fields),
            tuple(n for n in PARAMETER_ORDER if n in fields),
        )
        if clean:
            self._clean[key] = combination
            self._remembered.add(id(combination))
        return combination
