"""The daily spend ledger: what runs with ``--daily-budget`` reserved and spent, per calendar day, shared by
every run and output folder of the user (``--state-dir``, default ``$XDG_STATE_HOME/wanbatch`` or
``~/.local/state/wanbatch``).

Why a file and a lock: two runs started at the same time (two manifests of one nightly schedule) must not
both spend the last of the day's money, so every read-check-append happens under ``flock`` on
``spend.lock``. One JSON line per operation, one file per day (``spend-YYYY-MM-DD.jsonl``), so a day's file
stays small and old days are never read.

Day boundary: midnight in the ledger's timezone (``--timezone``, an IANA name; default the host's local
time). Money counts on the day it was reserved (the moment of the submit); its settlement or release is
written to that same day's file, so a run crossing midnight never moves yesterday's spending to today.

Line ops, folded per key (``<output folder>#<job id>``), the last one wins:
``reserve`` (open, counts), ``settle`` (spent, counts with the billed amount), ``release`` (counts nothing).
An open reservation of a process that died still counts (its task may be billed) until a resumed run of
that folder settles or releases it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, ValidationError

from runner.errors import ConfigError

APP = "wanbatch"
LOCK_NAME = "spend.lock"
Op = Literal["reserve", "settle", "release"]


def default_state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_STATE_HOME/wanbatch``, else ``~/.local/state/wanbatch`` (the XDG base directory default)."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_STATE_HOME", "").strip()
    if base and os.path.isabs(base):
        return Path(base) / APP
    home = env.get("HOME") or str(Path.home())
    return Path(home) / ".local" / "state" / APP


def parse_timezone(name: str | None) -> tzinfo | None:
    """An IANA zone (``Europe/Berlin``, ``UTC``, ``Asia/Shanghai``); None or ``local`` is the host's local time."""
    if name is None or name.strip().lower() in ("", "local"):
        return None
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"unknown timezone {name!r}: give an IANA name such as UTC or Europe/Berlin") from None


class DayClock:
    """Epoch seconds (injectable) and the calendar day they fall on in one timezone."""

    def __init__(self, tz: tzinfo | None = None, clock: Callable[[], float] = time.time) -> None:
        self.tz = tz
        self.clock = clock

    def now(self) -> float:
        return self.clock()

    def local(self, ts: float) -> datetime:
        return datetime.fromtimestamp(ts, self.tz) if self.tz is not None else datetime.fromtimestamp(ts).astimezone()

    def day(self, ts: float | None = None) -> date:
        """The day ``ts`` (default now) falls on."""
        return self.local(self.now() if ts is None else ts).date()

    def next_midnight(self, ts: float | None = None) -> datetime:
        """When the day of ``ts`` ends (the next day's budget starts)."""
        d = self.day(ts) + timedelta(days=1)
        naive = datetime(d.year, d.month, d.day)
        if self.tz is not None:
            return naive.replace(tzinfo=self.tz)
        return naive.astimezone()

    @property
    def label(self) -> str:
        """The timezone as users read it: the IANA key, or ``local (CET)``."""
        key = getattr(self.tz, "key", None)
        if key:
            return str(key)
        if self.tz is not None:
            return str(self.tz)
        return f"local time ({self.local(self.now()).tzname()})"


class SpendLine(BaseModel):
    """One line of a day's file (the boundary: lines are validated when read)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    ts: float
    op: Op
    key: str
    amount: float = 0.0
    pid: int | None = None


@dataclass(frozen=True)
class DayTotals:
    """A day's money: ``settled`` (billed) plus ``reserved`` (submitted, not yet known)."""

    day: date
    settled: float = 0.0
    reserved: float = 0.0
    open_count: int = 0  # reservations not yet settled or released

    @property
    def total(self) -> float:
        return self.settled + self.reserved


_NANO = 1_000_000_000


@dataclass
class _Fold:
    """Per key, the last op and its amount; running sums in integer nano-units (exact, O(1) per line)."""

    state: dict[str, tuple[str, int]] = field(default_factory=dict)
    settled: int = 0
    reserved: int = 0
    open_count: int = 0
    skipped: int = 0

    def apply(self, line: SpendLine) -> None:
        old = self.state.get(line.key)
        if old is not None:
            self._count(*old, -1)
        new = (line.op, round(line.amount * _NANO))
        self.state[line.key] = new
        self._count(*new, 1)

    def _count(self, op: str, amount: int, sign: int) -> None:
        if op == "settle":
            self.settled += sign * amount
        elif op == "reserve":
            self.reserved += sign * amount
            self.open_count += sign

    def get(self, key: str) -> tuple[str, float] | None:
        found = self.state.get(key)
        return None if found is None else (found[0], found[1] / _NANO)

    def totals(self, day: date) -> DayTotals:
        return DayTotals(day, self.settled / _NANO, self.reserved / _NANO, self.open_count)


class SpendLedger:
    """The per-day files in ``state_dir``; every use goes through ``transaction()`` (one flock)."""

    def __init__(
        self, state_dir: str | os.PathLike[str], days: DayClock | None = None, *, durable: bool = True
    ) -> None:
        self.dir = Path(state_dir)
        self.days = days or DayClock()
        self.durable = durable
        self._cache: dict[date, tuple[int, int, _Fold]] = {}  # day -> (inode, bytes folded, fold)

    def path(self, day: date) -> Path:
        return self.dir / f"spend-{day.isoformat()}.jsonl"

    @contextlib.contextmanager
    def transaction(self) -> Iterator[SpendTxn]:
        """Hold the state folder's lock (blocking: another run's transaction is a few milliseconds)."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise ConfigError(f"cannot use the state folder {self.dir}: {e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield SpendTxn(self)
        finally:
            os.close(fd)  # drops the flock

    def totals(self, day: date | None = None) -> DayTotals:
        """A day's totals (default today), read under the lock."""
        with self.transaction() as txn:
            return txn.totals(day or self.days.day())


class SpendTxn:
    """Reads and appends while the ledger's lock is held."""

    def __init__(self, ledger: SpendLedger) -> None:
        self.ledger = ledger

    def fold(self, day: date) -> _Fold:
        """The day's lines folded. Incremental: the file is append-only, so only the bytes written since
        this ledger last read it are parsed (a reservation costs O(new lines), not O(the day's lines))."""
        path = self.ledger.path(day)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            self.ledger._cache.pop(day, None)
            return _Fold()
        try:
            st = os.fstat(fd)
            ino, offset, fold = self.ledger._cache.get(day, (st.st_ino, 0, _Fold()))
            if ino != st.st_ino or st.st_size < offset:  # replaced or cut: read it again from the start
                offset, fold = 0, _Fold()
            data = os.pread(fd, st.st_size - offset, offset) if st.st_size > offset else b""
        finally:
            os.close(fd)
        whole = data.rfind(b"\n") + 1  # a torn tail is left for the next read
        for text in data[:whole].split(b"\n"):
            if not text.strip():
                continue
            try:
                fold.apply(SpendLine.model_validate_json(text))
            except ValidationError:
                # only a torn append (a process killed mid-write, so its submit never left) can make one
                fold.skipped += 1
        self.ledger._cache[day] = (st.st_ino, offset + whole, fold)
        return fold

    def totals(self, day: date) -> DayTotals:
        return self.fold(day).totals(day)

    def state_of(self, day: date, key: str) -> tuple[str, float] | None:
        return self.fold(day).get(key)

    def append(self, day: date, op: Op, key: str, amount: float) -> None:
        line = SpendLine(ts=self.ledger.days.now(), op=op, key=key, amount=round(amount, 9), pid=os.getpid())
        data = (json.dumps(line.model_dump(), separators=(",", ":")) + "\n").encode()
        path = self.ledger.path(day)
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            if os.fstat(fd).st_size and _ends_torn(fd):
                os.write(fd, b"\n")  # never glue a line onto a torn one
            os.write(fd, data)
            if self.ledger.durable:
                os.fsync(fd)
        finally:
            os.close(fd)


def _ends_torn(fd: int) -> bool:
    size = os.fstat(fd).st_size
    return os.pread(fd, 1, size - 1) != b"\n"
