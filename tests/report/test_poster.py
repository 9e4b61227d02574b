"""Poster frames: the middle frame, scaled without upscaling, JPEG, beside the video; never an exception."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from runner.report.poster import ensure_poster, poster_jpeg, poster_path


def _ramp(path: Path, width: int, height: int, frames: int = 48, fps: int = 12, keyint: int = 250) -> None:
    """A clip whose frame ``i`` is uniformly grey at level ``i * 5`` (the poster's brightness says which)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "threads": "1", "g": str(keyint)}
        for i in range(frames):
            img = np.full((height, width, 3), i * 5, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def _decode(jpeg: bytes, tmp: Path) -> av.VideoFrame:
    p = tmp / "poster.jpg"
    p.write_bytes(jpeg)
    with av.open(str(p)) as c:
        return next(c.decode(video=0))


def _level(frame: av.VideoFrame) -> float:
    return float(frame.to_ndarray(format="gray").mean())


def test_the_poster_is_the_middle_frame_even_far_from_a_keyframe(tmp_path: Path) -> None:
    clip = tmp_path / "ramp.mp4"
    _ramp(clip, 320, 180)  # one keyframe at 0: the middle must be decoded forward to
    level = _level(_decode(poster_jpeg(clip), tmp_path))
    assert abs(level - 24 * 5) <= 8, level  # frame 24 of 48 (JPEG and YUV rounding allowed)


def test_the_poster_keeps_the_aspect_and_never_upscales(tmp_path: Path) -> None:
    wide, tall = tmp_path / "wide.mp4", tmp_path / "tall.mp4"
    _ramp(wide, 1280, 720, frames=4)
    _ramp(tall, 144, 256, frames=4)
    big = _decode(poster_jpeg(wide), tmp_path)
    assert (big.width, big.height) == (480, 270)
    small = _decode(poster_jpeg(tall), tmp_path)
    assert (small.width, small.height) == (144, 256)


def test_ensure_poster_writes_beside_the_video_and_survives_garbage(tmp_path: Path) -> None:
    clip = tmp_path / "videos" / "a__1280x720__5s__rnd__0123abcd.mp4"
    clip.parent.mkdir()
    _ramp(clip, 320, 180, frames=4)
    poster = ensure_poster(clip)
    assert poster == poster_path(clip) == clip.with_name("a__1280x720__5s__rnd__0123abcd.poster.jpg")
    assert poster.read_bytes()[:2] == b"\xff\xd8"
    assert not list(clip.parent.glob("*.tmp"))
    broken = tmp_path / "videos" / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42 but then nothing")
    assert ensure_poster(broken) is None
    assert not poster_path(broken).exists()
    assert ensure_poster(tmp_path / "videos" / "missing.mp4") is None
