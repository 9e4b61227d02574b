"""The rule of when to ask about a task next: ``poll_interval``, from the tuning (``PollConfig``) and what is
expected of the task's kind (``task_times.Expectation``). Pure, so it is tested without a schedule or a clock.

With nothing known about a kind of task (``task_times.Kind``: model, resolution tier, duration), a task is
polled on a **geometric** schedule from its submission, as the SDKs do: ``first_poll`` seconds after it, then
each time its age has grown ``growth`` times (1, 1.5, 2.25, 3.4, … s), at most ``max_interval`` apart. A fast
task is seen fast (at most half its time late), and only the first tasks of an unknown kind pay the dozen
cheap queries it takes. A task this run has not looked at yet (resumed from the ledger) is asked at once
when it is older than ``first_poll``: nothing was seen of it since its submission.

Once a kind's tasks are expected to take between ``early`` (a low quantile) and ``late`` seconds
(``task_times.TaskTimes``: this run's samples, remembered ones, a coarser kind's):

* before ``early``: wait until ``early`` (at most ``max_interval`` at a time, so fast failures are seen);
* from ``early`` on: ask every ``fraction * e`` seconds (geometric spacing), bounded by
  ``[min_interval, max_interval]``.

A task that ends at ``D >= early`` is then seen at most ``fraction * D`` after it ended; only the tasks faster
than ``early`` (the 5 % quantile) can be seen later, so the detection delay's p95 stays within ``fraction``
(2 %) of the task's own time, at about ``ln(late / early) / fraction`` polls per task (≈ 80 for 1–5 min).
An expectation that is only a guess (remembered but not yet confirmed by this run, or a coarser kind's) is
hedged: the task is also polled on the geometric schedule until the guess says it is due, so a stale memory
costs at most the geometric schedule's lateness, never a wait. The first completions of a kind re-file its
tasks in flight that the new knowledge makes due sooner (the rest of a first wave is asked at once).
"""

from __future__ import annotations

from dataclasses import dataclass

from runner.engine.task_times import Expectation


@dataclass(frozen=True)
class PollConfig:
    """Tuning of the poll schedule. ``budget_qps`` is the share of the account's 20 QPS used for polls."""

    fraction: float = 0.02  # detection-delay target, as a fraction of the task time
    min_interval: float = 0.02  # --min-poll-interval; the budget, not this, is what protects the quota
    max_interval: float = 30.0
    first_poll: float = 1.0  # no knowledge: the first poll this long after submission …
    growth: float = 1.5  # … then each time the task's age has grown this many times
    budget_qps: float = 8.0  # polls per second for all tasks together: POLL_SHARE of the default 10 queries/s
    burst: float = 4.0  # polls that may go at once after a quiet spell
    stall_factor: float = 2.0  # stalled when elapsed > stall_factor * late
    expected_task_time: float | None = None  # --expected-task-time: for every kind this run has not learned
    min_samples: int = 5  # completions of a kind before its own quantiles decide (task_times module docstring)
    sample_size: int = 256  # durations kept per kind in a run
    sweep_qps: float = 0.0  # list requests per second for sweeps; 0: every task is polled on its own
    sweep_failures: int = 3  # failed sweeps in a row after which sweeping stops for the run


def poll_interval(cfg: PollConfig, exp: Expectation | None, elapsed: float, *, seen: bool = True) -> float:
    """Seconds until the next poll of a task that has run ``elapsed`` seconds, its kind expected to take
    ``exp`` (None: nothing known); ``seen=False`` for a task this run has not looked at yet."""
    age = max(elapsed, 0.0)
    geometric = max(cfg.first_poll - elapsed, (cfg.growth - 1.0) * age if seen else 0.0)
    if exp is None:
        wait = geometric
    else:
        dense = cfg.fraction * age
        wait = max(dense, exp.early - elapsed) if elapsed < exp.early else dense
        if not exp.sure:
            wait = min(wait, geometric)
    return min(cfg.max_interval, max(cfg.min_interval, wait))
