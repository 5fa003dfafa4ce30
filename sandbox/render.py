"""Fast date formatting for rendering pages (RFC 2822 as Twilio writes it, ISO-8601)."""

from __future__ import annotations

import functools
from datetime import UTC, datetime

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@functools.lru_cache(maxsize=4096)
def _day_prefix(day: int) -> str:
    d = datetime.fromtimestamp(day * 86400, UTC)
    return f"{_DAYS[d.weekday()]}, {d.day:02d} {_MONTHS[d.month - 1]} {d.year} "


_CLOCK: list[str] | None = None  # "HH:MM:SS +0000" for every second of a day, built on first use


def _clock_table() -> list[str]:
    # Built whole, then published: a thread never sees a half-filled table.
    global _CLOCK
    table = [f"{h:02d}:{m:02d}:{s:02d} +0000" for h in range(24) for m in range(60) for s in range(60)]
    _CLOCK = table
    return table


def rfc2822(ts: int) -> str:
    """'Thu, 30 Jul 2015 20:12:31 +0000' for epoch seconds."""
    day, sec = divmod(int(ts), 86400)
    return _day_prefix(day) + (_CLOCK or _clock_table())[sec]


@functools.lru_cache(maxsize=4096)
def _iso_day(day: int) -> str:
    return datetime.fromtimestamp(day * 86400, UTC).strftime("%Y-%m-%d")


def iso_seconds(ts: int) -> str:
    """'2015-07-30T20:12:31Z' for epoch seconds."""
    day, sec = divmod(int(ts), 86400)
    h, rem = divmod(sec, 3600)
    m, s = divmod(rem, 60)
    return f"{_iso_day(day)}T{h:02d}:{m:02d}:{s:02d}Z"
