"""Local audio files in a manifest (issue 19): a path relative to the manifest or a ``file://`` URL, checked at plan
(exists, wav or mp3, 3–30 s, at most 15 MB, a model that takes audio), every problem at its file:line with exit 2;
the job's id comes from the file's content."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from runner.errors import Issue
from runner.manifest import Manifest, job_id, load_manifest
from runner.manifest.audio import is_local, local_path
from runner.models import AUDIO_MAX_BYTES
from tests.audio_files import write_audio, write_big

from .conftest import run_plan

Load = Callable[..., Manifest]
Issues = Callable[..., list[Issue]]


def manifest(audio: str, *, model: str = "wan2.6-t2v", extra: str = "") -> str:
    return f"""
        version: 1
        name: voices
        defaults: {{model: {model}, size: "1280*720", duration: 5}}
        jobs:
          - name: narrated
            prompt: A quiet harbour at dawn.
            audio_url: {audio}{extra}
        """


def test_a_relative_path_is_read_from_the_manifests_folder(tmp_path: Path, load: Load) -> None:
    wav = write_audio(tmp_path / "voice.wav", 4.0)
    m = load(manifest("voice.wav"))
    job = m.jobs[0]
    assert job.audio is not None
    assert job.audio.path == str(wav.resolve())
    assert job.audio.format == "wav" and 3.9 < job.audio.seconds < 4.1 and job.audio.bytes == wav.stat().st_size
    assert job.request["input"]["audio_url"] == wav.resolve().as_uri()  # what the run uploads
    assert job.job_id == job_id(job.request, "wan2.6-t2v", 1, job.audio.sha256)


def test_file_urls_absolute_and_relative_and_mp3(tmp_path: Path, load: Load) -> None:
    mp3 = write_audio(tmp_path / "voice.mp3", 5.0, "mp3")
    assert load(manifest(mp3.resolve().as_uri())).jobs[0].audio.format == "mp3"  # type: ignore[union-attr]
    assert load(manifest("file://voice.mp3")).jobs[0].audio.path == str(mp3.resolve())  # type: ignore[union-attr]


def test_the_id_is_the_files_content_not_its_place(tmp_path: Path, write: Callable[..., Path]) -> None:
    a = tmp_path / "a"
    b = tmp_path / "b"
    a.mkdir()
    b.mkdir()
    write_audio(a / "voice.wav", 4.0)
    write_audio(b / "renamed.wav", 4.0)  # the same bytes elsewhere: the same job
    one = load_manifest(write(manifest("voice.wav"), name="a/m.yaml")).jobs[0]
    two = load_manifest(write(manifest("renamed.wav"), name="b/m.yaml")).jobs[0]
    assert one.request != two.request and one.job_id == two.job_id
    write_audio(b / "renamed.wav", 4.0, hz=660.0)  # other sound: another job
    assert load_manifest(write(manifest("renamed.wav"), name="b/m.yaml")).jobs[0].job_id != one.job_id


def test_two_files_with_one_sound_make_the_same_request(tmp_path: Path, issues: Issues) -> None:
    write_audio(tmp_path / "a.wav", 4.0)
    write_audio(tmp_path / "b.wav", 4.0)
    found = issues(
        """
        version: 1
        defaults: {model: wan2.6-t2v, duration: 5}
        jobs:
          - {name: one, prompt: x, audio_url: a.wav}
          - {name: two, prompt: x, audio_url: b.wav}
        """
    )
    assert len(found) == 1 and "same job id" in found[0].message


def test_a_matrix_of_voices_checks_each_file_once_and_names_jobs(tmp_path: Path, load: Load) -> None:
    for i, hz in enumerate((300.0, 400.0, 500.0)):
        write_audio(tmp_path / f"v{i}.wav", 4.0, hz=hz)
    m = load(
        """
        version: 1
        defaults: {model: wan2.5-t2v-preview, size: "832*480", duration: 5}
        matrix: {seed: [1, 2]}
        jobs:
          - name: shot
            prompt: x
            matrix: {audio_url: [v0.wav, v1.wav, v2.wav]}
        """
    )
    assert [j.name for j in m.jobs][:3] == ["shot_seed1_audio1", "shot_seed1_audio2", "shot_seed1_audio3"]
    assert len({j.audio.sha256 for j in m.jobs if j.audio}) == 3 and len({j.job_id for j in m.jobs}) == 6


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda d: None, "does not exist"),
        (lambda d: write_audio(d / "voice.wav", 31.0), "lasts 31.0 s; it must last 3 to 30 s"),
        (lambda d: write_audio(d / "voice.wav", 2.0), "lasts 2.0 s; it must last 3 to 30 s"),
        (lambda d: write_big(d / "voice.wav", AUDIO_MAX_BYTES + 1), "is 15.0 MB; at most 15.0 MB"),
        (lambda d: write_audio(d / "voice.wav", 4.0, "flac"), "is flac; it must be wav or mp3"),
        (lambda d: (d / "voice.wav").write_text("not audio at all\n"), "is not audio PyAV can read"),
    ],
    ids=["missing", "too-long", "too-short", "too-big", "wrong-type", "not-audio"],
)
def test_a_bad_file_is_an_error_at_its_line(tmp_path: Path, write: Callable[..., Path], make, expected: str) -> None:  # type: ignore[no-untyped-def]
    make(tmp_path)
    path = write(manifest("voice.wav"))
    r = run_plan(path)
    assert r.code == 2, r.out
    first = r.err.splitlines()[0]
    assert first.startswith(f"{path}:7:"), first  # the line of `audio_url: voice.wav`
    assert "error: jobs[0].audio_url: " in first and expected in first, first
    assert r.err.rstrip().endswith("1 error; nothing planned")


def test_every_problem_at_once_and_a_file_used_twice_told_once(tmp_path: Path, issues: Issues) -> None:
    write_audio(tmp_path / "long.wav", 40.0)
    found = issues(
        """
        version: 1
        defaults: {model: wan2.6-t2v, duration: 5, audio_url: long.wav}
        matrix: {seed: [1, 2, 3]}
        jobs:
          - {name: a, prompt: x}
          - {name: b, prompt: y, audio_url: missing.mp3}
          - {name: c, prompt: z, model: wan2.2-t2v-plus}
        """
    )
    text = [f"{i.line}: {i.message}" for i in found]
    assert len(found) == 3, text
    assert sum("lasts 40.0 s" in i.message for i in found) == 1  # once, though jobs a and c (×3 seeds) name it
    assert any(i.line == 6 and "missing.mp3 does not exist" in i.message for i in found), text
    # (the rule is told where the audio_url it breaks is written: in defaults)
    assert any(i.line == 2 and "wan2.2-t2v-plus does not take audio_url" in i.message for i in found), text


def test_a_model_without_audio_is_told_for_a_local_file_too(tmp_path: Path, issues: Issues) -> None:
    write_audio(tmp_path / "voice.wav", 4.0)
    found = issues(manifest("voice.wav", model="wan2.1-t2v-turbo").replace('"1280*720"', '"832*480"'))
    assert [i.message for i in found] == ["wan2.1-t2v-turbo does not take audio_url; only wan2.6-t2v, wan2.6-t2v-us, "
                                          "wan2.5-t2v-preview do"]  # fmt: skip


def test_other_url_schemes_are_refused(issues: Issues) -> None:
    found = issues(manifest("ftp://example.com/voice.wav"))
    assert "http://, https:// or oss:// URL, or a local wav or mp3 file" in found[0].message


def test_plan_json_and_table_show_the_file(tmp_path: Path, write: Callable[..., Path]) -> None:
    wav = write_audio(tmp_path / "voice.wav", 4.0)
    path = write(manifest("voice.wav"))
    data = json.loads(run_plan(path, json=True).out)
    audio = data["jobs"][0]["audio"]
    assert audio["file"] == str(wav.resolve()) and audio["format"] == "wav" and len(audio["sha256"]) == 64
    assert data["jobs"][0]["request"]["input"]["audio_url"].startswith("file:///")
    table = run_plan(path)
    assert table.code == 0 and "local audio: 1 file (0.1 MB)" in table.out


def test_outside_beijing_a_warning_says_the_upload_may_be_refused(tmp_path: Path, write: Callable[..., Path]) -> None:
    write_audio(tmp_path / "voice.wav", 4.0)
    r = run_plan(write(manifest("voice.wav")), region="ap-southeast-1")
    assert r.code == 0 and "warning: jobs[0].audio_url: a local file is uploaded" in r.err


def test_urls_are_untouched(load: Load) -> None:
    m = load(manifest("https://example.com/voice.mp3"))
    assert m.jobs[0].audio is None and m.jobs[0].request["input"]["audio_url"] == "https://example.com/voice.mp3"
    assert m.jobs[0].job_id == job_id(m.jobs[0].request, "wan2.6-t2v", 1)


def test_what_counts_as_local(tmp_path: Path) -> None:
    assert is_local("voice.wav") and is_local("./a/b.mp3") and is_local("/abs/v.wav") and is_local("file:///v.wav")
    assert not is_local("https://x/v.wav") and not is_local("oss://k/v.wav") and not is_local("ftp://x")
    assert local_path("file:///tmp/a%20b.wav", tmp_path) == Path("/tmp/a b.wav")
    assert local_path("~/v.wav", tmp_path) == Path.home() / "v.wav"
