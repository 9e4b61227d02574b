"""Accounts (API.md §2, §5): which account a key belongs to, and what each account has of its own.

Quotas count per main account whatever its number of keys, and any key of an account reads every task of that
account and none of another's. An account here is a name, its keys, its ``Quotas`` (submit QPS and concurrency per
model, 20 QPS on query/list/cancel), its account-level faults (arrears, models not open to it) and its counters.
Its tasks stay in the one ``TaskStore``, each tagged with the account's name; ``Account.own`` is the gate every
route passes a task through, so another account's task answers as an unknown id would.

Without any account configured there is one account, ``default``, holding every key the emulator accepts
(``--api-key``, or any key starting with ``sk-``): the emulator then behaves as it did before accounts existed.

Syntax of one account (``--account``, repeatable; ``;`` between accounts in ``WANBATCH_EMULATOR_ACCOUNTS``)::

    NAME=KEY[,qps=N][,in_flight=N][,arrears=K][,deny=MODEL]...
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from runner.emulator.quotas import Quotas
from runner.emulator.tasks import DEFAULT_ACCOUNT, Task, TaskStore
from runner.models import resolve_model

__all__ = ["DEFAULT_ACCOUNT", "Account", "AccountSpec", "AccountSyntaxError", "Accounts", "parse_account"]

SYNTAX = "NAME=KEY[,qps=N][,in_flight=N][,arrears=K][,deny=MODEL]"
SETTINGS = ("qps", "in_flight", "arrears", "deny")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_WORD = re.compile(r"^[A-Za-z_-]{1,20}$")
_NO_SETTINGS: tuple[Any, ...] = (None, None, None, ())


class AccountSyntaxError(ValueError):
    """An account spec that cannot be used; the message names the account and the setting, never the key."""


@dataclass(frozen=True)
class AccountSpec:
    """One configured account (or one more key of it: specs sharing a name make one account with several keys).

    ``qps`` / ``in_flight``: submit QPS / concurrent tasks of the wan2.6 class (every model's table value scales
    by the same ratio; see ``Quotas``). ``arrears_after``: the account falls into arrears (400 ``Arrearage``) after
    this many accepted creates of its own. ``denied_models``: canonical names of models not open to it (403
    ``Model.AccessDenied``)."""

    name: str
    key: str = field(repr=False)
    qps: int | None = None
    in_flight: int | None = None
    arrears_after: int | None = None
    denied_models: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise AccountSyntaxError(
                f"account name {self.name!r}: use 1-64 letters, digits, '.', '_' or '-' (first: a letter or digit)"
            )
        if not self.key or any(c.isspace() or c in ",;" for c in self.key):
            raise AccountSyntaxError(f"account {self.name!r}: the key must be non-empty, without spaces, ',' or ';'")
        for setting, value, least in (("qps", self.qps, 1), ("in_flight", self.in_flight, 1)):
            if value is not None and value < least:
                raise AccountSyntaxError(f"account {self.name!r}: {setting} must be >= {least}")
        if self.arrears_after is not None and self.arrears_after < 0:
            raise AccountSyntaxError(f"account {self.name!r}: arrears must be >= 0")
        canonical = []
        for model in self.denied_models:
            spec = resolve_model(model)
            if spec is None:
                raise AccountSyntaxError(f"account {self.name!r}: deny={model}: no such model")
            canonical.append(spec.name)
        object.__setattr__(self, "denied_models", tuple(dict.fromkeys(canonical)))

    @property
    def settings(self) -> tuple[Any, ...]:
        return self.qps, self.in_flight, self.arrears_after, self.denied_models


def _whole(name: str, setting: str, value: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise AccountSyntaxError(f"account {name!r}: {setting} must be a whole number") from None  # value not echoed


def parse_account(text: str) -> AccountSpec:
    """Parse ``NAME=KEY[,qps=N][,in_flight=N][,arrears=K][,deny=MODEL]...`` (``deny`` repeatable). Errors name
    the account and the setting, never the key."""
    name, sep, rest = text.partition("=")
    name = name.strip()
    if not sep:
        raise AccountSyntaxError(f"an account is {SYNTAX}: no '=' in it")
    if not name:
        raise AccountSyntaxError(f"an account is {SYNTAX}: the NAME before '=' is empty")
    key, *options = rest.split(",")
    if not key.strip():
        raise AccountSyntaxError(f"account {name!r}: the key is missing ({SYNTAX})")
    values: dict[str, int] = {}
    deny: list[str] = []
    for option in options:
        setting, sep, value = option.partition("=")
        setting = setting.strip().lower().replace("-", "_")
        if not _WORD.match(setting):  # never echo what may be a piece of a key
            raise AccountSyntaxError(f"account {name!r}: a part after the key is not SETTING=VALUE ({SYNTAX})")
        if setting not in SETTINGS:
            raise AccountSyntaxError(f"account {name!r}: no setting {setting!r}; settings: {', '.join(SETTINGS)}")
        if not sep or not value.strip():
            raise AccountSyntaxError(f"account {name!r}: {setting} needs a value ({SYNTAX})")
        if setting == "deny":
            deny.append(value.strip())
            continue
        if setting in values:
            raise AccountSyntaxError(f"account {name!r}: {setting} is given twice")
        values[setting] = _whole(name, setting, value)
    return AccountSpec(
        name,
        key.strip(),
        qps=values.get("qps"),
        in_flight=values.get("in_flight"),
        arrears_after=values.get("arrears"),
        denied_models=tuple(deny),
    )


def parse_accounts(text: str) -> tuple[AccountSpec, ...]:
    """Several accounts separated by ``;`` (the environment's form); blanks are skipped."""
    return tuple(parse_account(part) for part in text.split(";") if part.strip())


def group_specs(specs: tuple[AccountSpec, ...]) -> dict[str, list[AccountSpec]]:
    """Specs by account name, in order. ValueError when a key is given twice or one account's specs disagree on
    a setting (give the settings on one of its specs, or the same on each)."""
    owner: dict[str, str] = {}
    groups: dict[str, list[AccountSpec]] = {}
    for spec in specs:
        if spec.key in owner:
            where = f"accounts {owner[spec.key]!r} and {spec.name!r}" if owner[spec.key] != spec.name else spec.name
            raise AccountSyntaxError(f"the same key is given twice ({where})")
        owner[spec.key] = spec.name
        groups.setdefault(spec.name, []).append(spec)
    for name, group in groups.items():
        given = {s.settings for s in group if s.settings != _NO_SETTINGS}
        if len(given) > 1:
            raise AccountSyntaxError(f"account {name!r}: its specs give different settings; give them once")
    return groups


class Account:
    """One account at runtime: its keys, quotas, account-level faults and counters.

    ``arrears_after``, ``denied_models`` and ``revoked`` may be changed while serving (in-process tests):
    ``revoked`` makes every key of the account answer 401 ``InvalidApiKey``."""

    def __init__(
        self,
        name: str,
        keys: frozenset[str],
        quotas: Quotas,
        *,
        arrears_after: int | None = None,
        denied_models: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.keys = keys
        self.quotas = quotas
        self.arrears_after = arrears_after
        self.denied_models = set(denied_models)
        self.revoked = False
        self.reset_stats()

    def __repr__(self) -> str:
        return f"Account({self.name!r}, {len(self.keys)} keys)"

    def reset_stats(self) -> None:
        self.submitted = 0
        self.submitted_by_model: Counter[str] = Counter()
        self.by_body: Counter[str] = Counter()
        self.throttled: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()
        self.canceled = 0
        self.foreign = 0  # requests with this account's key naming another account's task

    def in_arrears(self, default: int | None) -> bool:
        """True once the account made its ``arrears_after`` creates (``default``: the emulator-wide value)."""
        limit = self.arrears_after if self.arrears_after is not None else default
        return limit is not None and self.submitted >= limit

    def own(self, task: Task | None) -> Task | None:
        """``task`` when it is this account's; another account's task is None, as an unknown id (and counted)."""
        if task is not None and task.account != self.name:
            self.foreign += 1
            return None
        return task

    def count_submission(self, model: str, digest: str) -> None:
        self.submitted += 1
        self.submitted_by_model[model] += 1
        self.by_body[digest] += 1

    def stats(self, store: TaskStore, now: float) -> dict[str, Any]:
        return {
            "submitted": self.submitted,
            "submitted_by_model": dict(self.submitted_by_model),
            "submissions_by_body": dict(self.by_body),
            "duplicate_submissions": sum(n - 1 for n in self.by_body.values() if n > 1),
            **store.as_stats(now, self.name),
            "canceled": self.canceled,
            "throttled": dict(self.throttled),
            "throttled_total": sum(self.throttled.values()),
            "requests": dict(self.requests),
            "foreign": self.foreign,
        }


class Accounts:
    """Every account, found by key. ``specs`` empty: one account ``default`` holding ``api_keys``, or every key
    starting with ``sk-`` when there are none."""

    def __init__(
        self,
        specs: tuple[AccountSpec, ...],
        api_keys: tuple[str, ...] = (),
        *,
        quotas: bool = True,
        qps_scale: float = 1.0,
    ) -> None:
        self._by_name: dict[str, Account] = {}
        self._by_key: dict[str, Account] = {}
        self._any_sk: Account | None = None
        for name, group in group_specs(specs).items():
            own = next((s for s in group if s.settings != _NO_SETTINGS), group[0])  # the spec with settings
            account = Account(
                name,
                frozenset(s.key for s in group),
                Quotas(enabled=quotas, scale=qps_scale, qps=own.qps, in_flight=own.in_flight),
                arrears_after=own.arrears_after,
                denied_models=own.denied_models,
            )
            self._add(account)
        if not specs:
            account = Account(DEFAULT_ACCOUNT, frozenset(api_keys), Quotas(enabled=quotas, scale=qps_scale))
            self._add(account)
            if not api_keys:
                self._any_sk = account

    def _add(self, account: Account) -> None:
        self._by_name[account.name] = account
        for key in account.keys:
            self._by_key[key] = account

    def for_key(self, key: str) -> Account | None:
        """The account holding ``key``, or None (401 ``InvalidApiKey``)."""
        account = self._by_key.get(key)
        if account is None and self._any_sk is not None and key.startswith("sk-"):
            return self._any_sk
        return account

    def __getitem__(self, name: str) -> Account:
        return self._by_name[name]

    def __iter__(self) -> Iterator[Account]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._by_name)

    @property
    def foreign(self) -> int:
        return sum(a.foreign for a in self)

    def reset(self) -> None:
        """Forget counters and quota windows (``POST /_emulator/reset``); settings and faults stay."""
        for account in self:
            account.quotas.reset()
            account.reset_stats()

    def stats(self, store: TaskStore, now: float) -> dict[str, dict[str, Any]]:
        return {a.name: a.stats(store, now) for a in self}
