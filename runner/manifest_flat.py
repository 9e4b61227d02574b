"""Jobs of plain scalar fields, made without pydantic: the bulk of a 100,000-job manifest.

A job written out as ``name``, ``prompt``, ``seed``… (no ``shots``, no ``matrix``) whose every value already has
exactly the type ``manifest.JobModel`` accepts in strict mode needs no validation: pydantic would hand back
the same values. ``flat_job`` recognises such an entry with a few type checks and wraps it in a ``FlatJob``,
which reads like a ``JobModel`` to the expander, about three times faster than pydantic builds the model. Any
entry it does not recognise, including every invalid one, goes through pydantic as before, so messages are
unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runner.manifest_shape import ShotModel

_NONE = type(None)
_TEXT: frozenset[type] = frozenset({str, _NONE})
_NUMBER: frozenset[type] = frozenset({int, _NONE})  # exactly int: strict mode refuses a bool for an int
_SWITCH: frozenset[type] = frozenset({bool, _NONE})

#: Every key a flat job may have, with the exact types strict ``JobModel`` takes for it.
_TYPES: dict[str, frozenset[type]] = {
    "name": frozenset({str}),
    "prompt": _TEXT,
    "intro": _TEXT,
    "repeat": frozenset({int}),
    "model": _TEXT,
    "size": _TEXT,
    "duration": _NUMBER,
    "shot_type": _TEXT,  # and one of the two literals, checked apart
    "prompt_extend": _SWITCH,
    "watermark": _SWITCH,
    "negative_prompt": _TEXT,
    "seed": _NUMBER,
    "audio_url": _TEXT,
    "audio": _SWITCH,
}
_SHOT_TYPES = (None, "single", "multi")


class FlatJob:
    """A ``JobModel`` look-alike over a checked dict: its keys become attributes, the class gives the rest
    their defaults, and ``model_fields_set`` is the keys written, as pydantic records it."""

    name: str
    prompt: str | None = None
    intro: str | None = None
    shots: list[ShotModel] | None = None
    repeat: int = 1
    matrix: dict[str, list[Any]] | None = None
    model: str | None = None
    size: str | None = None
    duration: int | None = None
    shot_type: str | None = None
    prompt_extend: bool | None = None
    watermark: bool | None = None
    negative_prompt: str | None = None
    seed: int | None = None
    audio_url: str | None = None
    audio: bool | None = None

    def __init__(self, raw: dict[str, Any]) -> None:
        self.__dict__.update(raw)
        self.model_fields_set = set(raw)


def flat_job(raw: Any) -> FlatJob | None:
    """``raw`` as a ``FlatJob`` when strict ``JobModel`` would take it as it is and it has neither shots nor a
    matrix; else None (pydantic decides)."""
    return FlatJobs().make(raw)


class FlatJobs:
    """``flat_job`` for the entries of one manifest: the verdict on the keys and value types of an entry is
    remembered (100,000 jobs have a handful of layouts), so each entry costs two tuples and a look-up."""

    def __init__(self) -> None:
        self._layouts: dict[tuple[tuple[Any, ...], tuple[type, ...]], bool] = {}

    def make(self, raw: Any) -> FlatJob | None:
        if type(raw) is not dict and not isinstance(raw, dict):
            return None
        layout = (tuple(raw), tuple(map(type, raw.values())))
        ok = self._layouts.get(layout)
        if ok is None:
            ok = self._layouts[layout] = layout_ok(layout[0], layout[1])
        if not ok or raw.get("shot_type") not in _SHOT_TYPES:
            return None
        return FlatJob(raw)


def layout_ok(keys: tuple[Any, ...], kinds: tuple[type, ...]) -> bool:
    """Whether an entry with these keys and these types of values is a flat job (``shot_type`` aside)."""
    if "name" not in keys:
        return False
    for key, kind in zip(keys, kinds, strict=True):
        allowed = _TYPES.get(key) if type(key) is str else None
        if allowed is None or kind not in allowed:
            return False
    return True
