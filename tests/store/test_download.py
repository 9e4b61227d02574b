"""Downloads against a real aiohttp server on 127.0.0.1 serving a real MP4."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import aiohttp
import pytest

from runner.errors import DownloadError, DownloadRefused, UrlExpired, VerifyError
from runner.store.download import DownloadResult, Retry, check_url, download, url_expiry
from runner.store.files import sha256_file, video_filename, write_sidecar
from runner.store.mp4 import Expect, verify_mp4
from tests.store.conftest import make_mp4

EXPECT = Expect(320, 180, 2.0)


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


async def fetch(url: str, dest: Path, **kw: object) -> DownloadResult:
    sleeps = kw.pop("sleep", None) or Sleeps()
    async with aiohttp.ClientSession() as session:
        return await download(session, url, dest, sleep=sleeps, jitter=lambda: 0.0, **kw)  # type: ignore[arg-type]


async def test_success_hash_size_and_no_credentials(storage, mp4: bytes, tmp_path: Path) -> None:
    st, server = storage
    st.bodies["/v.mp4"] = mp4
    dest = tmp_path / "videos" / "a.mp4"
    res = await fetch(st.url(server, "/v.mp4"), dest, expect=EXPECT)
    assert res.path == dest and dest.read_bytes() == mp4
    assert res.bytes == len(mp4)
    assert res.sha256 == hashlib.sha256(mp4).hexdigest() == sha256_file(dest)
    assert res.attempts == 1 and not res.resumed
    assert not (tmp_path / "videos" / "a.mp4.part").exists()
    assert all("Authorization" not in h for _, h in st.requests)
    assert st.requests[0][1]["Accept-Encoding"] == "identity"


async def test_truncated_body_is_resumed_with_range(storage, mp4: bytes, tmp_path: Path) -> None:
    st, server = storage
    st.bodies["/v.mp4"] = mp4
    st.script["/v.mp4"] = ["truncate"]
    sleeps = Sleeps()
    res = await fetch(st.url(server, "/v.mp4"), tmp_path / "a.mp4", expect=EXPECT, sleep=sleeps, chunk_size=128)
    assert res.attempts == 2 and res.resumed
    assert res.sha256 == hashlib.sha256(mp4).hexdigest()
    assert (tmp_path / "a.mp4").read_bytes() == mp4
    assert "Range" not in st.requests[0][1]
    rng = st.requests[1][1]["Range"]  # resumes at what arrived before the drop (aiohttp may keep less)
    assert rng.startswith("bytes=") and 0 < int(rng[6:-1]) <= len(mp4) // 2
    assert len(sleeps.delays) == 1


async def test_server_ignoring_range_restarts_from_zero(storage, mp4: bytes, tmp_path: Path) -> None:
    st, server = storage
    st.bodies["/v.mp4"] = mp4
    st.script["/v.mp4"] = ["truncate", "norange"]
    res = await fetch(st.url(server, "/v.mp4"), tmp_path / "a.mp4", expect=EXPECT)
    assert st.requests[1][1]["Range"].startswith("bytes=")
    assert not res.resumed and res.bytes == len(mp4)
    assert (tmp_path / "a.mp4").read_bytes() == mp4


async def test_chunked_answer_without_length_is_accepted(storage, mp4: bytes, tmp_path: Path) -> None:
    st, server = storage
    st.bodies["/v.mp4"] = mp4
    st.script["/v.mp4"] = ["chunked"]
    res = await fetch(st.url(server, "/v.mp4"), tmp_path / "a.mp4", expect=EXPECT)
    assert res.sha256 == hashlib.sha256(mp4).hexdigest()


async def test_403_is_url_expired_and_not_retried(storage, mp4: bytes, tmp_path: Path) -> None:
    st, server = storage
    st.bodies["/v.mp4"] = mp4
    st.script["/v.mp4"] = ["403"]
    with pytest.raises(UrlExpired):
        await fetch(st.url(server, "/v.mp4"), tmp_path / "a.mp4", expect=EXPECT)
    assert len(st.requests) == 1
    assert names(tmp_path) == []


async def test_expires_in_the_past_needs_no_request(storage, mp4: bytes, tmp_path: Path) -> None:
    st, server = storage
    st.bodies["/v.mp4"] = mp4
    url = st.url(server, "/v.mp4", "Expires=1000&OSSAccessKeyId=x&Signature=y")
    with pytest.raises(UrlExpired):
        await fetch(url, tmp_path / "a.mp4", expect=EXPECT, now=lambda: 1000.5)
    assert st.requests == []
    res = await fetch(url, tmp_path / "a.mp4", expect=EXPECT, now=lambda: 999.0)
    assert res.bytes == len(mp4)


async def test_server_errors_retried_with_backoff_then_give_up(storage, mp4: bytes, tmp_path: Path) -> None:
    st, server = storage
    st.bodies["/v.mp4"] = mp4
    st.script["/v.mp4"] = ["500"] * 10
    sleeps = Sleeps()
    with pytest.raises(DownloadError) as ei:
        await fetch(st.url(server, "/v.mp4"), tmp_path / "a.mp4", expect=EXPECT, sleep=sleeps, retry=Retry(4, 1, 3))
    assert type(ei.value) is DownloadError and "4 attempts" in str(ei.value)
    assert len(st.requests) == 4
    assert sleeps.delays == [0.5, 1.0, 1.5]  # 1, 2, 4 capped at 3; jitter 0 halves each
    assert names(tmp_path) == []


async def test_one_server_error_then_success(storage, mp4: bytes, tmp_path: Path) -> None:
    st, server = storage
    st.bodies["/v.mp4"] = mp4
    st.script["/v.mp4"] = ["500"]
    ticks = iter([100.0, 107.5])
    res = await fetch(st.url(server, "/v.mp4"), tmp_path / "a.mp4", expect=EXPECT, clock=lambda: next(ticks))
    assert res.attempts == 2 and res.bytes == len(mp4)
    assert res.seconds == 7.5  # from the injected clock


async def test_404_is_a_download_error_without_retry(storage, tmp_path: Path) -> None:
    st, server = storage
    with pytest.raises(DownloadError) as ei:
        await fetch(st.url(server, "/missing.mp4"), tmp_path / "a.mp4", expect=EXPECT)
    assert "404" in str(ei.value) and len(st.requests) == 1


async def test_size_cap_from_content_length(storage, mp4: bytes, tmp_path: Path) -> None:
    st, server = storage
    st.bodies["/v.mp4"] = mp4
    with pytest.raises(DownloadRefused, match="cap"):
        await fetch(st.url(server, "/v.mp4"), tmp_path / "a.mp4", expect=EXPECT, max_bytes=len(mp4) - 1)
    assert names(tmp_path) == []


async def test_size_cap_while_streaming_without_length(storage, mp4: bytes, tmp_path: Path) -> None:
    st, server = storage
    st.bodies["/v.mp4"] = mp4
    st.script["/v.mp4"] = ["chunked"]
    with pytest.raises(DownloadRefused, match="cap"):
        await fetch(st.url(server, "/v.mp4"), tmp_path / "a.mp4", expect=EXPECT, max_bytes=1000, chunk_size=256)
    assert names(tmp_path) == []


@pytest.mark.parametrize(
    ("expect", "match"),
    [
        (Expect(640, 360, 2.0), "320x180, expected 640x360"),
        (Expect(320, 180, 5.0), "lasts 2.00 s, expected 5 s"),
    ],
)
async def test_wrong_video_is_a_verify_error(storage, mp4, tmp_path: Path, expect: Expect, match: str) -> None:
    st, server = storage
    st.bodies["/v.mp4"] = mp4
    with pytest.raises(VerifyError, match=match):
        await fetch(st.url(server, "/v.mp4"), tmp_path / "a.mp4", expect=expect)
    assert names(tmp_path) == []  # neither the final file nor the .part


async def test_bytes_that_are_not_mp4_are_a_verify_error(storage, tmp_path: Path) -> None:
    st, server = storage
    st.bodies["/v.mp4"] = b"<html>not a video</html>" * 10
    with pytest.raises(VerifyError, match="does not decode"):
        await fetch(st.url(server, "/v.mp4"), tmp_path / "a.mp4", expect=EXPECT)


def test_truncated_mp4_fails_verification(mp4: bytes, tmp_path: Path) -> None:
    p = tmp_path / "t.mp4"
    p.write_bytes(mp4[: len(mp4) * 2 // 3])
    with pytest.raises(VerifyError):
        verify_mp4(p, EXPECT)


def test_duration_tolerance(tmp_path: Path) -> None:
    p = tmp_path / "t.mp4"
    p.write_bytes(make_mp4(64, 64, seconds=3, fps=2))
    verify_mp4(p, Expect(64, 64, 3.4))
    with pytest.raises(VerifyError):
        verify_mp4(p, Expect(64, 64, 3.6))


async def test_redirects_are_followed_when_allowed(storage, mp4: bytes, tmp_path: Path) -> None:
    st, server = storage
    st.bodies["/v.mp4"] = mp4
    st.bodies["/old.mp4"] = b""
    st.script["/old.mp4"] = ["redirect:/v.mp4?Expires=4000000000"]
    res = await fetch(st.url(server, "/old.mp4"), tmp_path / "a.mp4", expect=EXPECT)
    assert res.bytes == len(mp4) and [p for p, _ in st.requests] == ["/old.mp4", "/v.mp4"]


async def test_a_redirect_to_plain_http_elsewhere_is_refused_before_it_is_followed(
    storage, mp4: bytes, tmp_path: Path
) -> None:
    st, server = storage
    st.bodies["/old.mp4"] = b""
    st.script["/old.mp4"] = ["redirect:http://example.com/v.mp4"]
    with pytest.raises(DownloadRefused, match="only https"):
        await fetch(st.url(server, "/old.mp4"), tmp_path / "a.mp4", expect=EXPECT)
    assert [p for p, _ in st.requests] == ["/old.mp4"]


async def test_http_to_a_remote_host_is_refused_without_a_request(tmp_path: Path) -> None:
    with pytest.raises(DownloadRefused, match="only https"):
        await fetch("http://example.com/v.mp4", tmp_path / "a.mp4", expect=EXPECT)


async def test_a_session_with_credentials_is_refused(storage, mp4: bytes, tmp_path: Path) -> None:
    st, server = storage
    st.bodies["/v.mp4"] = mp4
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer sk-secret"}) as session:
        with pytest.raises(DownloadRefused, match="credentials"):
            await download(session, st.url(server, "/v.mp4"), tmp_path / "a.mp4", expect=EXPECT)
    assert st.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "https://dashscope-result-sh.oss-accelerate.aliyuncs.com/x.mp4?Expires=1",
        "http://127.0.0.1:8000/x.mp4",
        "http://127.5.6.7/x.mp4",
        "http://localhost/x.mp4",
        "http://[::1]:9/x.mp4",
    ],
)
def test_allowed_urls(url: str) -> None:
    check_url(url)


@pytest.mark.parametrize(
    "url",
    ["http://example.com/x.mp4", "http://10.0.0.1/x.mp4", "ftp://127.0.0.1/x", "file:///etc/passwd", "x.mp4", ""],
)
def test_refused_urls(url: str) -> None:
    with pytest.raises(DownloadRefused):
        check_url(url)


def test_url_expiry_and_order() -> None:
    assert url_expiry("https://h/x.mp4?OSSAccessKeyId=a&Expires=1764065931&Signature=s%3D") == 1764065931.0
    assert url_expiry("https://h/x.mp4") is None
    assert url_expiry("https://h/x.mp4?Expires=soon") is None


def test_video_filename() -> None:
    jid = "0123456789abcdef0123"
    assert video_filename("detective", "1280*720", 15, None, jid) == "detective__1280x720__15s__rnd__01234567.mp4"
    assert video_filename("det.city-NY", "1920*1080", 5, 42, jid) == "det.city-NY__1920x1080__5s__42__01234567.mp4"
    assert video_filename("New York/../x", "832*480", 5, 0, jid) == "New-York-..-x__832x480__5s__0__01234567.mp4"
    assert "/" not in video_filename("../../etc", "832*480", 5, 0, jid)


def test_write_sidecar_is_atomic_json(tmp_path: Path) -> None:
    video = tmp_path / "videos" / "a__1280x720__5s__rnd__01234567.mp4"
    data = {"task_id": "t1", "request": {"model": "wan2.6-t2v"}, "sha256": "ab", "usage": {"duration": 5}}
    path = write_sidecar(video, data)
    assert path == video.with_suffix(".json")
    assert json.loads(path.read_text()) == data
    write_sidecar(video, {**data, "sha256": "cd"})
    assert json.loads(path.read_text())["sha256"] == "cd"
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp file left
