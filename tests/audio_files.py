"""Small audio files for the tests of local voice-overs (issue 19), made with PyAV: a quiet tone at 8 kHz mono, so a
4-s wav is 64 KB and an mp3 of it 4 KB; each takes milliseconds."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np

RATE = 8000


def audio_bytes(seconds: float, fmt: str = "wav", *, hz: float = 440.0) -> bytes:
    """``seconds`` of a sine tone as a ``fmt`` file ("wav", "mp3" or "flac"); ``hz`` makes different content."""
    codec = {"wav": "pcm_s16le", "mp3": "libmp3lame", "flac": "flac"}[fmt]
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=RATE)
        stream.layout = "mono"
        n = round(seconds * RATE)
        samples = (np.sin(2 * np.pi * hz * np.arange(n) / RATE) * 6000).astype(np.int16)
        planar = fmt == "mp3"  # LAME takes planar samples
        step = 1152
        for start in range(0, n, step):
            chunk = samples[start : start + step].reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(chunk, format="s16p" if planar else "s16", layout="mono")
            frame.sample_rate = RATE
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buf.getvalue()


def write_audio(path: Path, seconds: float = 4.0, fmt: str = "wav", *, hz: float = 440.0) -> Path:
    path.write_bytes(audio_bytes(seconds, fmt, hz=hz))
    return path


def write_big(path: Path, size: int) -> Path:
    """A 4-s wav padded with zeros to ``size`` bytes (sparse: no disk is used for the padding)."""
    write_audio(path, 4.0)
    with path.open("r+b") as f:
        f.truncate(size)
    return path
