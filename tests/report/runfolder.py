"""A realistic run output folder for the gallery tests: a ledger written by ``runner.store.ledger.LedgerWriter``,
real small H.264 MP4s made with PyAV, and sidecars — including two failure codes, a canceled, an expired,
a running job, a rewritten prompt and a prompt carrying HTML.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np

from runner.models import MODELS
from runner.store.ledger import LedgerWriter

XSS_PROMPT = '<script>alert(1)</script> A cat on a <b>piano</b> & "friends" in <img src=x onerror=alert(2)>'
REGION = "cn-beijing"


@dataclass(frozen=True)
class Job:
    name: str
    model: str
    size: str
    duration: int
    prompt: str
    end: str  # downloaded | failed | canceled | expired | running | succeeded
    seed: int | None = None
    shot_type: str | None = None
    actual_prompt: str | None = None
    code: str | None = None
    message: str | None = None
    stage: str = "task"
    gen_s: float = 180.0
    palette: tuple[tuple[int, int, int], tuple[int, int, int]] = ((20, 30, 70), (230, 120, 60))
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def job_id(self) -> str:
        return hashlib.sha256(self.name.encode()).hexdigest()[:16]

    @property
    def cost(self) -> float:
        return MODELS[self.model].cost(REGION, self.size, self.duration)


JOBS: tuple[Job, ...] = (
    Job(
        "detective-new-york",
        "wan2.6-t2v",
        "1280*720",
        10,
        "A thrilling detective chase story with cinematic storytelling. Shot 1 [0–3 s]: Wide shot of a rainy "
        "New York street at night, neon lights flickering. Shot 2 [3–10 s]: Medium shot of the detective "
        "entering an old building.",
        "downloaded",
        seed=42,
        shot_type="multi",
        gen_s=287.1,
        palette=((8, 12, 40), (240, 60, 140)),
    ),
    Job(
        "detective-shanghai",
        "wan2.6-t2v",
        "1920*1080",
        15,
        "A thrilling detective chase story with cinematic storytelling. Shot 1 [0–5 s]: Wide shot of a rainy "
        "Shanghai street at night, neon lights flickering. Shot 2 [5–15 s]: The detective runs across the Bund.",
        "downloaded",
        seed=42,
        shot_type="multi",
        gen_s=402.6,
        palette=((10, 20, 50), (60, 200, 240)),
    ),
    Job(
        "harbor-dawn",
        "wan2.5-t2v-preview",
        "832*480",
        5,
        "Fishing boats leaving a quiet harbor at dawn, mist on the water.",
        "downloaded",
        actual_prompt="A serene harbor at dawn: wooden fishing boats glide out through soft morning mist, warm "
        "golden light breaking over the horizon, gentle ripples, slow dolly shot, cinematic color grading.",
        gen_s=96.4,
        palette=((250, 170, 90), (70, 90, 140)),
    ),
    Job(
        "desert-caravan",
        "wan2.1-t2v-turbo",
        "1280*720",
        5,
        "A camel caravan crossing red dunes under a blazing sun.",
        "downloaded",
        actual_prompt="A long camel caravan crosses towering red sand dunes beneath a blazing midday sun, heat "
        "haze shimmering, wide aerial tracking shot.",
        seed=7,
        gen_s=61.0,
        palette=((250, 200, 120), (190, 70, 30)),
    ),
    Job(
        "html-in-prompt",
        "wan2.6-t2v",
        "1280*720",
        5,
        XSS_PROMPT,
        "downloaded",
        seed=3,
        gen_s=140.0,
        palette=((30, 60, 40), (200, 230, 120)),
    ),
    Job(
        "portrait-forest",
        "wan2.5-t2v-preview",
        "480*832",
        5,
        "Vertical video: sunlight through tall pine trees, a deer looks up.",
        "downloaded",
        gen_s=118.2,
        palette=((20, 70, 40), (220, 240, 170)),
    ),
    Job(
        "bad-size",
        "wan2.6-t2v",
        "1280*720",
        5,
        "A lighthouse in a storm.",
        "failed",
        code="InvalidParameter",
        message="The size is not match the model, allowed: 1280*720, 1920*1080",
        stage="submit",
    ),
    Job(
        "bad-duration",
        "wan2.6-t2v",
        "1920*1080",
        12,
        "Slow pan over a snowy mountain village.",
        "failed",
        code="InvalidParameter",
        message="duration must be in [2, 15]",
        stage="submit",
    ),
    Job(
        "red-carpet",
        "wan2.2-t2v-plus",
        "1920*1080",
        5,
        "A crowded premiere on a red carpet, flashbulbs everywhere.",
        "failed",
        code="DataInspectionFailed",
        message="Output data may contain inappropriate content.",
    ),
    Job(
        "ocean-timelapse",
        "wan2.6-t2v",
        "1280*720",
        8,
        "Timelapse of clouds over a dark ocean.",
        "canceled",
    ),
    Job(
        "old-city-tour",
        "wan2.1-t2v-plus",
        "1280*720",
        5,
        "A tram climbing a steep street of an old European city.",
        "expired",
        gen_s=75.0,
    ),
    Job(
        "moon-landing",
        "wan2.6-t2v",
        "1920*1080",
        6,
        "An astronaut plants a flag, earth rising behind.",
        "running",
    ),
)


def _task_time(epoch: float) -> str:
    """The API's task time: ``YYYY-MM-DD HH:mm:ss.SSS`` in UTC+8."""
    from datetime import UTC, datetime, timedelta

    t = datetime.fromtimestamp(epoch, UTC) + timedelta(hours=8)
    return t.strftime("%Y-%m-%d %H:%M:%S.") + f"{t.microsecond // 1000:03d}"


Palette = tuple[tuple[int, int, int], tuple[int, int, int]]


def make_mp4(path: Path, size: str, palette: Palette, seconds: int = 2) -> None:
    """A small real H.264 MP4: a sky gradient, a moving sun and a skyline, scaled down from ``size``."""
    w, h = (int(x) for x in size.split("*"))
    scale = 256 / max(w, h)
    w, h = max(2, round(w * scale / 2) * 2), max(2, round(h * scale / 2) * 2)
    top, bottom = (np.array(c, dtype=np.float32) for c in palette)
    ys = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    sky = np.broadcast_to(top * (1 - ys) + bottom * ys, (h, w, 3)).copy()
    rng = np.random.default_rng(sum(palette[0]) * 31 + sum(palette[1]))
    skyline = np.full(w, h, dtype=np.int32)
    x = 0
    while x < w:
        bw = int(rng.integers(w // 20 + 1, w // 8 + 2))
        skyline[x : x + bw] = h - int(rng.integers(h // 8, h // 3))
        x += bw
    yy, xx = np.mgrid[0:h, 0:w]
    fps = 12
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"preset": "ultrafast", "threads": "1"}  # deterministic bytes
        for i in range(fps * seconds):
            t = i / (fps * seconds)
            frame = sky.copy()
            cx, cy, r = w * (0.25 + 0.5 * t), h * (0.45 - 0.1 * t), min(w, h) / 9
            disc = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
            frame[disc] = (255, 240, 200)
            frame[yy >= skyline[None, :]] = top * 0.35
            img = av.VideoFrame.from_ndarray(frame.clip(0, 255).astype(np.uint8), format="rgb24")
            for packet in stream.encode(img):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def _events(job: Job, t0: float, videos: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """The ledger lines of one job, as the pipeline writes them (ARCHITECTURE.md's table)."""
    w, h = job.size.split("*")
    params: dict[str, Any] = {"size": job.size, "duration": job.duration}
    if job.seed is not None:
        params["seed"] = job.seed
    if job.shot_type:
        params["shot_type"] = job.shot_type
        params["prompt_extend"] = True
    request = {"model": job.model, "input": {"prompt": job.prompt, **job.extra.get("input", {})}, "parameters": params}
    yield (
        "planned",
        {
            "name": job.name,
            "model": job.model,
            "request": request,
            "size": job.size,
            "duration": job.duration,
            "seed": job.seed,
            "seconds": job.duration,
            "cost": job.cost,
        },
    )
    yield "submitting", {"attempt": 1, "model": job.model}
    rid = f"req-{job.job_id[:8]}-0001"
    if job.end == "failed" and job.stage == "submit":
        yield "failed", {"stage": "submit", "code": job.code, "message": job.message, "request_id": rid}
        return
    task = f"task-{job.job_id[:8]}-{job.job_id[8:12]}"
    yield "submitted", {"task_id": task, "request_id": rid, "adopted": False}
    yield "task.status", {"task_id": task, "status": "RUNNING"}
    if job.end == "running":
        return
    if job.end == "canceled":
        yield "canceled", {"task_id": task}
        return
    if job.end == "failed":
        yield "failed", {"stage": "task", "code": job.code, "message": job.message, "request_id": rid, "task_id": task}
        return
    usage = {"duration": job.duration, "size": job.size, "output_video_duration": job.duration, "video_count": 1}
    yield (
        "succeeded",
        {
            "task_id": task,
            "video_url": f"https://dashscope-result.example/{task}.mp4?Expires=1",
            "url_expires": t0 + 86400,
            "usage": usage,
            "orig_prompt": job.prompt,
            "actual_prompt": job.actual_prompt,
            "submit_time": _task_time(t0),
            "scheduled_time": _task_time(t0 + 6.9),
            "end_time": _task_time(t0 + job.gen_s),
        },
    )
    if job.end == "expired":
        yield "expired", {"task_id": task}
        return
    seed = str(job.seed) if job.seed is not None else "rnd"
    stem = f"{job.name}__{w}x{h}__{job.duration}s__{seed}__{job.job_id[:8]}"
    video = videos / f"{stem}.mp4"
    make_mp4(video, job.size, job.palette)
    data = video.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    sidecar = {
        "job_id": job.job_id,
        "name": job.name,
        "request": request,
        "task_id": task,
        "actual_prompt": job.actual_prompt,
        "usage": usage,
        "timings": {"submit_time": _task_time(t0), "end_time": _task_time(t0 + job.gen_s), "download_s": 1.8},
        "sha256": digest,
        "bytes": len(data),
    }
    video.with_suffix(".json").write_text(json.dumps(sidecar, ensure_ascii=False, indent=2), encoding="utf-8")
    yield "downloaded", {"path": f"videos/{stem}.mp4", "bytes": len(data), "sha256": digest}


def build_run(out: Path, jobs: tuple[Job, ...] = JOBS, name: str = "detective-trailer") -> Path:
    """Write the output folder of a finished run into ``out`` (a ledger, videos, sidecars); returns ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    clock = [1_795_000_000.0]

    def now() -> float:
        clock[0] += 0.25
        return clock[0]

    async def write() -> None:
        async with LedgerWriter(out / "ledger.jsonl", clock=now) as ledger:
            await ledger.append(
                "run.started",
                None,
                run_id="run-20261125-0001",
                name=name,
                manifest="examples/detective.yaml",
                region=REGION,
                base_url="http://127.0.0.1:8000/api/v1",
                pid=4242,
                version="0.1.0",
            )
            for i, job in enumerate(jobs):
                for event, fields in _events(job, clock[0] + i * 3, out / "videos"):
                    await ledger.append(event, job.job_id, **fields)
            await ledger.append("run.finished", None, exit_code=1, counts={})

    asyncio.run(write())
    (out / "manifest.yaml").write_text(f"version: 1\nname: {name}\n", encoding="utf-8")
    return out
