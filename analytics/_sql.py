"""Tiny helpers shared by the analytics modules: named .sql files, dimensions, periods.

* ``load("delivery_by")`` reads ``analytics/delivery_by.sql`` once (cached). Queries
  carry ``{placeholders}`` only for SQL *fragments we build ourselves*: the WHERE
  clause from ``analytics.filters.where`` and grouping columns taken from an
  allow-list. User values are always bound parameters (``$name``).
* ``dimension(allowed, by)`` resolves an allow-listed grouping name or raises a
  ValueError listing the allowed ones.
* ``run(con, sql, params, columns)`` executes and returns a DataFrame that always has
  the documented columns in order, even when the warehouse is empty.
* ``counted(con, table, start, end, filters)`` is THE choice of where a count comes from. Every
  counting query (``delivery_counts.sql``, ``errors_by_code.sql``, …) is written once over a
  "counted" relation named in its text (``{messages}``, ``{attempts}``, ``{calls}``,
  ``{call_durations}``, ``{latencies}``): rows carrying the columns of one daily rollup (``ROLLUPS``,
  built by ``ingest/facts.sql``) and a count ``n``. That relation is the rollup itself when it can
  answer (``rollup_where``: a period of whole UTC days, filters and grouping columns it keeps, and an
  up-to-date rollup: ``rollup_ready``, the rollup and the facts it is built from carry
  ``ROLLUP_MARK``), else the facts view with n = 1 per row (``counted_<relation>.sql``). A business
  rule (what is failed, delivered, pending) is therefore written once, as a FILTER on ``sum(n)``; both
  paths give the same frames (``tests/test_analytics_rollup.py``). ``query``/``counted_sql`` fill a
  named query's relations in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path
from string import Formatter
from typing import Any

import duckdb
import pandas as pd

from switchboard.analytics.filters import (
    FILTER_COLUMNS,
    TIME_COLUMN,
    VIEW_CHANNEL,
    Filters,
    day_bounds,
    where,
)

_HERE = Path(__file__).resolve().parent


@cache
def load(name: str) -> str:
    """The text of ``analytics/<name>.sql`` (header comment included: DuckDB ignores it)."""
    path = _HERE / f"{name}.sql"
    if path.parent != _HERE or not path.is_file():
        raise FileNotFoundError(f"No analytics query named {name!r}")
    return path.read_text()


def render(name: str, **fragments: str) -> str:
    """A named query with its trusted fragments (WHERE clauses, allow-listed columns) filled in."""
    return load(name).format(**fragments)


def dimension(allowed: Mapping[str, str], by: str) -> str:
    """The SQL expression for an allow-listed dimension name."""
    if not isinstance(by, str) or by not in allowed:
        raise ValueError(f"Unknown dimension {by!r}; allowed: {', '.join(allowed)}")
    return allowed[by]


def run(con: duckdb.DuckDBPyConnection, sql: str, params: Mapping[str, Any], columns: Iterable[str]) -> pd.DataFrame:
    """Execute ``sql`` with bound ``params``; return a frame with exactly ``columns``."""
    cols = list(columns)
    df = con.execute(sql, dict(params)).df()
    for c in cols:
        if c not in df.columns:
            df[c] = pd.Series(dtype="float64")
    return df[cols]


def empty(columns: Iterable[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})


def previous_period(start: date, end: date) -> tuple[date, date]:
    """The period of equal length just before [start, end] (inclusive days)."""
    days = (end - start).days + 1
    return start - timedelta(days=days), start - timedelta(days=1)


def where_for(view: str, start: date, end: date, filters: Filters | None, prefix: str = "f",
              alias: str = "") -> tuple[str, dict[str, Any]]:
    """``analytics.filters.where`` with the day order checked (start after end is a caller bug)."""
    if end < start:
        raise ValueError(f"end ({end}) is before start ({start})")
    return where(view, start, end, filters, alias=alias, prefix=prefix)


def country_names(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """iso2 -> iso3, name from the countries dimension (250 rows).

    Attached after aggregation: carrying a name string through a 10M-row GROUP BY
    (``any_value(country_name)``) costs more than the aggregate itself.
    """
    return con.execute("SELECT iso2, iso3, name FROM countries").df().set_index("iso2")


def add_country_names(con: duckdb.DuckDBPyConnection, df: pd.DataFrame, key: str = "country_iso2",
                      iso3: str | None = None, name: str | None = "country_name") -> pd.DataFrame:
    names = country_names(con)
    if iso3:
        df[iso3] = df[key].map(names["iso3"])
    if name:
        df[name] = df[key].map(names["name"])
    return df


def split_quantiles(df: pd.DataFrame, column: str, names: list[str]) -> pd.DataFrame:
    """Spread a list column from ``quantile_cont(x, [q1, q2, ...])`` into one column per quantile."""
    values = df[column].tolist() if column in df else []
    for j, name in enumerate(names):
        df[name] = [float(v[j]) if hasattr(v, "__len__") and len(v) > j and v[j] is not None else float("nan")
                    for v in values]
    return df.drop(columns=[column]) if column in df else df


# Pre-aggregated internal tables built by ingest/facts.sql, and the "counted" relations the analytics
# queries read. Each query is written ONCE over a counted relation: rows with a count ``n`` and the
# columns of one daily rollup. The rollup is such a relation (n = the rows of that day and cell);
# the facts view is one too once every row gets n = 1 (``counted_<relation>.sql``: the same column
# names, the sums per row). ``counted`` picks which one answers; both give the same frames
# (tests/test_analytics_rollup.py). USE_ROLLUPS = False makes every call read the facts.
USE_ROLLUPS = True


@dataclass(frozen=True)
class Rollup:
    """One daily rollup: the view it counts, its day column, the columns it keeps (a filter or a
    grouping on any other column reads the facts) and the relation name queries use for it."""

    view: str
    day: str
    keeps: frozenset[str]
    relation: str


ROLLUPS: dict[str, Rollup] = {
    "_daily_attempt_rollup": Rollup("attempt_facts", "sent_day", frozenset({
        "sent_day", "channel", "country_iso2", "purpose", "template_id", "variant", "encoding", "provider_status",
        "is_delivered", "converted", "is_fallback", "no_fallback", "n", "cost_usd", "segments", "segmented"}),
        "attempts"),
    "_daily_message_rollup": Rollup("message_facts", "sent_day", frozenset({
        "sent_day", "country_iso2", "region", "carrier", "purpose", "template_id", "error_code", "error_category",
        "status", "is_delivered", "is_failed", "is_pending", "n", "cost_usd", "cost_sq", "priced"}), "messages"),
    "_daily_call_rollup": Rollup("call_facts", "start_day", frozenset({
        "start_day", "country_iso2", "region", "carrier", "purpose", "template_id", "status", "is_answered",
        "is_machine", "n", "cost_usd"}), "calls"),
    "_daily_call_duration_rollup": Rollup("call_facts", "start_day", frozenset({
        "start_day", "country_iso2", "region", "carrier", "duration_s", "n"}), "call_durations"),
    "_daily_latency_rollup": Rollup("message_facts", "sent_day", frozenset({
        "sent_day", "country_iso2", "region", "carrier", "delivery_latency_s", "n"}), "latencies"),
}
# relation name in a query's {placeholder} -> its rollup
RELATIONS: dict[str, str] = {r.relation: table for table, r in ROLLUPS.items()}
# Each internal table -> the facts tables it is built from. ingest/facts.sql ends by writing
# ROLLUP_MARK as the comment of all of them; CREATE OR REPLACE drops a comment, so a warehouse
# refreshed by a build that did not rebuild the rollups (an older one) fails rollup_ready and the
# analytics read the views, never a stale rollup.
ROLLUP_MARK = "switchboard rollups v2"
ROLLUP_SOURCES: dict[str, tuple[str, ...]] = {
    "_daily_attempt_rollup": ("_attempt_facts",),
    "_daily_message_rollup": ("_message_facts",),
    "_daily_call_rollup": ("_call_facts",),
    "_daily_call_duration_rollup": ("_call_facts",),
    "_daily_latency_rollup": ("_message_facts",),
    "_daily_prefix_rollup": ("_message_facts",),  # alerts.pumping's baseline
    "_fallback_chain_facts": ("_attempt_facts", "_call_facts"),
}


def has_table(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Whether the warehouse has the internal ``table`` (an older warehouse gets it at its next refresh)."""
    return bool(con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = 'main' "
        "AND table_name = $t", {"t": table}).fetchone()[0])


def rollup_ready(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Whether the internal ``table`` exists and was built by this build's facts.sql in the same refresh
    as the facts it counts: it and each of its ROLLUP_SOURCES carry ROLLUP_MARK as comment.
    False on a warehouse without it (the Parquet export, an older warehouse) or refreshed by an
    older build: the caller reads the views."""
    names = [table, *ROLLUP_SOURCES[table]]
    marked = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = 'main' "
        "AND list_contains($names, table_name) AND comment = $mark", {"names": names, "mark": ROLLUP_MARK}
    ).fetchone()[0]
    return marked == len(names)


@dataclass(frozen=True)
class Counted:
    """A counted relation for one query: ``relation`` goes after FROM (a parenthesised SELECT with the
    period and filters applied, an ``is_current`` column when split), ``params`` are its bound values."""

    relation: str
    params: dict[str, Any]
    rolled: bool


def counted(con: duckdb.DuckDBPyConnection, table: str, start: date, end: date, filters: Filters | None, *,
            prefix: str = "f", split_at: date | None = None, columns: Iterable[str] = ()) -> Counted:
    """THE choice between a daily rollup and its facts: ``table``'s rows when it can answer (see
    rollup_where; ``columns`` are further columns the query groups on, which it must keep), else the
    facts counted one per row (``counted_<relation>.sql``). Same column names either way.

    ``split_at``: adds ``is_current``, true for rows sent on or after that day (or instant), so one
    query can count two adjacent periods in one pass. Parameters are named ``$<prefix>_…``."""
    spec = ROLLUPS[table]
    rolled = rollup_where(con, table, start, end, filters, prefix)
    if rolled and set(columns) <= spec.keeps:
        where, params = rolled
        current = "NULL"
        if split_at is not None:
            current, params[f"{prefix}_split_day"] = f"{spec.day} >= ${prefix}_split_day", split_at
        return Counted(f"(SELECT *, {current} AS is_current FROM {table} WHERE {where})", params, True)
    where, params = where_for(spec.view, start, end, filters, prefix=prefix)
    current = "NULL"
    if split_at is not None:
        current, params[f"{prefix}_split"] = f"{TIME_COLUMN[spec.view]} >= ${prefix}_split", day_bounds(
            split_at, split_at)[0]
    return Counted(f"({render(f'counted_{spec.relation}', where=where, current=current)})", params, False)


def counted_sql(con: duckdb.DuckDBPyConnection, name: str, start: date, end: date, filters: Filters | None, *,
                split_at: date | None = None, columns: Iterable[str] = (),
                **fragments: str) -> tuple[str, dict[str, Any]]:
    """The named query with each counted relation it reads (``{messages}``, ``{attempts}``, ``{calls}``,
    ``{call_durations}``, ``{latencies}``) picked by ``counted``, and ``fragments`` filled in."""
    wanted = {field for _, field, _, _ in Formatter().parse(load(name)) if field in RELATIONS}
    params: dict[str, Any] = {}
    for relation in sorted(wanted):
        picked = counted(con, RELATIONS[relation], start, end, filters, prefix=relation, split_at=split_at,
                         columns=columns)
        fragments[relation] = picked.relation
        params |= picked.params
    return render(name, **fragments), params


def query(con: duckdb.DuckDBPyConnection, name: str, start: date, end: date, filters: Filters | None, *,
          split_at: date | None = None, columns: Iterable[str] = (), **fragments: str) -> pd.DataFrame:
    """Run the named query over its counted relations (``counted_sql``) and return its frame."""
    sql, params = counted_sql(con, name, start, end, filters, split_at=split_at, columns=columns, **fragments)
    return con.execute(sql, params).df()


def rollup_where(con: duckdb.DuckDBPyConnection, table: str, start: date, end: date,
                 filters: Filters | None, prefix: str = "f") -> tuple[str, dict[str, Any]] | None:
    """A WHERE clause on the daily rollup ``table`` selecting exactly the rows ``where_for`` selects
    on its view, or None when the rollup cannot answer (a period given as datetimes rather than
    whole UTC days, a filter on a column the rollup does not keep, or no up-to-date rollup in this
    warehouse: see rollup_ready). The caller then reads the view. Parameters are named ``$<prefix>_…``."""
    spec = ROLLUPS[table]
    if not USE_ROLLUPS or isinstance(start, datetime) or isinstance(end, datetime):
        return None
    if end < start:
        raise ValueError(f"end ({end}) is before start ({start})")
    filters = filters or Filters()
    standard = {column for name, column in FILTER_COLUMNS[spec.view].items() if getattr(filters, name) and column}
    if not (standard | {column for column, _ in filters.extra}) <= spec.keeps:
        return None
    if not rollup_ready(con, table):
        return None
    clauses = [f"{spec.day} >= ${prefix}_start_day", f"{spec.day} <= ${prefix}_end_day"]
    params: dict[str, Any] = {f"{prefix}_start_day": start, f"{prefix}_end_day": end}
    for name, column in FILTER_COLUMNS[spec.view].items():
        values = getattr(filters, name)
        if not values:
            continue
        key = f"{prefix}_{name}"
        if column is None:
            clauses.append(f"list_contains(${key}, ${key}_self)")
            params[key] = list(values)
            params[f"{key}_self"] = VIEW_CHANNEL[spec.view]
        else:
            clauses.append(f"list_contains(${key}, {column})")
            params[key] = list(values)
    for i, (column, value) in enumerate(filters.extra):
        key = f"{prefix}_x{i}"
        clauses.append(f"{column} = ${key}")
        params[key] = value
    return " AND ".join(clauses), params
