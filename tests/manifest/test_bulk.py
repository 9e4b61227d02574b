"""Written-out jobs in one pass (``manifest_bulk``): the same manifest as the general path, or none at all."""

from __future__ import annotations

import dataclasses
import json
import random
from typing import Any

import pytest

from runner.manifest import (
    JOB_KEYS,
    REQUEST_FIELDS,
    TOP_KEYS,
    JobSpec,
    Manifest,
    _load_general,
    _load_written_out,
    _new_job,
    parse_manifest,
)
from runner.manifest_fastyaml import job_section
from runner.manifest_shape import JobModel, ManifestModel, RequestFields

REGIONS = [None, "ap-southeast-1", "us-east-1"]


def general(text: str, region: str | None = None) -> Manifest | str:
    """The general path's manifest, or its messages."""
    try:
        return _load_general(text, "m.yaml", region or "cn-beijing", "m")
    except Exception as e:  # a ManifestError: the bulk path must have given up
        return repr(e)


def bulk(text: str, region: str | None = None) -> Manifest | None:
    return _load_written_out(text, "m.yaml", region or "cn-beijing", "m")


def exactly(m: Manifest) -> list[Any]:
    """Everything about a manifest, with the order of every request's keys and the type of every value."""
    return [
        m.name,
        m.path,
        m.region,
        m.warnings,
        m.text,
        [
            (type(j), [(f.name, type(getattr(j, f.name)), getattr(j, f.name)) for f in dataclasses.fields(j)])
            for j in m.jobs
        ],
        [json.dumps(j.request) for j in m.jobs],
    ]


def written_out(n: int, *, indent: str = "  ") -> str:
    lines = [
        'version: 1\nname: bench-jobs\ndefaults:\n  model: wan2.6-t2v\n  size: "1280*720"\n  duration: 5\n'
        "  prompt_extend: true\nvars:\n  city: Paris\njobs:"
    ]
    for i in range(n):
        where = "{city}" if i % 2 else "Lisbon"
        lines.append(f"{indent}- name: job-{i}\n{indent}  prompt: A detective walks through rainy {where}, take {i}.")
        lines.append(f"{indent}  seed: {i}")
        if i % 10 == 0:
            lines.append(f'{indent}  size: "1920*1080"')
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------- generated

MODELS = ["wan2.6-t2v", "wan2.6-t2v", "wan2.5-t2v-preview", "wanx2.1-t2v-turbo", "wan2.1-t2v-plus", "nope"]
GOOD = {
    "size": ['"1280*720"', "'960*960'", "1280*720", '"832*480"', "7*7", '"1920*1080"'],
    "duration": ["5", "10", "5", "3", "true"],
    "prompt_extend": ["true", "false", "yes"],
    "watermark": ["true", "false", "null"],
    "negative_prompt": ["blur", "low quality", "'{x}'", "null", "x" * 600],
    "seed": ["0", "7", "123", "2147483647", "99", "null", "4", "007", "-1", "2147483648", "1.5", "'5'"],
    "audio_url": ["https://a.invalid/a.mp3", "oss://b/c", "ftp://x"],
    "audio": ["true", "false"],
    "shot_type": ["single", "multi", "both"],
}
PROMPTS = [
    "Scene {i} in Lisbon.",
    "A detective in {city} take {i}.",
    "'Quoted {x} {i}'",
    '"dq {i} {city}"',
    "Lit {{b}} {i}",
    "Go {city}{x} {i}",
    "  pad {i}",
    "caf\u00e9 {i} \U0001f3ac",
    "Odd { brace {i}",
    "'{city} {i}'",
    "Unknown {nope} {i}",
    "{city} {i}",
    "x" * 1600,
    "same",
    "a: b {i}",
    "hash # {i}",
    "''",
    "null",
    "123",
]
ODD_LINES = ["", "# c", "{ind}  # c", "{ind}   x: 1", "\t", "{ind}-x: 1", "{ind}  bogus: 1", "{ind}  shots: []"]


#: Keys any model takes; wan2.6-t2v takes every key.
PLAIN_KEYS = ["size", "prompt_extend", "watermark", "negative_prompt", "seed"]


def manifest_text(rng: random.Random, odd: bool) -> str:
    """A written-out manifest; when ``odd``, with the odd line, value or key here and there."""
    model = rng.choice(MODELS[:-1] if not odd else MODELS)
    keys = list(GOOD) if odd or model == "wan2.6-t2v" else PLAIN_KEYS
    out = ["version: 1" if not odd or rng.random() < 0.8 else "version: 2"]
    if rng.random() < 0.5:
        out.append(f"name: {rng.choice(['gen', 'g-1', '.bad', 'null'] if odd else ['gen', 'g-1'])}")
    out += ["defaults:", f"  model: {model}"]
    for key in rng.sample(keys, rng.randrange(3)):
        out.append(f"  {key}: {rng.choice(GOOD[key][: 2 if not odd else None])}")
    if rng.random() < 0.9:
        out += ["vars:", "  city: Paris", "  x: a fox"]
    if odd and rng.random() < 0.1:
        out += ["matrix:", "  seed: [1, 2]"]
    ind = rng.choice(["  ", "  ", "", "    "])
    out.append("jobs:")
    for i in range(rng.choice([1, 2, 5, 20])):
        name = f"job-{i}" if not odd or rng.random() < 0.9 else rng.choice(["dup", "yes", "123", ".h", "n" * 101])
        prompt = rng.choice(PROMPTS[:10] if not odd else PROMPTS).replace("{i}", str(i))
        out.append(f"{ind}- name: {name}")
        out.append(f"{ind}  prompt: {prompt}")
        for key in rng.sample(keys, rng.randrange(3)):
            sep = ":  " if rng.random() < 0.05 else ": "
            out.append(f"{ind}  {key}{sep}{rng.choice(GOOD[key][: 2 if not odd else None])}")
        if odd and rng.random() < 0.05:
            out.append(rng.choice(ODD_LINES).format(ind=ind))
    return "\n".join(out) + rng.choice(["\n", "", "\n\n"])


def test_generated_manifests_are_the_general_paths() -> None:
    """Fixed seeds (a failure reproduces): whenever the bulk path answers, it is the general path's answer."""
    taken = 0
    for seed in range(1500):
        rng = random.Random(seed)
        odd = rng.random() < 0.4
        text = manifest_text(rng, odd)
        region = rng.choice(REGIONS) if odd else None
        fast = bulk(text, region)
        if fast is None:
            continue
        taken += 1
        expected = general(text, region)
        assert isinstance(expected, Manifest), f"seed {seed}: bulk made a manifest the general path refuses\n{text}"
        assert exactly(fast) == exactly(expected), f"seed {seed}\n{text}"
    assert taken > 300  # the path is exercised, not only its giving up


@pytest.mark.parametrize("indent", ["", "  ", "    "])
def test_the_big_layout_takes_the_bulk_path(indent: str) -> None:
    text = written_out(50, indent=indent)
    fast = bulk(text)
    assert fast is not None
    assert exactly(fast) == exactly(general(text))  # type: ignore[arg-type]
    assert exactly(parse_manifest(text, file="m.yaml", default_name="m")) == exactly(fast)
    assert [j.line for j in fast.jobs[:3]] == [11, 15, 18]


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t.replace("seed: 3\n", "seed: 3\n\n"),  # a blank line inside
        lambda t: t.replace("seed: 3\n", "seed: 3\n# a comment\n"),
        lambda t: t.replace("seed: 3\n", "seed: 3 # a comment\n"),
        lambda t: t.replace("seed: 3\n", "seed: 3\n      deeper: 1\n"),
        lambda t: t.replace("seed: 3\n", "seed: 3\n    seed: 4\n"),  # twice
        lambda t: t.replace("seed: 3\n", "seed: 2147483648\n"),
        lambda t: t.replace("name: job-4\n", "name: job-3\n"),  # a name twice
        lambda t: t.replace("Lisbon, take 4.\n    seed: 4", "{city}, take 3.\n    seed: 3"),  # a request twice
        lambda t: t.replace("take 4.", "take {nope}."),
        lambda t: t.replace("seed: 3\n", "seed: 3\n    negative_prompt: " + "x" * 600 + "\n"),  # a warning
        lambda t: t.replace("seed: 3\n", "seed: 3\n    repeat: 2\n"),
        lambda t: t.replace("seed: 3\n", "seed: 3\n    shot_type: both\n"),
        lambda t: t.replace("version: 1", "version: 2"),
        lambda t: t.replace("jobs:", "matrix:\n  seed: [1]\njobs:"),
        lambda t: t.replace("jobs:", "jobs: # a comment"),
        lambda t: t.replace("\n", "\r\n"),
        lambda t: t.replace("take 4.", "take\t4."),
        lambda t: t.replace("seed: 3\n", "seed: \n"),  # null, but not written as such
        lambda t: t.replace("seed: 3\n", "seed:   \n"),
    ],
)
def test_anything_else_gives_up(change: Any) -> None:
    text = change(written_out(6))
    assert bulk(text) is None


def test_long_prompts_are_warned_of_as_the_general_path_does() -> None:
    text = written_out(30).replace("take 4.", "take " + "x" * 1500).replace("take 27.", "take " + "y" * 1600)
    text = text.replace("prompt: A detective walks through rainy Lisbon, take 8.", f'prompt:   "{"q" * 1600}"')
    fast = bulk(text)
    assert fast is not None and len(fast.warnings) == 3
    assert exactly(fast) == exactly(general(text))  # type: ignore[arg-type]
    assert fast.warnings[0].line == 25 and "the prompt is 1545 characters" in fast.warnings[0].message


def test_the_cut_keeps_the_header_and_counts_lines() -> None:
    text = "version: 1\njobs:\n- name: a\n  prompt: x\n- name: b\n  prompt: y\ndefaults:\n  model: wan2.6-t2v\n"
    section = job_section(text)
    assert section is not None
    assert section.header == "version: 1\njobs:\n\ndefaults:\n  model: wan2.6-t2v\n"  # the cut's line break stays
    assert section.entries == ["name: a\n  prompt: x", "name: b\n  prompt: y"]
    assert (section.inner, section.first_line, section.lines) == ("\n  ", 3, 4)
    with_comment = job_section(text.replace("defaults:", "# the end\ndefaults:"))
    assert with_comment is not None and with_comment.header.endswith(
        "jobs:\n\n# the end\ndefaults:\n  model: wan2.6-t2v\n"
    )
    assert job_section("version: 1\njobs: []\n") is None
    assert job_section("version: 1\n") is None


def test_a_fast_made_job_is_a_jobspec() -> None:
    fields = ("a" * 32, "n", "wan2.6-t2v", {"model": "m"}, "1280*720", 5, 7, None, "p", 1, 3, "720P")
    made = _new_job(*fields)
    assert type(made) is JobSpec and made == JobSpec(*fields) and repr(made) == repr(JobSpec(*fields))
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.name = "other"  # type: ignore[misc]


def test_the_key_lists_are_the_models() -> None:
    assert tuple(RequestFields.model_fields) == REQUEST_FIELDS
    assert tuple(JobModel.model_fields) == JOB_KEYS
    assert tuple(ManifestModel.model_fields) == TOP_KEYS


@pytest.mark.parametrize(
    "value",
    [
        "plain",
        "plain  ",
        "a:b",
        "ends:",
        "a: b",
        "'single'  ",
        '"double" ',
        '"es\\"c"',
        "007",
        "0",
        "12 ",
        "true",
        "x # c",
    ],
)
def test_entries_read_by_one_regex_are_read_as_line_by_line(value: str) -> None:
    """Most entries of a layout are read by one regex (``_EntryShape``): odd values amid them are the same."""
    lines = ["version: 1", "defaults:", "  model: wan2.6-t2v", "jobs:"]
    for i in range(12):
        odd = i == 7
        lines += [
            f"  - name: job-{i}",
            f"    prompt: {value if odd else 'Scene'} {i}",
            f"    seed: {value if odd else i}",
        ]
    text = "\n".join(lines) + "\n"
    fast, expected = bulk(text), general(text)
    if fast is not None:
        assert isinstance(expected, Manifest) and exactly(fast) == exactly(expected), value
