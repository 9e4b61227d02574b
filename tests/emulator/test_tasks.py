"""The task simulation without HTTP: realistic seeded durations, speed scaling, the queue, the stats sweep."""

from __future__ import annotations

import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.emulator.protocol import ApiFailure, check_create
from runner.emulator.tasks import TaskStore, pace
from runner.models import resolve_model


def req(model: str = "wan2.6-t2v", size: str = "1280*720", duration: int = 5):  # type: ignore[no-untyped-def]
    spec = resolve_model(model)
    assert spec is not None
    return check_create(
        {"model": model, "input": {"prompt": "p"}, "parameters": {"size": size, "duration": duration}}, model, spec
    )


def store(**kw: object) -> TaskStore:
    args: dict[str, object] = dict(
        seed=0, speed=1.0, task_time=None, retention=86400.0, url_ttl=86400.0, concurrency_mode="queue"
    )
    args.update(kw)
    return TaskStore(**args)  # type: ignore[arg-type]


def make(s: TaskStore, now: float, concurrency: int | None = None, r=None):  # type: ignore[no-untyped-def]
    return s.create(r or req(), now=now, request_id="r", api_key_id="k", faults=frozenset(), concurrency=concurrency)


def test_durations_are_realistic_seeded_and_scaled() -> None:
    a = store(seed=3)
    totals = [t.end_at - t.submit_at for t in (make(a, 0.0) for _ in range(300))]
    assert all(52.0 <= x <= 300.0 for x in totals)  # 1–5 min (plus dispatch)
    assert 90.0 < statistics.median(totals) < 200.0
    b = store(seed=3)
    assert [t.end_at - t.submit_at for t in (make(b, 0.0) for _ in range(300))] == totals
    fast = store(seed=3, speed=60.0)
    assert abs((make(fast, 0.0).end_at) - totals[0] / 60.0) < 1e-9
    assert not {t.task_id for t in a.order} & {t.task_id for t in b.order}  # ids never repeat across instances


def test_longer_and_larger_videos_take_longer_on_average() -> None:
    s = store(seed=1)
    short = [make(s, 0.0, r=req(size="1280*720", duration=2)) for _ in range(200)]
    long = [make(s, 0.0, r=req(size="1920*1080", duration=15)) for _ in range(200)]
    assert statistics.mean(t.run_s for t in long) > statistics.mean(t.run_s for t in short)


def test_task_times_follow_model_resolution_and_duration() -> None:
    """The same draw (seed and sequence number) scaled by the kind's pace: a 720P 5-s wan2.6 task runs 50–290 s,
    a 480P 5-s turbo task 0.3 times that, a 1080P 15-s wan2.6 task 3.6 times; the dispatch does not change."""
    kinds = {
        ("wan2.6-t2v", "1280*720", 5): 1.0,
        ("wan2.6-t2v", "1280*720", 2): (2 / 5) ** 0.75,
        ("wan2.6-t2v", "1920*1080", 15): 1.6 * 3**0.75,
        ("wan2.1-t2v-turbo", "832*480", 5): 0.5 * 0.6,
        ("wan2.5-t2v-preview", "832*480", 10): 0.6 * 2**0.75,
    }
    runs = {}
    for (model, size, duration), factor in kinds.items():
        assert pace(model, size, duration) == pytest.approx(factor)
        s = store(seed=4)
        tasks = [make(s, 0.0, r=req(model, size, duration)) for _ in range(200)]
        runs[model, size, duration] = [t.run_s for t in tasks]
        assert all(50.0 * factor <= t.run_s <= 290.0 * factor for t in tasks)
        assert all(2.0 <= t.pending_s <= 10.0 for t in tasks)
    base = runs["wan2.6-t2v", "1280*720", 5]
    for key, values in runs.items():
        assert [v / b for v, b in zip(values, base, strict=True)] == pytest.approx([kinds[key]] * 200)


def test_fixed_task_time_splits_pending_and_running() -> None:
    t = make(store(task_time=100.0, speed=10.0), 0.0)
    assert (t.scheduled_at, t.end_at) == (2.5, 10.0)
    s = store(task_time=100.0)
    t = make(s, 0.0)
    assert [s.status(t, x) for x in (0.0, 24.9, 25.0, 99.9, 100.0)] == [
        "PENDING",
        "PENDING",
        "RUNNING",
        "RUNNING",
        "SUCCEEDED",
    ]


def test_queue_lanes_fifo() -> None:
    s = store(task_time=100.0)
    tasks = [make(s, 0.0, concurrency=2) for _ in range(5)]
    assert [t.admit_at for t in tasks] == [0.0, 0.0, 100.0, 100.0, 200.0]
    assert s.max_concurrent(0.0) == (5, {"wan2.6-t2v": 5})
    assert s.max_concurrent(1000.0)[0] == 5
    assert s.by_status(150.0) == {"PENDING": 1, "RUNNING": 2, "SUCCEEDED": 2, "FAILED": 0, "CANCELED": 0, "UNKNOWN": 0}


def test_max_concurrent_counts_only_overlaps() -> None:
    s = store(task_time=10.0)
    for i in range(4):
        make(s, i * 10.0)  # back to back: one at a time (end == next submit)
    assert s.max_concurrent(100.0) == (1, {"wan2.6-t2v": 1})
    make(s, 35.0)
    assert s.max_concurrent(100.0)[0] == 2


def test_listing_window_and_retention() -> None:
    s = store(task_time=10.0, retention=100.0)
    a, b = make(s, 0.0), make(s, 50.0)
    assert [t.task_id for t in s.listing(now=60.0, start=0.0, end=60.0, model=None, status=None, task_id=None)] == [
        b.task_id,
        a.task_id,
    ]
    assert [t.task_id for t in s.listing(now=120.0, start=0.0, end=120.0, model=None, status=None, task_id=None)] == [
        b.task_id
    ]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(min_value=0, max_value=60), st.booleans(), st.integers(min_value=0, max_value=30)),
        min_size=1,
        max_size=40,
    ),
    st.sampled_from(["queue", "reject"]),
)
def test_never_more_than_the_limit_in_processing(ops: list[tuple[float, bool, int]], mode: str) -> None:
    """Whatever the arrivals and cancels: at every moment at most C tasks hold a slot (admitted, not ended),
    admission never precedes submission, and queued tasks are admitted in submission order."""
    s = store(task_time=100.0, concurrency_mode=mode)
    now, made = 0.0, []
    for gap, cancel, pick in ops:
        now += gap
        if cancel and made:
            s.cancel(made[pick % len(made)].task_id, now, 2)
            continue
        try:
            s.check_capacity("wan2.6-t2v", now, 2)
        except ApiFailure:
            continue
        made.append(make(s, now, concurrency=2))
    live = [t for t in made if t.canceled_at is None or t.canceled_at > t.admit_at]
    moments = sorted({t.admit_at for t in live} | {t.submit_at for t in made})
    for m in moments:
        holding = [t for t in live if t.admit_at <= m < t.terminal_at]
        assert len(holding) <= 2, (m, holding)
    for t in made:
        assert t.admit_at >= t.submit_at
    queued = [t for t in live if t.canceled_at is None and t.admit_at > t.submit_at]
    assert [t.seq for t in sorted(queued, key=lambda t: (t.admit_at, t.seq))] == sorted(t.seq for t in queued)
