"""Twilio BulkExport day files (``Messages/YYYY-MM-DD.json.gz``: gzipped JSON lines, ISO-8601 times,
a few fields fewer than the API) into ``twilio_messages`` with ``source = 'bulk_export'``.

Read line by line (``ingest/lines.py``: a bad line is a reject of its own, a cut gzip stream
keeps the lines before the cut), validated and upserted by the same SQL as API pages (newest ``date_updated`` wins, so an export never
overwrites a fresher API status), one transaction per file, each file recorded in
``ingest_files`` so it is loaded once (again when it changes). ``--full-refresh`` reads every file again
and deletes the ``bulk_export`` rows no file names any more (a day file deleted or rewritten); rows the
API gave are the API's to delete.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import duckdb

from switchboard.ingest import changes, lines, runs
from switchboard.ingest.send_logs import walk_glob
from switchboard.ingest.twilio_api import MESSAGES, apply_staged

PATTERNS = ("**/*.json.gz", "**/*.jsonl.gz", "**/*.json", "**/*.jsonl")


def discover(directory: Path | str) -> list[str]:
    """Day files under ``directory`` at any depth; a symlink loop is not followed, each real file once."""
    found: dict[str, str] = {}
    for pattern in PATTERNS:
        for p in walk_glob(os.path.join(str(directory), pattern)):
            if os.path.isfile(p):
                found.setdefault(os.path.realpath(p), os.path.abspath(p))
    return sorted(found.values())


def _opener(path: str) -> Callable[[], IO[bytes]]:
    return (lambda: gzip.open(path, "rb")) if path.endswith(".gz") else (lambda: open(path, "rb"))


def _stage(con: duckdb.DuckDBPyConnection, path: str) -> str | None:
    """Temp table ``_page`` (idx = line number, the fields as text, reason, raw) from the file's lines, read
    one by one (``ingest/lines.py``): a line with invalid UTF-8, over 1 MiB, not JSON or not an object is a
    reject of its own. Returns the damage message when the stream broke (a cut gzip file) after those lines."""
    staged, damage = lines.lines_table(_opener(path))
    struct = "{" + ", ".join(f'"{f}": "VARCHAR"' for f in MESSAGES.fields) + "}"
    cols = ", ".join(f'j."{f}" AS "{f}"' for f in MESSAGES.fields)
    con.register("_bulk_lines", staged)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _page AS
            SELECT * EXCLUDE (parse_error), coalesce(parse_error, {MESSAGES.reason_sql}) AS reason FROM (
                SELECT line AS idx, {cols}, raw,
                       CASE WHEN problem IS NOT NULL THEN problem
                            WHEN NOT ok THEN 'malformed JSON (truncated or invalid line)'
                            WHEN j IS NULL THEN 'not a JSON object' END AS parse_error
                FROM (SELECT line, raw, problem, ok,
                             CASE WHEN ok AND json_type(raw) = 'OBJECT' THEN from_json(raw, $struct) END AS j
                      FROM (SELECT *, problem IS NULL AND coalesce(json_valid(raw), false) AS ok FROM _bulk_lines)))""",
        {"struct": struct})
    con.unregister("_bulk_lines")
    return damage


def load_file(con: duckdb.DuckDBPyConnection, path: str, run_id: int, *, source: str, force: bool = False,
              seen: str | None = None) -> tuple[int, int, int, str | None] | None:
    """(read, loaded, rejected, damage) or None when the file is unchanged since it was loaded. A damaged
    file (a gzip stream cut short, or not gzip at all) keeps the lines read before the damage, adds one
    reject for it (counted in read and rejected) and is not recorded as loaded: the next run tries again.
    ``seen``: a temp table collecting the sids the file names (a full refresh deletes the others)."""
    st = os.stat(path)
    known = next(iter(con.execute("SELECT size_bytes, mtime FROM ingest_files WHERE path = ?", [path]).fetchall()), None)
    if known and not force and known[0] == st.st_size and known[1] == st.st_mtime:
        return None
    damage = _stage(con, path)  # outside the transaction: nothing in it can abort the load
    params = {"run_id": run_id, "source": source, "path": path}
    with runs.transaction(con):
        read = con.execute("SELECT count(*) FROM _page").fetchall()[0][0]
        if seen:  # a rejected line still names its sid: its earlier good version is not deleted
            con.execute(f"INSERT INTO {seen} SELECT sid FROM _page WHERE sid IS NOT NULL")
        bad, _top = apply_staged(con, MESSAGES, run_id=run_id, source="bulk_export")
        con.execute("DELETE FROM rejects WHERE source = ? AND location = ?", [source, path])
        con.execute(
            """INSERT INTO rejects (reject_id, run_id, source, location, line, raw, reason)
               SELECT nextval('reject_seq'), $run_id, $source, $path, idx,
                      CASE WHEN json_valid(raw) AND json_type(raw) = 'OBJECT'  -- bodies may hold one-time codes
                           THEN json_merge_patch(raw, '{"body": "<dropped>"}')::VARCHAR
                           -- a line that is not JSON: whatever follows "body" goes, to the end of the line
                           ELSE regexp_replace(left(raw, 10000), '"body"[[:space:]]*:.*$', '"body": "<dropped>"') END,
                      reason
               FROM _page WHERE reason IS NOT NULL ORDER BY idx""", params)
        if damage:
            runs.add_rejects(con, run_id, source, path, [(None, None, damage)])
        else:
            runs.record_file(con, path, st, read - len(bad), run_id)
    con.execute("DROP TABLE IF EXISTS _page")
    rejected = len(bad) + (1 if damage else 0)
    return int(read) + (1 if damage else 0), int(read) - len(bad), rejected, damage


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
    damaged = []
    seen = "_bulk_seen" if full_refresh else None
    if seen:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {seen} (sid VARCHAR)")
    for path in files:
        counts = load_file(con, path, run_id, source=result.source, force=full_refresh, seen=seen)
        if counts is None:
            continue
        done += 1
        result.read += counts[0]
        result.loaded += counts[1]
        result.rejected += counts[2]
        if counts[3]:
            damaged.append(f"{os.path.basename(path)} ({counts[3]})")
        runs.progress_run(con, run_id, result)
        if on_file:
            on_file(counts[0])
    if damaged:  # what could be read is in; the user must know the rest is not
        result.status = "failed"
        result.error = f"{len(damaged)} file(s) damaged (see rejects): " + "; ".join(damaged)[:1000]
    elif seen:  # --full-refresh read every file whole: rows no file names any more go (files deleted or rewritten)
        with runs.transaction(con):
            result.deleted += changes.delete_rows(
                con, "twilio_messages", f"source = 'bulk_export' AND sid NOT IN (SELECT sid FROM {seen})")
    if seen:
        con.execute(f"DROP TABLE IF EXISTS {seen}")
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
