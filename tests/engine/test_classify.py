"""classify() and classify_task_failure(): every row of the decision table, plus the small parsers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.engine.classify import RETRYABLE_TASK_CODES, Action, Backoff, Verdict, classify, classify_task_failure
from runner.engine.wire import format_list_time, parse_retry_after
from runner.errors import (
    ApiError,
    ConnectionLost,
    PermanentError,
    RateLimited,
    RequestTimeout,
    ServerError,
    refusal_scope,
    what_to_check,
)
from runner.times import parse_task_time

OPS = ("create", "get", "list", "cancel")
HALF = lambda: 0.5  # noqa: E731 - a fixed "random" source


# ------------------------------------------------------------------------------------------- request errors


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "InvalidParameter"),
        (400, "BadRequest.EmptyInput"),
        (400, "DataInspectionFailed"),
        (400, "IPInfringementSuspect"),
        (400, "UnsupportedOperation"),
    ],
)
def test_permanent_is_never(op: str, status: int, code: str) -> None:
    verdict = classify(PermanentError("x", status=status, code=code), op=op)  # type: ignore[arg-type]
    assert verdict.action is Action.NEVER
    assert verdict.delay == 0.0
    assert code in verdict.reason


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize(
    ("status", "code", "message", "scope"),
    [
        (400, "Arrearage", "", "account"),
        (401, "InvalidApiKey", "", "account"),
        (403, "AccessDenied", "", "account"),
        (403, "Workspace.AccessDenied", "", "account"),
        (403, "AllocationQuota.FreeTierOnly", "", "account"),
        (404, "WorkSpaceNotFound", "", "account"),
        (429, "PrepaidBillOverdue", "", "account"),
        (401, "SomethingNew", "", "account"),  # an unknown 401 or 403 counts as the account's
        (403, None, "", "account"),
        (403, "AccessDenied.Unpurchased", "", "model"),
        (403, "Model.AccessDenied", "", "model"),
        (404, "ModelNotFound", "", "model"),
        (400, "InvalidParameter", "Model not exist.", "model"),
    ],
)
def test_account_level_answers_are_refusals_that_blame_no_job(
    op: str, status: int, code: str | None, message: str, scope: str
) -> None:
    exc = PermanentError(message or "x", status=status, code=code)
    verdict = classify(exc, op=op)  # type: ignore[arg-type]
    assert (verdict.action, verdict.scope) == (Action.REFUSED, scope)
    assert refusal_scope(exc) == scope
    assert what_to_check(code)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize(
    "code", ["Throttling", "Throttling.RateQuota", "Throttling.BurstRate", "Throttling.Concurrency"]
)
def test_rate_limited_is_retried_even_for_create(op: str, code: str) -> None:
    with_header = classify(RateLimited("x", status=429, code=code, retry_after=4.5), op=op)  # type: ignore[arg-type]
    assert with_header == Verdict(Action.RETRY, 4.5, f"throttled: {code}")
    without = classify(RateLimited("x", status=429, code=code), op=op, attempt=3, rng=HALF)  # type: ignore[arg-type]
    assert without.action is Action.RETRY
    assert without.delay == pytest.approx(0.5 * 8.0)  # full jitter over base * 2**3


@pytest.mark.parametrize(
    "exc",
    [
        ServerError("x", status=500, code="InternalError"),
        ServerError("x", status=503, code="ModelUnavailable"),
        ServerError("x", status=200, code="MalformedAnswer"),
        RequestTimeout("x"),
        ConnectionLost("x", sent=True),
    ],
)
def test_sent_transient_create_is_ambiguous_and_others_retry(exc: ApiError) -> None:
    assert classify(exc, op="create").action is Action.AMBIGUOUS
    for op in ("get", "list", "cancel"):
        verdict = classify(exc, op=op, rng=HALF)  # type: ignore[arg-type]
        assert verdict.action is Action.RETRY
        assert verdict.delay == pytest.approx(0.5)


def test_unsent_failures_are_plain_retries_for_create() -> None:
    for exc in (ConnectionLost("refused", sent=False), RequestTimeout("connect timeout", sent=False)):
        verdict = classify(exc, op="create", rng=HALF)
        assert verdict.action is Action.RETRY


def test_retry_after_on_5xx_wins_over_backoff() -> None:
    verdict = classify(ServerError("x", status=503, retry_after=9.0), op="get", attempt=5, rng=HALF)
    assert verdict == Verdict(Action.RETRY, 9.0, "ServerError")


def test_attempts_run_out() -> None:
    b = Backoff(max_attempts=3, max_throttled=5)
    assert classify(ServerError("x", status=500), op="get", attempt=2, backoff=b).action is Action.RETRY
    gave_up = classify(ServerError("x", status=500), op="get", attempt=3, backoff=b)
    assert gave_up.action is Action.NEVER and "gave up" in gave_up.reason
    assert classify(RateLimited("x", status=429), op="create", attempt=4, backoff=b).action is Action.RETRY
    assert classify(RateLimited("x", status=429), op="create", attempt=5, backoff=b).action is Action.NEVER
    # an ambiguous create stays ambiguous however often it happened: reconcile decides, not a counter
    assert classify(RequestTimeout("x"), op="create", attempt=99, backoff=b).action is Action.AMBIGUOUS


def test_unexpected_exceptions() -> None:
    assert classify(RuntimeError("bug"), op="create").action is Action.AMBIGUOUS
    assert classify(RuntimeError("bug"), op="get").action is Action.NEVER
    assert classify(ApiError("odd"), op="create").action is Action.AMBIGUOUS
    assert classify(ApiError("odd", sent=False), op="create").action is Action.NEVER
    assert classify(ApiError("odd"), op="list").action is Action.NEVER


def test_verdict_aliases() -> None:
    v = classify(PermanentError("x", status=400), op="get")
    assert v.kind is Verdict.NEVER is Action.NEVER
    assert Verdict.RETRY is Action.RETRY and Verdict.AMBIGUOUS is Action.AMBIGUOUS


# ------------------------------------------------------------------------------------------- backoff


@given(
    attempt=st.integers(min_value=0, max_value=60),
    u=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_backoff_full_jitter_bounds(attempt: int, u: float) -> None:
    b = Backoff(base=0.5, factor=2.0, cap=30.0)
    d = b.delay(attempt, lambda: u)
    assert 0.0 <= d <= 30.0
    assert d == pytest.approx(u * min(30.0, 0.5 * 2.0**attempt))


def test_backoff_uses_the_injected_source() -> None:
    b = Backoff()
    assert b.delay(0, lambda: 0.0) == 0.0
    assert b.delay(2, lambda: 0.999) == pytest.approx(0.999 * 4.0)
    assert b.delay(100, lambda: 0.5) == pytest.approx(30.0)


# ------------------------------------------------------------------------------------------- task failures


@pytest.mark.parametrize("code", sorted(RETRYABLE_TASK_CODES))
def test_server_side_task_failures_are_retried(code: str) -> None:
    verdict = classify_task_failure(code, rng=HALF)
    assert verdict.action is Action.RETRY and verdict.delay == pytest.approx(0.5)
    assert classify_task_failure(code, attempt=6).action is Action.NEVER


def test_retryable_task_codes_are_exactly_the_documented_ones() -> None:
    assert (
        frozenset({"InternalError", "InternalError.Algo", "InternalError.Timeout", "SystemError", "ModelServiceFailed"})
        == RETRYABLE_TASK_CODES
    )


@pytest.mark.parametrize(
    "code",
    [
        "DataInspectionFailed",
        "IPInfringementSuspect",
        "InvalidParameter",
        "InvalidParameter.DataInspection",
        "Arrearage",
        "InvalidURL",
        "BadRequest.InputDownloadFailed",
        "SomethingNew",
        None,
    ],
)
def test_other_task_failures_are_final(code: str | None) -> None:
    verdict = classify_task_failure(code)
    assert verdict.action is Action.NEVER
    assert (code or "no code") in verdict.reason


# ------------------------------------------------------------------------------------------- parsers


def test_parse_retry_after_forms() -> None:
    now = 1_800_000_000.0
    assert parse_retry_after("3", now=now) == 3.0
    assert parse_retry_after(" 1.5 ", now=now) == 1.5
    assert parse_retry_after("-4", now=now) == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("", now=now) is None
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after("nan", now=now) is None
    assert parse_retry_after("inf", now=now) is None
    date = datetime.fromtimestamp(now + 12, tz=UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after(date, now=now) == pytest.approx(12.0)
    past = datetime.fromtimestamp(now - 60, tz=UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after(past, now=now) == 0.0


def test_parse_task_time_is_utc8() -> None:
    assert parse_task_time("2025-09-29 14:18:52.331") == datetime(2025, 9, 29, 6, 18, 52, 331000, tzinfo=UTC)
    assert parse_task_time("2025-09-29 14:18:52") == datetime(2025, 9, 29, 6, 18, 52, tzinfo=UTC)
    assert parse_task_time(None) is None
    assert parse_task_time("") is None
    assert parse_task_time("yesterday") is None


def test_format_list_time() -> None:
    assert format_list_time(datetime(2026, 11, 25, 16, 30, 5, tzinfo=UTC)) == "20261126003005"
    assert format_list_time(datetime(2026, 11, 25, 16, 30, 5, tzinfo=timezone(timedelta(hours=8)))) == "20261125163005"
    with pytest.raises(ValueError):
        format_list_time(datetime(2026, 11, 25))
