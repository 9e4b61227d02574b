"""End-to-end helpers: an emulator on 127.0.0.1 in a thread of the test process, the runner as a real
``python -m runner`` subprocess, small manifests, and the checks every finished run must pass."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench import chaos_common
from bench.chaos_common import child_env
from runner.emulator.config import EmulatorConfig
from runner.emulator.server import ThreadedEmulator, run_in_thread
from runner.models import parse_size
from runner.store.files import sha256_file, sidecar_path
from runner.store.mp4 import Expect, verify_mp4
from runner.store.replay import replay

#: A distinctive key: the tests grep every output for it.
KEY = "sk-e2eSECRETkey7c1d0f9a2b"


def env(**extra: str) -> dict[str, str]:
    return child_env(KEY, **extra)


def cli(
    *args: str, cwd: Path, timeout: float = 60, environ: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m runner ARGS`` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "runner", *args],
        cwd=cwd,
        env=environ if environ is not None else env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def spawn(*args: str, cwd: Path, log: str = "runner", environ: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``python -m runner ARGS`` without waiting. Its output goes to ``cwd/LOG.out`` and ``cwd/LOG.err``
    (a pipe nobody reads could fill and stall the runner); ``output(cwd, log)`` reads them."""
    with open(cwd / f"{log}.out", "w") as out, open(cwd / f"{log}.err", "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "runner", *args],
            cwd=cwd,
            env=environ if environ is not None else env(),
            stdout=out,
            stderr=err,
            text=True,
        )
    _SPAWNED.append(proc)
    return proc


#: Processes ``spawn`` started; ``_no_stray_runner`` kills any still alive when its test ends (a failed
#: assertion must not leave a runner looping against a stopped emulator).
_SPAWNED: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _no_stray_runner() -> Iterator[None]:
    yield
    while _SPAWNED:
        proc = _SPAWNED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def output(cwd: Path, log: str = "runner") -> tuple[str, str]:
    """(stdout, stderr) of the process ``spawn`` started with ``log``."""
    return (cwd / f"{log}.out").read_text(encoding="utf-8"), (cwd / f"{log}.err").read_text(encoding="utf-8")


def write_manifest(path: Path, n: int, *, name: str = "e2e", **kw: Any) -> Path:
    """``n`` wan2.6 jobs with distinct prompts (the chaos suite's manifest, named for these tests)."""
    return chaos_common.write_manifest(path, n, name=name, **kw)


@pytest.fixture
def emulator() -> Iterator[Any]:
    """A factory: ``emulator(**EmulatorConfig fields)`` → a started ThreadedEmulator (stopped afterwards)."""
    started: list[ThreadedEmulator] = []

    def make(**kw: Any) -> ThreadedEmulator:
        kw.setdefault("speed", 3600.0)
        kw.setdefault("task_time", 1800.0)  # half a real second per task
        kw.setdefault("retention", 1e9)  # simulated seconds: a slow machine must not see tasks expire
        kw.setdefault("url_ttl", 1e9)
        kw.setdefault("seed", 7)
        emu = run_in_thread(EmulatorConfig(port=0, **kw))
        started.append(emu)
        return emu

    yield make
    for emu in started:
        emu.stop()


def ledger_lines(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "ledger.jsonl").read_text(encoding="utf-8").splitlines() if line]


def wait_submitted(out: Path, n: int, within: float = 30.0) -> None:
    """Wait until the run writing ``out`` has recorded ``n`` submitted tasks (at most ``within`` seconds): the
    moment the crash tests kill it, with paid tasks in flight."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if (out / "ledger.jsonl").exists() and sum(x["event"] == "submitted" for x in ledger_lines(out)) >= n:
            return
        time.sleep(0.02)


def assert_complete(out: Path, n: int) -> None:
    """Every job of the run is downloaded exactly once: one verified MP4 matching the ledger's sha256, its
    sidecar, no leftovers, and each job's events in lifecycle order."""
    state = replay(out / "ledger.jsonl")
    assert len(state.jobs) == n
    videos = sorted((out / "videos").glob("*.mp4"))
    assert len(videos) == n, [v.name for v in videos]
    assert not list((out / "videos").glob("*.part")), "a partial download was left behind"
    for job in state.jobs.values():
        assert job.state == "downloaded", (job.name, job.state, job.failure)
        assert job.path and job.sha256
        video = out / job.path
        assert sha256_file(video) == job.sha256
        w, h = parse_size(job.size or "")
        verify_mp4(video, Expect(w, h, float(job.duration or 0)))
        side = json.loads(sidecar_path(video).read_text(encoding="utf-8"))
        assert side["sha256"] == job.sha256 and side["task_id"] == job.task_id
    by_job: dict[str, list[str]] = {}
    for line in ledger_lines(out):
        if line.get("job_id"):
            by_job.setdefault(line["job_id"], []).append(line["event"])
    order = ["planned", "submitting", "submitted", "succeeded", "downloaded"]
    for job_id, events in by_job.items():
        assert events[0] == "planned", events
        assert events[-1] == "downloaded", events
        firsts = [events.index(e) for e in order]
        assert firsts == sorted(firsts), (job_id, events)


def assert_no_key(out: Path, *texts: str) -> None:
    """The API key is in no file of the output folder and in none of ``texts``."""
    for path in out.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), f"the API key leaked into {path}"
    for text in texts:
        assert KEY not in text


def server_tasks(emu: ThreadedEmulator) -> dict[str, list[tuple[str, str]]]:
    """The emulator's tasks by request-body digest: ``[(task_id, status), …]`` in submission order. Read once
    the runner has exited (the emulator is idle then)."""
    store = emu.state.store
    now = emu.state.clock()
    out: dict[str, list[tuple[str, str]]] = {}
    for task in store.order:
        out.setdefault(task.req.digest, []).append((task.task_id, store.status(task, now)))
    return out


def assert_never_paid_twice(emu: ThreadedEmulator, out: Path) -> None:
    """No request body has two tasks that bill (only FAILED or CANCELED ones cost nothing), every task the
    server made for a job's body is known to that job in the ledger or cost nothing, and a downloaded job's
    video comes from its body's one billed task."""
    state = replay(out / "ledger.jsonl")
    owner = {tid: job for job in state.jobs.values() for tid in job.task_ids}
    for digest, tasks in server_tasks(emu).items():
        billed = [tid for tid, status in tasks if status not in ("FAILED", "CANCELED")]
        assert len(billed) <= 1, f"body {digest[:8]} paid for {len(billed)} tasks: {tasks}"
        for tid in billed:
            assert tid in owner, f"task {tid} bills but no job of the ledger owns it (a lost create not adopted)"
            job = owner[tid]
            if job.state == "downloaded":
                assert job.task_id == tid, (job.name, job.task_id, tid)


def assert_witness(emu: ThreadedEmulator, *outs: Path, unsaved_ok: int = 0) -> dict[str, int]:
    """The emulator's own record of which body made which task, against every output folder's ledger and files
    (``bench.chaos_common.witness``): every downloaded video is the one its own request made, no body is paid
    more often than jobs ask for it, no task is held by two jobs, and every paid task is saved (``unsaved_ok``
    allows that many unsaved, for cases that tell the user instead). Returns ``billed`` and ``saved``."""
    w = chaos_common.witness(emu, *outs)
    assert not w["wrong_videos"], f"videos that are not their own body's task: {w['wrong_videos']}"
    assert not w["overpaid_bodies"], f"bodies paid more often than jobs ask: {w['overpaid_bodies']}"
    assert not w["shared_tasks"], f"tasks held by two jobs: {w['shared_tasks']}"
    assert len(w["unsaved"]) <= unsaved_ok, f"paid tasks never saved: {w['unsaved']}"
    return {"billed": w["billed"], "saved": w["saved"]}
