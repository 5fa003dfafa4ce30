"""Twilio BulkExport day files (``Messages/YYYY-MM-DD.json.gz``: gzipped JSON lines, ISO-8601 times,
a few fields fewer than the API) into ``twilio_messages`` with ``source = 'bulk_export'``.

Read by DuckDB (``read_json``, or line by line when a line is malformed), validated and
upserted by the same SQL as API pages (newest ``date_updated`` wins, so an export never
overwrites a fresher API status), one transaction per file, each file recorded in
``ingest_files`` so it is loaded once (again when it changes).
"""

from __future__ import annotations

import glob as globlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from switchboard.ingest import runs
from switchboard.ingest.twilio_api import MESSAGES, apply_staged

PATTERNS = ("**/*.json.gz", "**/*.jsonl.gz", "**/*.json", "**/*.jsonl")


def discover(directory: Path | str) -> list[str]:
    found: set[str] = set()
    for pattern in PATTERNS:
        found.update(os.path.abspath(p) for p in globlib.glob(os.path.join(str(directory), pattern), recursive=True))
    return sorted(p for p in found if os.path.isfile(p))


def _q(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _stage_fast(con: duckdb.DuckDBPyConnection, path: str) -> None:
    spec = "{" + ", ".join(f"'{f}': 'VARCHAR'" for f in MESSAGES.fields) + "}"
    cols = ", ".join(f'"{f}"' for f in MESSAGES.fields)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _page AS
            SELECT *, {MESSAGES.reason_sql} AS reason FROM (
                SELECT row_number() OVER () AS idx, {cols}
                FROM read_json({_q(path)}, format='newline_delimited', columns={spec}))"""
    )


def _stage_lines(con: duckdb.DuckDBPyConnection, path: str) -> None:
    struct = "{" + ", ".join(f'"{f}": "VARCHAR"' for f in MESSAGES.fields) + "}"
    cols = ", ".join(f'j."{f}" AS "{f}"' for f in MESSAGES.fields)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _page AS
            SELECT idx, {cols},
                   CASE WHEN NOT ok THEN 'malformed JSON (truncated or invalid line)'
                        WHEN j IS NULL THEN 'not a JSON object' ELSE {MESSAGES.reason_sql} END AS reason
            FROM (
                SELECT idx, ok, CASE WHEN ok AND json_type(raw) = 'OBJECT' THEN from_json(raw, '{struct}') END AS j
                FROM (
                    SELECT column0 AS raw, row_number() OVER () AS idx, coalesce(json_valid(column0), false) AS ok
                    FROM read_csv({_q(path)}, columns={{'column0': 'VARCHAR'}}, header=false, delim=chr(0) || chr(31) || chr(30) || chr(0),
                                  quote='', escape='', auto_detect=false, strict_mode=false, max_line_size=10000000)
                ) WHERE raw IS NOT NULL AND trim(raw, chr(32) || chr(9) || chr(13)) <> ''
            )"""
    )


def _raw_lines(con: duckdb.DuckDBPyConnection, path: str, idxs: list[int]) -> dict[int, str]:
    """The raw text of the given lines, body removed (bodies may hold one-time codes)."""
    if not idxs:
        return {}
    rows = con.execute(
        f"""SELECT idx, CASE WHEN json_valid(raw) AND json_type(raw) = 'OBJECT'
                        THEN json_merge_patch(raw, '{{"body": "<dropped>"}}')::VARCHAR
                        ELSE left(raw, 10000) END
            FROM (SELECT column0 AS raw, row_number() OVER () AS idx
                  FROM read_csv({_q(path)}, columns={{'column0': 'VARCHAR'}}, header=false, delim=chr(0) || chr(31) || chr(30) || chr(0),
                                quote='', escape='', auto_detect=false, strict_mode=false, max_line_size=10000000))
            WHERE idx IN (SELECT unnest($idxs))""",
        {"idxs": idxs},
    ).fetchall()
    return {int(i): r for i, r in rows}


def load_file(con: duckdb.DuckDBPyConnection, path: str, run_id: int, *, source: str, force: bool = False) -> tuple[int, int, int] | None:
    """(read, loaded, rejected) or None when the file is unchanged since it was loaded."""
    st = os.stat(path)
    known = next(iter(con.execute("SELECT size_bytes, mtime FROM ingest_files WHERE path = ?", [path]).fetchall()), None)
    if known and not force and known[0] == st.st_size and known[1] == st.st_mtime:
        return None
    with runs.transaction(con):
        try:
            _stage_fast(con, path)
        except duckdb.Error:
            con.execute("ROLLBACK")
            con.execute("BEGIN")
            _stage_lines(con, path)
        read = con.execute("SELECT count(*) FROM _page").fetchall()[0][0]
        bad, _top = apply_staged(con, MESSAGES, run_id=run_id, source="bulk_export")
        con.execute("DELETE FROM rejects WHERE source = ? AND location = ?", [source, path])
        raws = _raw_lines(con, path, [i for i, _ in bad])
        runs.add_rejects(con, run_id, source, path, [(i, raws.get(i), reason) for i, reason in bad])
        runs.record_file(con, path, st, read - len(bad), run_id)
    return int(read), int(read) - len(bad), len(bad)


def ingest_bulk_export(
    con: duckdb.DuckDBPyConnection,
    directory: Path | str,
    run_id: int,
    result: runs.SourceResult,
    *,
    full_refresh: bool = False,
    on_file: Callable[[int], None] | None = None,
) -> runs.SourceResult:
    files = discover(directory)
    done = 0
    for path in files:
        counts = load_file(con, path, run_id, source=result.source, force=full_refresh)
        if counts is None:
            continue
        done += 1
        result.read += counts[0]
        result.loaded += counts[1]
        result.rejected += counts[2]
        if on_file:
            on_file(counts[0])
    result.detail = f"{done} of {len(files)} file(s) loaded"
    return result


@dataclass
class BulkExportSource:
    """BulkExport day files behind the source protocol (:class:`runs.Source`); skipped when the folder is absent."""

    folder: Path
    name: str = "bulk-export"

    def run(self, con: duckdb.DuckDBPyConnection, ctx: runs.RunContext) -> None:
        if not self.folder.is_dir():
            ctx.result.status = "skipped"
            ctx.result.detail = f"no folder {self.folder}"
            return
        ingest_bulk_export(con, self.folder, ctx.run_id, ctx.result, full_refresh=ctx.full_refresh,
                           on_file=ctx.progress)
