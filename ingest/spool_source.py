"""The ``receiver`` source: status events that ``switchboard listen`` spooled, into the warehouse (issue 16).

Each run reads the spool after the checkpoint kept in ``ingest_state`` (key ``receiver``; ``cursor`` holds
the ``<segment>:<offset>`` checkpoint, ``resume_uri`` the spool folder it belongs to), in batches. Each batch
is ONE transaction: its events into ``twilio_events`` (deduplicated by the receiver's key), its rejects, the
statuses applied to ``twilio_messages``/``twilio_calls`` and the checkpoint. A run killed at any point
re-reads only what was not committed, and re-reading is idempotent (the key is the primary key).

Applying (the rule, also in the table's COMMENT): an event is compared with its warehouse row once, in the
run that loads it, or in the first later run that finds the row (until then ``matched_run_id`` is NULL; the
poller brings the row). The furthest-along event of the sid (``events.latest_status``'s order: status rank,
then time) replaces ``status`` and ``error_code`` when it is further along than the row's status, or as far
along and newer than the row's ``date_updated``. A status never goes back. The row's ``date_updated`` becomes
NULL: the row no longer is an API read, so ``delivery_latency_s`` is unknown (not wrong) until the poller,
the reconciler of record, reads the row again and overwrites it (its upsert takes any row whose
``date_updated`` is NULL).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from switchboard.ingest import runs
from switchboard.ingest.receiver.events import (
    CALL_STATUS_RANK,
    MESSAGE_STATUS_RANK,
    SOURCE_EVENT_STREAM,
    normalise,
)
from switchboard.ingest.receiver.spool import Checkpoint, ReadStats, compact, iter_records, list_segments

STATE_KEY = "receiver"
BATCH_RECORDS = 5_000  # records per transaction: bounded memory, and a kill loses at most one batch's work
RAW_CHARS = 2_000  # a reject's raw text is cut here (a record never holds a body: the receiver drops it)
# constants of the code, formatted into SQL: (table, what an applied event sets besides status)
TABLES = {"message": ("twilio_messages", ("error_code",)), "call": ("twilio_calls", ())}  # calls keep no error code
EVENT_COLUMNS = ("event_key", "resource", "sid", "status", "status_rank", "error_code", "event_time",
                 "received_at", "account_sid", "push_source", "event_type", "event_id", "extra")


@dataclass
class SpoolSource:
    """Spooled status callbacks and Event Streams events (:class:`runs.Source`); skipped without a spool."""

    folder: Path
    compact_after: bool = True  # delete segments wholly before the committed checkpoint (events are stored)
    name: str = "receiver"

    def run(self, con: duckdb.DuckDBPyConnection, ctx: runs.RunContext) -> None:
        result = ctx.result
        if not self.folder.is_dir():
            result.status, result.detail = "skipped", f"no spool folder {self.folder}"
            return
        after = None if ctx.full_refresh else self._checkpoint(con, result)
        result.cursor = str(after) if after else None
        stats = ReadStats()
        totals = {"new": 0, "applied": 0}
        batches = _batches(iter_records(self.folder, after, stats), stats)
        for records, corrupt in batches:
            counts = self._load_batch(con, ctx, records, corrupt, stats)
            totals["new"] += counts["new"]
            totals["applied"] += counts["applied"]
        waiting = con.execute("SELECT count(*) FROM twilio_events WHERE matched_run_id IS NULL").fetchall()[0][0]
        result.detail = (f"{totals['new']:,} new event(s), {totals['applied']:,} status(es) applied, "
                         f"{waiting:,} event(s) waiting for their row")
        if stats.position is not None and self.compact_after:
            try:
                compact(self.folder, stats.position)
            except OSError as exc:  # the events are committed: a segment left behind is only disk space
                result.warnings.append(f"could not compact the spool {self.folder}: {exc}")

    def _checkpoint(self, con: duckdb.DuckDBPyConnection, result: runs.SourceResult) -> Checkpoint | None:
        """The saved checkpoint, or None (read from the start) when it belongs to another spool or is past
        the spool's end (the folder was emptied and the receiver numbers segments from 1 again)."""
        row = con.execute("SELECT cursor, resume_uri FROM ingest_state WHERE source = $key",
                          {"key": STATE_KEY}).fetchall()
        if not row or not row[0][0]:
            return None
        saved, folder = Checkpoint.parse(row[0][0]), row[0][1]
        if folder != str(self.folder.resolve()):
            result.warnings.append(f"spool folder changed ({folder} -> {self.folder.resolve()}): read from its start")
            return None
        segments = dict(list_segments(self.folder))
        beyond = [seq for seq in segments if seq >= saved.segment]
        here = segments.get(saved.segment)
        if segments and (not beyond or (here is not None and here.stat().st_size < saved.offset)):
            result.warnings.append(f"the spool is behind its checkpoint {saved} (emptied?): read from its start")
            return None
        return saved

    def _load_batch(self, con: duckdb.DuckDBPyConnection, ctx: runs.RunContext, records: list[tuple[dict, Checkpoint]],
                    corrupt: int, stats: ReadStats) -> dict[str, int]:
        """One transaction: events, rejects, statuses applied, checkpoint and counts."""
        result = ctx.result
        rows, rejects = _rows_and_rejects(records, corrupt, stats.position)
        with runs.transaction(con):
            new = _insert_events(con, rows, ctx.run_id)
            runs.add_rejects(con, ctx.run_id, self.name, str(self.folder), rejects)
            applied = apply_events(con, ctx.run_id)
            result.read += len(records) + corrupt
            result.loaded += len(rows)
            result.rejected += len(rejects)
            if stats.position is not None:
                result.cursor = str(stats.position)
                _save_checkpoint(con, result.cursor, str(self.folder.resolve()))
            runs.progress_run(con, ctx.run_id, result)
        ctx.progress(len(records) + corrupt)
        return {"new": new, "applied": applied}


def _batches(records: Iterator[tuple[dict, Checkpoint]], stats: ReadStats
             ) -> Iterator[tuple[list[tuple[dict, Checkpoint]], int]]:
    """(records, corrupt lines among them) per batch; always at least one batch, so events waiting for their
    row are tried again even when nothing new arrived. ``stats.position`` is the batch's end when yielded."""
    batch: list[tuple[dict, Checkpoint]] = []
    corrupt_seen = 0
    for item in records:
        batch.append(item)
        if len(batch) >= BATCH_RECORDS:
            yield batch, stats.corrupt - corrupt_seen
            corrupt_seen, batch = stats.corrupt, []
    yield batch, stats.corrupt - corrupt_seen  # the rest, trailing corrupt lines included (maybe empty)


def _rows_and_rejects(records: list[tuple[dict, Checkpoint]], corrupt: int, end: Checkpoint | None
                      ) -> tuple[list[tuple], list[tuple[int | None, str | None, str]]]:
    """Event rows (first copy of a key within the batch) and rejects (record offset, raw, reason)."""
    rows: dict[str, tuple] = {}
    rejects: list[tuple[int | None, str | None, str]] = []
    for record, position in records:
        event = normalise(record, position)
        if event is None:
            rejects.append((position.offset, json.dumps(record)[:RAW_CHARS], _why_not(record)))
            continue
        rank = event.rank
        rows.setdefault(event.key, (event.key, event.resource, event.sid, event.status, rank, event.error_code,
                                    event.timestamp, event.received_at, event.account_sid, event.source,
                                    event.event_type, event.event_id, json.dumps(event.extra, default=str)))
    # the spool reader skips a damaged line and only counts it: one reject each, located by the batch's end
    where = f"segment {end.segment}, before byte {end.offset}" if end else "the spool"
    rejects += [(None, None, f"corrupt spool line (bad checksum or JSON; disk damage?) in {where}")] * corrupt
    return list(rows.values()), rejects


def _why_not(record: dict) -> str:
    if record.get("src") == SOURCE_EVENT_STREAM:
        kind = (record.get("e") or {}).get("type") if isinstance(record.get("e"), dict) else None
        return f"not a message or call status event (type {kind!r}), or one without a sid"
    if record.get("src") == "callback":
        return "status callback without a MessageSid/CallSid and its status, or with a time that does not parse"
    return f"not a receiver record (src {record.get('src')!r})"


def _insert_events(con: duckdb.DuckDBPyConnection, rows: list[tuple], run_id: int) -> int:
    """Inserts the events whose key is not stored yet; returns how many were new."""
    if not rows:
        return 0
    frame = pd.DataFrame(rows, columns=list(EVENT_COLUMNS))
    frame["error_code"] = frame["error_code"].astype("Int64")
    con.register("_events_batch", frame)
    try:
        cols = ", ".join(EVENT_COLUMNS)
        return int(con.execute(
            f"""INSERT INTO twilio_events ({cols}, ingest_run_id, loaded_at, matched_run_id)
                SELECT {cols}, $run_id, $now, NULL FROM _events_batch
                ON CONFLICT (event_key) DO NOTHING""",
            {"run_id": run_id, "now": runs.now()}).fetchall()[0][0])
    finally:
        con.unregister("_events_batch")


def apply_events(con: duckdb.DuckDBPyConnection, run_id: int) -> int:
    """Applies the furthest-along event of every sid with unmatched events whose row exists (module doc);
    marks those events matched. Returns the rows changed."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _status_rank AS SELECT unnest($resources) AS resource, "
        "unnest($statuses) AS status, unnest($ranks) AS rank",
        {"resources": ["message"] * len(MESSAGE_STATUS_RANK) + ["call"] * len(CALL_STATUS_RANK),
         "statuses": [*MESSAGE_STATUS_RANK, *CALL_STATUS_RANK],
         "ranks": [*MESSAGE_STATUS_RANK.values(), *CALL_STATUS_RANK.values()]})
    changed = 0
    for resource, (table, also) in TABLES.items():
        differs = " OR ".join(f"t.{c} IS DISTINCT FROM b.{c}" for c in ("status", *also))
        sets = "".join(f"{c} = a.{c}, " for c in ("status", *also))
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _apply AS
                WITH best AS (
                    SELECT sid, status, status_rank, error_code, event_time FROM twilio_events
                    WHERE resource = $resource AND sid IN (
                        SELECT sid FROM twilio_events WHERE matched_run_id IS NULL AND resource = $resource)
                    QUALIFY row_number() OVER (PARTITION BY sid
                                               ORDER BY status_rank DESC, event_time DESC, event_key DESC) = 1)
                SELECT b.*
                FROM best b JOIN {table} t ON t.sid = b.sid
                LEFT JOIN _status_rank r ON r.resource = $resource AND r.status = t.status
                WHERE (b.status_rank > coalesce(r.rank, -1)
                       OR (b.status_rank = coalesce(r.rank, -1)
                           AND (t.date_updated IS NULL OR b.event_time > t.date_updated)))
                  AND ({differs})""",
            {"resource": resource})
        changed += int(con.execute(
            f"""UPDATE {table} SET {sets}date_updated = NULL,
                       ingest_run_id = $run_id, loaded_at = $now
                FROM _apply a WHERE {table}.sid = a.sid""",
            {"run_id": run_id, "now": runs.now()}).fetchall()[0][0])
        con.execute(
            f"""UPDATE twilio_events SET matched_run_id = $run_id
                WHERE matched_run_id IS NULL AND resource = $resource AND sid IN (SELECT sid FROM {table})""",
            {"run_id": run_id, "resource": resource})
    return changed


def _save_checkpoint(con: duckdb.DuckDBPyConnection, checkpoint: str, spool_folder: str) -> None:
    con.execute(
        """INSERT INTO ingest_state (source, cursor, updated_at, resume_uri) VALUES ($key, $cursor, $now, $folder)
           ON CONFLICT (source) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at,
               resume_uri = excluded.resume_uri""",
        {"key": STATE_KEY, "cursor": checkpoint, "now": runs.now(), "folder": spool_folder})
