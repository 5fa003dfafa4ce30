"""Records whose status changes after the window read them, and records gone from the source,
through the real twilio SDK against the sandbox (SimClock moves the status lifecycle)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from switchboard.core.settings import Settings
from switchboard.ingest import warehouse
from switchboard.ingest.pipeline import run_ingest
from switchboard.ingest.twilio_api import CALLS, MESSAGES, pending_sids
from switchboard.sandbox.server import FaultConfig, SandboxServer, SimClock
from switchboard.sandbox.world import Scenario, generate
from tests.conftest import sandbox_client_factory

END = datetime(2026, 11, 1, tzinfo=UTC)
TWIML = "<Response><Say>Your code is 1 2 3</Say></Response>"


@pytest.fixture(scope="module")
def world():
    return generate(Scenario(seed=11, days=5, messages=1500, calls=200, end=END))


def _ingest(server, data_dir: Path, **kw):
    kw.setdefault("progress", False)
    kw.setdefault("sources", "twilio")
    return run_ingest(Settings(data_dir=data_dir), client_factory=sandbox_client_factory(server), **kw)


def _calls(db: Path, sids: list[str]) -> dict[str, tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute("SELECT sid, status, start_time, end_time, duration_s, price FROM twilio_calls "
                           "WHERE list_contains(?, sid)", [sids]).fetchall()
    finally:
        con.close()
    return {r[0]: r[1:] for r in rows}


def test_call_ringing_or_queued_at_one_run_gets_its_final_status_at_the_next(tmp_path):
    # A world that ended a day before the clock: its own calls are all final. Calls placed now
    # through the SDK go queued -> ringing (start_time set) -> in-progress -> final.
    world = generate(Scenario(seed=12, days=3, messages=300, calls=50, end=END))
    clock = SimClock(END + timedelta(days=1))
    with SandboxServer(world, clock=clock) as server:
        sdk = sandbox_client_factory(server)()
        first = [sdk.calls.create(to="+447911123456", from_="+15005550006", twiml=TWIML).sid for _ in range(4)]
        clock.advance(2)  # those started 1 s after creation: ringing now
        later = sdk.calls.create(to="+5511987654321", from_="+15005550006", twiml=TWIML).sid
        clock.advance(2)  # `later` ringing, started after `first`: the cursor will be its start
        queued = sdk.calls.create(to="+5511987654322", from_="+15005550006", twiml=TWIML).sid
        mine = [*first, later, queued]

        # lag 0: the next run reads from the cursor exactly, so nothing but the fix re-reads `first`
        assert _ingest(server, tmp_path, lag_hours=0).ok
        seen = _calls(tmp_path / "warehouse.duckdb", mine)
        assert {seen[s][0] for s in first} <= {"ringing", "in-progress"}
        assert seen[later][0] == "ringing"
        assert seen[queued][0] == "queued" and seen[queued][1] is None  # no start_time yet

        con = duckdb.connect(str(tmp_path / "ingest.duckdb"))
        cursor = con.execute("SELECT cursor FROM ingest_state WHERE source = ?",
                             [f"calls:{server.account_sid}"]).fetchone()[0]
        lo = datetime.fromisoformat(cursor)
        # `first` started before the cursor: a StartTime>=cursor list cannot return them; `queued` has
        # no start time (the list may or may not return it once it starts: fetched unless it does)
        assert set(pending_sids(con, CALLS, server.account_sid, lo, None)) == {*first, queued}
        con.close()

        clock.advance(3600)  # every call has ended by now
        report = _ingest(server, tmp_path, lag_hours=0)
        assert report.ok, report.summary()
        r = report.result("twilio")
        now = _calls(tmp_path / "warehouse.duckdb", mine)
        for sid in mine:
            upstream = sdk.calls(sid).fetch()
            assert now[sid][0] == upstream.status, sid
            assert now[sid][0] in ("completed", "busy", "no-answer")
            assert now[sid][1] is not None and now[sid][2] is not None  # start and end times arrived
        # `queued` started after the cursor: the window returned it, so only `first` needed a fetch
        assert r.pending_fetched == len(first) and r.read == r.loaded + r.rejected
        # and nothing is left pending for a third run to fetch
        third = _ingest(server, tmp_path, lag_hours=0)
        assert third.result("twilio").pending_fetched == 0


def test_pending_sids_rules(tmp_path):
    con = warehouse.connect(tmp_path / "w.duckdb")
    warehouse.create_schema(con)
    acct = "AC" + "1" * 32
    lo = datetime(2026, 10, 10, tzinfo=UTC)
    con.executemany(
        "INSERT INTO twilio_messages (sid, account_sid, status, date_sent, source) VALUES (?, ?, ?, ?, 'api')",
        [("SMq", acct, "queued", None), ("SMs", acct, "sent", lo - timedelta(days=9)),
         ("SMold", acct, "sending", lo - timedelta(days=9)), ("SMd", acct, "delivered", None),
         ("SMx", "AC" + "2" * 32, "queued", None)])
    con.executemany(
        "INSERT INTO twilio_calls (sid, account_sid, status, start_time, source) VALUES (?, ?, ?, ?, 'api')",
        [("CAq", acct, "queued", None), ("CAr", acct, "ringing", lo - timedelta(hours=1)),
         ("CAin", acct, "in-progress", lo + timedelta(hours=1)), ("CAc", acct, "completed", None)])
    # messages: only those without date_sent (a "sent" one outside the window is the lag's business)
    assert pending_sids(con, MESSAGES, acct, lo, None) == ["SMq"]
    # calls: pending and not inside the window (no start time, or before it)
    assert pending_sids(con, CALLS, acct, lo, None) == ["CAq", "CAr"]
    assert pending_sids(con, CALLS, acct, None, lo) == ["CAin", "CAq"]
    # an unbounded list returned every record: nothing to fetch
    assert pending_sids(con, CALLS, acct, None, None) == []


# --------------------------------------------------------------------------- --full-refresh deletes


def _raw(db: Path) -> dict[str, list]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {
            "messages": con.execute("SELECT sid, account_sid, status, error_code, price, date_sent, date_updated, "
                                    "source FROM twilio_messages ORDER BY sid").fetchall(),
            "calls": con.execute("SELECT sid, account_sid, status, price, start_time, end_time, source "
                                 "FROM twilio_calls ORDER BY sid").fetchall(),
        }
    finally:
        con.close()


def _plant(db: Path, account: str, other_account: str, inside: datetime, outside: datetime) -> None:
    """Rows the source does not hold: some a full refresh must delete, some it must keep."""
    con = duckdb.connect(str(db))
    con.executemany(
        "INSERT INTO twilio_messages (sid, account_sid, status, date_sent, date_updated, source) "
        "VALUES (?, ?, 'delivered', ?, ?, ?)",
        [("SMgone_inside", account, inside, inside, "api"),            # deleted
         ("SMgone_nodate", account, None, inside, "api"),              # deleted when the window is unbounded
         ("SMgone_outside", account, outside, outside, "api"),         # kept when --since excludes it
         ("SMbulk_only", account, inside, inside, "bulk_export"),      # kept: the API forgets old messages
         ("SMother_account", other_account, inside, inside, "api")])   # kept: an account not read
    con.execute("INSERT INTO twilio_calls (sid, account_sid, status, start_time, date_updated, source) "
                "VALUES ('CAgone_inside', ?, 'completed', ?, ?, 'api')", [account, inside, inside])
    con.close()


def _sids(db: Path, table: str) -> set[str]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {r[0] for r in con.execute(f"SELECT sid FROM {table}").fetchall()}
    finally:
        con.close()


def test_full_refresh_deletes_what_vanished_upstream_and_nothing_else(tmp_path, world):
    stranger = "AC" + "9" * 32
    inside, outside = END - timedelta(days=1), END - timedelta(days=4)
    with SandboxServer(world, clock=SimClock(END)) as server:
        assert _ingest(server, tmp_path / "fresh").ok
        expected = _raw(tmp_path / "fresh" / "warehouse.duckdb")

        assert _ingest(server, tmp_path / "wh").ok
        _plant(tmp_path / "wh" / "ingest.duckdb", server.account_sid, stranger, inside, outside)

        # an incremental run deletes nothing
        assert _ingest(server, tmp_path / "wh").result("twilio").deleted == 0
        assert "SMgone_inside" in _sids(tmp_path / "wh" / "ingest.duckdb", "twilio_messages")

        # --full-refresh --since: only the window it read
        since = END - timedelta(days=2)
        r = _ingest(server, tmp_path / "wh", full_refresh=True, since=since)
        assert r.ok, r.summary()
        assert r.result("twilio").deleted == 2  # SMgone_inside, CAgone_inside
        msgs = _sids(tmp_path / "wh" / "ingest.duckdb", "twilio_messages")
        assert {"SMgone_outside", "SMgone_nodate", "SMbulk_only", "SMother_account"} <= msgs
        assert "SMgone_inside" not in msgs
        assert "CAgone_inside" not in _sids(tmp_path / "wh" / "ingest.duckdb", "twilio_calls")

        # plain --full-refresh (every record, unbounded window): the warehouse equals the source
        r = _ingest(server, tmp_path / "wh", full_refresh=True)
        assert r.ok and r.result("twilio").deleted == 2  # SMgone_outside, SMgone_nodate
        con = duckdb.connect(str(tmp_path / "wh" / "ingest.duckdb"), read_only=True)
        audit = con.execute("SELECT rows_deleted FROM ingest_runs WHERE source = 'twilio' ORDER BY run_id").fetchall()
        con.close()
        assert [a[0] for a in audit][-2:] == [2, 2]
    got = _raw(tmp_path / "wh" / "warehouse.duckdb")
    keep = {"SMbulk_only", "SMother_account"}
    assert [m for m in got["messages"] if m[0] not in keep] == expected["messages"]
    assert got["calls"] == expected["calls"]


def test_full_refresh_that_fails_midway_deletes_nothing(tmp_path, world):
    with SandboxServer(world, clock=SimClock(END)) as server:
        assert _ingest(server, tmp_path).ok
        _plant(tmp_path / "ingest.duckdb", server.account_sid, "AC" + "9" * 32, END - timedelta(days=1),
               END - timedelta(days=4))
    before = _sids(tmp_path / "ingest.duckdb", "twilio_messages")
    # every request fails after the first few: the read never reaches its last page
    faults = FaultConfig(rate_500=0.85, retry_after=0, seed=1)
    with SandboxServer(world, clock=SimClock(END), faults=faults) as server:
        report = run_ingest(Settings(data_dir=tmp_path), sources="twilio", full_refresh=True, progress=False,
                            client_factory=sandbox_client_factory(server))
    assert not report.ok
    assert report.result("twilio").deleted == 0
    assert _sids(tmp_path / "ingest.duckdb", "twilio_messages") == before
    # the next plain run resumes the interrupted window (no deletion either: it is not a full read)
    with SandboxServer(world, clock=SimClock(END)) as server:
        again = _ingest(server, tmp_path)
    assert again.ok and again.result("twilio").deleted == 0
    assert "SMgone_inside" in _sids(tmp_path / "ingest.duckdb", "twilio_messages")
