"""The accounts a run may use (issue 18): the accounts file (``--accounts FILE`` or ``WANBATCH_ACCOUNTS``), read
once into frozen values, or the single ``default`` account of ``DASHSCOPE_API_KEY`` / ``--region`` / ``--base-url``.

A DashScope account's quotas count per root account whatever its number of keys (API.md §5), so more quota
means more accounts; one process drives them all. The file::

    accounts:
      - name: team-bj                   # the label in logs, the ledger, status and the gallery
        region: cn-beijing
        key_env: DASHSCOPE_API_KEY_BJ   # the key is read from this variable ...
      - name: team-sg
        region: ap-southeast-1
        key: sk-...                     # ... or stands here: then the file must be readable by its owner only
        base_url: https://.../api/v1    # optional: overrides the region's host
        limits: {wan2.6-t2v: {qps: 5, max_in_flight: 5}}   # optional: the model's quota by default

Every mistake is reported as ``file:line: what is wrong`` (``ConfigError``: exit 2). A key never appears in a
message, a repr, a log line or the ledger: messages name the variable or the file, never the value.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from runner.errors import ConfigError
from runner.models import REGIONS, resolve_model

__all__ = ["ACCOUNTS_ENV", "AccountConfig", "ModelLimits", "default_account", "load_accounts"]

ACCOUNTS_ENV = "WANBATCH_ACCOUNTS"
DEFAULT_NAME = "default"
_NAME = re.compile(r"[\w-][\w.-]{0,63}")
_ACCOUNT_KEYS = {"name", "region", "key", "key_env", "base_url", "limits"}


@dataclass(frozen=True)
class ModelLimits:
    """An account's own quota for one model; None: the model's default (``models.MODELS``)."""

    qps: float | None = None
    max_in_flight: int | None = None


@dataclass(frozen=True)
class AccountConfig:
    """One account: its label, region, key (never shown), host and per-model limits."""

    name: str
    region: str
    key: str = field(repr=False)
    base_url: str | None = None  # None: the region's host
    limits: Mapping[str, ModelLimits] = field(default_factory=dict)  # canonical model name -> limits
    line: int = 0  # where the file defines it (0: the default account)

    def url(self) -> str:
        """The base URL requests go to (with ``/api/v1``)."""
        url = self.base_url or REGIONS[self.region].base_url
        if not url:
            raise ConfigError(f"account {self.name}: region {self.region} has only workspace hosts: give base_url")
        return url.rstrip("/")

    def offers(self, model: str) -> bool:
        """The account's region offers ``model`` (canonical name)."""
        spec = resolve_model(model)
        return spec is not None and self.region in spec.regions


def default_account(key: str, region: str, base_url: str | None) -> AccountConfig:
    """Today's single account: ``DASHSCOPE_API_KEY``, ``--region``, ``--base-url`` (or the environment's)."""
    return AccountConfig(DEFAULT_NAME, region, key, base_url)


def load_accounts(
    path: str | os.PathLike[str], environ: Mapping[str, str] | None = None, *, keys: bool = True
) -> list[AccountConfig]:
    """The accounts of the file at ``path`` (see the module docstring); ``ConfigError`` naming file and line.
    ``keys=False`` (``plan``, which sends nothing): the keys are neither read nor required (each is empty)."""
    env = os.environ if environ is None else environ
    p = Path(path)
    where = str(p)
    try:
        text = p.read_text(encoding="utf-8")
        mode = p.stat().st_mode
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{where}: cannot read the accounts file: {getattr(e, 'strerror', None) or e}") from None
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as e:
        line = getattr(getattr(e, "problem_mark", None), "line", -1) + 1
        raise ConfigError(f"{where}:{line}: not valid YAML: {getattr(e, 'problem', e)}") from None
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError(f"{where}:1: expected a mapping with 'accounts:' (a list of accounts)")
    top = _mapping(root)
    if set(top) - {"accounts"}:
        extra = sorted(set(top) - {"accounts"})[0]
        raise ConfigError(f"{where}:{_line(top[extra][0])}: unknown key {extra!r}; the file has only 'accounts'")
    if "accounts" not in top or not isinstance(top["accounts"][1], yaml.SequenceNode):
        raise ConfigError(f"{where}:{_line(root)}: 'accounts:' must be a list of accounts")
    items = top["accounts"][1].value
    if not items:
        raise ConfigError(f"{where}:{_line(top['accounts'][1])}: 'accounts:' is empty")
    out: list[AccountConfig] = []
    for node in items:
        account = _account(where, node, env, mode, keys)
        if any(a.name == account.name for a in out):
            raise ConfigError(f"{where}:{account.line}: account name {account.name!r} is used twice")
        out.append(account)
    return out


def _account(where: str, node: Any, env: Mapping[str, str], mode: int, keys: bool = True) -> AccountConfig:
    line = _line(node)
    if not isinstance(node, yaml.MappingNode):
        raise ConfigError(f"{where}:{line}: an account is a mapping (name, region, key_env or key, …)")
    fields = _mapping(node)
    for key, (knode, _) in fields.items():
        if key not in _ACCOUNT_KEYS:
            raise ConfigError(
                f"{where}:{_line(knode)}: unknown key {key!r}; allowed: {', '.join(sorted(_ACCOUNT_KEYS))}"
            )
    name = _scalar(where, fields, "name", line, required=True)
    assert name is not None
    if not _NAME.fullmatch(name):
        raise ConfigError(f"{where}:{_at(fields, 'name', line)}: invalid account name {name!r}: letters, digits, . _ -")
    region = _scalar(where, fields, "region", line, required=True) or ""
    if region not in REGIONS:
        raise ConfigError(
            f"{where}:{_at(fields, 'region', line)}: unknown region {region!r}; one of {', '.join(REGIONS)}"
        )
    key = _key(where, fields, env, mode, line, name) if keys else ""
    base_url = _scalar(where, fields, "base_url", line)
    if base_url is not None and not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"{where}:{_at(fields, 'base_url', line)}: base_url must start with http:// or https://")
    if base_url is None and not REGIONS[region].base_url:
        raise ConfigError(f"{where}:{line}: region {region} has only workspace hosts: give base_url")
    limits = _limits(where, fields.get("limits"), region)
    return AccountConfig(name, region, key, base_url, limits, line)


def _key(where: str, fields: dict[str, Any], env: Mapping[str, str], mode: int, line: int, name: str) -> str:
    has_env, has_key = "key_env" in fields, "key" in fields
    if has_env == has_key:
        raise ConfigError(f"{where}:{line}: account {name}: give exactly one of key_env (a variable) or key")
    if has_env:
        var = _scalar(where, fields, "key_env", line, required=True)
        assert var is not None
        value = env.get(var, "").strip()
        if not value:
            raise ConfigError(f"{where}:{_at(fields, 'key_env', line)}: account {name}: the variable {var} is not set")
        return value
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"{where}:{_at(fields, 'key', line)}: account {name}: the file holds a key, so it must be readable by its "
            f"owner only (chmod 600 {where}), or use key_env"
        )
    value = fields["key"][1].value if isinstance(fields["key"][1], yaml.ScalarNode) else ""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}:{_at(fields, 'key', line)}: account {name}: the key is empty")
    return value.strip()


def _limits(where: str, entry: Any, region: str) -> dict[str, ModelLimits]:
    if entry is None:
        return {}
    knode, node = entry
    if not isinstance(node, yaml.MappingNode):
        raise ConfigError(f"{where}:{_line(knode)}: limits is a mapping of model -> {{qps, max_in_flight}}")
    out: dict[str, ModelLimits] = {}
    for model, (mnode, value) in _mapping(node).items():
        spec = resolve_model(model)
        if spec is None:
            raise ConfigError(f"{where}:{_line(mnode)}: unknown model {model!r}")
        if region not in spec.regions:
            raise ConfigError(f"{where}:{_line(mnode)}: {spec.name} is not offered in {region}")
        if not isinstance(value, yaml.MappingNode):
            raise ConfigError(f"{where}:{_line(mnode)}: {model}: expected {{qps: N, max_in_flight: N}}")
        q = _mapping(value)
        if set(q) - {"qps", "max_in_flight"}:
            bad = sorted(set(q) - {"qps", "max_in_flight"})[0]
            raise ConfigError(f"{where}:{_line(q[bad][0])}: unknown limit {bad!r}; allowed: qps, max_in_flight")
        qps = _number(where, q.get("qps"), float)
        cap = _number(where, q.get("max_in_flight"), int)
        out[spec.name] = ModelLimits(qps, int(cap) if cap is not None else None)
    return out


def _number(where: str, entry: Any, kind: type) -> float | None:
    if entry is None:
        return None
    knode, node = entry
    try:
        value = kind(node.value)
    except (TypeError, ValueError):
        value = None
    if value is None or not value > 0 or (kind is int and str(node.value).strip() != str(value)):
        raise ConfigError(
            f"{where}:{_line(node)}: {knode.value} must be a positive {'integer' if kind is int else 'number'}"
        )
    return float(value)


def _mapping(node: yaml.MappingNode) -> dict[str, Any]:
    """A mapping node's items by key text: key -> (key node, value node)."""
    return {str(k.value): (k, v) for k, v in node.value}


def _scalar(where: str, fields: dict[str, Any], key: str, line: int, *, required: bool = False) -> str | None:
    if key not in fields:
        if required:
            raise ConfigError(f"{where}:{line}: the account has no {key}")
        return None
    knode, node = fields[key]
    if not isinstance(node, yaml.ScalarNode) or not str(node.value).strip():
        raise ConfigError(f"{where}:{_line(knode)}: {key} must be a non-empty text")
    return str(node.value).strip()


def _at(fields: dict[str, Any], key: str, default: int) -> int:
    return _line(fields[key][1]) if key in fields else default


def _line(node: Any) -> int:
    return int(node.start_mark.line) + 1
