"""`plan --json` is written in pieces (memory on 100,000 jobs); the pieces must make exactly one json.dumps."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from runner.manifest import Manifest, build_plan, iter_json, iter_table, render_json, render_table

Load = Callable[..., Manifest]


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 2000])
def test_json_in_pieces_is_one_dumps(load: Load, chunk: int) -> None:
    m = load(
        """
        version: 1
        name: pieces
        defaults: {model: wan2.6-t2v, size: "1280*720"}
        matrix: {seed: [1, 2, 3]}
        jobs:
          - {name: a, prompt: "Caf\\u00e9 \\u2013 \\"quoted\\"", duration: 10}
          - {name: b, prompt: plain, repeat: 2}
        """
    )
    plan = build_plan(m)
    expected = json.dumps(plan.to_json(), ensure_ascii=True) + "\n"
    assert "".join(iter_json(plan, chunk)) == expected
    assert render_json(plan) == expected
    assert len(json.loads(expected)["jobs"]) == 9


def test_json_of_a_plan_without_jobs_is_valid() -> None:
    from runner.manifest import Plan

    plan = Plan("empty", "cn-beijing", "CNY", [], 0, 0.0, [])
    text = "".join(iter_json(plan))
    assert json.loads(text) == {
        "name": "empty",
        "region": "cn-beijing",
        "jobs": [],
        "totals": {"jobs": 0, "seconds": 0, "cost": 0.0, "currency": "CNY"},
    }


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 2000])
def test_table_in_pieces_is_the_same_table(load: Load, chunk: int) -> None:
    m = load(
        """
        version: 1
        defaults: {model: wan2.6-t2v}
        matrix: {seed: [1, 22, 333]}
        jobs:
          - {name: a-long-name, prompt: x, duration: 10, size: "1280*720", shot_type: multi}
          - {name: b, prompt: y, repeat: 2, model: wan2.1-t2v-turbo, seed: null}
        """
    )
    plan = build_plan(m)
    table = render_table(plan)
    assert "".join(iter_table(plan, chunk)) == table
    lines = table.splitlines()
    assert lines[0] == "NAME                 MODEL              SIZE      DURATION  SHOT   SEED    SECONDS  COST (CNY)"
    assert lines[3] == "a-long-name_seed333  wan2.6-t2v         1280*720  10 s      multi  333          10        6.00"
    assert lines[4] == "b_take1              wanx2.1-t2v-turbo  1280*720  5 s       -      random        5        1.20"
    assert lines[6:9] == ["", "plan m in cn-beijing (China (Beijing))", "jobs: 5"]
    assert len(lines) == 1 + 5 + 1 + 7


def test_planned_jobs_are_frozen_planned_jobs_with_the_loops_totals(load: Load) -> None:
    import dataclasses

    from runner.manifest import PlannedJob

    m = load(
        """
        version: 1
        defaults: {model: wan2.6-t2v}
        matrix: {seed: [1, 2, 3], duration: [5, 10]}
        jobs:
          - {name: a, prompt: x, size: "1920*1080"}
          - {name: b, prompt: y, model: wan2.1-t2v-turbo, duration: null}
        """
    )
    plan = build_plan(m)
    assert all(type(p) is PlannedJob for p in plan.jobs)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.jobs[0].cost = 0.0  # type: ignore[misc]
    total = 0.0
    for p in plan.jobs:
        assert p == PlannedJob(p.job, p.job.duration, p.cost)
        total += p.cost
    assert plan.cost == total and plan.seconds == sum(p.seconds for p in plan.jobs) == 3 * 15 + 3 * 5
    assert [(e.model, e.jobs) for e in plan.estimates] == [("wan2.6-t2v", 6), ("wan2.1-t2v-turbo", 3)]
