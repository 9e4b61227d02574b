"""The one exception tree of wanbatch.

::

    WanbatchError
    ├── InputError                  bad input the user must fix: exit 2
    │   ├── ManifestError           one or more located issues in a manifest (file:line:col field: what)
    │   └── ConfigError             bad arguments or environment (missing API key, unknown region, …)
    ├── LedgerError                 an unreadable ledger line (file and line named): exit 2
    │   └── LockHeld                another live run holds the output folder: exit 3
    ├── ApiError                    a DashScope request failed; carries status, code, message, request_id
    │   ├── TransientError          worth retrying after a pause
    │   │   ├── RateLimited         429 Throttling*; retry_after from the server when it sent one
    │   │   ├── ServerError         5xx
    │   │   ├── RequestTimeout      no answer in time (the request may have reached the server)
    │   │   ├── ConnectionLost      reset/refused/closed (may or may not have reached the server)
    │   │   └── ForeignAnswer       a 4xx that is not the service's (no DashScope code: a proxy's page)
    │   └── PermanentError          the API refused with a code that retrying cannot change (400/401/403/404)
    ├── DownloadError               a video could not be fetched or verified
    │   ├── UrlExpired              the signed URL is no longer valid (403/expired): query the task again
    │   ├── DownloadRefused         the URL is not allowed (non-https, too large)
    │   └── VerifyError             the bytes are not the video asked for (size, sha256, MP4 check)
    └── DiskError                   the output folder cannot be written (full, read-only): the run stops

Whether an ApiError is retried, never retried, or (for a create) ambiguous is decided in ONE place,
``runner.engine.api.classify``. Messages never contain the API key: nothing here is ever given it.
"""

from __future__ import annotations

import errno as _errno
from dataclasses import dataclass


class WanbatchError(Exception):
    """Base of every error wanbatch raises on purpose."""


class InputError(WanbatchError):
    """The user's input is wrong; the CLI prints the message and exits 2."""


@dataclass(frozen=True)
class Issue:
    """One located problem in a manifest. ``line``/``column`` are 1-based; 0 when unknown."""

    file: str
    line: int
    column: int
    field: str
    message: str
    severity: str = "error"  # or "warning"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        field = f" {self.field}:" if self.field else ""
        return f"{where}: {self.severity}:{field} {self.message}"


class ManifestError(InputError):
    """Every error found in a manifest, reported together."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


class ConfigError(InputError):
    """Bad command-line arguments or environment."""


class LedgerError(WanbatchError):
    """A ledger line that cannot be read (not the torn last line, which replay tolerates)."""


class LockHeld(LedgerError):
    """Another live run holds the output folder's lock."""


class ApiError(WanbatchError):
    """A DashScope request failed.

    ``sent`` says whether the request may have reached the server: for a create request that matters,
    since the API has no idempotency key and a lost answer may hide a paid task.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        sent: bool = True,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.request_id = request_id
        self.retry_after = retry_after
        self.sent = sent

    def __str__(self) -> str:
        parts = [p for p in (str(self.status) if self.status else None, self.code, self.message) if p]
        rid = f" (request_id {self.request_id})" if self.request_id else ""
        return " ".join(parts) + rid


class TransientError(ApiError):
    """Worth retrying after a pause."""


class RateLimited(TransientError):
    """HTTP 429 with a Throttling* code."""


class ServerError(TransientError):
    """HTTP 5xx."""


class RequestTimeout(TransientError):
    """No answer in time."""


class ConnectionLost(TransientError):
    """The connection failed or closed without an answer."""


class ForeignAnswer(TransientError):
    """A 4xx answer without a DashScope error code: a proxy's or gateway's page, not the service's verdict.

    It proves nothing about the request: a create may have made a task behind the proxy (reconcile), and a
    query says nothing about the task (ask again later)."""


class PermanentError(ApiError):
    """Refused with a code that retrying cannot change."""


#: Codes with which the account, not the request, is refused (docs/ERRORS.md): a key, billing or access problem.
#: Nothing was made, no job is to blame, and every other request would be refused alike.
ACCOUNT_CODES = frozenset(
    {"InvalidApiKey", "Arrearage", "AccessDenied", "AccessDenied.Unpurchased", "Model.AccessDenied",
     "Workspace.AccessDenied", "AllocationQuota.FreeTierOnly", "ModelNotFound", "WorkSpaceNotFound",
     "CommodityNotPurchased", "PrepaidBillOverdue", "PostpaidBillOverdue"}
)  # fmt: skip


#: Of those, the refusals that concern one model (not open to this account, or not offered in its region): that
#: model's jobs wait, the other models go on.
MODEL_CODES = frozenset(
    {"AccessDenied.Unpurchased", "Model.AccessDenied", "ModelNotFound", "CommodityNotPurchased", "ModelNotExist"}
)


def refusal_scope(exc: ApiError) -> str | None:
    """``"account"`` when ``exc`` is the account refusing work rather than this request being wrong (one of
    ``ACCOUNT_CODES``, or any other 401 or 403), ``"model"`` when it refuses one model (``MODEL_CODES``, or 400
    InvalidParameter "Model not exist."), None for an answer about the request itself. The one place that tells
    them apart; ``runner.engine.api.classify`` turns it into its verdict."""
    if exc.code == "InvalidParameter" and "model not exist" in (exc.message or "").lower():
        return "model"
    if exc.code in MODEL_CODES:
        return "model"
    if exc.code in ACCOUNT_CODES:
        return "account"
    if isinstance(exc, PermanentError) and exc.status in (401, 403):
        return "account"
    return None


def account_level(exc: ApiError) -> bool:
    """True when the account (or one model for it) refused work: no job is to blame (``refusal_scope``)."""
    return refusal_scope(exc) is not None


#: What to check, per refusal code (docs/ERRORS.md has the same table for readers).
_CHECK = {
    "InvalidApiKey": "the key in DASHSCOPE_API_KEY: it must be a key of this region's account (keys are per region)",
    "Arrearage": "the account's billing: it is in arrears; pay in the Alibaba Cloud console",
    "PrepaidBillOverdue": "the account's billing: a prepaid bill is overdue",
    "PostpaidBillOverdue": "the account's billing: a postpaid bill is overdue",
    "CommodityNotPurchased": "the model's purchase: buy (activate) it in the console",
    "AccessDenied.Unpurchased": "the model's activation in the console for this account and region",
    "Model.AccessDenied": "the model's access for this key (a RAM user or workspace may lack it)",
    "ModelNotFound": "the model's name for this region (--region), or choose a region that offers it",
    "ModelNotExist": "the model's name for this region (--region), or choose a region that offers it",
    "InvalidParameter": "the model's name for this region (--region), or choose a region that offers it",
    "Workspace.AccessDenied": "the workspace's access for this key",
    "WorkSpaceNotFound": "the workspace id and the host (--base-url) of its region",
    "AllocationQuota.FreeTierOnly": "the free-tier-only mode: the free quota is used up; turn the mode off",
    "AccessDenied": "the key's access (and that the host is DashScope's, not a proxy)",
    "Unreachable": "the network and the host (DNS, TLS, a proxy, DashScope's status page)",
    "UnknownTasks": "the key: use one of the account that made the run's tasks",
}


def what_to_check(code: str | None) -> str:
    """One line on what the user should check for an account-level refusal."""
    return _CHECK.get(code or "", "the key, the region (--region / --base-url), the account's billing and the "
                      "model's access")  # fmt: skip


class DownloadError(WanbatchError):
    """A video could not be fetched or verified."""


class UrlExpired(DownloadError):
    """The signed URL has expired: query the task for a fresh one; never generate again."""


class DownloadRefused(DownloadError):
    """The URL or the answer is not acceptable (non-https to a non-loopback host, over the size cap)."""


class VerifyError(DownloadError):
    """The downloaded bytes are not the requested video."""


class DiskError(WanbatchError):
    """The output folder cannot be written (no space, read-only, no permission). Not a job's failure: the
    run stops with its state saved, and the same command resumes it once the disk is fixed."""

    def __init__(self, path: str, exc: OSError) -> None:
        self.path = path
        self.errno = exc.errno
        reason = exc.strerror or str(exc) or type(exc).__name__
        super().__init__(f"cannot write {path}: {reason}")


#: errno values that mean "this folder cannot take our writes", never "the network failed".
DISK_ERRNOS = frozenset(
    {_errno.ENOSPC, _errno.EDQUOT, _errno.EROFS, _errno.EACCES, _errno.EPERM, _errno.EIO, _errno.EFBIG}
)


def disk_trouble(exc: BaseException) -> WanbatchError | None:
    """The storage failure that stopped a run, if that is what ``exc`` is: a ``DiskError``, a ``LedgerError``
    of a failed ledger write, or a local ``OSError`` with a disk errno, also when wrapped in (nested)
    exception groups, as a TaskGroup raises them. None for anything else (the caller re-raises it)."""
    if isinstance(exc, BaseExceptionGroup):
        for sub in exc.exceptions:
            found = disk_trouble(sub)
            if found is not None:
                return found
        return None
    if isinstance(exc, DiskError):
        return exc
    if isinstance(exc, LedgerError) and "cannot be written" in str(exc):
        return exc
    if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
        return DiskError(str(exc.filename or "the output folder"), exc)
    return None
