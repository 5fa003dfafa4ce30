"""Internal send logs and conversion events: JSONL, CSV and Parquet files into the warehouse.

Everything that can run in DuckDB does: the file is read as text columns, validated in SQL
(one ``CASE`` gives each bad row its reason, plausibility bounds included: see
``ingest/bounds.py``), and in one transaction the file's rows replace what it held before
and any earlier rows with the same ``event_id``; the bad ones go to ``rejects`` with their
raw text and line number, and the file's size and mtime go to ``ingest_files``. So:

* **a file is the source of truth for its rows**: loaded again (it grew, or was rewritten),
  its previous rows are deleted and its current rows inserted, so a removed row or a
  corrected ``event_id`` disappears; its previous rejects are replaced by the new ones;
* a run killed at any point leaves each file either fully loaded or not at all;
* every record is loaded or rejected with its line number, and ``loaded + rejected == read``
  for every file (blank lines are not records). One invalid UTF-8 byte, one over-long line or
  one CSV record with a stray quote costs that record only (``ingest/lines.py`` reads such
  files record by record); a file that cannot be read at all is one reject, counted, and
  fails the source (exit status 1);
* ``--full-refresh`` reloads every file and deletes the rows, rejects and file records of
  files that no longer exist;
* every value in the SQL is bound (paths, run ids, source names); only column names,
  which are constants here, are part of the text.

Clean JSONL and Parquet files load in batches (:func:`load_batch`); a batch with any bad
record is redone file by file (:func:`load_file`), where records are numbered.
"""

from __future__ import annotations

import concurrent.futures
import fnmatch
import glob as globlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np

from switchboard.ingest import bounds, changes, lines, runs

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
    {bounds.timestamp_out_of_bounds('TRY_CAST(sent_at AS TIMESTAMPTZ)', 'sent_at', 'sent_at')}
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
    {bounds.timestamp_out_of_bounds('TRY_CAST(occurred_at AS TIMESTAMPTZ)', 'occurred_at', 'occurred_at')}
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


# --------------------------------------------------------------------------- finding files


def walk_glob(pattern: str) -> Iterator[str]:
    """``glob.glob(pattern, recursive=True)`` without its flaw: a symlink loop under ``**`` (a link to
    ``.``) made it recurse until the path grew too long. Here ``**`` enters each real directory once
    (by device and inode), symlinked or not; names starting with a dot match only patterns that do."""
    parts = pattern.split(os.sep)
    i = next((k for k, part in enumerate(parts) if globlib.has_magic(part)), len(parts))
    if i == len(parts):
        if os.path.exists(pattern):
            yield pattern
        return
    root = os.sep.join(parts[:i]) or (os.sep if pattern.startswith(os.sep) else os.curdir)
    yield from _match(root, parts[i:], set(), prefix=os.sep.join(parts[:i]))


def _match(directory: str, rest: list[str], seen: set[tuple[int, int]], prefix: str) -> Iterator[str]:
    if not rest:
        yield prefix
        return
    head, tail = rest[0], rest[1:]
    if head == "**":
        try:
            st = os.stat(directory)
        except OSError:
            return
        if (st.st_dev, st.st_ino) in seen:  # entered already (a loop, or two links to one folder)
            return
        seen.add((st.st_dev, st.st_ino))
        yield from _match(directory, tail, seen, prefix)
        if not tail:  # a trailing ** matches every file below too
            yield from (os.path.join(prefix, n) for n in _names(directory, "*")
                        if not os.path.isdir(os.path.join(directory, n)))
        for name in _names(directory, "*"):
            sub = os.path.join(directory, name)
            if os.path.isdir(sub):
                yield from _match(sub, rest, seen, os.path.join(prefix, name) if prefix else name)
        return
    for name in _names(directory, head) if globlib.has_magic(head) else [head]:
        path = os.path.join(directory, name)
        if (tail and os.path.isdir(path)) or (not tail and os.path.lexists(path)):
            yield from _match(path, tail, seen, os.path.join(prefix, name) if prefix else name)


def _names(directory: str, pattern: str) -> list[str]:
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    hidden = pattern.startswith(".")
    return [n for n in names if fnmatch.fnmatchcase(n, pattern) and (hidden or not n.startswith("."))]


def discover_each(patterns: Iterable[str]) -> tuple[list[str], list[str]]:
    """(files of known formats matched by the globs, each real file once, sends before conversions;
    the patterns that matched no such file). A file reached through two paths (a symlink) is
    loaded once, under the shorter path."""
    found: dict[str, str] = {}  # real path -> path loaded
    unmatched = []
    for pattern in patterns:
        hit = False
        for p in walk_glob(os.path.expanduser(pattern)):
            if os.path.isfile(p) and format_of(p):
                hit = True
                path, real = os.path.abspath(p), os.path.realpath(p)
                if real not in found or (len(path), path) < (len(found[real]), found[real]):
                    found[real] = path
        if not hit:
            unmatched.append(pattern)
    files = sorted(found.values(), key=lambda p: (kind_of(p).name != "send_log", p))
    return files, unmatched


def discover(patterns: Iterable[str]) -> list[str]:
    """Files matched by the globs, known formats only, oldest name first (sends before conversions)."""
    return discover_each(patterns)[0]


# --------------------------------------------------------------------------- one file, record by record


def _stage_file(con: duckdb.DuckDBPyConnection, path: str, kind: Kind, fmt: str) -> None:
    """Temp table ``_rows``: the kind's columns as text, ``line``, ``raw`` (for records that did not
    parse) and ``parse_error``. Raises duckdb.Error or OSError when the file cannot be read at all."""
    if fmt == "parquet":
        present = {r[0] for r in con.execute("DESCRIBE SELECT * FROM read_parquet($path)", {"path": path}).fetchall()}
        cols = ", ".join(
            (f'CAST("{c}" AS VARCHAR) AS {c}' if c in present else f"NULL::VARCHAR AS {c}") for c in kind.columns)
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _rows AS
                SELECT {cols}, file_row_number + 1 AS line, NULL::VARCHAR AS raw, NULL::VARCHAR AS parse_error
                FROM read_parquet($path, file_row_number = true)""", {"path": path})
        return
    if fmt == "csv":
        staged = lines.csv_table(lambda: open(path, "rb"), kind.columns)  # noqa: SIM115 - the reader closes it
        con.register("_rows_arrow", staged)
        con.execute("CREATE OR REPLACE TEMP TABLE _rows AS SELECT * EXCLUDE (problem), problem AS parse_error "
                    "FROM _rows_arrow")
        con.unregister("_rows_arrow")
        return
    if _stage_jsonl_fast(con, path, kind):
        return
    staged, damage = lines.lines_table(lambda: open(path, "rb"))  # noqa: SIM115 - the reader closes it
    if damage:
        raise OSError(damage)
    struct = "{" + ", ".join(f'"{c}": "VARCHAR"' for c in kind.columns) + "}"
    con.register("_lines_arrow", staged)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _rows AS
            SELECT {', '.join(f'j.{c} AS {c}' for c in kind.columns)}, line, raw,
                   CASE WHEN problem IS NOT NULL THEN problem
                        WHEN NOT ok THEN 'malformed JSON (truncated or invalid line)'
                        WHEN j IS NULL THEN 'not a JSON object' END AS parse_error
            FROM (
                SELECT line, raw, problem, ok,
                       CASE WHEN ok AND json_type(raw) = 'OBJECT' THEN from_json(raw, $struct) END AS j
                FROM (SELECT *, problem IS NULL AND coalesce(json_valid(raw), false) AS ok FROM _lines_arrow)
            )""", {"struct": struct})
    con.unregister("_lines_arrow")


def _stage_jsonl_fast(con: duckdb.DuckDBPyConnection, path: str, kind: Kind) -> bool:
    """DuckDB's reader, when it can number the lines: it takes the file, no line is over the limit and
    every line is a record (no blank line), so the n-th row is line n. Most files whose batch had a
    reject are like that (the reject was a validation failure); the others take the line reader."""
    n, longest = _scan_lines(path)
    if longest > lines.MAX_LINE_BYTES + 1:
        return False
    spec = "{" + ", ".join(f"'{c}': 'VARCHAR'" for c in kind.columns) + "}"
    try:
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _rows AS
                SELECT {', '.join(kind.columns)}, row_number() OVER () AS line, NULL::VARCHAR AS raw,
                       NULL::VARCHAR AS parse_error
                FROM read_json($path, format='newline_delimited', records = true, columns={spec})""", {"path": path})
    except duckdb.Error:
        return False
    return con.execute("SELECT count(*) FROM _rows").fetchall()[0][0] == n


@dataclass
class FileOutcome:
    path: str
    status: str  # loaded | skipped | unreadable
    read: int = 0
    loaded: int = 0
    rejected: int = 0
    error: str | None = None


def load_file(
    con: duckdb.DuckDBPyConnection, path: str, run_id: int, *, source: str = "send-logs", force: bool = False
) -> FileOutcome:
    """Load one file in one transaction, record by record (see the module docstring). A file that cannot
    be read at all is an ``unreadable`` outcome: one reject, counted as one record read and rejected."""
    st = os.stat(path)  # taken before reading: if the file grows meanwhile, the next run reloads it
    known = next(iter(con.execute("SELECT size_bytes, mtime FROM ingest_files WHERE path = ?", [path]).fetchall()), None)
    if known and not force and known[0] == st.st_size and known[1] == st.st_mtime:
        return FileOutcome(path, "skipped")
    kind, fmt = kind_of(path), format_of(path)
    assert fmt is not None
    try:
        _stage_file(con, path, kind, fmt)  # outside the transaction: a reader error cannot abort it
    except (duckdb.Error, OSError) as exc:
        return _unreadable(con, path, run_id, source, f"{type(exc).__name__}: {exc}")
    with runs.transaction(con):
        con.execute(f"CREATE OR REPLACE TEMP TABLE _checked AS "
                    f"SELECT *, coalesce(parse_error, {kind.reason_sql}) AS reason FROM _rows")
        loaded = _replace_rows(con, path, run_id, kind)
        rejected = _replace_rejects(con, path, run_id, kind, source)
        runs.record_file(con, path, st, loaded, run_id)
        con.execute("DROP TABLE _checked")
    con.execute("DROP TABLE IF EXISTS _rows")
    return FileOutcome(path, "loaded", loaded + rejected, loaded, rejected)


def _unreadable(con: duckdb.DuckDBPyConnection, path: str, run_id: int, source: str, why: str) -> FileOutcome:
    """The file stays unrecorded in ``ingest_files`` (the next run tries again); its one reject says why."""
    with runs.transaction(con):
        con.execute("DELETE FROM rejects WHERE source = ? AND location = ?", [source, path])
        runs.add_rejects(con, run_id, source, path, [(None, None, f"unreadable file: {why}"[:2000])])
    return FileOutcome(path, "unreadable", 1, 0, 1, why)


def _replace_rows(con: duckdb.DuckDBPyConnection, path: str, run_id: int, kind: Kind) -> int:
    """The file's previous rows go (the file is the source of truth for its rows), then earlier rows of
    the same events from other files; the file's good rows go in, the last of a duplicate winning."""
    changes.delete_rows(con, kind.table, "source_file = $path", {"path": path})
    changes.delete_rows(con, kind.table, "event_id IN (SELECT event_id FROM _checked WHERE reason IS NULL)")
    n = con.execute(
        f"INSERT INTO {kind.table} ({_insert_columns(kind)}) "
        f"SELECT {kind.select_sql}, $path, $run_id FROM _checked WHERE reason IS NULL ORDER BY line",
        {"path": path, "run_id": run_id},
    ).fetchall()[0][0]
    _drop_duplicates(con, kind, {"paths": [path], "run_id": run_id})
    return int(n)


def _drop_duplicates(con: duckdb.DuckDBPyConnection, kind: Kind, params: dict[str, object]) -> None:
    """The same event twice among this load's rows: the later file/line wins, as it would across files."""
    ours = "(ingest_run_id = $run_id AND list_contains($paths, source_file))"
    dups = con.execute(f"SELECT count(*) - count(DISTINCT event_id) FROM {kind.table} WHERE {ours}",
                       params).fetchall()[0][0]
    if dups:
        changes.delete_rows(
            con, kind.table,
            f"""rowid IN (
                    SELECT rid FROM (
                        SELECT rowid AS rid, row_number() OVER (PARTITION BY event_id ORDER BY rowid DESC) AS rn
                        FROM {kind.table} WHERE {ours})
                    WHERE rn > 1)""", params)


def _raw_json(kind: Kind) -> str:
    return "to_json(struct_pack(" + ", ".join(f"{c} := {c}" for c in kind.columns) + "))::VARCHAR"


def _replace_rejects(con: duckdb.DuckDBPyConnection, path: str, run_id: int, kind: Kind, source: str) -> int:
    con.execute("DELETE FROM rejects WHERE source = ? AND location = ?", [source, path])
    return int(con.execute(
        f"""INSERT INTO rejects (reject_id, run_id, source, location, line, raw, reason)
            SELECT nextval('reject_seq'), $run_id, $source, $path, line, coalesce(raw, {_raw_json(kind)}), reason
            FROM _checked WHERE reason IS NOT NULL ORDER BY line""",
        {"run_id": run_id, "source": source, "path": path},
    ).fetchall()[0][0])


# --------------------------------------------------------------------------- batches of files


BATCH_FILES = 64
BATCH_BYTES = {"jsonl": 512 << 20, "parquet": 96 << 20}  # ~2M rows: one table scan per upsert, bounded memory


class _HasRejects(duckdb.Error):
    """A JSONL batch has invalid rows: load its files one by one to number their lines."""


_LINE_COUNTER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="jsonl-lines")


def _count_lines(path: str) -> int:
    """Lines in a file (a last line without a newline counts), at memory speed. A JSONL record is one
    line, so a batch whose inserted rows equal its files' lines had no reject and no blank line."""
    return _scan_lines(path)[0]


def _scan_lines(path: str) -> tuple[int, int]:
    """(lines, bytes of the longest line, newline included) in one pass, vectorised (numpy)."""
    n, longest, run = 0, 0, 0  # run: bytes since the last newline
    last = b"\n"
    with open(path, "rb") as f:
        while chunk := f.read(16 << 20):
            ends = np.flatnonzero(np.frombuffer(chunk, np.uint8) == 10)
            if len(ends):
                longest = max(longest, run + int(ends[0]) + 1,
                              int(np.diff(ends).max()) if len(ends) > 1 else 0)
                run = len(chunk) - int(ends[-1]) - 1
            else:
                run += len(chunk)
            n += len(ends)
            last = chunk[-1:]
    return n + (last != b"\n"), max(longest, run)


def _batch_relation(con: duckdb.DuckDBPyConnection, kind: Kind, fmt: str, files: list[str]) -> str:
    """SQL (over the bound list ``$files``) of the batch's records as text columns, ``filename``, ``line``."""
    if fmt == "parquet":
        present = {r[0] for r in con.execute(
            "DESCRIBE SELECT * FROM read_parquet($files, union_by_name = true)", {"files": files}).fetchall()}
        cols = ", ".join(
            (f'CAST("{c}" AS VARCHAR) AS {c}' if c in present else f"NULL::VARCHAR AS {c}") for c in kind.columns)
        return (f"SELECT {cols}, filename, file_row_number + 1 AS line FROM read_parquet($files, "
                "union_by_name = true, filename = true, file_row_number = true)")
    spec = "{" + ", ".join(f"'{c}': 'VARCHAR'" for c in kind.columns) + "}"
    return (f"SELECT {', '.join(kind.columns)}, filename, NULL::BIGINT AS line "
            f"FROM read_json($files, format='newline_delimited', records = true, columns={spec}, filename = true)")


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
    the batch is rolled back and redone file by file, where lines are numbered. The files'
    previous rows are deleted first (a file is the source of truth for its rows); earlier rows
    with the same event_id in other files are deleted after the insert, found through this
    batch's rows (``ingest_run_id`` and ``source_file``), so the files are not read again for them.

    Raises duckdb.Error (rolled back) when DuckDB's reader refuses any of them; the caller
    then loads them one by one, where a bad line becomes a reject.
    """
    params: dict[str, object] = {"files": paths, "run_id": run_id}
    rel = _batch_relation(con, kind, fmt, paths)
    if fmt == "parquet":
        expected = {f: int(n) for f, n in con.execute(
            "SELECT file_name, sum(num_rows) FROM parquet_file_metadata($files) GROUP BY 1", params).fetchall()}
    else:  # counted in a thread while DuckDB reads (its execute releases the GIL): ~15% of a JSONL load otherwise
        counting = _LINE_COUNTER.submit(lambda: {p: _scan_lines(p) for p in paths})
    ours = "(ingest_run_id = $run_id AND list_contains($files, source_file))"
    with runs.transaction(con):
        had_rows = con.execute(f"SELECT count(*) FROM {kind.table}").fetchall()[0][0] > 0
        if had_rows:  # the files' previous loads: the files now say what they hold
            changes.delete_rows(con, kind.table, "list_contains($files, source_file)", {"files": paths})
        inserted = con.execute(
            f"""INSERT INTO {kind.table} ({_insert_columns(kind)})
                SELECT {kind.select_sql}, filename, $run_id FROM ({rel}) WHERE ({kind.reason_sql}) IS NULL""",
            params).fetchall()[0][0]
        if fmt != "parquet":
            scanned = counting.result()
            expected = {p: n for p, (n, _) in scanned.items()}
            if any(longest > lines.MAX_LINE_BYTES + 1 for _, longest in scanned.values()):
                raise _HasRejects()  # a line over the limit the record-by-record reader rejects: redo there
        con.execute("DELETE FROM rejects WHERE source = $source AND list_contains($files, location)",
                    {"source": source, "files": paths})
        bad: dict[str, int] = {}
        if inserted != sum(expected.values()):
            if fmt != "parquet":  # rejects, blank lines or a file changing under us: redo file by file
                raise _HasRejects()
            bad = _batch_rejects(con, kind, rel, {**params, "source": source})
            if inserted + sum(bad.values()) != sum(expected.values()):  # a file changed while read
                raise _HasRejects()
        if had_rows:  # earlier versions of these events (by event_id) in other files: this batch's rows replace them
            changes.delete_rows(con, kind.table, f"NOT {ours} AND event_id IN "
                                f"(SELECT event_id FROM {kind.table} WHERE {ours})", params)
        _drop_duplicates(con, kind, {"paths": paths, "run_id": run_id})
        outcomes = []
        for path in paths:
            total, b = expected.get(path, 0), bad.get(path, 0)
            runs.record_file(con, path, stats[path], total - b, run_id)
            outcomes.append(FileOutcome(path, "loaded", total, total - b, b))
        return outcomes


def _batch_rejects(con: duckdb.DuckDBPyConnection, kind: Kind, rel: str, params: dict[str, object]) -> dict[str, int]:
    """The bad rows of a Parquet batch into ``rejects`` with their row numbers; their count per file."""
    con.execute(
        f"""INSERT INTO rejects (reject_id, run_id, source, location, line, raw, reason)
            SELECT nextval('reject_seq'), $run_id, $source, filename, line, {_raw_json(kind)}, reason
            FROM (SELECT *, {kind.reason_sql} AS reason FROM ({rel})) WHERE reason IS NOT NULL""", params)
    return {f: int(n) for f, n in con.execute(
        """SELECT location, count(*) FROM rejects WHERE run_id = $run_id AND source = $source
           AND list_contains($files, location) GROUP BY 1""", params).fetchall()}


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


# --------------------------------------------------------------------------- the source


def forget_deleted_files(con: duckdb.DuckDBPyConnection, source: str) -> int:
    """``--full-refresh``: rows, rejects and file records of send-log/conversion files that no longer
    exist are deleted (one transaction). Returns the rows deleted."""
    paths = [p for (p,) in con.execute(
        "SELECT DISTINCT source_file FROM send_log UNION SELECT DISTINCT source_file FROM conversions "
        "UNION SELECT DISTINCT location FROM rejects WHERE source = ?", [source]).fetchall()
        if p and not os.path.exists(p)]
    if not paths:
        return 0
    deleted = 0
    with runs.transaction(con):
        for table in (SENDS.table, CONVERSIONS.table):
            deleted += changes.delete_rows(con, table, "list_contains($paths, source_file)", {"paths": paths})
        con.execute("DELETE FROM rejects WHERE source = $source AND list_contains($paths, location)",
                    {"source": source, "paths": paths})
        con.execute("DELETE FROM ingest_files WHERE list_contains($paths, path)", {"paths": paths})
    return int(deleted)


def _load_files(con: duckdb.DuckDBPyConnection, batch: list[str], stats: dict[str, os.stat_result], run_id: int,
                source: str) -> list[FileOutcome]:
    """A batch in one go when DuckDB's reader takes it whole and no record is bad, else file by file."""
    fmt = format_of(batch[0]) or ""
    if fmt in ("jsonl", "parquet"):
        try:
            return load_batch(con, batch, stats, run_id, kind=kind_of(batch[0]), fmt=fmt, source=source)
        except duckdb.Error:
            pass
    return [load_file(con, path, run_id, source=source, force=True) for path in batch]


def ingest_send_logs(
    con: duckdb.DuckDBPyConnection,
    patterns: Iterable[str],
    run_id: int,
    result: runs.SourceResult,
    *,
    full_refresh: bool = False,
    on_file: Callable[[FileOutcome], None] | None = None,
    warn_unmatched: bool = True,
) -> runs.SourceResult:
    """Load every new or changed file matched by ``patterns``; counts go into ``result``.

    Clean JSONL/Parquet files go in batches (one transaction each); a batch with a bad record,
    and CSV files, go file by file. A file that cannot be read at all fails the source (its
    reject is counted); a pattern that matches nothing is a warning.
    """
    patterns = list(patterns)
    files, unmatched = discover_each(patterns)
    if warn_unmatched:  # the user named these globs; the default folder may well be empty
        result.warnings += [f"--send-logs {p!r} matched no .jsonl/.csv/.parquet file" for p in unmatched]
    if full_refresh:
        result.deleted += forget_deleted_files(con, result.source)
    known = {p: (s, m) for p, s, m in con.execute("SELECT path, size_bytes, mtime FROM ingest_files").fetchall()}
    stats = {p: os.stat(p) for p in files}  # taken before reading: a file growing meanwhile is reloaded next run
    todo = [p for p in files if full_refresh or known.get(p) != (stats[p].st_size, stats[p].st_mtime)]
    unreadable: list[str] = []
    for batch in _batches(todo, stats):
        for outcome in _load_files(con, batch, stats, run_id, result.source):
            result.read += outcome.read
            result.loaded += outcome.loaded
            result.rejected += outcome.rejected
            if outcome.status == "unreadable":
                unreadable.append(f"{os.path.basename(outcome.path)} ({outcome.error})")
            runs.progress_run(con, run_id, result)
            if on_file:
                on_file(outcome)
    result.detail = f"{len(todo) - len(unreadable)} file(s) loaded, {len(files) - len(todo)} unchanged"
    if unreadable:
        result.status = "failed"
        result.error = f"{len(unreadable)} file(s) could not be read (see rejects): " + "; ".join(unreadable)[:1000]
    return result


@dataclass
class SendLogSource:
    """Send logs and conversions behind the source protocol (:class:`runs.Source`)."""

    patterns: list[str]
    name: str = "send-logs"
    warn_unmatched: bool = True  # False for the default globs: an empty default folder is no news

    def run(self, con: duckdb.DuckDBPyConnection, ctx: runs.RunContext) -> None:
        ingest_send_logs(con, self.patterns, ctx.run_id, ctx.result, full_refresh=ctx.full_refresh,
                         on_file=lambda outcome: ctx.progress(outcome.read), warn_unmatched=self.warn_unmatched)
