"""The run as the ledger tells it: ``RunState`` (job id → ``JobState`` plus run-level facts), folded from the
ledger's lines by the per-event transitions (``runner.store.transitions``), and the ``status`` summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runner.models import REGIONS
from runner.store.events import EVENTS, STATES, Line, RunStartedLine, validate_line
from runner.store.job import JobState
from runner.store.transitions import TRANSITIONS, Upload, fold_upload


@dataclass
class RunState:
    """The run as the ledger tells it: job_id → ``JobState`` plus run-level facts."""

    jobs: dict[str, JobState] = field(default_factory=dict)
    name: str | None = None
    run_ids: list[str] = field(default_factory=list)
    manifest: str | None = None
    region: str | None = None
    base_url: str | None = None
    started: float | None = None  # ts of the first run.started
    finished: float | None = None  # ts of the last run.finished
    exit_code: int | None = None
    refusals: list[dict[str, Any]] = field(default_factory=list)  # run.refused lines of the latest run
    uploads: dict[tuple[str, str, str], Upload] = field(default_factory=dict)  # (sha256, model, account) -> newest
    lines: int = 0  # lines applied (known events)
    skipped: int = 0  # lines of unknown events
    torn_tail: bool = False  # the file ended in a torn line, ignored

    # -- applying lines --
    def apply(self, line: Line) -> None:
        """Fold one validated line into the state."""
        self.lines += 1
        transition = TRANSITIONS.get(line["event"])
        if transition is not None:  # a job line: every one has a str job_id
            job_id: str = line["job_id"]  # type: ignore[assignment]
            job = self.jobs.get(job_id)
            if job is None:
                job = self.jobs[job_id] = JobState(job_id)
            job.updated = line["ts"]
            transition(job, line)
        elif line["event"] == "run.started":
            self._run_started(line)
        elif line["event"] == "run.finished":
            self.finished = line["ts"]
            self.exit_code = line["exit_code"]
        elif line["event"] == "run.refused":
            self.refusals.append({k: v for k, v in line.items() if k not in ("ts", "event", "job_id")})
        elif line["event"] == "uploaded":
            fold_upload(self.uploads, line)

    def apply_dict(self, obj: dict[str, Any]) -> None:
        """Fold one line given as a dict (what the writer appended); unknown events are skipped."""
        if obj.get("event") not in EVENTS:
            self.skipped += 1
            return
        self.apply(validate_line(obj))

    def _run_started(self, line: RunStartedLine) -> None:
        if self.started is None:
            self.started = line["ts"]
        if line["run_id"]:
            self.run_ids.append(line["run_id"])
        self.name = line["name"] or self.name
        self.manifest = line["manifest"] or self.manifest
        self.region = line["region"] or self.region
        self.base_url = line["base_url"] or self.base_url
        self.finished = None
        self.exit_code = None
        self.refusals = []

    # -- questions --
    def counts(self) -> dict[str, int]:
        """Jobs per state; every state key present."""
        out = dict.fromkeys(STATES, 0)
        for job in self.jobs.values():
            out[job.state] = out.get(job.state, 0) + 1
        return out

    def known_task_ids(self) -> set[str]:
        """Every task id the ledger has recorded, for any job (reconcile drops these candidates)."""
        return {t for job in self.jobs.values() for t in job.task_ids}

    def last_ts(self) -> float | None:
        """The latest ``ts`` of any line about a job (when an earlier run was last heard of)."""
        return max((j.updated for j in self.jobs.values()), default=None)

    def in_state(self, *states: str) -> list[JobState]:
        return [j for j in self.jobs.values() if j.state in states]

    @property
    def currency(self) -> str:
        region = REGIONS.get(self.region or "")
        return region.currency if region else "CNY"

    def summary(self, name: str | None = None) -> dict[str, Any]:
        """The ``status --json`` object of DESIGN.md.

        ``seconds`` and ``cost`` are what the API billed: every job whose task succeeded (downloaded or
        not; a later download failure does not refund it), from ``usage`` when known, else the plan.
        """
        billed = [j for j in self.jobs.values() if j.billed]
        seconds = sum((j.billed_seconds if j.billed_seconds is not None else float(j.seconds)) for j in billed)
        cost = sum(j.billed_cost for j in billed)
        failures = [
            {
                "job_id": j.job_id,
                "name": j.name,
                "code": j.failure.code if j.failure else None,
                "message": j.failure.message if j.failure else None,
                "request_id": j.failure.request_id if j.failure else None,
            }
            for j in self.jobs.values()
            if j.state == "failed"
        ]
        undecided = [
            {
                "job_id": j.job_id,
                "name": j.name,
                "reason": j.undecided or "its create's answer was lost: reconciled before anything is sent again",
                "candidates": list(j.candidates),
            }
            for j in self.jobs.values()
            if j.state == "submitting"
        ]
        return {
            "name": name or self.name,
            "jobs": len(self.jobs),
            "states": self.counts(),
            "seconds": _num(seconds),
            "cost": round(cost, 6),
            "currency": self.currency,
            "failures": failures,
            "undecided": undecided,
            "orphans": sorted(j.name or j.job_id for j in self.jobs.values() if j.orphan),
            "refusals": list(self.refusals),
            "accounts": self.by_account(),
        }

    def by_account(self) -> dict[str, dict[str, int]]:
        """Jobs by the account of their latest intent and task (issue 18), each a count per state; jobs never
        sent are under none."""
        out: dict[str, dict[str, int]] = {}
        for j in self.jobs.values():
            if j.account is not None:
                counts = out.setdefault(j.account, {})
                counts[j.state] = counts.get(j.state, 0) + 1
        return out


def _num(x: float) -> int | float:
    return int(x) if float(x).is_integer() else round(x, 6)
