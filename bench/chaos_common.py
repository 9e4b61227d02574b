"""Shared pieces of the chaos suite (``bench/chaos.py``): the emulator, the real CLI as a child process,
manifests, and the checks a finished run is held to.

The runner is always ``python -m runner run …`` in its own process, the API key only in its environment;
the emulator runs in a thread of the driving process (``run_in_thread``), so its stats and task table are
read directly once the runner has exited.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from runner.emulator.config import EmulatorConfig
from runner.emulator.server import ThreadedEmulator, run_in_thread
from runner.errors import LedgerError
from runner.models import parse_size
from runner.store.events import EVENTS
from runner.store.files import sha256_file
from runner.store.mp4 import Expect, verify_mp4
from runner.store.replay import replay

ROOT = Path(__file__).resolve().parents[1]
#: Distinctive, so a leak is found by a plain byte search of every file and stream.
KEY = "sk-CHAOSk3yDoNotLeak9f27c1e0b5a4"


def child_env(key: str = KEY, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASHSCOPE")}
    env["DASHSCOPE_API_KEY"] = key
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def write_manifest(
    path: Path, n: int, *, name: str = "chaos", duration: int = 2, size: str = "1280*720", tag: str = ""
) -> Path:
    """``n`` wan2.6 jobs with distinct prompts, so a body sent twice shows in the emulator's stats."""
    jobs = "".join(
        f"  - name: clip{i}\n    prompt: Shot {i}{tag} of a lighthouse at dusk, waves rolling in, cinematic.\n"
        for i in range(n)
    )
    path.write_text(
        f'version: 1\nname: {name}\ndefaults:\n  model: wan2.6-t2v\n  size: "{size}"\n  duration: {duration}\n'
        f"  prompt_extend: false\njobs:\n{jobs}",
        encoding="utf-8",
    )
    return path


@contextmanager
def emulator(**kw: Any) -> Iterator[ThreadedEmulator]:
    """An emulator on 127.0.0.1 (free port) in a thread; tasks last long enough to be killed mid-flight but
    nothing expires unless asked (retention and URL lifetime effectively infinite)."""
    kw.setdefault("speed", 3600.0)
    kw.setdefault("task_time", 1800.0)  # half a real second
    kw.setdefault("retention", 1e12)
    kw.setdefault("url_ttl", 1e12)
    emu = run_in_thread(EmulatorConfig(port=0, **kw))
    try:
        yield emu
    finally:
        emu.stop()


@dataclass
class Proc:
    """A finished (or killed) child: exit code, wall seconds, peak RSS (MB), and its captured output."""

    rc: int
    wall: float
    rss_mb: float
    out: str
    err: str
    argv: list[str] = field(default_factory=list)


def runner_argv(*args: str, python: Sequence[str] = ("-m", "runner")) -> list[str]:
    return [sys.executable, *python, *args]


def spawn(argv: list[str], cwd: Path, log: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start a child writing to ``cwd/log.out|err`` (files, so a full pipe never stalls it)."""
    with open(cwd / f"{log}.out", "wb") as out, open(cwd / f"{log}.err", "wb") as err:
        return subprocess.Popen(argv, cwd=cwd, env=env or child_env(), stdout=out, stderr=err)


def reap(proc: subprocess.Popen[bytes], started: float, cwd: Path, log: str, timeout: float | None = None) -> Proc:
    """Wait for ``proc`` (``wait4``: its own peak RSS); kill it with SIGKILL past ``timeout``."""
    deadline = None if timeout is None else started + timeout
    rss_mb = 0.0
    while proc.returncode is None:
        try:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        except ChildProcessError:  # reaped meanwhile by Popen (poll, or a kill that came after the exit)
            break
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            rss_mb = ru.ru_maxrss / 1024
            break
        if deadline is not None and time.monotonic() > deadline:
            proc.send_signal(signal.SIGKILL)
            deadline = None
        time.sleep(0.02)
    # A process Popen reaped first (it ended before the chaos kill, whose poll() reaps it) has its exit
    # code but no rusage: its peak RSS reads 0.
    assert proc.returncode is not None
    return Proc(
        proc.returncode,
        time.monotonic() - started,
        rss_mb,
        (cwd / f"{log}.out").read_text(encoding="utf-8", errors="replace"),
        (cwd / f"{log}.err").read_text(encoding="utf-8", errors="replace"),
        [str(a) for a in proc.args] if isinstance(proc.args, list) else [],
    )


def run_cli(*args: str, cwd: Path, log: str = "run", timeout: float = 300, env: dict[str, str] | None = None) -> Proc:
    """``python -m runner ARGS`` to completion (SIGKILL past ``timeout``)."""
    started = time.monotonic()
    return reap(spawn(runner_argv(*args), cwd, log, env), started, cwd, log, timeout)


def has_traceback(text: str) -> bool:
    return "Traceback (most recent call last)" in text


# ------------------------------------------------------------------------------------------------- checks


@dataclass
class LedgerCheck:
    lines: int = 0
    unreadable: int = 0  # lines that are not a JSON object of a known shape (a torn tail is not counted)
    torn_tail: bool = False
    replay_error: str | None = None


def check_ledger(out: Path) -> LedgerCheck:
    """Read every line of ``out/ledger.jsonl`` on its own and replay the whole file."""
    res = LedgerCheck()
    path = out / "ledger.jsonl"
    if not path.exists():
        return res
    data = path.read_bytes()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    elif lines:
        res.torn_tail = True
        lines.pop()
    for raw in lines:
        res.lines += 1
        try:
            obj = json.loads(raw)
        except ValueError:
            res.unreadable += 1
            continue
        if not isinstance(obj, dict) or obj.get("event") not in EVENTS or not isinstance(obj.get("ts"), int | float):
            res.unreadable += 1
    try:
        replay(path)
    except LedgerError as e:
        res.replay_error = str(e)
    return res


@dataclass
class Verified:
    jobs: int
    downloaded: int  # jobs in state downloaded whose file exists, matches its sha256 and decodes as asked
    bad_files: list[str]
    states: Counter[str]


def verify_videos(out: Path, job_names: Sequence[str] | None = None) -> Verified:
    """Check every downloaded job's file against the ledger and PyAV; ``job_names`` the manifest's jobs."""
    state = replay(out / "ledger.jsonl")
    bad: list[str] = []
    good = 0
    for job in state.jobs.values():
        if job.state != "downloaded":
            continue
        video = out / (job.path or "missing")
        try:
            if sha256_file(video) != job.sha256:
                raise ValueError("sha256 differs from the ledger")
            w, h = parse_size(job.size or "")
            verify_mp4(video, Expect(w, h, float(job.duration or 0)))
        except Exception as e:  # every way a file can be wrong counts the same here
            bad.append(f"{job.name}: {e}")
            continue
        good += 1
    states = Counter(j.state for j in state.jobs.values())
    total = len(job_names) if job_names is not None else len(state.jobs)
    return Verified(total, good, bad, states)


def paid_twice(emu: ThreadedEmulator, out: Path) -> tuple[int, int]:
    """(request bodies with more than one billable task, billable tasks no ledger job owns). Read after the
    runner has exited: FAILED and CANCELED tasks bill nothing, so only the others count."""
    store = emu.state.store
    now = emu.state.clock()
    by_body: dict[str, list[str]] = {}
    for task in store.order:
        if store.status(task, now) not in ("FAILED", "CANCELED"):
            by_body.setdefault(task.req.digest, []).append(task.task_id)
    owned = {tid for job in replay(out / "ledger.jsonl").jobs.values() for tid in job.task_ids}
    twice = sum(1 for tids in by_body.values() if len(tids) > 1)
    orphans = sum(1 for tids in by_body.values() for t in tids if t not in owned)
    return twice, orphans


def self_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def witness(emu: ThreadedEmulator, *outs: Path) -> dict[str, Any]:
    """What the emulator's own record of which body made which task says of the output folders (issue 13):

    * ``wrong_videos``: downloaded jobs whose task was made by another body, or whose file is not that task's;
    * ``overpaid_bodies``: bodies with more billed tasks than jobs (over all folders) asking for them;
    * ``shared_tasks``: tasks held by more than one job;
    * ``unsaved``: billed tasks no job saved;
    * ``billed``, ``saved``: counts.

    A job with a local audio file (issue 19) sends its body with the ``oss://`` URL of an upload in place of the
    ``file://`` one: every body sent with any upload of its file counts as the job's one body."""
    from runner.emulator.protocol import body_digest

    alias: dict[str, str] = {}  # digest of a body as sent -> digest of the job's body as planned
    for out in outs:
        urls: dict[tuple[str, str], list[str]] = {}
        lines = [json.loads(x) for x in (out / "ledger.jsonl").read_text(encoding="utf-8").splitlines() if x]
        for line in lines:
            if line.get("event") == "uploaded":
                urls.setdefault((line["file"], line["model"]), []).append(line["url"])
        for job in replay(out / "ledger.jsonl").jobs.values():
            local = job.request.get("input", {}).get("audio_url", "")
            if isinstance(local, str) and local.startswith("file://"):
                for url in urls.get((unquote(urlsplit(local).path), job.model), []):
                    sent = {**job.request, "input": {**job.request["input"], "audio_url": url}}
                    alias[body_digest(sent)] = body_digest(job.request)

    store = emu.state.store
    now = emu.state.clock()
    tasks = {t.task_id: (alias.get(t.req.digest, t.req.digest), store.status(t, now)) for t in store.order}
    owners: dict[str, list[tuple[str, Any]]] = {}
    wanted: Counter[str] = Counter()
    wrong, saved = [], 0
    for out in outs:
        for job in replay(out / "ledger.jsonl").jobs.values():
            wanted[body_digest(job.request)] += 1
            for tid in job.task_ids:
                owners.setdefault(tid, []).append((str(out), job))
            if job.state == "downloaded":
                made = tasks.get(job.task_id or "")
                data = (out / (job.path or "")).read_bytes() if job.path else b""
                if made is None or made[0] != body_digest(job.request) or f"task_id={job.task_id}".encode() not in data:
                    wrong.append(job.name)
                saved += 1
    billed: Counter[str] = Counter()
    shared, unsaved = [], []
    for tid, (digest, status) in tasks.items():
        if status in ("FAILED", "CANCELED"):
            continue
        billed[digest] += 1
        holders = owners.get(tid, [])
        if len(holders) > 1:
            shared.append(tid)
        if not holders or holders[0][1].state != "downloaded" or holders[0][1].task_id != tid:
            unsaved.append(tid)
    over = {d[:8]: n for d, n in billed.items() if n > wanted.get(d, 0)}
    return {"wrong_videos": wrong, "overpaid_bodies": over, "shared_tasks": shared, "unsaved": unsaved,
            "billed": sum(billed.values()), "saved": saved}  # fmt: skip
