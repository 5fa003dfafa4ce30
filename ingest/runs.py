"""What every source shares: the source protocol and its run context, transactions, ``ingest_runs`` rows,
rejects, file records and the run report."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

import duckdb

from switchboard.core.twilio import redact_text


@dataclass
class SourceResult:
    """What one source did in one run. ``read == loaded + rejected`` always."""

    source: str
    status: str = "ok"  # ok | failed | skipped
    read: int = 0
    loaded: int = 0
    rejected: int = 0
    deleted: int = 0  # rows a --full-refresh found gone from the source (not part of read)
    pending_fetched: int = 0  # pending records outside the window fetched by sid (counted in read)
    pending_gone: int = 0  # of those, the ones the source answered 404 for
    seconds: float = 0.0
    cursor: str | None = None
    error: str | None = None
    detail: str = ""
    warnings: list[str] = field(default_factory=list)  # not failures, but the user should know (printed even --quiet)
    auth_failed: bool = False  # Twilio refused the credentials: the CLI exits 2

    @property
    def rate(self) -> float:
        return self.read / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        text = (
            f"{self.source:<12} {self.status:<7} read {self.read:>10,}  loaded {self.loaded:>10,}  "
            f"rejected {self.rejected:>7,}  {self.seconds:6.1f} s  {self.rate:>9,.0f}/s"
        )
        if self.detail:
            text += f"  {self.detail}"
        if self.pending_fetched or self.pending_gone:
            text += f"  {self.pending_fetched:,} pending record(s) fetched by sid"
            if self.pending_gone:
                text += f" ({self.pending_gone:,} not found upstream, kept)"
        if self.deleted:
            text += f"  {self.deleted:,} row(s) deleted (gone from the source)"
        for warning in self.warnings:
            text += f"\n{'':<13}warning: {warning}"
        if self.error:
            text += f"\n{'':<13}error: {redact(self.error)}"
        return text


@dataclass
class RunContext:
    """What a source needs to know about the run it is part of (as dlt hands its sources a context)."""

    run_id: int  # this source's row in ingest_runs
    result: SourceResult  # counts, status, cursor, warnings: the source fills it in
    lag: timedelta  # re-read this much before the cursor
    since: datetime | None = None  # an explicit window (UTC); None: unbounded on that side
    until: datetime | None = None
    full_refresh: bool = False  # read everything again and delete what the source no longer holds
    progress: Callable[[int], None] = lambda n: None  # records read since the last call (the progress bar)


class Source(Protocol):
    """One kind of input. ``run`` loads it into the ingest database, committing as it goes (every page or
    file whole, with its audit counts), fills ``ctx.result``, and raises only for what stops the source."""

    name: str

    def run(self, con: duckdb.DuckDBPyConnection, ctx: RunContext) -> None: ...


@dataclass
class IngestReport:
    results: list[SourceResult] = field(default_factory=list)
    published: str | None = None
    seconds: float = 0.0
    facts_mode: str = ""          # full | incremental | unchanged (ingest/incremental.py)
    facts_seconds: float = 0.0
    publish_mode: str = ""        # delta | copy (ingest/publish.py)
    publish_seconds: float = 0.0
    hook_error: str | None = None  # the after_facts hook's failure (recorded, never raised)

    @property
    def read_seconds(self) -> float:
        return sum(r.seconds for r in self.results)

    @property
    def ok(self) -> bool:
        return all(r.status != "failed" for r in self.results)

    def result(self, source: str) -> SourceResult:
        for r in self.results:
            if r.source == source:
                return r
        raise KeyError(source)

    @property
    def loaded(self) -> int:
        return sum(r.loaded for r in self.results)

    @property
    def rejected(self) -> int:
        return sum(r.rejected for r in self.results)

    def summary(self) -> str:
        lines = [r.line() for r in self.results]
        verdict = "ok" if self.ok else "FAILED: " + ", ".join(r.source for r in self.results if r.status == "failed")
        split = f"read {self.read_seconds:.1f} s, facts {self.facts_seconds:.1f} s ({self.facts_mode or '-'})"
        if self.published:
            split += f", publish {self.publish_seconds:.1f} s ({self.publish_mode})"
        lines.append(f"ingest {verdict} in {self.seconds:.1f} s ({split}); "
                     f"snapshot: {self.published or 'not published'}")
        if self.hook_error:
            lines.append(f"after-ingest step failed: {self.hook_error}")
        return "\n".join(lines)

    def __str__(self) -> str:
        parts = ", ".join(f"{r.source} {r.loaded:,} loaded/{r.rejected:,} rejected ({r.status})" for r in self.results)
        return f"{'ok' if self.ok else 'FAILED'}: {parts}"


redact = redact_text  # every error ingest prints or stores in ingest_runs.error passes here (core.twilio)


def now() -> datetime:
    return datetime.now(UTC)


def start_run(con: duckdb.DuckDBPyConnection, source: str, cursor_before: str | None = None) -> int:
    run_id = con.execute("SELECT nextval('ingest_run_seq')").fetchall()[0][0]
    con.execute(
        "INSERT INTO ingest_runs (run_id, source, started_at, status, cursor_before) VALUES (?, ?, ?, 'running', ?)",
        [run_id, source, now(), cursor_before],
    )
    return int(run_id)


def mark_interrupted(con: duckdb.DuckDBPyConnection) -> int:
    """Runs still ``running`` were killed (the caller holds the ingest database's lock, so none is alive):
    they become ``interrupted``. Returns how many."""
    return int(con.execute(
        """UPDATE ingest_runs SET status = 'interrupted', finished_at = coalesce(finished_at, ?),
                  error = coalesce(error, 'killed or crashed before it finished; found by the next run')
           WHERE status = 'running'""", [now()]).fetchall()[0][0])


def progress_run(con: duckdb.DuckDBPyConnection, run_id: int, result: SourceResult) -> None:
    """Counts so far; called inside each page's/file's transaction so the audit survives a kill."""
    con.execute(
        "UPDATE ingest_runs SET rows_read = ?, rows_loaded = ?, rows_rejected = ?, rows_deleted = ?, cursor_after = ? "
        "WHERE run_id = ?",
        [result.read, result.loaded, result.rejected, result.deleted, result.cursor, run_id],
    )


def finish_run(con: duckdb.DuckDBPyConnection, run_id: int, result: SourceResult) -> None:
    con.execute(
        """UPDATE ingest_runs SET finished_at = ?, status = ?, rows_read = ?, rows_loaded = ?, rows_rejected = ?,
                  rows_deleted = ?, cursor_after = ?, error = ? WHERE run_id = ?""",
        [now(), result.status, result.read, result.loaded, result.rejected, result.deleted, result.cursor,
         redact(result.error) if result.error else None, run_id],
    )


def add_rejects(
    con: duckdb.DuckDBPyConnection,
    run_id: int,
    source: str,
    location: str,
    rows: Sequence[tuple[int | None, str | None, str]],
) -> None:
    """``rows``: (line or record index, raw text, reason)."""
    if not rows:
        return
    con.executemany(
        "INSERT INTO rejects (reject_id, run_id, source, location, line, raw, reason) "
        "VALUES (nextval('reject_seq'), ?, ?, ?, ?, ?, ?)",
        [[run_id, source, location, line, raw, reason] for line, raw, reason in rows],
    )


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """BEGIN; COMMIT when the block ends, ROLLBACK (a failed rollback ignored) and re-raise when it raises,
    KeyboardInterrupt included: a batch and its cursor or file record land together or not at all."""
    con.execute("BEGIN")
    try:
        yield
        con.execute("COMMIT")
    except BaseException:
        try:
            con.execute("ROLLBACK")
        except duckdb.Error:
            pass
        raise


def record_file(con: duckdb.DuckDBPyConnection, path: str, st: os.stat_result, rows_loaded: int,
                run_id: int) -> None:
    """Record a loaded file in ``ingest_files`` (size and mtime as stat'ed before reading it), so an
    unchanged file is skipped next time and a grown one reloaded."""
    con.execute(
        """INSERT INTO ingest_files (path, size_bytes, mtime, rows_loaded, run_id, loaded_at)
           VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT (path) DO UPDATE SET size_bytes = excluded.size_bytes, mtime = excluded.mtime,
               rows_loaded = excluded.rows_loaded, run_id = excluded.run_id, loaded_at = excluded.loaded_at""",
        [path, st.st_size, st.st_mtime, rows_loaded, run_id, now()],
    )
