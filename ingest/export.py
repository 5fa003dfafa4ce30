"""``switchboard export --parquet DIR``: every table and view as day-partitioned Parquet (hive layout).

``DIR/<name>/<day column>=YYYY-MM-DD/data_0.parquet`` for tables with a natural day
(``message_facts/sent_day=2026-11-01/…``), a single ``DIR/<name>/data.parquet`` for the
small ones (dimensions, bookkeeping). Spark, Trino, Athena and DuckDB read the folders as
they are; ``views_sql(DIR)`` gives the ``CREATE VIEW`` statements that rebuild the same
names over the export.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import duckdb

from switchboard.core.settings import Settings
from switchboard.ingest import warehouse

# name -> SQL expression of its UTC day (the partition column); missing: not partitioned
DAY_OF: dict[str, str] = {
    "message_facts": "sent_day",
    "call_facts": "start_day",
    "attempt_facts": "sent_day",
    "twilio_messages": "CAST(timezone('UTC', coalesce(date_sent, date_created)) AS DATE)",
    "twilio_calls": "CAST(timezone('UTC', coalesce(start_time, date_created)) AS DATE)",
    "send_log": "CAST(timezone('UTC', sent_at) AS DATE)",
    "conversions": "CAST(timezone('UTC', occurred_at) AS DATE)",
}
DAY_COLUMN = {"twilio_messages": "day", "twilio_calls": "day", "send_log": "day", "conversions": "day"}
# Tables named "_…" are internal and derived at refresh (the materialised facts, whose views export the
# same rows, the daily rollups, _fallback_chain_facts, _experiment_exposures): not exported. Analytics
# over the export reads the views (each function falls back to them when its rollup is absent).
def _internal(table: str) -> bool:
    return table.startswith("_")


def relations(con: duckdb.DuckDBPyConnection) -> list[str]:
    tables = [r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' AND NOT temporary ORDER BY 1").fetchall()]
    views = [r[0] for r in con.execute(
        "SELECT view_name FROM duckdb_views() WHERE schema_name = 'main' AND NOT internal ORDER BY 1").fetchall()]
    return [t for t in tables if not _internal(t)] + views


def _q(s: str) -> str:
    """A SQL string literal, for the view definitions views_sql hands to other engines (a view cannot
    hold a parameter); what export itself runs binds its values."""
    return "'" + s.replace("'", "''") + "'"


def export_parquet(con: duckdb.DuckDBPyConnection, out: Path, names: list[str] | None = None) -> dict[str, int]:
    """Write every table and view (or only ``names``) under ``out``; returns rows per name."""
    out.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    for name in relations(con) if names is None else names:
        target = out / name
        if target.exists():
            shutil.rmtree(target)
        n = con.execute(f'SELECT count(*) FROM "{name}"').fetchall()[0][0]
        counts[name] = int(n)
        day = DAY_OF.get(name)
        if day and n:  # NULL days go to <col>=__HIVE_DEFAULT_PARTITION__, which readers map back to NULL
            col = DAY_COLUMN.get(name)
            select = f'SELECT *, {day} AS {col} FROM "{name}"' if col else f'SELECT * FROM "{name}"'
            con.execute(f"COPY ({select}) TO $target (FORMAT parquet, PARTITION_BY ({col or day}))",
                        {"target": str(target)})
        else:
            target.mkdir(parents=True, exist_ok=True)
            con.execute(f'COPY (SELECT * FROM "{name}") TO $target (FORMAT parquet)',
                        {"target": str(target / "data.parquet")})
    return counts


def views_sql(out: Path, names: list[str] | None = None) -> list[str]:
    """``CREATE VIEW name AS SELECT * FROM read_parquet(...)`` for each exported name (same columns)."""
    names = names or sorted(p.name for p in out.iterdir() if p.is_dir())
    stmts = []
    for name in names:
        glob = str(out / name / "**" / "*.parquet")
        col = DAY_COLUMN.get(name)
        exclude = f" EXCLUDE ({col})" if col else ""
        stmts.append(
            f'CREATE OR REPLACE VIEW "{name}" AS SELECT *{exclude} FROM '
            f"read_parquet({_q(glob)}, hive_partitioning = true, union_by_name = true)"
        )
    return stmts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--parquet", type=Path, required=True, metavar="DIR", help="output folder")
    parser.add_argument("--data-dir", type=Path, default=None, help="warehouse folder (default: data/)")


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env(data_dir=args.data_dir)
    if not settings.warehouse_path.exists():
        print(f"switchboard export: no warehouse at {settings.warehouse_path}; run 'switchboard ingest' first.",
              file=sys.stderr)
        return 2
    con = warehouse.connect(settings.warehouse_path, read_only=True)
    try:
        counts = export_parquet(con, args.parquet)
    finally:
        con.close()
    for name, n in counts.items():
        print(f"{name:<20} {n:>12,} rows")
    print(f"Exported {len(counts)} tables and views to {args.parquet}")
    return 0
