"""Real MP4 files for the simulated tasks: H.264 of the requested size and duration, encoded once per
(width, height, duration, fps) off the event loop and cached; each task's copy differs by a trailing
top-level ``free`` box naming the task, so files can be told apart and still decode."""

from __future__ import annotations

import asyncio
import io
import struct
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

try:  # Pillow draws the frame captions; without it frames are plain colour fields.
    from PIL import Image, ImageDraw, ImageFont

    HAVE_PIL = True
except ImportError:  # pragma: no cover - Pillow is present in the dev environment
    HAVE_PIL = False


def free_box(payload: bytes) -> bytes:
    """An ISO-BMFF ``free`` box: players skip it, so appending one keeps the file valid."""
    return struct.pack(">I", 8 + len(payload)) + b"free" + payload


def task_box(task_id: str) -> bytes:
    return free_box(f"wanbatch-emulator task_id={task_id}\n".encode())


def _frame(width: int, height: int, second: int, duration: int, label: str) -> Any:
    """One RGB frame: a colour that changes every second, plus a caption when Pillow is available."""
    hue = (second * 47) % 200
    rgb = np.empty((height, width, 3), dtype=np.uint8)
    rgb[:] = (30 + hue // 2, 40, 60 + hue // 3)
    if not HAVE_PIL:
        return rgb
    img = Image.fromarray(rgb)
    draw = ImageDraw.Draw(img)
    size = max(12, height // 18)
    try:
        font: Any = ImageFont.load_default(size=size)
    except (TypeError, OSError):  # pragma: no cover - old Pillow without FreeType
        font = ImageFont.load_default()
    text = f"wanbatch emulator\n{label}\nsecond {second + 1} of {duration}"
    draw.multiline_text((width // 20, height // 3), text, fill=(235, 235, 235), font=font, spacing=size // 2)
    return np.asarray(img)


def encode_mp4(width: int, height: int, duration: int, fps: int = 1) -> bytes:
    """Encode ``duration`` seconds of H.264 at ``fps`` frames per second (ultrafast, low quality: cheap)."""
    import av  # imported here: only the first download of a size pays for loading the codec libraries

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width = width
        stream.height = height
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "38", "tune": "stillimage"}
        label = f"{width}*{height}, {duration} s"
        for second in range(duration):
            arr = _frame(width, height, second, duration, label)
            for _ in range(fps):
                frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
                for packet in stream.encode(frame):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()


class VideoCache:
    """Encoded videos by (width, height, duration); one encode per key even under concurrent first requests."""

    def __init__(self, fps: int = 1, workers: int = 1) -> None:
        self.fps = fps
        self._files: dict[tuple[int, int, int], asyncio.Future[bytes]] = {}
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="emulator-mp4")
        self.encoded = 0

    async def get(self, width: int, height: int, duration: int) -> bytes:
        key = (width, height, duration)
        fut = self._files.get(key)
        if fut is None:
            loop = asyncio.get_running_loop()
            fut = loop.run_in_executor(self._pool, encode_mp4, width, height, duration, self.fps)
            self._files[key] = fut
            fut.add_done_callback(lambda f: self._done(key, f))
        # shield: a caller that goes away must not cancel the encode others are waiting for
        return await asyncio.shield(fut)

    def _done(self, key: tuple[int, int, int], fut: asyncio.Future[bytes]) -> None:
        if fut.cancelled() or fut.exception() is not None:
            self._files.pop(key, None)  # the next request tries again
        else:
            self.encoded += 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
