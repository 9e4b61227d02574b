"""``wanbatch plan``: what a manifest will do — jobs, seconds of video, cost, time — without any network.

``build_plan(manifest)`` is the library call the run engine shares; ``plan_command(settings)`` is the command,
given its ``PlanSettings`` by the CLI. Output is plain text (fast for 100,000 jobs) or the JSON object of
DESIGN.md, whose ``request`` is the exact POST body, both written in pieces.
"""

from __future__ import annotations

import json
import math
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import reduce
from operator import add, attrgetter, mul
from typing import Any, TextIO

from runner.accounts import load_accounts
from runner.errors import ConfigError, ManifestError
from runner.manifest.load import load_manifest
from runner.manifest.plan_accounts import plan_accounts
from runner.manifest.spec import JobSpec, Manifest
from runner.models import DEFAULT_REGION, MODELS, REGIONS, TYPICAL_TASK_SECONDS

EXIT_OK, EXIT_USAGE = 0, 2


@dataclass(frozen=True, slots=True)
class PlannedJob:
    """A job with what it costs: seconds of output video and their price in the region's currency."""

    job: JobSpec
    seconds: int
    cost: float


@dataclass(frozen=True)
class ModelEstimate:
    """Wall time one model's jobs need at its default concurrency, for the typical task time range."""

    model: str
    jobs: int
    concurrency: int
    min_seconds: float
    max_seconds: float


@dataclass(frozen=True)
class Plan:
    """Everything ``plan`` prints; ``run`` uses the same numbers for its budget and progress."""

    name: str
    region: str
    currency: str
    jobs: list[PlannedJob]
    seconds: int
    cost: float
    estimates: list[ModelEstimate]

    @property
    def min_seconds(self) -> float:
        """Wall time if the models run one after another and every task takes the short typical time."""
        return sum(e.min_seconds for e in self.estimates)

    @property
    def max_seconds(self) -> float:
        return sum(e.max_seconds for e in self.estimates)

    def to_json(self) -> dict[str, Any]:
        """The JSON object of DESIGN.md: name, region, jobs (id, name, exact request, seconds, cost), totals."""
        return {**self.to_json_head(), "jobs": [_job_json(p) for p in self.jobs], "totals": self.totals_json()}

    def to_json_head(self) -> dict[str, Any]:
        return {"name": self.name, "region": self.region, "jobs": []}

    def totals_json(self) -> dict[str, Any]:
        return {"jobs": len(self.jobs), "seconds": self.seconds, "cost": round(self.cost, 6), "currency": self.currency}


def _job_json(p: PlannedJob) -> dict[str, Any]:
    job = p.job
    out = {
        "job_id": job.job_id,
        "name": job.name,
        "request": job.request,
        "seconds": p.seconds,
        "cost": round(p.cost, 6),
    }
    if job.audio is not None:  # a local file: the run uploads it and sends its oss:// URL instead (issue 19)
        out["audio"] = job.audio.describe()
    return out


def build_plan(manifest: Manifest) -> Plan:
    """Price every job of ``manifest`` in its region and estimate the run's wall time per model."""
    region = manifest.region
    jobs = manifest.jobs
    # CNY per second by (model, tier) in this region (a model only the other accounts' regions offer: the first of
    # them that does; ``plan --accounts`` shows the range): one look-up per job instead of three
    unit = {
        (m, t): p for r in reversed((region, *manifest.also)) for m, spec in MODELS.items()
        for t, p in spec.prices.get(r, {}).items()
    }  # fmt: skip
    # The passes over the jobs run in C (map, attrgetter, Counter); the sums add in job order, as a loop would.
    durations = list(map(attrgetter("duration"), jobs))
    costs = list(map(mul, map(unit.__getitem__, map(attrgetter("model", "tier"), jobs)), durations))
    planned = list(map(PlannedJob, jobs, durations, costs))
    per_model = Counter(map(attrgetter("model"), jobs))
    total_seconds = sum(durations)
    total_cost = reduce(add, costs, 0.0)
    del durations, costs
    low, high = TYPICAL_TASK_SECONDS
    estimates = []
    for model, count in per_model.items():
        conc = MODELS[model].concurrency
        waves = math.ceil(count / conc)
        estimates.append(ModelEstimate(model, count, conc, waves * low, waves * high))
    return Plan(manifest.name, region, REGIONS[region].currency, planned, total_seconds, total_cost, estimates)


# ---------------------------------------------------------------------------------------------- output


def format_duration(seconds: float) -> str:
    """``5400`` → ``1 h 30 min``; ``60`` → ``1 min``."""
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"{hours} h {rest} min" if rest else f"{hours} h"


def render_table(plan: Plan) -> str:
    """The human-readable plan: one row per job, then totals and the time estimate."""
    return "".join(iter_table(plan))


def iter_table(plan: Plan, chunk: int = 2000) -> Iterator[str]:
    """``render_table`` in pieces of ``chunk`` rows. Column widths come from a first pass over the few fields
    that vary (no list of 100,000 rows of cells), then each row is formatted once, as it is written."""
    region = plan.region
    jobs = plan.jobs
    header = ("NAME", "MODEL", "SIZE", "DURATION", "SHOT", "SEED", "SECONDS", f"COST ({plan.currency})")
    model_names = {m: spec.name_in(region) for m, spec in MODELS.items()}
    specs = list(map(attrgetter("job"), jobs))  # the passes below run in C (map + attrgetter), not in Python
    columns = [
        map(len, map(attrgetter("name"), specs)),
        (len(model_names[e.model]) for e in plan.estimates),
        map(len, set(map(attrgetter("size"), specs))),
        (len(f"{d} s") for d in set(map(attrgetter("duration"), specs))),
        (len(t or "-") for t in set(map(attrgetter("shot_type"), specs))),
        (len("random" if seed is None else str(seed)) for seed in set(map(attrgetter("seed"), specs))),
        (len(str(n)) for n in set(map(attrgetter("seconds"), jobs))),
        (len(f"{c:.2f}") for c in set(map(attrgetter("cost"), jobs))),
    ]
    del specs
    widths = [max(len(h), max(col, default=0)) for h, col in zip(header, columns, strict=True)]
    right = {6, 7}
    template = "  ".join(f"{{{i}:{'>' if i in right else '<'}{w}}}" for i, w in enumerate(widths))
    yield template.format(*header).rstrip() + "\n"
    # A row is the template's cells; the model..shot cells and the seconds and cost cells repeat from job to
    # job, so each distinct run of them is formatted once and the row is four pieces (the same text).
    middle_form = "  ".join(f"{{{i}:<{w}}}" for i, w in enumerate(widths[1:5])).format
    tail_form = f"{{0:>{widths[6]}}}  {{1:>{widths[7]}}}".format
    row_form = f"{{0:<{widths[0]}}}  {{1}}  {{2:<{widths[5]}}}  {{3}}".format
    middles: dict[tuple[str, str, int, str | None], str] = {}
    tails: dict[tuple[int, float], str] = {}
    for start in range(0, len(jobs), chunk):
        rows = []
        for p in jobs[start : start + chunk]:
            job = p.job
            key = (job.model, job.size, job.duration, job.shot_type)
            middle = middles.get(key)
            if middle is None:
                middle = middles[key] = middle_form(
                    model_names[job.model], job.size, f"{job.duration} s", job.shot_type or "-"
                )
            money = (p.seconds, p.cost)
            tail = tails.get(money)
            if tail is None:
                tail = tails[money] = tail_form(str(p.seconds), f"{p.cost:.2f}")
            seed = job.seed
            rows.append(row_form(job.name, middle, "random" if seed is None else str(seed), tail).rstrip() + "\n")
        yield "".join(rows)
    out = [""]
    out.append(f"plan {plan.name} in {region} ({REGIONS[region].title})")
    out.append(f"jobs: {len(jobs)}")
    out.append(f"seconds of video: {plan.seconds}")
    out.append(f"cost: {plan.cost:.2f} {plan.currency} (billed only for videos that succeed)")
    files = {a.path: a.bytes for a in map(attrgetter("job.audio"), jobs) if a is not None}
    if files:
        size = sum(files.values()) / (1024 * 1024)
        out.append(
            f"local audio: {len(files)} file{'s' if len(files) != 1 else ''} ({size:.1f} MB), each uploaded once per "
            "model before the first job that needs it"
        )
    low, high = TYPICAL_TASK_SECONDS
    for e in plan.estimates:
        out.append(
            f"time for {model_names[e.model]}: {format_duration(e.min_seconds)} to "
            f"{format_duration(e.max_seconds)} ({e.jobs} job{'s' if e.jobs != 1 else ''}, {e.concurrency} at a time, "
            f"{format_duration(low)} to {format_duration(high)} per task)"
        )
    if len(plan.estimates) > 1:
        out.append(
            f"time in all, models one after another: {format_duration(plan.min_seconds)} to "
            f"{format_duration(plan.max_seconds)}"
        )
    yield "\n".join(out) + "\n"


#: The ``--json`` encoder: ``json.dumps``'s settings, minus the circular-reference check (a public option; a plan is
#: a tree built here), which costs a dict insert and delete per job and request.
_JSON = json.JSONEncoder(ensure_ascii=True, check_circular=False)


def render_json(plan: Plan) -> str:
    return "".join(iter_json(plan))


def iter_json(plan: Plan, chunk: int = 2000, *, accounts: dict[str, Any] | None = None) -> Iterator[str]:
    """``json.dumps(plan.to_json()) + "\n"`` in pieces of ``chunk`` jobs, so 100,000 jobs never exist as one
    list of dicts and one 30 MB string (and its encoded bytes) at once; the text is the same. Each piece is
    one encoder call over its jobs' objects, written without the list's brackets."""
    yield _JSON.encode(plan.to_json_head())[:-2]  # '{"name": …, "jobs": [' without ']}'
    for start in range(0, len(plan.jobs), chunk):
        objects = [_job_json(p) for p in plan.jobs[start : start + chunk]]
        yield (", " if start else "") + _JSON.encode(objects)[1:-1]
    more = ', "accounts": ' + _JSON.encode(accounts) if accounts is not None else ""
    yield '], "totals": ' + _JSON.encode(plan.totals_json()) + more + "}\n"


@dataclass(frozen=True, slots=True)
class PlanSettings:
    """What ``wanbatch plan`` was asked for, made once by the CLI from its arguments."""

    manifest: str  # the manifest file
    region: str = DEFAULT_REGION
    as_json: bool = False
    accounts: str | None = None  # an accounts file (issue 18): the split over them, their time and price range


#: Lines to append to the plan's table, from its cost and currency (the CLI's ``--budget`` / ``--daily-budget``
#: lines); raises ``ConfigError`` when they cannot be made (an unknown timezone, an unusable state folder).
CapsText = Callable[[float, str], str]


def plan_command(
    settings: PlanSettings,
    *,
    caps: CapsText | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """``wanbatch plan MANIFEST [--json] [--region R]``: exit 0 with the plan, or 2 with every issue."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    try:
        accounts = load_accounts(settings.accounts, keys=False) if settings.accounts else None
        # the run checks the manifest for its accounts' regions: so does its plan
        regions = [a.region for a in accounts] if accounts else [settings.region]
        manifest = load_manifest(settings.manifest, regions[0], tuple(regions[1:]))
    except ManifestError as e:
        for issue in e.issues:
            print(issue, file=err)
        n = len(e.issues)
        print(f"{settings.manifest}: {n} error{'s' if n != 1 else ''}; nothing planned", file=err)
        return EXIT_USAGE
    except ConfigError as e:
        print(f"error: {e}", file=err)
        return EXIT_USAGE
    for warning in manifest.warnings:
        print(warning, file=err)
    plan = build_plan(manifest)
    over = plan_accounts(manifest.jobs, accounts) if accounts else None
    tail = "\n".join(over.lines(format_duration)) + "\n" if over is not None and not settings.as_json else ""
    if caps is not None and not settings.as_json:
        try:
            tail += caps(plan.cost, plan.currency)
        except ConfigError as e:
            print(f"error: {e}", file=err)
            return EXIT_USAGE
    try:
        more = over.to_json() if over is not None else None
        pieces = iter_json(plan, accounts=more) if settings.as_json else iter_table(plan)
        for piece in pieces:  # in pieces, never one big string
            out.write(piece)
        out.write(tail)
        out.flush()
    except BrokenPipeError:  # `wanbatch plan big.yaml | head` is fine
        pass
    return EXIT_OK
