"""The run's ledger: an append-only JSONL file, one complete line per event, and the output folder's lock.

The ledger is the run's memory. Every transition of a job is one line; ``replay()`` folds the lines back
into a ``RunState`` (``runner/state.py``) so an interrupted run resumes where it stopped. Two promises:

* **Durable before return.** ``await writer.append(...)`` returns only once its line is written whole and
  ``fsync``'d, so the pipeline can write the ``submitting`` intent and know it is on disk before the create
  request leaves (a paid task is never made without a trace of it).
* **Group commit.** One writer task owns the file. Lines that arrive while an fsync runs are gathered and
  written with ONE write and ONE fsync; every caller waiting on them is released together. A run with
  thousands of jobs therefore pays one fsync per batch, not per line. The write and fsync run in a worker
  thread, never on the event loop.

The format (ARCHITECTURE.md, "the ledger format") is defined here once: ``EVENTS`` and the line models of
``runner/state.py``. A line the writer is asked to append is validated against the same models replay
uses, so the run can never write what a resume cannot read.

A crash can leave a torn last line (a partial write). Replay ignores it; the writer cuts it off before
appending, so the next line never glues onto garbage.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import structlog

from runner.errors import LedgerError
from runner.store.events import (
    EVENTS,
    Line,
    validate_line,
)
from runner.store.files import fsync_dir
from runner.store.replay import sound_length

LEDGER_NAME = "ledger.jsonl"

_log = structlog.get_logger("wanbatch.ledger")

#: One compact encoder for every line (``json.dumps`` with options builds a new encoder per call).
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


@dataclass
class _Pending:
    data: bytes
    done: asyncio.Future[None]


class LedgerWriter:
    """Appends lines to the ledger; one writer task does group commit (see the module docstring).

    Use as ``async with LedgerWriter(path) as ledger: await ledger.append(SUBMITTING, job_id, attempt=1,
    model=m)``. ``fsync`` and ``clock`` can be replaced (tests count fsyncs; ``clock`` gives ``ts``).
    ``lines`` and ``fsyncs`` count what was made durable, for tests and the benchmark.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fsync: Callable[[int], None] = os.fsync,
        clock: Callable[[], float] = time.time,
        validate: bool = True,
    ) -> None:
        self.path = Path(path)
        self._fsync = fsync
        self._clock = clock
        self._validate = validate
        self._fd: int | None = None
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._error: BaseException | None = None
        self._closing = False
        self.lines = 0
        self.fsyncs = 0
        self.batches = 0
        self.repaired_bytes = 0

    async def __aenter__(self) -> LedgerWriter:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Open (create) the file, cut off a torn last line, and start the writer task."""
        if self._task is not None:
            return
        self._fd, self.repaired_bytes = await asyncio.to_thread(self._open_sync)
        if self.repaired_bytes:
            _log.warning("ledger.torn_tail_removed", path=str(self.path), bytes=self.repaired_bytes)
        self._task = asyncio.create_task(self._run(), name="ledger-writer")

    def _open_sync(self) -> tuple[int, int]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        try:
            size = os.fstat(fd).st_size
            keep = sound_length(self.path) if size else 0
            if keep < size:
                os.ftruncate(fd, keep)
                self._fsync(fd)
            if keep == 0 and size == 0:
                fsync_dir(self.path.parent)
        except BaseException:
            os.close(fd)
            raise
        return fd, size - keep

    def encode(self, event: str, job_id: str | None, fields: dict[str, Any]) -> bytes:
        """The line for one event (with ``ts``), validated against the format; ValueError when it breaks it."""
        data, obj = self._dump(event, job_id, fields)
        if self._validate:
            validate_line(obj)
        return data

    def prepare(self, event: str, job_id: str | None, fields: dict[str, Any]) -> tuple[bytes, Line]:
        """The line's bytes and its validated model, for callers that fold it into a ``RunState`` without
        parsing their own line back (``RunContext.record``); ValueError when it breaks the format."""
        data, obj = self._dump(event, job_id, fields)
        return data, validate_line(obj)

    def _dump(self, event: str, job_id: str | None, fields: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
        if event not in EVENTS:
            raise ValueError(f"unknown ledger event {event!r}; the events are defined in runner/state.py")
        obj: dict[str, Any] = {"ts": self._clock(), "event": event, "job_id": job_id, **fields}
        try:
            text = _ENCODER.encode(obj)
        except (TypeError, ValueError) as e:
            raise ValueError(f"ledger event {event!r} for {job_id!r} is not JSON: {e}") from e
        if "\n" in text:  # json escapes newlines in strings; belt and braces for the one-line rule
            raise ValueError("a ledger line must not contain a newline")
        return text.encode("utf-8") + b"\n", obj

    async def append(self, event: str, job_id: str | None = None, **fields: Any) -> None:
        """Append one event; return once it is durable (written and fsync'd)."""
        await self.append_raw(self.encode(event, job_id, fields))

    async def append_raw(self, data: bytes) -> None:
        """Append pre-encoded line bytes (from ``encode``, one line or several joined); return once durable."""
        if self._error is not None:
            raise LedgerError(f"{self.path}: the ledger cannot be written: {self._error}") from self._error
        if self._task is None or self._closing:
            raise RuntimeError("LedgerWriter is not open")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.add_done_callback(_consume)  # a caller cancelled while waiting must not leave an unread error
        self._queue.put_nowait(_Pending(data, fut))
        # Not shielded: a cancelled caller cancels only its own future, which the writer then skips; the
        # line itself is queued and goes out with its batch either way.
        await fut

    async def _run(self) -> None:
        """The writer task: take everything queued, one write + one fsync, release the callers."""
        batch: list[_Pending] = []
        try:
            while True:
                first = await self._queue.get()
                stop = first is None
                batch = [] if first is None else [first]
                while not self._queue.empty():
                    item = self._queue.get_nowait()
                    if item is None:
                        stop = True
                    else:
                        batch.append(item)
                if batch:
                    await self._commit(batch)
                    batch = []
                if stop:
                    return
        finally:
            # cancelled (the loop is shutting down) or broken: nobody may wait forever for a line.
            # A line whose write was under way may in fact be on disk; saying "not durable" is the safe side.
            if self._error is None and (batch or not self._queue.empty()):
                self._error = RuntimeError("the ledger writer stopped")
            while not self._queue.empty():
                item = self._queue.get_nowait()
                if item is not None:
                    batch.append(item)
            self._settle(batch)

    async def _commit(self, batch: list[_Pending]) -> None:
        if self._error is None:
            try:
                await asyncio.to_thread(self._write_sync, b"".join(p.data for p in batch))
            except Exception as e:  # the disk is gone or full: every later append fails too
                self._error = e
            else:
                self.lines += sum(p.data.count(b"\n") for p in batch)  # a pending item may hold several lines
                self.batches += 1
        self._settle(batch)

    def _settle(self, batch: list[_Pending]) -> None:
        for p in batch:
            if p.done.done():
                continue
            if self._error is None:
                p.done.set_result(None)
            else:
                p.done.set_exception(LedgerError(f"{self.path}: the ledger cannot be written: {self._error}"))

    def _write_sync(self, data: bytes) -> None:
        assert self._fd is not None
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        self._fsync(self._fd)
        self.fsyncs += 1

    async def close(self) -> None:
        """Flush what is queued, stop the writer task, close the file. Safe to call twice."""
        if self._task is None:
            return
        if not self._closing:
            self._closing = True
            self._queue.put_nowait(None)
        task, self._task = self._task, None
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.cancelled():  # our caller was cancelled, not the writer: let that through
                raise
        finally:
            if self._fd is not None and task.done():
                fd, self._fd = self._fd, None
                os.close(fd)


def _consume(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled():
        fut.exception()
