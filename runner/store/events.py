"""The ledger's format, the one definition: event names, what a failure means for money, job states, and one
pydantic-validated ``TypedDict`` per event (ARCHITECTURE.md, "the ledger format"). The writer
(``runner.store.ledger``) validates what it appends against these models, and replay (``runner.store.replay``)
reads lines back through them, so the run can never write what a resume cannot read.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict

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
UPLOADED = "uploaded"  # a local file is in DashScope's temporary storage for a model, until ``expires`` (issue 19)

EVENTS = frozenset(
    {RUN_STARTED, PLANNED, SUBMITTING, SUBMITTED, TASK_STATUS, SUCCEEDED, DOWNLOADED, FAILED, CANCELED, EXPIRED,
     UNANSWERED, UNDECIDED, ORPHANED, UNSENT, RUN_REFUSED, RUN_FINISHED, UPLOADED}
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
    account: Annotated[str | None, Field(default=None)]  # the account the create goes to (None: an older ledger)
    cost: Annotated[float | None, Field(default=None)]  # the video's price in that account's region


@with_config(_LINE_CONFIG)
class SubmittedLine(TypedDict):
    ts: float
    event: Literal["submitted"]
    job_id: str
    task_id: str
    request_id: Annotated[str | None, Field(default=None)]
    adopted: Annotated[bool, Field(default=False)]
    account: Annotated[str | None, Field(default=None)]  # the account that made the task (None: an older ledger)


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
    account: Annotated[str | None, Field(default=None)]  # the account, in a run with an accounts file (issue 18)


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


@with_config(_LINE_CONFIG)
class UploadedLine(TypedDict):
    """A run event (``job_id`` null): a file's bytes (``sha256``) uploaded for ``model``, usable as ``url``
    until ``expires`` on the server's clock. The newest line of a (sha256, model, account) is the upload the
    next create uses."""

    ts: float
    event: Literal["uploaded"]
    job_id: Annotated[str | None, Field(default=None)]
    file: str  # the local file's absolute path, as the request's file:// URL names it
    sha256: str
    bytes: int
    model: str  # canonical model name: the service binds a temporary file to the model it was uploaded for
    url: str  # oss://<key>
    expires: float  # epoch seconds, the server's clock
    account: Annotated[str, Field(default="default")]  # whose storage holds it (only that account's creates read it)


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
    | RunFinishedLine
    | UploadedLine,
    Field(discriminator="event"),
]
LINE: TypeAdapter[Line] = TypeAdapter(Line)


def validate_line(obj: dict[str, Any]) -> Line:
    """The model for one line given as a dict; ValueError (naming the event) when it breaks the format."""
    try:
        return LINE.validate_python(obj)
    except ValidationError as e:
        raise ValueError(f"ledger event {obj.get('event')!r} breaks the ledger format: {short_error(e)}") from None


def short_error(e: ValidationError) -> str:
    parts = []
    for err in e.errors(include_url=False)[:3]:
        loc = ".".join(str(x) for x in err["loc"][1:] or err["loc"])
        parts.append(f"{loc}: {err['msg']}" if loc else err["msg"])
    return "; ".join(parts)
