"""Per-account request quotas: a sliding one-second window per limited thing (API.md §5, decision 8).

"5 per second" means at most 5 admitted requests in ANY window of one second: a request at time t is
admitted when fewer than ``limit`` admitted requests lie in (t - 1, t]. Refused requests do not count, so a
client retrying too fast is refused but not locked out.
"""

from __future__ import annotations

from collections import deque

from runner.models import MODELS, QUERY_QPS, ModelSpec

#: The wan2.6 class whose limits an account's ``qps`` / ``in_flight`` name (5 and 5 in the table, API.md §5).
REFERENCE_MODEL = MODELS["wan2.6-t2v"]


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
    """One account's limits: submit QPS and concurrency per model, 20 QPS on each of query/list/cancel.

    ``qps`` / ``in_flight`` (an account's own quota) set the submit QPS / concurrency of the wan2.6 class
    (``REFERENCE_MODEL``: 5 and 5 in the table); every model's table value scales by the same ratio, so a model
    at 2/2 gets ``round(2 * qps / 5)``, at least 1. ``scale`` then multiplies every limit (for load tests);
    ``enabled=False`` turns them all off.
    """

    def __init__(
        self, *, enabled: bool = True, scale: float = 1.0, qps: int | None = None, in_flight: int | None = None
    ) -> None:
        self.enabled = enabled
        self.scale = scale
        self.qps = qps
        self.in_flight = in_flight
        self._windows: dict[str, SlidingWindow] = {}

    def _scaled(self, limit: int, own: int | None = None, reference: int = 1) -> int:
        base = limit if own is None else limit * own / reference
        return max(1, round(base * self.scale))

    def submit_qps(self, model: ModelSpec) -> int:
        """Creates of ``model`` admitted in any one second."""
        return self._scaled(model.submit_qps, self.qps, REFERENCE_MODEL.submit_qps)

    def concurrency(self, model: ModelSpec) -> int | None:
        """Tasks of ``model`` in processing at once, or None when unlimited."""
        if not self.enabled:
            return None
        return self._scaled(model.concurrency, self.in_flight, REFERENCE_MODEL.concurrency)

    def _window(self, key: str, limit: int) -> SlidingWindow:
        w = self._windows.get(key)
        if w is None:
            w = self._windows[key] = SlidingWindow(limit)
        return w

    def submit(self, model: ModelSpec, now: float) -> float | None:
        """Admit one create request for ``model`` (all spellings share the model's window): None when
        admitted, else the seconds until the window has room."""
        if not self.enabled:
            return None
        return self._admit("submit:" + model.name, self.submit_qps(model), now)

    def api(self, route: str, now: float) -> float | None:
        """Admit one query, list or cancel request (each API has its own 20 QPS); as ``submit``."""
        if not self.enabled:
            return None
        return self._admit(route, self._scaled(QUERY_QPS), now)

    def _admit(self, key: str, limit: int, now: float) -> float | None:
        w = self._window(key, limit)
        return None if w.try_acquire(now) else w.retry_in(now)

    def reset(self) -> None:
        self._windows.clear()
