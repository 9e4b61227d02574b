"""The accounts a run drives (issue 18): each with its own client (key, host, server clock, outage clock), its
own limits (submit limiter and in-flight cap per model, query and list limiters, 429 adaptation), its own
refusals and breaker, its own share of the host's claims register, and its own poll schedule (the list API
sweeps one account's tasks).

Quotas count per root account (API.md §5), so more quota means more accounts; one process drives them all.
Jobs go to the account with free capacity (``AccountPool.slot``); a job stays with the account that made its
task, for queries, sweeps, cancel, reconcile and download, also across a crash (the ledger's ``submitting``
line names it). An account that refuses work drops out and the others go on.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from runner.engine.api import DashScopeClient
from runner.engine.limits import InFlight, Limits
from runner.engine.poller import PollSchedule
from runner.engine.refusal import Breaker, Refusals
from runner.engine.server_clock import ServerClock
from runner.models import MODELS, resolve_model
from runner.store.claims import Claims

__all__ = ["Account", "AccountPool"]


@dataclass
class Account:
    """One account's share of a run (see the module docstring)."""

    name: str
    region: str
    client: DashScopeClient
    limits: Limits
    claims: Claims | None = None
    refusals: Refusals = field(default_factory=Refusals)
    breaker: Breaker | None = None
    schedule: PollSchedule | None = None  # its tracker's (None: the run's own, the single-account case)
    labelled: bool = False  # named in messages (a run with several accounts)

    @property
    def server_clock(self) -> ServerClock:
        return self.client.server_clock

    @property
    def base_url(self) -> str:
        return self.client.config.base_url

    def offers(self, model: str) -> bool:
        """The account's region offers ``model`` (API.md §1.1: a model not offered there is never sent)."""
        spec = resolve_model(model)
        return spec is not None and self.region in spec.regions

    def usable(self, model: str) -> bool:
        """Creates of ``model`` may go to this account: offered in its region, and not refused."""
        return self.offers(model) and not self.refusals.blocks(model)

    @property
    def out(self) -> bool:
        """The account refused all work (or its host answered nothing for too long): it has dropped out."""
        return self.refusals.account is not None

    def spelling(self, model: str) -> str:
        """The model's name as this account's region spells it (``wanx2.1-…`` in Beijing)."""
        spec = resolve_model(model)
        return spec.name_in(self.region) if spec is not None else model

    def cost(self, model: str, size: str | None, duration: int | None) -> float | None:
        """One successful video's price in this account's region (None when not offered there)."""
        spec = MODELS.get(model)
        try:
            return round(spec.cost(self.region, size, duration), 6) if spec is not None else None
        except KeyError:
            return None


class AccountPool:
    """The run's accounts, in the order given (the first is the home account of run-level requests)."""

    def __init__(self, accounts: list[Account]) -> None:
        if not accounts:
            raise ValueError("a run needs at least one account")
        self.all = accounts
        self._by_name = {a.name: a for a in accounts}

    @property
    def home(self) -> Account:
        return self.all[0]

    def __len__(self) -> int:
        return len(self.all)

    def get(self, name: str | None) -> Account | None:
        """The account of that name (None: not configured in this run)."""
        return self._by_name.get(name or "") if name else None

    def usable(self, model: str) -> list[Account]:
        return [a for a in self.all if a.usable(model)]

    def offering(self, model: str) -> list[Account]:
        return [a for a in self.all if a.offers(model)]

    @property
    def out(self) -> bool:
        """Every account has dropped out: nothing more can be sent."""
        return all(a.out for a in self.all)

    async def slot(self, model: str, candidates: list[Account]) -> Account:
        """Take an in-flight slot of ``model`` on the candidate with the most room, waiting for the first to free
        one when none has any. Waiting takes nothing, so a cancelled wait leaves no slot behind."""
        if len(candidates) == 1:
            await candidates[0].limits.in_flight(model).acquire()
            return candidates[0]
        caps = [(a, a.limits.in_flight(model)) for a in candidates]
        changed = asyncio.Event()
        for _, cap in caps:
            cap.watch(changed)
        try:
            while True:
                for account, cap in sorted(caps, key=lambda p: -_room(p[1])):
                    if cap.try_acquire():
                        return account
                changed.clear()
                await changed.wait()  # a release, or a wake() after a cap rose again with time
        finally:
            for _, cap in caps:
                cap.unwatch(changed)


def _room(cap: InFlight) -> int:
    return cap.limit - cap.held
