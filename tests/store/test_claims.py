"""The host's register of intents and claimed tasks (runner.store.claims): two runs, one file."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from runner.store.claims import FILE_NAME, Claims

URL = "http://127.0.0.1:1/api/v1"


def test_claims_intents_and_what_each_run_sees(tmp_path: Path) -> None:
    a = Claims(tmp_path, tmp_path / "a", URL)
    b = Claims(tmp_path, tmp_path / "b", URL)
    a.intent("j1", "g", "body1")
    b.intent("j1", "g", "body1")
    assert [i.folder for i in a.read().intents] == [b.folder]  # a run sees the others' open intents only
    b.claim("j1", ["t-b"])
    assert a.read().intents == [] and a.read().claimed == {"t-b": (b.folder, "j1")}
    a.done("j1")
    assert b.read().intents == []
    other_host = Claims(tmp_path, tmp_path / "c", "http://elsewhere/api/v1")
    assert other_host.read().claimed == {}  # another API host's tasks are another account's


def test_claim_first_never_gives_one_task_to_two_runs(tmp_path: Path) -> None:
    a = Claims(tmp_path, tmp_path / "a", URL)
    b = Claims(tmp_path, tmp_path / "b", URL)
    assert a.claim_first("j", ["t1", "t2"]) == "t1"
    assert b.claim_first("j", ["t1", "t2"]) == "t2"
    assert b.claim_first("j", ["t1", "t2"]) == "t2"  # its own claim again
    assert a.claim_first("k", ["t1", "t2"]) is None


def _race(state: str, folder: str, out: multiprocessing.Queue[str | None]) -> None:
    out.put(Claims(state, folder, URL).claim_first("j", [f"t{i}" for i in range(8)]))


def test_claim_first_is_atomic_across_processes(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    q: multiprocessing.Queue[str | None] = ctx.Queue()
    procs = [ctx.Process(target=_race, args=(str(tmp_path), str(tmp_path / f"f{i}"), q)) for i in range(8)]
    for p in procs:
        p.start()
    got = [q.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
    assert sorted(got) == [f"t{i}" for i in range(8)], got


def test_own_intents_and_a_torn_line(tmp_path: Path) -> None:
    a = Claims(tmp_path, tmp_path / "a", URL)
    a.intent("j1", "g", "b")
    a.intent("j2", "g", "b")
    a.claim("j2", ["t2"])
    with (tmp_path / FILE_NAME).open("a") as f:
        f.write('{"t": 1, "url": "')  # a writer killed mid-line
    reg = a.read()
    assert set(reg.own_intents) == {"j1"} and reg.claimed == {"t2": (a.folder, "j2")}
    assert a.mine(reg, "j2") == {"t2"}


def test_an_unusable_state_folder_is_never_fatal(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    c = Claims(blocked, tmp_path / "a", URL)
    c.intent("j", "g", "b")
    assert c.read().claimed == {}
    assert c.claim_first("j", ["t1"]) == "t1"  # decided alone
    assert Claims(None, tmp_path, URL).claim_first("j", []) is None


def test_old_lines_are_pruned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import runner.store.claims as claims

    now = [1_000_000.0]
    c = Claims(tmp_path, tmp_path / "a", URL, now=lambda: now[0])
    c.claim("old", ["t-old"])
    now[0] += 3 * 24 * 3600.0
    monkeypatch.setattr(claims, "_PRUNE_BYTES", 10)  # a tiny file counts as big here
    c.claim("new", ["t-new"])
    lines = [json.loads(x) for x in (tmp_path / FILE_NAME).read_text().splitlines()]
    assert [x["task"] for x in lines] == ["t-new"]
