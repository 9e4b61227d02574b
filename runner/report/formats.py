"""How the gallery writes numbers, times and sizes, and reads the loosely-typed values of sidecars and requests."""

from __future__ import annotations

from datetime import datetime

from runner.times import UTC8, parse_task_time


def fmt_duration(seconds: float | None) -> str:
    """``287.1`` → ``4 min 47 s``; ``2.4`` → ``2.4 s``; None → ``–``."""
    if seconds is None:
        return "–"
    if seconds < 10:
        return f"{seconds:.1f} s"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m} min {s} s" if s else f"{m} min"
    h, m = divmod(m, 60)
    return f"{h} h {m} min"


def fmt_money(amount: float) -> str:
    return f"{amount:,.2f}"


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "–"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"  # pragma: no cover


def span(start: float | None, end: float | None) -> float | None:
    return end - start if start is not None and end is not None and end >= start else None


def when(value: object) -> float | None:
    """A task time as epoch seconds: the API's UTC+8 string, epoch seconds, or epoch milliseconds."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value) / 1000 if value > 1e11 else float(value)
    if isinstance(value, str) and value:
        parsed = parse_task_time(value)
        if parsed is not None:
            return parsed.timestamp()
        try:
            iso = datetime.fromisoformat(value)
        except ValueError:
            return None
        return (iso if iso.tzinfo else iso.replace(tzinfo=UTC8)).timestamp()
    return None


def text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def whole(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
