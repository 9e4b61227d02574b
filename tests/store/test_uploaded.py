"""The ``uploaded`` line (issue 19): written through the one format, replayed into ``RunState.uploads`` (the newest
upload of a (sha256, model) wins), moving no job, and skipped by a reader that does not know it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.store.events import PLANNED, UPLOADED
from runner.store.ledger import LedgerWriter
from runner.store.replay import replay, replay_lines

SHA = "ab" * 32


def upload(url: str, expires: float, model: str = "wan2.6-t2v", sha: str = SHA) -> dict[str, object]:
    return {"file": "/data/voice.wav", "sha256": sha, "bytes": 64078, "model": model, "url": url, "expires": expires}


async def test_uploads_replay_newest_first_per_file_and_model(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    async with LedgerWriter(path) as ledger:
        await ledger.append(PLANNED, "j1", name="a", model="wan2.6-t2v", request={"model": "wan2.6-t2v"})
        await ledger.append(UPLOADED, None, **upload("oss://d/1/voice.wav", 100.0))
        await ledger.append(UPLOADED, None, **upload("oss://d/2/voice.wav", 200.0))  # an expired one, uploaded again
        await ledger.append(UPLOADED, None, **upload("oss://d/3/voice.wav", 150.0, model="wan2.5-t2v-preview"))
    state = replay(path)
    assert state.jobs["j1"].state == "planned"  # a run event: no job moves
    assert {k: (u.url, u.expires) for k, u in state.uploads.items()} == {
        (SHA, "wan2.6-t2v", "default"): ("oss://d/2/voice.wav", 200.0),  # lines without an account: "default"
        (SHA, "wan2.5-t2v-preview", "default"): ("oss://d/3/voice.wav", 150.0),
    }
    line = json.loads(path.read_text().splitlines()[1])
    assert line["event"] == "uploaded" and line["job_id"] is None and line["file"] == "/data/voice.wav"


async def test_a_line_that_breaks_the_format_is_refused(tmp_path: Path) -> None:
    async with LedgerWriter(tmp_path / "ledger.jsonl") as ledger:
        with pytest.raises(ValueError, match="uploaded"):
            await ledger.append(UPLOADED, None, file="/data/voice.wav", sha256=SHA)  # no url, no expiry


def test_an_older_reader_skips_it_as_an_unknown_event() -> None:
    # forward compatibility works the other way too: this version ignores events it does not know
    state = replay_lines([{"ts": 1.0, "event": "uploaded.v2", "job_id": None, "whatever": 1}])
    assert state.skipped == 1 and state.uploads == {}
