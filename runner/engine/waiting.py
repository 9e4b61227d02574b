"""Waiting that ends when the run stops: the run's shutdown flags and ``until_stop`` / ``sleep`` over them.

Cancellation is normal control flow: every stage waits through ``until_stop`` or ``sleep``, so setting
``stop`` (an interrupt) or ``done`` (every job settled) ends every loop at its next await, and ``draining``
(``--drain``, or an account refusal) stops new submissions while the rest finishes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast


class Stopped(Exception):
    """The run stopped (interrupt or done) while a stage waited; the stage ends quietly."""


class Flag(asyncio.Event):
    """An ``asyncio.Event`` that also calls registered watchers (soon, from the loop) once it is set.

    ``RunContext.until_stop`` runs several times per job and thousands of jobs may wait at once; watching
    ``stop``/``done`` through ``Event.wait()`` cost a task per event per call (four or five tasks per
    await, ~15 % of the CPU at 400 submissions/s), and done-callbacks on one shared future cost an O(n)
    removal each (quadratic with 10,000 waiters). Watchers live in a dict: adding and removing are O(1).
    They are called from a loop callback, never inside ``set()``, so a task that sets the flag is not
    interrupted by its own watcher.
    """

    def __init__(self) -> None:
        super().__init__()
        self._watchers: dict[Callable[[], None], None] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def set(self) -> None:
        super().set()
        if self._watchers and self._loop is not None:
            self._loop.call_soon(self._fire)

    def _fire(self) -> None:
        watchers, self._watchers = self._watchers, {}
        for fn in watchers:
            fn()

    def add_watcher(self, fn: Callable[[], None]) -> None:
        """Call ``fn()`` soon after the flag is set (soon, if it is set already)."""
        self._loop = asyncio.get_running_loop()
        self._watchers[fn] = None
        if self.is_set():
            self._loop.call_soon(self._fire)

    def remove_watcher(self, fn: Callable[[], None]) -> None:
        self._watchers.pop(fn, None)


@dataclass(kw_only=True)
class Shutdown:
    """The run's three flags and the waits that end on them (``RunContext`` is one)."""

    stop: Flag = field(default_factory=Flag)  # interrupt: every loop ends now
    draining: Flag = field(default_factory=Flag)  # no new submissions; finish the rest
    done: Flag = field(default_factory=Flag)  # every job reached a final state

    @property
    def stopping(self) -> bool:
        return self.stop.is_set() or self.done.is_set()

    async def sleep(self, seconds: float) -> bool:
        """Sleep unless the run stops first; True when the full time passed."""
        if self.stopping:
            return False
        if seconds <= 0:
            await asyncio.sleep(0)
            return not self.stopping
        loop = asyncio.get_running_loop()
        timer = loop.create_future()
        handle = loop.call_later(seconds, _resolve, timer)
        try:
            await _wait_first([timer], [self.stop, self.done])
        finally:
            handle.cancel()
        return timer.done() and not self.stopping

    async def until_stop(self, aw: Awaitable[Any], *also: asyncio.Event) -> tuple[bool, Any]:
        """Await ``aw`` unless the run stops (or one of ``also`` is set) first: (True, result), or (False, None)
        with ``aw`` cancelled (not started at all when the run already stopped). Cancelling the caller
        cancels ``aw`` too.

        ``aw`` runs in the caller's own task: a stop cancels that task (and ``uncancel``s it here, as
        ``asyncio.timeout`` does), so a wait costs no task and no wake-up hop. This runs four or five times
        per job; a task per call (and, before, a task per watched event) was a fifth of the CPU at scale."""
        flags = (self.stop, self.done, *also)
        if any(f.is_set() for f in flags):
            _discard(aw)
            return False, None
        task = asyncio.current_task()
        if task is None or not all(isinstance(f, Flag) for f in also):
            return await self._until_stop_in_task(aw, also)
        watch = _Interrupt(task)
        for f in flags:
            cast(Flag, f).add_watcher(watch)
        try:
            result = await aw
        except BaseException as exc:
            if not watch.interrupted:
                raise
            if task.uncancel() > watch.cancelling:  # cancelled from outside too: that one goes on
                if isinstance(exc, asyncio.CancelledError):
                    raise
                raise asyncio.CancelledError from None
            return False, None  # our stop: whatever ``aw`` raised while unwinding does not matter any more
        finally:
            watch.active = False
            for f in flags:
                cast(Flag, f).remove_watcher(watch)
        if watch.interrupted:  # ``aw`` swallowed the cancellation and returned: the run stopped all the same
            task.uncancel()
            return False, None
        return True, result

    async def _until_stop_in_task(self, aw: Awaitable[Any], also: tuple[asyncio.Event, ...]) -> tuple[bool, Any]:
        """``until_stop`` with ``aw`` in a task of its own (a plain ``asyncio.Event`` among ``also``, or no
        current task to interrupt)."""
        task = asyncio.ensure_future(aw)
        flags = [self.stop, self.done, *(e for e in also if isinstance(e, Flag))]
        helpers = [asyncio.ensure_future(e.wait()) for e in also if not isinstance(e, Flag)]
        try:
            await _wait_first([task, *helpers], flags)
        except BaseException:
            task.cancel()
            raise
        finally:
            for h in helpers:
                h.cancel()
        if task.done():
            return True, task.result()
        task.cancel()
        await asyncio.wait({task})  # let it unwind; never re-raises, so our own cancellation stays ours
        if not task.cancelled():
            task.exception()  # retrieved: an error after the stop does not matter any more
        return False, None


def opened_flag() -> Flag:
    """A ``Flag`` that starts set."""
    flag = Flag()
    flag.set()
    return flag


class _Interrupt:
    """The watcher ``until_stop`` puts on the stop flags: cancels the waiting task once, and only while that
    wait lasts (a flag set during the wait schedules the call; it may run after the wait ended)."""

    __slots__ = ("active", "cancelling", "interrupted", "task")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.cancelling = task.cancelling()
        self.active = True
        self.interrupted = False

    def __call__(self) -> None:
        if self.active and not self.interrupted:
            self.interrupted = True
            self.task.cancel()


def _discard(aw: Awaitable[Any]) -> None:
    """Drop an awaitable that will not be awaited: close a coroutine (no "never awaited" warning), cancel a
    future."""
    if asyncio.iscoroutine(aw):
        aw.close()
    elif asyncio.isfuture(aw):
        aw.cancel()


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


async def _wait_first(futures: list[asyncio.Future[Any]], flags: list[Flag]) -> None:
    """Return once one of ``futures`` is done or one of ``flags`` is set (``asyncio.wait(FIRST_COMPLETED)``
    without its set-up cost); every callback and watcher comes off again."""
    if any(f.done() for f in futures) or any(f.is_set() for f in flags):
        return
    waiter = asyncio.get_running_loop().create_future()

    def wake(_: object = None) -> None:
        if not waiter.done():
            waiter.set_result(None)

    for fut in futures:
        fut.add_done_callback(wake)
    for flag in flags:
        flag.add_watcher(wake)
    try:
        await waiter
    finally:
        for fut in futures:
            fut.remove_done_callback(wake)
        for flag in flags:
            flag.remove_watcher(wake)
