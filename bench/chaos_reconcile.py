"""``make chaos`` scenarios of issues 13 and 14: lost answers that hide paid tasks, and outages around paid tasks.

Each case runs the real CLI against a server that makes every task and then loses or garbles its answer, or
against an API that is down for a while, and reports what the emulator's own record says
(``chaos_common.witness``): tasks paid, videos saved, videos that are another body's, bodies paid more often
than jobs ask, paid tasks never saved, jobs failed, tracebacks. Every case must end with 0 wrong videos, 0
overpaid bodies and 0 unsaved paid tasks, after at most one plain resume.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from bench.chaos_common import child_env, emulator, runner_argv, witness, write_manifest
from runner.emulator.config import EmulatorConfig
from runner.emulator.faults import parse_fault
from runner.store.replay import replay

PROMPT = "A lighthouse at dusk, waves rolling in, cinematic."


def _sweep(path: Path, seeds: int) -> Path:
    path.write_text(
        'version: 1\nname: sweep\ndefaults:\n  model: wan2.6-t2v\n  size: "1280*720"\n  duration: 2\n'
        f"  prompt_extend: false\njobs:\n  - name: sweep\n    prompt: {PROMPT}\n"
        f"    matrix:\n      seed: [{', '.join(str(100 + i) for i in range(seeds))}]\n",
        encoding="utf-8",
    )
    return path


def _run(emu: Any, manifest: Path, out: Path, env: dict[str, str], *extra: str) -> subprocess.Popen[bytes]:
    argv = runner_argv("run", str(manifest), "--out", str(out), "--base-url", emu.base_url, *extra)
    err = open(out.parent / f"{out.name}.err", "wb")  # noqa: SIM115 - closed by the child's exit
    return subprocess.Popen(argv, cwd=manifest.parent, env=env, stdout=subprocess.DEVNULL, stderr=err)


def _figures(emu: Any, outs: list[Path], rcs: list[int], wall: float, runs: int) -> dict[str, Any]:
    w = witness(emu, *outs)
    failed = sum(1 for o in outs for j in replay(o / "ledger.jsonl").jobs.values() if j.state == "failed")
    undecided = sum(1 for o in outs for j in replay(o / "ledger.jsonl").jobs.values() if j.state == "submitting")
    tracebacks = sum((o.parent / f"{o.name}.err").read_bytes().count(b"Traceback") for o in outs)
    stats = emu.stats()
    return {
        "paid": w["billed"], "saved": w["saved"], "wrong_videos": len(w["wrong_videos"]),
        "overpaid_bodies": len(w["overpaid_bodies"]), "unsaved": len(w["unsaved"]), "failed": failed,
        "undecided": undecided, "tracebacks": tracebacks, "rcs": rcs, "runs": runs, "wall_s": round(wall, 1),
        "answers_lost": stats["resets_after_create"] + stats["odd_answers"],
        "faults": dict(stats["faults_injected"]),
    }  # fmt: skip


def case(work: Path, name: str, *, jobs: int) -> dict[str, Any]:
    """One scenario by name (``CASES``)."""
    work.mkdir(parents=True, exist_ok=True)
    env = child_env(XDG_STATE_HOME=str(work / "state"))
    kw: dict[str, Any] = {"seed": 17}
    if name == "siblings":
        kw["faults"] = EmulatorConfig.parse_faults(["reset_after_create=0.5", "late=0.3"])
    elif name in ("clock_fast", "clock_slow"):
        kw["faults"] = EmulatorConfig.parse_faults(["reset_after_create=0.5"])
        kw["clock_offset"] = -3600.0 if name == "clock_fast" else 3600.0
    elif name == "two_folders":
        kw["faults"] = EmulatorConfig.parse_faults(["reset_after_create=0.5"])
    elif name == "odd_answers":
        kinds = ("empty_id", "unknown_id", "no_task_id", "html_400", "html_200", "page_502", "reset_after_create")
        kw["faults"] = EmulatorConfig.parse_faults([f"{k}=0.08" for k in kinds])
    with emulator(**kw) as emu:
        manifest = _sweep(work / "m.yaml", jobs) if name == "siblings" else write_manifest(work / "m.yaml", jobs)
        outs = [work / "out1", work / "out2"] if name == "two_folders" else [work / "out"]
        timer = None
        if name == "list_outage":  # 20 s of 503s from the list while half the answers are lost
            emu.state.faults.replace((parse_fault("503@list=1"), parse_fault("reset_after_create=0.5")))
            timer = threading.Timer(20.0, emu.state.faults.replace, args=((parse_fault("reset_after_create=0.5"),),))
        elif name == "query_outage":  # 25 s of 503s from queries and the list
            emu.state.faults.replace((parse_fault("503@query=1"), parse_fault("503@list=1")))
            timer = threading.Timer(25.0, emu.state.faults.replace, args=((),))
        elif name == "proxy_404":  # a proxy's HTML 404 page on the first query of every task
            emu.state.faults.replace((parse_fault(f"404@query=1x{jobs}"),))
        if timer is not None:
            timer.start()
        t0 = time.monotonic()
        procs = [_run(emu, manifest, out, env) for out in outs]
        rcs = [p.wait(timeout=900) for p in procs]
        runs = 1
        if any(rcs):  # at most one plain resume
            procs = [_run(emu, manifest, out, env) for out in outs]
            rcs = [p.wait(timeout=900) for p in procs]
            runs = 2
        wall = time.monotonic() - t0
        if timer is not None:
            timer.cancel()
        return _figures(emu, outs, rcs, wall, runs)


def sigkill_siblings(work: Path, *, jobs: int, kills: int, seed: int = 5) -> dict[str, Any]:
    """The sibling case killed with SIGKILL at random moments, then resumed to the end."""
    import random

    work.mkdir(parents=True, exist_ok=True)
    env = child_env(XDG_STATE_HOME=str(work / "state"))
    faults = EmulatorConfig.parse_faults(["reset_after_create=0.4", "late=0.3"])
    with emulator(seed=seed, task_time=3600.0, faults=faults) as emu:
        manifest = _sweep(work / "m.yaml", jobs)
        out = work / "out"
        rng = random.Random(seed)
        t0 = time.monotonic()
        done = 0
        for _ in range(kills):
            proc = _run(emu, manifest, out, env)
            time.sleep(rng.uniform(0.8, 3.0))
            if proc.poll() is not None:
                break
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
            done += 1
        rc = _run(emu, manifest, out, env).wait(timeout=900)
        r = _figures(emu, [out], [rc], time.monotonic() - t0, 1)  # one run after the kills
        r["kills"] = done
        return r


CASES = ("siblings", "clock_fast", "clock_slow", "two_folders", "odd_answers", "list_outage", "query_outage",
         "proxy_404")  # fmt: skip


def all_cases(work: Path, quick: bool) -> dict[str, Any]:
    jobs = 10 if quick else 30
    out: dict[str, Any] = {name: case(work / name, name, jobs=jobs) for name in CASES}
    out["sigkill_siblings"] = sigkill_siblings(work / "sigkill", jobs=8 if quick else 20, kills=4 if quick else 10)
    return out


def passed(r: dict[str, Any]) -> bool:
    return (
        r["wrong_videos"] == 0
        and r["overpaid_bodies"] == 0
        and r["unsaved"] == 0
        and r["failed"] == 0
        and r["tracebacks"] == 0
        and r["saved"] == r["paid"]
        and r["runs"] <= 2
    )
