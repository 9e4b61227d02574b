"""Task times kept across runs: a small file in the state folder (``--state-dir``, beside the daily spend).

A run learns what each kind of task takes (``task_times.Kind``: model, resolution tier, duration) from the
server's own submit → end times; this file hands that to the next run, so its first tasks are polled on
what the last nights showed rather than on the geometric no-knowledge schedule. One file for every API
host, since task times are the host's (another region, a workspace host, the local emulator on its port):

    <state dir>/task-times.json
    {"app": "wanbatch", "format": 1,
     "hosts": {"dashscope.aliyuncs.com": {"wan2.6-t2v|720P|5": [[<epoch s>, <seconds>], …], …}, …}}

* **Bounded**: the newest ``MAX_SAMPLES`` samples of a kind, ``MAX_KINDS`` kinds of a host (those learned
  longest ago go first), ``MAX_HOSTS`` hosts, nothing older than ``MAX_AGE_DAYS``: a few hundred KB at most.
* **Recent nights weigh more**: a sample's weight halves every ``HALF_LIFE_DAYS``; old samples fade out of the
  expectation (``TaskTimes`` needs ``min_samples`` worth of weight) before the bounds drop them.
* **Read at start** (no lock: the file only ever changes by an atomic rename). **Written at the end** of a
  run: under ``flock`` on ``task-times.lock`` the file is read again, this run's samples are merged in, and
  the result goes to a temporary file that is fsync'd and renamed over the old one (then the folder is
  fsync'd). Two runs ending at once each merge into what the other wrote: neither loses its samples.
* **Never fatal**: a corrupt file, a foreign one (not wanbatch's) or one of a newer format is ignored with one
  warning (``poll.memory_ignored``); the run polls as if nothing were known. A corrupt file is replaced at
  the next save; a foreign or newer one is left as it is (not ours to overwrite), so this run's samples are
  not kept. A failed save only logs ``poll.memory_unsaved``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, ValidationError

from runner.engine.task_times import Kind, Weighted
from runner.log import get_logger
from runner.models import TIER_SIZES

__all__ = ["FILE_NAME", "FORMAT", "TaskMemory", "host_of"]

FILE_NAME = "task-times.json"
LOCK_NAME = "task-times.lock"
APP = "wanbatch"
FORMAT = 1
MAX_SAMPLES = 32
MAX_KINDS = 64
MAX_HOSTS = 8
MAX_AGE_DAYS = 90.0
HALF_LIFE_DAYS = 7.0
#: A file larger than this is not ours (the bounds keep ours far below): treated as corrupt.
MAX_BYTES = 4 << 20
_DAY = 86400.0

log = get_logger("wanbatch.poll")

#: host -> kind key -> [(epoch seconds learned, task seconds), …]
Hosts = dict[str, dict[str, list[tuple[float, float]]]]


class _Header(BaseModel):
    """Enough of a file to tell whose it is and which format (anything else may be there)."""

    model_config = ConfigDict(extra="allow")

    app: str
    format: int


class _File(BaseModel):
    """The file, format 1 (strict: a file that says it is ours but is not is corrupt)."""

    model_config = ConfigDict(extra="forbid")

    app: Literal["wanbatch"]
    format: Literal[1]
    hosts: Hosts


class _Unusable(Exception):
    """The file cannot be used: ``why`` says so in the warning; ``ours`` when it may be overwritten."""

    def __init__(self, why: str, *, ours: bool) -> None:
        super().__init__(why)
        self.why = why
        self.ours = ours


def host_of(base_url: str) -> str:
    """The API host a base URL points at (with its port when given): what task times are kept per."""
    parts = urlsplit(base_url)
    host = (parts.hostname or base_url).lower()
    return f"{host}:{parts.port}" if parts.port else host


class TaskMemory:
    """The state folder's task-times file, for one API host (module docstring).

    ``now`` (epoch seconds) is injectable: it stamps new samples and ages old ones.
    """

    def __init__(self, state_dir: str | os.PathLike[str], host: str, *, now: Callable[[], float] = time.time) -> None:
        self.dir = Path(state_dir)
        self.host = host
        self._now = now
        self._warned = False

    @property
    def path(self) -> Path:
        return self.dir / FILE_NAME

    # ------------------------------------------------------------------------------------------ reading

    def load(self) -> dict[Kind, list[Weighted]]:
        """This host's remembered samples per exact kind, weighted by age; empty when there are none or the
        file is unusable (one warning)."""
        try:
            hosts = self._read()
        except _Unusable as e:
            self._warn(e.why)
            return {}
        now = self._now()
        out: dict[Kind, list[Weighted]] = {}
        for key, samples in hosts.get(self.host, {}).items():
            kind = _parse_kind(key)
            if kind is None:
                continue
            weighted = [(s, _weight(now - at)) for at, s in samples if _fresh(now - at) and _sane(s)]
            if weighted:
                out[kind] = weighted
        return out

    def _read(self) -> Hosts:
        """Every host's samples; {} without a file; ``_Unusable`` for a corrupt, foreign or newer one."""
        try:
            with open(self.path, "rb") as f:
                data = f.read(MAX_BYTES + 1)
        except (FileNotFoundError, NotADirectoryError):
            return {}  # no file (yet): nothing known; a state folder that cannot be made is said by save()
        except OSError as e:
            raise _Unusable(f"cannot read it: {e.strerror}", ours=False) from None
        if len(data) > MAX_BYTES:
            raise _Unusable(f"larger than {MAX_BYTES >> 20} MB", ours=True)
        try:
            raw = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise _Unusable("not valid JSON (corrupt)", ours=True) from None
        try:
            header = _Header.model_validate(raw)
        except ValidationError:
            raise _Unusable("not a wanbatch task-times file", ours=False) from None
        if header.app != APP:
            raise _Unusable(f"a file of {header.app!r}, not of wanbatch", ours=False)
        if header.format > FORMAT:
            raise _Unusable(f"format {header.format} is newer than this wanbatch's ({FORMAT})", ours=False)
        try:
            return _File.model_validate(raw).hosts
        except ValidationError as e:
            raise _Unusable(f"corrupt ({e.error_count()} error(s))", ours=True) from None

    def _warn(self, why: str) -> None:
        if not self._warned:
            self._warned = True
            log.warning("poll.memory_ignored", path=str(self.path), reason=why)

    # ------------------------------------------------------------------------------------------ writing

    def save(self, samples: Sequence[tuple[Kind, float]]) -> bool:
        """Merge this run's samples into the file (module docstring). True when the file was written."""
        good = [(k, s) for k, s in samples if k.exact and _sane(s)]
        if not good:
            return False
        try:
            with self._locked():
                try:
                    hosts = self._read()
                except _Unusable as e:
                    if not e.ours:
                        self._warn(e.why)
                        return False
                    hosts = {}
                self._write(_merged(hosts, self.host, good, self._now()))
        except OSError as e:
            log.warning("poll.memory_unsaved", path=str(self.path), error=e.strerror or str(e))
            return False
        return True

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # another run holds it for the few milliseconds of its save
            yield
        finally:
            os.close(fd)  # drops the flock

    def _write(self, hosts: Hosts) -> None:
        text = json.dumps({"app": APP, "format": FORMAT, "hosts": hosts}, separators=(",", ":"), sort_keys=True)
        tmp = self.dir / f".{FILE_NAME}.{os.getpid()}.tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        dfd = os.open(self.dir, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def _merged(hosts: Hosts, host: str, samples: Sequence[tuple[Kind, float]], now: float) -> Hosts:
    """``hosts`` with ``samples`` learned now added to ``host``, then bounded (module docstring)."""
    mine = hosts.setdefault(host, {})
    stamp = round(now, 3)
    for kind, seconds in samples:
        mine.setdefault(str(kind), []).append((stamp, round(seconds, 3)))
    out: Hosts = {}
    for name, kinds in hosts.items():
        kept = {}
        for key, values in kinds.items():
            fresh = sorted((at, s) for at, s in values if _fresh(now - at) and _sane(s))[-MAX_SAMPLES:]
            if fresh and _parse_kind(key) is not None:
                kept[key] = fresh
        newest = sorted(kept, key=lambda k: kept[k][-1][0], reverse=True)[:MAX_KINDS]
        if newest:
            out[name] = {k: kept[k] for k in sorted(newest)}
    last = {name: max(v[-1][0] for v in kinds.values()) for name, kinds in out.items()}
    return {name: out[name] for name in sorted(out, key=lambda n: (n != host, -last[n]))[:MAX_HOSTS]}


def _parse_kind(key: str) -> Kind | None:
    """``model|tier|duration`` back to an exact kind; None for anything else (skipped, not fatal)."""
    parts = key.split("|")
    if len(parts) != 3 or not parts[0] or parts[1] not in TIER_SIZES or not parts[2].isdigit():
        return None
    duration = int(parts[2])
    return Kind(parts[0], parts[1], duration) if 0 < duration <= 600 else None


def _sane(seconds: float) -> bool:
    return math.isfinite(seconds) and 0 < seconds < 1e6


def _fresh(age: float) -> bool:
    return math.isfinite(age) and age <= MAX_AGE_DAYS * _DAY


def _weight(age: float) -> float:
    """1 for a sample of tonight, halving every ``HALF_LIFE_DAYS`` (a sample from the future counts as now)."""
    return math.pow(0.5, max(0.0, age) / (HALF_LIFE_DAYS * _DAY))
