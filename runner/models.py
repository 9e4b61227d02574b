"""The table of Wan text-to-video models: the single source of truth for sizes, durations, prompt limits,
feature support, prices, default quotas and regions (facts from ``shared/API.md`` §1, §5, §6).

Everything else (manifest validation, plan costs, the limiter's defaults, the emulator's checks) reads this
table; nothing here does I/O. The emulator imports this module and nothing else of the runner.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

Tier = Literal["480P", "720P", "1080P"]

#: Allowed ``size`` values per resolution tier (API.md §1.3). Sizes are ``"W*H"`` with an asterisk.
TIER_SIZES: MappingProxyType[str, tuple[str, ...]] = MappingProxyType(
    {
        "480P": ("832*480", "480*832", "624*624"),
        "720P": ("1280*720", "720*1280", "960*960", "1088*832", "832*1088"),
        "1080P": ("1920*1080", "1080*1920", "1440*1440", "1632*1248", "1248*1632"),
    }
)

#: ``usage.SR`` per tier, as the wan2.6 answer carries it.
TIER_SR: MappingProxyType[str, int] = MappingProxyType({"480P": 480, "720P": 720, "1080P": 1080})

#: Query, list and cancel share this per-account limit (API.md §5).
QUERY_QPS = 20

#: Typical processing time of one task in seconds (API.md §1.3: "1–5 min").
TYPICAL_TASK_SECONDS = (60.0, 300.0)

#: Results and task ids are kept this long on the server (API.md §2).
RETENTION_SECONDS = 24 * 3600

#: A task not done this long after submission ends FAILED ``InternalError.Timeout`` (API.md §2).
TASK_TIMEOUT_SECONDS = 3 * 3600

#: Limits that hold for every model.
NEGATIVE_PROMPT_MAX_CHARS = 500
SEED_MIN, SEED_MAX = 0, 2_147_483_647

#: ``input.audio_url`` (wan2.5, wan2.6; API.md §1.3): the containers it may be, its length in seconds, its size.
AUDIO_FORMATS = ("wav", "mp3")
AUDIO_MIN_SECONDS, AUDIO_MAX_SECONDS = 3.0, 30.0
AUDIO_MAX_BYTES = 15 * 1024 * 1024

#: A local file uploaded to DashScope's temporary storage (an ``oss://`` URL) is kept this long (API.md §1.2; the
#: vendor's "upload local files to get temporary URLs" page), for the model it was uploaded for only. The vendor
#: documents the temporary storage for China (Beijing).
UPLOAD_TTL_SECONDS = 48 * 3600
UPLOAD_REGIONS = ("cn-beijing",)


@dataclass(frozen=True)
class Region:
    """A DashScope deployment: its id, base URL (with ``/api/v1``, as the SDK takes it) and currency.

    Every price in the vendor's table is in CNY, including the international and global columns, so
    every region bills in CNY here; ``usd_per_cny`` is the vendor's own conversion, for display only.
    """

    id: str
    title: str
    base_url: str | None  # the legacy shared host; None where only workspace hosts exist
    workspace_url: str  # template with {workspace}
    currency: str = "CNY"
    usd_per_cny: float | None = None


REGIONS: MappingProxyType[str, Region] = MappingProxyType(
    {
        "cn-beijing": Region(
            "cn-beijing",
            "China (Beijing)",
            "https://dashscope.aliyuncs.com/api/v1",
            "https://{workspace}.cn-beijing.maas.aliyuncs.com/api/v1",
        ),
        "ap-southeast-1": Region(
            "ap-southeast-1",
            "Singapore",
            "https://dashscope-intl.aliyuncs.com/api/v1",
            "https://{workspace}.ap-southeast-1.maas.aliyuncs.com/api/v1",
            usd_per_cny=1 / 7.33924,
        ),
        "us-east-1": Region(
            "us-east-1",
            "US (Virginia)",
            "https://dashscope-us.aliyuncs.com/api/v1",
            "https://{workspace}.us-east-1.maas.aliyuncs.com/api/v1",
            usd_per_cny=1 / 7.33924,
        ),
        "eu-central-1": Region(
            "eu-central-1",
            "Germany (Frankfurt)",
            None,
            "https://{workspace}.eu-central-1.maas.aliyuncs.com/api/v1",
            usd_per_cny=1 / 7.33924,
        ),
    }
)

DEFAULT_REGION = "cn-beijing"


@dataclass(frozen=True)
class ModelSpec:
    """One Wan t2v model. ``name`` is the canonical spelling; ``spellings`` maps a region to the name
    sent there (``wanx2.1-…`` in Beijing); ``aliases`` are every accepted spelling."""

    name: str
    tiers: tuple[str, ...]
    default_size: str
    durations: tuple[int, ...]  # every allowed value, ascending
    default_duration: int
    prompt_max_chars: int
    shot_type: bool  # accepts parameters.shot_type
    audio_url: bool  # accepts input.audio_url
    rewrites_prompt: bool  # answers actual_prompt when prompt_extend is true (never wan2.6)
    usage_family: Literal["wan2.6", "legacy"]  # shape of `usage` in the task answer
    submit_qps: int
    concurrency: int
    prices: MappingProxyType[str, MappingProxyType[str, float]]  # region -> tier -> CNY per second
    spellings: MappingProxyType[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def aliases(self) -> tuple[str, ...]:
        return (self.name, *sorted(set(self.spellings.values()) - {self.name}))

    @property
    def regions(self) -> tuple[str, ...]:
        return tuple(self.prices)

    @property
    def sizes(self) -> tuple[str, ...]:
        return tuple(s for t in self.tiers for s in TIER_SIZES[t])

    @property
    def fixed_duration(self) -> bool:
        return len(self.durations) == 1

    def name_in(self, region: str) -> str:
        """The spelling this model is sent with in ``region``."""
        return self.spellings.get(region, self.name)

    def allows_size(self, size: str) -> bool:
        return size in self.sizes

    def price(self, region: str, tier: str) -> float:
        """CNY per second of output for ``tier`` in ``region``; KeyError when not offered there."""
        return self.prices[region][tier]

    def cost(self, region: str, size: str | None, duration: int | None) -> float:
        """Cost of one successful video: unit price of the size's tier x seconds (API.md §6)."""
        tier = tier_of(size or self.default_size)
        if tier is None:
            raise KeyError(size)
        return self.price(region, tier) * (duration or self.default_duration)

    def describe_durations(self) -> str:
        d = self.durations
        if len(d) == 1:
            return f"{d[0]} (fixed)"
        if list(d) == list(range(d[0], d[-1] + 1)) and len(d) > 2:
            return f"any integer from {d[0]} to {d[-1]}"
        return " or ".join(str(x) for x in d)


def _prices(table: dict[str, dict[str, float]]) -> MappingProxyType[str, MappingProxyType[str, float]]:
    return MappingProxyType({r: MappingProxyType(t) for r, t in table.items()})


_GLOBAL_26 = {"720P": 0.6, "1080P": 1.0}
_INTL_26 = {"720P": 0.733924, "1080P": 1.100886}

MODELS: MappingProxyType[str, ModelSpec] = MappingProxyType(
    {
        m.name: m
        for m in (
            ModelSpec(
                name="wan2.6-t2v",
                tiers=("720P", "1080P"),
                default_size="1920*1080",
                durations=tuple(range(2, 16)),
                default_duration=5,
                prompt_max_chars=1500,
                shot_type=True,
                audio_url=True,
                rewrites_prompt=False,
                usage_family="wan2.6",
                submit_qps=5,
                concurrency=5,
                prices=_prices(
                    {
                        "cn-beijing": _GLOBAL_26,
                        "ap-southeast-1": _INTL_26,
                        "us-east-1": _GLOBAL_26,
                        "eu-central-1": _GLOBAL_26,
                    }
                ),
            ),
            ModelSpec(
                name="wan2.6-t2v-us",
                tiers=("720P", "1080P"),
                default_size="1920*1080",
                durations=(5, 10),
                default_duration=5,
                prompt_max_chars=1500,
                shot_type=True,
                audio_url=True,
                rewrites_prompt=False,
                usage_family="wan2.6",
                submit_qps=5,
                concurrency=5,
                prices=_prices({"us-east-1": _INTL_26}),
            ),
            ModelSpec(
                name="wan2.5-t2v-preview",
                tiers=("480P", "720P", "1080P"),
                default_size="1920*1080",
                durations=(5, 10),
                default_duration=5,
                prompt_max_chars=1500,
                shot_type=False,
                audio_url=True,
                rewrites_prompt=True,
                usage_family="legacy",
                submit_qps=5,
                concurrency=5,
                prices=_prices(
                    {
                        "cn-beijing": {"480P": 0.3, "720P": 0.6, "1080P": 1.0},
                        "ap-southeast-1": {"480P": 0.366961, "720P": 0.733923, "1080P": 1.100885},
                    }
                ),
            ),
            ModelSpec(
                name="wan2.2-t2v-plus",
                tiers=("480P", "1080P"),
                default_size="1920*1080",
                durations=(5,),
                default_duration=5,
                prompt_max_chars=800,
                shot_type=False,
                audio_url=False,
                rewrites_prompt=True,
                usage_family="legacy",
                submit_qps=2,
                concurrency=2,
                prices=_prices(
                    {
                        "cn-beijing": {"480P": 0.14, "1080P": 0.70},
                        "ap-southeast-1": {"480P": 0.146785, "1080P": 0.733924},
                    }
                ),
            ),
            ModelSpec(
                name="wan2.1-t2v-turbo",
                tiers=("480P", "720P"),
                default_size="1280*720",
                durations=(5,),
                default_duration=5,
                prompt_max_chars=800,
                shot_type=False,
                audio_url=False,
                rewrites_prompt=True,
                usage_family="legacy",
                submit_qps=2,
                concurrency=2,
                prices=_prices(
                    {
                        "cn-beijing": {"480P": 0.24, "720P": 0.24},
                        "ap-southeast-1": {"480P": 0.264213, "720P": 0.264213},
                    }
                ),
                spellings=MappingProxyType({"cn-beijing": "wanx2.1-t2v-turbo"}),
            ),
            ModelSpec(
                name="wan2.1-t2v-plus",
                tiers=("720P",),
                default_size="1280*720",
                durations=(5,),
                default_duration=5,
                prompt_max_chars=800,
                shot_type=False,
                audio_url=False,
                rewrites_prompt=True,
                usage_family="legacy",
                submit_qps=2,
                concurrency=2,
                prices=_prices({"cn-beijing": {"720P": 0.70}, "ap-southeast-1": {"720P": 0.733924}}),
                spellings=MappingProxyType({"cn-beijing": "wanx2.1-t2v-plus"}),
            ),
        )
    }
)

_BY_ALIAS: MappingProxyType[str, ModelSpec] = MappingProxyType(
    {alias: m for m in MODELS.values() for alias in m.aliases}
)


def resolve_model(name: str) -> ModelSpec | None:
    """The model for any accepted spelling (``wan2.1-…`` or ``wanx2.1-…``), or None."""
    return _BY_ALIAS.get(name)


def all_model_names() -> tuple[str, ...]:
    """Every accepted spelling, canonical names first."""
    return tuple(MODELS) + tuple(a for a in _BY_ALIAS if a not in MODELS)


def tier_of(size: str) -> str | None:
    """The resolution tier of a concrete ``"W*H"`` size, or None for an unknown size."""
    for tier, sizes in TIER_SIZES.items():
        if size in sizes:
            return tier
    return None


def parse_size(size: str) -> tuple[int, int]:
    """``"1280*720"`` → ``(1280, 720)``; ValueError on anything else."""
    w, sep, h = size.partition("*")
    if not sep or not w.isdigit() or not h.isdigit():
        raise ValueError(f"size must be W*H, got {size!r}")
    return int(w), int(h)
