"""Logging set-up and the secret-redaction processor."""

from __future__ import annotations

import io
import json
import logging

import pytest

from runner.log import MASK, Redactor, configure, get_logger, level_for

KEY = "sk-0123456789abcdefREALKEY"


def test_configured_secret_masked_in_every_field() -> None:
    r = Redactor([KEY])
    out = r(None, "info", {"event": "api.call", "url": f"http://x/?k={KEY}", "n": 3, "ok": True, "none": None})
    assert out == {"event": "api.call", "url": f"http://x/?k={MASK}", "n": 3, "ok": True, "none": None}


def test_nested_containers_and_credential_fields() -> None:
    r = Redactor([KEY])
    out = r(
        None,
        "info",
        {
            "event": "x",
            "headers": {"Authorization": "whatever-it-is", "Accept": "application/json"},
            "args": ("a", KEY, ["b", {"deep": f"key={KEY}"}]),
            "api_key": "not-a-pattern",
            "tags": {KEY},
        },
    )
    assert out["headers"] == {"Authorization": MASK, "Accept": "application/json"}
    assert out["args"] == ("a", MASK, ["b", {"deep": f"key={MASK}"}])
    assert out["api_key"] == MASK
    assert out["tags"] == [MASK]
    assert KEY not in repr(out)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc.def-ghi", f"Authorization: Bearer {MASK}"),
        ("header bearer sk-zzzzzzzz, next", f"header bearer {MASK}, next"),
        ("some other sk-ABCDEF123456 key", f"some other {MASK} key"),
        ("task-id sk- is too short: sk-ab", "task-id sk- is too short: sk-ab"),
        ("nothing secret here", "nothing secret here"),
    ],
)
def test_key_and_bearer_patterns(text: str, expected: str) -> None:
    assert Redactor().text(text) == expected


def test_objects_and_exceptions_that_print_a_secret() -> None:
    class Config:
        def __str__(self) -> str:
            return f"Config(key={KEY})"

    r = Redactor([KEY])
    out = r(None, "error", {"event": "x", "cfg": Config(), "err": ValueError(f"bad {KEY}"), "fine": ValueError("ok")})
    assert out["cfg"] == f"Config(key={MASK})"
    assert out["err"] == f"ValueError: bad {MASK}"
    assert isinstance(out["fine"], ValueError)


def test_json_output_off_a_terminal_is_redacted(reset_structlog: None) -> None:
    buf = io.StringIO()
    configure(verbosity=0, secrets=[KEY], stream=buf)
    log = get_logger()
    log.info("job.submitted", job_id="j1", note=f"sent with {KEY}")
    log.debug("poll.scheduled", job_id="j1")  # below the default level
    try:
        raise RuntimeError(f"failed with key {KEY}")
    except RuntimeError:
        log.exception("task.crashed")
    lines = [json.loads(x) for x in buf.getvalue().splitlines()]
    assert [x["event"] for x in lines] == ["job.submitted", "task.crashed"]
    assert lines[0]["note"] == f"sent with {MASK}" and lines[0]["level"] == "info" and "timestamp" in lines[0]
    assert "RuntimeError" in lines[1]["exception"]
    assert KEY not in buf.getvalue()


def test_console_renderer_and_verbose_level(reset_structlog: None) -> None:
    buf = io.StringIO()
    configure(verbosity=1, secrets=[KEY], stream=buf, json=False)
    get_logger().debug("poll.scheduled", key=KEY)
    text = buf.getvalue()
    assert "poll.scheduled" in text and MASK in text and KEY not in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_library_records_through_stdlib_logging_are_redacted(reset_structlog: None) -> None:
    buf = io.StringIO()
    configure(secrets=[KEY], stream=buf)
    configure(secrets=[KEY], stream=buf)  # twice: still one handler
    lib = logging.getLogger("aiohttp.client")
    lib.info("chatter below the library level")
    lib.warning("retrying with header Authorization: Bearer %s", KEY)
    try:
        raise ConnectionError(f"reset while sending {KEY}")
    except ConnectionError:
        logging.getLogger("asyncio").error("Task exception was never retrieved", exc_info=True)
    lines = [json.loads(x) for x in buf.getvalue().splitlines()]
    assert [x["level"] for x in lines] == ["warning", "error"]
    assert lines[0]["event"] == f"retrying with header Authorization: Bearer {MASK}"
    assert "ConnectionError" in lines[1]["exception"] and MASK in lines[1]["exception"]
    assert KEY not in buf.getvalue()


def test_level_for() -> None:
    assert level_for(0) == 20 and level_for(1) == 10 and level_for(3) == 10


def test_default_stream_follows_sys_stderr(reset_structlog: None, monkeypatch: pytest.MonkeyPatch) -> None:
    configure(secrets=[KEY])
    later = io.StringIO()
    monkeypatch.setattr("sys.stderr", later)  # swapped after configure, as test harnesses do
    get_logger().warning("job.failed", why=KEY)
    logging.getLogger("aiohttp").warning("lib %s", KEY)
    text = later.getvalue()
    assert "job.failed" in text and "lib ***" in text and KEY not in text


def test_negative_verbosity_keeps_only_warnings() -> None:
    import logging

    from runner.log import level_for

    assert level_for(-1) == logging.WARNING
    assert level_for(0) == logging.INFO
    assert level_for(2) == logging.DEBUG
