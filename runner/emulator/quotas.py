"""Per-account request quotas: a sliding one-second window per limited thing (API.md §5, decision 8).

"5 per second" means at most 5 admitted requests in ANY window of one second: a request at time t is
admitted when fewer than ``limit`` admitted requests lie in (t - 1, t]. Refused requests do not count, so a
client retrying too fast is refused but not locked out.
"""

from __future__ import annotations

from collections import deque

from runner.models import QUERY_QPS, ModelSpec


class SlidingWindow:
    """At most ``limit`` admissions in any ``window`` seconds; the caller passes the time (injectable clock)."""

    __slots__ = ("_times", "limit", "window")

    def __init__(self, limit: int, window: float = 1.0) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self.limit = limit
        self.window = window
        self._times: deque[float] = deque()

    def try_acquire(self, now: float) -> bool:
        """Admit one request at ``now`` if the window has room; True when admitted."""
        times = self._times
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) >= self.limit:
            return False
        times.append(now)
        return True

    def retry_in(self, now: float) -> float:
        """Seconds until the window next has room (0 when it has room now)."""
        if len(self._times) < self.limit:
            return 0.0
        return max(0.0, self._times[0] + self.window - now)


class Quotas:
    """The account's limits: submit QPS and concurrency per model, 20 QPS on each of query/list/cancel.

    ``scale`` multiplies every limit (for load tests); ``enabled=False`` turns them all off.
    """

    def __init__(self, *, enabled: bool = True, scale: float = 1.0) -> None:
        self.enabled = enabled
        self.scale = scale
        self._windows: dict[str, SlidingWindow] = {}

    def _scaled(self, limit: int) -> int:
        return max(1, round(limit * self.scale))

    def concurrency(self, model: ModelSpec) -> int | None:
        """Tasks of ``model`` in processing at once, or None when unlimited."""
        return self._scaled(model.concurrency) if self.enabled else None

    def _window(self, key: str, limit: int) -> SlidingWindow:
        w = self._windows.get(key)
        if w is None:
            w = self._windows[key] = SlidingWindow(self._scaled(limit))
        return w

    def submit(self, model: ModelSpec, now: float) -> float | None:
        """Admit one create request for ``model`` (all spellings share the model's window): None when
        admitted, else the seconds until the window has room."""
        return self._admit("submit:" + model.name, model.submit_qps, now)

    def api(self, route: str, now: float) -> float | None:
        """Admit one query, list or cancel request (each API has its own 20 QPS); as ``submit``."""
        return self._admit(route, QUERY_QPS, now)

    def _admit(self, key: str, limit: int, now: float) -> float | None:
        if not self.enabled:
            return None
        w = self._window(key, limit)
        return None if w.try_acquire(now) else w.retry_in(now)

    def reset(self) -> None:
        self._windows.clear()
