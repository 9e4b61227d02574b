"""Fixtures for the ledger/download/log tests: a real small MP4 and a real object-storage stand-in on
127.0.0.1 whose misbehaviour each test scripts request by request."""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestServer


def make_mp4(width: int = 320, height: int = 180, seconds: int = 2, fps: int = 2) -> bytes:
    """A real H.264 MP4 made with PyAV: ``seconds`` x ``fps`` frames of changing grey."""
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=Fraction(fps))
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        for i in range(seconds * fps):
            frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), (i * 37) % 256, np.uint8), format="rgb24")
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return buf.getvalue()


@pytest.fixture(scope="session")
def mp4() -> bytes:
    return make_mp4()


@dataclass
class Storage:
    """Scripted object storage. ``script[path]`` lists what the next requests get, one entry each; when it
    runs out, requests get ``ok``. Behaviours: ok (honours Range), norange (always 200, whole body),
    truncate (declares the whole length, sends half, drops the connection), 403, 404, 500,
    chunked (no Content-Length)."""

    bodies: dict[str, bytes] = field(default_factory=dict)
    script: dict[str, list[str]] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.requests.append((path, dict(request.headers)))
        queue = self.script.get(path) or []
        what = queue.pop(0) if queue else "ok"
        data = self.bodies.get(path)
        if data is None or what == "404":
            return web.Response(status=404, text="NoSuchKey")
        if what == "403":
            return web.Response(status=403, text="<Error><Code>AccessDenied</Code>Request has expired</Error>")
        if what.startswith("redirect:"):
            raise web.HTTPFound(what[len("redirect:") :])
        if what == "500":
            return web.Response(status=500, text="InternalError")
        if what == "truncate":
            resp = web.StreamResponse(status=200)
            resp.content_length = len(data)
            await resp.prepare(request)
            await resp.write(data[: len(data) // 2])
            assert request.transport is not None
            request.transport.close()
            return resp
        if what == "chunked":
            resp = web.StreamResponse(status=200)
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            for i in range(0, len(data), 512):
                await resp.write(data[i : i + 512])
            await resp.write_eof()
            return resp
        rng = request.headers.get("Range")
        if what == "ok" and rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[6:-1])
            return web.Response(
                status=206,
                body=data[start:],
                headers={"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"},
                content_type="video/mp4",
            )
        return web.Response(body=data, content_type="video/mp4")

    def url(self, server: TestServer, path: str, query: str = "") -> str:
        return str(server.make_url(path)) + (f"?{query}" if query else "")


@pytest.fixture
async def storage() -> AsyncIterator[tuple[Storage, TestServer]]:
    st = Storage()
    app = web.Application()
    app.router.add_get("/{name:.*}", st.handle)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield st, server
    finally:
        await server.close()


@pytest.fixture
def reset_structlog() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)
