"""What the account refused this run, and the circuit breaker for repeated server trouble (issue 17).

**Refusals.** An account-level answer (``runner.errors.refusal_scope``: a wrong key, arrears, a model not open
to the account) is not a job's failure. The first one stops submitting — for the whole account, or for the
one model it concerns — while the tasks already made are still followed and saved; the run ends with exit 4
and says what to check. An API that answers nothing usable for ``--max-outage`` is the same kind of stop
(scope ``network``).

**The breaker.** Five task failures in a row on one model with the same server-side code (``InternalError``,
``InternalError.Timeout``, …) pause that model's submissions, with a warning and an exponential back-off,
instead of submitting the rest of the night into the same failure. A success on the model closes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from runner.engine.clock import Clock

__all__ = ["Breaker", "Refusal", "Refusals"]


@dataclass(frozen=True)
class Refusal:
    """One refusal: the service's code and message (redacted), where, and what the user should check."""

    code: str
    message: str
    request_id: str | None = None
    scope: str = "account"  # "account", "model" or "network"
    model: str | None = None
    host: str | None = None
    region: str | None = None
    check: str = ""
    account: str | None = None  # the account's name in a run with several (None: the only one)

    def line(self) -> str:
        """The message the user reads (one line)."""
        rid = f" (request_id {self.request_id})" if self.request_id else ""
        who = f"account {self.account}" if self.account else "the account"
        for_who = f" for account {self.account}" if self.account else ""
        what = f"model {self.model}{for_who}" if self.scope == "model" and self.model else who
        if self.scope == "network":
            what = f"the API{for_who}"
        where = f"; region {self.region}, host {self.host}" if self.host else ""
        return f"{what} refused work: {self.code}: {self.message}{rid}{where}. Check {self.check}"


@dataclass
class Refusals:
    """The account's refusal (stops every model) and the per-model ones, first of each kind kept."""

    account: Refusal | None = None
    models: dict[str, Refusal] = field(default_factory=dict)

    def add(self, refusal: Refusal) -> bool:
        """Keep ``refusal``; True when it is the first of its kind (the run then writes and says it)."""
        if refusal.scope == "model" and refusal.model:
            if refusal.model in self.models:
                return False
            self.models[refusal.model] = refusal
            return True
        if self.account is not None:
            return False
        self.account = refusal
        return True

    def blocks(self, model: str) -> bool:
        """No create of ``model`` may be sent (canonical model name)."""
        return self.account is not None or model in self.models

    def all(self) -> list[Refusal]:
        return ([self.account] if self.account else []) + list(self.models.values())

    def __bool__(self) -> bool:
        return self.account is not None or bool(self.models)


class Breaker:
    """Pauses a model's submissions after ``threshold`` task failures in a row with the same server-side code;
    each trip doubles the pause (``base`` … ``cap`` seconds). ``clock``: the run's monotonic clock (injectable)."""

    def __init__(self, clock: Clock, threshold: int = 5, base: float = 60.0, cap: float = 1800.0) -> None:
        self.clock = clock
        self.threshold = threshold
        self.base = base
        self.cap = cap
        self._streak: dict[str, tuple[str, int]] = {}  # model -> (code, failures in a row)
        self._trips: dict[str, int] = {}
        self._until: dict[str, float] = {}

    def failed(self, model: str, code: str | None) -> float | None:
        """A task of ``model`` failed with a server-side ``code``; the pause in seconds when this trips it."""
        last, n = self._streak.get(model, ("", 0))
        n = n + 1 if code == last else 1
        self._streak[model] = (code or "", n)
        if n < self.threshold:
            return None
        trips = self._trips.get(model, 0)
        pause = min(self.cap, self.base * 2.0**trips)
        self._trips[model] = trips + 1
        self._until[model] = self.clock.now() + pause
        self._streak[model] = (code or "", 0)
        return pause

    def succeeded(self, model: str) -> None:
        self._streak.pop(model, None)
        self._trips.pop(model, None)

    def wait(self, model: str) -> float:
        """Seconds until ``model`` may be submitted again (0: now)."""
        until = self._until.get(model)
        return 0.0 if until is None else max(0.0, until - self.clock.now())
