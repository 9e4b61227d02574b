"""The MP4 check runs in the executor the caller passes (the run's one verify thread), and a failed check
still leaves no file behind."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from runner.errors import VerifyError
from runner.store.download import download
from runner.store.mp4 import Expect


class CountingExecutor(ThreadPoolExecutor):
    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.calls: list[str] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.calls.append(getattr(fn, "__name__", "?"))
        return super().submit(fn, *args, **kwargs)


async def test_the_check_runs_in_the_given_executor(storage, mp4: bytes, tmp_path: Path) -> None:
    st, server = storage
    st.bodies["/v.mp4"] = mp4
    with CountingExecutor() as ex:
        async with aiohttp.ClientSession() as session:
            res = await download(session, st.url(server, "/v.mp4"), tmp_path / "a.mp4",
                                 expect=Expect(320, 180, 2.0), verifier=ex)  # fmt: skip
    assert res.path.read_bytes() == mp4
    assert ex.calls == ["verify_and_trim"]


async def test_a_failed_check_in_the_executor_leaves_no_file(storage, mp4: bytes, tmp_path: Path) -> None:
    st, server = storage
    st.bodies["/v.mp4"] = mp4
    with CountingExecutor() as ex:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(VerifyError):
                await download(session, st.url(server, "/v.mp4"), tmp_path / "a.mp4",
                               expect=Expect(640, 360, 2.0), verifier=ex)  # fmt: skip
    assert ex.calls == ["verify_and_trim"]
    assert not (tmp_path / "a.mp4").exists() and not (tmp_path / "a.mp4.part").exists()
