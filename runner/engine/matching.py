"""Which requests the server cannot tell apart, and whether a task is the one a request made.

The one definition reconcile and the submitter share (issue 13). A task's answer and the task list show
only part of a request (API.md §2, §3.1): the model, the prompt as sent (``orig_prompt``, silently truncated
to the model's limit), and the size and duration (``usage``). The seed, ``negative_prompt``, ``watermark``,
``shot_type``, ``prompt_extend`` and ``audio_url`` are never echoed. Two jobs that differ only there — the
seeds of a seed sweep — are *look-alikes*: given a task, nothing proves which of them made it. Hence:

* ``lookalike_key`` names the group of look-alike jobs; the submitter lets at most one create of a group be
  unanswered at any moment, so a lost answer always has exactly one owner to look for;
* ``matches`` is the rule reconcile adopts by: the same model, size and duration, and the same prompt once
  both are normalised (``normal_prompt``: Unicode NFC, whitespace runs folded to one space, ends trimmed)
  and the sent one cut to the model's limit, since the server truncates silently and may normalise what it
  echoes.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping
from typing import Any, Protocol

from runner.models import resolve_model

__all__ = ["ECHOED_FIELDS", "lookalike_key", "matches", "normal_prompt", "same_prompt"]

#: The request fields a task's answer or the task list shows (API.md §2, §3.1); every other field is invisible.
ECHOED_FIELDS = ("model", "input.prompt", "parameters.size", "parameters.duration")

_SPACE = re.compile(r"\s+")


class _Spec(Protocol):
    @property
    def model(self) -> str: ...
    @property
    def request(self) -> dict[str, Any]: ...
    @property
    def size(self) -> str: ...
    @property
    def duration(self) -> int: ...


def normal_prompt(text: str) -> str:
    """A prompt as compared: NFC, every whitespace run one space, no leading or trailing space."""
    return _SPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


def _limit(model: str) -> int | None:
    spec = resolve_model(model)
    return spec.prompt_max_chars if spec is not None else None


def _sent_prompt(spec: _Spec) -> str:
    inp = spec.request.get("input")
    return str(inp.get("prompt", "")) if isinstance(inp, Mapping) else ""


def same_prompt(model: str, sent: str, seen: str) -> bool:
    """True when ``seen`` (the server's echo) is the prompt ``sent``: equal once normalised, or equal to the
    sent prompt cut to the model's limit (the server truncates an over-long prompt silently, API.md §1.3)."""
    if seen == sent:
        return True
    a, b = normal_prompt(sent), normal_prompt(seen)
    if a == b:
        return True
    limit = _limit(model)
    return limit is not None and len(sent) > limit and normal_prompt(sent[:limit]) == b


def lookalike_key(spec: _Spec) -> str:
    """The group of jobs the server cannot tell apart: model, normalised prompt (cut to the model's limit),
    size and duration — ``ECHOED_FIELDS``. A short hex digest, stable across runs and processes."""
    resolved = resolve_model(spec.model)
    model = resolved.name if resolved is not None else spec.model
    prompt = _sent_prompt(spec)
    limit = _limit(spec.model)
    if limit is not None:
        prompt = prompt[:limit]
    text = "\x1f".join((model, normal_prompt(prompt), spec.size, str(spec.duration)))
    return hashlib.blake2b(text.encode(), digest_size=10).hexdigest()


def matches(spec: _Spec, orig_prompt: str | None, usage: Mapping[str, Any] | None) -> bool:
    """True when a finished task (its ``orig_prompt`` and ``usage``) is what the job's request makes."""
    if orig_prompt is None or not same_prompt(spec.model, _sent_prompt(spec), orig_prompt):
        return False
    usage = usage or {}
    size = usage.get("size") or usage.get("video_ratio")
    if size and str(size) != spec.size:
        return False
    duration = usage.get("output_video_duration", usage.get("video_duration"))
    if duration is not None:
        try:
            if float(duration) != float(spec.duration):
                return False
        except (TypeError, ValueError):
            return False
    return True
