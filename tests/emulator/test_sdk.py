"""The official SDK (dashscope 2.0.2) as an independent client of the emulator, in a thread with the real
clock: tasks take 0.8 s (simulated 80 s at speed 100) so ``wait()`` (polls at 0, 1, 2, 4 s) ends quickly."""

from __future__ import annotations

import io
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path

import av
import pytest
import requests

dashscope = pytest.importorskip("dashscope")

from dashscope import VideoSynthesis  # noqa: E402
from dashscope.aigc.video_synthesis import AioVideoSynthesis  # noqa: E402
from dashscope.api_entities.aio_session import close_shared_aio_session  # noqa: E402

from runner.emulator import EmulatorConfig, ThreadedEmulator, body_digest, run_in_thread  # noqa: E402
from tests.audio_files import write_audio  # noqa: E402
from tests.emulator.conftest import KEY, SEED_PROMPT  # noqa: E402

SEED_PARAMS = {"size": "1280*720", "duration": 15, "shot_type": "multi", "prompt_extend": True, "watermark": True}


@pytest.fixture(scope="module")
def fast() -> Iterator[ThreadedEmulator]:
    with run_in_thread(EmulatorConfig(speed=100.0, task_time=80.0, seed=1)) as emu:
        yield emu


@pytest.fixture(scope="module")
def slow() -> Iterator[ThreadedEmulator]:
    """Tasks stay PENDING for 250 s: room to cancel them."""
    with run_in_thread(EmulatorConfig(task_time=1000.0, seed=2)) as emu:
        yield emu


@pytest.fixture
def sdk_base() -> Iterator[None]:
    """Restore the SDK's global base URL after the test."""
    old = dashscope.base_http_api_url
    yield
    dashscope.base_http_api_url = old


def decoded(url: str) -> tuple[int, int, float]:
    r = requests.get(url, timeout=30)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "video/mp4"
    with av.open(io.BytesIO(r.content)) as c:
        s = c.streams.video[0]
        return s.width, s.height, c.duration / 1e6


def test_call_with_the_api_pages_example_succeeds_and_downloads(fast: ThreadedEmulator, sdk_base: None) -> None:
    dashscope.base_http_api_url = fast.base_url
    rsp = VideoSynthesis.call(api_key=KEY, model="wan2.6-t2v", prompt=SEED_PROMPT, **SEED_PARAMS)
    assert rsp.status_code == HTTPStatus.OK
    assert rsp.output.task_status == "SUCCEEDED"
    assert rsp.output.orig_prompt == SEED_PROMPT
    assert rsp.usage.duration == 15 and rsp.usage.SR == 720
    assert decoded(rsp.output.video_url) == (1280, 720, 15.0)


def test_async_call_fetch_wait(fast: ThreadedEmulator, sdk_base: None) -> None:
    dashscope.base_http_api_url = fast.base_url
    rsp = VideoSynthesis.async_call(
        api_key=KEY,
        model="wan2.5-t2v-preview",
        prompt="A kitten running in the moonlight",
        size="832*480",
        duration=10,
        seed=12345,
        negative_prompt="low quality",
        audio_url="https://example.invalid/a.mp3",
    )
    assert rsp.status_code == HTTPStatus.OK
    assert rsp.output.task_status == "PENDING"
    fetched = VideoSynthesis.fetch(rsp, api_key=KEY)
    assert fetched.status_code == HTTPStatus.OK
    assert fetched.output.task_id == rsp.output.task_id
    assert fetched.output.task_status in ("PENDING", "RUNNING")
    done = VideoSynthesis.wait(rsp, api_key=KEY)
    assert done.output.task_status == "SUCCEEDED"
    assert done.usage.video_duration == 10 and done.usage.video_ratio == "832*480"
    assert decoded(done.output.video_url) == (832, 480, 10.0)


def test_errors_surface_with_code_and_message(fast: ThreadedEmulator, sdk_base: None) -> None:
    dashscope.base_http_api_url = fast.base_url
    rsp = VideoSynthesis.async_call(api_key=KEY, model="wan2.6-t2v", prompt="x", size="832*480")
    assert rsp.status_code == 400
    assert rsp.code == "InvalidParameter"
    assert rsp.message.startswith("The size is not match")
    rsp = VideoSynthesis.async_call(api_key="bad-key", model="wan2.6-t2v", prompt="x")
    assert (rsp.status_code, rsp.code, rsp.message) == (401, "InvalidApiKey", "Invalid API-key provided.")


def test_cancel_pending_and_list(slow: ThreadedEmulator, sdk_base: None) -> None:
    dashscope.base_http_api_url = slow.base_url
    rsp = VideoSynthesis.async_call(api_key=KEY, model="wan2.6-t2v", prompt="to cancel", size="1280*720")
    cancel = VideoSynthesis.cancel(rsp, api_key=KEY)
    assert cancel.status_code == HTTPStatus.OK
    assert VideoSynthesis.fetch(rsp, api_key=KEY).output.task_status == "CANCELED"
    again = VideoSynthesis.cancel(rsp, api_key=KEY)
    assert (again.status_code, again.code) == (400, "UnsupportedOperation")
    listed = VideoSynthesis.list(api_key=KEY, model_name="wan2.6-t2v", page_size=50)
    assert listed.status_code == HTTPStatus.OK
    ids = [d["task_id"] for d in listed.output["data"]]
    assert rsp.output.task_id in ids
    only = VideoSynthesis.list(api_key=KEY, status="CANCELED")
    assert {d["status"] for d in only.output["data"]} == {"CANCELED"}


async def test_aio_client_quirks(fast: ThreadedEmulator, slow: ThreadedEmulator, sdk_base: None) -> None:
    """Trailing slashes, generation parameters leaked into every poll's query string, JSON body on cancel."""
    dashscope.base_http_api_url = fast.base_url
    before = fast.stats()["queries"]
    rsp = await AioVideoSynthesis.call(api_key=KEY, model="wan2.6-t2v", prompt=SEED_PROMPT, **SEED_PARAMS)
    assert rsp.output.task_status == "SUCCEEDED"
    assert fast.stats()["queries"] > before
    dashscope.base_http_api_url = slow.base_url
    pending = await AioVideoSynthesis.async_call(api_key=KEY, model="wan2.6-t2v", prompt="aio cancel")
    assert pending.output.task_status == "PENDING"
    cancel = await AioVideoSynthesis.cancel(pending, api_key=KEY)
    assert cancel.status_code == HTTPStatus.OK
    fetched = await AioVideoSynthesis.fetch(pending, api_key=KEY)
    assert fetched.output.task_status == "CANCELED"
    await close_shared_aio_session()  # the SDK keeps one aiohttp session per loop


def test_v2_client_jobs(fast: ThreadedEmulator) -> None:
    with dashscope.Client(api_key=KEY, base_url=fast.base_url) as client:
        job = client.videos.jobs.create(
            model="wan2.6-t2v",
            prompt=SEED_PROMPT,
            size="1280*720",
            duration=15,
            prompt_extend=True,
            watermark=True,
            parameters={"shot_type": "multi"},
        )
        assert job.task_id and job.status == "PENDING"
        done = client.videos.jobs.wait(job)
    assert done.status == "SUCCEEDED"
    assert done.video_url is not None
    assert decoded(done.video_url) == (1280, 720, 15.0)
    sent = {
        "model": "wan2.6-t2v",
        "input": {"prompt": SEED_PROMPT, "extend_prompt": True, "function": "video-synthesis"},  # as 1.x sends it
        "parameters": {
            "size": "1280*720",
            "duration": 15,
            "prompt_extend": True,
            "watermark": True,
            "shot_type": "multi",
        },
    }
    assert fast.stats()["submissions_by_body"].get(body_digest(sent), 0) >= 1  # 2.x sent the same canonical body


def test_call_with_a_local_audio_file_uploads_it_as_the_sdk_does(
    fast: ThreadedEmulator, sdk_base: None, tmp_path: Path
) -> None:
    """Issue 19: ``audio_url="file://…"`` makes the SDK ask for a policy, post the file to its upload host (without
    the key) and send ``oss://<key>`` with ``X-DashScope-OssResourceResolve: enable``: the emulator takes all three."""
    dashscope.base_http_api_url = fast.base_url
    voice = write_audio(tmp_path / "voice.mp3", 4.0, "mp3")
    before = fast.stats()
    rsp = VideoSynthesis.call(
        api_key=KEY, model="wan2.6-t2v", prompt="A narrated harbour at dawn", audio_url=voice.as_uri(),
        size="1280*720", duration=5,
    )  # fmt: skip
    assert rsp.status_code == HTTPStatus.OK, (rsp.code, rsp.message)
    assert rsp.output.task_status == "SUCCEEDED"
    after = fast.stats()
    assert after["uploads"] == before["uploads"] + 1 and after["upload_policies"] == before["upload_policies"] + 1
    assert (
        after["uploads_with_authorization"] == 0
        and after["upload_bytes"] - before["upload_bytes"] == voice.stat().st_size
    )
    task = next(t for t in fast.state.store.order if t.task_id == rsp.output.task_id)
    assert task.req.digest in after["submissions_by_body"]
    # a local file the service would not take: the SDK uploads it, the create is refused naming the oss:// URL
    short = write_audio(tmp_path / "short.wav", 1.0)
    bad = VideoSynthesis.async_call(api_key=KEY, model="wan2.6-t2v", prompt="x", audio_url=short.as_uri())
    assert (bad.status_code, bad.code) == (400, "InvalidParameter")
    assert bad.message.startswith("The audio oss://dashscope-instant/") and "lasts 1.0 s" in bad.message
