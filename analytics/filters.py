"""Filters shared by every analytics function and dashboard page.

SQL safety: user values are *always* bound parameters; column names come from
the allow-lists below, never from user input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any


@dataclass(frozen=True)
class Filters:
    """What the sidebar selects. Empty tuples mean "all"."""

    countries: tuple[str, ...] = ()  # ISO-2 codes
    channels: tuple[str, ...] = ()  # sms, voice, push, email
    purposes: tuple[str, ...] = ()
    templates: tuple[str, ...] = ()
    extra: tuple[tuple[str, Any], ...] = field(default=())  # (allowed column, value) pairs, e.g. ("carrier", "Vodafone")


# Which filter applies to which column, per analyst view. A filter a view cannot
# answer (channel on message_facts, which is all SMS) is applied as a constant.
FILTER_COLUMNS: dict[str, dict[str, str | None]] = {
    "message_facts": {"countries": "country_iso2", "channels": None, "purposes": "purpose", "templates": "template_id"},
    "call_facts": {"countries": "country_iso2", "channels": None, "purposes": "purpose", "templates": "template_id"},
    "attempt_facts": {"countries": "country_iso2", "channels": "channel", "purposes": "purpose", "templates": "template_id"},
}
VIEW_CHANNEL = {"message_facts": "sms", "call_facts": "voice"}
TIME_COLUMN = {"message_facts": "sent_at", "call_facts": "started_at", "attempt_facts": "sent_at"}
EXTRA_ALLOWED = {"carrier", "sender", "error_category", "error_code", "experiment_id", "variant", "campaign_id",
                 "region", "status", "encoding", "account_sid"}


def day_bounds(start: date | datetime, end: date | datetime) -> tuple[datetime, datetime]:
    """Inclusive ``start``..``end`` days → half-open UTC [start 00:00, end+1 00:00)."""

    def as_dt(d: date | datetime, next_day: bool) -> datetime:
        if isinstance(d, datetime):
            return d if d.tzinfo else d.replace(tzinfo=timezone.utc)
        dt = datetime.combine(d, time.min, tzinfo=timezone.utc)
        return dt + timedelta(days=1) if next_day else dt

    return as_dt(start, False), as_dt(end, True)


def where(
    view: str,
    start: date | datetime,
    end: date | datetime,
    filters: Filters | None = None,
    *,
    alias: str = "",
    prefix: str = "f",
) -> tuple[str, dict[str, Any]]:
    """A WHERE clause (without the keyword) and its named parameters for ``view``.

    >>> sql, params = where("message_facts", date(2026, 1, 1), date(2026, 1, 31), Filters(countries=("BR",)))
    """
    filters = filters or Filters()
    col = (alias + ".") if alias else ""
    lo, hi = day_bounds(start, end)
    clauses = [f"{col}{TIME_COLUMN[view]} >= ${prefix}_start", f"{col}{TIME_COLUMN[view]} < ${prefix}_end"]
    params: dict[str, Any] = {f"{prefix}_start": lo, f"{prefix}_end": hi}
    for name, column in FILTER_COLUMNS[view].items():
        values = getattr(filters, name)
        if not values:
            continue
        key = f"{prefix}_{name}"
        if column is None:  # e.g. channel filter on an all-SMS view
            clauses.append(f"list_contains(${key}, ${key}_self)")
            params[key] = list(values)
            params[f"{key}_self"] = VIEW_CHANNEL[view]
        else:
            clauses.append(f"list_contains(${key}, {col}{column})")
            params[key] = list(values)
    for i, (column, value) in enumerate(filters.extra):
        if column not in EXTRA_ALLOWED:
            raise ValueError(f"Cannot filter on {column!r}; allowed: {', '.join(sorted(EXTRA_ALLOWED))}")
        key = f"{prefix}_x{i}"
        clauses.append(f"{col}{column} = ${key}")
        params[key] = value
    return " AND ".join(clauses), params
