"""Every validation rule: its exact message, line and column, and that several are reported together."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from runner.errors import Issue, ManifestError
from runner.manifest import build_plan, load_manifest, parse_manifest

from .conftest import run_plan

Issues = Callable[..., list[Issue]]


def fmt(issues: list[Issue]) -> list[str]:
    return [f"{i.line}:{i.column} {i.field}: {i.message}" for i in issues]


def one(issues: Issues, text: str, region: str | None = None) -> str:
    found = fmt(issues(text, region))
    assert len(found) == 1, found
    return found[0]


Q = '"'
APOS = "'"
GOOD_JOB = "jobs:\n  - {name: a, prompt: hello}\n"


def at(text: str, needle: str, nth: int = 1) -> str:
    """``line:col`` (1-based) of the nth occurrence of ``needle`` in the manifest as the fixture writes it."""
    body = textwrap.dedent(text).lstrip("\n")
    index = -1
    for _ in range(nth):
        index = body.index(needle, index + 1)
    line = body.count("\n", 0, index) + 1
    return f"{line}:{index - (body.rfind(chr(10), 0, index) + 1) + 1}"


def test_unknown_top_level_key_names_the_allowed_keys(issues: Issues) -> None:
    text = "version: 1\ndefaults: {model: wan2.6-t2v}\nregoin: x\n" + GOOD_JOB
    assert one(issues, text) == ("3:1 : unknown key 'regoin'; allowed: version, name, defaults, vars, matrix, jobs")


def test_unknown_key_in_defaults_job_and_shot(issues: Issues) -> None:
    text = """
    version: 1
    defaults: {model: wan2.6-t2v, sise: "1280*720"}
    jobs:
      - name: a
        promt: x
        prompt: y
      - name: b
        shots:
          - {from: 0, to: 5, txt: y}
    """
    found = fmt(issues(text))
    assert found[0].startswith("2:31 defaults: unknown key 'sise'; allowed: model, size, duration, shot_type,")
    assert found[1].startswith("5:5 jobs[0]: unknown key 'promt'; allowed: model, size,")
    assert found[1].endswith("name, prompt, intro, shots, repeat, matrix")
    assert found[2:] == [
        f"{at(text, '{from: 0')} jobs[1].shots[0].text: required key is missing",
        f"{at(text, 'txt')} jobs[1].shots[0]: unknown key 'txt'; allowed: from, to, text",
    ]


def test_missing_version_and_jobs(issues: Issues) -> None:
    assert fmt(issues("name: x\n")) == ["1:1 jobs: required key is missing", "1:1 version: required key is missing"]


def test_version_must_be_1(issues: Issues) -> None:
    assert one(issues, "version: 2\ndefaults: {model: wan2.6-t2v}\n" + GOOD_JOB) == (
        "1:10 version: unsupported manifest version 2; allowed: 1"
    )
    assert one(issues, "version: true\ndefaults: {model: wan2.6-t2v}\n" + GOOD_JOB) == (
        "1:10 version: input should be a valid integer"
    )


def test_wrong_types_are_located(issues: Issues) -> None:
    text = """
    version: 1
    defaults:
      model: wan2.6-t2v
      duration: "5"
      watermark: yes please
      seed: 1.5
      shot_type: many
    jobs:
      - {name: a, prompt: [x]}
    """
    assert fmt(issues(text)) == [
        "4:13 defaults.duration: input should be a valid integer",
        "5:14 defaults.watermark: input should be a valid boolean",
        "6:9 defaults.seed: input should be a valid integer",
        "7:14 defaults.shot_type: input should be 'single' or 'multi'",
        "9:23 jobs[0].prompt: input should be a valid string",
    ]


def test_empty_and_non_mapping_files(issues: Issues) -> None:
    assert (
        one(issues, "")
        == "0:0 : the manifest must be a mapping with at least `version: 1` and `jobs:`, got an empty file"
    )
    assert one(issues, "- a\n- b\n") == (
        "1:1 : the manifest must be a mapping with at least `version: 1` and `jobs:`, got a list"
    )


def test_yaml_syntax_error_has_line_and_column(issues: Issues) -> None:
    found = one(issues, "version: 1\njobs:\n  - name: a\n    prompt: 'unclosed\n")
    assert found.startswith("5:1 : YAML syntax:")
    found = one(issues, "version: 1\njobs: [\n")
    assert found == "3:1 : YAML syntax: while parsing a flow node did not find expected node content"


def test_duplicate_key_is_an_error(issues: Issues) -> None:
    text = "version: 1\ndefaults:\n  model: wan2.6-t2v\n  model: wan2.5-t2v-preview\n" + GOOD_JOB
    assert one(issues, text) == "4:3 : YAML syntax: while constructing a mapping found duplicate key 'model'"


def test_unknown_model_lists_both_spellings(issues: Issues) -> None:
    found = one(issues, "version: 1\ndefaults: {model: wan3}\n" + GOOD_JOB)
    assert found.startswith("2:19 defaults.model: unknown model 'wan3'; allowed: wan2.6-t2v, wan2.6-t2v-us,")
    assert "wan2.1-t2v-turbo" in found and "wanx2.1-t2v-turbo" in found


def test_both_model_spellings_give_the_same_job(load: Callable[..., object]) -> None:
    a = load("version: 1\ndefaults: {model: wan2.1-t2v-turbo}\n" + GOOD_JOB)
    b = load("version: 1\ndefaults: {model: wanx2.1-t2v-turbo}\n" + GOOD_JOB)
    assert a.jobs[0].job_id == b.jobs[0].job_id  # type: ignore[attr-defined]
    assert a.jobs[0].request["model"] == "wanx2.1-t2v-turbo"  # type: ignore[attr-defined]  # Beijing's spelling
    c = load("version: 1\ndefaults: {model: wanx2.1-t2v-turbo}\n" + GOOD_JOB, "ap-southeast-1")
    assert c.jobs[0].request["model"] == "wan2.1-t2v-turbo"  # type: ignore[attr-defined]
    assert c.jobs[0].job_id == a.jobs[0].job_id  # type: ignore[attr-defined]


def test_model_missing(issues: Issues) -> None:
    found = one(issues, "version: 1\n" + GOOD_JOB)
    assert found.startswith("3:5 jobs[0].model: no model: set model in defaults or in the job (wan2.6-t2v,")


def test_model_not_offered_in_region(issues: Issues) -> None:
    found = one(issues, "version: 1\ndefaults: {model: wan2.2-t2v-plus}\n" + GOOD_JOB, "us-east-1")
    assert found == (
        "2:19 defaults.model: wan2.2-t2v-plus is not offered in us-east-1 (US (Virginia)); "
        "offered there: wan2.6-t2v, wan2.6-t2v-us"
    )


def test_a_model_another_accounts_region_offers_is_valid() -> None:
    text = "version: 1\ndefaults: {model: wan2.6-t2v-us}\n" + GOOD_JOB
    manifest = parse_manifest(text, region="cn-beijing", also=("us-east-1",))
    assert [j.model for j in manifest.jobs] == ["wan2.6-t2v-us"] and manifest.also == ("us-east-1",)
    assert build_plan(manifest).cost > 0  # priced in the region that offers it
    with pytest.raises(ManifestError, match=r"not offered in cn-beijing \(China \(Beijing\)\) or ap-southeast-1"):
        parse_manifest(text, region="cn-beijing", also=("ap-southeast-1",))


def test_size_per_model(issues: Issues) -> None:
    text = 'version: 1\ndefaults: {model: wan2.6-t2v, size: "832*480"}\n' + GOOD_JOB
    assert one(issues, text) == (
        "2:37 defaults.size: size '832*480' is not allowed for wan2.6-t2v; allowed: 1280*720, 720*1280, 960*960, "
        "1088*832, 832*1088, 1920*1080, 1080*1920, 1440*1440, 1632*1248, 1248*1632"
    )
    text = 'version: 1\ndefaults: {model: wan2.1-t2v-plus, size: "1280x720"}\n' + GOOD_JOB
    assert one(issues, text) == (
        "2:42 defaults.size: size '1280x720' is not a size of wan2.1-t2v-plus; allowed: 1280*720, 720*1280, "
        "960*960, 1088*832, 832*1088"
    )


def test_durations_per_model(issues: Issues) -> None:
    assert one(issues, "version: 1\ndefaults: {model: wan2.6-t2v, duration: 16}\n" + GOOD_JOB) == (
        "2:41 defaults.duration: duration 16 is not allowed for wan2.6-t2v; allowed: any integer from 2 to 15"
    )
    assert one(issues, "version: 1\ndefaults: {model: wan2.5-t2v-preview, duration: 7}\n" + GOOD_JOB) == (
        "2:49 defaults.duration: duration 7 is not allowed for wan2.5-t2v-preview; allowed: 5 or 10"
    )
    assert one(issues, "version: 1\ndefaults: {model: wan2.2-t2v-plus, duration: 10}\n" + GOOD_JOB) == (
        "2:46 defaults.duration: duration 10 is not allowed for wan2.2-t2v-plus; allowed: 5 (fixed)"
    )
    assert one(issues, "version: 1\ndefaults: {model: wan2.6-t2v, duration: 0}\n" + GOOD_JOB) == (
        "2:41 defaults.duration: duration 0 is not allowed for wan2.6-t2v; allowed: any integer from 2 to 15"
    )


def test_fixed_duration_may_be_sent(load: Callable[..., object]) -> None:
    m = load("version: 1\ndefaults: {model: wan2.2-t2v-plus, duration: 5}\n" + GOOD_JOB)
    assert m.jobs[0].request["parameters"] == {"duration": 5}  # type: ignore[attr-defined]


def test_shot_type_only_on_wan26(issues: Issues) -> None:
    text = "version: 1\ndefaults: {model: wan2.5-t2v-preview}\njobs:\n  - {name: a, prompt: x, shot_type: multi}\n"
    assert one(issues, text) == (
        f"{at(text, 'multi')} jobs[0].shot_type: wan2.5-t2v-preview does not take shot_type; "
        "only wan2.6-t2v, wan2.6-t2v-us do"
    )


def test_audio_only_on_25_and_26(issues: Issues) -> None:
    text = (
        "version: 1\ndefaults: {model: wan2.2-t2v-plus}\njobs:\n"
        "  - {name: a, prompt: x, audio_url: 'https://example.invalid/a.mp3', audio: false}\n"
    )
    assert fmt(issues(text)) == [
        f"{at(text, APOS + 'https')} jobs[0].audio_url: wan2.2-t2v-plus does not take audio_url; only wan2.6-t2v, "
        "wan2.6-t2v-us, wan2.5-t2v-preview do",
        f"{at(text, 'false')} jobs[0].audio: wan2.2-t2v-plus does not take audio; only wan2.6-t2v, wan2.6-t2v-us, "
        "wan2.5-t2v-preview do",
    ]


def test_audio_url_scheme(issues: Issues) -> None:
    text = "version: 1\ndefaults: {model: wan2.6-t2v, audio_url: ftp://x/a.mp3}\n" + GOOD_JOB
    assert one(issues, text) == (
        "2:42 defaults.audio_url: audio_url must be an http://, https:// or oss:// URL, or a local wav or mp3 file "
        "(a path relative to the manifest, or a file:// URL)"
    )
    # a path is a local file (issue 19): checked as one
    text = "version: 1\ndefaults: {model: wan2.6-t2v, audio_url: /nonexistent/a.mp3}\n" + GOOD_JOB
    assert one(issues, text) == "2:42 defaults.audio_url: the audio file /nonexistent/a.mp3 does not exist"


def test_seed_range(issues: Issues) -> None:
    for seed in (-1, 2147483648, 10**30):
        text = f"version: 1\ndefaults: {{model: wan2.6-t2v, seed: {seed}}}\n" + GOOD_JOB
        assert one(issues, text) == "2:37 defaults.seed: seed must be an integer from 0 to 2147483647"


def test_seed_bounds_are_allowed(load: Callable[..., object]) -> None:
    m = load("version: 1\ndefaults: {model: wan2.6-t2v}\nmatrix: {seed: [0, 2147483647]}\n" + GOOD_JOB)
    assert [j.seed for j in m.jobs] == [0, 2147483647]  # type: ignore[attr-defined]


def test_prompt_over_the_limit_is_a_warning(tmp_path: Path) -> None:
    p = tmp_path / "m.yaml"
    p.write_text(f"version: 1\ndefaults: {{model: wan2.1-t2v-plus}}\njobs:\n  - name: a\n    prompt: {'x' * 801}\n")
    m = load_manifest(p)
    assert [f"{w.line}:{w.column} {w.severity} {w.field}: {w.message}" for w in m.warnings] == [
        "5:13 warning jobs[0].prompt: the prompt is 801 characters; wan2.1-t2v-plus keeps the first 800 and "
        "silently drops the rest"
    ]
    r = run_plan(p)
    assert r.code == 0
    assert "warning" in r.err and "801 characters" in r.err


def test_negative_prompt_over_500_is_a_warning(load: Callable[..., object]) -> None:
    m = load(f"version: 1\ndefaults: {{model: wan2.6-t2v, negative_prompt: {'n' * 501}}}\n" + GOOD_JOB)
    [w] = m.warnings  # type: ignore[attr-defined]
    assert w.message == "negative_prompt is 501 characters; the API keeps the first 500 and silently drops the rest"
    assert (w.line, w.column, w.field) == (2, 48, "defaults.negative_prompt")


def test_shot_type_without_prompt_extend_is_a_warning(load: Callable[..., object]) -> None:
    m = load("version: 1\ndefaults: {model: wan2.6-t2v, shot_type: multi, prompt_extend: false}\n" + GOOD_JOB)
    assert [w.message for w in m.warnings] == ["shot_type takes effect only when prompt_extend is true"]  # type: ignore[attr-defined]


def test_names(issues: Issues) -> None:
    text = """
    version: 1
    name: my/run
    defaults: {model: wan2.6-t2v}
    jobs:
      - {name: ../x, prompt: a}
      - {name: .hidden, prompt: b}
      - {name: "a b", prompt: c}
      - {name: ok.name_1-2, prompt: d}
    """
    msg = "use letters (any script), digits, '.', '_' and '-' only, not starting with '.'"
    assert fmt(issues(text)) == [
        f"2:7 name: invalid name 'my/run': {msg}",
        f"{at(text, '../x')} jobs[0].name: invalid name '../x': {msg}",
        f"{at(text, '.hidden')} jobs[1].name: invalid name '.hidden': {msg}",
        f"{at(text, Q + 'a b')} jobs[2].name: invalid name 'a b': {msg}",
    ]


def test_name_length(issues: Issues) -> None:
    text = f"version: 1\ndefaults: {{model: wan2.6-t2v}}\njobs:\n  - {{name: {'a' * 101}, prompt: x}}\n"
    assert one(issues, text) == f"{at(text, 'aaa')} jobs[0].name: name is 101 characters long; at most 100"


def test_default_name_is_the_safe_file_stem(write: Callable[..., Path]) -> None:
    p = write("version: 1\ndefaults: {model: wan2.6-t2v}\n" + GOOD_JOB, name="my nightly run.yaml")
    assert load_manifest(p).name == "my-nightly-run-b7ecc0"  # made safe, so marked (issue 17)
    p = write("version: 1\ndefaults: {model: wan2.6-t2v}\n" + GOOD_JOB, name="my-nightly-run.yaml")
    assert load_manifest(p).name == "my-nightly-run"


def test_default_names_keep_every_script_and_never_collide(write: Callable[..., Path]) -> None:
    names = {}
    for stem in ("雨", "夜街", "café", "cafe", "my clip", "my-clip", "my_clip"):
        p = write("version: 1\ndefaults: {model: wan2.6-t2v}\n" + GOOD_JOB, name=f"{stem}.yaml")
        names[stem] = load_manifest(p).name
    assert names["雨"] == "雨" and names["夜街"] == "夜街" and names["café"] == "café"
    assert len(set(names.values())) == len(names), names


def test_duplicate_job_names(issues: Issues) -> None:
    text = "version: 1\ndefaults: {model: wan2.6-t2v}\njobs:\n  - {name: a, prompt: x}\n  - {name: a, prompt: y}\n"
    assert (
        one(issues, text) == f"{at(text, 'a,', 2)} jobs[1].name: job name 'a' is used twice (also by the job on line 4)"
    )


def test_identical_requests_are_an_error(issues: Issues) -> None:
    text = "version: 1\ndefaults: {model: wan2.6-t2v}\njobs:\n  - {name: a, prompt: x}\n  - {name: b, prompt: x}\n"
    assert one(issues, text) == (
        "5:5 jobs[1]: job 'b' makes the same request as 'a' (line 4): same job id; use repeat for more takes"
    )


def test_prompt_or_shots(issues: Issues) -> None:
    text = """
    version: 1
    defaults: {model: wan2.6-t2v}
    jobs:
      - {name: a}
      - {name: b, prompt: x, shots: [{from: 0, to: 5, text: y}]}
      - {name: c, prompt: x, intro: y}
      - {name: d, prompt: "   "}
    """
    assert fmt(issues(text)) == [
        f"{at(text, '{name: a')} jobs[0]: a job needs a prompt, or shots (with an optional intro)",
        f"{at(text, '{name: b')} jobs[1]: set either prompt or shots (with an optional intro), not both",
        f"{at(text, 'y}', 2)} jobs[2].intro: intro goes with shots; use prompt alone",
        f"{at(text, Q + '   ')} jobs[3].prompt: the prompt is empty",
    ]


def test_shots_contiguous_from_zero_to_duration(issues: Issues) -> None:
    text = """
    version: 1
    defaults: {model: wan2.6-t2v, duration: 10}
    jobs:
      - name: a
        shots:
          - {from: 1, to: 4, text: x}
          - {from: 5, to: 5, text: y}
      - name: b
        shots:
          - {from: 0, to: 4, text: x}
          - {from: 4, to: 8, text: y}
      - name: c
        duration: 6
        shots: []
    """
    assert fmt(issues(text)) == [
        "6:16 jobs[0].shots[0].from: the first shot must start at 0, not 1",
        "7:16 jobs[0].shots[1].from: shot 2 must start at 4, where shot 1 ends, not 5",
        "7:23 jobs[0].shots[1].to: shot 2 must end after it starts",
        "11:23 jobs[1].shots[1].to: the last shot ends at 8 s but the job lasts 10 s",
        f"{at(text, '[]')} jobs[2].shots: shots needs at least one shot",
    ]


def test_shots_must_end_at_the_default_duration(issues: Issues) -> None:
    text = "version: 1\ndefaults: {model: wan2.6-t2v}\njobs:\n  - name: a\n    shots: [{from: 0, to: 6, text: x}]\n"
    assert one(issues, text) == (
        f"{at(text, '6,')} jobs[0].shots[0].to: the last shot ends at 6 s but the job lasts 5 s "
        "(wan2.6-t2v's default; set duration)"
    )


def test_unknown_placeholder(issues: Issues) -> None:
    text = """
    version: 1
    defaults: {model: wan2.6-t2v, duration: 5}
    vars: {city: Paris}
    jobs:
      - {name: a, prompt: "in {town}"}
      - name: b
        intro: "{mood}"
        shots: [{from: 0, to: 5, text: "{city} {when}"}]
    """
    assert fmt(issues(text)) == [
        f"{at(text, Q + 'in')} jobs[0].prompt: unknown placeholder {{town}}; known vars: city",
        f"{at(text, Q + '{mood')} jobs[1].intro: unknown placeholder {{mood}}; known vars: city",
        f"{at(text, Q + '{city} {when')} jobs[1].shots[0].text: unknown placeholder {{when}}; known vars: city",
    ]


def test_braces_escape_and_non_names_stay(load: Callable[..., object]) -> None:
    text = (
        'version: 1\ndefaults: {model: wan2.6-t2v}\nvars: {x: 1}\njobs:\n  - {name: a, prompt: "{{x}} {x} {1} { x }"}\n'
    )
    assert load(text).jobs[0].prompt == "{x} 1 {1} { x }"  # type: ignore[attr-defined]


def test_vars_rules(issues: Issues) -> None:
    text = """
    version: 1
    defaults: {model: wan2.6-t2v}
    vars: {size: x, "bad-name": y, flag: true, ok: 3}
    jobs:
      - {name: a, prompt: "{ok}"}
    """
    assert fmt(issues(text)) == [
        f"{at(text, 'size')} vars: var name 'size' is taken by a manifest key; rename it",
        f"{at(text, Q + 'bad')} vars: invalid var name 'bad-name': use letters, digits and _",
        f"{at(text, 'true')} vars.flag: a var must be a string or a number, got boolean",
    ]


def test_matrix_rules(issues: Issues) -> None:
    text = """
    version: 1
    defaults: {model: wan2.6-t2v}
    vars: {city: x}
    matrix:
      sise: ["1280*720"]
      seed: [1, 1]
      duration: []
      watermark: [true, "no"]
      city: [Paris, [Rome]]
    jobs:
      - name: a
        prompt: "{city}"
        seed: 3
        matrix: {seed: [4]}
    """
    found = fmt(issues(text))
    assert found[0].startswith("5:3 matrix: unknown matrix axis 'sise'; allowed: model, size,")
    assert found[0].endswith("audio_url, audio, city (a var must be in vars)")
    assert found[1:] == [
        f"{at(text, '1]')} matrix.seed[1]: 1 appears twice in this axis",
        f"{at(text, '[]')} matrix.duration: a matrix axis needs at least one value",
        f"{at(text, Q + 'no')} matrix.watermark[1]: watermark must be a boolean",
        f"{at(text, '[Rome')} matrix.city[1]: a var value must be a string or a number",
        f"{at(text, '[4]')} jobs[0].matrix.seed: the job sets seed itself; use either it or matrix.seed",
    ]


def test_repeat_bounds(issues: Issues) -> None:
    text = "version: 1\ndefaults: {model: wan2.6-t2v}\njobs:\n  - {name: a, prompt: x, repeat: 0}\n"
    assert one(issues, text) == "4:34 jobs[0].repeat: repeat must be 1 to 10,000"


def test_too_many_jobs(issues: Issues) -> None:
    values = ", ".join(f"v{i}" for i in range(30))
    text = (
        "version: 1\ndefaults: {model: wan2.6-t2v}\nvars: {a: x}\nmatrix: {a: [" + values + "]}\n"
        'jobs: [{name: j, prompt: "{a}", repeat: 10000}]\n'
    )
    assert one(issues, text) == "5:7 jobs: the manifest expands to 300,000 jobs; at most 250,000"


def test_many_errors_are_reported_together(issues: Issues) -> None:
    text = """
    version: 1
    defaults: {model: wan2.6-t2v}
    jobs:
      - {name: a, prompt: x, size: "1*1"}
      - {name: b, prompt: y, duration: 99}
      - {name: c, prompt: z, seed: -5}
      - {name: d, prompt: w, model: nope}
    """
    found = issues(text)
    assert [i.line for i in found] == [4, 5, 6, 7]
    assert [i.field for i in found] == ["jobs[0].size", "jobs[1].duration", "jobs[2].seed", "jobs[3].model"]


def test_an_error_many_jobs_share_is_reported_once(issues: Issues) -> None:
    text = 'version: 1\ndefaults: {model: wan2.6-t2v, size: "1*1"}\nmatrix: {seed: [1, 2, 3, 4, 5, 6]}\n' + GOOD_JOB
    assert len(issues(text)) == 1


def test_explicit_null_removes_a_default(load: Callable[..., object]) -> None:
    m = load("version: 1\ndefaults: {model: wan2.6-t2v, seed: 7}\njobs:\n  - {name: a, prompt: x, seed: null}\n")
    assert "parameters" not in m.jobs[0].request  # type: ignore[attr-defined]
    assert m.jobs[0].seed is None  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"version: 1\njobs:\n  - {name: a, prompt: \xff}\n", "3:23 : the manifest is not UTF-8 text"),
        (b"version: 1\n  bad: indent\n", "2:6 : YAML syntax: mapping values are not allowed in this context"),
        (b"version: !!python/object:os.system x\n", "1:10 : YAML syntax: unsupported tag"),
        (b"version: 1" + b"0" * 5000 + b"\n", "1:10 : YAML syntax: cannot read this value"),
        (
            b"version: 1\njobs:\n  - {name: a\x01, prompt: x}\n",
            "3:13 : YAML syntax: character U+0001 is not allowed in YAML (control characters are not allowed)",
        ),
        (b"\x00version: 1\n", "1:1 : YAML syntax: character U+0000 is not allowed in YAML"),
    ],
)
def test_unreadable_content_is_located(tmp_path: Path, content: bytes, expected: str) -> None:
    p = tmp_path / "m.yaml"
    p.write_bytes(content)
    with pytest.raises(ManifestError) as e:
        load_manifest(p)
    [issue] = e.value.issues
    assert f"{issue.line}:{issue.column} {issue.field}: {issue.message}".startswith(expected)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    r = run_plan(tmp_path / "nope.yaml")
    assert r.code == 2
    assert "cannot read the manifest: No such file or directory" in r.err
    r = run_plan(tmp_path)
    assert r.code == 2
    assert "cannot read the manifest" in r.err


def test_plan_prints_every_issue_one_per_line_and_exits_2(write: Callable[..., Path]) -> None:
    p = write("version: 1\ndefaults: {model: wan2.6-t2v, seed: -1, duration: 99}\n" + GOOD_JOB)
    r = run_plan(p)
    assert r.code == 2
    assert r.out == ""
    lines = r.err.splitlines()
    assert lines[0] == f"{p}:2:37: error: defaults.seed: seed must be an integer from 0 to 2147483647"
    assert lines[1] == (
        f"{p}:2:51: error: defaults.duration: duration 99 is not allowed for wan2.6-t2v; "
        "allowed: any integer from 2 to 15"
    )
    assert lines[2] == f"{p}: 2 errors; nothing planned"
