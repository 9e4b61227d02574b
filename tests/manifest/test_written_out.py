"""Written-out manifests (the style big generated manifests use): whether the line reader or libyaml reads
them, the loaded manifest, or every message with its file:line:col, is the same."""

from __future__ import annotations

import dataclasses
import json
import random
from typing import Any

import pytest

from runner.errors import ManifestError
from runner.manifest import Manifest, parse_manifest
from runner.manifest.line_reader import load_plain
from runner.manifest.schema import JOB_KEYS, REQUEST_FIELDS, SHOT_KEYS, TOP_KEYS

REGIONS = [None, "ap-southeast-1", "us-east-1"]
#: A last line only libyaml reads (the line reader takes no tab anywhere): the same YAML, the other reader.
LIBYAML_ONLY = "#\tread by libyaml\n"


def load(text: str, region: str | None = None) -> Manifest | list[str]:
    """The manifest, or its messages."""
    try:
        return parse_manifest(text, file="m.yaml", region=region, default_name="m")
    except ManifestError as e:
        return [str(i) for i in e.issues]


def by_libyaml(text: str, region: str | None = None) -> Manifest | list[str]:
    """``load`` with the line reader out of the way."""
    return load(text + ("" if text.endswith("\n") else "\n") + LIBYAML_ONLY, region)


def same(a: Manifest | list[str], b: Manifest | list[str]) -> bool:
    if isinstance(a, list) or isinstance(b, list):
        return a == b
    return exactly(dataclasses.replace(a, text="")) == exactly(dataclasses.replace(b, text=""))


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


def test_generated_manifests_load_the_same_by_either_reader() -> None:
    """Fixed seeds (a failure reproduces): valid or not, the line reader's manifest is libyaml's."""
    read = 0
    for seed in range(1500):
        rng = random.Random(seed)
        odd = rng.random() < 0.4
        text = manifest_text(rng, odd)
        region = rng.choice(REGIONS) if odd else None
        read += load_plain(text) is not None
        assert same(load(text, region), by_libyaml(text, region)), f"seed {seed}\n{text}"
    assert read > 1000  # the line reader is exercised, not only libyaml


@pytest.mark.parametrize("indent", ["", "  ", "    "])
def test_the_big_layout_is_read_by_lines(indent: str) -> None:
    text = written_out(50, indent=indent)
    assert load_plain(text) is not None
    m = load(text)
    assert isinstance(m, Manifest) and same(m, by_libyaml(text))
    assert [j.line for j in m.jobs[:3]] == [11, 15, 18]


def test_long_prompts_are_warned_of_where_they_are_written() -> None:
    text = written_out(30).replace("take 4.", "take " + "x" * 1500).replace("take 27.", "take " + "y" * 1600)
    text = text.replace("prompt: A detective walks through rainy Lisbon, take 8.", f'prompt:   "{"q" * 1600}"')
    m = load(text)
    assert isinstance(m, Manifest) and len(m.warnings) == 3
    assert same(m, by_libyaml(text))
    assert m.warnings[0].line == 25 and "the prompt is 1545 characters" in m.warnings[0].message
    assert m.warnings[1].field == "jobs[8].prompt" and m.warnings[1].column == 15  # the quote, as libyaml places it


def test_the_key_lists_messages_name() -> None:
    """The schema's keys, in the order an unknown-key message lists them."""
    request = ("model", "size", "duration", "shot_type", "prompt_extend", "watermark", "negative_prompt", "seed")
    assert (*request, "audio_url", "audio") == REQUEST_FIELDS
    assert (*REQUEST_FIELDS, "name", "prompt", "intro", "shots", "repeat", "matrix") == JOB_KEYS
    assert TOP_KEYS == ("version", "name", "defaults", "vars", "matrix", "jobs")
    assert SHOT_KEYS == ("from", "to", "text")


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
def test_odd_values_amid_plain_entries_read_the_same(value: str) -> None:
    lines = ["version: 1", "defaults:", "  model: wan2.6-t2v", "jobs:"]
    for i in range(12):
        odd = i == 7
        lines += [
            f"  - name: job-{i}",
            f"    prompt: {value if odd else 'Scene'} {i}",
            f"    seed: {value if odd else i}",
        ]
    text = "\n".join(lines) + "\n"
    assert same(load(text), by_libyaml(text)), value
