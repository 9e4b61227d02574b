"""The progress display of ``wanbatch run`` on a terminal: jobs by state, videos done, seconds and cost
billed, elapsed time and an ETA. It only reads the run's in-memory ``RunState``; off a terminal the JSON
log lines say the same things, so nothing here is needed by cron or CI.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from runner.store.events import STATES
from runner.store.state import RunState

_STYLE = {"downloaded": "green", "failed": "red", "running": "cyan", "pending": "yellow", "expired": "magenta"}


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class ProgressView:
    """A ``rich.live.Live`` panel refreshed a few times a second from ``state`` (the jobs in ``job_ids``)."""

    def __init__(
        self,
        state: RunState,
        job_ids: set[str],
        *,
        name: str,
        console: Console | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = state
        self.job_ids = job_ids
        self.name = name
        self.console = console or Console(stderr=True)
        self._clock = clock
        self._start = clock()
        self._done_at_start: int | None = None

    def render(self) -> Table:
        """The panel: one row per non-empty state, then totals."""
        counts = dict.fromkeys(STATES, 0)
        billed_s = 0.0
        cost = 0.0
        for jid in self.job_ids:
            job = self.state.jobs.get(jid)
            if job is None:
                continue
            counts[job.state] += 1
            if job.billed:
                billed_s += job.billed_seconds if job.billed_seconds is not None else job.seconds
                cost += job.billed_cost
        total = len(self.job_ids)
        done = counts["downloaded"]
        settled = done + counts["failed"] + counts["canceled"] + counts["expired"]
        if self._done_at_start is None:
            self._done_at_start = settled
        elapsed = self._clock() - self._start
        progressed = settled - self._done_at_start
        remaining = total - settled
        eta = "—" if progressed <= 0 or remaining <= 0 else _clock(elapsed / progressed * remaining)
        table = Table(title=f"wanbatch run {self.name}", show_header=False, expand=False)
        table.add_column("what")
        table.add_column("value", justify="right")
        for st in STATES:
            if counts[st]:
                table.add_row(Text(st, style=_STYLE.get(st, "")), str(counts[st]))
        table.add_row("videos", f"{done}/{total}")
        table.add_row("billed", f"{billed_s:g} s, {cost:.2f} {self.state.currency}")
        table.add_row("elapsed", _clock(elapsed))
        table.add_row("eta", eta)
        return table

    async def run(self, until: asyncio.Event, every: float = 0.25) -> None:
        """Refresh until ``until`` is set; the last frame stays on screen."""
        with Live(self.render(), console=self.console, refresh_per_second=8, transient=False) as live:
            while not until.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(until.wait(), timeout=every)
                live.update(self.render())

    def snapshot(self) -> dict[str, Any]:
        """The same figures as plain data (tests)."""
        counts = dict.fromkeys(STATES, 0)
        for jid in self.job_ids:
            job = self.state.jobs.get(jid)
            if job is not None:
                counts[job.state] += 1
        return {"total": len(self.job_ids), "states": counts}
