"""Shared pieces of the incremental-warehouse tests: a small warehouse written the way the sources write
(every write stamps the run's id; deletes go through ingest.changes.delete_rows), and comparisons of
whole databases (every table and view, doubles rounded: sums may add in another order)."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from switchboard.ingest import changes, incremental, runs, warehouse

D0 = datetime(2026, 11, 3, 21, 0, tzinfo=UTC)  # three hours before a UTC midnight
STATUS_FINAL = ("delivered", "undelivered", "failed")


def open_warehouse(path: Path) -> duckdb.DuckDBPyConnection:
    con = warehouse.connect(path)
    warehouse.create_schema(con)
    return con


class Writer:
    """Writes raw rows as a source does: each ``run()`` block is one ingest run (a new run id)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self.run_id = 0
        self.n = 0

    def start(self) -> int:
        self.run_id = runs.start_run(self.con, "test")
        return self.run_id

    def finish(self) -> None:
        self.con.execute("UPDATE ingest_runs SET status = 'ok', finished_at = current_timestamp WHERE run_id = ?",
                         [self.run_id])

    def message(self, sid: str, at: datetime, *, status: str = "sent", country: str = "GB", price: float | None = None,
                error: int | None = None, source: str = "api", updated: datetime | None = None) -> None:
        self.con.execute(
            """INSERT INTO twilio_messages (sid, account_sid, direction, from_number, to_number, status, error_code,
                   num_segments, body_encoding, price, price_unit, price_usd, date_created, date_sent, date_updated,
                   to_country, to_carrier, source, ingest_run_id)
               VALUES ($sid, 'AC1', 'outbound-api', '+15550001', '+447700900' || right($sid, 3), $status, $error, 1,
                   'GSM-7', -$price, 'USD', $price, $at, $at, $updated, $country, 'Carrier ' || $country, $source, $run)
               ON CONFLICT (sid) DO UPDATE SET status = excluded.status, error_code = excluded.error_code,
                   price = excluded.price, price_usd = excluded.price_usd, date_updated = excluded.date_updated,
                   date_sent = excluded.date_sent, source = excluded.source, ingest_run_id = excluded.ingest_run_id""",
            {"sid": sid, "at": at, "status": status, "country": country, "price": price, "error": error,
             "source": source, "updated": updated or at + timedelta(seconds=30), "run": self.run_id})

    def call(self, sid: str, at: datetime, *, status: str = "completed", price: float | None = 0.05) -> None:
        self.con.execute(
            """INSERT INTO twilio_calls (sid, account_sid, direction, from_number, to_number, status, duration_s,
                   price, price_unit, price_usd, start_time, date_created, date_updated, to_country, source,
                   ingest_run_id)
               VALUES ($sid, 'AC1', 'outbound-api', '+15550001', '+447700900123', $status, 20, -$price, 'USD', $price,
                   $at, $at, $at + INTERVAL 1 MINUTE, 'GB', 'api', $run)
               ON CONFLICT (sid) DO UPDATE SET status = excluded.status, price_usd = excluded.price_usd,
                   ingest_run_id = excluded.ingest_run_id""",
            {"sid": sid, "at": at, "status": status, "price": price, "run": self.run_id})

    def send(self, event_id: str, at: datetime, user: str, *, channel: str = "sms", sid: str | None = None,
             experiment: str | None = None, variant: str | None = None, fallback_of: str | None = None,
             file: str = "sends-1.jsonl", template: str = "t1") -> None:
        self.con.execute(
            """INSERT INTO send_log (event_id, sent_at, channel, purpose, template_id, experiment_id, variant,
                   user_id, country, provider_sid, fallback_of, source_file, ingest_run_id)
               VALUES ($e, $at, $ch, 'password_reset', $tpl, $x, $v, $u, 'GB', $sid, $fb, $file, $run)""",
            {"e": event_id, "at": at, "ch": channel, "tpl": template, "x": experiment, "v": variant, "u": user,
             "sid": sid, "fb": fallback_of, "file": file, "run": self.run_id})

    def conversion(self, event_id: str, user: str, at: datetime, file: str = "conversions-1.jsonl") -> None:
        self.con.execute(
            """INSERT INTO conversions (event_id, user_id, conversion_type, occurred_at, source_file, ingest_run_id)
               VALUES ($e, $u, 'password_reset_completed', $at, $file, $run)""",
            {"e": event_id, "u": user, "at": at, "file": file, "run": self.run_id})

    def delete(self, table: str, where: str, params: dict | None = None) -> int:
        return changes.delete_rows(self.con, table, where, params or {})


def snapshot_copy(con: duckdb.DuckDBPyConnection, src: Path, dest: Path) -> None:
    con.execute("CHECKPOINT")
    shutil.copyfile(src, dest)


def _select_rounded(con: duckdb.DuckDBPyConnection, db: str, name: str) -> str:
    cols = con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = $db AND schema_name = 'main' "
        "AND table_name = $t ORDER BY column_index", {"db": db, "t": name}).fetchall()
    exprs = [f'round("{c}", 6) AS "{c}"' if t in ("DOUBLE", "FLOAT") else f'"{c}"' for c, t in cols]
    return f"SELECT {', '.join(exprs)} FROM {db}.main.{name}"


def relations(con: duckdb.DuckDBPyConnection, db: str) -> set[str]:
    rows = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = $db AND schema_name = 'main' "
        "UNION SELECT view_name FROM duckdb_views() WHERE database_name = $db AND schema_name = 'main' "
        "AND NOT internal", {"db": db}).fetchall()
    return {r[0] for r in rows}


def differences(con: duckdb.DuckDBPyConnection, a: str, b: str, names: set[str] | None = None) -> dict[str, int]:
    """Rows in one database's relation and not the other's (multiset difference both ways), per relation."""
    names = names if names is not None else relations(con, a) | relations(con, b)
    out: dict[str, int] = {}
    for name in sorted(names):
        if name not in relations(con, a) or name not in relations(con, b):
            out[name] = -1
            continue
        qa, qb = _select_rounded(con, a, name), _select_rounded(con, b, name)
        n = con.execute(f"SELECT (SELECT count(*) FROM ({qa} EXCEPT ALL {qb})) + "
                        f"(SELECT count(*) FROM ({qb} EXCEPT ALL {qa}))").fetchall()[0][0]
        if n:
            out[name] = int(n)
    return out


FACT_TABLES = {b.table for b in warehouse.facts_definition().builds}


def incremental_equals_rebuild(con: duckdb.DuckDBPyConnection, path: Path, tmp: Path) -> dict[str, int]:
    """Refresh ``con`` incrementally; copy the file, rebuild the copy in full; the facts, rollups and
    analyst views that differ (an empty dict when equal)."""
    incremental.refresh(con)
    ref = tmp / "rebuilt.duckdb"
    snapshot_copy(con, path, ref)
    other = warehouse.connect(ref)
    try:
        warehouse.refresh_facts(other)
    finally:
        other.close()
    con.execute(f"ATTACH '{ref}' AS _ref (READ_ONLY)")
    try:
        main = con.execute("SELECT current_database()").fetchall()[0][0]
        views = {r[0] for r in con.execute(
            "SELECT view_name FROM duckdb_views() WHERE database_name = $db AND NOT internal", {"db": main}).fetchall()}
        return differences(con, main, "_ref", FACT_TABLES | views)
    finally:
        con.execute("DETACH _ref")
        ref.unlink()
