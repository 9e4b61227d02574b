"""The API's rules once per combination (``rules.RequestRules``) and the one body builder
(``expand.build_request``): a remembered combination gives every job the body a fresh check gives, in the API's
order, and a combination with a message is never remembered."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from runner.errors import Issue
from runner.manifest.expand import build_request
from runner.manifest.issues import IssueSink
from runner.manifest.rules import INPUT_FIELDS, PARAMETER_ORDER, RequestRules
from runner.models import MODELS, resolve_model

TEXT = st.text(alphabet=st.sampled_from('ab %s%%"\\\n\u2013🎬{}\ue000'), max_size=12)


@st.composite
def fields(draw: st.DrawFn) -> dict[str, Any]:
    spec = draw(st.sampled_from(list(MODELS.values())))
    out: dict[str, Any] = {"model": draw(st.sampled_from([spec.name, *spec.spellings.values()]))}
    optional = {
        "size": st.sampled_from(spec.sizes),
        "duration": st.sampled_from(sorted(spec.durations)),
        "prompt_extend": st.booleans(),
        "watermark": st.booleans(),
        "seed": st.integers(0, 2**31 - 1),
        "negative_prompt": TEXT,
    }
    if spec.shot_type:
        optional["shot_type"] = st.sampled_from(["single", "multi"])
    if spec.audio_url:
        optional["audio_url"] = TEXT.map(lambda t: "https://" + t)
        optional["audio"] = st.booleans()
    for name, strategy in optional.items():
        if draw(st.booleans()):
            out[name] = draw(strategy)
    return out


def _located(values: dict[str, Any]) -> dict[str, tuple[Any, tuple[Any, ...]]]:
    return {k: (v, ("defaults", k)) for k, v in values.items()}


@settings(max_examples=300, deadline=None)
@given(values=fields(), prompts=st.lists(TEXT.filter(str.strip), min_size=1, max_size=3), seeds=st.data())
def test_a_remembered_combination_gives_each_job_its_own_body(
    values: dict[str, Any], prompts: list[str], seeds: st.DataObject
) -> None:
    rules = RequestRules(IssueSink("m.yaml", ""), "cn-beijing")
    for prompt in prompts:  # the first call checks and remembers, the others reuse the combination
        if "seed" in values:
            values = {**values, "seed": seeds.draw(st.integers(0, 2**31 - 1))}
        f = _located(values)
        combination = rules.check(f, prompt, ("jobs", 0, "prompt"), ("jobs", 0), None)
        fresh = RequestRules(IssueSink("m.yaml", ""), "cn-beijing")
        assert combination == fresh.check(f, prompt, ("jobs", 0, "prompt"), ("jobs", 0), None)
        if combination is None:  # e.g. a model not offered in the region
            continue
        spec = resolve_model(values["model"])
        assert spec is not None
        inputs = {"prompt": prompt, **{k: values[k] for k in INPUT_FIELDS if k in values}}
        expected: dict[str, Any] = {"model": spec.name_in("cn-beijing"), "input": inputs}
        if any(k in values for k in PARAMETER_ORDER):
            expected["parameters"] = {k: values[k] for k in PARAMETER_ORDER if k in values}
        assert json.dumps(build_request(combination, f, prompt)) == json.dumps(expected)  # same values, same order


def test_a_combination_with_a_message_is_reported_for_every_job(issues: Callable[..., list[Issue]]) -> None:
    found = issues(
        """
        version: 1
        defaults: {model: wan2.6-t2v, prompt_extend: false}
        jobs:
          - {name: a, prompt: x, shot_type: multi}
          - {name: b, prompt: y, shot_type: multi, size: "1*1"}
          - {name: c, prompt: z, shot_type: multi, size: "1*1"}
        """
    )
    assert [(i.line, i.field) for i in found] == [(5, "jobs[1].size"), (6, "jobs[2].size")]


def test_long_prompts_warn_even_when_the_combination_is_remembered(load: Callable[..., Any]) -> None:
    jobs = [("a", "short"), ("b", "x" * 1600), ("c", "y" * 1700)]
    text = "version: 1\ndefaults: {model: wan2.6-t2v}\njobs:\n" + "".join(
        f"  - {{name: {n}, prompt: {p}}}\n" for n, p in jobs
    )
    m = load(text)
    assert [(w.line, w.field) for w in m.warnings] == [(5, "jobs[1].prompt"), (6, "jobs[2].prompt")]
