"""The ledger's format and its replay: line models (pydantic, the boundary), ``JobState`` and ``RunState``.

The event table of ARCHITECTURE.md ("the ledger format") lives here as code: the event names, one
pydantic-validated ``TypedDict`` per event, and the state each event leaves a job in. ``replay(path)``
folds a ledger into a ``RunState``; the writer (``runner/ledger.py``) validates what it appends against
the same models.

Replay rules: a torn last line (no trailing newline, or not JSON) is ignored; any other unreadable line is
a ``LedgerError`` naming the file and line; events this version does not know are skipped, and fields it
does not know are ignored, so an older wanbatch can read a newer ledger.

``JobState`` is a plain (mutable, slotted) dataclass: replay updates one per line, a million times for a
large ledger, and copying a frozen object on every line would cost more than the parsing.
"""

from __future__ import annotations

import gc
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, BinaryIO, Literal

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict

from runner.errors import ACCOUNT_CODES, LedgerError
from runner.models import REGIONS

# --- event names (the one definition) ---------------------------------------------------------------
RUN_STARTED = "run.started"
PLANNED = "planned"
SUBMITTING = "submitting"
SUBMITTED = "submitted"
TASK_STATUS = "task.status"
SUCCEEDED = "succeeded"
DOWNLOADED = "downloaded"
FAILED = "failed"
CANCELED = "canceled"
EXPIRED = "expired"
UNANSWERED = "unanswered"  # a create's answer proved nothing: the job is undecided (reconcile decides)
UNDECIDED = "undecided"  # reconcile could not prove which task is the job's: the user is told, nothing sent
ORPHANED = "orphaned"  # the job left the manifest; its paid task is still followed and saved
UNSENT = "unsent"  # the account refused the create (nothing was made): the job is planned again, not failed
RUN_REFUSED = "run.refused"  # the account (or a model for it) refused work, or the API was unreachable
RUN_FINISHED = "run.finished"

EVENTS = frozenset(
    {RUN_STARTED, PLANNED, SUBMITTING, SUBMITTED, TASK_STATUS, SUCCEEDED, DOWNLOADED, FAILED, CANCELED, EXPIRED,
     UNANSWERED, UNDECIDED, ORPHANED, UNSENT, RUN_REFUSED, RUN_FINISHED}
)  # fmt: skip

# --- what a failure means for money (the ``kind`` of a ``failed`` line) ---------------------------------------
#: The create was refused with the service's own code: no task was made.
REFUSED = "refused"
#: The task ended FAILED on the server (its code): not billed.
TASK_FAILED = "task"
#: The task succeeded (billed) but its video could not be saved.
NOT_SAVED = "download"
FAILURE_KINDS = frozenset({REFUSED, TASK_FAILED, NOT_SAVED})

# --- job states, in lifecycle order (status --json lists every one) ---------------------------------------
STATES: tuple[str, ...] = (
    "planned",
    "submitting",
    "pending",
    "running",
    "succeeded",
    "downloaded",
    "failed",
    "canceled",
    "expired",
)
#: States a job does not leave by itself (the run is done with it).
FINAL_STATES = frozenset({"downloaded", "failed", "canceled", "expired"})
#: States in which a task exists on the server and has not finished.
IN_FLIGHT_STATES = frozenset({"pending", "running"})


# --- line models ---------------------------------------------------------------------------------------
# TypedDicts, not BaseModels: pydantic-core validates a line into a plain dict for about half the cost of
# building a model instance (docs/benchmarks/ledger.md), and replay builds a million of them. Every field
# that may be left out has its default here (``Field(default=...)``), so a validated line always carries
# every key its model names and the transitions read ``line["key"]``. Unknown keys are dropped.
_LINE_CONFIG = ConfigDict(extra="ignore")


@with_config(_LINE_CONFIG)
class RunStartedLine(TypedDict):
    ts: float
    event: Literal["run.started"]
    job_id: Annotated[str | None, Field(default=None)]
    run_id: Annotated[str | None, Field(default=None)]
    name: Annotated[str | None, Field(default=None)]  # the manifest's name (status --json shows it)
    manifest: Annotated[str | None, Field(default=None)]
    region: Annotated[str | None, Field(default=None)]
    base_url: Annotated[str | None, Field(default=None)]
    pid: Annotated[int | None, Field(default=None)]
    version: Annotated[str | None, Field(default=None)]


@with_config(_LINE_CONFIG)
class PlannedLine(TypedDict):
    ts: float
    event: Literal["planned"]
    job_id: str
    name: str
    model: str
    request: Annotated[dict[str, Any], Field(default_factory=dict)]
    size: Annotated[str | None, Field(default=None)]
    duration: Annotated[int | None, Field(default=None)]
    seed: Annotated[int | None, Field(default=None)]
    seconds: Annotated[float, Field(default=0.0)]
    cost: Annotated[float, Field(default=0.0)]


@with_config(_LINE_CONFIG)
class SubmittingLine(TypedDict):
    ts: float
    event: Literal["submitting"]
    job_id: str
    attempt: Annotated[int, Field(default=1)]
    model: Annotated[str | None, Field(default=None)]
    skew: Annotated[float | None, Field(default=None)]  # server clock − host clock (s) when the intent was written
    skew_err: Annotated[float | None, Field(default=None)]  # how far ``skew`` may be off (s)


@with_config(_LINE_CONFIG)
class SubmittedLine(TypedDict):
    ts: float
    event: Literal["submitted"]
    job_id: str
    task_id: str
    request_id: Annotated[str | None, Field(default=None)]
    adopted: Annotated[bool, Field(default=False)]


@with_config(_LINE_CONFIG)
class TaskStatusLine(TypedDict):
    ts: float
    event: Literal["task.status"]
    job_id: str
    task_id: str
    status: str


@with_config(_LINE_CONFIG)
class SucceededLine(TypedDict):
    ts: float
    event: Literal["succeeded"]
    job_id: str
    task_id: str
    video_url: Annotated[str | None, Field(default=None)]
    url_expires: Annotated[float | None, Field(default=None)]
    usage: Annotated[dict[str, Any] | None, Field(default=None)]
    orig_prompt: Annotated[str | None, Field(default=None)]
    actual_prompt: Annotated[str | None, Field(default=None)]
    submit_time: Annotated[str | None, Field(default=None)]
    scheduled_time: Annotated[str | None, Field(default=None)]
    end_time: Annotated[str | None, Field(default=None)]


@with_config(_LINE_CONFIG)
class DownloadedLine(TypedDict):
    ts: float
    event: Literal["downloaded"]
    job_id: str
    path: str
    bytes: int
    sha256: str


@with_config(_LINE_CONFIG)
class FailedLine(TypedDict):
    ts: float
    event: Literal["failed"]
    job_id: str
    stage: Annotated[str, Field(default="task")]
    code: Annotated[str | None, Field(default=None)]
    message: Annotated[str | None, Field(default=None)]
    request_id: Annotated[str | None, Field(default=None)]
    task_id: Annotated[str | None, Field(default=None)]
    kind: Annotated[str | None, Field(default=None)]  # REFUSED | TASK_FAILED | NOT_SAVED; None: an older ledger


@with_config(_LINE_CONFIG)
class UnansweredLine(TypedDict):
    ts: float
    event: Literal["unanswered"]
    job_id: str
    reason: Annotated[str, Field(default="")]
    task_id: Annotated[str | None, Field(default=None)]  # an id the answer named that proved to be nobody's
    until: Annotated[float | None, Field(default=None)]  # host time the create's answer (or its failure) arrived


@with_config(_LINE_CONFIG)
class UndecidedLine(TypedDict):
    ts: float
    event: Literal["undecided"]
    job_id: str
    reason: Annotated[str, Field(default="")]
    candidates: Annotated[list[str], Field(default_factory=list)]


@with_config(_LINE_CONFIG)
class OrphanedLine(TypedDict):
    ts: float
    event: Literal["orphaned"]
    job_id: str


@with_config(_LINE_CONFIG)
class UnsentLine(TypedDict):
    ts: float
    event: Literal["unsent"]
    job_id: str
    reason: Annotated[str, Field(default="")]


@with_config(_LINE_CONFIG)
class RunRefusedLine(TypedDict):
    ts: float
    event: Literal["run.refused"]
    job_id: Annotated[str | None, Field(default=None)]
    code: Annotated[str, Field(default="")]
    message: Annotated[str, Field(default="")]
    request_id: Annotated[str | None, Field(default=None)]
    scope: Annotated[str, Field(default="account")]  # "account", "model" or "network"
    model: Annotated[str | None, Field(default=None)]
    host: Annotated[str | None, Field(default=None)]
    region: Annotated[str | None, Field(default=None)]
    check: Annotated[str, Field(default="")]  # what the user should check


@with_config(_LINE_CONFIG)
class CanceledLine(TypedDict):
    ts: float
    event: Literal["canceled"]
    job_id: str
    task_id: Annotated[str | None, Field(default=None)]


@with_config(_LINE_CONFIG)
class ExpiredLine(TypedDict):
    ts: float
    event: Literal["expired"]
    job_id: str
    task_id: Annotated[str | None, Field(default=None)]
    reason: Annotated[str | None, Field(default=None)]


@with_config(_LINE_CONFIG)
class RunFinishedLine(TypedDict):
    ts: float
    event: Literal["run.finished"]
    job_id: Annotated[str | None, Field(default=None)]
    exit_code: Annotated[int | None, Field(default=None)]
    counts: Annotated[dict[str, int] | None, Field(default=None)]


Line = Annotated[
    RunStartedLine
    | PlannedLine
    | SubmittingLine
    | SubmittedLine
    | TaskStatusLine
    | SucceededLine
    | DownloadedLine
    | FailedLine
    | UnansweredLine
    | UndecidedLine
    | OrphanedLine
    | UnsentLine
    | RunRefusedLine
    | CanceledLine
    | ExpiredLine
    | RunFinishedLine,
    Field(discriminator="event"),
]
LINE: TypeAdapter[Line] = TypeAdapter(Line)


def validate_line(obj: dict[str, Any]) -> Line:
    """The model for one line given as a dict; ValueError (naming the event) when it breaks the format."""
    try:
        return LINE.validate_python(obj)
    except ValidationError as e:
        raise ValueError(f"ledger event {obj.get('event')!r} breaks the ledger format: {_short(e)}") from None


def _short(e: ValidationError) -> str:
    parts = []
    for err in e.errors(include_url=False)[:3]:
        loc = ".".join(str(x) for x in err["loc"][1:] or err["loc"])
        parts.append(f"{loc}: {err['msg']}" if loc else err["msg"])
    return "; ".join(parts)


# --- state ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Failure:
    """Why a job failed: where (submit/task/download), what the API or the download said, and what it means
    for money (``kind``: REFUSED, TASK_FAILED or NOT_SAVED)."""

    stage: str
    code: str | None
    message: str | None
    request_id: str | None
    task_id: str | None
    kind: str = TASK_FAILED


@dataclass(slots=True)
class JobState:
    """Everything the ledger knows about one job, as of the last line read."""

    job_id: str
    state: str = "planned"
    name: str = ""
    model: str = ""
    request: dict[str, Any] = field(default_factory=dict)
    size: str | None = None
    duration: int | None = None
    seed: int | None = None
    seconds: float = 0.0  # planned seconds of video
    cost: float = 0.0  # planned cost
    attempts: int = 0  # submitting intents written
    task_id: str | None = None  # the current task
    task_ids: list[str] = field(default_factory=list)  # every task id ever recorded, oldest first
    adopted: bool = False  # the current task was found by reconcile
    submitting_since: float | None = None  # ts of the latest intent not yet answered by `submitted`
    intent_ts: float | None = None  # ts of the latest intent (kept after its answer)
    intent_skew: float | None = None  # server − host clock when it was written (None: not known then)
    intent_skew_err: float | None = None
    answered_at: float | None = None  # ts of the latest `submitted`
    window_end: float | None = None  # host time by which the unanswered create's task was made, if known
    undecided: str | None = None  # why reconcile could not decide (the job waits for the user or a later run)
    candidates: list[str] = field(default_factory=list)  # the tasks it could not tell apart
    confirmed: bool = False  # a query or the list has shown the current task (its id is real)
    orphan: bool = False  # no longer in the manifest (still followed until its paid video is saved)
    task_status: str | None = None
    video_url: str | None = None
    url_expires: float | None = None
    usage: dict[str, Any] | None = None
    orig_prompt: str | None = None
    actual_prompt: str | None = None
    times: dict[str, str] = field(default_factory=dict)  # submit_time, scheduled_time, end_time (UTC+8)
    path: str | None = None  # relative to the output folder
    bytes: int | None = None
    sha256: str | None = None
    failure: Failure | None = None
    updated: float = 0.0  # ts of the last line about this job

    @property
    def billed_seconds(self) -> float | None:
        """Seconds the API billed (usage.duration on wan2.6, usage.video_duration before), else None."""
        u = self.usage
        if not u:
            return None
        for key in ("duration", "video_duration"):
            v = u.get(key)
            if isinstance(v, int | float) and not isinstance(v, bool) and v > 0:
                return float(v)
        return None

    @property
    def billed(self) -> bool:
        """True once the task succeeded (the API bills success only), even if the download then failed; and
        for an expired task (paid, or maybe paid, and its video gone: counted, never hidden)."""
        return self.usage is not None or self.state in ("succeeded", "downloaded", "expired")

    @property
    def billed_cost(self) -> float:
        """Cost of the success: the planned unit price times the billed seconds when usage says them."""
        secs = self.billed_seconds
        if secs is None or not self.seconds:
            return self.cost
        return self.cost / self.seconds * secs


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
    lines: int = 0  # lines applied (known events)
    skipped: int = 0  # lines of unknown events
    torn_tail: bool = False  # the file ended in a torn line, ignored

    # -- applying lines --
    def apply(self, line: Line) -> None:
        """Fold one validated line into the state."""
        self.lines += 1
        transition = _APPLY.get(line["event"])
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
        }


def _num(x: float) -> int | float:
    return int(x) if float(x).is_integer() else round(x, 6)


# --- per-event transitions -----------------------------------------------------------------------------
def _planned(job: JobState, line: PlannedLine) -> None:
    job.name, job.model, job.request = line["name"], line["model"], line["request"]
    job.size, job.duration, job.seed = line["size"], line["duration"], line["seed"]
    job.seconds, job.cost = line["seconds"], line["cost"]
    job.orphan = False
    # a second `planned` (a resume re-planning) updates the spec but never the job's progress


def _submitting(job: JobState, line: SubmittingLine) -> None:
    job.state = "submitting"
    job.attempts += 1
    job.submitting_since = job.intent_ts = line["ts"]
    job.intent_skew, job.intent_skew_err = line["skew"], line["skew_err"]
    job.window_end = None
    job.undecided = None
    job.candidates = []
    job.confirmed = False
    job.failure = None


def _submitted(job: JobState, line: SubmittedLine) -> None:
    job.state = "pending"
    job.task_id = task_id = line["task_id"]
    job.adopted = line["adopted"]
    job.confirmed = False  # until a query or the list shows it (an answer's id may be nobody's)
    job.task_status = "PENDING"
    job.submitting_since = None
    job.answered_at = line["ts"]
    job.undecided = None
    job.candidates = []
    job.failure = None
    if task_id not in job.task_ids:
        job.task_ids.append(task_id)


def _unanswered(job: JobState, line: UnansweredLine) -> None:
    """The create's answer proved nothing (lost, a proxy's page, an id nobody knows): undecided again."""
    job.state = "submitting"
    job.submitting_since = job.intent_ts if job.intent_ts is not None else line["ts"]
    job.window_end = line["until"] if line["until"] is not None else line["ts"]
    if job.task_id is not None and job.task_id == line["task_id"]:
        job.task_id, job.task_status = None, None
    job.confirmed = False
    job.failure = None


def _undecided(job: JobState, line: UndecidedLine) -> None:
    job.undecided = line["reason"] or "undecided"
    job.candidates = line["candidates"]


def _orphaned(job: JobState, line: OrphanedLine) -> None:
    job.orphan = True


def _unsent(job: JobState, line: UnsentLine) -> None:
    """The account refused the create: nothing was made, and nothing is the job's fault."""
    job.state = "planned"
    job.submitting_since = None
    job.failure = None


def _task_status(job: JobState, line: TaskStatusLine) -> None:
    task_id = line["task_id"]
    if task_id not in job.task_ids:
        job.task_ids.append(task_id)
    if job.task_id is not None and task_id != job.task_id:
        return  # news of an older task never moves the job
    job.task_id = task_id
    job.task_status = status = line["status"]
    job.confirmed = True
    if job.state in ("submitting", "pending", "running"):
        job.state = "running" if status == "RUNNING" else "pending"


def _succeeded(job: JobState, line: SucceededLine) -> None:
    job.state = "succeeded"
    job.task_id = task_id = line["task_id"]
    if task_id not in job.task_ids:
        job.task_ids.append(task_id)
    job.task_status = "SUCCEEDED"
    job.confirmed = True
    job.submitting_since = None
    job.video_url, job.url_expires = line["video_url"], line["url_expires"]
    if (usage := line["usage"]) is not None:
        job.usage = usage
    if (orig_prompt := line["orig_prompt"]) is not None:
        job.orig_prompt = orig_prompt
    if (actual_prompt := line["actual_prompt"]) is not None:
        job.actual_prompt = actual_prompt
    times = job.times
    if (submit_time := line["submit_time"]) is not None:
        times["submit_time"] = submit_time
    if (scheduled_time := line["scheduled_time"]) is not None:
        times["scheduled_time"] = scheduled_time
    if (end_time := line["end_time"]) is not None:
        times["end_time"] = end_time
    job.failure = None


def _downloaded(job: JobState, line: DownloadedLine) -> None:
    job.state = "downloaded"
    job.path, job.bytes, job.sha256 = line["path"], line["bytes"], line["sha256"]
    job.failure = None


def _failed(job: JobState, line: FailedLine) -> None:
    task_id = line["task_id"]
    if task_id and task_id not in job.task_ids:
        job.task_ids.append(task_id)
    kind = line["kind"] if line["kind"] in FAILURE_KINDS else _older_failure(line)
    if kind == _MAYBE_PAID:  # an older wanbatch gave up on a create that may have made a task: undecided
        job.state = "submitting"
        job.submitting_since = job.intent_ts if job.intent_ts is not None else line["ts"]
        job.undecided = None
        job.failure = None
        return
    if kind == _TASK_EXISTS:  # an older wanbatch gave up asking about a task that exists: follow it again
        job.state = "running" if job.task_status == "RUNNING" else "pending"
        job.failure = None
        return
    if kind == _NOTHING_MADE:  # refused before anything was made (the account, the network): send it again
        job.state = "planned"
        job.submitting_since = None
        job.failure = None
        return
    job.state = "failed"
    job.submitting_since = None
    if task_id and line["stage"] == "task":
        job.task_status = "FAILED"
    job.failure = Failure(
        line["stage"], line["code"], line["message"], line["request_id"], task_id or job.task_id, kind
    )


# How ``failed`` lines of ledgers written before the failure kinds read (issue 14): a give-up on our side of
# the wire is not the job's failure.
_MAYBE_PAID, _TASK_EXISTS, _NOTHING_MADE = "maybe-paid", "task-exists", "nothing-made"


def _older_failure(line: FailedLine) -> str:
    stage, code, message = line["stage"], line["code"] or "", line["message"] or ""
    if stage == "download":
        return NOT_SAVED
    if stage == "task":
        return _TASK_EXISTS if code == "QueryFailed" or "get: " in message else TASK_FAILED
    if code in ACCOUNT_CODES or "before the request was sent" in message:
        return _NOTHING_MADE
    if code == "Unreconciled" or code.startswith("HTTP") or not code:
        return _MAYBE_PAID
    return REFUSED


def _canceled(job: JobState, line: CanceledLine) -> None:
    job.state = "canceled"
    job.task_status = "CANCELED"
    job.submitting_since = None
    job.undecided = None


def _expired(job: JobState, line: ExpiredLine) -> None:
    job.state = "expired"
    job.submitting_since = None
    job.undecided = None


_APPLY: dict[str, Any] = {
    PLANNED: _planned,
    SUBMITTING: _submitting,
    SUBMITTED: _submitted,
    TASK_STATUS: _task_status,
    SUCCEEDED: _succeeded,
    DOWNLOADED: _downloaded,
    FAILED: _failed,
    UNANSWERED: _unanswered,
    UNDECIDED: _undecided,
    ORPHANED: _orphaned,
    UNSENT: _unsent,
    CANCELED: _canceled,
    EXPIRED: _expired,
}


# --- reading the file ------------------------------------------------------------------------------------
def _line_ok(raw: bytes) -> bool:
    """The same test replay applies: a valid line, or a line of an event this version does not know."""
    try:
        LINE.validator.validate_json(raw)
    except ValidationError as e:
        return _classify(raw, e) is None
    return True


def sound_length(path: str | os.PathLike[str]) -> int:
    """Bytes of the ledger up to the end of its last sound line: a torn tail (no newline, or a last line
    replay cannot read) is left out. The writer truncates to this before appending, so what replay
    forgave as the last line never ends up in the middle of the file."""
    p = Path(path)
    with p.open("rb") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        # find the last two newlines (enough to isolate the last line), reading backwards in blocks
        block = 1 << 16
        pos = size
        tail = b""
        while pos > 0 and tail.count(b"\n") < (2 if tail.endswith(b"\n") else 1):
            step = min(block, pos)
            pos -= step
            f.seek(pos)
            tail = f.read(step) + tail
    if not tail.endswith(b"\n"):
        cut = tail.rfind(b"\n")
        return pos + cut + 1 if cut >= 0 else 0
    body = tail[:-1]
    cut = body.rfind(b"\n")
    last = body[cut + 1 :]
    if not last.strip() or _line_ok(last):
        return size
    return pos + cut + 1 if cut >= 0 else 0


def replay(path: str | os.PathLike[str]) -> RunState:
    """Read a ledger into a ``RunState``. A missing file is an empty run."""
    p = Path(path)
    state = RunState()
    try:
        f = p.open("rb")
    except FileNotFoundError:
        return state
    # The cyclic GC would rescan the growing state again and again while a million short-lived line
    # objects pass through (measured: 7.1 s instead of 3.8 s for 1M lines); nothing here makes cycles.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        with f:
            _replay_file(p, f, state)
    finally:
        if gc_was_enabled:
            gc.enable()
    return state


def _replay_file(p: Path, f: BinaryIO, state: RunState) -> None:
    validate = LINE.validator.validate_json  # the core validator: skips a wrapper call per line
    apply = state.apply
    jobs, transitions = state.jobs, _APPLY
    pending: tuple[int, str] | None = None  # an unreadable line: fatal unless it is the last one
    n = folded = 0
    for raw in f:
        n += 1
        if pending is not None:
            _raise(p, *pending)
        if raw[-1] != 10:  # no b"\n" at the end (an int compare: cheaper than a method call per line)
            state.torn_tail = True  # written partly: never acknowledged, so never acted on
            break
        if len(raw) < 4 and not raw.strip():  # blank line (a real line is far longer)
            continue
        try:
            line = validate(raw)
        except ValidationError as e:
            reason = _classify(raw, e)
            if reason is None:
                state.skipped += 1
                continue
            pending = (n, reason)
            continue
        # RunState.apply inlined for the job lines (7 of 8 in a real ledger): a call less per line
        transition = transitions.get(line["event"])
        if transition is None:
            apply(line)
            continue
        job_id = line["job_id"]
        job = jobs.get(job_id)
        if job is None:
            job = jobs[job_id] = JobState(job_id)
        job.updated = line["ts"]
        transition(job, line)
        folded += 1
    state.lines += folded
    if pending is not None:
        state.torn_tail = True


def _classify(raw: bytes, e: ValidationError) -> str | None:
    """None for a line of an unknown event (skipped), else why the line is unreadable."""
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as je:
        return f"not JSON ({je.msg} at column {je.colno})"
    except ValueError:
        return "not UTF-8 text"
    except RecursionError:  # pydantic refused it first; the stdlib decoder overflows on deep nesting
        return "not JSON (nested too deeply)"
    if not isinstance(obj, dict):
        return "not a JSON object"
    event = obj.get("event")
    if isinstance(event, str) and event not in EVENTS:
        return None
    if event is None:
        return "no 'event' field"
    return f"event {event!r}: {_short(e)}"


def _raise(path: Path, line: int, reason: str) -> None:
    raise LedgerError(
        f"{path}:{line}: unreadable ledger line ({reason}); "
        "the ledger is damaged there: fix or remove that line, or start a new output folder"
    )


def replay_lines(lines: Iterable[dict[str, Any]]) -> RunState:
    """A ``RunState`` from line dicts (tests, and callers that keep lines in memory)."""
    state = RunState()
    for obj in lines:
        state.apply_dict(obj)
    return state
