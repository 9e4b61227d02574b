"""What the engine is handed instead of importing it: the ledger writer, the money guard and the poster maker
(Protocols and a callable type), so the engine depends on neither the schedule nor the report package; and the
uploads of local files (``Uploader``), a Protocol so that ``context`` need not import ``uploads``, which uses it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from runner.engine.job import Job
from runner.errors import ApiError
from runner.store.events import Line


class MoneyGuard(Protocol):
    """The part of the run's money guard (``runner.schedule.budget.MoneyGuard``) the engine uses: a reservation
    before each create, and every durable ledger event to settle or release by. The engine is handed one; it
    never imports the schedule package."""

    def reserve(self, job_id: str, cost: float) -> bool: ...

    def observe(self, event: str, job_id: str | None, st: Any, fields: dict[str, Any]) -> None: ...


#: Makes the poster of a downloaded video (its path, or None when the video does not decode for one). Blocking:
#: it runs on the run's verify thread. Handed to the engine (``runner.report.poster.background_poster``).
PosterMaker = Callable[[Path], Path | None]


class Ledger(Protocol):
    """The part of ``runner.store.ledger.LedgerWriter`` the run uses."""

    def prepare(self, event: str, job_id: str | None, fields: dict[str, Any]) -> tuple[bytes, Line]: ...

    async def append_raw(self, data: bytes) -> None: ...


class Uploader(Protocol):
    """Local files a create carries (issue 19; ``runner.engine.uploads.Uploads``)."""

    async def ready(self, job: Job) -> bool:
        """Upload the job's local file, or reuse its valid upload, before its create takes a token. False: the job
        was failed or left (its slot and group given back) and goes no further."""
        ...

    def create_args(self, job: Job) -> tuple[dict[str, Any], dict[str, str] | None]:
        """The body to POST and the headers to add to the create's own."""
        ...

    def lost(self, job: Job, exc: ApiError) -> bool:
        """The create was refused because the service no longer has the file it named: True to upload again and
        send again (nothing was made)."""
        ...

    def describe(self, job: Job) -> dict[str, Any] | None:
        """The job's local file, for its sidecar (None when it has none)."""
        ...
