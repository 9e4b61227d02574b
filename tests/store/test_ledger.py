"""The ledger: format, replay (torn and garbage lines), group commit, durability, and the run lock."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from runner.errors import LedgerError, LockHeld
from runner.store.events import (
    CANCELED,
    DOWNLOADED,
    EXPIRED,
    FAILED,
    PLANNED,
    RUN_FINISHED,
    RUN_STARTED,
    STATES,
    SUBMITTED,
    SUBMITTING,
    SUCCEEDED,
    TASK_STATUS,
)
from runner.store.ledger import LedgerWriter
from runner.store.lock import RunLock
from runner.store.replay import replay, sound_length

PLAN = {
    "name": "detective",
    "model": "wan2.6-t2v",
    "request": {"model": "wan2.6-t2v", "input": {"prompt": "a chase"}, "parameters": {"size": "1280*720"}},
    "size": "1280*720",
    "duration": 10,
    "seed": None,
    "seconds": 10,
    "cost": 6.0,
}
USAGE = {"duration": 10, "size": "1280*720", "input_video_duration": 0, "output_video_duration": 10, "SR": 720}


def ok_fields(task: str = "t1") -> dict[str, Any]:
    return {
        "task_id": task,
        "video_url": "https://oss/x.mp4?Expires=2000000000",
        "url_expires": 2000000000.0,
        "usage": USAGE,
        "orig_prompt": "a chase",
        "actual_prompt": None,
        "submit_time": "2025-09-29 14:18:52.331",
        "scheduled_time": "2025-09-29 14:18:59.290",
        "end_time": "2025-09-29 14:23:39.407",
    }


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        self.t += 1
        return self.t


async def write_story(path: Path) -> None:
    """A run with one job of each fate."""
    async with LedgerWriter(path, clock=Clock()) as w:
        await w.append(RUN_STARTED, None, run_id="r1", name="demo", manifest="demo.yaml", region="cn-beijing",
                       base_url="http://127.0.0.1/api/v1", pid=os.getpid(), version="0.1.0")  # fmt: skip
        for j in ("done", "ok", "bad", "run", "pend", "sub", "plan"):
            await w.append(PLANNED, j, **{**PLAN, "name": j})
        for j in ("done", "ok", "bad", "run", "pend", "sub"):
            await w.append(SUBMITTING, j, attempt=1, model="wan2.6-t2v")
        for j in ("done", "ok", "bad", "run", "pend"):
            await w.append(SUBMITTED, j, task_id=f"t-{j}", request_id="rq", adopted=False)
        await w.append(TASK_STATUS, "run", task_id="t-run", status="RUNNING")
        await w.append(TASK_STATUS, "pend", task_id="t-pend", status="PENDING")
        await w.append(SUCCEEDED, "done", **ok_fields("t-done"))
        await w.append(SUCCEEDED, "ok", **{**ok_fields("t-ok"), "usage": {"video_duration": 5, "video_ratio": "x"}})
        await w.append(DOWNLOADED, "done", path="videos/done.mp4", bytes=1234, sha256="ab" * 32)
        await w.append(FAILED, "bad", stage="task", code="DataInspectionFailed", message="inappropriate",
                       request_id="rq2", task_id="t-bad")  # fmt: skip
        await w.append(RUN_FINISHED, None, exit_code=1, counts={})


async def test_replay_tells_each_job_its_state(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    await write_story(path)
    s = replay(path)
    states = {j: s.jobs[j].state for j in s.jobs}
    assert states == {"done": "downloaded", "ok": "succeeded", "bad": "failed", "run": "running",
                      "pend": "pending", "sub": "submitting", "plan": "planned"}  # fmt: skip
    done = s.jobs["done"]
    assert (done.task_id, done.path, done.bytes, done.sha256) == ("t-done", "videos/done.mp4", 1234, "ab" * 32)
    assert done.usage == USAGE and done.times["end_time"] == "2025-09-29 14:23:39.407"
    assert done.url_expires == 2000000000.0 and done.request == PLAN["request"]
    assert s.jobs["sub"].submitting_since is not None and s.jobs["sub"].attempts == 1
    assert s.jobs["run"].submitting_since is None
    assert s.jobs["bad"].failure is not None and s.jobs["bad"].failure.code == "DataInspectionFailed"
    assert s.known_task_ids() == {"t-done", "t-ok", "t-bad", "t-run", "t-pend"}
    assert (s.name, s.region, s.run_ids, s.exit_code) == ("demo", "cn-beijing", ["r1"], 1)


async def test_summary_has_the_status_json_shape(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    await write_story(path)
    summary = replay(path).summary()
    keys = [
        "name",
        "jobs",
        "states",
        "seconds",
        "cost",
        "currency",
        "failures",
        "undecided",
        "orphans",
        "refusals",
        "accounts",
    ]
    assert list(summary) == keys
    assert list(summary["states"]) == list(STATES)
    assert summary["states"]["downloaded"] == 1 and summary["states"]["expired"] == 0
    assert summary["jobs"] == 7 and summary["name"] == "demo" and summary["currency"] == "CNY"
    # billed from usage: 10 s at 0.6 for "done", 5 s (legacy usage.video_duration) at 0.6 for "ok"
    assert summary["seconds"] == 15
    assert summary["cost"] == pytest.approx(9.0)
    assert summary["failures"] == [
        {"job_id": "bad", "name": "bad", "code": "DataInspectionFailed", "message": "inappropriate",
         "request_id": "rq2"}
    ]  # fmt: skip
    json.dumps(summary)


def lines_of(*objs: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(o).encode() + b"\n" for o in objs)


PLANNED_LINE = {"ts": 1.0, "event": "planned", "job_id": "j1", **PLAN}
SUBMITTING_LINE = {"ts": 2.0, "event": "submitting", "job_id": "j1", "attempt": 1, "model": "wan2.6-t2v"}
SUBMITTED_LINE = {"ts": 3.0, "event": "submitted", "job_id": "j1", "task_id": "t1", "request_id": "r"}


@pytest.mark.parametrize(
    "tail",
    [b'{"ts": 4.0, "event": "succ', b'{"ts": 4.0, "event": "task.status"}', b"\x00\x00\x00", b"garbage\n", b"{]\n"],
)
def test_torn_last_line_is_ignored(tmp_path: Path, tail: bytes) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(lines_of(PLANNED_LINE, SUBMITTING_LINE, SUBMITTED_LINE) + tail)
    s = replay(path)
    assert s.torn_tail and s.lines == 3
    assert s.jobs["j1"].state == "pending"


def test_a_complete_last_line_without_newline_is_torn(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(lines_of(PLANNED_LINE, SUBMITTING_LINE) + json.dumps(SUBMITTED_LINE).encode())
    s = replay(path)
    assert s.jobs["j1"].state == "submitting"  # never acknowledged, so never acted on
    assert sound_length(path) == len(lines_of(PLANNED_LINE, SUBMITTING_LINE))


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (b"garbage\n", "not JSON"),
        (b"[1, 2]\n", "not a JSON object"),
        (b'{"ts": 1}\n', "no 'event' field"),
        (b'{"ts": 1, "event": "submitted", "job_id": "j1"}\n', "task_id"),
        (b'{"ts": "x", "event": "planned", "job_id": "j1", "name": "a", "model": "m"}\n', "ts"),
        (b"\xff\xfe\n", "not"),
        (b"[" * 10000 + b"]" * 10000 + b"\n", "nested too deeply"),  # regression: was a RecursionError
    ],
)
def test_unreadable_line_in_the_middle_names_file_and_line(tmp_path: Path, bad: bytes, reason: str) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(lines_of(PLANNED_LINE) + bad + lines_of(SUBMITTING_LINE))
    with pytest.raises(LedgerError) as ei:
        replay(path)
    assert f"{path}:2:" in str(ei.value) and reason in str(ei.value)
    assert not isinstance(ei.value, LockHeld)


def test_unknown_events_and_fields_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(
        lines_of(
            {**PLANNED_LINE, "future_field": [1, 2]},
            {"ts": 1.5, "event": "job.thought_about_it", "job_id": "j1", "whatever": True},
            SUBMITTING_LINE,
        )
        + b"\n"  # a blank line is not an error
    )
    s = replay(path)
    assert s.jobs["j1"].state == "submitting" and s.skipped == 1 and s.lines == 2 and not s.torn_tail


def test_missing_ledger_is_an_empty_run(tmp_path: Path) -> None:
    s = replay(tmp_path / "nope.jsonl")
    assert s.jobs == {} and s.counts() == dict.fromkeys(STATES, 0)


def test_transitions_that_must_not_move_a_job(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(
        lines_of(
            PLANNED_LINE,
            SUBMITTING_LINE,
            SUBMITTED_LINE,
            {"ts": 4, "event": "succeeded", "job_id": "j1", **ok_fields("t1")},
            {"ts": 5, "event": "task.status", "job_id": "j1", "task_id": "t1", "status": "RUNNING"},  # late news
            {**PLANNED_LINE, "ts": 6, "cost": 7.0},  # re-planned on resume: spec updated, progress kept
        )
    )
    job = replay(path).jobs["j1"]
    assert job.state == "succeeded" and job.cost == 7.0


def test_resubmission_keeps_every_task_id(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(
        lines_of(
            PLANNED_LINE,
            SUBMITTING_LINE,
            SUBMITTED_LINE,
            {"ts": 4, "event": "failed", "job_id": "j1", "stage": "task", "code": "InternalError", "task_id": "t1"},
            {**SUBMITTING_LINE, "ts": 5, "attempt": 2},
            {"ts": 6, "event": "submitted", "job_id": "j1", "task_id": "t2", "adopted": True},
            {"ts": 7, "event": "task.status", "job_id": "j1", "task_id": "t1", "status": "RUNNING"},  # old task
        )
    )
    job = replay(path).jobs["j1"]
    assert (job.state, job.task_id, job.task_ids, job.attempts, job.adopted) == ("pending", "t2", ["t1", "t2"], 2, True)
    assert job.failure is None


def test_canceled_and_expired(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(
        lines_of(
            PLANNED_LINE,
            {**PLANNED_LINE, "job_id": "j2"},
            {"ts": 4, "event": CANCELED, "job_id": "j1", "task_id": "t1"},
            {"ts": 4, "event": EXPIRED, "job_id": "j2", "task_id": "t2"},
        )
    )
    counts = replay(path).counts()
    assert counts["canceled"] == 1 and counts["expired"] == 1 and counts["planned"] == 0


# --- the writer -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "tail",
    [
        b'{"ts": 2, "event": "subm',
        b"\x00" * 40,
        b"garbage\n",
        b'{"ts": 2, "event": "submitted", "job_id": "j1"}\n',  # JSON, but not a line replay can read
    ],
)
async def test_writer_cuts_a_torn_tail_before_appending(tmp_path: Path, tail: bytes) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(lines_of(PLANNED_LINE) + tail)
    assert replay(path).torn_tail
    async with LedgerWriter(path) as w:
        assert w.repaired_bytes == len(tail)
        await w.append(SUBMITTING, "j1", attempt=1, model="wan2.6-t2v")
    s = replay(path)
    assert not s.torn_tail and s.lines == 2 and s.jobs["j1"].state == "submitting"
    assert path.read_bytes().count(b"\n") == 2


async def test_writer_keeps_a_sound_last_line_of_an_unknown_event(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(lines_of(PLANNED_LINE, {"ts": 2, "event": "from.the.future", "job_id": "j1"}))
    async with LedgerWriter(path) as w:
        assert w.repaired_bytes == 0
        await w.append(SUBMITTING, "j1", attempt=1)
    s = replay(path)
    assert s.lines == 2 and s.skipped == 1


async def test_writer_rejects_lines_replay_could_not_read(tmp_path: Path) -> None:
    async with LedgerWriter(tmp_path / "ledger.jsonl") as w:
        with pytest.raises(ValueError, match="unknown ledger event"):
            await w.append("job.exploded", "j1")
        with pytest.raises(ValueError, match="task_id"):
            await w.append(SUBMITTED, "j1", request_id="r")
        with pytest.raises(ValueError, match="not JSON"):
            await w.append(PLANNED, "j1", **{**PLAN, "request": {"x": object()}})
        with pytest.raises(ValueError, match="not JSON"):
            await w.append(PLANNED, "j1", **{**PLAN, "cost": float("nan")})
        await w.append(PLANNED, "j1", **{**PLAN, "name": "line\nbreak ☃"})
    assert (tmp_path / "ledger.jsonl").read_bytes().count(b"\n") == 1
    assert replay(tmp_path / "ledger.jsonl").jobs["j1"].name == "line\nbreak ☃"


class GatedFsync:
    """An fsync that counts calls and can hold the first one until released (from another thread)."""

    def __init__(self, path: Path, hold_first: bool = False) -> None:
        self.path = path
        self.calls = 0
        self.sizes: list[int] = []  # bytes in the file at each fsync
        self.entered = threading.Event()
        self.release = threading.Event()
        if not hold_first:
            self.release.set()

    def __call__(self, fd: int) -> None:
        self.calls += 1
        self.sizes.append(os.fstat(fd).st_size)
        self.entered.set()
        assert self.release.wait(10)
        os.fsync(fd)


async def test_group_commit_batches_lines_that_arrive_during_an_fsync(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    fsync = GatedFsync(path, hold_first=True)
    async with LedgerWriter(path, fsync=fsync) as w:
        first = asyncio.create_task(w.append(PLANNED, "j0", **PLAN))
        await asyncio.to_thread(fsync.entered.wait, 10)  # the first fsync is running (and held)
        rest = [asyncio.create_task(w.append(SUBMITTING, f"j{i}", attempt=1)) for i in range(1, 200)]
        await asyncio.sleep(0)  # let them all queue up
        assert not first.done() and not any(t.done() for t in rest)
        fsync.release.set()
        await asyncio.gather(first, *rest)
        assert w.lines == 200 and w.fsyncs == fsync.calls == 2
    assert replay(path).lines == 200


async def test_many_concurrent_appends_are_all_durable_with_fewer_fsyncs(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    fsync = GatedFsync(path)
    async with LedgerWriter(path, fsync=fsync) as w:
        await asyncio.gather(*(w.append(PLANNED, f"j{i}", **PLAN) for i in range(500)))
        assert fsync.calls < 500
        assert fsync.sizes[-1] == path.stat().st_size  # the last fsync covered every line
    s = replay(path)
    assert len(s.jobs) == 500


async def test_append_returns_only_after_its_line_is_fsyncd(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    fsync = GatedFsync(path, hold_first=True)
    async with LedgerWriter(path, fsync=fsync) as w:
        intent = asyncio.create_task(w.append(SUBMITTING, "j1", attempt=1, model="wan2.6-t2v"))
        await asyncio.to_thread(fsync.entered.wait, 10)
        await asyncio.sleep(0)
        assert not intent.done()  # written but not yet fsync'd: the POST must still wait
        fsync.release.set()
        await intent
        size = path.stat().st_size
        assert fsync.sizes == [size]  # the fsync that released it covered the whole line
    assert replay(path).jobs["j1"].state == "submitting"


async def test_a_failing_disk_fails_every_waiting_append(tmp_path: Path) -> None:
    def broken(fd: int) -> None:
        raise OSError(28, "No space left on device")

    w = LedgerWriter(tmp_path / "ledger.jsonl", fsync=broken)
    await w.open()
    results = await asyncio.gather(*(w.append(PLANNED, f"j{i}", **PLAN) for i in range(5)), return_exceptions=True)
    assert all(isinstance(r, LedgerError) and "No space" in str(r) for r in results)
    with pytest.raises(LedgerError):
        await w.append(PLANNED, "j9", **PLAN)
    await w.close()


async def test_close_is_idempotent_and_append_after_close_fails(tmp_path: Path) -> None:
    w = LedgerWriter(tmp_path / "ledger.jsonl")
    await w.open()
    await w.append(PLANNED, "j1", **PLAN)
    await w.close()
    await w.close()
    with pytest.raises(RuntimeError):
        await w.append(PLANNED, "j2", **PLAN)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0, max_value=10_000))
def test_any_crash_point_replays_to_a_prefix_and_appends_cleanly(tmp_path: Path, cut: int) -> None:
    objs = [PLANNED_LINE, SUBMITTING_LINE, SUBMITTED_LINE, {"ts": 4, "event": "succeeded", "job_id": "j1",
            **ok_fields("t1")}, {"ts": 5, "event": "downloaded", "job_id": "j1", "path": "v.mp4", "bytes": 1,
            "sha256": "00"}]  # fmt: skip
    full = lines_of(*objs)
    cut = cut % (len(full) + 1)
    path = tmp_path / f"ledger-{cut}.jsonl"
    path.write_bytes(full[:cut])
    complete = full[:cut].count(b"\n")
    s = replay(path)
    assert s.lines == complete
    assert s.torn_tail == (cut > 0 and full[cut - 1 : cut] != b"\n")

    async def append_one() -> None:
        async with LedgerWriter(path) as w:
            await w.append(RUN_FINISHED, None, exit_code=0, counts={})

    asyncio.run(append_one())
    assert replay(path).lines == complete + 1


# --- the lock -------------------------------------------------------------------------------------------
def test_second_holder_gets_lock_held(tmp_path: Path) -> None:
    with RunLock(tmp_path) as lock:
        assert lock.held and (tmp_path / ".lock").read_text().strip() == str(os.getpid())
        with pytest.raises(LockHeld, match=f"pid {os.getpid()}"):
            RunLock(tmp_path).acquire()
    assert not (tmp_path / ".lock").exists()
    with RunLock(tmp_path) as again:
        assert again.held and again.took_over_from is None


def test_stale_lock_of_a_dead_process_is_taken_over_with_a_log_line(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    (tmp_path / ".lock").write_text(f"{pid}\n")
    with capture_logs() as logs, RunLock(tmp_path) as lock:
        assert lock.took_over_from == pid
        assert (tmp_path / ".lock").read_text().strip() == str(os.getpid())
    assert any(e["event"] == "lock.taken_over" and e["stale_pid"] == pid for e in logs)


CHILD = """
import sys, time
from runner.store.lock import RunLock
lock = RunLock(sys.argv[1])
lock.acquire()
print("locked", flush=True)
sys.stdin.readline()
"""


def test_two_processes_cannot_both_hold_it(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(LockHeld, match=f"pid {child.pid}"):
            RunLock(tmp_path).acquire()
        child.kill()  # dies holding it: the kernel frees the flock, the pid file stays behind
        child.wait(10)
        assert (tmp_path / ".lock").exists()
        with capture_logs() as logs, RunLock(tmp_path) as lock:
            assert lock.took_over_from == child.pid
        assert [e["event"] for e in logs] == ["lock.taken_over"]
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)


def test_apply_dict_skips_unknown_and_bills_a_download_failure() -> None:
    from runner.store.state import RunState

    s = RunState()
    s.apply_dict(PLANNED_LINE)
    s.apply_dict({"ts": 2, "event": "not.yet.invented", "job_id": "j1"})
    s.apply_dict({"ts": 3, "event": "succeeded", "job_id": "j1", **ok_fields("t1")})
    s.apply_dict({"ts": 4, "event": "failed", "job_id": "j1", "stage": "download", "code": "VerifyError",
                  "message": "video is 64x64", "task_id": "t1"})  # fmt: skip
    job = s.jobs["j1"]
    assert job.state == "failed" and job.task_status == "SUCCEEDED" and job.video_url is not None
    assert job.failure is not None and job.failure.stage == "download"
    summary = s.summary(name="given")
    assert summary["name"] == "given" and summary["cost"] == pytest.approx(6.0)  # the API billed it
    assert summary["failures"][0]["code"] == "VerifyError"
    assert (s.lines, s.skipped) == (3, 1)
    with pytest.raises(ValueError, match="task_id"):
        s.apply_dict({"ts": 5, "event": "submitted", "job_id": "j1"})


def test_an_answered_intent_clears_submitting_since() -> None:
    from runner.store.state import RunState

    s = RunState()
    for obj in (PLANNED_LINE, SUBMITTING_LINE):
        s.apply_dict(obj)
    assert s.jobs["j1"].submitting_since == 2.0
    s.apply_dict({**SUBMITTING_LINE, "ts": 9.0, "attempt": 2})
    assert s.jobs["j1"].submitting_since == 9.0 and s.jobs["j1"].attempts == 2
    s.apply_dict(SUBMITTED_LINE)
    assert s.jobs["j1"].submitting_since is None


async def test_a_cancelled_writer_fails_waiting_appends_instead_of_hanging(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    fsync = GatedFsync(path, hold_first=True)
    w = LedgerWriter(path, fsync=fsync)
    await w.open()
    first = asyncio.create_task(w.append(PLANNED, "j1", **PLAN))
    await asyncio.to_thread(fsync.entered.wait, 10)
    second = asyncio.create_task(w.append(PLANNED, "j2", **PLAN))
    await asyncio.sleep(0)
    assert w._task is not None
    w._task.cancel()
    fsync.release.set()
    results = await asyncio.wait_for(asyncio.gather(first, second, return_exceptions=True), 10)
    assert all(isinstance(r, LedgerError) for r in results)
    with pytest.raises(LedgerError):
        await w.append(PLANNED, "j3", **PLAN)
    await w.close()


def test_minimal_lines_replay_with_the_formats_defaults(tmp_path: Path) -> None:
    """Only the required keys on every line: replay fills in the defaults the line models name."""
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(
        lines_of(
            {"ts": 1, "event": "run.started"},
            {"ts": 2, "event": "planned", "job_id": "j1", "name": "a", "model": "m"},
            {"ts": 3, "event": "submitting", "job_id": "j1"},
            {"ts": 4, "event": "submitted", "job_id": "j1", "task_id": "t1"},
            {"ts": 5, "event": "succeeded", "job_id": "j1", "task_id": "t1"},
            {"ts": 6, "event": "planned", "job_id": "j2", "name": "b", "model": "m"},
            {"ts": 7, "event": "failed", "job_id": "j2"},
            {"ts": 8, "event": "run.finished"},
        )
    )
    s = replay(path)
    j1, j2 = s.jobs["j1"], s.jobs["j2"]
    assert (j1.state, j1.request, j1.size, j1.seconds, j1.cost, j1.attempts) == ("succeeded", {}, None, 0.0, 0.0, 1)
    assert (j1.adopted, j1.usage, j1.video_url, j1.times, j1.updated) == (False, None, None, {}, 5.0)
    assert isinstance(j1.updated, float) and isinstance(j1.seconds, float)
    assert j2.state == "failed" and j2.failure is not None
    assert (j2.failure.stage, j2.failure.code, j2.failure.task_id, j2.task_status) == ("task", None, None, None)
    assert (s.started, s.finished, s.exit_code, s.run_ids, s.name, s.lines) == (1.0, 8.0, None, [], None, 8)
