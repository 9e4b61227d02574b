"""Fuzz: random and mutated manifests never make `plan` raise; it exits 0 with a plan or 2 with located messages."""

from __future__ import annotations

import itertools
import json
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.chaos_input import KEYS, mutate
from runner.cli import main

from .conftest import MANIFESTS, run_plan

SEEDS = [p.read_text(encoding="utf-8") for p in sorted(MANIFESTS.glob("*.yaml"))]
ISSUE_LINE = re.compile(r"^.+?: (error|warning): .+$|^.+: \d+ errors?; nothing planned$|^error: .+$")
FAST = settings(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("fuzz") / "m.yaml"


def check(path: Path, region: str | None = None, as_json: bool = False) -> int:
    r = run_plan(path, region=region, json=as_json)
    assert r.code in (0, 2), r
    if r.code == 2:
        assert r.err.strip(), "exit 2 without a message"
        assert r.out == ""
        for line in r.err.splitlines():
            assert ISSUE_LINE.match(line), line
    else:
        assert r.out.strip()
        for line in r.err.splitlines():
            assert ": warning: " in line, line
    return r.code


# ------------------------------------------------------------------------------------------- mutations


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """A shipped manifest with the edits of ``make chaos`` (one mutator, one vocabulary)."""
    return mutate(draw(st.randoms(use_true_random=False)), draw(st.sampled_from(SEEDS)))


@settings(FAST, max_examples=600)
@given(text=mutated())
def test_mutated_manifests_never_raise(target: Path, text: str) -> None:
    target.write_bytes(text.encode("utf-8", "surrogateescape") if "\udcff" in text else text.encode("utf-8"))
    check(target)


# ------------------------------------------------------------------------------------------- random trees
# Built with a seeded ``random.Random`` rather than hypothesis strategies: drawing recursive trees through
# hypothesis cost ~30 ms a manifest, 25 times what `plan` takes on one, and the point here is volume.

WORDS = [
    "wan2.6-t2v",
    "wanx2.1-t2v-plus",
    "wan2.2-t2v-plus",
    "wan2.6-t2v-us",
    "1280*720",
    "832*480",
    "1920*1080",
    "multi",
    "single",
    "{x}",
    "{city}",
    "{{",
    "https://a.invalid/a.mp3",
    "ftp://x",
    "",
    " ",
    "../x",
    "a\nb",
    "\u2013",
    "\U0001f3ac",
]
NUMBERS = [0, 1, 2, 5, 10, 15, 16, 10_000, 10_001, 2147483647, 2147483648, -1, 2**70, -(2**70)]


def random_char(rng: random.Random) -> str:
    """Printable ASCII or any non-surrogate code point up to plane 2 (controls too: YAML must refuse them)."""
    if rng.random() < 0.6:
        return chr(rng.randrange(32, 127))
    code = rng.randrange(0, 0x2FFFF)
    return chr(code) if not 0xD800 <= code <= 0xDFFF else "?"


def random_scalar(rng: random.Random) -> Any:
    kind = rng.randrange(8)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice(NUMBERS)
    if kind == 3:
        return rng.randint(-(2**40), 2**40)
    if kind == 4:
        return rng.choice([0.5, -0.0, 1e300, float("inf"), float("-inf"), float("nan"), 5.0])
    if kind == 5:
        return "".join(random_char(rng) for _ in range(rng.randrange(9)))
    return rng.choice(WORDS)


def random_tree(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(10)
    if depth >= 3 or kind < 6:
        return random_scalar(rng)
    if kind < 8:
        return [random_tree(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice([*KEYS, 7, "x"]): random_tree(rng, depth + 1) for _ in range(rng.randrange(4))}


VALID: dict[str, list[Any]] = {
    "model": ["wan2.6-t2v", "wan2.5-t2v-preview", "wanx2.1-t2v-turbo", "wan2.1-t2v-plus", "wan2.2-t2v-plus"],
    "size": ["1280*720", "1920*1080", "832*480", "960*960"],
    "duration": [5, 10, 15],
    "shot_type": ["single", "multi"],
    "prompt_extend": [True, False],
    "watermark": [True, False],
    "negative_prompt": ["blur", "{x}"],
    "seed": [0, 7, 2147483647],
    "audio_url": ["https://a.invalid/a.mp3"],
    "audio": [True, False],
}


def random_fields(rng: random.Random, chaos: float) -> dict[str, Any]:
    """Request fields with values that are valid for some model; with probability ``chaos`` any key, any tree."""
    out: dict[str, Any] = {}
    for _ in range(rng.randrange(4)):
        if rng.random() < chaos:
            key = rng.choice(KEYS)
            out[key] = rng.choice([*WORDS, *NUMBERS, True, False, None]) if rng.random() < 0.6 else random_tree(rng)
        else:
            key = rng.choice(list(VALID))
            out[key] = rng.choice(VALID[key])
    return out


def random_shots(rng: random.Random, plausible: bool) -> list[dict[str, Any]]:
    if not plausible:
        return [
            {"from": rng.randint(-1, 16), "to": rng.randint(-1, 16), "text": "t {x}"} for _ in range(rng.randrange(4))
        ]
    cuts = sorted(rng.sample(range(1, 5), rng.randrange(3)))
    ends = [0, *cuts, 5]
    return [{"from": f, "to": t, "text": f"shot {{x}} {f}"} for f, t in itertools.pairwise(ends)]


def random_manifest(rng: random.Random) -> dict[str, Any]:
    """A third of the manifests are plausible (valid shapes, values valid for some model), the rest chaos."""
    plausible = rng.random() < 1 / 3
    chaos = 0.0 if plausible else rng.choice([0.1, 0.5])
    doc: dict[str, Any] = {"version": 1 if plausible else rng.choice([1, 1, 1, 1, 2, "1", None, 1.0])}
    if plausible or rng.random() < 0.7:
        models = ["wan2.6-t2v", "wan2.5-t2v-preview", "wanx2.1-t2v-turbo"]
        doc["defaults"] = {"model": rng.choice(models if plausible else [*models, "nope"])}
        doc["defaults"].update(random_fields(rng, chaos))
    if plausible:
        doc["vars"] = {"x": rng.choice(["a fox", "7", "{{lit}}"]), "city": "Paris"}
    elif rng.random() < 0.5:
        doc["vars"] = {rng.choice(["x", "city", "size", "1bad"]): random_tree(rng) for _ in range(rng.randrange(4))}
    if plausible and rng.random() < 0.5:
        axes = rng.sample(["seed", "city", "watermark", "size"], rng.randrange(1, 3))
        pools = {"seed": [1, 2, 3], "city": ["Oslo", "Lima", "New York"], "watermark": [True, False]}
        doc["matrix"] = {k: pools.get(k, VALID.get(k, []))[: rng.randrange(1, 4)] for k in axes}
    elif not plausible and rng.random() < 0.5:
        doc["matrix"] = {
            rng.choice([*KEYS, "x", "city"]): [random_scalar(rng) for _ in range(rng.randrange(4))]
            for _ in range(rng.randrange(4))
        }
    jobs = []
    for k in range(rng.randrange(1 if plausible else 0, 5)):
        names = [f"j{k}"] if plausible else [f"j{k}", "j0", "../x", ".h", 5, "a" * 101]
        job: dict[str, Any] = {"name": rng.choice(names)}
        if rng.random() < 0.5:
            prompts = ["a {x}", "b", "{city} c", "{{x}}", "x" * 1600]
            job["prompt"] = rng.choice(prompts if plausible else [*prompts, ""])
        else:
            job["shots"] = random_shots(rng, plausible)
            if rng.random() < 0.3:
                job["intro"] = rng.choice(["An intro.", "{x}"] if plausible else ["An intro.", "", "{x}"])
        job.update(random_fields(rng, chaos))
        if plausible and rng.random() < 0.3:
            job["repeat"] = rng.randint(1, 3)
        jobs.append(job)
    doc["jobs"] = jobs
    if not plausible and rng.random() < 0.2:
        doc[rng.choice([*KEYS, "extra"])] = random_tree(rng)
    return doc


RANDOM_MANIFESTS = 2000


def test_random_manifests_never_raise(target: Path) -> None:
    """Thousands of random manifests (fixed seeds, so a failure reproduces): exit 0 or 2, never a traceback."""
    codes = {0: 0, 2: 0}
    for seed in range(RANDOM_MANIFESTS):
        rng = random.Random(seed)
        doc = random_manifest(rng)
        if rng.random() < 0.5:  # JSON is YAML, and much faster to write than PyYAML's dump
            text = json.dumps(doc, ensure_ascii=False)
        else:
            text = yaml.dump(doc, Dumper=yaml.CSafeDumper, allow_unicode=True)
        target.write_text(text, encoding="utf-8")
        region = rng.choice([None, "ap-southeast-1", "us-east-1"])
        try:
            codes[check(target, region=region, as_json=rng.random() < 0.5)] += 1
        except BaseException as e:
            raise AssertionError(f"seed {seed}, region {region}:\n{text}") from e
    assert codes[0] > 100 and codes[2] > 1000, codes  # both paths are exercised, not only the error one


@settings(FAST, max_examples=200)
@given(data=st.binary(max_size=200))
def test_random_bytes_never_raise(target: Path, data: bytes) -> None:
    target.write_bytes(data)
    check(target)


@pytest.mark.parametrize(
    "text",
    [
        "a: &a [*a]\n",  # a recursive alias
        "version: 1\njobs: &j [{name: a, prompt: x, model: wan2.6-t2v, matrix: {seed: *j}}]\n",
        "[" * 2000 + "]" * 2000,
        "version: 1\n" + "jobs:\n" + "  - {name: a, prompt: x, model: wan2.6-t2v, seed: " + "9" * 100000 + "}\n",
        "version: 1\njobs: [{name: a, prompt: x, model: wan2.6-t2v, duration: .inf}]\n",
        "version: 1\njobs: [{name: a, prompt: x, model: wan2.6-t2v, seed: !!float 1e400}]\n",
        "version: 1\njobs: [{name: a, prompt: x, model: wan2.6-t2v, size: !!binary aGVsbG8=}]\n",
        "version: 1\njobs: [{name: a, prompt: x, model: wan2.6-t2v, seed: 2020-01-01}]\n",
        "--- 1\n--- 2\n",
        "\ufeffversion: 1\njobs: [{name: a, prompt: x, model: wan2.6-t2v}]\n",
        "version: 1\njobs: [{name: a, prompt: x, model: wan2.6-t2v}]\n...\n",
        "? [a]\n: 1\n",
        "version: 1\n1: 2\njobs: []\n",
        "version: 1\njobs: {a: 1}\n",
    ],
)
def test_nasty_inputs(target: Path, text: str) -> None:
    target.write_text(text, encoding="utf-8")
    check(target)


def test_cli_main_plan_in_process(target: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target.write_text("version: 1\njobs: [{name: a}]\n", encoding="utf-8")
    assert main(["plan", str(target)]) == 2
    assert "a job needs a prompt" in capsys.readouterr().err
    assert main(["plan", str(MANIFESTS / "matrix.yaml"), "--json"]) == 0
    assert '"totals"' in capsys.readouterr().out
