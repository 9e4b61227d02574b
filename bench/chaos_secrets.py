"""Chaos 5, secrets and paths: the key in no file, stream or argv at any log level; names cannot escape
the output folder; plain-http downloads to other hosts are refused; an oversized download is stopped."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench.chaos_common import KEY, emulator, has_traceback, reap, run_cli, runner_argv, spawn, write_manifest
from runner.emulator.config import EmulatorConfig
from runner.errors import DownloadRefused
from runner.store.download import check_url, download
from runner.store.files import video_filename

ESCAPES = ["../../etc/passwd", "/etc/passwd", "..", "a/../../b", "..\\..\\win", "~/x", "a\x00b", "./../x"]


def _argv_has_key(pid: int) -> bool | None:
    try:
        return KEY.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None


def _files_with_key(out: Path) -> list[str]:
    return [str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]


def secrets(work: Path, *, jobs: int = 10) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    leaks: list[str] = []
    argv_checked = 0
    faults = EmulatorConfig.parse_faults(("500=0.1", "reset=0.1", "truncate=0.1", "fail=0.1"))
    with emulator(faults=faults, seed=3) as emu:
        for level, flags in (("default", []), ("-v", ["-v"]), ("-vv", ["-vv"])):
            manifest = write_manifest(work / f"m{level}.yaml", jobs, name="secrets", tag=f" {level}")
            out = work / f"out{level}"
            args = [*flags, "run", str(manifest), "--out", str(out), "--base-url", emu.base_url]
            t0 = time.monotonic()
            proc = spawn(runner_argv(*args), work, f"sec{level}")
            time.sleep(0.5)
            seen = _argv_has_key(proc.pid)
            if seen is not None:
                argv_checked += 1
                if seen:
                    leaks.append(f"argv at {level}")
            res = reap(proc, t0, work, f"sec{level}", timeout=120)
            if KEY in res.out or KEY in res.err:
                leaks.append(f"stdout/stderr at {level}")
            leaks += [f"{f} at {level}" for f in _files_with_key(out)]
            for cmd in (["status", str(out)], ["report", str(out)]):
                r = run_cli(*flags, *cmd, cwd=work, log=f"sec_{cmd[0]}{level}", timeout=60)
                if KEY in r.out or KEY in r.err:
                    leaks.append(f"{cmd[0]} output at {level}")
    # a key the server refuses: the 401 message must not echo it
    with emulator(api_keys=("sk-someOtherKey123",)) as emu:
        manifest = write_manifest(work / "m401.yaml", 2, name="denied")
        r = run_cli(
            "run",
            str(manifest),
            "--out",
            str(work / "out401"),
            "--base-url",
            emu.base_url,
            cwd=work,
            log="sec401",
            timeout=60,
        )
        if KEY in r.out or KEY in r.err:
            leaks.append("401 output")
        leaks += [f"{f} after 401" for f in _files_with_key(work / "out401")]
        denied_rc, denied_tb = r.rc, has_traceback(r.err)
    return {
        "key_leaks": leaks,
        "argv_checked": argv_checked,
        "denied_rc": denied_rc,
        "denied_traceback": denied_tb,
        **paths(work),
        **asyncio.run(_downloads(work)),
    }


def paths(work: Path) -> dict[str, Any]:
    """Job names that try to leave the output folder: refused by ``plan``, or made into a plain file name."""
    refused = contained = escaped = 0
    for i, name in enumerate(ESCAPES):
        manifest = work / f"esc{i}.yaml"
        manifest.write_text(
            f"version: 1\njobs:\n  - name: {name!r}\n    prompt: p\n    model: wan2.6-t2v\n".replace("'", '"'),
            encoding="utf-8",
        )
        r = run_cli("plan", str(manifest), cwd=work, log=f"esc{i}", timeout=60)
        file = video_filename(name, "1280*720", 5, None, "0123456789abcdef")
        inside = "/" not in file and "\\" not in file and not file.startswith(".") and "\x00" not in file
        if r.rc == 2 and not has_traceback(r.err):
            refused += 1
        elif inside:
            contained += 1
        else:
            escaped += 1
    return {"escape_names_refused": refused, "escape_names_contained": contained, "escape_names_escaped": escaped}


async def _downloads(work: Path) -> dict[str, Any]:
    """http:// to a non-loopback host refused before any connection; a body over the cap stopped."""
    refused = 0
    urls = ["http://example.com/v.mp4", "http://10.0.0.1/v.mp4", "ftp://127.0.0.1/v", "file:///etc/passwd"]
    for url in urls:
        try:
            check_url(url)
        except DownloadRefused:
            refused += 1
    app = web.Application()

    async def big(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()  # no Content-Length: the cap must stop the stream itself
        await resp.prepare(request)
        for _ in range(64):
            await resp.write(b"\0" * 65536)
        return resp

    async def hop(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("http://example.com/v.mp4")

    app.router.add_get("/big", big)
    app.router.add_get("/hop", hop)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    capped = redirect_refused = False
    try:
        async with aiohttp.ClientSession() as s:
            try:
                await download(s, f"http://127.0.0.1:{port}/big", work / "big.mp4", expect=None, max_bytes=1 << 20)
            except DownloadRefused:
                capped = not (work / "big.mp4").exists() and not (work / "big.mp4.part").exists()
            try:
                await download(s, f"http://127.0.0.1:{port}/hop", work / "hop.mp4", expect=None)
            except DownloadRefused:
                redirect_refused = True
    finally:
        await runner.cleanup()
    return {
        "non_https_refused": f"{refused}/{len(urls)}",
        "redirect_to_http_refused": redirect_refused,
        "oversize_stopped": capped,
    }


def passed(r: dict[str, Any]) -> bool:
    return (
        not r["key_leaks"]
        and r["argv_checked"] == 3
        and not r["denied_traceback"]
        and r["escape_names_escaped"] == 0
        and r["non_https_refused"].split("/")[0] == r["non_https_refused"].split("/")[1]
        and r["redirect_to_http_refused"]
        and r["oversize_stopped"]
    )


if __name__ == "__main__":
    import json
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        res = secrets(Path(d))
        print(json.dumps(res, indent=1), passed(res))
