"""Expansion: shots → prompt text, matrix and repeat counts, names, request bodies, stable job ids."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.manifest import Manifest, canonical_json, parse_manifest

Load = Callable[..., Manifest]


def test_shots_compose_the_api_format(load: Load) -> None:
    m = load(
        """
        version: 1
        defaults: {model: wan2.6-t2v, duration: 10, shot_type: multi}
        vars: {who: a fox}
        jobs:
          - name: a
            intro: "  A fable.  "
            shots:
              - {from: 0, to: 4, text: "{who} wakes up."}
              - {from: 4, to: 10, text: "It runs.\\n"}
          - name: b
            shots: [{from: 0, to: 10, text: Only one shot.}]
        """
    )
    assert m.jobs[0].prompt == "A fable. Shot 1 [0–4 s]: a fox wakes up. Shot 2 [4–10 s]: It runs."
    assert m.jobs[1].prompt == "Shot 1 [0–10 s]: Only one shot."
    assert "\u2013" in m.jobs[0].prompt


def test_request_holds_only_what_the_manifest_sets(load: Load) -> None:
    m = load(
        """
        version: 1
        defaults: {model: wan2.5-t2v-preview}
        jobs:
          - {name: bare, prompt: x}
          - name: full
            prompt: "A kitten running in the moonlight"
            negative_prompt: low quality
            audio_url: https://example.invalid/a.mp3
            size: "832*480"
            duration: 10
            seed: 12345
            prompt_extend: true
            watermark: false
            audio: true
        """
    )
    bare, full = m.jobs
    assert bare.request == {"model": "wan2.5-t2v-preview", "input": {"prompt": "x"}}
    assert (bare.size, bare.duration, bare.seed, bare.tier) == ("1920*1080", 5, None, "1080P")  # model defaults
    assert full.request == {
        "model": "wan2.5-t2v-preview",
        "input": {
            "prompt": "A kitten running in the moonlight",
            "negative_prompt": "low quality",
            "audio_url": "https://example.invalid/a.mp3",
        },
        "parameters": {
            "size": "832*480",
            "duration": 10,
            "prompt_extend": True,
            "watermark": False,
            "seed": 12345,
            "audio": True,
        },
    }
    assert list(full.request) == ["model", "input", "parameters"]


def test_matrix_and_repeat_counts_and_names(load: Load) -> None:
    m = load(
        """
        version: 1
        defaults: {model: wan2.6-t2v, size: "1280*720"}
        vars: {city: Paris}
        matrix:
          seed: [1, 2]
          city: [New York, Shanghai]
        jobs:
          - {name: a, prompt: "{city}"}
          - {name: b, prompt: "{city}!", repeat: 3}
          - {name: c, prompt: "{city}", matrix: {seed: [9], duration: [5, 10]}}
          - {name: d, prompt: "{city}", seed: 4}
        """
    )
    names = [j.name for j in m.jobs]
    assert len(m.jobs) == 4 + 4 * 3 + 2 * 2 + 2
    assert names[:4] == ["a_seed1_New-York", "a_seed1_Shanghai", "a_seed2_New-York", "a_seed2_Shanghai"]
    assert names[4:7] == ["b_seed1_New-York_take1", "b_seed1_New-York_take2", "b_seed1_New-York_take3"]
    assert names[16:20] == ["c_New-York_5s", "c_New-York_10s", "c_Shanghai_5s", "c_Shanghai_10s"]
    assert names[20:] == ["d_New-York", "d_Shanghai"]  # the job's own seed drops the seed axis
    assert {j.seed for j in m.jobs[16:20]} == {9}
    assert {j.seed for j in m.jobs[20:]} == {4}
    assert [j.take for j in m.jobs[4:7]] == [1, 2, 3]
    assert len({j.job_id for j in m.jobs}) == len(m.jobs)
    assert m.jobs[0].prompt == "New York"


def test_one_variant_keeps_the_bare_name(load: Load) -> None:
    m = load("version: 1\ndefaults: {model: wan2.6-t2v}\nmatrix: {seed: [3]}\njobs: [{name: solo, prompt: x}]\n")
    assert [j.name for j in m.jobs] == ["solo"]


def test_takes_differ_only_by_take_and_have_their_own_body(load: Load) -> None:
    m = load("version: 1\ndefaults: {model: wan2.6-t2v}\njobs: [{name: a, prompt: x, repeat: 2}]\n")
    one, two = m.jobs
    assert one.request == two.request and one.request is not two.request
    assert one.job_id != two.job_id


def test_job_id_is_sha256_of_canonical_request_and_take(load: Load) -> None:
    m = load("version: 1\ndefaults: {model: wanx2.1-t2v-plus, seed: 5}\njobs: [{name: a, prompt: x}]\n")
    canonical = {"input": {"prompt": "x"}, "model": "wan2.1-t2v-plus", "parameters": {"seed": 5}}
    text = '{"request":' + json.dumps(canonical, sort_keys=True, separators=(",", ":")) + ',"take":1,"v":1}'
    assert m.jobs[0].job_id == hashlib.sha256(text.encode()).hexdigest()[:32]
    assert m.jobs[0].request["model"] == "wanx2.1-t2v-plus"


def test_job_ids_do_not_depend_on_names_lines_or_region(load: Load) -> None:
    a = load("version: 1\ndefaults: {model: wan2.6-t2v}\njobs: [{name: a, prompt: x}]\n")
    b = load("# moved down\nversion: 1\nname: other\njobs:\n  - {name: zzz, prompt: x, model: wan2.6-t2v}\n")
    c = load("version: 1\ndefaults: {model: wan2.6-t2v}\njobs: [{name: a, prompt: x}]\n", "eu-central-1")
    assert a.jobs[0].job_id == b.jobs[0].job_id == c.jobs[0].job_id
    assert (a.jobs[0].line, b.jobs[0].line) == (3, 5)


def test_line_of_each_job(load: Load) -> None:
    m = load(
        "version: 1\ndefaults: {model: wan2.6-t2v}\njobs:\n  - name: a\n    prompt: x\n  - name: b\n    prompt: y\n"
    )
    assert [j.line for j in m.jobs] == [4, 6]


def test_merge_keys_and_anchors_work(load: Load) -> None:
    m = load(
        """
        version: 1
        jobs:
          - &base {name: a, prompt: x, model: wan2.6-t2v, seed: 1}
          - {<<: *base, name: b, seed: 2}
        """
    )
    assert [(j.name, j.seed, j.prompt) for j in m.jobs] == [("a", 1, "x"), ("b", 2, "x")]


# ------------------------------------------------------------------------------------------- properties

PROMPTS = st.text(
    st.characters(min_codepoint=0x20, exclude_categories=("Cs", "Cc", "Cn")), min_size=1, max_size=30
).filter(lambda s: s.strip() and "{" not in s and "}" not in s and not s.startswith("unrelated"))
JOB = st.fixed_dictionaries(
    {"prompt": PROMPTS},
    optional={
        "seed": st.integers(0, 2**31 - 1),
        "duration": st.integers(2, 15),
        "size": st.sampled_from(["1280*720", "1920*1080", "960*960"]),
        "watermark": st.booleans(),
        "repeat": st.integers(1, 3),
    },
)


def _manifest(jobs: list[dict[str, Any]]) -> str:
    entries = [{"name": f"j{i}", **job} for i, job in enumerate(jobs)]
    doc = {"version": 1, "defaults": {"model": "wan2.6-t2v"}, "jobs": entries}
    return json.dumps(doc, ensure_ascii=False)  # JSON is YAML


def _ids_by_request(m: Manifest) -> dict[tuple[str, int], str]:
    return {(canonical_json(j.request), j.take): j.job_id for j in m.jobs}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    jobs=st.lists(JOB, min_size=1, max_size=6, unique_by=lambda j: (j["prompt"].strip(), j.get("seed"))), data=st.data()
)
def test_ids_survive_shuffling_and_unrelated_jobs(jobs: list[dict[str, Any]], data: st.DataObject) -> None:
    base = _ids_by_request(parse_manifest(_manifest(jobs)))
    shuffled = data.draw(st.permutations(jobs))
    extra = data.draw(st.lists(JOB, max_size=3))
    extra = [
        {**e, "prompt": f"unrelated {k} {e['prompt']}"} for k, e in enumerate(extra)
    ]  # different prompts: different requests
    grown = _ids_by_request(parse_manifest(_manifest([*extra, *shuffled])))
    for key, job_id in base.items():
        assert grown[key] == job_id
    assert len(set(grown.values())) == len(grown)  # distinct requests never share an id


@settings(max_examples=200, deadline=None)
@given(
    body=st.fixed_dictionaries(
        {"model": st.text(max_size=10), "input": st.dictionaries(st.text(max_size=8), st.text(max_size=20))},
        optional={
            "parameters": st.dictionaries(
                st.text(max_size=8), st.one_of(st.booleans(), st.integers(-(2**40), 2**40), st.text(max_size=8))
            )
        },
    )
)
def test_canonical_json_is_sorted_compact_json(body: dict[str, Any]) -> None:
    expected = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_json(body) == expected


@pytest.mark.parametrize("region", ["cn-beijing", "ap-southeast-1"])
def test_model_spelling_follows_the_region(load: Load, region: str) -> None:
    m = load("version: 1\ndefaults: {model: wan2.1-t2v-turbo}\njobs: [{name: a, prompt: x}]\n", region)
    assert m.jobs[0].request["model"] == ("wanx2.1-t2v-turbo" if region == "cn-beijing" else "wan2.1-t2v-turbo")
    assert m.jobs[0].model == "wan2.1-t2v-turbo"
