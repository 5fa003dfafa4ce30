"""The DuckDB warehouse: schema, dimensions, facts and the published snapshot.

One writer, many readers (docs/ARCHITECTURE.md): ingest owns ``data/ingest.duckdb``
read-write; after each successful run it publishes ``data/warehouse.duckdb``
atomically (copy, then rename), which the dashboard and analysts open read-only.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb

_HERE = Path(__file__).resolve().parent
SCHEMA_SQL = _HERE / "schema.sql"
FACTS_SQL = _HERE / "facts.sql"
VIEWS_SQL = _HERE / "views.sql"


def connect(path: Path | str, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open a warehouse with UTC as the session time zone (days are UTC days everywhere)."""
    con = duckdb.connect(str(path), read_only=read_only)
    con.execute("SET TimeZone = 'UTC'")
    return con


def _statements(sql_file: Path) -> list[str]:
    """Split a .sql file into statements: ``--`` comments dropped, ``;`` inside quotes kept."""
    out: list[str] = []
    buf: list[str] = []
    text = sql_file.read_text()
    i, n, quote = 0, len(text), ""
    while i < n:
        ch = text[i]
        if quote:
            buf.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
            buf.append(ch)
        elif text.startswith("--", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        elif ch == ";":
            out.append("".join(buf).strip())
            buf = []
        else:
            buf.append(ch)
        i += 1
    out.append("".join(buf).strip())
    return [s for s in out if s]


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create every table (idempotent) and (re)load the dimensions; facts untouched."""
    for stmt in _statements(SCHEMA_SQL):
        con.execute(stmt)
    refresh_dimensions(con)


def create_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create every table (idempotent), the dimension tables' contents and empty facts + views."""
    ensure_schema(con)
    refresh_facts(con)


def refresh_dimensions(con: duckdb.DuckDBPyConnection) -> None:
    """(Re)load the countries, error-code and fx dimensions from code and data/."""
    from switchboard.ingest import enrich

    countries = enrich.countries_frame()
    con.execute("DELETE FROM countries")
    con.register("_countries_df", countries)
    con.execute(
        "INSERT INTO countries SELECT iso2, iso3, name, region, calling_code, subregion FROM _countries_df"
    )
    con.unregister("_countries_df")

    errors = enrich.error_codes_frame()
    con.execute("DELETE FROM error_codes")
    con.register("_errors_df", errors)
    con.execute(
        "INSERT INTO error_codes SELECT code, name, channel, category, retryable, what_to_do, more_info FROM _errors_df"
    )
    con.unregister("_errors_df")

    fx = enrich.fx_frame()
    con.execute("DELETE FROM fx_rates")
    con.register("_fx_df", fx)
    con.execute("INSERT INTO fx_rates SELECT currency, usd_per_unit FROM _fx_df")
    con.unregister("_fx_df")


def refresh_facts(con: duckdb.DuckDBPyConnection, *, conversion_window_minutes: int = 30) -> None:
    """Rebuild the materialised facts and (re)create the commented analyst views."""
    for stmt in _statements(FACTS_SQL):
        if "$conversion_window_minutes" in stmt:
            con.execute(stmt, {"conversion_window_minutes": conversion_window_minutes})
        else:
            con.execute(stmt)
    for stmt in _statements(VIEWS_SQL):
        con.execute(stmt)


def publish_snapshot(ingest_db: Path, warehouse: Path) -> Path:
    """Copy the (closed, checkpointed) ingest database to ``warehouse`` atomically.

    Readers holding the old file keep reading it (the rename swaps the directory
    entry, not the inode); new opens see the new snapshot.
    """
    tmp = warehouse.with_name(warehouse.name + ".tmp")
    shutil.copyfile(ingest_db, tmp)
    os.replace(tmp, warehouse)
    return warehouse

