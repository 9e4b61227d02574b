"""Reconcile decides every lost create right (issue 13): look-alike siblings, skewed clocks, two folders on one
account, odd answers after the task exists, intents older than the retention, a lenient prompt echo, and other
clients' look-alike tasks. Each case runs the real CLI against a server that makes the task and then loses or
garbles the answer, and checks the emulator's own record of which body made which task (``assert_witness``)."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from runner.emulator.config import EmulatorConfig
from runner.store.replay import replay

from .conftest import assert_no_key, assert_witness, cli, ledger_lines, output, spawn, write_manifest

PROMPT = "A lighthouse at dusk, waves rolling in, cinematic."


def write_sweep(path: Path, seeds: int, *, name: str = "sweep") -> Path:
    """One prompt, one size, one duration, ``seeds`` seeds: jobs the server cannot tell apart."""
    path.write_text(
        f'version: 1\nname: {name}\ndefaults:\n  model: wan2.6-t2v\n  size: "1280*720"\n  duration: 2\n'
        f"  prompt_extend: false\njobs:\n  - name: sweep\n    prompt: {PROMPT}\n"
        f"    matrix:\n      seed: [{', '.join(str(100 + i) for i in range(seeds))}]\n",
        encoding="utf-8",
    )
    return path


def run(emu: Any, manifest: Path, out: Path, *extra: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return cli("run", str(manifest), "--out", str(out), "--base-url", emu.base_url, *extra,
               cwd=manifest.parent, timeout=timeout)  # fmt: skip


def no_traceback(*texts: str) -> None:
    for text in texts:
        assert "Traceback" not in text, text[-3000:]


def test_siblings_of_a_seed_sweep_each_get_their_own_video(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(seed=21, faults=EmulatorConfig.parse_faults(["reset_after_create=0.5", "late=0.3"]))
    manifest = write_sweep(tmp_path / "m.yaml", 10)
    r = run(emu, manifest, tmp_path / "out")
    assert r.returncode == 0, r.stderr[-3000:]
    stats = emu.stats()
    assert stats["resets_after_create"] >= 3 and stats["faults_injected"].get("late", 0) >= 1, stats
    counts = assert_witness(emu, tmp_path / "out")
    assert counts == {"billed": 10, "saved": 10}
    adopted = [x for x in ledger_lines(tmp_path / "out") if x["event"] == "submitted" and x.get("adopted")]
    assert len(adopted) == stats["resets_after_create"]
    no_traceback(r.stdout, r.stderr)


def test_siblings_survive_sigkill_at_random_moments(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(seed=4, task_time=3600.0, faults=EmulatorConfig.parse_faults(["reset_after_create=0.4", "late=0.3"]))
    manifest = write_sweep(tmp_path / "m.yaml", 8)
    out = tmp_path / "out"
    args = ("run", str(manifest), "--out", str(out), "--base-url", emu.base_url)
    rng = random.Random(13)
    for round_no in range(5):
        proc = spawn(*args, cwd=tmp_path, log=f"kill{round_no}")
        time.sleep(rng.uniform(0.8, 2.5))
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    r = cli(*args, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert assert_witness(emu, out) == {"billed": 8, "saved": 8}
    no_traceback(r.stderr)


@pytest.mark.parametrize("offset", [-3600.0, 3600.0, -900.0])
def test_a_host_clock_off_against_the_server_changes_nothing(tmp_path: Path, emulator: Any, offset: float) -> None:
    # the emulator's clock runs `offset` seconds off the host's: -3600 is a host clock an hour fast
    emu = emulator(seed=8, clock_offset=offset, faults=EmulatorConfig.parse_faults(["reset_after_create=0.5"]))
    manifest = write_manifest(tmp_path / "m.yaml", 8)
    r = run(emu, manifest, tmp_path / "out")
    assert r.returncode == 0, r.stderr[-3000:]
    assert emu.stats()["resets_after_create"] >= 2
    assert assert_witness(emu, tmp_path / "out") == {"billed": 8, "saved": 8}
    skews = [x["skew"] for x in ledger_lines(tmp_path / "out") if x["event"] == "submitting" and x.get("skew")]
    assert skews and all(abs(s - offset) < 2.0 for s in skews), skews


def test_two_folders_running_one_manifest_on_one_account_keep_their_own_tasks(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(seed=3, faults=EmulatorConfig.parse_faults(["reset_after_create=0.5"]))
    manifest = write_manifest(tmp_path / "m.yaml", 8)
    procs = [
        spawn(
            "run",
            str(manifest),
            "--out",
            str(tmp_path / f"out{i}"),
            "--base-url",
            emu.base_url,
            cwd=tmp_path,
            log=f"folder{i}",
        )
        for i in (1, 2)
    ]
    for p in procs:
        assert p.wait(timeout=120) == 0, (tmp_path / "folder1.err").read_text()[-3000:]
    assert emu.stats()["resets_after_create"] >= 3
    counts = assert_witness(emu, tmp_path / "out1", tmp_path / "out2")
    assert counts == {"billed": 16, "saved": 16}
    one = {j.task_id for j in replay(tmp_path / "out1" / "ledger.jsonl").jobs.values()}
    two = {j.task_id for j in replay(tmp_path / "out2" / "ledger.jsonl").jobs.values()}
    assert not one & two, "a task was saved by both folders"


ODD = ("empty_id", "unknown_id", "no_task_id", "html_400", "html_200", "page_502")


def test_odd_answers_after_the_task_exists_are_reconciled(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(seed=2, faults=EmulatorConfig.parse_faults([f"{kind}=0.12" for kind in ODD]))
    manifest = write_manifest(tmp_path / "m.yaml", 14)
    r = run(emu, manifest, tmp_path / "out")
    assert r.returncode == 0, r.stderr[-3000:]
    injected = emu.stats()["faults_injected"]
    assert sum(injected.get(k, 0) for k in ODD) >= 4, injected
    assert assert_witness(emu, tmp_path / "out") == {"billed": 14, "saved": 14}
    state = replay(tmp_path / "out" / "ledger.jsonl")
    assert not [j for j in state.jobs.values() if j.state in ("failed", "expired")]
    no_traceback(r.stdout, r.stderr)
    assert_no_key(tmp_path / "out", r.stdout, r.stderr)


@pytest.mark.parametrize("kind", ["unknown_id", "html_400", "empty_id"])
def test_each_odd_answer_alone(tmp_path: Path, emulator: Any, kind: str) -> None:
    emu = emulator(seed=1, faults=EmulatorConfig.parse_faults([f"{kind}=1x2"]))
    manifest = write_manifest(tmp_path / "m.yaml", 3)
    r = run(emu, manifest, tmp_path / "out")
    assert r.returncode == 0, r.stderr[-3000:]
    assert emu.stats()["odd_answers"] == 2
    assert assert_witness(emu, tmp_path / "out") == {"billed": 3, "saved": 3}
    no_traceback(r.stderr)


def test_a_bad_task_id_in_the_ledger_never_crashes_a_resume(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(seed=1)
    manifest = write_manifest(tmp_path / "m.yaml", 2)
    out = tmp_path / "out"
    ids = _old_ledger(out, manifest, emu.base_url, seconds_ago=0.3, spacing=0.01)
    # an older wanbatch recorded the empty task id a proxy answered for job 0, whose task exists
    plan = json.loads(cli("plan", str(manifest), "--json", cwd=tmp_path).stdout)
    _create_directly(emu, [plan["jobs"][0]["request"]])
    with (out / "ledger.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps({"ts": time.time(), "event": "submitted", "job_id": ids[0], "task_id": ""}) + "\n")
    r = run(emu, manifest, out)
    assert r.returncode == 0, r.stderr[-3000:]
    no_traceback(r.stdout, r.stderr)
    assert emu.stats()["submitted"] == 2  # job 0's task adopted, job 1 (nothing made) sent once
    assert assert_witness(emu, out) == {"billed": 2, "saved": 2}


def _lines(out: Path) -> list[dict[str, Any]]:
    return ledger_lines(out) if (out / "ledger.jsonl").exists() else []


def test_an_intent_older_than_the_retention_is_expired_not_sent_again(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(seed=6, retention=24 * 3600.0, faults=EmulatorConfig.parse_faults(["reset_after_create=1x3"]))
    manifest = write_manifest(tmp_path / "m.yaml", 3)
    out = tmp_path / "out"
    proc = spawn("run", str(manifest), "--out", str(out), "--base-url", emu.base_url, cwd=tmp_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and emu.stats()["resets_after_create"] < 3:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # three intents whose tasks exist; their answers were lost
    proc.wait(timeout=30)
    assert emu.stats()["submitted"] == 3
    emu.state.clock_offset += 25 * 3600.0  # resumed the next day: the server no longer shows those tasks
    r = run(emu, manifest, out)
    assert r.returncode == 1, r.stderr[-3000:]
    state = replay(out / "ledger.jsonl")
    assert [j.state for j in state.jobs.values()] == ["expired"] * 3
    assert emu.stats()["submitted"] == 3, "an old intent was sent again silently"
    assert replay(out / "ledger.jsonl").summary()["cost"] > 0  # may have been paid: counted, never hidden
    r = run(emu, manifest, out, "--regenerate-expired")
    assert r.returncode == 0, r.stderr[-3000:]
    assert emu.stats()["submitted"] == 6


def _old_ledger(out: Path, manifest: Path, base_url: str, *, seconds_ago: float, spacing: float) -> list[str]:
    """A ledger as wanbatch wrote it before issue 13: every job planned, then an unanswered intent each (no clock
    offset, nothing after), the intents ``spacing`` seconds apart."""
    plan = cli("plan", str(manifest), "--json", cwd=manifest.parent)
    jobs = json.loads(plan.stdout)["jobs"]
    out.mkdir()
    t0 = time.time() - seconds_ago
    lines = [{"ts": t0 - 1, "event": "run.started", "job_id": None, "base_url": base_url, "region": "cn-beijing"}]
    for j in jobs:
        lines.append({"ts": t0 - 1, "event": "planned", "job_id": j["job_id"], "name": j["name"],
                      "model": "wan2.6-t2v", "request": j["request"], "size": "1280*720", "duration": 2,
                      "seed": j["request"]["parameters"].get("seed"), "seconds": 2, "cost": 1.2})  # fmt: skip
    for i, j in enumerate(jobs):
        lines.append({"ts": t0 + i * spacing, "event": "submitting", "job_id": j["job_id"], "attempt": 1})
    (out / "ledger.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    return [j["job_id"] for j in jobs]


def test_an_older_ledgers_unanswered_siblings_that_made_nothing_are_sent_once_each(
    tmp_path: Path, emulator: Any
) -> None:
    emu = emulator(seed=9)
    manifest = write_sweep(tmp_path / "m.yaml", 4)
    out = tmp_path / "out"
    _old_ledger(out, manifest, emu.base_url, seconds_ago=30, spacing=0.01)
    r = run(emu, manifest, out)
    assert r.returncode == 0, r.stderr[-3000:]
    assert emu.stats()["submitted"] == 4
    assert assert_witness(emu, out) == {"billed": 4, "saved": 4}


def test_an_older_ledgers_siblings_whose_tasks_cannot_be_told_apart_are_reported_not_paid_again(
    tmp_path: Path, emulator: Any
) -> None:
    emu = emulator(seed=9, task_time=7200.0)
    manifest = write_sweep(tmp_path / "m.yaml", 3)
    out = tmp_path / "out"
    ids = _old_ledger(out, manifest, emu.base_url, seconds_ago=0.5, spacing=0.01)
    # the older run's three creates all reached the server at once (their answers were lost in the crash)
    plan = json.loads(cli("plan", str(manifest), "--json", cwd=tmp_path).stdout)
    _create_directly(emu, [j["request"] for j in plan["jobs"]])
    r = run(emu, manifest, out)
    assert r.returncode == 1, r.stderr[-3000:]
    assert emu.stats()["submitted"] == 3, "a look-alike was paid for again"
    state = replay(out / "ledger.jsonl")
    assert {state.jobs[i].state for i in ids} == {"submitting"}
    assert all(state.jobs[i].undecided and len(state.jobs[i].candidates) == 3 for i in ids)
    assert "undecided" in r.stdout and "nothing sent again" in r.stdout
    status = cli("status", str(out), "--json", cwd=tmp_path)
    assert len(json.loads(status.stdout)["undecided"]) == 3


def _create_directly(emu: Any, bodies: list[dict[str, Any]]) -> None:
    import requests

    for body in bodies:
        answer = requests.post(
            f"{emu.base_url}/services/aigc/video-generation/video-synthesis",
            json=body, headers={"Authorization": "Bearer sk-other-client", "X-DashScope-Async": "enable"}, timeout=10,
        )  # fmt: skip
        assert answer.status_code == 200, answer.text


def test_a_lenient_prompt_echo_still_matches(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(seed=5, echo_normalized=True, faults=EmulatorConfig.parse_faults(["reset_after_create=0.5"]))
    decomposed = unicodedata.normalize("NFD", "Café  crème")  # the server echoes NFC, one space
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        'version: 1\nname: echo\ndefaults:\n  model: wan2.6-t2v\n  size: "1280*720"\n  duration: 2\n'
        "  prompt_extend: false\njobs:\n"
        + "".join(f'  - name: j{i}\n    prompt: "{decomposed} at dusk,  take {i} "\n' for i in range(6)),
        encoding="utf-8",
    )
    r = run(emu, manifest, tmp_path / "out")
    assert r.returncode == 0, r.stderr[-3000:]
    assert emu.stats()["resets_after_create"] >= 2
    assert assert_witness(emu, tmp_path / "out") == {"billed": 6, "saved": 6}


def test_another_clients_look_alike_tasks_are_never_adopted(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(seed=5, task_time=3600.0, faults=EmulatorConfig.parse_faults(["reset_after_create=1x1"]))
    manifest = write_manifest(tmp_path / "m.yaml", 1)
    plan = json.loads(cli("plan", str(manifest), "--json", cwd=tmp_path).stdout)
    body = plan["jobs"][0]["request"]
    other = {**body, "parameters": {**body.get("parameters", {}), "seed": 4242}}  # same to the server's eye
    out = tmp_path / "out"
    proc = spawn("run", str(manifest), "--out", str(out), "--base-url", emu.base_url, cwd=tmp_path)
    deadline = time.monotonic() + 30
    while emu.stats()["resets_after_create"] < 1 and time.monotonic() < deadline:
        time.sleep(0.005)
    # another program on the same account makes the same clip (to the server's eye) right after ours
    _create_directly(emu, [other, other])
    assert proc.wait(timeout=120) == 1
    stdout, _ = output(tmp_path)
    from runner.emulator.protocol import body_digest

    ours = body_digest(body)
    made = {t.task_id: t.req.digest for t in emu.state.store.order}
    (job,) = replay(out / "ledger.jsonl").jobs.values()
    assert all(made.get(t) == ours for t in job.task_ids if t in made), "another client's task was adopted"
    # the lost create's task and the other client's look-alikes overlap: nothing proves which is ours
    assert job.state == "submitting" and job.undecided and len(job.candidates) == 3, job
    assert sum(1 for d in made.values() if d == ours) == 1, "the job was paid for twice"
    assert "undecided" in stdout
