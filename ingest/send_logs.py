"""Internal send logs and conversion events: JSONL, CSV and Parquet files into the warehouse.

Everything runs in DuckDB (its own ``read_json`` / ``read_csv`` / ``read_parquet``): the
file is read as text columns, validated in SQL (one ``CASE`` gives each bad row its
reason), and in one transaction the good rows replace any earlier rows with the same
``event_id`` (delete, then insert), the bad ones go to ``rejects`` with their raw text,
and the file's size and mtime go to ``ingest_files``. So:

* a file is loaded once; a file that grew (or changed) is loaded again, whole, safely:
  its rows replace themselves and its previous rejects are replaced by the new ones;
* a run killed at any point leaves each file either fully loaded or not at all;
* ``loaded + rejected == read`` for every file (blank lines are not records).

JSONL takes a fast path (``read_json`` with every column as VARCHAR); when DuckDB's
reader refuses the file (a malformed or truncated line), the file is read again line by
line as plain text and each line parsed with ``json_valid``/``from_json``, so a bad line
becomes a reject with its line number instead of failing the file.
"""

from __future__ import annotations

import concurrent.futures
import glob as globlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from switchboard.ingest import runs

SEND_COLUMNS = (
    "event_id", "sent_at", "channel", "purpose", "template_id", "experiment_id", "variant", "campaign_id",
    "user_id", "country", "locale", "provider_sid", "fallback_of", "error_code",
)
CONVERSION_COLUMNS = ("event_id", "user_id", "conversion_type", "occurred_at")
CHANNELS = ("sms", "voice", "push", "email")
FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet"}


def _is_container(col: str) -> str:
    return f"(left(ltrim({col}), 1) IN ('{{', '['))"


def _blank(col: str) -> str:
    return f"({col} IS NULL OR trim({col}) = '')"


def _as_double(col: str) -> str:
    return f"TRY_CAST(trim({col}) AS DOUBLE)"


def _not_integer(col: str) -> str:
    """Set, not blank, and not a whole number in INTEGER's range ('21211' and '21211.0' are fine)."""
    d = _as_double(col)
    return f"(NOT {_blank(col)} AND ({d} IS NULL OR TRY_CAST({d} AS INTEGER) IS DISTINCT FROM {d}))"


@dataclass(frozen=True)
class Kind:
    name: str  # send_log | conversions
    table: str
    columns: tuple[str, ...]
    timestamp: str
    reason_sql: str  # CASE … END over the text columns: NULL when the row is good
    select_sql: str  # the typed columns inserted into the table, in table order (before source_file, run id)


_SEND_REASON = f"""CASE
    WHEN {_blank('event_id')} THEN 'missing event_id'
    WHEN {_is_container('event_id')} THEN 'event_id is not a string'
    WHEN {_blank('user_id')} THEN 'missing user_id'
    WHEN {_is_container('user_id')} THEN 'user_id is not a string'
    WHEN {_blank('sent_at')} THEN 'missing sent_at'
    WHEN TRY_CAST(sent_at AS TIMESTAMPTZ) IS NULL THEN 'bad sent_at timestamp: ' || left(sent_at, 60)
    WHEN channel IS NULL THEN 'missing channel'
    WHEN channel NOT IN ('sms', 'voice', 'push', 'email') THEN 'unknown channel: ' || left(channel, 60)
    WHEN country IS NOT NULL AND NOT regexp_full_match(country, '[A-Za-z]{{2}}')
         THEN 'country is not ISO 3166 alpha-2: ' || left(country, 60)
    WHEN {_is_container('provider_sid')} OR {_is_container('fallback_of')} THEN 'provider_sid/fallback_of is not a string'
    WHEN error_code IS NOT NULL AND {_not_integer('error_code')} THEN 'error_code is not an integer: ' || left(error_code, 60)
END"""

_SEND_SELECT = """event_id, TRY_CAST(sent_at AS TIMESTAMPTZ) AS sent_at, channel, purpose, template_id, experiment_id,
    variant, campaign_id, user_id, upper(country) AS country, locale, nullif(provider_sid, '') AS provider_sid,
    nullif(fallback_of, '') AS fallback_of, CAST(TRY_CAST(nullif(trim(error_code), '') AS DOUBLE) AS INTEGER) AS error_code"""

_CONV_REASON = f"""CASE
    WHEN {_blank('event_id')} THEN 'missing event_id'
    WHEN {_is_container('event_id')} THEN 'event_id is not a string'
    WHEN {_blank('user_id')} THEN 'missing user_id'
    WHEN {_is_container('user_id')} THEN 'user_id is not a string'
    WHEN {_blank('conversion_type')} THEN 'missing conversion_type'
    WHEN {_blank('occurred_at')} THEN 'missing occurred_at'
    WHEN TRY_CAST(occurred_at AS TIMESTAMPTZ) IS NULL THEN 'bad occurred_at timestamp: ' || left(occurred_at, 60)
END"""

_CONV_SELECT = "event_id, user_id, conversion_type, TRY_CAST(occurred_at AS TIMESTAMPTZ) AS occurred_at"

SENDS = Kind("send_log", "send_log", SEND_COLUMNS, "sent_at", _SEND_REASON, _SEND_SELECT)
CONVERSIONS = Kind("conversions", "conversions", CONVERSION_COLUMNS, "occurred_at", _CONV_REASON, _CONV_SELECT)


def _insert_columns(kind: Kind) -> str:
    """By name: a column added later (send_log.error_code) sits at the end of an older table."""
    return ", ".join((*kind.columns, "source_file", "ingest_run_id"))


def kind_of(path: str) -> Kind:
    """``conversions-*`` files hold conversions; every other matched file is a send log."""
    return CONVERSIONS if "conversion" in os.path.basename(path).lower() else SENDS


def format_of(path: str) -> str | None:
    return FORMATS.get(Path(path).suffix.lower())


def default_globs(send_logs_dir: Path) -> list[str]:
    return [str(send_logs_dir / "sends-*"), str(send_logs_dir / "conversions-*")]


def discover(patterns: Iterable[str]) -> list[str]:
    """Files matched by the globs, known formats only, oldest name first (sends before conversions)."""
    found: set[str] = set()
    for pattern in patterns:
        for p in globlib.glob(os.path.expanduser(pattern), recursive=True):
            if os.path.isfile(p) and format_of(p):
                found.add(os.path.abspath(p))
    return sorted(found, key=lambda p: (kind_of(p).name != "send_log", p))


# --------------------------------------------------------------------------- relations over one file


def _text_relation(con: duckdb.DuckDBPyConnection, path: str, kind: Kind, fmt: str) -> str:
    """SQL of a relation with every column of ``kind`` as VARCHAR, for the fast readers."""
    lit = _quote(path)
    if fmt == "parquet":
        present = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet({lit})").fetchall()}
        cols = ", ".join(
            (f'CAST("{c}" AS VARCHAR) AS {c}' if c in present else f"NULL::VARCHAR AS {c}") for c in kind.columns
        )
        return f"SELECT {cols} FROM read_parquet({lit})"
    if fmt == "csv":
        present = {
            r[0]
            for r in con.execute(
                f"DESCRIBE SELECT * FROM read_csv({lit}, header=true, all_varchar=true, delim=',', quote='\"', ignore_errors=true)"
            ).fetchall()
        }
        cols = ", ".join((f'"{c}" AS {c}' if c in present else f"NULL::VARCHAR AS {c}") for c in kind.columns)
        return (
            f"SELECT {cols} FROM read_csv({lit}, header=true, all_varchar=true, delim=',', quote='\"', ignore_errors=true, "
            "store_rejects=true, rejects_table='_csv_rejects', rejects_scan='_csv_scans')"
        )
    spec = "{" + ", ".join(f"'{c}': 'VARCHAR'" for c in kind.columns) + "}"
    return f"SELECT {', '.join(kind.columns)} FROM read_json({lit}, format='newline_delimited', columns={spec})"


def _line_relation(path: str, kind: Kind) -> str:
    """Each non-blank line of a JSONL file as text, parsed on its own: nothing can fail the read."""
    struct = "{" + ", ".join(f'"{c}": "VARCHAR"' for c in kind.columns) + "}"
    cols = ", ".join(f"j.{c} AS {c}" for c in kind.columns)
    return f"""
        SELECT {cols}, line, raw,
               CASE WHEN NOT ok THEN 'malformed JSON (truncated or invalid line)'
                    WHEN j IS NULL THEN 'not a JSON object' END AS parse_error
        FROM (
            SELECT raw, line, ok,
                   CASE WHEN ok AND json_type(raw) = 'OBJECT' THEN from_json(raw, '{struct}') END AS j
            FROM (
                SELECT column0 AS raw, row_number() OVER () AS line, coalesce(json_valid(column0), false) AS ok
                FROM read_csv({_quote(path)}, columns={{'column0': 'VARCHAR'}}, header=false, delim=chr(0) || chr(31) || chr(30) || chr(0),
                              quote='', escape='', auto_detect=false, strict_mode=false, max_line_size=10000000)
            )
            WHERE raw IS NOT NULL AND trim(raw, chr(32) || chr(9) || chr(13)) <> ''
        )"""


def _quote(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


# --------------------------------------------------------------------------- loading


@dataclass
class FileOutcome:
    path: str
    status: str  # loaded | skipped
    read: int = 0
    loaded: int = 0
    rejected: int = 0


def load_file(
    con: duckdb.DuckDBPyConnection, path: str, run_id: int, *, source: str = "send-logs", force: bool = False
) -> FileOutcome:
    """Load one file in one transaction (see the module docstring)."""
    st = os.stat(path)  # taken before reading: if the file grows meanwhile, the next run reloads it
    known = next(iter(con.execute("SELECT size_bytes, mtime FROM ingest_files WHERE path = ?", [path]).fetchall()), None)
    if known and not force and known[0] == st.st_size and known[1] == st.st_mtime:
        return FileOutcome(path, "skipped")
    kind, fmt = kind_of(path), format_of(path)
    assert fmt is not None
    with runs.transaction(con):
        try:
            outcome = _load_fast(con, path, run_id, kind, fmt, source)
        except duckdb.Error:
            if fmt != "jsonl":
                raise
            con.execute("ROLLBACK")
            con.execute("BEGIN")
            outcome = _load_lines(con, path, run_id, kind, source)
        runs.record_file(con, path, st, outcome.loaded, run_id)
    return outcome


def _replace_rows(
    con: duckdb.DuckDBPyConnection, good_sql: str, path: str, run_id: int, kind: Kind
) -> int:
    """Upsert by event_id: delete rows the file redefines, insert the file's rows, keep the last duplicate."""
    con.execute(f"DELETE FROM {kind.table} WHERE event_id IN (SELECT event_id FROM ({good_sql}))")
    n = con.execute(
        f"INSERT INTO {kind.table} ({_insert_columns(kind)}) "
        f"SELECT {kind.select_sql}, {_quote(path)}, {int(run_id)} FROM ({good_sql})"
    ).fetchall()[0][0]
    dups = con.execute(
        f"SELECT count(*) - count(DISTINCT event_id) FROM {kind.table} WHERE source_file = ? AND ingest_run_id = ?",
        [path, run_id],
    ).fetchall()[0][0]
    if dups:  # the same event twice in one file: the later line wins, as it would across files
        con.execute(
            f"""DELETE FROM {kind.table} WHERE rowid IN (
                    SELECT rid FROM (
                        SELECT rowid AS rid, row_number() OVER (PARTITION BY event_id ORDER BY rowid DESC) AS rn
                        FROM {kind.table} WHERE source_file = ? AND ingest_run_id = ?)
                    WHERE rn > 1)""",
            [path, run_id],
        )
    return int(n)


def _replace_rejects(con: duckdb.DuckDBPyConnection, rejects_sql: str, path: str, run_id: int, source: str) -> int:
    con.execute("DELETE FROM rejects WHERE source = ? AND location = ?", [source, path])
    return int(
        con.execute(
            f"""INSERT INTO rejects (reject_id, run_id, source, location, line, raw, reason)
                SELECT nextval('reject_seq'), {int(run_id)}, {_quote(source)}, {_quote(path)}, line, raw, reason
                FROM ({rejects_sql})"""
        ).fetchall()[0][0]
    )


def _load_fast(
    con: duckdb.DuckDBPyConnection, path: str, run_id: int, kind: Kind, fmt: str, source: str
) -> FileOutcome:
    rel = _text_relation(con, path, kind, fmt)
    if fmt == "csv":  # read once: the reader's own rejects are collected per scan
        con.execute(f"CREATE OR REPLACE TEMP TABLE _csv AS {rel}")
        rel = "SELECT * FROM _csv"
    checked = f"SELECT *, {kind.reason_sql} AS reason FROM ({rel})"
    loaded = _replace_rows(con, f"SELECT * FROM ({checked}) WHERE reason IS NULL", path, run_id, kind)
    raw_json = "to_json(struct_pack(" + ", ".join(f"{c} := {c}" for c in kind.columns) + "))::VARCHAR"
    numbered = f"SELECT *, row_number() OVER () AS line FROM ({checked})"
    rejects_sql = f"SELECT line, {raw_json} AS raw, reason FROM ({numbered}) WHERE reason IS NOT NULL"
    rejected = _replace_rejects(con, rejects_sql, path, run_id, source)
    if fmt == "csv":  # rows DuckDB's CSV reader could not split into the header's columns
        rejected += _csv_reader_rejects(con, path, run_id, source)
    return FileOutcome(path, "loaded", loaded + rejected, loaded, rejected)


def _csv_reader_rejects(con: duckdb.DuckDBPyConnection, path: str, run_id: int, source: str) -> int:
    try:
        rows = con.execute(
            "SELECT line, csv_line, error_type || ': ' || error_message FROM _csv_rejects"
        ).fetchall()
    except duckdb.Error:
        return 0
    con.execute("DROP TABLE IF EXISTS _csv")
    con.execute("DROP TABLE IF EXISTS _csv_rejects")
    con.execute("DROP TABLE IF EXISTS _csv_scans")
    runs.add_rejects(con, run_id, source, path, [(int(r[0]), r[1], f"malformed CSV row ({r[2]})") for r in rows])
    return len(rows)


def _load_lines(con: duckdb.DuckDBPyConnection, path: str, run_id: int, kind: Kind, source: str) -> FileOutcome:
    lines = _line_relation(path, kind)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _lines AS {lines}")  # one parse, two uses
    checked = f"SELECT *, coalesce(parse_error, {kind.reason_sql}) AS reason FROM _lines"
    loaded = _replace_rows(con, f"SELECT * FROM ({checked}) WHERE reason IS NULL", path, run_id, kind)
    rejected = _replace_rejects(
        con, f"SELECT line, raw, reason FROM ({checked}) WHERE reason IS NOT NULL", path, run_id, source
    )
    con.execute("DROP TABLE _lines")
    return FileOutcome(path, "loaded", loaded + rejected, loaded, rejected)


# --------------------------------------------------------------------------- batches of files


BATCH_FILES = 64
BATCH_BYTES = {"jsonl": 512 << 20, "parquet": 96 << 20}  # ~2M rows: one table scan per upsert, bounded memory


def _list_literal(paths: list[str]) -> str:
    return "[" + ", ".join(_quote(p) for p in paths) + "]"


class _HasRejects(duckdb.Error):
    """A JSONL batch has invalid rows: load its files one by one to number their lines."""


_LINE_COUNTER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="jsonl-lines")


def _count_lines(path: str) -> int:
    """Lines in a file (a last line without a newline counts), at memory speed. A JSONL record is one
    line, so a batch whose inserted rows equal its files' lines had no reject and no blank line."""
    n, last = 0, b"\n"
    with open(path, "rb") as f:
        while chunk := f.read(16 << 20):
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return n + (last != b"\n")


def load_batch(
    con: duckdb.DuckDBPyConnection, paths: list[str], stats: dict[str, os.stat_result], run_id: int, *,
    kind: Kind, fmt: str, source: str,
) -> list[FileOutcome]:
    """Several clean files of one kind and format in one transaction: one streaming read that
    validates, types and inserts the good rows, then the replacement of earlier versions.

    The good rows go straight from the reader into the table (no staging copy: that copy was
    half the time at 10M rows). Whether any row was bad is known from the count inserted
    against the files' own counts (Parquet metadata; JSONL lines, one record per line): only
    then are the files read again, for the rejects (Parquet, with row numbers), or, for JSONL,
    the batch is rolled back and redone file by file, where lines are numbered. Earlier rows
    with the same event_id (earlier files, earlier runs, a grown file's previous load) are
    deleted after the insert, found through this batch's rows (``ingest_run_id`` and
    ``source_file``), so the files are not read a second time for them either.

    Raises duckdb.Error (rolled back) when DuckDB's reader refuses any of them; the caller
    then loads them one by one, where a bad line becomes a reject.
    """
    files = _list_literal(paths)
    ours = f"(ingest_run_id = {int(run_id)} AND source_file IN ({', '.join(_quote(p) for p in paths)}))"
    if fmt == "parquet":
        present = {r[0] for r in con.execute(
            f"DESCRIBE SELECT * FROM read_parquet({files}, union_by_name = true)").fetchall()}
        cols = ", ".join(
            (f'CAST("{c}" AS VARCHAR) AS {c}' if c in present else f"NULL::VARCHAR AS {c}") for c in kind.columns)
        rel = (f"SELECT {cols}, filename, file_row_number + 1 AS line FROM read_parquet({files}, "
               "union_by_name = true, filename = true, file_row_number = true)")
        expected = {f: int(n) for f, n in con.execute(
            f"SELECT file_name, sum(num_rows) FROM parquet_file_metadata({files}) GROUP BY 1").fetchall()}
    else:
        spec = "{" + ", ".join(f"'{c}': 'VARCHAR'" for c in kind.columns) + "}"
        rel = (f"SELECT {', '.join(kind.columns)}, filename, NULL::BIGINT AS line "
               f"FROM read_json({files}, format='newline_delimited', columns={spec}, filename = true)")
        # counted in a thread while DuckDB reads (its execute releases the GIL): ~15% of a JSONL load otherwise
        counting = _LINE_COUNTER.submit(lambda: {p: _count_lines(p) for p in paths})
    raw_json = "to_json(struct_pack(" + ", ".join(f"{c} := {c}" for c in kind.columns) + "))::VARCHAR"
    with runs.transaction(con):
        had_rows = con.execute(f"SELECT count(*) FROM {kind.table}").fetchall()[0][0] > 0
        inserted = con.execute(
            f"""INSERT INTO {kind.table} ({_insert_columns(kind)})
                SELECT {kind.select_sql}, filename, {int(run_id)} FROM ({rel}) WHERE ({kind.reason_sql}) IS NULL"""
        ).fetchall()[0][0]
        if fmt != "parquet":
            expected = counting.result()
        con.execute(f"DELETE FROM rejects WHERE source = {_quote(source)} AND location IN (SELECT unnest({files}))")
        bad: dict[str, int] = {}
        if inserted != sum(expected.values()):
            if fmt != "parquet":  # rejects, blank lines or a file changing under us: redo file by file
                raise _HasRejects()
            con.execute(
                f"""INSERT INTO rejects (reject_id, run_id, source, location, line, raw, reason)
                    SELECT nextval('reject_seq'), {int(run_id)}, {_quote(source)}, filename, line, {raw_json}, reason
                    FROM (SELECT *, {kind.reason_sql} AS reason FROM ({rel})) WHERE reason IS NOT NULL"""
            )
            bad = {f: int(n) for f, n in con.execute(
                f"""SELECT location, count(*) FROM rejects WHERE run_id = {int(run_id)} AND source = {_quote(source)}
                    AND location IN (SELECT unnest({files})) GROUP BY 1""").fetchall()}
            if inserted + sum(bad.values()) != sum(expected.values()):  # a file changed while read
                raise _HasRejects()
        if had_rows:  # earlier versions of these events (by event_id): this batch's rows replace them
            con.execute(
                f"""DELETE FROM {kind.table} WHERE NOT {ours}
                    AND event_id IN (SELECT event_id FROM {kind.table} WHERE {ours})"""
            )
        dups = con.execute(
            f"SELECT count(*) - count(DISTINCT event_id) FROM {kind.table} WHERE {ours}").fetchall()[0][0]
        if dups:  # the same event twice: the later file/line wins
            con.execute(
                f"""DELETE FROM {kind.table} WHERE rowid IN (
                        SELECT rid FROM (
                            SELECT rowid AS rid,
                                   row_number() OVER (PARTITION BY event_id ORDER BY rowid DESC) AS rn
                            FROM {kind.table} WHERE {ours})
                        WHERE rn > 1)"""
            )
        outcomes = []
        for path in paths:
            total = expected.get(path, 0)
            b = bad.get(path, 0)
            st = stats[path]
            runs.record_file(con, path, st, total - b, run_id)
            outcomes.append(FileOutcome(path, "loaded", total, total - b, b))
        return outcomes


def _batches(paths: list[str], stats: dict[str, os.stat_result]) -> list[list[str]]:
    """Consecutive files of the same kind and format, bounded in count and bytes."""
    out: list[list[str]] = []
    for path in paths:
        key = (kind_of(path).name, format_of(path))
        last = out[-1] if out else None
        if (last and (kind_of(last[0]).name, format_of(last[0])) == key and len(last) < BATCH_FILES
                and sum(stats[p].st_size for p in last) + stats[path].st_size <= BATCH_BYTES.get(key[1] or "", 0)):
            last.append(path)
        else:
            out.append([path])
    return out


def ingest_send_logs(
    con: duckdb.DuckDBPyConnection,
    patterns: Iterable[str],
    run_id: int,
    result: runs.SourceResult,
    *,
    full_refresh: bool = False,
    on_file: Callable[[FileOutcome], None] | None = None,
) -> runs.SourceResult:
    """Load every new or changed file matched by ``patterns``; counts go into ``result``.

    Clean JSONL/Parquet files go in batches (one transaction each); a batch DuckDB's reader
    refuses, and CSV files, go file by file (malformed lines become rejects).
    """
    files = discover(patterns)
    known = {p: (s, m) for p, s, m in con.execute("SELECT path, size_bytes, mtime FROM ingest_files").fetchall()}
    stats = {p: os.stat(p) for p in files}  # taken before reading: a file growing meanwhile is reloaded next run
    todo = [p for p in files if full_refresh or known.get(p) != (stats[p].st_size, stats[p].st_mtime)]
    skipped = len(files) - len(todo)
    done = 0

    def record(outcome: FileOutcome) -> None:
        result.read += outcome.read
        result.loaded += outcome.loaded
        result.rejected += outcome.rejected
        if on_file:
            on_file(outcome)

    for batch in _batches(todo, stats):
        fmt = format_of(batch[0])
        outcomes: list[FileOutcome] | None = None
        if fmt in ("jsonl", "parquet"):
            try:
                outcomes = load_batch(con, batch, stats, run_id, kind=kind_of(batch[0]), fmt=fmt or "",
                                      source=result.source)
            except duckdb.Error:
                outcomes = None
        if outcomes is None:
            outcomes = []
            for path in batch:
                try:
                    outcomes.append(load_file(con, path, run_id, source=result.source, force=True))
                except duckdb.Error as exc:  # not even readable as lines (e.g. a corrupt Parquet file)
                    con.execute("DELETE FROM rejects WHERE source = ? AND location = ?", [result.source, path])
                    runs.add_rejects(con, run_id, result.source, path, [(None, None, f"unreadable file: {exc}")])
                    result.detail += f" unreadable: {os.path.basename(path)};"
                    outcomes.append(FileOutcome(path, "unreadable"))
        for outcome in outcomes:
            done += 1
            record(outcome)
    result.detail = f"{done} file(s) loaded, {skipped} unchanged" + (f";{result.detail}" if result.detail else "")
    return result
