"""A video's place in the output folder: its file name (DESIGN.md "Output folder"), its JSON sidecar (written
atomically), and its sha256."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runner.errors import DiskError

_NAME_UNSAFE = re.compile(r"[^\w.-]+")  # letters of any script stay (issue 17)


def video_filename(name: str, size: str, duration: int | float, seed: int | None, job_id: str) -> str:
    """``<name>__<W>x<H>__<dur>s__<seed|rnd>__<id8>.mp4`` (DESIGN.md "Output folder"), safe as a file name."""
    safe = _NAME_UNSAFE.sub("-", name).strip(".-") or "job"
    dur = int(duration) if float(duration).is_integer() else duration
    return f"{safe[:100]}__{size.replace('*', 'x')}__{dur}s__{'rnd' if seed is None else seed}__{job_id[:8]}.mp4"


def sidecar_path(video: str | os.PathLike[str]) -> Path:
    """``videos/x.mp4`` → ``videos/x.json``."""
    return Path(video).with_suffix(".json")


def write_sidecar(video: str | os.PathLike[str], data: Mapping[str, Any]) -> Path:
    """Write the JSON sidecar next to a video atomically (temp file, fsync, rename). Blocking: call it
    through ``asyncio.to_thread`` from the event loop."""
    path = sidecar_path(video)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    text = json.dumps(dict(data), ensure_ascii=False, indent=2, sort_keys=True, default=str) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise DiskError(str(path), e) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    fsync_dir(path.parent)
    return path


def sha256_file(path: str | os.PathLike[str]) -> str:
    """sha256 of a file on disk (resume checks a downloaded video against the ledger). Blocking."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fsync_dir(path: Path) -> None:
    """Make a new directory entry durable (a fresh ledger, a renamed video); a folder that cannot be opened or
    synced (some filesystems) is left as it is."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
