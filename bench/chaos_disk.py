"""Chaos 3, disk trouble: the output folder fills up (a small tmpfs mounted here; root needed) and turns
read-only mid-run. Each time the runner must stop with a clear message (no traceback), the ledger must stay
readable, and the run resumed after the disk is fixed must finish without sending any body again."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.chaos_common import (
    check_ledger,
    emulator,
    has_traceback,
    reap,
    run_cli,
    runner_argv,
    spawn,
    verify_videos,
    write_manifest,
)


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path | None]:
    """A tmpfs of ``size`` at ``where``, or None when this process may not mount (not root, a container)."""
    where.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    if r.returncode != 0:
        yield None
        return
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def remount(where: Path, opts: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{opts}", str(where)], check=True, capture_output=True)


def _clear(text: str) -> bool:
    """A one-line ``wanbatch: cannot write …`` naming the reason, and no traceback."""
    return not has_traceback(text) and any(
        line.startswith("wanbatch: ") and "cannot" in line and ("No space" in line or "Read-only" in line)
        for line in text.splitlines()
    )


def _traceback_excerpt(*texts: str) -> str:
    for text in texts:
        i = text.find("Traceback (most recent call last)")
        if i >= 0:
            return text[max(0, i - 300) : i + 2500]
    return ""


def _count_downloaded(out: Path) -> int:
    try:
        return (out / "ledger.jsonl").read_bytes().count(b'"event":"downloaded"')
    except OSError:
        return 0


def disk_trouble(work: Path, *, jobs: int = 150, size: str = "2m") -> dict[str, Any]:
    """Three cases on one tmpfs: full from the start (videos do not fit), full mid-run (a filler file eats
    the rest, so the ledger's own append may be what fails), read-only mid-run. Resume after each."""
    work.mkdir(parents=True, exist_ok=True)
    res: dict[str, Any] = {"mounted": False}
    cases = []
    with emulator(quotas=False) as emu:
        for case in ("full", "filled_mid_run", "read_only_mid_run"):
            with tmpfs(work / f"mnt_{case}", size if case == "full" else "64m") as mnt:
                if mnt is None:
                    res["note"] = "mount -t tmpfs not permitted here: disk scenarios skipped"
                    return res
                res["mounted"] = True
                cases.append(_case(work, mnt, emu, case, jobs))
        stats = emu.stats()
    res["cases"] = cases
    res["duplicate_submissions"] = stats["duplicate_submissions"]
    return res


def _case(work: Path, mnt: Path, emu: Any, case: str, jobs: int) -> dict[str, Any]:
    manifest = write_manifest(work / f"{case}.yaml", jobs, name=case, tag=f" ({case})")
    out = mnt / "out"
    args: tuple[str, ...] = ("run", str(manifest), "--out", str(out), "--base-url", emu.base_url, "--qps", "50")
    args += ("--max-in-flight", "50")
    before = emu.stats()["submitted"]
    filler = mnt / "filler"
    if case == "full":
        first = run_cli(*args, cwd=work, log=f"{case}1", timeout=180)
    else:
        t0 = time.monotonic()
        proc = spawn(runner_argv(*args), work, f"{case}1")
        while _count_downloaded(out) < 20 and proc.poll() is None and time.monotonic() - t0 < 60:
            time.sleep(0.05)
        if case == "filled_mid_run":
            with contextlib.suppress(OSError), open(filler, "wb") as f:
                while True:
                    f.write(b"\0" * (1 << 20))
                    f.flush()
        else:  # a read-only bind over the folder: new files fail (EROFS); files already open stay writable
            subprocess.run(["mount", "--bind", str(out), str(out)], check=True, capture_output=True)
            subprocess.run(["mount", "-o", "remount,bind,ro", str(out)], check=True, capture_output=True)
        first = reap(proc, t0, work, f"{case}1", timeout=180)
    led = check_ledger(out)
    status = run_cli("status", str(out), cwd=work, log=f"{case}_status", timeout=60)
    # a second attempt on the still-broken disk: stops cleanly again and sends no body twice
    again = run_cli(*args, cwd=work, log=f"{case}2", timeout=180)
    if case == "read_only_mid_run":
        subprocess.run(["umount", str(out)], check=True, capture_output=True)
    elif case == "full":
        remount(mnt, "size=64m")
    filler.unlink(missing_ok=True)
    final = run_cli(*args, cwd=work, log=f"{case}3", timeout=300)
    ver = verify_videos(out)
    return {
        "case": case,
        "first_rc": first.rc,
        "clear_error": _clear(first.err),
        "message": next((ln for ln in first.err.splitlines() if ln.startswith("wanbatch:")), ""),
        "ledger_unreadable": led.unreadable + (led.replay_error is not None),
        "status_rc": status.rc,
        "again_rc": again.rc,
        "again_clear": again.rc == 0 or _clear(again.err),
        "final_rc": final.rc,
        "verified": ver.downloaded,
        "jobs": jobs,
        "submitted": emu.stats()["submitted"] - before,
        "tracebacks": sum(has_traceback(p.err) for p in (first, again, final, status)),
        "traceback_excerpt": _traceback_excerpt(first.err, again.err, final.err, status.err),
    }


def passed(r: dict[str, Any]) -> bool:
    if not r.get("mounted"):
        return False
    return r["duplicate_submissions"] == 0 and all(
        c["first_rc"] in (1, 2)
        and c["clear_error"]
        and c["ledger_unreadable"] == 0
        and c["status_rc"] == 0
        and c["again_clear"]
        and c["final_rc"] == 0
        and c["verified"] == c["jobs"]
        and c["submitted"] == c["jobs"]
        and c["tracebacks"] == 0
        for c in r["cases"]
    )


if __name__ == "__main__":
    import json
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        res = disk_trouble(Path(d), jobs=int(sys.argv[1]) if len(sys.argv) > 1 else 150)
        print(json.dumps(res, indent=1), passed(res))
