"""The SQL box's worker process: one checked query under hard limits, the result as Arrow on stdout.

Why a process (``sql_box.run_query`` starts one per query): DuckDB's ``memory_limit`` covers its
buffer manager, not every allocation, and ``interrupt()`` is only looked at between chunks.
``SELECT repeat('x', 1500000000)`` grew to 3 GB against a 1 GB limit and ran 12-51 s under a
2 s timeout. A process can be given limits DuckDB cannot outrun:

* its address space is capped (``RLIMIT_AS``) at its size once the sandbox is open plus the
  memory limit plus ``HEADROOM_MB``: an allocation beyond fails, and DuckDB reports
  "Out of Memory" at once;
* the parent kills it when the time is up, whatever DuckDB is doing.

The result is also made safe to show here: DuckDB types that pandas or Arrow cannot take
(UNION, UHUGEINT, HUGEINT, INTERVAL, BIT, nested types, dates outside years 1-9999 or infinite)
come back as DuckDB's own text for them, so nothing breaks or changes value on the way
(``UHUGEINT`` max used to arrive as ``-1``).

Protocol with the parent (every marker is 4 bytes):
  stdin:  one JSON line ``{"warehouse", "sql", "max_rows", "memory_mb", "max_result_bytes"}``
  stdout: ``RDY\\n`` once the limits are in place (the parent's clock starts there), then
          ``OK!\\n`` + one JSON line ``{"truncated": bool}`` + an Arrow IPC stream,
          or ``ERR\\n`` + the message to show (UTF-8), possibly without ``RDY\\n`` before it.
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path
from typing import BinaryIO

import duckdb
import pyarrow as pa
import pyarrow.ipc

READY, OK, ERR = b"RDY\n", b"OK!\n", b"ERR\n"
ALIAS = "warehouse"
HEADROOM_MB = 256  # the result (capped at max_result_bytes), Arrow and Python beside DuckDB's own budget
MIB = 1024 * 1024

# DuckDB type ids that reach pandas and Arrow unchanged; dates and timestamps too when every
# value lies in years 1-9999. Everything else is shown as DuckDB's text for it.
KEEP = {"boolean", "tinyint", "smallint", "integer", "bigint", "utinyint", "usmallint", "uinteger",
        "ubigint", "float", "double", "decimal", "varchar", "blob", "time"}
TEMPORAL = {"date", "timestamp", "timestamp_s", "timestamp_ms", "timestamp_ns", "timestamp with time zone"}


class LimitExceeded(Exception):
    """The result is larger than the box may show: the message says what to do."""


def open_sandbox(warehouse: Path | str, *, memory_limit: str = "1GB", threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """A locked-down connection that can only read ``warehouse``.

    A private in-memory instance: ``enable_external_access`` and ``lock_configuration`` are
    database-wide in DuckDB 2.0. Arrow export is lossless (UHUGEINT, TIME WITH TIME ZONE and
    BIT travel as DuckDB extension types) so :func:`displayable` sees every value as it is.
    """
    con = duckdb.connect(":memory:")
    path = str(warehouse).replace("'", "''")
    con.execute(f"ATTACH '{path}' AS {ALIAS} (READ_ONLY)")
    con.execute(f"USE {ALIAS}")
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET memory_limit = '{memory_limit}'")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    con.execute("SET arrow_lossless_conversion = true")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def _address_space_kb() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1])
    raise RuntimeError("VmSize missing from /proc/self/status")


def cap_address_space(memory_mb: int) -> int | None:
    """Cap this process's address space at its current size + ``memory_mb`` + headroom; returns the cap.

    Linux only (``/proc``); elsewhere DuckDB's own memory_limit and the parent's kill at the timeout remain.
    """
    try:
        cap = _address_space_kb() * 1024 + (memory_mb + HEADROOM_MB) * MIB
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    except (OSError, ValueError, RuntimeError):
        return None
    return cap


def fetch_limited(con: duckdb.DuckDBPyConnection, sql: str, max_rows: int,
                  max_bytes: int) -> tuple[pa.Table, bool]:
    """The first ``max_rows`` rows of ``sql`` and whether there were more; at most ``max_bytes`` of Arrow."""
    relation = con.sql(sql)
    if relation is None:
        return pa.table({}), False
    reader = relation.to_arrow_reader(min(max_rows + 1, 100_000))
    batches: list[pa.RecordBatch] = []
    rows = size = 0
    for batch in reader:
        batch = batch.slice(0, max_rows + 1 - rows)
        batches.append(batch)
        rows += batch.num_rows
        size += batch.nbytes
        if size > max_bytes:
            raise LimitExceeded(
                f"The result is larger than the SQL box shows ({max_bytes // MIB} MB of data within "
                f"the first {rows:,} rows). Select fewer or narrower columns, aggregate, or add a LIMIT."
            )
        if rows > max_rows:
            break
    table = pa.Table.from_batches(batches, schema=reader.schema) if batches else reader.schema.empty_table()
    return table.slice(0, max_rows), table.num_rows > max_rows


def _unique(names: list[str]) -> list[str]:
    """Column names pandas, Parquet and Streamlit accept: ``SELECT 1 AS a, 2 AS a`` gives a, a (2)."""
    seen: set[str] = set()
    out = []
    for name in names:
        candidate, n = name, 1
        while candidate in seen:
            n += 1
            candidate = f"{name} ({n})"
        seen.add(candidate)
        out.append(candidate)
    return out


def _in_pandas_range(con: duckdb.DuckDBPyConnection, columns: list[str]) -> set[str]:
    """The temporal columns whose values all lie in years 1-9999 (not infinite): pandas takes those."""
    if not columns:
        return set()
    checks = ", ".join(
        f"bool_and(CAST({c} AS DATE) BETWEEN DATE '0001-01-01' AND DATE '9999-12-31') IS NOT FALSE"
        for c in columns
    )
    row = con.execute(f"SELECT {checks} FROM result").fetchall()[0]
    return {c for c, ok in zip(columns, row) if ok}


def displayable(table: pa.Table) -> pa.Table:
    """``table`` with every column in a type pandas and Arrow take without error or change of value."""
    names = _unique(table.column_names)
    if not names:
        return table
    keys = [f"c{i}" for i in range(len(names))]
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET enable_external_access = false")
        con.execute("SET TimeZone = 'UTC'")
        con.register("result", table.rename_columns(keys))
        types = {key: t.id for key, t in zip(keys, con.sql("FROM result").types)}
        temporal_ok = _in_pandas_range(con, [k for k in keys if types[k] in TEMPORAL])
        exprs = [k if types[k] in KEEP or k in temporal_ok else f"CAST({k} AS VARCHAR) AS {k}" for k in keys]
        shown = con.sql(f"SELECT {', '.join(exprs)} FROM result").to_arrow_table()
    finally:
        con.close()
    return shown.rename_columns(names)


def _memory_message(memory_mb: int, err: BaseException) -> str:
    first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return (f"The query needed more than the SQL box's {memory_mb:,} MB of memory and was stopped "
            f"({first_line}). Aggregate, filter or add a LIMIT; a single huge value counts too.")


def answer(con: duckdb.DuckDBPyConnection, request: dict, out: BinaryIO) -> None:
    """Run the request's query and write ``OK!`` + result or ``ERR`` + message to ``out``."""
    memory_mb = int(request["memory_mb"])
    try:
        table, truncated = fetch_limited(con, request["sql"], int(request["max_rows"]),
                                         int(request["max_result_bytes"]))
        table = displayable(table)
    except LimitExceeded as err:
        return _error(out, str(err))
    except (duckdb.OutOfMemoryException, MemoryError) as err:
        return _error(out, _memory_message(memory_mb, err))
    except duckdb.Error as err:
        return _error(out, str(err))
    except Exception as err:  # noqa: BLE001 - the box's boundary: any failure is one readable message
        return _error(out, f"The result cannot be shown ({type(err).__name__}: {err}).")
    out.write(OK + json.dumps({"truncated": truncated}).encode() + b"\n")
    with pa.ipc.new_stream(out, table.schema) as writer:
        writer.write_table(table)


def _error(out: BinaryIO, message: str) -> None:
    out.write(ERR + message.encode("utf-8", "replace"))


def main() -> int:
    request = json.loads(sys.stdin.buffer.readline())
    out = sys.stdout.buffer
    try:
        con = open_sandbox(request["warehouse"], memory_limit=f"{int(request['memory_mb'])}MB")
    except duckdb.Error as err:
        _error(out, f"The warehouse cannot be opened right now: {err}")
        return 0
    cap_address_space(int(request["memory_mb"]))
    out.write(READY)
    out.flush()
    answer(con, request, out)
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
