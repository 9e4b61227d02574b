"""The state each ledger event leaves a job in: one transition per event (``TRANSITIONS``), how the ``failed``
lines of ledgers written before the failure kinds are read (issue 14), and the run's uploads (``fold_upload``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runner.errors import ACCOUNT_CODES
from runner.store.events import (
    CANCELED,
    DOWNLOADED,
    EXPIRED,
    FAILED,
    FAILURE_KINDS,
    NOT_SAVED,
    ORPHANED,
    PLANNED,
    REFUSED,
    SUBMITTED,
    SUBMITTING,
    SUCCEEDED,
    TASK_FAILED,
    TASK_STATUS,
    UNANSWERED,
    UNDECIDED,
    UNSENT,
    CanceledLine,
    DownloadedLine,
    ExpiredLine,
    FailedLine,
    OrphanedLine,
    PlannedLine,
    SubmittedLine,
    SubmittingLine,
    SucceededLine,
    TaskStatusLine,
    UnansweredLine,
    UndecidedLine,
    UnsentLine,
    UploadedLine,
)
from runner.store.job import Failure, JobState


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
    job.account = line["account"]
    if line["cost"] is not None:  # the price in the account's region (issue 18: regions' prices differ)
        job.cost = line["cost"]
    job.window_end = None
    job.undecided = None
    job.candidates = []
    job.confirmed = False
    job.failure = None


def _submitted(job: JobState, line: SubmittedLine) -> None:
    job.state = "pending"
    job.task_id = task_id = line["task_id"]
    job.adopted = line["adopted"]
    if line["account"] is not None:
        job.account = line["account"]
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


#: The transition of each job event (run events have none).
TRANSITIONS: dict[str, Any] = {
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


# --- the run's uploads (issue 19) ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Upload:
    """A local file in DashScope's temporary storage: for one model, until ``expires`` (the server's clock)."""

    file: str
    sha256: str
    bytes: int
    model: str
    url: str
    expires: float
    ts: float  # when the line was written (host clock)


def fold_upload(uploads: dict[tuple[str, str, str], Upload], line: UploadedLine) -> None:
    """An ``uploaded`` line: the newest upload of its (sha256, model, account) replaces any older one."""
    uploads[(line["sha256"], line["model"], line["account"])] = Upload(
        line["file"], line["sha256"], line["bytes"], line["model"], line["url"], line["expires"], line["ts"]
    )
