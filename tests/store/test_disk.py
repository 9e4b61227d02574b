"""A folder that cannot take writes (full, read-only) is a ``DiskError`` that stops the run with a clear
message, never a traceback and never a job's failure (regressions found by ``bench/chaos.py``)."""

from __future__ import annotations

import errno
from pathlib import Path

import aiohttp
import pytest

from runner.errors import DiskError, LedgerError, disk_trouble
from runner.store.download import download
from runner.store.files import write_sidecar
from runner.store.lock import RunLock
from runner.store.mp4 import Expect


async def test_a_download_into_an_unwritable_folder_is_a_disk_error(storage, mp4: bytes, tmp_path: Path) -> None:
    st, server = storage
    st.bodies["/v.mp4"] = mp4
    (tmp_path / "videos").write_text("a file where the folder should be")
    async with aiohttp.ClientSession() as session:
        with pytest.raises(DiskError, match=r"cannot write .*a\.mp4\.part"):
            await download(session, st.url(server, "/v.mp4"), tmp_path / "videos" / "a.mp4", expect=Expect(320, 180, 2))


def test_a_sidecar_that_cannot_be_written_is_a_disk_error(tmp_path: Path) -> None:
    (tmp_path / "videos").write_text("not a folder")
    with pytest.raises(DiskError, match="cannot write"):
        write_sidecar(tmp_path / "videos" / "a.mp4", {"a": 1})


def test_a_lock_in_an_unwritable_folder_is_a_disk_error(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("not a folder")
    with pytest.raises(DiskError, match="cannot write"):
        RunLock(tmp_path / "out").acquire()


def test_disk_trouble_is_found_inside_nested_exception_groups() -> None:
    full = OSError(errno.ENOSPC, "No space left on device", "/out/ledger.jsonl")
    group = ExceptionGroup("run", [ExceptionGroup("fetcher", [ValueError("x"), full])])
    found = disk_trouble(group)
    assert isinstance(found, DiskError) and found.errno == errno.ENOSPC
    assert str(found) == "cannot write /out/ledger.jsonl: No space left on device"
    ledger = LedgerError("/out/ledger.jsonl: the ledger cannot be written: [Errno 30] Read-only file system")
    assert disk_trouble(ExceptionGroup("run", [ledger])) is ledger
    assert disk_trouble(ExceptionGroup("run", [ValueError("x")])) is None
    assert disk_trouble(OSError(errno.ECONNREFUSED, "refused")) is None  # the network's, not the disk's
