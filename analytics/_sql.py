"""Tiny helpers shared by the analytics modules: named .sql files, dimensions, periods.

* ``load("delivery_by")`` reads ``analytics/delivery_by.sql`` once (cached). Queries
  carry ``{placeholders}`` only for SQL *fragments we build ourselves*: the WHERE
  clause from ``analytics.filters.where`` and grouping columns taken from an
  allow-list. User values are always bound parameters (``$name``).
* ``dimension(allowed, by)`` resolves an allow-listed grouping name or raises a
  ValueError listing the allowed ones.
* ``run(con, sql, params, columns)`` executes and returns a DataFrame that always has
  the documented columns in order, even when the warehouse is empty.
* ``rollup_where(con, table, start, end, filters)`` is the WHERE clause on one of the internal
  daily rollups (``ROLLUPS``, built by ``ingest/facts.sql``) that selects the rows the view
  would, or None when that rollup cannot answer: a datetime period, a filter on a column it
  does not keep, or no up-to-date rollup (``rollup_ready``: the rollup and the facts it is built
  from carry ``ROLLUP_MARK``). The caller then reads the view; both paths give the same frames
  (``tests/test_analytics_rollup.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from switchboard.analytics.filters import FILTER_COLUMNS, VIEW_CHANNEL, Filters, where

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


# Pre-aggregated internal tables built by ingest/facts.sql: table -> (the view it counts,
# the Filters.extra columns it can answer besides the standard filters of that view, its day column).
# USE_ROLLUPS = False makes every function read the views (tests compare both paths).
USE_ROLLUPS = True
ROLLUPS: dict[str, tuple[str, frozenset[str], str]] = {
    "_daily_attempt_rollup": ("attempt_facts", frozenset({"variant", "encoding"}), "sent_day"),
    "_daily_message_rollup": ("message_facts", frozenset({"carrier", "region", "error_code", "error_category",
                                                          "status"}), "sent_day"),
    "_daily_call_rollup": ("call_facts", frozenset({"carrier", "region", "status"}), "start_day"),
    "_daily_call_duration_rollup": ("call_facts", frozenset({"carrier", "region"}), "start_day"),
    "_daily_latency_rollup": ("message_facts", frozenset({"carrier", "region"}), "sent_day"),
}
# Standard filters a rollup cannot answer (it does not keep their column).
ROLLUP_WITHOUT: dict[str, frozenset[str]] = {"_daily_call_duration_rollup": frozenset({"purposes", "templates"}),
                                             "_daily_latency_rollup": frozenset({"purposes", "templates"})}
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


def rolled_or_view(con: duckdb.DuckDBPyConnection, table: str, name: str, start: date, end: date,
                   filters: Filters | None, **fragments: str) -> pd.DataFrame:
    """The named query ``<name>_rollup`` on the daily rollup ``table`` when it can answer (rollup_where),
    else ``<name>`` on the view that rollup counts; both take a ``{where}`` fragment and ``fragments``."""
    rolled = rollup_where(con, table, start, end, filters)
    if rolled:  # the same counts, pre-aggregated per day
        where, params = rolled
        return con.execute(render(f"{name}_rollup", where=where, **fragments), params).df()
    where, params = where_for(ROLLUPS[table][0], start, end, filters)
    return con.execute(render(name, where=where, **fragments), params).df()


def rollup_where(con: duckdb.DuckDBPyConnection, table: str, start: date, end: date,
                 filters: Filters | None, prefix: str = "f") -> tuple[str, dict[str, Any]] | None:
    """A WHERE clause on the daily rollup ``table`` selecting exactly the rows ``where_for`` selects
    on its view, or None when the rollup cannot answer (a period given as datetimes rather than
    whole UTC days, a filter on a column the rollup does not keep, or no up-to-date rollup in this
    warehouse: see rollup_ready). The caller then reads the view. Parameters are named ``$<prefix>_…``."""
    view, extra_columns, day = ROLLUPS[table]
    if not USE_ROLLUPS or isinstance(start, datetime) or isinstance(end, datetime):
        return None
    if end < start:
        raise ValueError(f"end ({end}) is before start ({start})")
    filters = filters or Filters()
    if any(column not in extra_columns for column, _ in filters.extra):
        return None
    if any(getattr(filters, name) for name in ROLLUP_WITHOUT.get(table, ())):
        return None
    if not rollup_ready(con, table):
        return None
    clauses = [f"{day} >= ${prefix}_start_day", f"{day} <= ${prefix}_end_day"]
    params: dict[str, Any] = {f"{prefix}_start_day": start, f"{prefix}_end_day": end}
    for name, column in FILTER_COLUMNS[view].items():
        values = getattr(filters, name)
        if not values:
            continue
        key = f"{prefix}_{name}"
        if column is None:
            clauses.append(f"list_contains(${key}, ${key}_self)")
            params[key] = list(values)
            params[f"{key}_self"] = VIEW_CHANNEL[view]
        else:
            clauses.append(f"list_contains(${key}, {column})")
            params[key] = list(values)
    for i, (column, value) in enumerate(filters.extra):
        key = f"{prefix}_x{i}"
        clauses.append(f"{column} = ${key}")
        params[key] = value
    return " AND ".join(clauses), params
