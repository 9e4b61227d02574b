"""Fault injection: which request or task goes wrong, decided reproducibly from the seed.

Syntax of one rule (``--fault``, repeatable, or a string in ``POST /_emulator/faults``)::

    KIND[@ROUTE]=RATE[xCOUNT]      e.g.  500@create=0.1   reset_after_create=0.05   fail=1x2

RATE is a probability in [0, 1]; ``xCOUNT`` stops the rule after COUNT injections. Whether the n-th request
of a route is hit is a hash of (seed, rule, route, n), not a shared random stream, so the same seed gives
the same faults on the same request numbers whatever the interleaving of concurrent requests.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

#: Routes a rule can be scoped to. A rule without ``@route`` hits the API routes only; ``policy`` (the upload
#: policy) and ``upload`` (the upload host) are hit when named (issue 19).
API_ROUTES = ("create", "query", "list", "cancel")
ROUTES = (*API_ROUTES, "file", "policy", "upload")

#: Request-level kinds: the answer to one request is replaced (before the request has any effect).
#: ``404``: a proxy's HTML "not found" page, no DashScope code (a misrouted request, issue 14).
REQUEST_KINDS = ("429", "404", "500", "502", "503", "reset", "slow", "truncate")
#: Task-level kinds: decided once per accepted create. ``late`` makes the task run four times longer (tasks end
#: out of order). The ``*_after_create`` kinds and ``ANSWER_KINDS`` make the task, then lose, hold (``slow_seconds``)
#: or replace its answer.
ANSWER_KINDS = ("empty_id", "unknown_id", "no_task_id", "html_400", "html_200", "page_502")
TASK_KINDS = (
    "reset_after_create", "hold_after_create", "fail", "inspection", "stuck", "expired_url", "late", *ANSWER_KINDS
)  # fmt: skip
KINDS = REQUEST_KINDS + TASK_KINDS

_DEFAULT_SCOPE: dict[str, tuple[str, ...]] = {
    "truncate": ("file",),
    **{k: ("create",) for k in TASK_KINDS},
}

_RULE = re.compile(r"^(?P<kind>[a-z0-9_]+)(?:@(?P<route>[a-z]+))?=(?P<rate>[0-9.]+)(?:x(?P<count>[0-9]+))?$")


class FaultSyntaxError(ValueError):
    """A fault rule that cannot be parsed; the message says what is allowed."""


@dataclass(frozen=True)
class FaultRule:
    """One parsed rule. ``routes`` is the effective scope (explicit ``@route`` or the kind's default)."""

    kind: str
    routes: tuple[str, ...]
    rate: float
    count: int | None = None
    spec: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "kind": self.kind,
            "routes": list(self.routes),
            "rate": self.rate,
            "count": self.count,
        }


def parse_fault(spec: str) -> FaultRule:
    """Parse ``KIND[@ROUTE]=RATE[xCOUNT]``; raises FaultSyntaxError naming the allowed kinds and routes."""
    m = _RULE.match(spec.strip().lower())
    if not m:
        raise FaultSyntaxError(f"fault {spec!r}: expected KIND[@ROUTE]=RATE[xCOUNT], e.g. 500@create=0.1")
    kind, route, rate_s, count_s = m["kind"], m["route"], m["rate"], m["count"]
    if kind not in KINDS:
        raise FaultSyntaxError(f"fault {spec!r}: unknown kind {kind!r}; kinds: {', '.join(KINDS)}")
    try:
        rate = float(rate_s)
    except ValueError:
        raise FaultSyntaxError(f"fault {spec!r}: rate must be a number in [0, 1]") from None
    if not 0.0 <= rate <= 1.0:
        raise FaultSyntaxError(f"fault {spec!r}: rate must be in [0, 1]")
    if route is None:
        routes = _DEFAULT_SCOPE.get(kind, API_ROUTES)
    elif route not in ROUTES:
        raise FaultSyntaxError(f"fault {spec!r}: unknown route {route!r}; routes: {', '.join(ROUTES)}")
    elif kind in TASK_KINDS and route != "create":
        raise FaultSyntaxError(f"fault {spec!r}: {kind} happens at task creation; scope it @create or not at all")
    elif kind == "truncate" and route != "file":
        raise FaultSyntaxError(f"fault {spec!r}: truncate applies to downloads only (@file)")
    else:
        routes = (route,)
    count = int(count_s) if count_s is not None else None
    return FaultRule(kind, routes, rate, count, spec.strip())


def roll(seed: int, key: str, n: int) -> float:
    """A reproducible number in [0, 1) for the n-th event of ``key`` under ``seed``."""
    digest = hashlib.blake2b(f"{seed}\x00{key}\x00{n}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class FaultInjector:
    """The current fault rules plus the counters that make their decisions reproducible.

    Mutable (rules can be replaced at runtime); owned by one emulator state, used from its event loop only.
    """

    def __init__(self, rules: tuple[FaultRule, ...], seed: int) -> None:
        self.seed = seed
        self.rules = rules
        self._used: Counter[str] = Counter()  # injections per rule spec, for xCOUNT
        self._seen: Counter[str] = Counter()  # requests per route
        self.injected: Counter[str] = Counter()  # injections per kind, for stats

    def replace(self, rules: tuple[FaultRule, ...]) -> None:
        self.rules = rules
        self._used.clear()

    def reset(self) -> None:
        self._used.clear()
        self._seen.clear()
        self.injected.clear()

    def _hit(self, i: int, rule: FaultRule, route: str, n: int) -> bool:
        if rule.count is not None and self._used[rule.spec] >= rule.count:
            return False
        if rule.rate < 1.0 and roll(self.seed, f"{i}:{rule.spec}:{route}", n) >= rule.rate:
            return False
        self._used[rule.spec] += 1
        self.injected[rule.kind] += 1
        return True

    def request_fault(self, route: str) -> str | None:
        """The request-level fault for this request of ``route`` (first matching rule wins), or None."""
        if not self.rules:
            return None
        n = self._seen[route]
        self._seen[route] += 1
        for i, rule in enumerate(self.rules):
            if rule.kind in REQUEST_KINDS and route in rule.routes and self._hit(i, rule, route, n):
                return rule.kind
        return None

    def task_faults(self, n: int) -> frozenset[str]:
        """The task-level faults of the n-th accepted task (any subset of TASK_KINDS)."""
        if not self.rules:
            return frozenset()
        return frozenset(
            rule.kind for i, rule in enumerate(self.rules) if rule.kind in TASK_KINDS and self._hit(i, rule, "task", n)
        )

    def as_json(self) -> list[dict[str, Any]]:
        return [r.as_json() for r in self.rules]
