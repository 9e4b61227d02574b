"""The server's clock from Date headers (runner.engine.server_clock): bounds, narrowing, a stepped clock."""

from __future__ import annotations

import email.utils

from runner.engine.server_clock import ServerClock


def date(epoch: float) -> str:
    return email.utils.formatdate(int(epoch), usegmt=True)


def test_unknown_until_an_answer() -> None:
    clock = ServerClock(lambda: 1000.0)
    assert not clock.known and clock.offset == 0.0 and clock.now() == 1000.0
    clock.observe(None, 1.0, 2.0)
    clock.observe("not a date", 1.0, 2.0)
    assert not clock.known


def test_bounds_narrow_to_the_true_offset_an_hour_either_way() -> None:
    for true in (3600.0, -3600.0, 0.25):
        clock = ServerClock(lambda: 0.0)
        host = 1_764_000_000.0
        for i in range(40):  # answers at varied fractions of a second, 20 ms round trips
            sent = host + i * 0.37
            server_at_answer = sent + 0.01 + true
            clock.observe(date(server_at_answer), sent, sent + 0.02)
        assert abs(clock.offset - true) <= clock.error + 1e-9
        assert clock.error < 0.1, clock.error


def test_a_stepped_clock_replaces_what_was_known() -> None:
    clock = ServerClock(lambda: 0.0)
    for i in range(10):
        clock.observe(date(5000.0 + i * 0.3), 5000.0 + i * 0.3, 5000.0 + i * 0.3 + 0.01)
    assert abs(clock.offset) < 1.0
    clock.observe(date(9000.0), 6000.0, 6000.01)  # the server's clock jumped 3000 s ahead
    assert abs(clock.offset - 3000.0) < 1.0
