"""Plausibility bounds: values that parse but cannot be true are rejects, not rows.

A send-log ``sent_at`` of year 20261 parses as a timestamp, and then breaks every date
range a page builds. So every timestamp ingest stores must fall between
:data:`EARLIEST` and the load time plus :data:`FUTURE_SLACK` (clocks drift, time zones
confuse; a day covers both), and every number must be finite and within a stated range.
``ingest/README.md`` lists them (section "Plausibility bounds"); a row outside goes to
``rejects`` with a reason that names the bound.
"""

from __future__ import annotations

from switchboard.core.plausible import EARLIEST_DAY, FUTURE_SLACK_DAYS

EARLIEST = EARLIEST_DAY.isoformat()  # before Twilio existed (2008), with room to spare
FUTURE_SLACK = f"{FUTURE_SLACK_DAYS} day"  # after the load's own clock (current_timestamp of its transaction)
MAX_CALL_SECONDS = 86_400  # Twilio ends a call after at most 24 h (its time limit's maximum)
MAX_COUNT = 10_000  # segments or media of one message
MAX_ABS_PRICE = 10_000  # per message or call, in its currency

BOUNDS_TEXT = f"between {EARLIEST} and now + {FUTURE_SLACK}"


def timestamp_out_of_bounds(typed: str, name: str, raw: str) -> str:
    """A ``WHEN … THEN reason`` arm for a typed timestamp expression (NULL passes: other arms judge it)."""
    return (
        f"WHEN {typed} < TIMESTAMPTZ '{EARLIEST} 00:00:00+00' "
        f"OR {typed} > current_timestamp + INTERVAL '{FUTURE_SLACK}' "
        f"THEN '{name} outside the plausible range ({BOUNDS_TEXT}): ' || left({raw}, 60)"
    )


def number_out_of_range(typed: str, name: str, raw: str, low: float, high: float) -> str:
    """A ``WHEN … THEN reason`` arm: the typed number must be finite and in [low, high]."""
    return (
        f"WHEN {typed} IS NOT NULL AND NOT ({typed}::DOUBLE BETWEEN {low} AND {high}) "
        f"THEN '{name} outside the plausible range ({low:g} to {high:g}): ' || left({raw}, 60)"
    )
