"""A flat job (no pydantic) is exactly what strict ``JobModel`` would make of the same entry, or not made."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from runner.manifest import JOB_KEYS
from runner.manifest_flat import FlatJobs, flat_job
from runner.manifest_shape import JobModel

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.sampled_from(["single", "multi", "x", "", "1280*720", "wan2.6-t2v"]),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
KEYS = st.one_of(st.sampled_from([*JOB_KEYS, "from", "other"]), st.integers(0, 2))


@settings(max_examples=1000, deadline=None)
@given(raw=st.dictionaries(KEYS, VALUES, max_size=6), name=st.one_of(st.none(), st.text(max_size=4), st.integers()))
def test_flat_jobs_are_what_pydantic_makes(raw: dict[Any, Any], name: Any) -> None:
    if name is not None:
        raw["name"] = name
    flat = flat_job(raw)
    if flat is None:
        return
    model = JobModel.model_validate(raw)  # raises if the flat job took something pydantic refuses
    assert flat.model_fields_set == model.model_fields_set
    for key in JobModel.model_fields:
        made, expected = getattr(flat, key), getattr(model, key)
        assert type(made) is type(expected) and made == expected, key


def test_common_entries_are_flat_and_the_rest_are_not() -> None:
    assert flat_job({"name": "a", "prompt": "p", "seed": 3, "size": "1280*720", "prompt_extend": None}) is not None
    for raw in [
        {"prompt": "p"},  # no name
        {"name": "a", "seed": True},  # a bool is not an int in strict mode
        {"name": "a", "shot_type": "both"},
        {"name": "a", "shots": []},
        {"name": "a", "matrix": {"seed": [1]}},
        {"name": "a", "unknown": 1},
        {"name": "a", "repeat": None},
        ["name"],
    ]:
        assert flat_job(raw) is None, raw


@settings(max_examples=200, deadline=None)
@given(raws=st.lists(st.dictionaries(KEYS, VALUES, max_size=4).map(lambda d: {"name": "n", **d}), max_size=8))
def test_remembered_layouts_give_the_same_verdicts(raws: list[dict[Any, Any]]) -> None:
    shared = FlatJobs()
    assert [shared.make(r) is None for r in raws * 2] == [flat_job(r) is None for r in raws * 2]
