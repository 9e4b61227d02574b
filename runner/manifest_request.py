"""Request bodies and job ids of expanded jobs, with the model rules checked once per distinct combination.

A 100,000-job manifest has a handful of distinct (model, size, duration, …) combinations; the rules of API.md
§1.3 (``manifest_rules.check_fields``) and the layout of the body depend on those alone. ``RequestRules``
checks a combination once, remembers it when it passed without any message, and for every later job with the
same values only fills in what varies (the prompt, seed, negative prompt, audio URL). A combination that
produced a message is checked again for each job, so every job's message names its own place in the file.
The job id's canonical JSON comes from a per-combination template with a hole per varying value, checked
against the generic encoder when it is made.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
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


# ---------------------------------------------------------------------------------------------- canonical JSON

_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_c_encoder = getattr(json.encoder, "c_make_encoder", None)
_encode_str: Callable[[str], str] = json.encoder.encode_basestring


def _canonical_encoder() -> Callable[[Any], str]:
    """Canonical JSON for job ids: sorted keys, no spaces, UTF-8 text as is.

    ``JSONEncoder.encode`` builds a new C encoder on every call (two Python frames and a dict each time);
    a request body is small, so that overhead was most of the cost at 100,000 jobs. This builds the C encoder
    once, with the same settings (no circular-reference check: a body is a tree built here). Falls back to
    ``JSONEncoder.encode`` on a Python without the C accelerator.
    """
    if _c_encoder is None:
        return _CANONICAL.encode
    make: Any = _c_encoder
    try:  # the C encoder's signature is private; if it ever changes, the check below falls back
        encode = make(None, _CANONICAL.default, _encode_str, None, ":", ",", True, False, True)

        def canonical(body: Any) -> str:
            return "".join(encode(body, 0))

        probe = {"z": [1, 2.5, None, True], "a": {"t–\n": '🎬"'}}
        if canonical(probe) == _CANONICAL.encode(probe):
            return canonical
    except TypeError:
        pass
    return _CANONICAL.encode


canonical_json = _canonical_encoder()


def value_json(value: Any) -> str:
    """``canonical_json`` of one scalar, without the encoder's set-up for the two common types."""
    kind = type(value)
    if kind is str:
        return _encode_str(value)
    if kind is int:
        return int.__repr__(value)
    return canonical_json(value)


# ---------------------------------------------------------------------------------------------- shapes

#: Fields whose values pick the combination (what ``check_fields`` reads, and the rest of the parameters so
#: that the template only has holes for text and seeds).
KEYED = ("model", "size", "duration", "shot_type", "prompt_extend", "watermark", "audio")
#: Fields that vary job to job; the rules read only whether they are set (their values are checked elsewhere).
FREE = ("negative_prompt", "audio_url", "seed")
_UNSET: tuple[None, None] = (None, None)
_PROMPT_SEED = ("prompt", "seed")
_PROMPT = ("prompt",)
_HOLE = "\ue000hole{}\ue000"  # a private-use text that no model or size name contains (and it is checked)


@dataclass(frozen=True, slots=True)
class RequestShape:
    """What a clean combination of values means: the model, effective size and duration, the body's layout,
    and the canonical JSON with ``%s`` for each of ``holes``."""

    spec: ModelSpec
    sent_model: str  # the model as spelled in the region
    size: str
    duration: int
    tier: str
    shot_type: str | None
    inputs: tuple[str, ...]  # input fields besides the prompt, in body order
    params: tuple[str, ...]  # parameters in body order
    holes: tuple[str, ...]  # the varying values in the canonical text's order ("prompt" is one)
    canonical: str | None  # None: the template failed its check, encode each body in full
    #: The parameters but the seed, in order, when the body is just prompt + these + a last seed (the usual
    #: case): then a job's body is a copy of this with its seed, and its canonical text a two-hole format.
    fixed_params: dict[str, Any] | None = None

    def body(self, fields: Fields, prompt: str) -> dict[str, Any]:
        inputs: dict[str, Any] = {"prompt": prompt}
        for name in self.inputs:
            inputs[name] = fields[name][0]
        if not self.params:
            return {"model": self.sent_model, "input": inputs}
        return {"model": self.sent_model, "input": inputs, "parameters": {n: fields[n][0] for n in self.params}}

    def make(self, fields: Fields, prompt: str) -> tuple[dict[str, Any], str]:
        """The body of the job and its canonical JSON (model spelled canonically: what the job id hashes)."""
        fixed = self.fixed_params
        if fixed is not None:
            params = fixed.copy()
            body = {"model": self.sent_model, "input": {"prompt": prompt}, "parameters": params}
            if self.holes == _PROMPT_SEED:
                seed = params["seed"] = fields["seed"][0]
                seed_json = int.__repr__(seed) if type(seed) is int else value_json(seed)
                return body, self.canonical % (_encode_str(prompt), seed_json)  # type: ignore[operator]
            return body, self.canonical % (_encode_str(prompt),)  # type: ignore[operator]
        inputs: dict[str, Any] = {"prompt": prompt}
        for name in self.inputs:
            inputs[name] = fields[name][0]
        if self.params:
            body = {"model": self.sent_model, "input": inputs, "parameters": {n: fields[n][0] for n in self.params}}
        else:
            body = {"model": self.sent_model, "input": inputs}
        holes = self.holes
        if self.canonical is None:
            return body, canonical_json({**body, "model": self.spec.name})
        if holes == _PROMPT_SEED:  # the common cases, without the loop
            return body, self.canonical % (_encode_str(prompt), value_json(fields["seed"][0]))
        if holes == _PROMPT:
            return body, self.canonical % (_encode_str(prompt),)
        return body, self.canonical_of(fields, prompt, body)

    def canonical_of(self, fields: Fields, prompt: str, body: dict[str, Any]) -> str:
        """The canonical JSON of ``body`` with the model spelled canonically (what the job id hashes)."""
        holes = self.holes
        if self.canonical is None:
            return canonical_json({**body, "model": self.spec.name})
        if holes == _PROMPT_SEED:  # the common cases, without the loop
            return self.canonical % (_encode_str(prompt), value_json(fields["seed"][0]))
        if holes == _PROMPT:
            return self.canonical % (_encode_str(prompt),)
        return self.canonical % tuple(
            [_encode_str(prompt) if h == "prompt" else value_json(fields[h][0]) for h in holes]
        )


class RequestRules:
    """``check_request`` with memory, for one load: see the module docstring."""

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
        probe = _Probe(self.sink)
        checked = check_fields(probe, self.region, fields, jpath, shots)
        if checked is not None:
            prompt_warning(self.sink, checked[0], prompt, prompt_path)
        if checked is None or not checked[1]:
            return None
        shape = _make_shape(checked[0], self.region, fields, prompt)
        if not probe.reported:
            self._clean[key] = shape
            self._remembered.add(id(shape))
        return shape


class _Probe:
    """Passes messages on to the sink and notes that there was one (such a combination is not remembered)."""

    def __init__(self, sink: IssueSink) -> None:
        self.sink, self.reported = sink, False

    def error(self, path: Path, field: str, message: str) -> None:
        self.reported = True
        self.sink.error(path, field, message)

    def warning(self, path: Path, field: str, message: str) -> None:
        self.reported = True
        self.sink.warning(path, field, message)


def _make_shape(spec: ModelSpec, region: str, fields: Fields, prompt: str) -> RequestShape:
    inputs = tuple(n for n in INPUT_FIELDS if n in fields)
    params = tuple(n for n in PARAMETER_ORDER if n in fields)
    size = fields["size"][0] if "size" in fields else spec.default_size
    duration = fields["duration"][0] if "duration" in fields else spec.default_duration
    shot_type = fields["shot_type"][0] if "shot_type" in fields else None
    holes = ("prompt", *(n for n in FREE if n in fields))
    # The canonical text with a marker for each varying value, then the markers made into %s holes.
    marked: Fields = {**fields, **{h: (_HOLE.format(h), ()) for h in holes if h != "prompt"}}
    shape = RequestShape(spec, spec.name_in(region), size, duration, tier(size), shot_type, inputs, params, holes, None)
    text = canonical_json({**shape.body(marked, _HOLE.format("prompt")), "model": spec.name}).replace("%", "%%")
    order = sorted(holes, key=lambda h: text.find(_encode_str(_HOLE.format(h))))
    for h in holes:
        marker = _encode_str(_HOLE.format(h))
        if text.count(marker) != 1:
            return shape
        text = text.replace(marker, "%s")
    quick = not inputs and params and ("seed" not in params or params[-1] == "seed")
    fixed = {n: fields[n][0] for n in params if n != "seed"} if quick else None
    made = replace(shape, holes=tuple(order), canonical=text, fixed_params=fixed)
    body = shape.body(fields, prompt)
    if made.make(fields, prompt) != (body, shape.canonical_of(fields, prompt, body)):  # pragma: no cover
        return shape
    return made
