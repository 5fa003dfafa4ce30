"""The Data page's read-only SQL box: pure functions, testable without Streamlit.

Defence in depth, because analysts paste anything:

1. **Statement check.** DuckDB's own parser (``duckdb.extract_statements``) must see
   exactly one statement of type SELECT (which covers WITH, FROM-first, DESCRIBE,
   SHOW and SUMMARIZE) or EXPLAIN. COPY, ATTACH, INSTALL/LOAD, SET, PRAGMA, CALL,
   CREATE, INSERT, EXPORT, … are refused before anything runs.
2. **Its own sandboxed DuckDB instance.** The box runs in a private in-memory
   database that ATTACHes the snapshot ``READ_ONLY``, then sets
   ``enable_external_access = false`` (no reading or writing files, no ATTACH of
   other paths, no extension install) and ``lock_configuration = true`` so a query
   cannot turn it back on. A separate instance matters: both settings are
   database-wide in DuckDB 2.0, and the dashboard's analytics connection must not
   inherit the lock.
3. **Limits.** At most ``max_rows`` rows come back (the result says when it was
   cut), a memory limit and a wall-clock timeout (``interrupt()``) stop runaway queries.

A bad query raises :class:`SqlBoxError` carrying DuckDB's message, for ``st.error``.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
from switchboard.core.errors import ConfigError

ALLOWED_TYPES = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}
DEFAULT_MAX_ROWS = 10_000
DEFAULT_TIMEOUT_S = 30.0
ALIAS = "warehouse"


class SqlBoxError(ConfigError, ValueError):
    """A query the box refuses or DuckDB rejects; ``str()`` is the message to show."""


@dataclass(frozen=True)
class SqlResult:
    frame: pd.DataFrame
    truncated: bool
    max_rows: int


def check_statement(sql: str) -> str:
    """Return the single allowed statement's text, or raise :class:`SqlBoxError` saying why not."""
    if not sql or not sql.strip():
        raise SqlBoxError("Type a query, e.g. SELECT * FROM message_facts LIMIT 10.")
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as err:
        raise SqlBoxError(str(err)) from None
    if len(statements) != 1:
        raise SqlBoxError(f"One statement at a time, please: found {len(statements)}.")
    statement = statements[0]
    if statement.type not in ALLOWED_TYPES:
        kind = statement.type.name
        raise SqlBoxError(
            f"Only read queries are allowed (SELECT, WITH, FROM, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN); "
            f"this statement is {kind}. The warehouse is read-only: ingest is its only writer."
        )
    return sql.strip().rstrip(";").strip()


def open_sandbox(warehouse: Path | str, *, memory_limit: str = "1GB", threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """A locked-down connection that can only read ``warehouse``."""
    con = duckdb.connect(":memory:")
    path = str(warehouse).replace("'", "''")
    con.execute(f"ATTACH '{path}' AS {ALIAS} (READ_ONLY)")
    con.execute(f"USE {ALIAS}")
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET memory_limit = '{memory_limit}'")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def run_query(
    warehouse: Path | str,
    sql: str,
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> SqlResult:
    """Check ``sql``, then run it in a fresh sandbox on ``warehouse``; at most ``max_rows`` rows.

    A fresh sandbox per query (attaching is a few milliseconds) means no state leaks
    between queries or sessions and a new snapshot is always the one read.
    """
    statement = check_statement(sql)
    try:
        con = open_sandbox(warehouse)
    except duckdb.Error as err:
        raise SqlBoxError(f"The warehouse cannot be opened right now: {err}") from None
    timer = threading.Timer(timeout_s, con.interrupt)
    timer.start()
    try:
        relation = con.sql(statement)
        frame = pd.DataFrame() if relation is None else _fetch_limited(relation, max_rows + 1)
    except duckdb.InterruptException:
        raise SqlBoxError(f"The query ran longer than {timeout_s:.0f} s and was stopped.") from None
    except duckdb.Error as err:
        raise SqlBoxError(str(err)) from None
    finally:
        timer.cancel()
        con.close()
    return SqlResult(frame.head(max_rows), len(frame) > max_rows, max_rows)


def _fetch_limited(relation: duckdb.DuckDBPyRelation, n: int) -> pd.DataFrame:
    """Fetch the first ``n`` rows without materialising the whole result."""
    reader = relation.to_arrow_reader(min(n, 100_000))
    batches = []
    taken = 0
    for batch in reader:
        batches.append(batch)
        taken += batch.num_rows
        if taken >= n:
            break
    table = pa.Table.from_batches(batches, schema=reader.schema) if batches else reader.schema.empty_table()
    return table.slice(0, n).to_pandas()


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode("utf-8")


def to_parquet_bytes(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()
