"""The host's register of create intents and of the tasks they made, shared by every run on this machine.

Two output folders running the same manifest on one account make tasks that look alike to the server; each
folder's ledger knows only its own. Without a shared record, a folder whose create answer was lost adopted
the other folder's task (issue 13: 20 tasks paid, 5 saved twice, 5 never saved). This register, one JSONL
file in the state folder (``--state-dir``, beside the daily spend), lets a run see what every other run on
the host claimed:

* ``intent``: a folder is about to send a create (its job, the look-alike group, the body's digest, when);
* ``claim``: a folder owns a task (its create was answered, or reconcile adopted it);
* ``done``: an intent ended without a task (the create was refused).

Reconcile skips tasks claimed by anyone, and treats other folders' unsettled intents of the same group as
rivals for the tasks it finds. ``claim_first`` reads, decides and appends under one ``flock``, so two runs
never claim the same task. Every write takes the lock (claims must be ordered against ``claim_first``).

The register is a help, never a requirement: when the state folder cannot be used the run goes on with its
ledger alone and logs ``claims.unavailable`` once (reconcile is then stricter, never looser). Lines older than
two days (past the 24-h retention of every task) are dropped when the file grows past ``_PRUNE_BYTES``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

__all__ = ["Claims", "Intent", "Register"]

log = structlog.get_logger("wanbatch.claims")

FILE_NAME = "claims.jsonl"
_KEEP_SECONDS = 2 * 24 * 3600.0
_PRUNE_BYTES = 8 << 20


@dataclass(frozen=True)
class Intent:
    """Another run's create that has not been settled (no claim or ``done`` for it yet)."""

    folder: str
    job_id: str
    group: str
    body: str
    t0: float  # host seconds: the intent was written


@dataclass
class Register:
    """What the file says for one API host: every claimed task, and the open intents of other folders."""

    claimed: dict[str, tuple[str, str]] = field(default_factory=dict)  # task id -> (folder, job id)
    account_of: dict[str, str] = field(default_factory=dict)  # task id -> the account that claimed it (issue 18)
    intents: list[Intent] = field(default_factory=list)
    own_intents: dict[str, float] = field(default_factory=dict)  # this folder's unsettled intents: job id -> t0


class Claims:
    """This run's view of the register: its folder and API host, the file, an injectable clock."""

    def __init__(
        self, state_dir: str | os.PathLike[str] | None, folder: str | os.PathLike[str], base_url: str,
        *, now: Callable[[], float] = time.time, account: str = "default",
    ) -> None:  # fmt: skip
        self.path = Path(state_dir) / FILE_NAME if state_dir is not None else None
        self.folder = str(Path(folder).resolve())
        self.url = base_url.rstrip("/")
        self.account = account  # the run's name for the account (a lost ledger's tasks go back to it)
        self._now = now
        self._warned = False

    # ------------------------------------------------------------------------------------------ writing

    def intent(self, job_id: str, group: str, body: str) -> None:
        self._append([{"k": "intent", "job": job_id, "group": group, "body": body}])

    def claim(self, job_id: str, task_ids: Iterable[str]) -> None:
        self._append([{"k": "claim", "job": job_id, "task": t} for t in task_ids])

    def done(self, job_id: str) -> None:
        self._append([{"k": "done", "job": job_id}])

    def claim_first(self, job_id: str, candidates: list[str]) -> str | None:
        """Claim the first of ``candidates`` nobody has claimed, atomically against every other run; None when
        all are taken. Without a usable register, the first candidate (the caller decided it alone)."""
        if self.path is None:
            return candidates[0] if candidates else None
        try:
            with self._locked() as f:
                taken = self._read(f).claimed
                for task_id in candidates:
                    if taken.get(task_id, (self.folder, job_id)) == (self.folder, job_id):
                        f.write(self._line({"k": "claim", "job": job_id, "task": task_id}))
                        f.flush()
                        return task_id
                return None
        except OSError as exc:
            self._unavailable(exc)
            return candidates[0] if candidates else None

    # ------------------------------------------------------------------------------------------ reading

    def mine(self, reg: Register, job_id: str) -> set[str]:
        """Tasks ``reg`` says this folder claimed for ``job_id`` (a run killed between its claim and its ledger
        line left them there: they are proven the job's own)."""
        return {t for t, owner in reg.claimed.items() if owner == (self.folder, job_id)}

    def read(self) -> Register:
        """The register as it stands (empty when it cannot be read)."""
        if self.path is None:
            return Register()
        try:
            with self._locked() as f:
                return self._read(f)
        except OSError as exc:
            self._unavailable(exc)
            return Register()

    # ------------------------------------------------------------------------------------------ the file

    def _line(self, fields: dict[str, Any]) -> str:
        line = {"t": round(self._now(), 3), "url": self.url, "folder": self.folder, "acct": self.account, **fields}
        return json.dumps(line) + "\n"

    def _append(self, lines: list[dict[str, Any]]) -> None:
        if self.path is None or not lines:
            return
        try:
            with self._locked() as f:
                f.write("".join(self._line(fields) for fields in lines))
                f.flush()
        except OSError as exc:
            self._unavailable(exc)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[Any]:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+", encoding="utf-8") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield f
                if f.tell() > _PRUNE_BYTES:
                    self._prune(f)
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def _lines(self, f: Any) -> list[dict[str, Any]]:
        f.seek(0)
        out = []
        for raw in f:
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError:
                continue  # a torn line of a killed writer: what it said was never acted on
            if isinstance(obj, dict):
                out.append(obj)
        return out

    def _read(self, f: Any) -> Register:
        reg = Register()
        open_intents: dict[tuple[str, str], Intent] = {}
        own: dict[str, float] = {}
        for obj in self._lines(f):
            if obj.get("url") != self.url:
                continue
            folder, job, kind = str(obj.get("folder")), str(obj.get("job")), obj.get("k")
            if kind in ("claim", "done"):  # the intent is settled
                open_intents.pop((folder, job), None)
                if folder == self.folder:
                    own.pop(job, None)
                if kind == "claim" and isinstance(obj.get("task"), str):
                    reg.claimed.setdefault(obj["task"], (folder, job))
                    reg.account_of.setdefault(obj["task"], str(obj.get("acct") or "default"))
            elif kind == "intent" and folder != self.folder:
                open_intents[(folder, job)] = Intent(
                    folder, job, str(obj.get("group")), str(obj.get("body")), float(obj.get("t") or 0.0)
                )
            elif kind == "intent":
                own[job] = float(obj.get("t") or 0.0)
        reg.intents = list(open_intents.values())
        reg.own_intents = own
        return reg

    def _prune(self, f: Any) -> None:
        """Drop lines older than two days (under the lock: nobody appends meanwhile)."""
        horizon = self._now() - _KEEP_SECONDS
        keep = [obj for obj in self._lines(f) if float(obj.get("t") or 0.0) >= horizon]
        f.seek(0)
        f.truncate()
        f.write("".join(json.dumps(obj) + "\n" for obj in keep))
        f.flush()

    def _unavailable(self, exc: OSError) -> None:
        if not self._warned:
            self._warned = True
            log.warning("claims.unavailable", path=str(self.path), error=exc.strerror or str(exc))
