"""The task-times file in the state folder: round trip, weights and bounds, one file for every host, and the
files it must survive (corrupt, foreign, newer, unwritable) and two runs writing at once."""

from __future__ import annotations

import json
import math
import os
import threading
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from runner.engine import task_memory
from runner.engine.task_memory import FILE_NAME, FORMAT, TaskMemory, host_of
from runner.engine.task_times import Kind

DAY = 86400.0
NOW = 1_800_000_000.0
K = Kind("wan2.6-t2v", "720P", 5)
BIG = Kind("wan2.6-t2v", "1080P", 15)
HOST = "dashscope.aliyuncs.com"


class Epoch:
    """An injectable wall clock (epoch seconds)."""

    def __init__(self, t: float = NOW) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def memory(tmp_path: Path, host: str = HOST, clock: Epoch | None = None) -> TaskMemory:
    return TaskMemory(tmp_path / "state", host, now=clock or Epoch())


def warnings(logs: list[dict[str, object]]) -> list[dict[str, object]]:
    return [e for e in logs if e["log_level"] == "warning"]


def test_round_trip_per_host_and_kind(tmp_path: Path) -> None:
    mem = memory(tmp_path)
    assert mem.load() == {}  # no file yet: nothing known, no warning, nothing created
    assert not (tmp_path / "state").exists()
    assert mem.save([(K, 100.0), (K, 120.5), (BIG, 400.0), (Kind("wan2.6-t2v"), 1.0)])  # coarse kinds: not kept
    assert memory(tmp_path).load() == {K: [(100.0, 1.0), (120.5, 1.0)], BIG: [(400.0, 1.0)]}
    assert memory(tmp_path, "127.0.0.1:8000").load() == {}  # another host's times are its own
    data = json.loads((tmp_path / "state" / FILE_NAME).read_text())
    assert data["app"] == "wanbatch" and data["format"] == FORMAT
    assert set(data["hosts"][HOST]) == {"wan2.6-t2v|720P|5", "wan2.6-t2v|1080P|15"}
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == [FILE_NAME, "task-times.lock"]  # no temp left


def test_recent_nights_weigh_more_and_old_ones_drop_out(tmp_path: Path) -> None:
    clock = Epoch()
    mem = memory(tmp_path, clock=clock)
    mem.save([(K, 100.0)])
    clock.t += 7 * DAY
    mem.save([(K, 200.0)])
    clock.t += 7 * DAY
    loaded = mem.load()[K]
    assert [s for s, _ in loaded] == [100.0, 200.0]
    assert [w for _, w in loaded] == pytest.approx([0.25, 0.5])  # a week's half-life
    clock.t += task_memory.MAX_AGE_DAYS * DAY - 10 * DAY  # the first is now older than the limit
    assert [s for s, _ in mem.load()[K]] == [200.0]
    clock.t += 10 * DAY
    mem.save([(BIG, 300.0)])  # a save drops what has aged out
    assert list(json.loads(mem.path.read_text())["hosts"][HOST]) == ["wan2.6-t2v|1080P|15"]


def test_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(task_memory, "MAX_SAMPLES", 3)
    monkeypatch.setattr(task_memory, "MAX_KINDS", 2)
    monkeypatch.setattr(task_memory, "MAX_HOSTS", 2)
    clock = Epoch()
    mem = memory(tmp_path, clock=clock)
    for i in range(5):
        clock.t += 1
        mem.save([(K, 100.0 + i)])
    assert [s for s, _ in mem.load()[K]] == [102.0, 103.0, 104.0]  # the newest 3
    for kind in (BIG, Kind("wan2.6-t2v", "1080P", 5)):
        clock.t += 1
        mem.save([(kind, 50.0)])
    assert set(mem.load()) == {BIG, Kind("wan2.6-t2v", "1080P", 5)}  # K was learned longest ago
    for host in ("a", "b", "c"):
        clock.t += 1
        memory(tmp_path, host, clock).save([(K, 10.0)])
    assert set(json.loads(mem.path.read_text())["hosts"]) == {"b", "c"}
    clock.t += 1
    mem.save([(K, 1.0)])  # the host saving is always kept
    assert set(json.loads(mem.path.read_text())["hosts"]) == {HOST, "c"}


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b'{"app": "wanbatch", "format": 1, "hosts": {"h": {"k": [[1, 2]', "not valid JSON"),  # torn
        (b"\xff\xfe garbage", "not valid JSON"),
        (b'{"app": "wanbatch", "format": 1, "hosts": []}', "corrupt"),
        (b'{"app": "wanbatch", "format": 1, "hosts": {}, "extra": 1}', "corrupt"),
    ],
)
def test_a_corrupt_file_is_ignored_with_one_warning_and_replaced(tmp_path: Path, content: bytes, why: str) -> None:
    mem = memory(tmp_path)
    mem.dir.mkdir(parents=True)
    mem.path.write_bytes(content)
    with capture_logs() as logs:
        assert mem.load() == {}
        assert mem.save([(K, 90.0)])
    [warning] = warnings(logs)
    assert warning["event"] == "poll.memory_ignored" and why in str(warning["reason"])
    assert memory(tmp_path).load() == {K: [(90.0, 1.0)]}


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b'{"app": "wanbatch", "format": 2, "hosts": {"x": "y"}}', "newer"),
        (b'{"app": "other-tool", "format": 1}', "other-tool"),
        (b'["a", "list"]', "not a wanbatch"),
        (b'{"hosts": {}}', "not a wanbatch"),
    ],
)
def test_a_foreign_or_newer_file_is_ignored_with_one_warning_and_left_alone(
    tmp_path: Path, content: bytes, why: str
) -> None:
    mem = memory(tmp_path)
    mem.dir.mkdir(parents=True)
    mem.path.write_bytes(content)
    with capture_logs() as logs:
        assert mem.load() == {}
        assert not mem.save([(K, 90.0)])  # not ours to overwrite: this run's samples are not kept
    [warning] = warnings(logs)
    assert warning["event"] == "poll.memory_ignored" and why in str(warning["reason"])
    assert mem.path.read_bytes() == content
    with capture_logs() as logs:  # a run that only saves (the file changed meanwhile) warns once too
        assert not memory(tmp_path).save([(K, 90.0)])
    assert [e["event"] for e in warnings(logs)] == ["poll.memory_ignored"]


def test_bad_entries_of_a_good_file_are_skipped(tmp_path: Path) -> None:
    mem = memory(tmp_path)
    mem.dir.mkdir(parents=True)
    hosts = {HOST: {"wan2.6-t2v|720P|5": [[NOW, 100.0], [NOW, -1.0], [NOW, 1e300]], "nonsense": [[NOW, 5.0]],
                    "wan2.6-t2v|9000P|5": [[NOW, 5.0]], "wan2.6-t2v|720P|x": [[NOW, 5.0]]}}  # fmt: skip
    mem.path.write_text(json.dumps({"app": "wanbatch", "format": 1, "hosts": hosts}))
    assert mem.load() == {K: [(100.0, 1.0)]}


def test_an_unwritable_state_folder_is_not_fatal(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    mem = TaskMemory(blocker / "state", HOST, now=Epoch())
    with capture_logs() as logs:
        assert mem.load() == {}
        assert not mem.save([(K, 1.0)])
    assert [e["event"] for e in warnings(logs)] == ["poll.memory_unsaved"]


def test_nothing_to_save_writes_nothing(tmp_path: Path) -> None:
    mem = memory(tmp_path)
    assert not mem.save([])
    assert not mem.save([(K, math.nan), (K, -1.0)])
    assert not (tmp_path / "state").exists()


def test_two_runs_saving_at_once_lose_nothing(tmp_path: Path) -> None:
    """Each run read the file at its start and saves at its end; the second to save merges into what the
    first wrote. Many at once (threads: flock excludes open files, not processes) keep every sample."""
    a, b = memory(tmp_path), memory(tmp_path)
    assert a.load() == b.load() == {}
    a.save([(K, 10.0)])
    b.save([(BIG, 20.0)])
    assert memory(tmp_path).load() == {K: [(10.0, 1.0)], BIG: [(20.0, 1.0)]}

    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            start.wait()
            for j in range(3):
                memory(tmp_path, "h").save([(K, 1.0 + i + j / 10)])
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    kept = sorted(s for s, _ in memory(tmp_path, "h").load()[K])
    assert kept == sorted(1.0 + i + j / 10 for i in range(8) for j in range(3))
    assert memory(tmp_path).load() == {K: [(10.0, 1.0)], BIG: [(20.0, 1.0)]}  # the other host untouched


def test_two_processes_saving_at_once_lose_nothing(tmp_path: Path) -> None:
    pids = []
    for i in range(4):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 0
            try:
                for j in range(5):
                    memory(tmp_path).save([(K, 100.0 + 10 * i + j)])
            except BaseException:
                code = 1
            os._exit(code)
        pids.append(pid)
    for pid in pids:
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    kept = sorted(s for s, _ in memory(tmp_path).load()[K])
    assert kept == sorted(100.0 + 10 * i + j for i in range(4) for j in range(5))


def test_host_of() -> None:
    assert host_of("https://dashscope.aliyuncs.com/api/v1") == "dashscope.aliyuncs.com"
    assert host_of("HTTPS://DashScope-Intl.aliyuncs.com/api/v1/") == "dashscope-intl.aliyuncs.com"
    assert host_of("http://127.0.0.1:8000/api/v1") == "127.0.0.1:8000"
    assert host_of("http://user:pw@[::1]:9/api/v1") == "::1:9"
