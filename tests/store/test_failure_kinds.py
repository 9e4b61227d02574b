"""What a ``failed`` line means for money (issue 14), also for ledgers written before the kinds existed: a
give-up on our side of the wire is never the job's failure."""

from __future__ import annotations

from typing import Any

import pytest

from runner.store.events import NOT_SAVED, REFUSED, TASK_FAILED
from runner.store.replay import replay_lines

T = 1_764_000_000.0
BEFORE_SENT = "create: connection failed before the request was sent"


def story(*tail: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"ts": T, "event": "planned", "job_id": "j", "name": "n", "model": "wan2.6-t2v", "request": {}, "cost": 1.2},
        {"ts": T + 1, "event": "submitting", "job_id": "j", "attempt": 1},
        *({"ts": T + 2 + i, "job_id": "j", **line} for i, line in enumerate(tail)),
    ]


@pytest.mark.parametrize(
    ("line", "state"),
    [
        # an older wanbatch gave up reconciling a lost create: it may have made a paid task
        ({"event": "failed", "stage": "submit", "code": "Unreconciled", "message": "gave up"}, "submitting"),
        ({"event": "failed", "stage": "submit", "code": "HTTP400", "message": "create: non-JSON answer"}, "submitting"),
        # refused before anything left, or by the account: nothing was made; send it again
        (
            {
                "event": "failed",
                "stage": "submit",
                "code": "HTTP",
                "message": "connection failed before the request was sent",
            },
            "planned",
        ),
        ({"event": "failed", "stage": "submit", "code": "InvalidApiKey", "message": "Invalid API-key"}, "planned"),
        ({"event": "failed", "stage": "submit", "code": "Arrearage", "message": "overdue"}, "planned"),
        # the service refused the request itself: a real failure
        ({"event": "failed", "stage": "submit", "code": "DataInspectionFailed", "message": "x"}, "failed"),
    ],
)
def test_older_submit_failures(line: dict[str, Any], state: str) -> None:
    job = replay_lines(story(line)).jobs["j"]
    assert job.state == state, job
    if state == "failed":
        assert job.failure is not None and job.failure.kind == REFUSED


def test_an_older_poll_give_up_is_followed_again_and_a_server_failure_stays() -> None:
    answered = {"event": "submitted", "task_id": "t1"}
    running = {"event": "task.status", "task_id": "t1", "status": "RUNNING"}
    gave_up = {
        "event": "failed",
        "stage": "task",
        "code": "QueryFailed",
        "message": "404 get: non-JSON",
        "task_id": "t1",
    }
    job = replay_lines(story(answered, running, gave_up)).jobs["j"]
    assert job.state == "running" and job.failure is None and job.task_id == "t1"
    failed = {"event": "failed", "stage": "task", "code": "InternalError", "message": "boom", "task_id": "t1"}
    job = replay_lines(story(answered, failed)).jobs["j"]
    assert job.state == "failed" and job.failure is not None and job.failure.kind == TASK_FAILED


def test_new_lines_carry_their_kind() -> None:
    line = {"event": "failed", "stage": "download", "code": "VerifyError", "message": "x", "kind": NOT_SAVED}
    job = replay_lines(story({"event": "submitted", "task_id": "t"}, line)).jobs["j"]
    assert job.state == "failed" and job.failure is not None and job.failure.kind == NOT_SAVED


def test_unanswered_and_undecided_and_orphaned() -> None:
    lines = story(
        {"event": "submitted", "task_id": "bogus"},
        {"event": "unanswered", "task_id": "bogus", "reason": "nobody's id", "until": T + 2.5},
        {"event": "undecided", "reason": "two look-alikes", "candidates": ["a", "b"]},
        {"event": "orphaned"},
    )
    state = replay_lines(lines)
    job = state.jobs["j"]
    assert job.state == "submitting" and job.task_id is None and job.window_end == T + 2.5
    assert job.intent_ts == T + 1 and job.candidates == ["a", "b"] and job.orphan
    summary = state.summary()
    assert summary["undecided"] == [{"job_id": "j", "name": "n", "reason": "two look-alikes", "candidates": ["a", "b"]}]
    assert summary["orphans"] == ["n"]


def test_expired_counts_as_billed() -> None:
    state = replay_lines(story({"event": "submitted", "task_id": "t"}, {"event": "expired", "task_id": "t"}))
    assert state.summary()["cost"] == pytest.approx(1.2)
