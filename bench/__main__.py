"""``make bench``: run every ``bench/bench_*.py`` in turn, then assemble ``docs/BENCHMARKS.md``.

    .venv/bin/python -m bench                     # everything (must stay under 15 minutes on 2 cores)
    .venv/bin/python -m bench --quick             # smoke run: --quick goes to every bench that has it
    .venv/bin/python -m bench --only run,plan     # some benches; --assemble-only just rebuilds the doc

Discovery is automatic: a module ``bench/bench_<area>.py`` with a ``main`` function is a bench. Each runs
in its own interpreter (``python -m bench.bench_<area>``) so one bench's CPU pinning, peak RSS or argv never
leaks into the next. Each writes its figures to ``docs/benchmarks/<area>.md`` (some older ones print them
for copying by hand); this script then concatenates those pages, headings demoted one level and relative
links rebased, into ``docs/BENCHMARKS.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
PAGES = ROOT / "docs" / "benchmarks"
OUT = ROOT / "docs" / "BENCHMARKS.md"
#: Pages first in the assembled document (the issue's headline figures); the rest follow by name.
ORDER = ("run", "plan", "ledger", "limits", "emulator")
BUDGET_S = 15 * 60

_LINK = re.compile(r"(!?\[[^\]]*\]\()([^)\s]+)(\))")


def discover() -> list[str]:
    """Areas of ``bench/bench_<area>.py`` files that define ``main``."""
    areas = []
    for path in sorted(BENCH.glob("bench_*.py")):
        if re.search(r"^def main\(", path.read_text(encoding="utf-8"), re.MULTILINE):
            areas.append(path.stem.removeprefix("bench_"))
    return areas


def supports_quick(area: str) -> bool:
    return '"--quick"' in (BENCH / f"bench_{area}.py").read_text(encoding="utf-8")


def run_one(area: str, quick: bool) -> tuple[int, float]:
    argv = [sys.executable, "-m", f"bench.bench_{area}"]
    if quick and supports_quick(area):
        argv.append("--quick")
    print(f"\n=== bench_{area}: {' '.join(argv[1:])}", flush=True)
    t0 = time.perf_counter()
    rc = subprocess.call(argv, cwd=ROOT)
    return rc, time.perf_counter() - t0


def _rebase(text: str, prefix: str) -> str:
    """Relative links of a page in docs/benchmarks/ made relative to docs/."""

    def fix(m: re.Match[str]) -> str:
        target = m.group(2)
        if re.match(r"^([a-z]+:|/|#)", target) or target.startswith("../"):
            target = target.removeprefix("../")
            return m.group(1) + target + m.group(3)
        return m.group(1) + prefix + target + m.group(3)

    return _LINK.sub(fix, text)


def _demote(text: str) -> str:
    """Headings one level down, outside fenced code blocks."""
    out, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and re.match(r"^#{1,5} ", line):
            line = "#" + line
        out.append(line)
    return "\n".join(out)


TIMINGS = PAGES / "make-bench.md"


def write_timings(results: dict[str, tuple[int, float]]) -> None:
    """After a full run: how long each bench took, so the 15-minute budget is on record with the figures."""
    total = sum(t for _, t in results.values())
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [
        "# `make bench`: wall time per bench",
        "",
        f"The last full run (`.venv/bin/python -m bench`), {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} "
        f"cores, load average at the end {load}. Budget: {BUDGET_S // 60} minutes.",
        "",
        "| bench | exit | wall s |",
        "|---|---|---:|",
        *(f"| bench_{a} | {rc} | {t:.0f} |" for a, (rc, t) in results.items()),
        f"| **total** | | **{total:.0f}** ({total / 60:.1f} min: "
        f"{'within' if total <= BUDGET_S else 'OVER'} the budget) |",
    ]
    TIMINGS.write_text("\n".join(lines) + "\n", encoding="utf-8")


def assemble() -> Path:
    pages = {p.stem: p for p in PAGES.glob("*.md")}
    names = [n for n in ORDER if n in pages] + sorted(n for n in pages if n not in ORDER)
    parts = [
        "# Benchmarks",
        "",
        "Assembled by `make bench` (`.venv/bin/python -m bench`) from the pages in `docs/benchmarks/`; each "
        "section says how it was measured and how to reproduce it. Figures are medians of ≥ 3 repetitions with "
        "min–max unless a section says otherwise.",
        "",
        f"Last assembled {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, {os.cpu_count()} cpus, "
        f"Python {platform.python_version()}.",
        "",
    ]
    for name in names:
        lines = pages[name].read_text(encoding="utf-8").splitlines()
        title = next((ln[2:].strip() for ln in lines if ln.startswith("# ")), name)
        parts.append(f"- [{title}](#{_anchor(title)}) — `docs/benchmarks/{name}.md`")
    for name in names:
        body = pages[name].read_text(encoding="utf-8").strip()
        parts += ["", _demote(_rebase(body, "benchmarks/"))]
    OUT.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return OUT


def _anchor(title: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run (passed to benches that support it)")
    ap.add_argument("--only", default="", help="comma-separated areas to run (default: all)")
    ap.add_argument("--skip", default="", help="comma-separated areas not to run")
    ap.add_argument("--assemble-only", action="store_true", help="only rebuild docs/BENCHMARKS.md")
    args = ap.parse_args(argv)
    areas = discover()
    if args.only:
        wanted = set(args.only.split(","))
        areas = [a for a in areas if a in wanted]
    skip = set(filter(None, args.skip.split(",")))
    areas = [a for a in areas if a not in skip]
    results: dict[str, tuple[int, float]] = {}
    if not args.assemble_only:
        for area in areas:
            results[area] = run_one(area, args.quick)
    if results and not args.quick and not args.only and not skip:
        write_timings(results)
    out = assemble()
    total = sum(t for _, t in results.values())
    print("\n=== summary")
    for area, (rc, secs) in results.items():
        print(f"bench_{area:<10} {'ok' if rc == 0 else f'FAILED (exit {rc})':<16} {secs:7.1f} s")
    if results:
        over = "" if total <= BUDGET_S else f"  OVER the {BUDGET_S // 60}-minute budget"
        print(f"total {total:.0f} s{over}")
    print(f"wrote {out.relative_to(ROOT)}")
    return 1 if any(rc != 0 for rc, _ in results.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
