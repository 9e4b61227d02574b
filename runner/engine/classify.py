"""The ONE place that decides what a failed request means: RETRY, NEVER, AMBIGUOUS or REFUSED.

AMBIGUOUS exists because the create endpoint has no idempotency key: a create whose answer was lost after the
request left (timeout, reset, 5xx, a proxy's page) may have made a paid task, so the pipeline must reconcile
through the task list before it sends again (ARCHITECTURE.md). REFUSED is the account (or one model for it)
refusing work: no job is to blame (issue 17). Uploads of local files (issue 19: ``policy``, ``upload``) are
idempotent, so never AMBIGUOUS, and the upload host's answers are about the upload, never the account;
``upload_lost`` tells a create refused because the server no longer has the file it names.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from runner.engine.wire import Op
from runner.errors import (
    ApiError,
    PermanentError,
    RateLimited,
    TransientError,
    refusal_scope,
)

# --------------------------------------------------------------------------------------------------- classify


class Action(StrEnum):
    RETRY = "retry"  # send the same request again after ``delay`` seconds
    NEVER = "never"  # give up: record the failure
    AMBIGUOUS = "ambiguous"  # a create that may have made a task: reconcile through the list first
    REFUSED = "refused"  # the account (or one model for it) refuses work: stop it, blame no job (exit 4)


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: ``delay = U(0, 1) * min(cap, base * factor**attempt)``.

    ``max_attempts`` bounds retries of server/transport failures; ``max_throttled`` bounds 429 retries
    (higher, since the limiter slows down on every 429 and a throttle proves nothing was created).
    """

    base: float = 1.0
    factor: float = 2.0
    cap: float = 60.0
    max_attempts: int = 6
    max_throttled: int = 30

    def delay(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        ceiling = min(self.cap, self.base * self.factor ** max(0, attempt))
        return rng() * ceiling


@dataclass(frozen=True)
class Verdict:
    """What to do after a failure. ``delay`` is seconds to wait before a RETRY (0 otherwise)."""

    action: Action
    delay: float = 0.0
    reason: str = ""
    scope: str = ""  # for REFUSED: "account" or "model"

    RETRY: ClassVar[Action] = Action.RETRY
    NEVER: ClassVar[Action] = Action.NEVER
    AMBIGUOUS: ClassVar[Action] = Action.AMBIGUOUS

    @property
    def kind(self) -> Action:
        return self.action


DEFAULT_BACKOFF = Backoff()


def classify(
    exc: BaseException,
    *,
    op: Op,
    attempt: int = 0,
    backoff: Backoff = DEFAULT_BACKOFF,
    rng: Callable[[], float] = random.random,
) -> Verdict:
    """Decide RETRY / NEVER / AMBIGUOUS for a failed request. ``attempt`` counts earlier retries (0 first).

    * an account-level answer (``errors.refusal_scope``: a wrong key, arrears, a model not open to the account)
      → REFUSED with its scope: the account, not the job, refused; nothing was made.
    * PermanentError (4xx, billing 429s) → NEVER: the same request gets the same answer.
    * RateLimited → RETRY after Retry-After, else backoff; a 429 proves no task was made, even for create.
    * ServerError / RequestTimeout / ConnectionLost → for ``op="create"`` with ``sent`` → AMBIGUOUS (a paid
      task may exist; no idempotency key); otherwise RETRY (Retry-After honoured on 503s).
    * Anything else (a bug, an unexpected exception) → AMBIGUOUS for a create, NEVER otherwise.

    ``op="upload"`` (the object store, issue 19): its 403 is a policy's signature or age, not the account's key, so
    it is never REFUSED; like every op but create it is never AMBIGUOUS (an upload makes nothing that bills).
    """
    if isinstance(exc, ApiError) and op != "upload" and (scope := refusal_scope(exc)) is not None:
        return Verdict(Action.REFUSED, reason=f"the {scope} refused: {exc.code or exc.status}", scope=scope)
    if isinstance(exc, PermanentError):
        return Verdict(Action.NEVER, reason=f"refused: {exc.code or exc.status}")
    if isinstance(exc, RateLimited):
        if attempt >= backoff.max_throttled:
            return Verdict(Action.NEVER, reason=f"still throttled after {attempt} retries")
        delay = exc.retry_after if exc.retry_after is not None else backoff.delay(attempt, rng)
        return Verdict(Action.RETRY, delay=delay, reason=f"throttled: {exc.code or 429}")
    if isinstance(exc, TransientError):
        if op == "create" and exc.sent:
            return Verdict(Action.AMBIGUOUS, reason=f"create may have reached the server: {type(exc).__name__}")
        if attempt >= backoff.max_attempts:
            return Verdict(Action.NEVER, reason=f"gave up after {attempt} retries: {type(exc).__name__}")
        delay = exc.retry_after if exc.retry_after is not None else backoff.delay(attempt, rng)
        return Verdict(Action.RETRY, delay=delay, reason=type(exc).__name__)
    if isinstance(exc, ApiError):  # a bare ApiError: unknown kind, be careful
        if op == "create" and exc.sent:
            return Verdict(Action.AMBIGUOUS, reason="unclassified API error on create")
        return Verdict(Action.NEVER, reason="unclassified API error")
    if op == "create":
        return Verdict(Action.AMBIGUOUS, reason=f"unexpected {type(exc).__name__} during create")
    return Verdict(Action.NEVER, reason=f"unexpected {type(exc).__name__}")


def upload_lost(exc: BaseException, url: str) -> bool:
    """Issue 19: a create carrying the temporary file ``url`` (``oss://…``, uploaded by this run or an earlier one)
    refused 400 ``InvalidParameter`` with a message naming it: the service no longer has the file (expired, or
    lost) or cannot read it. Nothing was made; the file is uploaded again and the create sent again (once)."""
    return (
        isinstance(exc, PermanentError)
        and exc.status == 400
        and exc.code == "InvalidParameter"
        and url in (exc.message or "")
    )


#: FAILED task codes worth a new submission (a failed task is not billed; ERRORS.md).
RETRYABLE_TASK_CODES = frozenset(
    {"InternalError", "InternalError.Algo", "InternalError.Timeout", "SystemError", "ModelServiceFailed"}
)


def classify_task_failure(
    code: str | None,
    *,
    attempt: int = 0,
    backoff: Backoff = DEFAULT_BACKOFF,
    rng: Callable[[], float] = random.random,
) -> Verdict:
    """A task ended FAILED with ``code``: submit it again (server-side faults) or keep the failure.

    Content, parameter and account problems (DataInspectionFailed, IPInfringementSuspect, InvalidParameter,
    Arrearage, …) fail again the same way; unknown codes are final too, so nothing is paid for twice by guess.
    """
    if code in RETRYABLE_TASK_CODES:
        if attempt >= backoff.max_attempts:
            return Verdict(Action.NEVER, reason=f"task failed {attempt + 1} times: {code}")
        return Verdict(Action.RETRY, delay=backoff.delay(attempt, rng), reason=f"server-side task failure: {code}")
    return Verdict(Action.NEVER, reason=f"task failed: {code or 'no code'}")
