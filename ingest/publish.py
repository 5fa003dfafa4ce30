"""Publishing the warehouse without copying its history (docs/ARCHITECTURE.md, "Publishing").

Readers open ``data/warehouse.duckdb`` read-only, as always. That name is a hard link to one of a few
snapshot files in ``data/.warehouse.duckdb.snapshots/``. A run publishes by bringing a snapshot that no
reader holds up to date and then swapping the link (``os.link`` + ``os.replace``: atomic). Readers that
opened the previous snapshot keep it until they reopen; new opens see the new one.

Bringing a snapshot up to date costs what changed since it was last published, not the history: each
snapshot records the watermark it holds (its copy of ``_facts_state``), and the run applies, in one
transaction on that file, the raw rows written after it (``ingest_run_id``), the tombstones of rows
deleted after it (``_deleted_keys``), the facts keys and rollup days rewritten after it
(``_fact_changes``), small tables whole, and the catalogue (views, comments). A snapshot that is too
old (a full facts build happened since, or its changes were pruned), or a table whose columns changed,
gets a fresh copy of the ingest file instead, as every run did before.

"No reader holds it" is checked twice: a forked child asks for the file's lock (it sees this process's
own DuckDB readers too, which a lock taken by this process would not), then ATTACH takes the lock for
real (another process opening it in between gets a lock error, never a half-written file).

A kill -9 anywhere leaves the link on a complete snapshot: the patch is one DuckDB transaction on a
file no reader sees, a copy is written to a temporary name and renamed, and the link is swapped last.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

from switchboard.ingest.changes import KEYS as RAW_KEYS
from switchboard.ingest.changes import kill_point
from switchboard.ingest.incremental import FACT_KEYS

KEEP = 3           # snapshot files kept: the published one, the next one, one a slow reader may hold
_PUB = "_publish_target"
_PRUNED = "(pruned below)"  # the _snapshots row holding the watermark changes were pruned below

# raw tables whose rows change without the row's ingest_run_id moving
_ALSO_CHANGED = {"twilio_events": "matched_run_id > $g"}
# rows are added, never changed or deleted (an experiment member keeps its number forever)
_INSERT_ONLY = {"phone_numbers": "number", "_experiment_members": "member"}
# the writer's own bookkeeping: not kept up to date in snapshots (a copied snapshot holds a stale copy)
WRITER_ONLY = frozenset({"_snapshots", "_fact_changes", "_deleted_keys"})


@dataclass
class PublishReport:
    mode: str = ""          # delta | copy
    path: str = ""          # the snapshot file now published
    seconds: float = 0.0
    watermark: int = 0


def snapshot_dir(warehouse: Path) -> Path:
    return warehouse.with_name(f".{warehouse.name}.snapshots")


def publish(con: duckdb.DuckDBPyConnection, ingest_db: Path, warehouse: Path) -> PublishReport:
    """Publish the state of ``con`` (the writer connection on ``ingest_db``, facts current, no open
    transaction) as ``warehouse``."""
    t0 = time.monotonic()
    sdir = snapshot_dir(warehouse)
    sdir.mkdir(parents=True, exist_ok=True)
    for tmp in sdir.glob("*.tmp"):
        tmp.unlink(missing_ok=True)
    watermark, rebuilt_at = _facts_state(con)
    floor = _pruned_below(con)
    current = _current(warehouse, sdir)
    report = PublishReport(watermark=watermark)
    target = None
    for snap in _by_age(sdir, exclude=current):
        mode = _try_patch(con, snap, rebuilt_at, floor)
        if mode:
            target, report.mode = snap, mode
            break
    if target is None:
        target, report.mode = _new_copy(con, ingest_db, sdir, current), "copy"
    kill_point("publish:before-link")
    _link(target, warehouse)
    kill_point("publish:linked")
    _record(con, sdir, target, watermark)
    report.path, report.seconds = str(target), time.monotonic() - t0
    return report


def _facts_state(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    rows = con.execute("SELECT watermark, rebuilt_at FROM _facts_state").fetchall()
    return (int(rows[0][0]), int(rows[0][1])) if rows else (0, 0)


def _pruned_below(con: duckdb.DuckDBPyConnection) -> int:
    rows = con.execute("SELECT watermark FROM _snapshots WHERE path = $p", {"p": _PRUNED}).fetchall()
    return int(rows[0][0]) if rows else 0


def _current(warehouse: Path, sdir: Path) -> Path | None:
    try:
        ino = warehouse.stat().st_ino
    except FileNotFoundError:
        return None
    return next((p for p in sdir.glob("*.duckdb") if p.stat().st_ino == ino), None)


def _by_age(sdir: Path, *, exclude: Path | None) -> list[Path]:
    """Snapshot files other than the published one, the most recently written first (fewest changes)."""
    snaps = [p for p in sdir.glob("*.duckdb") if p != exclude]
    return sorted(snaps, key=lambda p: p.stat().st_mtime_ns, reverse=True)


def in_use(path: Path) -> bool:
    """Whether any DuckDB (this process's included) holds ``path`` open: a forked child asks for the lock
    (POSIX locks do not conflict within one process, so this process could not ask itself)."""
    pid = os.fork()
    if pid == 0:  # the child: no Python-level cleanup, just the answer
        code = 2
        try:
            fd = os.open(path, os.O_RDWR)
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            code = 0
        except OSError:
            code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) != 0


def _try_patch(con: duckdb.DuckDBPyConnection, snap: Path, rebuilt_at: int, floor: int) -> str | None:
    """Bring ``snap`` up to date if no reader holds it: "delta", or "copy" when it was too old to patch
    (then rewritten from the ingest file). None when it is held."""
    if in_use(snap):
        return None
    path = str(snap).replace("'", "''")
    try:
        con.execute(f"ATTACH '{path}' AS {_PUB}")
    except duckdb.Error:  # held by a reader that opened it since, or not a readable DuckDB file
        return None
    try:
        g = _snapshot_watermark(con)
        if g is None or g < rebuilt_at or g < floor or not _same_tables(con):
            mode = "copy"
        else:
            _apply_delta(con, g)
            con.execute(f"CHECKPOINT {_PUB}")
            mode = "delta"
    finally:
        con.execute(f"DETACH {_PUB}")
    if mode == "copy":
        _copy_into(con, Path(_ingest_path(con)), snap)
    return mode


def _ingest_path(con: duckdb.DuckDBPyConnection) -> str:
    return con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchall()[0][0]


def _snapshot_watermark(con: duckdb.DuckDBPyConnection) -> int | None:
    try:
        rows = con.execute(f"SELECT watermark FROM {_PUB}._facts_state").fetchall()
    except duckdb.Error:
        return None
    return int(rows[0][0]) if rows else None


def _tables(con: duckdb.DuckDBPyConnection, db: str) -> dict[str, tuple[tuple[str, str], ...]]:
    rows = con.execute(
        """SELECT table_name, list(column_name || ' ' || data_type ORDER BY column_index)
           FROM duckdb_columns() WHERE database_name = $db AND schema_name = 'main'
             AND table_name IN (SELECT table_name FROM duckdb_tables() WHERE database_name = $db
                                AND schema_name = 'main')
           GROUP BY table_name""", {"db": db}).fetchall()
    return {name: tuple(cols) for name, cols in rows}


def _main_db(con: duckdb.DuckDBPyConnection) -> str:
    return con.execute("SELECT current_database()").fetchall()[0][0]


def _same_tables(con: duckdb.DuckDBPyConnection) -> bool:
    """Every table both files hold has the same columns (a changed one means a fresh copy)."""
    src, pub = _tables(con, _main_db(con)), _tables(con, _PUB)
    return all(src[t] == pub[t] for t in src.keys() & pub.keys())


def _apply_delta(con: duckdb.DuckDBPyConnection, g: int) -> None:
    """One transaction on the snapshot: what changed after watermark ``g``, then the catalogue."""
    main = _main_db(con)
    src, pub = _tables(con, main), _tables(con, _PUB)
    con.execute("BEGIN")
    try:
        for t in pub.keys() - src.keys() - WRITER_ONLY:
            con.execute(f"DROP TABLE {_PUB}.{t}")
        for t in sorted(src.keys() - WRITER_ONLY):
            _sync_table(con, t, g, created=t not in pub)
            kill_point(f"publish:table:{t}")
        con.execute(f"USE {_PUB}")
        try:
            _sync_views(con, main)
            _sync_comments(con, main)
        finally:
            con.execute(f"USE {main}")
        kill_point("publish:before-commit")
        con.execute("COMMIT")
    except BaseException:
        try:
            con.execute("ROLLBACK")
        except duckdb.Error:
            pass
        raise


def _sync_table(con: duckdb.DuckDBPyConnection, t: str, g: int, *, created: bool) -> None:
    """One table of the snapshot brought from watermark ``g`` to the ingest file's state. The keyed tables
    are first asked whether anything changed (a LIMIT 1 probe), so an unchanged table costs nothing."""
    dst = f"{_PUB}.{t}"
    if created:
        con.execute(f"CREATE TABLE {dst} AS SELECT * FROM {t}")
    elif t in RAW_KEYS:
        _sync_raw(con, t, dst, g)
    elif t in FACT_KEYS:
        _sync_facts(con, t, dst, g)
    elif t in _INSERT_ONLY:
        key = _INSERT_ONLY[t]
        con.execute(f"INSERT INTO {dst} SELECT * FROM {t} ANTI JOIN {dst} USING ({key})")
    else:  # small tables (runs, state, dimensions, bookkeeping, rejects): whole
        con.execute(f"DELETE FROM {dst}")
        con.execute(f"INSERT INTO {dst} SELECT * FROM {t}")


def _sync_raw(con: duckdb.DuckDBPyConnection, t: str, dst: str, g: int) -> None:
    """Rows written after ``g`` (their ingest_run_id) replace their keys; tombstones after ``g`` delete."""
    key = RAW_KEYS[t][0]
    changed = "ingest_run_id > $g" + (f" OR {_ALSO_CHANGED[t]}" if t in _ALSO_CHANGED else "")
    args = {"g": g}
    written = bool(con.execute(f"SELECT 1 FROM {t} WHERE {changed} LIMIT 1", args).fetchall())
    deleted = bool(con.execute(f"SELECT 1 FROM _deleted_keys WHERE tbl = '{t}' AND run_id > $g LIMIT 1",
                               args).fetchall())
    if not (written or deleted):
        return
    con.execute(f"""DELETE FROM {dst} WHERE {key} IN (
                        SELECT {key} FROM {t} WHERE {changed}
                        UNION ALL SELECT key FROM _deleted_keys WHERE tbl = '{t}' AND run_id > $g)""", args)
    if written:
        con.execute(f"INSERT INTO {dst} SELECT * FROM {t} WHERE {changed}", args)


def _sync_facts(con: duckdb.DuckDBPyConnection, t: str, dst: str, g: int) -> None:
    """The keys (or UTC days) the facts builds after ``g`` rewrote: deleted from the snapshot, then copied."""
    key = FACT_KEYS[t]
    args = {"g": g}
    logged = f"FROM _fact_changes WHERE tbl = '{t}' AND watermark > $g"
    if not con.execute(f"SELECT 1 {logged} LIMIT 1", args).fetchall():
        return
    hit = f"{key} IN (SELECT TRY_CAST(key AS {_type_of(con, t, key)}) {logged} AND key IS NOT NULL)"
    if con.execute(f"SELECT 1 {logged} AND key IS NULL LIMIT 1", args).fetchall():
        hit = f"({hit} OR {key} IS NULL)"  # a rollup's NULL day (messages not sent yet)
    con.execute(f"DELETE FROM {dst} WHERE {hit}", args)
    # the rowids first (a scan of the key column), then just those rows: not every column of every row
    con.execute(f"CREATE OR REPLACE TEMP TABLE _publish_rows AS SELECT rowid AS r FROM {t} WHERE {hit}", args)
    con.execute(f"INSERT INTO {dst} SELECT * FROM {t} WHERE rowid IN (SELECT r FROM _publish_rows)")
    con.execute("DROP TABLE _publish_rows")


def _type_of(con: duckdb.DuckDBPyConnection, table: str, column: str) -> str:
    return con.execute(
        "SELECT data_type FROM duckdb_columns() WHERE database_name = current_database() AND schema_name = 'main' "
        "AND table_name = $t AND column_name = $c", {"t": table, "c": column}).fetchall()[0][0]


def _sync_views(con: duckdb.DuckDBPyConnection, main: str) -> None:
    """The snapshot's views become the ingest file's (run under USE of the snapshot: names bind there)."""
    src = dict(con.execute(
        "SELECT view_name, sql FROM duckdb_views() WHERE database_name = $db AND schema_name = 'main' "
        "AND NOT internal", {"db": main}).fetchall())
    have = dict(con.execute(
        "SELECT view_name, sql FROM duckdb_views() WHERE database_name = $db AND schema_name = 'main' "
        "AND NOT internal", {"db": _PUB}).fetchall())
    for name in have.keys() - src.keys():
        con.execute(f"DROP VIEW {_PUB}.{name}")
    pending = [n for n, sql in src.items() if have.get(n) != sql]
    while pending:  # a view naming another new view binds once that one exists
        failed = []
        for name in pending:
            sql = src[name].rstrip().rstrip(";")
            sql = sql.replace("CREATE VIEW", "CREATE OR REPLACE VIEW", 1)
            try:
                con.execute(sql)
            except duckdb.CatalogException:
                failed.append(name)
        if len(failed) == len(pending):
            raise RuntimeError(f"publish: views that do not bind in the snapshot: {failed}")
        pending = failed


def _sync_comments(con: duckdb.DuckDBPyConnection, main: str) -> None:
    """Table, view and column comments (the analyst documentation) as the ingest file has them."""
    for kind, fn, name_col in (("TABLE", "duckdb_tables", "table_name"), ("VIEW", "duckdb_views", "view_name")):
        rows = con.execute(
            f"""SELECT s.{name_col}, s.comment FROM {fn}() s
                JOIN {fn}() p ON p.{name_col} = s.{name_col} AND p.database_name = $pub AND p.schema_name = 'main'
                WHERE s.database_name = $db AND s.schema_name = 'main'
                  AND s.comment IS DISTINCT FROM p.comment""", {"db": main, "pub": _PUB}).fetchall()
        for name, comment in rows:
            con.execute(f"COMMENT ON {kind} {name} IS {_literal(comment)}")
    rows = con.execute(
        """SELECT s.table_name, s.column_name, s.comment FROM duckdb_columns() s
           JOIN duckdb_columns() p ON p.table_name = s.table_name AND p.column_name = s.column_name
                AND p.database_name = $pub AND p.schema_name = 'main'
           WHERE s.database_name = $db AND s.schema_name = 'main' AND s.comment IS DISTINCT FROM p.comment""",
        {"db": main, "pub": _PUB}).fetchall()
    for table, column, comment in rows:
        con.execute(f'COMMENT ON COLUMN {table}."{column}" IS {_literal(comment)}')


def _literal(text: str | None) -> str:
    return "NULL" if text is None else "'" + text.replace("'", "''") + "'"


def _copy_into(con: duckdb.DuckDBPyConnection, ingest_db: Path, dest: Path) -> None:
    """The whole ingest file, checkpointed, copied to a temporary name and renamed onto ``dest``."""
    con.execute("CHECKPOINT")
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.copyfile(ingest_db, tmp)
    kill_point("publish:copied")
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, dest)


def _new_copy(con: duckdb.DuckDBPyConnection, ingest_db: Path, sdir: Path, current: Path | None) -> Path:
    """Every other snapshot is held by a reader (or there is none yet): a new one, by copy. Beyond KEEP
    files the oldest unpublished one goes (a reader holding it keeps reading it: the inode lives on)."""
    snaps = sorted(sdir.glob("*.duckdb"), key=lambda p: p.stat().st_mtime_ns)
    for old in [p for p in snaps if p != current][: max(0, len(snaps) + 1 - KEEP)]:
        old.unlink(missing_ok=True)
    numbers = [int(p.stem.rsplit("-", 1)[-1]) for p in snaps if p.stem.rsplit("-", 1)[-1].isdigit()]
    dest = sdir / f"warehouse-{max(numbers, default=0) + 1}.duckdb"
    _copy_into(con, ingest_db, dest)
    return dest


def _link(snap: Path, warehouse: Path) -> None:
    """``warehouse`` names ``snap`` from now on (a hard link swapped in atomically); a file system without
    hard links gets a copy (the old behaviour)."""
    tmp = warehouse.with_name(warehouse.name + ".link.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(snap, tmp)
    except OSError:
        shutil.copyfile(snap, tmp)
    os.replace(tmp, warehouse)


def _record(con: duckdb.DuckDBPyConnection, sdir: Path, target: Path, watermark: int) -> None:
    """Note which watermark each snapshot holds; prune the change log below the oldest one."""
    existing = {str(p) for p in sdir.glob("*.duckdb")}
    con.execute("BEGIN")
    try:
        con.execute("DELETE FROM _snapshots WHERE path <> $pruned AND NOT list_contains($paths, path)",
                    {"pruned": _PRUNED, "paths": sorted(existing)})
        con.execute("""INSERT INTO _snapshots VALUES ($p, $w, current_timestamp)
                       ON CONFLICT (path) DO UPDATE SET watermark = excluded.watermark,
                       published_at = excluded.published_at""", {"p": str(target), "w": watermark})
        known = {r[0] for r in con.execute("SELECT path FROM _snapshots").fetchall()}
        if existing <= known:  # every snapshot's watermark is known: what all of them hold can go
            floor = con.execute("SELECT min(watermark) FROM _snapshots WHERE path <> $p",
                                {"p": _PRUNED}).fetchall()[0][0]
            con.execute("DELETE FROM _fact_changes WHERE watermark <= $f", {"f": floor})
            con.execute("DELETE FROM _deleted_keys WHERE run_id <= $f", {"f": floor})
            con.execute("""INSERT INTO _snapshots VALUES ($p, $f, current_timestamp)
                           ON CONFLICT (path) DO UPDATE SET watermark = greatest(_snapshots.watermark, excluded.watermark)""",
                        {"p": _PRUNED, "f": floor})
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
