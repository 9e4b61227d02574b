"""One job of a run: what the manifest asked for (``Spec``, the part of ``JobSpec`` the engine uses), and what
the run knows of it beyond the ledger (``Job``): its slot, its look-alike group, its request's digest."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

import structlog

from runner.engine.matching import lookalike_key
from runner.store.job import JobState


class Spec(Protocol):
    """The part of ``runner.manifest.JobSpec`` the run uses."""

    @property
    def job_id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def request(self) -> dict[str, Any]: ...
    @property
    def size(self) -> str: ...
    @property
    def duration(self) -> int: ...
    @property
    def seed(self) -> int | None: ...


@dataclass
class Job:
    """One job of this run: its spec and what the run knows of it beyond the ledger."""

    spec: Spec
    state: JobState
    slot: bool = False  # holds an in-flight slot of its model
    submit_errors: int = 0  # consecutive failed create attempts of the current submission
    task_failures: int = 0
    download_failures: int = 0
    stalled: bool = False
    submitted_at: float | None = None  # limiter-clock time of the current task's submission (poll schedule)
    unanswered: bool = False  # admitted by take_slot, its create not answered yet (counts in the window)
    reconciling: bool = False  # a reconcile of this job is under way (one at a time)
    resends: int = 0  # creates sent again this run after reconcile found none (bounded: cfg.max_resends)
    seen: bool = False  # a query answered about the current task this run (its id is real)
    account: str | None = None  # the account its slot, intent and task are with (None: the run's home account)

    @property
    def id(self) -> str:
        return self.spec.job_id

    @cached_property
    def body_digest(self) -> str:
        """sha256 of the request body (sorted keys): two runs' intents with equal digests ask for the same video."""
        text = json.dumps(self.spec.request, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    @cached_property
    def group(self) -> str:
        """The look-alike group (``runner.engine.matching``): at most one of its creates is unanswered at a time."""
        return lookalike_key(self.spec)

    @cached_property
    def log(self) -> Any:
        """The run's logger with this job's context (its id and name) bound once (structlog ``bind``)."""
        return structlog.get_logger("wanbatch.run").bind(job_id=self.id, name=self.spec.name)

    @property
    def model(self) -> str:
        """The model's name as sent on the wire (the request's spelling)."""
        return str(self.spec.request.get("model", self.spec.model))
