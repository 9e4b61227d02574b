"""The object-storage stand-in: real MP4s of the requested size and duration, signed URLs that expire,
Range requests for resumable downloads, and truncated bodies."""

from __future__ import annotations

import io
import re
from urllib.parse import parse_qs, urlsplit

import aiohttp
import av
import pytest

from runner.emulator.faults import parse_fault
from runner.emulator.video import encode_mp4, free_box
from tests.emulator.conftest import AUTH, Client, MakeClient, body


async def finished_url(c: Client, b: dict | None = None) -> tuple[str, str]:
    tid = await c.create_ok(b)
    c.clock.advance(100)
    out = (await c.get(tid))["output"]
    assert out["task_status"] == "SUCCEEDED"
    return tid, out["video_url"]


def decoded(data: bytes) -> tuple[int, int, float]:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        assert frames >= 1
        return stream.width, stream.height, container.duration / 1e6


@pytest.mark.parametrize(
    ("model", "size", "duration"), [("wan2.6-t2v", "1280*720", 3), ("wan2.5-t2v-preview", "480*832", 5)]
)
async def test_download_decodes_to_requested_size_and_duration(
    client: Client, model: str, size: str, duration: int
) -> None:
    tid, url = await finished_url(client, body(model, size=size, duration=duration))
    status, data, headers = await client.call("GET", url)
    assert status == 200
    assert headers["Content-Type"] == "video/mp4"
    assert int(headers["Content-Length"]) == len(data)
    assert headers["Accept-Ranges"] == "bytes"
    w, h = (int(x) for x in size.split("*"))
    assert decoded(data) == (w, h, float(duration))
    assert data.endswith(free_box(f"wanbatch-emulator task_id={tid}\n".encode()))
    stats = await client.stats()
    assert stats["bytes_served"] == len(data)
    assert stats["downloads_with_authorization"] == 0


async def test_each_task_gets_distinct_bytes_from_one_encode(client: Client) -> None:
    _, url1 = await finished_url(client, body(size="1280*720", duration=2))
    _, url2 = await finished_url(client, body(size="1280*720", duration=2))
    a = (await client.call("GET", url1))[1]
    b = (await client.call("GET", url2))[1]
    assert a != b
    assert len(a) == len(b)
    assert (await client.stats())["videos_encoded"] == 1


async def test_range_resume(client: Client) -> None:
    _, url = await finished_url(client, body(size="1280*720", duration=2))
    full = (await client.call("GET", url))[1]
    status, part, headers = await client.call("GET", url, headers={"Range": "bytes=100-"})
    assert status == 206
    assert part == full[100:]
    assert headers["Content-Range"] == f"bytes 100-{len(full) - 1}/{len(full)}"
    assert int(headers["Content-Length"]) == len(full) - 100
    status, part, headers = await client.call("GET", url, headers={"Range": "bytes=0-9"})
    assert (status, part) == (206, full[:10])
    status, _, headers = await client.call("GET", url, headers={"Range": f"bytes={len(full)}-"})
    assert status == 416
    assert headers["Content-Range"] == f"bytes */{len(full)}"


async def test_url_really_expires_with_403(make_client: MakeClient) -> None:
    c = await make_client(task_time=100.0, speed=100.0)  # URL valid 86400 / 100 = 864 s after the end
    _, url = await finished_url(c)
    expires = int(parse_qs(urlsplit(url).query)["Expires"][0])
    assert expires == int(c.clock.now + 864 - 99)  # ended 99 s ago at speed 100 (1 s task)
    c.clock.now = expires
    assert (await c.call("GET", url))[0] == 200
    c.clock.now = expires + 1
    status, data, headers = await c.call("GET", url)
    assert status == 403
    assert headers["Content-Type"].startswith("application/xml")
    assert b"<Code>AccessDenied</Code>" in data
    assert b"<Message>Request has expired.</Message>" in data


async def test_tampered_or_unsigned_url_is_403(client: Client) -> None:
    _, url = await finished_url(client)
    later = re.sub(r"Expires=(\d+)", lambda m: f"Expires={int(m[1]) + 1000}", url)
    status, data, _ = await client.call("GET", later)
    assert status == 403 and b"<Code>SignatureDoesNotMatch</Code>" in data
    status, data, _ = await client.call("GET", url.split("?")[0])
    assert status == 403 and b"<Code>AccessDenied</Code>" in data


async def test_expired_url_fault_gives_an_already_expired_link(make_client: MakeClient) -> None:
    c = await make_client(task_time=100.0, faults=(parse_fault("expired_url=1"),))
    _, url = await finished_url(c)
    status, data, _ = await c.call("GET", url)
    assert status == 403 and b"Request has expired." in data


async def test_truncate_fault_closes_mid_body(make_client: MakeClient) -> None:
    c = await make_client(task_time=100.0, faults=(parse_fault("truncate=1x1"),))
    _, url = await finished_url(c, body(size="1280*720", duration=2))
    async with c.session.get(url) as r:
        assert r.status == 200
        total = int(r.headers["Content-Length"])
        got = b""
        with pytest.raises(aiohttp.ClientPayloadError):
            async for chunk in r.content.iter_any():
                got += chunk
    assert 0 < len(got) < total
    status, rest, _ = await c.call("GET", url, headers={"Range": f"bytes={len(got)}-"})
    assert status == 206
    assert len(got) + len(rest) == total  # resumed to the full file
    assert decoded(got + rest)[:2] == (1280, 720)


async def test_download_counts_authorization_header(client: Client) -> None:
    _, url = await finished_url(client)
    assert (await client.call("GET", url, headers=AUTH))[0] == 200
    assert (await client.stats())["downloads_with_authorization"] == 1


async def test_signature_covers_the_task_id(client: Client) -> None:
    tid, url = await finished_url(client)
    other = url.replace(tid, "00000000-0000-0000-0000-000000000000")
    status, data, _ = await client.call("GET", other)
    assert status == 403 and b"SignatureDoesNotMatch" in data


def test_encode_is_exact_for_every_fixed_duration_and_odd_size() -> None:
    assert decoded(encode_mp4(624, 624, 2)) == (624, 624, 2.0)
    assert decoded(encode_mp4(1088, 832, 1, fps=2)) == (1088, 832, 1.0)


async def test_head_gives_length_without_counting_a_download(client: Client) -> None:
    _, url = await finished_url(client, body(size="1280*720", duration=2))
    full = (await client.call("GET", url))[1]
    async with client.session.head(url) as r:
        assert r.status == 200
        assert int(r.headers["Content-Length"]) == len(full)
    assert (await client.stats())["downloads"] == 1


async def test_concurrent_first_downloads_share_one_encode(client: Client) -> None:
    import asyncio

    urls = [(await finished_url(client, body(size="960*960", duration=2)))[1] for _ in range(4)]
    answers = await asyncio.gather(*(client.call("GET", u) for u in urls))
    assert [a[0] for a in answers] == [200] * 4
    assert len({a[1] for a in answers}) == 4
    assert (await client.stats())["videos_encoded"] == 1


async def test_storage_faults_answer_xml(make_client: MakeClient) -> None:
    c = await make_client(task_time=100.0, faults=(parse_fault("503@file=1x1"),))
    _, url = await finished_url(c)
    status, data, headers = await c.call("GET", url)
    assert status == 503 and headers["Content-Type"].startswith("application/xml")
    assert b"<Code>InternalError</Code>" in data
    assert (await c.call("GET", url))[0] == 200
