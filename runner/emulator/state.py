"""Everything one running emulator knows: tasks, quotas, faults, videos and request counters."""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter
from typing import Any

from runner.emulator.accounts import Account, Accounts
from runner.emulator.clock import Clock, system_clock
from runner.emulator.config import EmulatorConfig
from runner.emulator.faults import FaultInjector, roll
from runner.emulator.tasks import TaskStore
from runner.emulator.uploads import ObjectStore
from runner.emulator.video import VideoCache


class EmulatorState:
    """The mutable heart of the emulator, used from its event loop only (no locks needed)."""

    def __init__(self, config: EmulatorConfig, clock: Clock = system_clock) -> None:
        self.config = config
        self.base_clock = clock
        self.clock_offset = config.clock_offset  # changed at runtime by POST /_emulator/clock
        self.arrears_after = config.arrears_after  # account faults (mutable: tests change them between runs)
        self.denied_models = set(config.denied_models)
        # who each key belongs to, and each account's quotas, faults and counters (its tasks are in the store)
        self.accounts = Accounts(config.accounts, config.api_keys, quotas=config.quotas, qps_scale=config.qps_scale)
        self.faults = FaultInjector(config.faults, config.seed)
        self.block_word = config.block_word
        self.slow_seconds = config.slow_seconds
        self.store = TaskStore(
            seed=config.seed,
            speed=config.speed,
            task_time=config.task_time,
            retention=config.retention,
            url_ttl=config.url_ttl,
            concurrency_mode=config.concurrency_mode,
        )
        self.videos = VideoCache(fps=config.fps)
        self.objects = ObjectStore(  # local files uploaded for creates (issue 19)
            speed=config.speed,
            ttl=config.upload_ttl,
            max_bytes=int(config.upload_max_mb * 1024 * 1024),
            seed=config.seed,
        )
        self._url_secret = hashlib.blake2b(f"url-secret:{config.seed}".encode(), digest_size=32).digest()
        self.reset_stats()

    def clock(self) -> float:
        """The emulator's time: the host's (or the injected) clock moved by ``clock_offset``; every task time,
        list window, URL expiry and ``Date`` header reads it."""
        return self.base_clock() + self.clock_offset

    def reset_stats(self) -> None:
        self.submitted = 0
        self.submitted_by_model: Counter[str] = Counter()
        self.by_body: Counter[str] = Counter()
        self.throttled: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()
        self.queries = 0
        self.bytes_served = 0
        self.downloads = 0
        self.downloads_with_authorization = 0
        self.resets_after_create = 0
        self.odd_answers = 0  # create answers replaced after the task was made (faults.ANSWER_KINDS)
        self.n_429 = 0

    def reset(self) -> None:
        """Forget tasks, uploaded objects, counters and quota windows (``POST /_emulator/reset``); config and
        faults stay."""
        self.store.clear()
        self.accounts.reset()
        self.objects.clear()
        self.faults.reset()
        self.reset_stats()

    # -- keys and URLs ------------------------------------------------------------------------------------

    def key_accepted(self, key: str) -> bool:
        return self.account_for(key) is not None

    def account_for(self, key: str) -> Account | None:
        """The account ``key`` belongs to; None when no account has it or the account is revoked (401)."""
        account = self.accounts.for_key(key)
        return None if account is None or account.revoked else account

    def account_of(self, task_id: str) -> str | None:
        """The name of the account that made the task (None: no such task)."""
        task = self.store.get(task_id)
        return task.account if task is not None else None

    @staticmethod
    def api_key_id(key: str) -> str:
        """A stable public id for a key (the key itself never leaves the request)."""
        return str(int.from_bytes(hashlib.blake2b(key.encode(), digest_size=5).digest(), "big"))

    def sign(self, task_id: str, expires: int) -> str:
        return hmac.new(self._url_secret, f"{task_id}:{expires}".encode(), hashlib.sha256).hexdigest()[:32]

    def signature_ok(self, task_id: str, expires: int, signature: str) -> bool:
        return hmac.compare_digest(self.sign(task_id, expires), signature)

    def retry_after_for_429(self, wait: float) -> int | None:
        """Some 429s carry ``Retry-After`` and some do not (decided by the seed, API.md decision 5)."""
        n = self.n_429
        self.n_429 += 1
        if roll(self.config.seed, "retry-after", n) < 0.5:
            return None
        return max(1, int(wait + 0.999))

    # -- stats --------------------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        now = self.clock()
        dup_bodies = {h: n for h, n in self.by_body.items() if n > 1}
        return {
            "submitted": self.submitted,
            "submitted_by_model": dict(self.submitted_by_model),
            "submissions_by_body": dict(self.by_body),
            "duplicates": len(dup_bodies),
            "duplicate_submissions": sum(n - 1 for n in dup_bodies.values()),
            **self.store.as_stats(now),
            "canceled": self.store.canceled,
            "throttled": dict(self.throttled),
            "throttled_total": sum(self.throttled.values()),
            "requests": dict(self.requests),
            "queries": self.queries,
            "bytes_served": self.bytes_served,
            "downloads": self.downloads,
            "downloads_with_authorization": self.downloads_with_authorization,
            "resets_after_create": self.resets_after_create,
            "odd_answers": self.odd_answers,
            "clock_offset": self.clock_offset,
            "faults_injected": dict(self.faults.injected),
            "videos_encoded": self.videos.encoded,
            **self.objects.as_stats(now),
            "now": now,
            "foreign": self.accounts.foreign,
            "accounts": self.accounts.stats(self.store, now),
        }
