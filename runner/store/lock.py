"""The output folder's lock: one run at a time per folder (``.lock`` holds the pid of the run holding it).

``flock`` on the file: the kernel releases it when the holder dies, so a crashed run never leaves the folder
locked; the pid inside is only for the message naming the run that holds it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path
from types import TracebackType

import structlog

from runner.errors import DiskError, LockHeld

LOCK_NAME = ".lock"

_log = structlog.get_logger("wanbatch.ledger")


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """The output folder's lock: ``.lock`` holds the pid of the run that owns the folder.

    Taken with ``fcntl.flock`` (non-blocking) on the file, so the kernel frees it when the holder dies,
    however it dies. A second run gets ``LockHeld`` naming the holder's pid. A lock file left behind by a
    dead process is taken over with a log line. The inode is checked after locking, so a run that locked a
    file another run was just deleting retries on the new one rather than sharing the folder.
    """

    def __init__(self, out_dir: str | os.PathLike[str]) -> None:
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / LOCK_NAME
        self._fd: int | None = None
        self.took_over_from: int | None = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock or raise ``LockHeld``; ``DiskError`` when the folder cannot be written."""
        if self._fd is not None:
            return
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:  # read-only, full, no permission: say so instead of a traceback
            raise DiskError(str(self.path), e) from None
        os.close(fd)
        for _ in range(100):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                pid = read_lock_pid(self.path)
                who = f"pid {pid}" if pid else "another process"
                raise LockHeld(
                    f"{self.out_dir} is in use by another run ({who}); wait for it to finish or stop it"
                ) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the holder deleted it between our open and our flock: try the new file
                os.close(fd)
                continue
            old = _read_pid_fd(fd)
            if old and old != os.getpid():
                self.took_over_from = old
                state = "still running but not holding it" if _pid_alive(old) else "no longer running"
                _log.warning("lock.taken_over", path=str(self.path), stale_pid=old, reason=state)
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
                os.fsync(fd)
            except OSError as e:
                os.close(fd)
                raise DiskError(str(self.path), e) from None
            self._fd = fd
            return
        raise LockHeld(f"{self.out_dir}: could not take the lock (it keeps changing)")

    def release(self) -> None:
        """Remove the lock file and unlock. Safe to call twice."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):  # gone, or the folder turned read-only: the flock still drops
            os.unlink(self.path)
        os.close(fd)  # closing drops the flock


def _read_pid_fd(fd: int) -> int | None:
    raw = os.pread(fd, 64, 0)
    try:
        return int(raw.decode("ascii").strip() or "0") or None
    except (UnicodeDecodeError, ValueError):
        return None


def read_lock_pid(path: str | os.PathLike[str]) -> int | None:
    """The pid written in a lock file, or None (missing, empty, unreadable)."""
    try:
        raw = Path(path).read_bytes()[:64]
    except OSError:
        return None
    try:
        return int(raw.decode("ascii").strip() or "0") or None
    except (UnicodeDecodeError, ValueError):
        return None
