"""The terminal progress view: counts by state, videos done, billed seconds and cost, and an ETA from the
jobs settled since the view started (a resumed run's earlier work does not make the ETA optimistic)."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from runner.report.progress import ProgressView
from runner.store.replay import replay_lines

USAGE = {"duration": 5, "size": "1280*720", "output_video_duration": 5, "video_count": 1}


def _planned(i: int) -> dict[str, Any]:
    return {"ts": 1.0, "event": "planned", "job_id": f"job{i:013d}", "name": f"clip{i}", "model": "wan2.6-t2v",
            "request": {}, "size": "1280*720", "duration": 5, "seed": None, "seconds": 5, "cost": 3.0}  # fmt: skip


def _done(i: int, ts: float) -> list[dict[str, Any]]:
    jid = f"job{i:013d}"
    return [
        {"ts": ts, "event": "submitted", "job_id": jid, "task_id": f"t{i}", "request_id": None, "adopted": False},
        {"ts": ts, "event": "succeeded", "job_id": jid, "task_id": f"t{i}", "usage": USAGE},
        {"ts": ts, "event": "downloaded", "job_id": jid, "path": f"videos/{i}.mp4", "bytes": 10, "sha256": "ab"},
    ]


def _text(view: ProgressView) -> str:
    buf = io.StringIO()
    Console(file=buf, width=80, color_system=None).print(view.render())
    return buf.getvalue()


def test_view_counts_and_eta_from_progress_since_start() -> None:
    state = replay_lines([_planned(i) for i in range(5)] + _done(0, 2.0))  # one job done by an earlier run
    now = [100.0]
    view = ProgressView(state, {f"job{i:013d}" for i in range(5)}, name="demo", clock=lambda: now[0])
    first = _text(view)
    assert "wanbatch run demo" in first
    assert "1/5" in first and "—" in first  # nothing settled since the start: no ETA yet
    assert view.snapshot()["states"]["downloaded"] == 1

    for line in _done(1, 3.0) + _done(2, 4.0):
        state.apply_dict(line)
    now[0] = 120.0  # two jobs in 20 s, two left: 20 s to go
    text = _text(view)
    assert "3/5" in text
    assert "0:20" in text.split("eta")[1]
    assert "15 s" in text  # billed: three 5-second videos
    states = view.snapshot()["states"]
    assert (states["downloaded"], states["planned"], sum(states.values())) == (3, 2, 5)
