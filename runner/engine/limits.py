"""Request-rate limiters and the in-flight cap, both adaptive on 429, with an injectable clock.

Why not aiolimiter: its ``AsyncLimiter(5, 1)`` is a leaky bucket — a burst of 5 at
t=0, then the bucket drains 1 slot every 0.2 s, so 5 + 4 = 9 requests land inside [0, 1) s. DashScope counts
"5 per second" over ANY 1-second window (API.md decision 8), so that pattern is refused. aiolimiter also
reads ``loop.time()`` directly (no replaceable clock) and has no notion of slowing down on 429. Hence a
sliding-window log here: remember the start times of the last ``k`` grants and let the next one start only
when the oldest of them is more than one window (plus a safety margin for latency jitter) in the past.
That is exact for "at most k in any window", costs O(k) memory, and stays simple enough to prove by test.

Adaptive behaviour (AIMD): on a 429 the effective rate is halved (at most once per window, so one burst of
429s counts once) and a ``Retry-After`` pauses every caller; after a quiet period without 429s the rate
climbs back additively, and it does not climb past the rate that was last refused until a long quiet period
has passed. A limit configured 4x too high thus costs a couple of 429s, then one probe every few minutes.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from runner.engine.clock import Clock, RealClock
from runner.models import MODELS, QUERY_QPS, resolve_model

__all__ = [
    "QUERY_ADAPT",
    "InFlight",
    "Limits",
    "QueryLimiter",
    "SubmitLimiter",
    "WindowLimiter",
]


# --------------------------------------------------------------------------------------------------- rate


@dataclass(frozen=True)
class Adapt:
    """Tuning of the AIMD reaction to 429s (see the module docstring)."""

    decrease: float = 0.5  # rate multiplier on a 429
    quiet: float = 10.0  # seconds without 429 before each additive step
    step: float = 0.5  # requests/second added per step
    forget: float = 300.0  # after this long without 429, the last refused rate no longer caps the climb
    min_rate: float = 0.2  # never slower than one request per 5 s


#: Status queries use half the account's 20 QPS, so a 429 on a query is rarely our own doing (another tool
#: of the account, a hiccup of the gateway). Halving at every 429 and climbing 0.5/s per 10 s let four
#: scattered 429s push polling from 10/s to 0.6/s for minutes (seen in the e2e fault run); polls then
#: trail task ends by tens of seconds. Queries back off less, never below 2/s, and recover faster.
QUERY_ADAPT = Adapt(decrease=0.75, quiet=5.0, step=1.0, forget=30.0, min_rate=2.0)


class WindowLimiter:
    """At most ``rate`` starts in any ``window`` seconds (sliding-window log), adaptive on 429.

    ``acquire()`` returns when the caller may start its request; callers are served first come, first
    served. ``margin`` widens the window a little so the server, which sees our requests after a variable
    network delay, still never counts more than ``rate`` in its own 1-second windows. ``min_gap`` spaces
    consecutive starts (default: half the even spacing) so a window's quota is not one burst — the real
    service refuses sharp bursts below the nominal rate (``Throttling.BurstRate``).

    After 429s the rate drops below the configured one; it is enforced as ``floor(rate)`` starts per
    window (one per ``window / rate`` below 1), so no window ever holds more than the configured count.
    """

    def __init__(
        self,
        rate: float,
        clock: Clock,
        *,
        window: float = 1.0,
        margin: float = 0.05,
        min_gap: float | None = None,
        adapt: Adapt | None = None,
    ) -> None:
        if rate <= 0 or window <= 0 or margin < 0:
            raise ValueError("rate and window must be positive, margin non-negative")
        self._configured = float(rate)
        self._rate = float(rate)
        self._clock = clock
        self._window = window
        self._margin = margin
        self._min_gap = min_gap
        self._adapt = adapt or Adapt()
        self._starts: deque[float] = deque()
        self._lock = asyncio.Lock()
        self._pause_until = -math.inf
        self._last_throttle = -math.inf
        self._last_change = clock.now()
        self._refused_rate: float | None = None
        self.throttles = 0  # 429s reported, for the run summary

    # -------------------------------------------------------------------------------------- introspection

    @property
    def rate(self) -> float:
        """The effective rate now (requests per window)."""
        return self._rate

    @property
    def configured(self) -> float:
        return self._configured

    def _shape(self) -> tuple[int, float, float]:
        """(k, span, gap): at most k starts in any ``span`` seconds, consecutive starts ``gap`` apart.

        The effective rate is enforced as a whole number of starts per window (``floor(rate)``), never more
        than configured, so no window ever holds more than the configured count; below one per window the
        window itself stretches (one start per ``window / rate`` seconds).
        """
        w = self._window + self._margin
        if self._rate >= 1.0:
            k, span = math.floor(self._rate + 1e-9), w
        else:
            k, span = 1, w / self._rate
        gap = self._min_gap if self._min_gap is not None else 0.5 * span / k
        return k, span, gap

    def delay(self) -> float:
        """Seconds until a start would be allowed now (0 when it would)."""
        now = self._clock.now()
        self._recover(now)
        k, span, gap = self._shape()
        ready = self._pause_until
        while self._starts and self._starts[0] <= now - span:
            self._starts.popleft()
        if len(self._starts) >= k:
            ready = max(ready, self._starts[-k] + span)
        if self._starts:
            ready = max(ready, self._starts[-1] + gap)
        return max(0.0, ready - now)

    # -------------------------------------------------------------------------------------- use

    async def acquire(self) -> None:
        """Wait until a request may start, and count it as started."""
        async with self._lock:
            while (wait := self.delay()) > 0:
                await self._clock.sleep(wait)
            self._starts.append(self._clock.now())
            # keep only what any window can need
            while len(self._starts) > max(1, math.ceil(self._configured)) + 1:
                self._starts.popleft()

    def on_throttled(self, retry_after: float | None = None) -> None:
        """A 429 arrived: pause everybody (Retry-After, else one window) and lower the rate, once per window."""
        now = self._clock.now()
        self.throttles += 1
        pause = retry_after if retry_after is not None else self._window
        self._pause_until = max(self._pause_until, now + pause)
        if now - self._last_throttle >= self._window:
            self._refused_rate = self._rate
            self._rate = max(self._adapt.min_rate, self._rate * self._adapt.decrease)
            self._last_change = now
        self._last_throttle = now

    def _recover(self, now: float) -> None:
        a = self._adapt
        if self._rate >= self._configured:
            return
        if self._refused_rate is not None and now - self._last_throttle >= a.forget:
            self._refused_rate = None
        ceiling = self._configured
        if self._refused_rate is not None:
            ceiling = min(ceiling, max(self._rate, self._refused_rate - a.step))
        quiet_since = max(self._last_throttle, self._last_change)
        steps = int((now - quiet_since) // a.quiet)
        if steps > 0:
            self._rate = min(ceiling, self._rate + steps * a.step)
            self._last_change = quiet_since + steps * a.quiet


SubmitLimiter = WindowLimiter
QueryLimiter = WindowLimiter


# --------------------------------------------------------------------------------------------------- in flight


class InFlight:
    """A cap on tasks in flight, held from submit until the task is terminal.

    ``on_throttled()`` (429 ``Throttling.Concurrency``) lowers the cap to what the server just proved it
    accepts (the holders minus the refused one, at least 1); after ``quiet`` seconds without such a 429
    the cap rises by one, back up to the configured value. The refusals of one burst (creates sent together)
    cut one step at most: within ``holddown`` seconds of a cut a refusal only brings the cap down to the
    holders minus itself, never a further step below it (a refused create gives its slot back, so those
    holders are what the server runs plus creates still in the air).
    """

    def __init__(self, limit: int, clock: Clock, *, quiet: float = 120.0, holddown: float = 1.0) -> None:
        if limit < 1:
            raise ValueError("in-flight limit must be at least 1")
        self._configured = limit
        self._limit = limit
        self._clock = clock
        self._quiet = quiet
        self._held = 0
        self._cond = asyncio.Condition()
        self._last_change = clock.now()
        self._holddown = holddown
        self._last_cut: float | None = None
        self.throttles = 0
        self._watchers: set[asyncio.Event] = set()  # set on every release (a pool waiting on several caps)

    def watch(self, event: asyncio.Event) -> None:
        """Set ``event`` whenever a slot is released or waiters are woken (``AccountPool.slot`` waits on several
        caps at once)."""
        self._watchers.add(event)

    def unwatch(self, event: asyncio.Event) -> None:
        self._watchers.discard(event)

    @property
    def limit(self) -> int:
        self._recover()
        return self._limit

    @property
    def configured(self) -> int:
        return self._configured

    @property
    def held(self) -> int:
        return self._held

    def _recover(self) -> None:
        if self._limit >= self._configured:
            return
        now = self._clock.now()
        steps = int((now - self._last_change) // self._quiet)
        if steps > 0:
            self._limit = min(self._configured, self._limit + steps)
            self._last_change += steps * self._quiet

    async def acquire(self) -> None:
        """Wait for a free slot and take it."""
        async with self._cond:
            await self._cond.wait_for(lambda: self._held < self.limit)
            self._held += 1

    def try_acquire(self) -> bool:
        """Take a slot without waiting when one is free (used on resume to adopt tasks already running)."""
        if self._held < self.limit:
            self._held += 1
            return True
        return False

    def adopt(self) -> None:
        """Count a task already in flight (found on resume) even beyond the cap."""
        self._held += 1

    async def release(self) -> None:
        """The task is terminal (or never started): free its slot."""
        async with self._cond:
            if self._held <= 0:
                raise RuntimeError("InFlight.release without acquire")
            self._held -= 1
            self._cond.notify_all()
            for event in self._watchers:
                event.set()

    def on_throttled(self) -> None:
        """429 Throttling.Concurrency while holding a slot for the refused create."""
        self.throttles += 1
        now = self._clock.now()
        others = max(1, self._held - 1)
        if self._last_cut is not None and now - self._last_cut < self._holddown:
            if others < self._limit:
                self._limit = others
                self._last_change = now
            return
        self._last_cut = now
        self._limit = max(1, min(self._limit - 1, others))
        self._last_change = now

    async def wake(self) -> None:
        """Re-check waiters (after time passed and the cap may have recovered)."""
        async with self._cond:
            self._cond.notify_all()
        for event in self._watchers:
            event.set()


# --------------------------------------------------------------------------------------------------- registry


class Limits:
    """Every limiter of one run: per model a submit limiter and an in-flight cap (the API's limits are per
    account and independent per model), a query limiter for task queries and cancels, and a list limiter
    (the list API has its own 20 QPS, API.md §5; polls sweep through it, reconcile pages through it).

    Defaults come from ``models.MODELS``; ``qps`` / ``in_flight`` override them for every model (the
    ``--qps`` / ``--max-in-flight`` flags), and ``per_model`` for one model (an accounts file's ``limits``).
    The query and list limiters each use ``query_share`` of their API's 20 QPS (or ``query_qps``), leaving
    room for other tools of the same account.
    """

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        qps: float | None = None,
        in_flight: int | None = None,
        query_share: float = 0.5,
        query_qps: float | None = None,
        per_model: Mapping[str, tuple[float | None, int | None]] | None = None,
    ) -> None:
        self.clock: Clock = clock or RealClock()
        self._qps = qps
        self._in_flight = in_flight
        self._per_model = dict(per_model or {})  # canonical model -> (qps, in-flight): an account's own quota
        self._submit: dict[str, WindowLimiter] = {}
        self._caps: dict[str, InFlight] = {}
        rate = query_qps if query_qps is not None else max(1.0, QUERY_QPS * query_share)
        self.query = WindowLimiter(rate, self.clock, adapt=QUERY_ADAPT)
        self.listing = WindowLimiter(rate, self.clock, adapt=QUERY_ADAPT)

    @staticmethod
    def _canonical(model: str) -> str:
        spec = resolve_model(model)
        if spec is None:
            raise KeyError(f"unknown model {model!r}; known: {', '.join(MODELS)}")
        return spec.name

    def submit(self, model: str) -> WindowLimiter:
        name = self._canonical(model)
        if name not in self._submit:
            own = self._per_model.get(name, (None, None))[0]
            rate = own if own is not None else self._qps if self._qps is not None else MODELS[name].submit_qps
            self._submit[name] = WindowLimiter(rate, self.clock)
        return self._submit[name]

    def in_flight(self, model: str) -> InFlight:
        name = self._canonical(model)
        if name not in self._caps:
            mine = self._per_model.get(name, (None, None))[1]
            default = self._in_flight if self._in_flight is not None else MODELS[name].concurrency
            cap = mine if mine is not None else default
            self._caps[name] = InFlight(cap, self.clock)
        return self._caps[name]
