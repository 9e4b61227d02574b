"""Reading a ledger file back into a ``RunState``.

Replay rules: a torn last line (no trailing newline, or not JSON) is ignored; any other unreadable line is
a ``LedgerError`` naming the file and line; events this version does not know are skipped, and fields it
does not know are ignored, so an older wanbatch can read a newer ledger.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import ValidationError

from runner.errors import LedgerError
from runner.store.events import EVENTS, LINE, short_error
from runner.store.job import JobState
from runner.store.state import RunState
from runner.store.transitions import TRANSITIONS


# --- reading the file ------------------------------------------------------------------------------------
def _line_ok(raw: bytes) -> bool:
    """The same test replay applies: a valid line, or a line of an event this version does not know."""
    try:
        LINE.validator.validate_json(raw)
    except ValidationError as e:
        return _classify(raw, e) is None
    return True


def sound_length(path: str | os.PathLike[str]) -> int:
    """Bytes of the ledger up to the end of its last sound line: a torn tail (no newline, or a last line
    replay cannot read) is left out. The writer truncates to this before appending, so what replay
    forgave as the last line never ends up in the middle of the file."""
    p = Path(path)
    with p.open("rb") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        # find the last two newlines (enough to isolate the last line), reading backwards in blocks
        block = 1 << 16
        pos = size
        tail = b""
        while pos > 0 and tail.count(b"\n") < (2 if tail.endswith(b"\n") else 1):
            step = min(block, pos)
            pos -= step
            f.seek(pos)
            tail = f.read(step) + tail
    if not tail.endswith(b"\n"):
        cut = tail.rfind(b"\n")
        return pos + cut + 1 if cut >= 0 else 0
    body = tail[:-1]
    cut = body.rfind(b"\n")
    last = body[cut + 1 :]
    if not last.strip() or _line_ok(last):
        return size
    return pos + cut + 1 if cut >= 0 else 0


def replay(path: str | os.PathLike[str]) -> RunState:
    """Read a ledger into a ``RunState``. A missing file is an empty run."""
    p = Path(path)
    state = RunState()
    try:
        f = p.open("rb")
    except FileNotFoundError:
        return state
    with f:
        _replay_file(p, f, state)
    return state


def _replay_file(p: Path, f: BinaryIO, state: RunState) -> None:
    validate = LINE.validator.validate_json  # the core validator: skips a wrapper call per line
    apply = state.apply
    jobs, transitions = state.jobs, TRANSITIONS
    pending: tuple[int, str] | None = None  # an unreadable line: fatal unless it is the last one
    n = folded = 0
    for raw in f:
        n += 1
        if pending is not None:
            _raise(p, *pending)
        if raw[-1] != 10:  # no b"\n" at the end (an int compare: cheaper than a method call per line)
            state.torn_tail = True  # written partly: never acknowledged, so never acted on
            break
        if len(raw) < 4 and not raw.strip():  # blank line (a real line is far longer)
            continue
        try:
            line = validate(raw)
        except ValidationError as e:
            reason = _classify(raw, e)
            if reason is None:
                state.skipped += 1
                continue
            pending = (n, reason)
            continue
        # RunState.apply inlined for the job lines (7 of 8 in a real ledger): a call less per line
        transition = transitions.get(line["event"])
        if transition is None:
            apply(line)
            continue
        job_id = line["job_id"]
        job = jobs.get(job_id)
        if job is None:
            job = jobs[job_id] = JobState(job_id)
        job.updated = line["ts"]
        transition(job, line)
        folded += 1
    state.lines += folded
    if pending is not None:
        state.torn_tail = True


def _classify(raw: bytes, e: ValidationError) -> str | None:
    """None for a line of an unknown event (skipped), else why the line is unreadable."""
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as je:
        return f"not JSON ({je.msg} at column {je.colno})"
    except ValueError:
        return "not UTF-8 text"
    except RecursionError:  # pydantic refused it first; the stdlib decoder overflows on deep nesting
        return "not JSON (nested too deeply)"
    if not isinstance(obj, dict):
        return "not a JSON object"
    event = obj.get("event")
    if isinstance(event, str) and event not in EVENTS:
        return None
    if event is None:
        return "no 'event' field"
    return f"event {event!r}: {short_error(e)}"


def _raise(path: Path, line: int, reason: str) -> None:
    raise LedgerError(
        f"{path}:{line}: unreadable ledger line ({reason}); "
        "the ledger is damaged there: fix or remove that line, or start a new output folder"
    )


def replay_lines(lines: Iterable[dict[str, Any]]) -> RunState:
    """A ``RunState`` from line dicts (tests, and callers that keep lines in memory)."""
    state = RunState()
    for obj in lines:
        state.apply_dict(obj)
    return state
