"""What a run changed in the raw tables, for the incremental facts (ingest/incremental.py) and the
incremental publish (ingest/publish.py).

Inserts and updates need no bookkeeping: every write stamps the row's ``ingest_run_id`` with the
writing run's id (run ids only grow), so "changed since watermark W" is ``ingest_run_id > W``. The
upserts leave a row alone when a re-read brings nothing new, so an unchanged lag window changes nothing.
Deletes leave no row to stamp: each delete goes through :func:`delete_rows`, which first writes the
deleted keys to ``_deleted_keys`` (a tombstone per row, stamped with the running run's id), in the same
transaction as the delete.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import duckdb

# raw table -> (key column, auxiliary column the facts need to find what the deleted row affected)
KEYS: dict[str, tuple[str, str]] = {
    "twilio_messages": ("sid", "NULL"),
    "twilio_calls": ("sid", "NULL"),
    "send_log": ("event_id", "NULL"),
    "conversions": ("event_id", "user_id"),  # the facts key conversions by member
    "twilio_events": ("event_key", "sid"),
}

# the running run is the newest: ingest has one writer (the ingest DB's lock)
_RUN = "(SELECT coalesce(max(run_id), 0) FROM ingest_runs)"


def delete_rows(con: duckdb.DuckDBPyConnection, table: str, where: str, params: dict[str, Any] | list[Any] | None = None) -> int:
    """``DELETE FROM table WHERE where``, leaving a tombstone per deleted row. Returns the rows deleted.

    Call it inside the caller's transaction (the tombstones and the delete commit together)."""
    key, aux = KEYS[table]
    args = params if params is not None else {}
    con.execute(
        f"INSERT INTO _deleted_keys (run_id, tbl, key, aux) SELECT {_RUN}, '{table}', {key}, {aux} "
        f"FROM {table} WHERE {where}", args)
    return int(con.execute(f"DELETE FROM {table} WHERE {where}", args).fetchall()[0][0])


def kill_point(name: str) -> None:
    """Crash-test hook: ``SWITCHBOARD_KILL_AT=<name>`` kills this process here with SIGKILL, so the crash
    suite stops a build or a publish at a named step (progress), never after a guessed delay."""
    if os.environ.get("SWITCHBOARD_KILL_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
