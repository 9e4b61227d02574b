"""``wanbatch doctor``: check what can be checked without paying, one line per check (issue 17).

The key is set (never printed: its last four characters at most); the host belongs to the region; the host
resolves and answers (DNS, TLS, connection); the key is accepted (one list request, which creates nothing);
the host's clock against the server's ``Date``; the output and state folders are writable; free disk space.
Exit 0 when every check passes, 4 when the account (or the network) refuses work, 2 for a problem here.

With an accounts file (``--accounts FILE`` or ``WANBATCH_ACCOUNTS``, issue 18) the key, host, network and clock
checks run for every account, each line naming its account; the folders are checked once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from runner import log as runlog
from runner.commands import EXIT_USAGE, KEY_ENV, accounts_path, base_url, print_error, run_accounts
from runner.engine.api import ApiConfig, DashScopeClient, Timeouts
from runner.engine.classify import classify
from runner.errors import ApiError, ConfigError, refusal_scope, what_to_check
from runner.models import DEFAULT_REGION, REGIONS
from runner.schedule.spend import default_state_dir

#: Less free space than this in the output folder is a problem (videos are 1–50 MB each).
MIN_FREE_BYTES = 1 << 30
#: A host clock further off the server's than this is worth a note (wanbatch itself reads the server's clock).
SKEW_NOTE_S = 60.0
OK, LOCAL, REFUSED = "ok", "local", "refused"


@dataclass(frozen=True)
class Check:
    """One check's verdict: ``ok``, a ``local`` problem (exit 2) or a ``refused`` one (exit 4)."""

    name: str
    status: str
    detail: str
    fix: str = ""
    account: str | None = None  # the account checked (an accounts file); None: the one of DASHSCOPE_API_KEY

    def line(self) -> str:
        mark = "ok  " if self.status == OK else "FAIL"
        whose = f"{self.account}: " if self.account else ""
        return f"{mark} {self.name:<10} {whose}{self.detail}" + (f" — {self.fix}" if self.fix else "")


@dataclass(frozen=True)
class DoctorSettings:
    """What to check: the region, the base URL as a run would use it, the key, and the two folders."""

    region: str
    base_url: str
    key: str | None
    out_dir: Path
    state_dir: Path
    timeout: float = 15.0
    key_name: str = KEY_ENV  # where the key comes from, for the message when it is missing


def exit_code(checks: list[Check]) -> int:
    if any(c.status == REFUSED for c in checks):
        return 4
    return 2 if any(c.status == LOCAL for c in checks) else 0


def run_checks(s: DoctorSettings, accounts: dict[str, DoctorSettings] | None = None) -> list[Check]:
    """Every check of ``s``, or with ``accounts`` (name -> its settings) those of each account, then the folders."""
    checks = (
        _account_checks(s)
        if accounts is None
        else [replace(c, account=name) for name, each in accounts.items() for c in _account_checks(each)]
    )
    checks.append(_writable("output", s.out_dir))
    checks.append(_writable("state", s.state_dir))
    checks.append(_disk(s.out_dir))
    return checks


def _account_checks(s: DoctorSettings) -> list[Check]:
    """The key, the host of the region, DNS, and one list request (connection, the key accepted, the clock)."""
    checks = [_key(s), _host(s)]
    host = urlsplit(s.base_url).hostname or ""
    resolved = _dns(host)
    checks.append(resolved)
    if resolved.status == OK and s.key:
        checks.extend(asyncio.run(_service(s)))
    return checks


def render(checks: list[Check], as_json: bool) -> str:
    if as_json:
        return json.dumps({"checks": [asdict(c) for c in checks], "exit_code": exit_code(checks)}, ensure_ascii=False)
    return "\n".join(c.line() for c in checks)


def _key(s: DoctorSettings) -> Check:
    if not s.key:
        return Check("key", LOCAL, f"{s.key_name} is not set", "set it in the environment (never on the command line)")
    tail = s.key[-4:] if len(s.key) >= 12 else ""
    return Check("key", OK, f"set ({len(s.key)} characters" + (f", ends …{tail})" if tail else ")"))


def _host(s: DoctorSettings) -> Check:
    """The base URL's host against the region's (a key and a host of different regions never work together)."""
    host = urlsplit(s.base_url).hostname or ""
    region = REGIONS[s.region]
    own = {urlsplit(region.base_url).hostname} if region.base_url else set()
    if host in own or host.endswith(f".{s.region}.maas.aliyuncs.com"):
        return Check("host", OK, f"{host} serves {s.region}")
    for other in REGIONS.values():
        theirs = urlsplit(other.base_url).hostname if other.base_url else None
        if other.id != s.region and (host == theirs or host.endswith(f".{other.id}.maas.aliyuncs.com")):
            fix = f"use --region {other.id}, or the host of {s.region} (keys and models are per region)"
            return Check("host", LOCAL, f"{host} serves {other.id}, not {s.region}", fix)
    return Check("host", OK, f"{host} is not a DashScope host of any region (a proxy or the emulator): not checked")


def _dns(host: str) -> Check:
    try:
        addrs = {str(a[4][0]) for a in socket.getaddrinfo(host, None)}
    except OSError as e:
        return Check("dns", REFUSED, f"{host} does not resolve: {e.strerror or e}", "check DNS, the host name, a proxy")
    return Check("dns", OK, f"{host} → {', '.join(sorted(addrs)[:3])}")


async def _service(s: DoctorSettings) -> list[Check]:
    """One list request (it creates nothing): connection and TLS, the key, and the server's clock."""
    assert s.key is not None
    t = Timeouts(connect=s.timeout, list=s.timeout)
    try:
        async with DashScopeClient(ApiConfig(s.base_url, s.key, timeouts=t)) as client:
            try:
                await client.list_tasks(page_size=1)
            except ApiError as exc:
                return [_answer_problem(exc)]
            clock = client.server_clock
    except ValueError as exc:  # the key has whitespace or is not printable (ApiConfig says so, never echoing it)
        return [Check("key", LOCAL, str(exc), "set the key without spaces or line breaks")]
    checks = [Check("connect", OK, f"{s.base_url} answered"), Check("account", OK, "the key is accepted")]
    if clock.known:
        off = clock.offset
        side = "ahead of" if off < 0 else "behind"
        detail = f"host clock {abs(off):.1f} s {side} the server's (±{clock.error:.1f} s)"
        if abs(off) > SKEW_NOTE_S:
            detail += "; wanbatch reads the server's clock, but fix NTP for your logs"
        checks.append(Check("clock", OK, detail))
    return checks


def _answer_problem(exc: ApiError) -> Check:
    scope = refusal_scope(exc)
    if scope is not None:
        return Check("account", REFUSED, f"{exc.code or exc.status}: {exc.message}", "check " + what_to_check(exc.code))
    verdict = classify(exc, op="list")
    if exc.status is None:  # no answer at all: connection refused, TLS, timeout
        return Check("connect", REFUSED, str(exc), "check the network, TLS interception, a proxy")
    return Check("connect", REFUSED, f"{exc} ({verdict.reason})", "the service is in trouble; try again later")


def _writable(what: str, folder: Path) -> Check:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".doctor-", delete=True) as f:
            f.write(b"x")
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        return Check(
            what,
            LOCAL,
            f"{folder} is not writable: {e.strerror or e}",
            f"fix its permissions or choose another {what} folder",
        )
    return Check(what, OK, f"{folder} is writable")


def _disk(folder: Path) -> Check:
    try:
        free = shutil.disk_usage(folder if folder.exists() else folder.parent).free
    except OSError as e:
        return Check("disk", LOCAL, f"cannot tell the free space of {folder}: {e.strerror or e}")
    gib = free / (1 << 30)
    if free < MIN_FREE_BYTES:
        return Check("disk", LOCAL, f"{gib:.2f} GiB free at {folder}", "free space: a night of videos needs gigabytes")
    return Check("disk", OK, f"{gib:.1f} GiB free at {folder}")


def doctor_command(args: argparse.Namespace) -> int:
    """``wanbatch doctor``: exit 0 when every check passes, 4 when the account or network refuses, 2 otherwise."""
    key = os.environ.get(KEY_ENV, "").strip() or None
    region = args.region or DEFAULT_REGION
    state_dir = Path(args.state_dir) if args.state_dir else default_state_dir()
    out = Path(args.out)
    accounts: dict[str, DoctorSettings] | None = None
    secrets = [key] if key else []
    try:
        url = base_url(args.base_url, region)
        if accounts_path(args) is not None:
            configs, _ = run_accounts(args)  # file:line for every mistake, a missing key variable too (exit 2)
            secrets += [a.key for a in configs if a.key]
            accounts = {
                a.name: DoctorSettings(a.region, a.url(), a.key or None, out, state_dir, key_name=f"{a.name}'s key")
                for a in configs
            }
    except ConfigError as e:
        print_error(str(e))  # (a message names the variable or the file, never a key)
        return EXIT_USAGE
    runlog.configure(verbosity=getattr(args, "verbose", 0), secrets=secrets)
    checks = run_checks(DoctorSettings(region, url, key, out, state_dir), accounts)
    print(render(checks, args.json))
    return exit_code(checks)
