"""What tasks of each kind take: this run's samples and remembered ones, and the quantiles the poll schedule
is built on (``poller.PollSchedule.expectation``).

A task's **kind** is (model, resolution tier, duration): a 480P 5-s turbo task and a 1080P 15-s wan2.6 task
differ several times over, so one figure per model is wrong for many jobs. Every sample also counts for the
coarser kinds (model and tier; model), which stand in while a kind has few samples of its own.

Where an expectation comes from, best first:

1. ``min_samples`` or more of this run's own samples of the kind: its quantiles (``sure``);
2. the user's ``--expected-task-time``, for every kind this run has not learned yet (``sure``);
3. remembered samples of the kind (``runner.engine.task_memory``: earlier runs against the same host, recent nights
   weighing more) together with this run's: their weighted quantiles; ``sure`` once a sample of this run
   agrees with them, and dropped for the rest of the run when one does not (the host changed);
4. one to ``min_samples - 1`` own samples: their quantiles (the first tasks to end are the fastest of those
   sent with them, so the rest of a first wave is asked from then on), as a guess;
5. a coarser kind (model and tier, then model), finest first, with some of this run's samples or enough
   remembered ones: dense polling from half where its own would start, as a guess;
6. nothing: None, and the schedule polls on its geometric no-knowledge schedule.

An expectation that is not ``sure`` is a guess: the schedule also polls on the geometric schedule until it
is due by the guess, so no guess (and no prior) can make a run wait for a task that ended long ago.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from runner.models import tier_of

__all__ = ["DurationStats", "Expectation", "Kind", "TaskTimes"]

#: A remembered sample: (seconds, weight in (0, 1]; 1 for tonight, less for older nights).
Weighted = tuple[float, float]


@dataclass(frozen=True, order=True)
class Kind:
    """What a task's time depends on. ``tier`` and ``duration`` are None in the coarser kinds."""

    model: str
    tier: str | None = None
    duration: int | None = None

    @classmethod
    def of(cls, model: str, size: str | None, duration: int | None) -> Kind:
        return cls(model, tier_of(size) if size else None, duration)

    @property
    def exact(self) -> bool:
        return self.tier is not None and self.duration is not None

    def coarser(self) -> tuple[Kind, ...]:
        """The kinds that stand in for this one, finest first: (model, tier), then the model alone."""
        out = [k for k in (Kind(self.model, self.tier), Kind(self.model)) if k != self]
        return tuple(dict.fromkeys(out))

    def __str__(self) -> str:
        return f"{self.model}|{self.tier or '-'}|{'-' if self.duration is None else self.duration}"


@dataclass(frozen=True)
class Expectation:
    """What we expect of a kind's tasks, in seconds since submission."""

    early: float  # about the 5 % quantile: polling densely starts here
    typical: float  # the median
    late: float  # about the 95 % quantile
    sure: bool = True  # False: a guess, hedged by the geometric schedule (module docstring)

    @classmethod
    def prior(cls, expected: float) -> Expectation:
        """The user's ``--expected-task-time``."""
        return cls(early=0.5 * expected, typical=expected, late=1.5 * expected)


class DurationStats:
    """Recent task durations per key, for quantiles (a bounded sample: recent behaviour matters most)."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._samples: dict[Hashable, deque[float]] = {}
        self._sorted: dict[Hashable, list[float]] = {}

    def add(self, key: Hashable, seconds: float) -> None:
        if not math.isfinite(seconds) or seconds <= 0:
            return
        self._samples.setdefault(key, deque(maxlen=self._size)).append(seconds)
        self._sorted.pop(key, None)

    def count(self, key: Hashable) -> int:
        return len(self._samples.get(key, ()))

    def values(self, key: Hashable) -> list[float]:
        """The key's durations, sorted."""
        values = self._sorted.get(key)
        if values is None:
            values = self._sorted[key] = sorted(self._samples.get(key, ()))
        return values

    def quantile(self, key: Hashable, q: float) -> float | None:
        """Nearest-rank quantile of the recent durations, or None without data."""
        values = self.values(key)
        if not values:
            return None
        return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]


def weighted_quantile(samples: Sequence[Weighted], q: float) -> float:
    """Nearest-rank quantile of (value, weight) pairs sorted by value (equal weights: ``DurationStats``'s)."""
    total = sum(w for _, w in samples)
    goal = q * total - 1e-9 * total
    acc = 0.0
    for value, weight in samples:
        acc += weight
        if acc >= goal:
            return value
    return samples[-1][0]


class TaskTimes:
    """Samples per kind, this run's and remembered ones, and the expectation they give (module docstring).

    ``remembered`` maps exact kinds to their (seconds, weight) samples; this run's server-timed samples are
    listed by ``new_samples()`` for the memory to keep. Pure logic: no clock, no I/O.
    """

    def __init__(
        self,
        remembered: Mapping[Kind, Sequence[Weighted]] | None = None,
        *,
        expected: float | None = None,
        min_samples: int = 5,
        sample_size: int = 256,
    ) -> None:
        self._own = DurationStats(sample_size)
        self._expected = expected
        self._min = min_samples
        self._mem: dict[Kind, list[Weighted]] = {}
        for kind, samples in (remembered or {}).items():
            good = [(s, w) for s, w in samples if math.isfinite(s) and s > 0 and math.isfinite(w) and w > 0]
            for key in (kind, *kind.coarser()):
                self._mem.setdefault(key, []).extend(good)
        for values in self._mem.values():
            values.sort()
        self._dropped: set[Kind] = set()  # remembered samples this run contradicted
        self._seen_only: set[Kind] = set()  # kinds with durations seen by polls, not the server's times
        self._new: list[tuple[Kind, float]] = []
        self._cache: dict[Kind, Expectation | None] = {}

    def add(self, kind: Kind, seconds: float, *, seen: bool = False) -> None:
        """A task of ``kind`` took ``seconds`` from submission to its end: by the server's own times, or
        ``seen`` by a poll (which adds that poll's lateness: never remembered)."""
        if not math.isfinite(seconds) or seconds <= 0:
            return
        mem = self._remembered(kind)
        if mem and not seen and not _agrees(mem, seconds):
            self._dropped.add(kind)
        for key in (kind, *kind.coarser()):
            self._own.add(key, seconds)
            if seen:
                self._seen_only.add(key)
        if kind.exact and not seen:
            self._new.append((kind, seconds))
        # every kind of the model may stand on this sample (through a coarser kind): forget their expectations
        for key in [k for k in self._cache if k.model == kind.model]:
            del self._cache[key]

    def count(self, kind: Kind) -> int:
        """This run's samples of ``kind``."""
        return self._own.count(kind)

    def learned(self, kind: Kind) -> bool:
        """True when this run's own samples decide the kind's expectation."""
        return self._own.count(kind) >= self._min

    def new_samples(self) -> list[tuple[Kind, float]]:
        """This run's samples timed by the server, of exact kinds: what the memory keeps."""
        return list(self._new)

    def expectation(self, kind: Kind) -> Expectation | None:
        if kind in self._cache:
            return self._cache[kind]
        exp = self._compute(kind)
        self._cache[kind] = exp
        return exp

    # ------------------------------------------------------------------------------------------ internals

    def _remembered(self, kind: Kind) -> list[Weighted]:
        return [] if kind in self._dropped else self._mem.get(kind, [])

    def _compute(self, kind: Kind) -> Expectation | None:
        own = self._own.values(kind)
        if len(own) >= self._min:
            return self._quantiles([(s, 1.0) for s in own], kind, sure=True)
        if self._expected is not None:
            return Expectation.prior(self._expected)
        mem = self._remembered(kind)
        if mem and len(own) + sum(w for _, w in mem) >= self._min:
            return self._quantiles(_merge(own, mem), kind, sure=bool(own))
        if own:
            return self._quantiles([(s, 1.0) for s in own], kind, sure=False)
        for coarse in kind.coarser():
            own_c, mem_c = self._own.values(coarse), self._remembered(coarse)
            if own_c or len(own_c) + sum(w for _, w in mem_c) >= self._min:
                guess = self._quantiles(_merge(own_c, mem_c), coarse, sure=False)
                return Expectation(early=0.5 * guess.early, typical=guess.typical, late=guess.late, sure=False)
        return None

    def _quantiles(self, samples: Sequence[Weighted], kind: Kind, *, sure: bool) -> Expectation:
        q05 = weighted_quantile(samples, 0.05)
        q50 = weighted_quantile(samples, 0.5)
        q95 = weighted_quantile(samples, 0.95)
        # Dense polling starts a little before the fastest tasks seen end: 10 % of q05 early for a wide
        # spread, less when the spread is tight (q05 near q50: all tasks take about as long), so polls are
        # not spent on tasks that cannot be done yet while a finished one waits for its turn in the budget.
        # With few samples the margin is the whole spread (the first completions are the fastest tasks, so
        # an early spread looks tighter than it is), with many half of it.
        # A duration seen by a poll (no server times) includes that poll's lateness; trusting a tight spread
        # of those early would stop the 10 % margin from walking a too-slow estimate down.
        weight = sum(w for _, w in samples)
        early = 0.9 * q05
        well_sampled = weight >= 4 * self._min
        if well_sampled or kind not in self._seen_only:
            early = max(early, q05 - (0.5 if well_sampled else 1.0) * (q50 - q05))
        return Expectation(early=early, typical=q50, late=q95, sure=sure)


def _merge(own: Iterable[float], mem: Sequence[Weighted]) -> list[Weighted]:
    """This run's samples (weight 1) and remembered ones, sorted by value."""
    return sorted([*((s, 1.0) for s in own), *mem])


def _agrees(mem: Sequence[Weighted], seconds: float) -> bool:
    """A sample of this run fits what was remembered: within half the 5 % quantile and twice the 95 %."""
    return 0.5 * weighted_quantile(mem, 0.05) <= seconds <= 2.0 * weighted_quantile(mem, 0.95)
