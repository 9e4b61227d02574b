"""The emulator's settings as one frozen object (the CLI builds it; tests build it directly)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from runner.emulator.accounts import AccountSpec, group_specs, parse_account
from runner.emulator.faults import FaultRule, parse_fault
from runner.models import RETENTION_SECONDS, UPLOAD_TTL_SECONDS

#: A signed ``video_url`` is valid this long after the task ends (API.md §2), in simulated seconds.
URL_TTL_SECONDS = 24 * 3600


@dataclass(frozen=True)
class EmulatorConfig:
    """Every option of ``wanbatch emulator``.

    Simulated durations (task times, retention, URL and upload lifetimes, the 3 h task timeout) are divided by
    ``speed``: at speed 60 a 120 s task takes 2 s. Quota windows and ``slow_seconds`` are real time.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    speed: float = 1.0
    seed: int = 0
    faults: tuple[FaultRule, ...] = ()
    concurrency_mode: Literal["queue", "reject"] = "queue"
    api_keys: tuple[str, ...] = field(default=(), repr=False)  # empty: any key starting with "sk-"
    accounts: tuple[AccountSpec, ...] = ()  # empty: one account "default" holding api_keys (accounts.py)
    task_time: float | None = None  # fixed submit→end time (simulated s); None: drawn from 1–5 min
    retention: float = float(RETENTION_SECONDS)  # simulated s after submission before UNKNOWN
    url_ttl: float = float(URL_TTL_SECONDS)  # simulated s a video_url stays valid after the task ends
    upload_ttl: float = float(UPLOAD_TTL_SECONDS)  # simulated s an uploaded local file is kept (issue 19)
    upload_max_mb: float = 100.0  # the upload policy's size limit (the audio rule's 15 MB is checked at create)
    quotas: bool = True
    qps_scale: float = 1.0  # multiplies every quota (submit QPS, concurrency, query QPS)
    block_word: str | None = None  # a prompt containing it gets 400 DataInspectionFailed at submit
    slow_seconds: float = 2.0  # real delay of a "slow" fault
    fps: int = 1  # frame rate of the synthesized videos (low: cheap to encode and serve)
    access_log: bool = False
    clock_offset: float = 0.0  # real seconds the emulator's clock runs ahead of the host's (negative: behind)
    echo_normalized: bool = False  # answer orig_prompt NFC-normalised with whitespace runs folded (a lenient echo)
    arrears_after: int | None = None  # after this many accepted creates the account is in arrears (400 Arrearage)
    denied_models: tuple[str, ...] = ()  # models not open to the account (403 Model.AccessDenied)
    quote_key_in_failures: bool = False  # a FAILED task's message quotes the key that made it (untrusted text)

    def __post_init__(self) -> None:
        if self.speed <= 0:
            raise ValueError("speed must be > 0")
        if self.qps_scale <= 0:
            raise ValueError("qps_scale must be > 0")
        if self.concurrency_mode not in ("queue", "reject"):
            raise ValueError("concurrency_mode must be queue or reject")
        if self.task_time is not None and self.task_time <= 0:
            raise ValueError("task_time must be > 0")
        if not 1 <= self.fps <= 30:
            raise ValueError("fps must be in 1..30")
        if self.accounts and self.api_keys:
            raise ValueError("api keys without an account (--api-key, WANBATCH_EMULATOR_API_KEYS) cannot be mixed "
                             "with accounts: give every key to an account (--account NAME=KEY)")  # fmt: skip
        group_specs(self.accounts)  # a key given twice, or one account's specs disagreeing: ValueError
        if self.upload_ttl <= 0 or self.upload_max_mb <= 0:
            raise ValueError("upload_ttl and upload_max_mb must be > 0")

    @staticmethod
    def parse_faults(specs: list[str] | tuple[str, ...]) -> tuple[FaultRule, ...]:
        return tuple(parse_fault(s) for s in specs)

    @staticmethod
    def parse_accounts(specs: list[str] | tuple[str, ...]) -> tuple[AccountSpec, ...]:
        """``NAME=KEY[,qps=N][,in_flight=N][,arrears=K][,deny=MODEL]`` each (accounts.parse_account)."""
        return tuple(parse_account(s) for s in specs)
