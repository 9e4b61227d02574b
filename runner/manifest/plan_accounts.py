"""``plan --accounts FILE`` (issue 18): how a manifest's jobs split over several accounts, the time the run needs
with all of them, and the price range when their regions price differently — without any network.

The run gives each job to the account with the most free room for its model (``engine.accounts.AccountPool``),
so in steady state each account holds work in proportion to its in-flight cap: the split here is that
proportion, and the time is the waves of tasks all the caps together run. A model goes only to accounts whose
region offers it. Prices: each job at its cheapest and at its dearest offering account (every region bills in
CNY: ``models.Region``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from runner.accounts import AccountConfig
from runner.manifest.spec import JobSpec
from runner.models import MODELS, REGIONS, TYPICAL_TASK_SECONDS

__all__ = ["AccountsPlan", "plan_accounts"]


@dataclass(frozen=True)
class ModelSplit:
    """One model's jobs over the accounts that offer it."""

    model: str
    jobs: int
    shares: dict[str, int]  # account name -> jobs it is expected to take
    caps: dict[str, int]  # account name -> its in-flight cap for the model
    min_seconds: float
    max_seconds: float


@dataclass(frozen=True)
class AccountsPlan:
    accounts: list[AccountConfig]
    splits: list[ModelSplit]
    currency: str
    low: float  # every job at its cheapest offering account
    high: float  # every job at its dearest

    def lines(self, format_duration: Any) -> list[str]:
        """The lines the plan's table ends with."""
        out = [
            "accounts: " + ", ".join(f"{a.name} ({a.region})" for a in self.accounts),
        ]
        for s in self.splits:
            split = ", ".join(f"{name} {n}" for name, n in s.shares.items())
            out.append(f"split of {s.model}: {split} (by in-flight room: {sum(s.caps.values())} at a time in all)")
            out.append(
                f"time for {s.model} with all accounts: {format_duration(s.min_seconds)} to "
                f"{format_duration(s.max_seconds)}"
            )
        if len(self.splits) > 1:
            low = sum(s.min_seconds for s in self.splits)
            high = sum(s.max_seconds for s in self.splits)
            out.append(f"time in all, models one after another: {format_duration(low)} to {format_duration(high)}")
        lo, hi, currency = self.low, self.high, self.currency
        if math.isclose(lo, hi):
            out.append(f"cost with these accounts: {lo:.2f} {currency}")
        else:
            out.append(f"cost with these accounts: {lo:.2f} to {hi:.2f} {currency} (the regions' prices differ)")
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "accounts": [{"name": a.name, "region": a.region} for a in self.accounts],
            "splits": [
                {
                    "model": s.model,
                    "jobs": s.jobs,
                    "shares": s.shares,
                    "in_flight": s.caps,
                    "min_seconds": s.min_seconds,
                    "max_seconds": s.max_seconds,
                }
                for s in self.splits
            ],
            "cost": {"low": round(self.low, 6), "high": round(self.high, 6), "currency": self.currency},
        }


def _cap(account: AccountConfig, model: str) -> int:
    own = account.limits.get(model)
    if own is not None and own.max_in_flight is not None:
        return own.max_in_flight
    return MODELS[model].concurrency


def plan_accounts(jobs: Sequence[JobSpec], accounts: list[AccountConfig]) -> AccountsPlan:
    """The split, times and price range of ``jobs`` over ``accounts`` (the module docstring)."""
    low_t, high_t = TYPICAL_TASK_SECONDS
    splits = []
    for model, count in Counter(j.model for j in jobs).items():
        caps = {a.name: _cap(a, model) for a in accounts if a.offers(model)}
        total = sum(caps.values()) or 1
        shares = {name: count * cap // total for name, cap in caps.items()}
        for name in list(caps)[: count - sum(shares.values())]:  # the remainder, one each, in file order
            shares[name] += 1
        waves = math.ceil(count / total)
        splits.append(ModelSplit(model, count, shares, caps, waves * low_t, waves * high_t))
    low = high = 0.0
    price: dict[tuple[str, str, int], tuple[float, float]] = {}  # (model, size, duration) -> (cheapest, dearest)
    for job in jobs:
        key = (job.model, job.size, job.duration)
        if key not in price:
            costs = [MODELS[job.model].cost(a.region, job.size, job.duration) for a in accounts if a.offers(job.model)]
            price[key] = (min(costs), max(costs)) if costs else (0.0, 0.0)
        low += price[key][0]
        high += price[key][1]
    return AccountsPlan(accounts, splits, REGIONS[accounts[0].region].currency, low, high)
