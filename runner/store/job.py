"""What the ledger knows about one job (``JobState``) and why it failed (``Failure``).

``JobState`` is a plain (mutable, slotted) dataclass: replay updates one per line, a million times for a
large ledger, and copying a frozen object on every line would cost more than the parsing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runner.store.events import TASK_FAILED


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
    account: str | None = None  # the account of the latest intent and its task (None: an older ledger: "default")
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
