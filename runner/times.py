"""The service's task times: ``YYYY-MM-DD HH:mm:ss.SSS`` strings in UTC+8 (API.md decision 6), read in one place
for the engine (learning task times) and the gallery (showing them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

#: Task times and list windows are read in UTC+8 (API.md decisions 6 and 9).
UTC8 = timezone(timedelta(hours=8), "UTC+8")


def parse_task_time(text: str | None) -> datetime | None:
    """``"2025-09-29 14:18:52.331"`` (UTC+8) → an aware datetime in UTC; None when absent or unreadable."""
    if not text:
        return None
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(text.strip(), fmt).replace(tzinfo=UTC8).astimezone(UTC)
        except ValueError:
            continue
    return None
