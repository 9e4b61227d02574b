"""Local audio files (issue 19): an ``audio_url`` that names a file on this machine instead of a URL.

A value is a local file when it is a ``file://`` URL or has no URL scheme at all (a path; relative paths are
read from the manifest's folder, ``~`` is the home folder). ``AudioFiles`` checks each distinct file once per
load, as the service would take it (API.md §1.3, ``runner.models``): it exists, it is at most
``AUDIO_MAX_BYTES``, PyAV reads it as a wav or an mp3 with an audio stream, and it lasts from
``AUDIO_MIN_SECONDS`` to ``AUDIO_MAX_SECONDS``. Its SHA-256 then stands for it in the job's id (``expand.job_id``):
the same sound is the same job wherever the file lives, and the temporary URL a run uploads it to never enters
the id. The request body carries the file's absolute ``file://`` URL; the run uploads the file and sends the
``oss://`` URL instead (``runner.engine.uploads``).

PyAV is imported only when a manifest names a local file: ``plan`` of every other manifest does not pay for it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

from runner.manifest.issues import IssueSink, path_str
from runner.manifest.issues import Path as YamlPath
from runner.models import AUDIO_FORMATS, AUDIO_MAX_BYTES, AUDIO_MAX_SECONDS, AUDIO_MIN_SECONDS

#: ``scheme://`` at the start of a value: a URL, not a path.
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
#: The URL schemes the service fetches itself.
REMOTE_SCHEMES = ("http://", "https://", "oss://")


@dataclass(frozen=True, slots=True)
class LocalAudio:
    """A checked local audio file: what the plan shows and what the job's id is made from."""

    path: str  # absolute
    sha256: str  # of the file's bytes
    bytes: int
    seconds: float
    format: str  # one of AUDIO_FORMATS

    @property
    def uri(self) -> str:
        """The file's ``file://`` URL: what the request body carries until the run uploads the file."""
        return Path(self.path).as_uri()

    def describe(self) -> dict[str, Any]:
        """The file as ``plan --json`` shows it."""
        return {
            "file": self.path,
            "sha256": self.sha256,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "format": self.format,
        }


def is_local(value: str) -> bool:
    """Whether an ``audio_url`` value names a local file (``file://`` or no scheme) rather than a URL."""
    return value.startswith("file://") or _SCHEME.match(value) is None


def scheme_ok(value: str) -> bool:
    """An ``audio_url`` the run can send: a URL the service fetches, or a local file."""
    return value.startswith(REMOTE_SCHEMES) or is_local(value)


def local_path(value: str, base_dir: Path) -> Path:
    """The absolute path a local ``audio_url`` names. ``file:///abs/voice.wav`` is that path; ``file://voice.wav``
    (the official SDK reads host + path, so a relative one) and a bare path are relative to ``base_dir``."""
    if value.startswith("file://"):
        parts = urlsplit(value)
        host = "" if parts.netloc in ("", "localhost") else parts.netloc
        value = url2pathname(host + parts.path)
    return (base_dir / Path(value).expanduser()).resolve()


def probe(path: Path) -> LocalAudio | str:
    """``path`` checked as the service would take it: the ``LocalAudio``, or what is wrong with it."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return f"the audio file {path} does not exist"
    except OSError as e:
        return f"the audio file {path} cannot be read ({e.strerror or e})"
    if not path.is_file():
        return f"the audio file {path} is not a file"
    if size > AUDIO_MAX_BYTES:
        return f"the audio file {path} is {_mb(size)}; at most {_mb(AUDIO_MAX_BYTES)}"
    kind = _read_audio(path)
    if isinstance(kind, str):
        return kind
    fmt, seconds = kind
    if not AUDIO_MIN_SECONDS <= seconds <= AUDIO_MAX_SECONDS:
        return (
            f"the audio file {path} lasts {seconds:.1f} s; it must last {AUDIO_MIN_SECONDS:g} to "
            f"{AUDIO_MAX_SECONDS:g} s (longer than the video: cut to its duration; shorter: the rest is silent)"
        )
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return LocalAudio(str(path), digest.hexdigest(), size, seconds, fmt)


def _read_audio(path: Path) -> tuple[str, float] | str:
    """(container format, seconds) as PyAV reads the file, or what is wrong with it."""
    import av  # only for manifests that name a local file

    allowed = " or ".join(AUDIO_FORMATS)
    try:
        with av.open(str(path), "r") as container:
            names = set(container.format.name.split(","))
            if not container.streams.audio:
                return f"the file {path} holds no audio; it must be {allowed}"
            fmt = next((f for f in AUDIO_FORMATS if f in names), None)
            if fmt is None:
                return f"the audio file {path} is {container.format.name}; it must be {allowed}"
            seconds = _seconds(container)
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as e:
        return f"the file {path} is not audio PyAV can read ({type(e).__name__}); it must be {allowed}"
    if seconds is None:
        return f"the length of the audio file {path} cannot be read"
    return fmt, seconds


def _seconds(container: Any) -> float | None:
    """The container's duration, else its audio stream's."""
    if container.duration is not None and container.duration > 0:
        return float(container.duration) / 1_000_000  # AV_TIME_BASE
    stream = container.streams.audio[0]
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return None


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


class AudioFiles:
    """The local audio files of one load: each distinct file checked once (its result kept), every job that names
    it told at the place that names it (the sink reports one place once)."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self._checked: dict[Path, LocalAudio | str] = {}

    def check(self, sink: IssueSink, value: str, path: YamlPath) -> LocalAudio | None:
        """The checked file ``value`` names (written at ``path``), or None (reported)."""
        file = local_path(value, self.base_dir)
        result = self._checked.get(file)
        if result is None:
            result = self._checked[file] = probe(file)
        if isinstance(result, str):
            sink.error(path, path_str(path), result)
            return None
        return result

    @property
    def files(self) -> list[LocalAudio]:
        """The files that passed, in the order they were first named."""
        return [a for a in self._checked.values() if isinstance(a, LocalAudio)]
