"""The poll schedule learns task times from the server's own submit and end times."""

from __future__ import annotations

import pytest

from runner.engine.tracker import server_seconds
from runner.engine.wire import TaskInfo


def test_server_seconds_is_end_minus_submit() -> None:
    info = TaskInfo("t", "SUCCEEDED", submit_time="2025-09-29 14:18:52.331", end_time="2025-09-29 14:20:53.081")
    assert server_seconds(info) == pytest.approx(120.75)


@pytest.mark.parametrize(
    ("submit", "end"),
    [
        (None, "2025-09-29 14:20:53.081"),
        ("2025-09-29 14:18:52.331", None),
        ("garbage", "2025-09-29 14:20:53.081"),
        ("2025-09-29 14:20:53.081", "2025-09-29 14:18:52.331"),
    ],
)
def test_server_seconds_is_none_without_usable_times(submit: str | None, end: str | None) -> None:
    assert server_seconds(TaskInfo("t", "SUCCEEDED", submit_time=submit, end_time=end)) is None
