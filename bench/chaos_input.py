"""Chaos 4, bad input: thousands of generated and mutated manifests through ``wanbatch plan`` and garbage
ledgers through ``wanbatch status``. Never a traceback; a refusal is exit 2 with a located message.

Generation is a seeded ``random.Random`` (a failure names its seed and reproduces), not hypothesis: the
point is volume, and drawing trees through hypothesis costs far more than ``plan`` itself.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import random
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.chaos_common import ROOT, child_env, has_traceback

SEEDS = sorted((ROOT / "manifests").glob("*.yaml"))
#: A refusal names the file and, when it is about the text, the line and column.
PLAN_LINE = re.compile(
    r"^.+?:\d+:\d+: (error|warning): .+$|^.+?: (error|warning): .+$|^.+: \d+ errors?; nothing planned$"
)
STATUS_LINE = re.compile(r"^wanbatch: .+ledger\.jsonl(:\d+)?: .+$|^wanbatch: .+: no ledger\.jsonl here.+$")
#: Pieces of YAML and of the manifest language that a mutation splices into a real manifest. Shared with
#: the fuzz test of ``make test`` (tests/manifest/test_fuzz.py), so both fuzz with one vocabulary.
TOKENS = [
    ":",
    "-",
    " ",
    "\n",
    "  ",
    "{",
    "}",
    "[",
    "]",
    ",",
    "'",
    '"',
    "&a",
    "*a",
    "<<",
    "!!int",
    "!!binary",
    "!!str",
    "?",
    "#",
    "|",
    ">",
    "\t",
    "null",
    "~",
    "true",
    "0",
    "-1",
    "1e999",
    "9" * 40,
    ".inf",
    "{x}",
    "{{",
    "}}",
    "\u2013",
    "\ufeff",
    "\x00",
    "\x1b",
    "\udcff",
    "\U0001f3ac",
    "model",
    "jobs",
    "shots",
    "matrix",
    "size",
    "duration",
    "seed",
    "repeat",
    "name",
    "../../etc/passwd",
    "/abs",
    "%",
    "@",
    "`",
    "\r\n",
    "\u2028",
]
#: Keys of a manifest at any level (top, defaults, job, shot), plus one that belongs nowhere.
KEYS = [
    "model",
    "size",
    "duration",
    "seed",
    "prompt_extend",
    "watermark",
    "audio",
    "name",
    "prompt",
    "shots",
    "matrix",
    "repeat",
    "vars",
    "version",
    "defaults",
    "jobs",
    "from",
    "to",
    "text",
    "intro",
    "audio_url",
    "negative_prompt",
    "shot_type",
    "x",
]
SCALARS: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    5,
    10,
    2**31,
    2**70,
    1.5,
    float("inf"),
    "",
    "wan2.6-t2v",
    "1280*720",
    "../x",
    "a" * 3000,
    "{x}",
    "\u2013",
    [],
    {},
]


def mutate(rng: random.Random, text: str) -> str:
    """1–5 edits of ``text``: insert, delete or replace at a random place, duplicate or swap lines."""
    for _ in range(rng.randint(1, 5)):
        i = rng.randrange(len(text) + 1)
        kind = rng.randrange(5)
        if kind == 0:
            text = text[:i] + rng.choice(TOKENS) + text[i:]
        elif kind == 1:
            text = text[:i] + text[i + rng.randint(1, 30) :]
        elif kind == 2:
            text = text[:i] + rng.choice(TOKENS) + text[i + 1 :]
        else:
            lines = text.split("\n")
            a, b = rng.randrange(len(lines)), rng.randrange(len(lines))
            if kind == 3:
                lines.insert(b, lines[a])
            else:
                lines[a], lines[b] = lines[b], lines[a]
            text = "\n".join(lines)
    return text


def tree(rng: random.Random, depth: int = 0) -> Any:
    k = rng.randrange(10)
    if depth >= 4 or k < 5:
        return rng.choice(SCALARS)
    if k < 7:
        return [tree(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(KEYS): tree(rng, depth + 1) for _ in range(rng.randrange(5))}


def generated(rng: random.Random, seeds: list[str]) -> bytes:
    """One manifest: mostly a mutated real one, else a random tree (as YAML-compatible JSON) or raw bytes."""
    r = rng.random()
    if r < 0.6:
        return mutate(rng, rng.choice(seeds)).encode("utf-8", "surrogatepass")
    if r < 0.9:
        doc = {"version": 1, "jobs": [tree(rng) for _ in range(rng.randrange(3))]}
        if rng.random() < 0.5:
            doc["defaults"] = tree(rng)
        return json.dumps(doc, allow_nan=True).encode()
    return bytes(rng.randrange(256) for _ in range(rng.randrange(200)))


@functools.cache
def _parser() -> argparse.ArgumentParser:
    from runner.cli import build_parser

    return build_parser()


def _main(argv: list[str]) -> int:
    """``runner.cli.main`` with its parser built once: building it costs more than planning a manifest."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    code: int = args.func(args)
    return code


def _in_process(argv: list[str]) -> tuple[int | None, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code: int | None = _main(argv)
        except BaseException as e:  # exactly what must never happen: counted
            import traceback

            err.write("Traceback (most recent call last):\n" + "".join(traceback.format_exception(e)))
            code = None
    return code, out.getvalue(), err.getvalue()


def _sub(argv: list[str], cwd: Path) -> tuple[int | None, str, str]:
    r = subprocess.run(
        [sys.executable, "-m", "runner", *argv],
        cwd=cwd,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return r.returncode, r.stdout, r.stderr


def _judge(code: int | None, err: str, line: re.Pattern[str]) -> str | None:
    """None when the answer is acceptable, else what is wrong."""
    if code is None or has_traceback(err):
        return "traceback"
    if code not in (0, 2):
        return f"exit {code}"
    if code == 2:
        lines = [ln for ln in err.splitlines() if ln.strip()]
        if not lines:
            return "exit 2 without a message"
        bad = [ln for ln in lines if not line.match(ln)]
        if bad:
            return f"unlocated line {bad[0][:120]!r}"
    return None


#: One case of a bad-input scenario: writes its input, returns the command and the seed that made the input.
Case = Callable[[int], tuple[list[str], int]]


def _tally(what: str, count: int, subprocesses: int, work: Path, line: re.Pattern[str], case: Case) -> dict[str, Any]:
    """Run ``case(i)``'s command (it writes its input first and names the seed that made it) ``count`` times
    in-process, then ``subprocesses`` times as real children; judge each answer against ``line``."""
    codes = {0: 0, 2: 0}
    problems: list[str] = []
    for i in range(count + subprocesses):
        argv, seed = case(i)
        code, _, err = _in_process(argv) if i < count else _sub(argv, work)
        wrong = _judge(code, err, line)
        if wrong:
            problems.append(f"seed {seed}: {wrong}")
        elif code is not None:
            codes[code] += 1
    return {
        what: count,
        "subprocesses": subprocesses,
        "exit_0": codes[0],
        "exit_2": codes[2],
        "problems": len(problems),
        "examples": problems[:5],
    }


def bad_manifests(work: Path, *, count: int = 10_000, subprocesses: int = 40, seed: int = 0) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    seeds = [p.read_text(encoding="utf-8") for p in SEEDS]
    path = work / "m.yaml"

    def case(i: int) -> tuple[list[str], int]:
        rng = random.Random(seed * 1_000_003 + i)
        path.write_bytes(generated(rng, seeds))
        return ["plan", str(path)] + (["--json"] if rng.random() < 0.3 else []), seed * 1_000_003 + i

    return _tally("manifests", count, subprocesses, work, PLAN_LINE, case)


def garbage_ledger(rng: random.Random, good: list[bytes]) -> bytes:
    """A real ledger with damage: random bytes, a broken line in the middle, wrong types, huge numbers."""
    lines = list(good)
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(lines))
        kind = rng.randrange(7)
        if kind == 0:
            lines[i] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80))) + b"\n"
        elif kind == 1:
            lines[i] = lines[i][: rng.randrange(len(lines[i]))] + b"\n"
        elif kind == 2:
            try:
                obj = json.loads(lines[i])
            except (ValueError, RecursionError):  # damaged by an earlier step already
                continue
            if isinstance(obj, dict) and obj:
                obj[rng.choice(list(obj))] = rng.choice(SCALARS)
                lines[i] = json.dumps(obj, allow_nan=True).encode() + b"\n"
        elif kind == 3:
            lines[i] = json.dumps(tree(rng), allow_nan=True).encode() + b"\n"
        elif kind == 4:
            lines[i] = b'{"ts": 1e999999, "event": "planned", "job_id": "' + b"9" * 5000 + b'"}\n'
        elif kind == 5:
            lines.insert(i, b"[" * 10000 + b"]" * 10000 + b"\n")
        else:
            lines[-1] = lines[-1][: rng.randrange(len(lines[-1]))]  # torn tail: tolerated
    return b"".join(lines)


def bad_ledgers(work: Path, good_ledger: Path, *, count: int = 1000, subprocesses: int = 20) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    good = good_ledger.read_bytes().splitlines(keepends=True)
    out = work / "run"
    out.mkdir(exist_ok=True)

    def case(i: int) -> tuple[list[str], int]:
        rng = random.Random(i)
        (out / "ledger.jsonl").write_bytes(garbage_ledger(rng, good))
        return ["status", str(out)] + (["--json"] if rng.random() < 0.5 else []), i

    return _tally("ledgers", count, subprocesses, work, STATUS_LINE, case)


def passed(manifests: dict[str, Any], ledgers: dict[str, Any]) -> bool:
    return bool(
        manifests["problems"] == 0 and ledgers["problems"] == 0 and manifests["exit_2"] > 0 and ledgers["exit_2"] > 0
    )
