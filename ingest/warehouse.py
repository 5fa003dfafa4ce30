"""The DuckDB warehouse: schema, dimensions, facts and the published snapshot.

One writer, many readers (docs/ARCHITECTURE.md): ingest owns ``data/ingest.duckdb``
read-write; after each successful run it publishes ``data/warehouse.duckdb``
atomically (copy, then rename), which the dashboard and analysts open read-only.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
from dataclasses import dataclass
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
    return split_sql(sql_file.read_text())


def split_sql(text: str) -> list[str]:
    """Split SQL text into statements: ``--`` comments dropped, ``;`` inside quotes kept."""
    out: list[str] = []
    buf: list[str] = []
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


@dataclass(frozen=True)
class FactBuild:
    """One table of facts.sql: its SELECT, the scope views it reads, and its ``-- @table`` options."""

    table: str
    select: str
    options: tuple[str, ...]
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class FactsDefinition:
    scopes: dict[str, str]          # scope view -> the table it narrows
    builds: list[FactBuild]         # in build order
    finish: list[str]               # statements run after every build (the rollup marks)
    text: str


def facts_definition() -> FactsDefinition:
    """facts.sql parsed: ``-- @scope view table`` lines, ``-- @table name opts`` blocks, ``-- @finish``."""
    return _parse_facts(FACTS_SQL.read_text())


@functools.lru_cache(maxsize=4)
def _parse_facts(text: str) -> FactsDefinition:
    scopes = dict(re.findall(r"^-- @scope\s+(\w+)\s+(\w+)\s*$", text, re.M))
    builds: list[FactBuild] = []
    finish: list[str] = []
    parts = re.split(r"^-- @(table .*|finish)\s*$", text, flags=re.M)
    for header, body in zip(parts[1::2], parts[2::2]):
        stmts = split_sql(body)
        if header == "finish":
            finish = stmts
            continue
        name, *opts = header.split()[1:]
        if len(stmts) != 1:
            raise ValueError(f"facts.sql: block {name} must hold exactly one SELECT, found {len(stmts)} statements")
        used = tuple(v for v in scopes if re.search(rf"\b{v}\b", stmts[0]))
        builds.append(FactBuild(name, stmts[0], tuple(opts), used))
    return FactsDefinition(scopes, builds, finish, text)


def fact_builds() -> list[tuple[str, str]]:
    """(table, SELECT) of every facts and rollup table, in build order (the engine-neutral definition)."""
    return [(b.table, b.select) for b in facts_definition().builds]


def full_scope_views() -> dict[str, str]:
    """Each scope view of facts.sql defined as its whole table: the full build's inputs."""
    return {view: f"SELECT * FROM {table}" for view, table in facts_definition().scopes.items()}


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
    """A full build of the facts and rollups (the reference the incremental build must equal), then the
    commented analyst views. Ingest runs call ``ingest.incremental.refresh`` instead."""
    from switchboard.ingest import incremental

    incremental.refresh(con, conversion_window_minutes=conversion_window_minutes, rebuild=True)


def publish_snapshot(ingest_db: Path, warehouse: Path) -> Path:
    """Copy the (closed, checkpointed) ingest database to ``warehouse`` atomically (a whole copy: ingest
    runs publish with ``ingest.publish.publish``, which patches a snapshot instead).

    Readers holding the old file keep reading it (the rename swaps the directory
    entry, not the inode); new opens see the new snapshot.
    """
    tmp = warehouse.with_name(warehouse.name + ".tmp")
    shutil.copyfile(ingest_db, tmp)
    os.replace(tmp, warehouse)
    return warehouse

