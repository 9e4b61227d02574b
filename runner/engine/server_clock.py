"""The server's clock, as seen from here: host time plus an offset bounded by the answers' ``Date`` headers.

Reconcile compares the server's task times (``gmt_create``, epoch ms by the server's clock) with the moment
an intent was written (host clock), and the downloader compares a URL's ``Expires`` (server clock) with
now. A host clock an hour fast made reconcile drop the very task it looked for (issue 13), so every such
comparison goes through this offset instead of assuming the two clocks agree.

Each answer bounds the offset ``server − host``: its ``Date`` is the server's time, cut to the second, at
some moment between our send and our receipt, so ``Date − received ≤ offset < Date + 1 − sent``. The
intersection of the recent answers' bounds narrows to well under a second; when it comes out empty (one of
the clocks was stepped) the older bounds are dropped.
"""

from __future__ import annotations

import email.utils
import time
from collections import deque
from collections.abc import Callable

__all__ = ["ServerClock"]

#: Answers whose bounds are kept (recent ones: a clock may be stepped).
_KEEP = 64


class ServerClock:
    """Offset of the server's clock from the host's, learned from ``Date`` headers. ``now`` is the host's
    wall clock (injectable)."""

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self._now = now
        self._bounds: deque[tuple[float, float]] = deque(maxlen=_KEEP)
        self._lo = float("-inf")
        self._hi = float("inf")

    def host_now(self) -> float:
        return self._now()

    def observe(self, date: str | None, sent: float, received: float) -> None:
        """One answer's ``Date`` header, with the host times the request left and the answer arrived."""
        if not date:
            return
        try:
            moment = email.utils.parsedate_to_datetime(date)
        except (TypeError, ValueError, IndexError):
            return
        if moment.tzinfo is None:
            return
        server = moment.timestamp()
        lo, hi = server - received, server + 1.0 - sent
        if lo > hi:
            return
        if lo > self._hi or hi < self._lo:  # disagrees with what we knew: a clock was stepped
            self._bounds.clear()
        self._bounds.append((lo, hi))
        self._lo = max(b[0] for b in self._bounds)
        self._hi = min(b[1] for b in self._bounds)

    @property
    def known(self) -> bool:
        return bool(self._bounds)

    @property
    def offset(self) -> float:
        """Best estimate of ``server − host`` in seconds (0 before any answer)."""
        return (self._lo + self._hi) / 2 if self._bounds else 0.0

    @property
    def error(self) -> float:
        """Half the width of the offset's bounds (how far ``offset`` may be off); 0 before any answer."""
        return (self._hi - self._lo) / 2 if self._bounds else 0.0

    def now(self) -> float:
        """The server's current time (epoch seconds) by the best estimate."""
        return self._now() + self.offset
