"""The sources' side of the incremental warehouse (issue 15): every raw delete leaves a tombstone, an
unchanged re-read changes nothing, BulkExport's --full-refresh deletes what no day file names any more,
and pending calls are listed by Status instead of fetched one request each. End to end through the real
SDK and sandbox; after each run the facts equal a full rebuild."""

from __future__ import annotations

import gzip
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from switchboard.core.settings import Settings
from switchboard.ingest import twilio_api
from switchboard.ingest.pipeline import run_ingest
from switchboard.sandbox.server import SandboxServer, SimClock
from switchboard.sandbox.world import Scenario, generate, write_bulk_export
from tests.conftest import sandbox_client_factory
from tests.incremental_util import incremental_equals_rebuild

INGEST = Path(__file__).resolve().parents[1] / "ingest"
RAW = ("twilio_messages", "twilio_calls", "send_log", "conversions", "twilio_events")
END = datetime(2026, 11, 1, tzinfo=UTC)
TWIML = "<Response><Say>Your code is 1 2 3</Say></Response>"


def test_every_raw_delete_goes_through_delete_rows() -> None:
    """A DELETE that bypassed ingest.changes.delete_rows would leave facts of rows that are gone."""
    pattern = re.compile(r"DELETE\s+FROM\s+(\{[^}]+\}|\w+)", re.I)
    offenders = []
    for path in sorted(INGEST.rglob("*.py")):
        if path.name in ("changes.py", "incremental.py", "publish.py", "lake_build.py"):
            continue  # the mechanism itself, the facts, the snapshot copies and the lake (its own files)
        for m in pattern.finditer(path.read_text()):
            target = m.group(1)
            if target in RAW or target.startswith("{"):
                if target not in ("{seen}",):
                    offenders.append(f"{path.name}: DELETE FROM {target}")
    assert offenders == []


def _facts_equal(data_dir: Path) -> None:
    con = duckdb.connect(str(data_dir / "ingest.duckdb"))
    con.execute("SET TimeZone = 'UTC'")
    try:
        assert incremental_equals_rebuild(con, data_dir / "ingest.duckdb", data_dir) == {}
    finally:
        con.close()


@pytest.fixture(scope="module")
def world():
    return generate(Scenario(seed=21, days=4, messages=1200, calls=120, end=END))


def test_an_unchanged_rereading_changes_nothing(tmp_path, world) -> None:
    with SandboxServer(world) as server:
        factory = sandbox_client_factory(server)
        first = run_ingest(Settings(data_dir=tmp_path), sources="twilio", client_factory=factory, progress=False)
        assert first.ok, first.summary()
        # the second run re-reads the lag window (the whole small history): nothing differs, nothing changes
        again = run_ingest(Settings(data_dir=tmp_path), sources="twilio", client_factory=factory, progress=False,
                           lag_hours=24 * 10)
        assert again.ok and again.result("twilio").read > 0
        assert again.facts_mode == "unchanged", again.summary()
        assert again.publish_mode in ("delta", "copy")
    _facts_equal(tmp_path)


def _day_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.json*"))


def test_bulk_export_full_refresh_deletes_what_no_day_file_names(tmp_path, world) -> None:
    folder = tmp_path / "bulk"
    write_bulk_export(world, folder)
    files = _day_files(folder)
    data = tmp_path / "wh"

    def ingest(full: bool = False):
        report = run_ingest(Settings(data_dir=data), sources="bulk-export", bulk_export_dir=folder, progress=False,
                            full_refresh=full)
        assert report.ok, report.summary()
        return report.result("bulk-export")

    ingest()
    gone = [json.loads(line)["sid"] for line in gzip.open(files[0], "rt")]
    files[0].unlink()                                   # a day file deleted
    lines = gzip.open(files[1], "rt").read().splitlines()
    dropped = json.loads(lines[0])["sid"]
    with gzip.open(files[1], "wt") as fh:               # a day file rewritten without its first line
        fh.write("\n".join(lines[1:]) + "\n")
    assert ingest().deleted == 0                        # a plain run never deletes
    assert ingest(full=True).deleted == len(gone) + 1
    con = duckdb.connect(str(data / "warehouse.duckdb"), read_only=True)
    try:
        left = {r[0] for r in con.execute("SELECT sid FROM message_facts").fetchall()}
    finally:
        con.close()
    assert not (set(gone) | {dropped}) & left and left
    _facts_equal(data)


def test_pending_calls_are_listed_by_status_not_fetched_one_by_one(tmp_path) -> None:
    world = generate(Scenario(seed=12, days=3, messages=300, calls=50, end=END))
    clock = SimClock(END + timedelta(days=1))
    with SandboxServer(world, clock=clock) as server:
        sdk = sandbox_client_factory(server)()
        queued = [sdk.calls.create(to="+447911123456", from_="+15005550006", twiml=TWIML).sid for _ in range(12)]
        assert run_ingest(Settings(data_dir=tmp_path), sources="twilio", progress=False, lag_hours=0,
                          client_factory=sandbox_client_factory(server)).ok
        con = duckdb.connect(str(tmp_path / "ingest.duckdb"), read_only=True)
        cursor = datetime.fromisoformat(con.execute("SELECT max(cursor) FROM ingest_state WHERE source LIKE 'calls:%'")
                                        .fetchone()[0])
        pending = twilio_api.pending_sids(con, twilio_api.CALLS, server.account_sid, cursor, None)
        con.close()
        # a run while they are still queued or ringing outside the window: one list per pending status
        before = server.request_count
        report = run_ingest(Settings(data_dir=tmp_path), sources="twilio", progress=False, lag_hours=0,
                            client_factory=sandbox_client_factory(server))
        assert report.ok, report.summary()
        r = report.result("twilio")
        assert len(pending) >= twilio_api.PENDING_LIST_MIN, pending
        assert r.pending_fetched == len(pending)
        # window lists (messages, calls) + one list per pending call status, not one request per call
        assert server.request_count - before < len(pending)
        clock.advance(3600)  # every call has ended: they come back with final statuses
        report = run_ingest(Settings(data_dir=tmp_path), sources="twilio", progress=False, lag_hours=0,
                            client_factory=sandbox_client_factory(server))
        assert report.ok
        con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
        statuses = dict(con.execute("SELECT sid, status FROM twilio_calls WHERE list_contains(?, sid)",
                                    [queued]).fetchall())
        con.close()
        assert set(statuses) == set(queued)
        assert set(statuses.values()) <= {"completed", "busy", "no-answer", "failed", "canceled"}
    _facts_equal(tmp_path)
