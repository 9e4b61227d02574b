"""Request bodies of expanded jobs, with the model rules checked once per distinct combination.

A 100,000-job manifest has a handful of distinct (model, size, duration, …) combinations; the rules of API.md
§1.3 (``manifest_rules.check_fields``) and the layout of the body depend on those alone. ``RequestRules``
checks a combination once and remembers it when it passed without any message; every later job with the
same values reuses it and only its own values (prompt, seed, negative prompt, audio URL) go into its body. A
combination that produced a message is checked again for each job, so every job's message names its own
place in the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runner.manifest_rules import (
    INPUT_FIELDS,
    PARAMETER_ORDER,
    Fields,
    IssueSink,
    Path,
    check_fields,
    prompt_warning,
    tier,
)
from runner.models import ModelSpec

if TYPE_CHECKING:
    from runner.manifest_shape import ShotModel

#: Canonical JSON, what job ids hash: sorted keys, no spaces, UTF-8 text as it is. No circular-reference check
#: (a public option): what it encodes is a tree built here.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, check_circular=False)


def canonical_json(value: Any) -> str:
    """``value`` as canonical JSON (sorted keys, compact, UTF-8 text as it is)."""
    return _CANONICAL.encode(value)


#: Fields whose values pick the combination: what ``check_fields`` reads, and the other parameters.
COMBINATION_FIELDS = ("model", "size", "duration", "shot_type", "prompt_extend", "watermark", "audio")
_UNSET: tuple[None, None] = (None, None)


@dataclass(frozen=True, slots=True)
class RequestShape:
    """What a checked combination of values means: the model, effective size and duration, and which inputs
    and parameters the body carries, in the body's order."""

    spec: ModelSpec
    sent_model: str  # the model as spelled in the region
    size: str
    duration: int
    tier: str
    shot_type: str | None
    inputs: tuple[str, ...]  # input fields besides the prompt, in body order
    params: tuple[str, ...]  # parameters in body order

    def body(self, fields: Fields, prompt: str) -> dict[str, Any]:
        """The job's request body: the exact POST body for the region (the one place a body is made)."""
        inputs: dict[str, Any] = {"prompt": prompt}
        for name in self.inputs:
            inputs[name] = fields[name][0]
        if not self.params:
            return {"model": self.sent_model, "input": inputs}
        return {"model": self.sent_model, "input": inputs, "parameters": {n: fields[n][0] for n in self.params}}


class RequestRules:
    """``check_fields`` with memory, for one load: see the module docstring."""

    def __init__(self, sink: IssueSink, region: str) -> None:
        self.sink, self.region = sink, region
        self._clean: dict[tuple[Any, ...], RequestShape] = {}
        self._remembered: set[int] = set()  # ids of the shapes in _clean (kept alive there)

    def remembers(self, shape: RequestShape) -> bool:
        """Whether ``shape`` passed without any message: then any job with the same values has it too."""
        return id(shape) in self._remembered

    def shape(
        self,
        fields: Fields,
        present: frozenset[str],
        prompt: str,
        prompt_path: Path,
        jpath: Path,
        shots: list[ShotModel] | None,
    ) -> RequestShape | None:
        """The job's shape, or None when it has an error (reported). ``present`` is ``frozenset(fields)``."""
        get = fields.get
        key = (
            present,
            get("model", _UNSET)[0],
            get("size", _UNSET)[0],
            get("duration", _UNSET)[0],
            get("shot_type", _UNSET)[0],
            get("prompt_extend", _UNSET)[0],
            get("watermark", _UNSET)[0],
            get("audio", _UNSET)[0],
            shots[-1].to if shots else None,
        )
        shape = self._clean.get(key)
        if shape is not None:
            if len(prompt) > shape.spec.prompt_max_chars:
                prompt_warning(self.sink, shape.spec, prompt, prompt_path)
            return shape
        reported = self.sink.reported
        checked = check_fields(self.sink, self.region, fields, jpath, shots)
        clean = self.sink.reported == reported
        if checked is not None:
            prompt_warning(self.sink, checked[0], prompt, prompt_path)
        if checked is None or not checked[1]:
            return None
        spec = checked[0]
        size = fields["size"][0] if "size" in fields else spec.default_size
        shape = RequestShape(
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
            self._clean[key] = shape
            self._remembered.add(id(shape))
        return shape
