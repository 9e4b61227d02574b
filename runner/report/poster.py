"""Poster frames for the gallery: one small JPEG per video, decoded and encoded with PyAV alone.

The gallery must show a picture for every clip without loading the videos, and without a second image
library: PyAV decodes the frame at the middle of the clip (the first frame of a generated video is often a
fade from black), scales it to a thumbnail and encodes it with FFmpeg's ``mjpeg`` encoder.

A run makes each poster as its video lands (``runner.engine.fetcher``, on the verify thread), so the gallery at the
end of the run finds them all fresh; ``wanbatch report`` makes whichever are missing.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av

POSTER_SUFFIX = ".poster.jpg"
POSTER_WIDTH = 480
#: Frames decoded at most between the keyframe and the middle (a 30 fps clip: 5 s of video, ~0.1 s of work).
MAX_DECODE = 150


def poster_path(video: Path) -> Path:
    """``videos/<stem>.mp4`` → ``videos/<stem>.poster.jpg``: beside the video, so relative links hold."""
    return video.with_name(video.stem + POSTER_SUFFIX)


def ensure_poster(video: Path, width: int = POSTER_WIDTH, *, codec_threads: bool = True) -> Path | None:
    """The poster of ``video``, made when missing or older than the video; None when it cannot be decoded.

    A broken or half-written video must not break the report, so every decoding error gives None.
    ``codec_threads=False`` decodes on the calling thread alone (see ``poster_jpeg``).
    """
    poster = poster_path(video)
    try:
        if poster.exists() and poster.stat().st_mtime_ns >= video.stat().st_mtime_ns:
            return poster
        data = poster_jpeg(video, width, codec_threads=codec_threads)
    except (OSError, av.FFmpegError, StopIteration, ValueError):
        return None
    tmp = poster.with_name(poster.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, poster)
    return poster


def _middle_pts(stream: av.video.stream.VideoStream, container_duration: int | None) -> int | None:
    """The middle of the clip in the stream's time base, or None when the file does not say its length."""
    tb = stream.time_base
    if stream.duration and tb:
        return int((stream.start_time or 0) + stream.duration // 2)
    if container_duration and tb:  # container.duration is in microseconds
        return int(container_duration / 2 / 1_000_000 / tb)
    return None


def poster_jpeg(video: Path, width: int = POSTER_WIDTH, *, codec_threads: bool = True) -> bytes:
    """JPEG bytes of the frame at the middle of ``video``, scaled to ``width`` (height keeps the aspect).

    ``codec_threads``: let FFmpeg decode on threads of its own (the gallery, waited for on the main thread).
    The run's background posters decode on their one thread instead: no threads started per video, every
    buffer in that thread's malloc arena, which its ``malloc_trim`` then empties (emulator clips, 300 in a
    row: 20 -> 12 ms each, RSS 47 -> 40 MB).
    """
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO" if codec_threads else "NONE"
        target = _middle_pts(stream, container.duration)
        if target:
            container.seek(target, stream=stream, backward=True)  # lands on the keyframe before it
        frame = None
        for n, frame in enumerate(container.decode(stream)):
            # decode forward from the keyframe to the middle, but never more than MAX_DECODE frames
            if target is None or frame.pts is None or frame.pts >= target or n >= MAX_DECODE:
                break
        if frame is None:
            raise ValueError(f"{video}: no video frame")
    width = min(width, frame.width) // 2 * 2  # never upscale
    height = max(2, round(frame.height * width / frame.width / 2) * 2)
    small = frame.reformat(width=width, height=height, format="yuvj420p")
    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width, encoder.height = width, height
    encoder.pix_fmt = "yuvj420p"
    encoder.time_base = Fraction(1, 25)
    encoder.options = {"qscale": "3"}
    packets = [*encoder.encode(small), *encoder.encode(None)]
    return b"".join(bytes(p) for p in packets)


def background_poster(video: Path) -> Path | None:
    """The run's poster maker (handed to the engine): FFmpeg decodes on the calling (verify) thread alone, see
    ``poster_jpeg``."""
    return ensure_poster(video, codec_threads=False)
