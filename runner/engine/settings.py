"""The settings of one run (the command line, resolved once into a frozen value)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runner.store.download import DEFAULT_MAX_BYTES


@dataclass(frozen=True)
class PipelineConfig:
    """Settings of one run (the command line, resolved). Times are real seconds."""

    out_dir: Path
    region: str
    qps: float | None = None  # submissions per second per model; None: the model's quota
    max_in_flight: int | None = None  # tasks in flight per model; None: the model's quota
    query_qps: float | None = None  # status queries per second for the run; None: half the account's 20
    max_video_bytes: int = DEFAULT_MAX_BYTES  # a download over this is stopped (--max-video-mb)
    max_jobs: int | None = None  # new jobs submitted this run at most
    retry_failed: bool = False
    retry_canceled: bool = False
    regenerate_expired: bool = False  # expired jobs (paid, video lost) are generated again only when asked
    drain: bool = False
    poll_interval: float = 6.0  # between two queries of a task followed by reconcile
    reconcile_delay: float = 1.0  # wait after an ambiguous create before listing (the list may lag)
    reconcile_slack: float = 1.0  # seconds added on each side of an intent's window, beyond the clock's error
    crash_window: float = 5.0  # an intent whose run died: its task was made at most this long after the run's last line
    max_resends: int = 3  # creates sent again after "none found", per job and run, before it is left undecided
    undecided_rounds: int = 4  # reconciles that found look-alikes it could not tell apart, before the user is told
    max_outage: float = 1800.0  # seconds a job waits on an unreachable list/query API before the run leaves it
    task_retries: int = 2  # retryable task failures resubmitted inside the run
    download_retries: int = 4
    download_workers: int = 4
    shutdown_grace: float = 1.5  # seconds the stages get to stop after an interrupt
    # Jobs admitted to submission whose create is not answered yet (their intents, once written), at most.
    # Without it a run with quotas off admitted every job at once: 10,000 intents ahead of 10,000 queued
    # creates (all of them to reconcile after a crash, and ~10 KB of memory each). 64 keeps the create
    # gate's 24 connections busy at 500+ submissions/s with intents and answers in their group commits.
    submit_window: int = 64
