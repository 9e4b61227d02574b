"""The example manifests: detective.yaml is the API page's example, byte for byte; the others plan cleanly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from runner.manifest import build_plan, load_manifest

from .conftest import MANIFESTS, REPO, run_plan

# API.md §7.4: the body SDK 2.0.2 POSTed for the page's example, verbatim.
CAPTURED_BODY = (
    '{"model": "wan2.6-t2v", "parameters": {"size": "1280*720", "duration": 15, "prompt_extend": true, '
    '"watermark": true, "shot_type": "multi"}, "input": {"prompt": "A thrilling detective chase story with '
    "cinematic storytelling. Shot 1 [0–3 s]: Wide shot of a rainy New York street at night, neon lights "
    "flickering, a detective in a black trench coat walking briskly. Shot 2 [3–6 s]: Medium shot of the "
    "detective entering an old building, rain soaking his coat, the door closing slowly behind him. Shot 3 "
    "[6–9 s]: Close-up of the detective's focused, determined eyes as distant sirens wail and he frowns "
    "slightly in thought. Shot 4 [9–12 s]: Medium shot of the detective moving carefully down a dim hallway, "
    "his flashlight illuminating the path ahead. Shot 5 [12–15 s]: Close-up of the detective discovering a "
    'key clue, his face lighting up with sudden realization.", "extend_prompt": true, "function": '
    '"video-synthesis"}}'
)
API_MD = REPO.parent / "shared" / "API.md"


def expected_body() -> dict[str, object]:
    body = json.loads(CAPTURED_BODY)
    del body["input"]["extend_prompt"], body["input"]["function"]  # the SDK's own additions
    return body


@pytest.mark.skipif(not API_MD.exists(), reason="shared/API.md is not beside the repo")
def test_captured_body_is_quoted_from_api_md() -> None:
    assert CAPTURED_BODY in API_MD.read_text(encoding="utf-8")


def test_detective_plan_json_is_the_captured_request() -> None:
    r = run_plan(MANIFESTS / "detective.yaml", json=True)
    assert r.code == 0, r.err
    assert r.err == ""
    plan = json.loads(r.out)
    assert plan["name"] == "detective-trailer"
    assert plan["region"] == "cn-beijing"
    [job] = plan["jobs"]
    assert job["request"] == expected_body()
    assert job["request"]["input"]["prompt"] == expected_body()["input"]["prompt"]  # character for character
    assert "–" in job["request"]["input"]["prompt"]  # the en dash, U+2013
    assert job["seconds"] == 15
    assert job["cost"] == pytest.approx(9.0)
    assert plan["totals"] == {"jobs": 1, "seconds": 15, "cost": 9.0, "currency": "CNY"}
    assert set(job) == {"job_id", "name", "request", "seconds", "cost"}


def test_detective_table_shows_the_page_figures() -> None:
    r = run_plan(MANIFESTS / "detective.yaml")
    assert r.code == 0, r.err
    row = r.out.splitlines()[1].split()
    assert row[:5] == ["detective", "wan2.6-t2v", "1280*720", "15", "s"]
    assert "multi" in row
    assert "cost: 9.00 CNY" in r.out


def test_detective_in_singapore_costs_the_intl_price() -> None:
    r = run_plan(MANIFESTS / "detective.yaml", json=True, region="ap-southeast-1")
    assert r.code == 0, r.err
    assert json.loads(r.out)["totals"]["cost"] == pytest.approx(15 * 0.733924)


@pytest.mark.parametrize(("name", "low", "high"), [("matrix.yaml", 4, 8), ("nightly.yaml", 40, 100)])
def test_example_sizes(name: str, low: int, high: int) -> None:
    m = load_manifest(MANIFESTS / name)
    assert low <= len(m.jobs) <= high
    assert m.warnings == []
    assert len({j.job_id for j in m.jobs}) == len(m.jobs)


def test_matrix_example_is_cheap_and_uses_its_var_axis() -> None:
    m = load_manifest(MANIFESTS / "matrix.yaml")
    plan = build_plan(m)
    assert all(j.tier in ("480P", "720P") and j.duration <= 5 for j in m.jobs)
    assert plan.cost < 10
    prompts = {j.prompt for j in m.jobs}
    assert any("Lisbon" in p for p in prompts) and any("Shanghai" in p for p in prompts)
    assert not any("{" in p for p in prompts)


def test_cli_subprocess_plans_detective_json() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "runner", "plan", str(MANIFESTS / "detective.yaml"), "--json"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["jobs"][0]["request"] == expected_body()


def test_every_example_manifest_plans(tmp_path: Path) -> None:
    for path in sorted(MANIFESTS.glob("*.yaml")):
        r = run_plan(path)
        assert r.code == 0, (path, r.err)
