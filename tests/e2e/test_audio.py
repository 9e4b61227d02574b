"""Voice-overs from disk (issue 19), the real CLI against the emulator: each distinct file uploaded once per model
before the first job that needs it, the oss:// URL kept in the ledger and reused (also after a SIGKILL), uploaded
again when it expired or the server lost it, the upload retried like every request and never given the key, and
a bad file stopped at plan with its file:line."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from runner.emulator.config import EmulatorConfig
from runner.store.files import sidecar_path
from runner.store.replay import replay
from tests.audio_files import write_audio

from .conftest import KEY, assert_complete, assert_no_key, assert_witness, cli, ledger_lines, output, spawn


def write_voices(path: Path, jobs: list[tuple[str, str | None]], *, model: str = "wan2.6-t2v") -> Path:
    """One job per (name, audio_url or None), distinct prompts."""
    body = "".join(
        f"  - name: {name}\n    prompt: Scene {name} of a harbour at dawn, gulls overhead.\n"
        + (f"    audio_url: {audio}\n" if audio else "")
        for name, audio in jobs
    )
    path.write_text(
        f'version: 1\nname: voices\ndefaults:\n  model: {model}\n  size: "1280*720"\n  duration: 5\n'
        f"  prompt_extend: false\njobs:\n{body}",
        encoding="utf-8",
    )
    return path


def run(emu: Any, manifest: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return cli("run", str(manifest), "--out", str(out), "--base-url", emu.base_url, *extra,
               cwd=manifest.parent, timeout=120)  # fmt: skip


def uploaded(out: Path) -> list[dict[str, Any]]:
    return [x for x in ledger_lines(out) if x["event"] == "uploaded"]


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    """Poll ``condition`` (a state of the emulator or the ledger, not a moment) until it holds."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_one_upload_per_file_for_many_jobs(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(seed=19)
    voice = write_audio(tmp_path / "voice.wav", 4.0)
    write_audio(tmp_path / "intro.mp3", 3.5, "mp3")
    jobs: list[tuple[str, str | None]] = [(f"v{i}", "voice.wav") for i in range(5)]
    jobs += [("intro", voice.with_name("intro.mp3").as_uri()), ("v5", "./voice.wav"), ("silent", None)]
    manifest = write_voices(tmp_path / "m.yaml", jobs)
    out = tmp_path / "out"
    r = run(emu, manifest, out)
    assert r.returncode == 0, r.stderr[-3000:]
    assert_complete(out, 8)
    assert assert_witness(emu, out) == {"billed": 8, "saved": 8}
    stats = emu.stats()
    assert (stats["uploads"], stats["upload_policies"], stats["uploads_with_authorization"]) == (2, 2, 0)
    assert stats["creates_with_resolve_header"] == 7 and stats["submitted"] == 8  # not on the one without audio
    lines = uploaded(out)
    assert sorted(Path(x["file"]).name for x in lines) == ["intro.mp3", "voice.wav"]
    assert all(x["url"].startswith("oss://dashscope-instant/") and x["model"] == "wan2.6-t2v" for x in lines)
    # every job before its create had its file uploaded: the upload line comes before the first intent using it
    events = [(x["event"], x.get("job_id")) for x in ledger_lines(out)]
    assert events.index(("uploaded", None)) < next(i for i, e in enumerate(events) if e[0] == "submitting")
    state = replay(out / "ledger.jsonl")
    for job in state.jobs.values():
        side = json.loads(sidecar_path(out / (job.path or "")).read_text(encoding="utf-8"))
        if job.name == "silent":
            assert "audio" not in side
            continue
        name = "intro.mp3" if job.name == "intro" else "voice.wav"
        upload = next(x for x in lines if x["file"].endswith(name))
        assert side["audio"] == {"file": str(tmp_path / name), "sha256": upload["sha256"], "url": upload["url"]}
        assert side["request"]["input"]["audio_url"] == (tmp_path / name).as_uri()  # the job's body, as planned
    assert_no_key(out, r.stdout, r.stderr)


def test_a_sigkill_during_the_create_reuses_the_upload_and_pays_each_body_once(tmp_path: Path, emulator: Any) -> None:
    # the first create makes its task, then its answer is held: the runner dies between its upload and the answer
    emu = emulator(seed=5, slow_seconds=1.0, faults=EmulatorConfig.parse_faults(["hold_after_create=1x1"]))
    write_audio(tmp_path / "voice.wav", 4.0)
    manifest = write_voices(tmp_path / "m.yaml", [(f"v{i}", "voice.wav") for i in range(3)])
    out = tmp_path / "out"
    args = ("run", str(manifest), "--out", str(out), "--base-url", emu.base_url)
    proc = spawn(*args, cwd=tmp_path)
    wait_for(lambda: emu.stats()["faults_injected"].get("hold_after_create", 0) == 1, "the held create's task")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert len(uploaded(out)) == 1 and not [x for x in ledger_lines(out) if x["event"] == "downloaded"]
    r = cli(*args, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:] + output(tmp_path)[1][-2000:]
    assert_complete(out, 3)
    assert assert_witness(emu, out) == {"billed": 3, "saved": 3}
    stats = emu.stats()
    assert stats["uploads"] == 1 and stats["upload_policies"] == 1 and len(uploaded(out)) == 1  # reused on resume
    assert stats["duplicate_submissions"] == 0 and len(stats["submissions_by_body"]) == 3
    adopted = [x for x in ledger_lines(out) if x["event"] == "submitted" and x.get("adopted")]
    assert len(adopted) == 1  # the held create's task, found by reconcile, not paid again


def test_an_expired_upload_is_uploaded_again(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(seed=6)
    write_audio(tmp_path / "voice.wav", 4.0)
    manifest = write_voices(tmp_path / "m.yaml", [("first", "voice.wav")])
    out = tmp_path / "out"
    assert run(emu, manifest, out).returncode == 0
    first = uploaded(out)
    assert len(first) == 1
    # 49 hours pass on the server: its temporary file is gone, and the ledger's expiry (server clock) says so
    requests.post(emu.url + "/_emulator/clock", json={"advance": 49 * 3600}, timeout=10).raise_for_status()
    write_voices(manifest, [("first", "voice.wav"), ("second", "voice.wav")])
    r = run(emu, manifest, out)
    assert r.returncode == 0, r.stderr[-3000:]
    second = uploaded(out)
    assert len(second) == 2 and second[1]["url"] != first[0]["url"] and second[1]["expires"] > first[0]["expires"]
    stats = emu.stats()
    assert stats["uploads"] == 2 and stats["submitted"] == 2
    assert "does not exist" not in r.stderr  # uploaded again before the create, not after a refusal
    assert_complete(out, 2)


def test_an_object_the_server_lost_is_uploaded_again_and_the_create_sent_again(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(seed=7)
    write_audio(tmp_path / "voice.wav", 4.0)
    manifest = write_voices(tmp_path / "m.yaml", [("first", "voice.wav")])
    out = tmp_path / "out"
    assert run(emu, manifest, out).returncode == 0
    requests.post(emu.url + "/_emulator/reset", timeout=10).raise_for_status()  # the server forgets the object
    write_voices(manifest, [("first", "voice.wav"), ("second", "voice.wav")])
    r = run(emu, manifest, out)
    assert r.returncode == 0, r.stderr[-3000:]
    stats = emu.stats()
    assert stats["requests"]["create"] == 2 and stats["submitted"] == 1  # one refused 400 (nothing made), one made
    assert stats["uploads"] == 1 and len(uploaded(out)) == 2
    lost = [json.loads(x) for x in r.stderr.splitlines() if '"upload.lost"' in x]
    assert len(lost) == 1 and lost[0]["url"] == uploaded(out)[0]["url"] and lost[0]["code"] == "InvalidParameter"
    assert_complete(out, 2)
    assert_no_key(out, r.stdout, r.stderr)


def test_the_upload_is_retried_like_every_request_and_its_refusal_fails_the_job(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(seed=8, upload_max_mb=0.05, faults=EmulatorConfig.parse_faults(["500@upload=1x2", "503@policy=1x1"]))
    write_audio(tmp_path / "small.mp3", 4.0, "mp3")  # 4 KB
    write_audio(tmp_path / "big.wav", 4.0)  # 64 KB: over this upload host's 50 KB
    manifest = write_voices(tmp_path / "m.yaml", [("small", "small.mp3"), ("big1", "big.wav"), ("big2", "big.wav")])
    out = tmp_path / "out"
    r = run(emu, manifest, out)
    assert r.returncode == 1, r.stderr[-3000:]
    stats = emu.stats()
    assert stats["uploads"] == 1 and stats["uploads_refused"] == {"InternalError": 2, "EntityTooLarge": 1}
    assert stats["submitted"] == 1  # the big file's jobs made nothing
    state = replay(out / "ledger.jsonl")
    big = [j for j in state.jobs.values() if j.name in ("big1", "big2")]
    assert all(j.state == "failed" and j.failure and j.failure.code == "EntityTooLarge" for j in big)
    assert all(j.failure and j.failure.kind == "refused" and j.failure.stage == "upload" for j in big)
    status = cli("status", str(out), "--json", cwd=tmp_path)
    assert json.loads(status.stdout)["states"]["downloaded"] == 1


def test_a_bad_file_stops_the_run_at_plan_with_its_line(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(seed=9)
    write_audio(tmp_path / "long.wav", 31.0)
    write_audio(tmp_path / "voice.flac", 4.0, "flac")
    manifest = write_voices(tmp_path / "m.yaml", [("a", "long.wav"), ("b", "voice.flac"), ("c", "nope.mp3")])
    r = run(emu, manifest, tmp_path / "out")
    assert r.returncode == 2
    lines = [x for x in r.stderr.splitlines() if ": error: " in x]
    assert [x.split(f"{manifest}:")[1].split(": error: ")[0] for x in lines] == ["11:16", "14:16", "17:16"]
    assert "lasts 31.0 s" in lines[0] and "is flac; it must be wav or mp3" in lines[1] and "does not exist" in lines[2]
    assert sum(emu.stats()["requests"].values()) == 0  # nothing was sent
    assert KEY not in r.stderr
