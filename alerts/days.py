"""Whole UTC days of an alert window: what a daily rollup can answer (the rest is read from the facts).

A rule's windows are instants (the recent ``recent_hours`` before the newest message, the baseline the
``baseline_days`` before that), so a baseline of 28 days spans 27 whole UTC days and two partial ones. The
rules read the whole days from a daily rollup (``ingest/facts.sql``) and the partial ones from the facts: the
same counts as reading the facts alone, from a few thousand rollup rows and a day or two of facts.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

from switchboard.analytics import _sql


def whole_days(start: datetime, end: datetime) -> tuple[date, date] | None:
    """(first, after last) of the whole UTC days within [start, end), or None when there are none."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    first = start.date() if start == midnight(start.date()) else start.date() + timedelta(days=1)
    after = end.date()
    return (first, after) if first < after else None


def midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def rolled(con: Any, table: str, start: datetime, end: datetime) -> dict[str, Any] | None:
    """Parameters ``$d0``/``$d1`` (the whole days, ``day >= $d0 AND day < $d1``) and ``$t0``/``$t1`` (their
    bounds as instants: the facts give ``[start, $t0)`` and ``[$t1, end)``) when ``table`` is an up-to-date
    rollup (analytics._sql.rollup_ready) and [start, end) holds a whole day; else None: read the facts."""
    days = whole_days(start, end)
    if days is None or not _sql.USE_ROLLUPS or not _ready(con, table):
        return None
    return {"d0": days[0], "d1": days[1], "t0": midnight(days[0]), "t1": midnight(days[1])}


_cache: dict[int, frozenset[str]] | None = None


@contextmanager
def one_evaluation() -> Iterator[None]:
    """Within it, which tables carry the rollup mark is asked of the warehouse once per connection (one
    evaluation reads the same few rollups several times; the answer cannot change within it)."""
    global _cache
    outer, _cache = _cache, {} if _cache is None else _cache
    try:
        yield
    finally:
        _cache = outer


def _ready(con: Any, table: str) -> bool:
    """analytics._sql.rollup_ready: ``table`` and the facts it counts carry ROLLUP_MARK. Every row fetched, so
    the connection has no unfinished result (``register`` refuses to run while one is open)."""
    marked = _cache.get(id(con)) if _cache is not None else None
    if marked is None:
        marked = frozenset(r[0] for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = 'main' AND comment = $mark", {"mark": _sql.ROLLUP_MARK}).fetchall())
        if _cache is not None:
            _cache[id(con)] = marked
    return {table, *_sql.ROLLUP_SOURCES[table]} <= marked
