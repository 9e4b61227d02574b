"""The peer: what a user writes with the official SDK, as its docs teach it.

``VideoSynthesis.async_call`` → ``VideoSynthesis.wait`` → ``requests.get(video_url)`` to a file, one job per
call, in a ``ThreadPoolExecutor`` of C threads. The one addition to the docs' pattern is the least a user
must add to finish a batch under a quota: a create answered 429 is sent again after one second (the docs'
example would just print the error and lose the job). Nothing else is tuned: the SDK's own poll schedule
(1 s, doubling every 3 polls, at most 5 s, in real seconds) is used as shipped.

    python -m bench.peer_sdk --base-url URL --jobs jobs.json --threads 5 --out DIR --result result.json

The key comes from ``DASHSCOPE_API_KEY`` (the SDK reads it). ``jobs.json`` is a list of
``{"name", "model", "prompt", "size", "duration", "seed"}``; the result is one JSON object with a row per
job (epoch seconds: submit start, answered, seen final, downloaded; the server's submit/end times).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from pathlib import Path
from typing import Any

import dashscope
import requests
from dashscope import VideoSynthesis


def run_job(job: dict[str, Any], out: Path, counters: dict[str, int]) -> dict[str, Any]:
    row: dict[str, Any] = {"name": job["name"], "t_submit": time.time()}
    while True:
        rsp = VideoSynthesis.async_call(
            model=job["model"],
            prompt=job["prompt"],
            size=job["size"],
            duration=job["duration"],
            seed=job["seed"],
            prompt_extend=False,
        )
        if rsp.status_code == HTTPStatus.OK:
            break
        if rsp.status_code == HTTPStatus.TOO_MANY_REQUESTS:
            counters["create_429"] += 1
            time.sleep(1.0)
            continue
        row["error"] = f"{rsp.status_code} {rsp.code} {rsp.message}"
        return row
    row["t_submitted"] = time.time()
    rsp = VideoSynthesis.wait(rsp)
    row["t_seen"] = time.time()
    if rsp.status_code != HTTPStatus.OK or rsp.output.task_status != "SUCCEEDED":
        row["error"] = f"{rsp.status_code} {rsp.code} {getattr(rsp.output, 'task_status', None)}"
        return row
    row["submit_time"] = rsp.output.submit_time
    row["end_time"] = rsp.output.end_time
    r = requests.get(rsp.output.video_url, timeout=60)
    r.raise_for_status()
    (out / f"{job['name']}.mp4").write_bytes(r.content)
    row["t_done"] = time.time()
    row["bytes"] = len(r.content)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--jobs", required=True)
    ap.add_argument("--threads", type=int, default=5)
    ap.add_argument("--out", required=True)
    ap.add_argument("--result", required=True)
    args = ap.parse_args(argv)
    if not os.environ.get("DASHSCOPE_API_KEY"):
        raise SystemExit("set DASHSCOPE_API_KEY")
    dashscope.base_http_api_url = args.base_url
    jobs = json.loads(Path(args.jobs).read_text(encoding="utf-8"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    counters = {"create_429": 0}
    t0 = time.time()
    with ThreadPoolExecutor(max_workers=args.threads) as pool:
        rows = list(pool.map(lambda j: run_job(j, out, counters), jobs))
    result = {"t_start": t0, "t_end": time.time(), "rows": rows, **counters}
    Path(args.result).write_text(json.dumps(result), encoding="utf-8")
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
