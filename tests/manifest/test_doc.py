"""docs/MANIFEST.md never drifts: its model tables are generated from runner/models.py, and every worked example
(`$ wanbatch plan …` followed by its output) is the real output of the command.

After changing the model table or the plan output, rewrite the generated parts with

    .venv/bin/python -m tests.manifest.test_doc
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
import sys
from pathlib import Path

import pytest

from runner.cli import main
from runner.manifest import MAX_JOBS, MAX_NAME_CHARS, MAX_REPEAT
from runner.models import (
    AUDIO_FORMATS,
    AUDIO_MAX_BYTES,
    AUDIO_MAX_SECONDS,
    AUDIO_MIN_SECONDS,
    MODELS,
    NEGATIVE_PROMPT_MAX_CHARS,
    REGIONS,
    SEED_MAX,
    SEED_MIN,
    TIER_SIZES,
)

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "MANIFEST.md"
BEGIN = "<!-- generated from runner/models.py by tests/manifest/test_doc.py: do not edit by hand -->"
END = "<!-- end of generated model tables -->"


# ---------------------------------------------------------------------------------------------- model tables


def _yes(flag: bool) -> str:
    return "yes" if flag else "—"


def _price(value: float) -> str:
    """Every digit the table holds, no trailing zeros: 0.6, 1, 1.100886."""
    return f"{value:.6f}".rstrip("0").rstrip(".")


def model_tables() -> str:
    """The Markdown of the per-model rules, sizes and prices, from the model table itself."""
    out = [BEGIN, "", '**Sizes per resolution tier** (`size` is `"W*H"` with an asterisk; quote it in YAML):', ""]
    out += ["| tier | sizes |", "|---|---|"]
    out += [f"| {tier} | {', '.join(f'`{s}`' for s in sizes)} |" for tier, sizes in TIER_SIZES.items()]
    out += ["", "**Rules per model** (checked for every expanded job before anything is sent):", ""]
    out += [
        "| model | also accepted as | tiers | default size | duration (s) | default duration | prompt chars kept "
        "| shot_type | audio_url, audio | regions | default submit QPS / concurrency |",
        "|---|---|---|---|---|---|---:|---|---|---|---|",
    ]
    for m in MODELS.values():
        others = [a for a in m.aliases if a != m.name]
        spelled = ", ".join(f"`{a}` (sent in {', '.join(r for r, s in m.spellings.items() if s == a)})" for a in others)
        out.append(
            f"| `{m.name}` | {spelled or '—'} | {', '.join(m.tiers)} | `{m.default_size}` | "
            f"{m.describe_durations()} | {m.default_duration} | {m.prompt_max_chars} | {_yes(m.shot_type)} | "
            f"{_yes(m.audio_url)} | {', '.join(m.regions)} | {m.submit_qps} / {m.concurrency} |"
        )
    regions = list(REGIONS)
    out += ["", "**Price per second of video** (CNY; a job costs its tier's price × its duration):", ""]
    out += ["| model | " + " | ".join(regions) + " |", "|---|" + "---|" * len(regions)]
    for m in MODELS.values():
        cells = []
        for r in regions:
            tiers = m.prices.get(r)
            cells.append("—" if tiers is None else ", ".join(f"{t} {_price(p)}" for t, p in tiers.items()))
        out.append(f"| `{m.name}` | " + " | ".join(cells) + " |")
    out += [
        "",
        "**Limits for every model:** "
        f"`seed` {SEED_MIN} to {SEED_MAX:,}; `negative_prompt` over {NEGATIVE_PROMPT_MAX_CHARS} characters is a "
        "warning (the API drops the rest); `audio_url` is an `http://`, `https://` or `oss://` URL, or a local "
        f"{' or '.join(AUDIO_FORMATS)} file of {AUDIO_MIN_SECONDS:g} to {AUDIO_MAX_SECONDS:g} s and at most "
        f"{AUDIO_MAX_BYTES // (1024 * 1024)} MB; "
        f"names at most {MAX_NAME_CHARS} characters; `repeat` 1 to {MAX_REPEAT:,}; a manifest expands to at most "
        f"{MAX_JOBS:,} jobs.",
        "",
        END,
    ]
    return "\n".join(out)


def test_model_tables_match_the_model_table() -> None:
    doc = DOC.read_text(encoding="utf-8")
    assert model_tables() in doc, "docs/MANIFEST.md is out of date: run .venv/bin/python -m tests.manifest.test_doc"


def test_model_tables_name_every_model_and_spelling() -> None:
    tables = model_tables()
    for m in MODELS.values():
        for alias in m.aliases:
            assert f"`{alias}`" in tables
    row = "| `wan2.6-t2v` | — | 720P, 1080P | `1920*1080` | any integer from 2 to 15 | 5 | 1500 | yes | yes |"
    assert row in tables
    assert "| `wan2.6-t2v` | 720P 0.6, 1080P 1 | 720P 0.733924, 1080P 1.100886 |" in tables
    assert "`wanx2.1-t2v-plus` (sent in cn-beijing)" in tables


# ---------------------------------------------------------------------------------------------- worked examples

EXAMPLE = re.compile(r"```console\n\$ (wanbatch plan [^\n]*)\n(.*?)```", re.S)


def run_example(command: str) -> str:
    """What the console shows for ``command`` (``wanbatch plan …``, optionally piped through ``tail -n N``
    or ``python -m json.tool``): stderr then stdout, as plan writes its messages before its table. Run from
    the repository's root, with the real CLI entry point."""
    stages = [shlex.split(s) for s in command.split("|")]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(stages[0][1:])
    text = err.getvalue() + out.getvalue()
    for stage in stages[1:]:
        if stage[:2] == ["tail", "-n"]:
            text = "".join(text.splitlines(keepends=True)[-int(stage[2]) :])
        elif stage[:3] == ["python", "-m", "json.tool"]:
            text = json.dumps(json.loads(text), indent=4) + "\n"
        else:
            raise AssertionError(f"unsupported pipe stage {stage}")
    if code != 0:
        text += f"(exit {code})\n"
    return text


def regenerate(doc: str) -> str:
    """``doc`` with its model tables and every example's output made anew."""
    start, end = doc.index(BEGIN), doc.index(END) + len(END)
    doc = doc[:start] + model_tables() + doc[end:]
    return EXAMPLE.sub(lambda m: f"```console\n$ {m.group(1)}\n{run_example(m.group(1))}```", doc)


def test_worked_examples_show_the_real_output(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    doc = DOC.read_text(encoding="utf-8")
    examples = EXAMPLE.findall(doc)
    assert len(examples) >= 4
    for command, shown in examples:
        assert run_example(command) == shown, f"{command}: docs/MANIFEST.md shows other output; regenerate it"


def test_broken_example_file_is_the_one_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    """The doc shows the broken manifest it plans; that text must be the file's."""
    doc = DOC.read_text(encoding="utf-8")
    shown = re.search(r"```yaml\n# tests/manifest/data/broken\.yaml\n(.*?)```", doc, re.S)
    assert shown is not None
    assert (REPO / "tests/manifest/data/broken.yaml").read_text(encoding="utf-8") == shown.group(1)


if __name__ == "__main__":
    import os

    os.chdir(REPO)
    DOC.write_text(regenerate(DOC.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"rewrote {DOC}", file=sys.stderr)
