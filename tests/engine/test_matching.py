"""The one definition of look-alike jobs and the matching rule (runner.engine.matching)."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Any

from runner.engine.matching import ECHOED_FIELDS, lookalike_key, matches, normal_prompt, same_prompt


@dataclass(frozen=True)
class Spec:
    prompt: str
    model: str = "wan2.6-t2v"
    size: str = "1280*720"
    duration: int = 5
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def request(self) -> dict[str, Any]:
        return {"model": self.model, "input": {"prompt": self.prompt}, "parameters": {"size": self.size, **self.params}}


def test_jobs_that_differ_only_where_the_answer_is_silent_are_look_alikes() -> None:
    base = Spec("a lighthouse at dusk")
    for params in ({"seed": 1}, {"seed": 2}, {"watermark": True}, {"shot_type": "multi"}, {"prompt_extend": False}):
        assert lookalike_key(Spec("a lighthouse at dusk", params=params)) == lookalike_key(base)
    assert lookalike_key(Spec("a lighthouse at  dusk ")) == lookalike_key(base)  # the echo may fold spaces
    assert lookalike_key(Spec("a lighthouse at dawn")) != lookalike_key(base)
    assert lookalike_key(Spec("a lighthouse at dusk", size="720*1280")) != lookalike_key(base)
    assert lookalike_key(Spec("a lighthouse at dusk", duration=10)) != lookalike_key(base)
    assert lookalike_key(Spec("a lighthouse at dusk", model="wan2.5-t2v-preview")) != lookalike_key(base)
    assert ECHOED_FIELDS == ("model", "input.prompt", "parameters.size", "parameters.duration")


def test_prompts_past_the_limit_are_look_alikes_since_the_server_cuts_them() -> None:
    long = "x" * 1500
    assert lookalike_key(Spec(long + " one")) == lookalike_key(Spec(long + " two"))
    assert same_prompt("wan2.6-t2v", long + " one", long)
    assert not same_prompt("wan2.6-t2v", "x" * 10, "x" * 9)


def test_a_normalising_echo_still_matches() -> None:
    sent = unicodedata.normalize("NFD", "  Café\tcrème  brûlée ")
    assert normal_prompt(sent) == unicodedata.normalize("NFC", "Café crème brûlée")
    assert same_prompt("wan2.6-t2v", sent, "Café crème brûlée")
    assert not same_prompt("wan2.6-t2v", sent, "Cafe creme brulee")


def test_matches_needs_prompt_size_and_duration() -> None:
    spec = Spec("a lighthouse at dusk")
    usage26 = {"size": "1280*720", "output_video_duration": 5, "duration": 5}
    assert matches(spec, "a lighthouse at dusk", usage26)
    assert matches(spec, "a lighthouse at dusk", {"video_ratio": "1280*720", "video_duration": 5})
    assert not matches(spec, None, usage26)
    assert not matches(spec, "a lighthouse at dawn", usage26)
    assert not matches(spec, "a lighthouse at dusk", {**usage26, "size": "1920*1080"})
    assert not matches(spec, "a lighthouse at dusk", {**usage26, "output_video_duration": 10})
    assert not matches(spec, "a lighthouse at dusk", {"output_video_duration": "five"})
