"""Issue 16: spooled status events reach the warehouse at the next ingest run (the ``receiver`` source).

Real parts: a sandbox world ingested through the real twilio SDK (so the message rows exist, some still
``sent``), the real ``switchboard listen`` process taking signed callbacks and Event Streams batches into its
spool, and ``run_ingest(sources="receiver")``, which never calls the API (no lag re-read).
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
import requests

from switchboard.core.settings import Settings
from switchboard.ingest.pipeline import _normalise_sources, run_ingest
from switchboard.ingest.receiver.spool import encode_line, segment_path
from switchboard.sandbox.server import SandboxServer, SimClock
from switchboard.sandbox.world import Scenario, generate
from tests.conftest import sandbox_client_factory
from tests.receiver_util import Receiver, message_event, signed_batch, signed_callback

END = datetime(2026, 11, 1, tzinfo=UTC)
TOKEN = "spool-test-token-0123456789abcdef"


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A world ingested at a moment T when message ``sent_sid`` is sent but not yet delivered, and message
    ``later`` (created after T) is not in the warehouse yet."""
    world = generate(Scenario(seed=7, days=2, messages=400, calls=30, end=END))
    m = world.messages.sort_values("date_sent")
    slow = m[(m.status == "delivered") & (m.final_at - m.date_sent >= 3)]
    pick = slow.iloc[len(slow) // 2]
    t = int(pick.date_sent) + 1
    later = m[(m.date_created > t + 60) & (m.status == "delivered") & (m.final_at - m.date_sent >= 3)].iloc[0]
    data_dir = tmp_path_factory.mktemp("spool_base")
    clock = SimClock(datetime.fromtimestamp(t, UTC))
    with SandboxServer(world, clock=clock) as server:
        report = run_ingest(Settings(data_dir=data_dir), sources="twilio", progress=False,
                            client_factory=sandbox_client_factory(server))
    assert report.ok, report.summary()
    return {"world": world, "dir": data_dir, "sent_sid": pick.sid, "later": later}


@pytest.fixture
def data_dir(tmp_path, base) -> Path:
    shutil.copy(base["dir"] / "ingest.duckdb", tmp_path / "ingest.duckdb")
    return tmp_path


def _rows(data_dir: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def _message(data_dir: Path, sid: str) -> tuple | None:
    rows = _rows(data_dir, "SELECT status, error_code, date_updated FROM twilio_messages WHERE sid = ?", [sid])
    return rows[0] if rows else None


def _ingest_events(data_dir: Path, **kw):
    report = run_ingest(Settings(data_dir=data_dir), sources="receiver", progress=False, **kw)
    assert report.ok, report.summary()
    assert [r.source for r in report.results] == ["receiver"]  # no API call, no lag re-read
    return report.result("receiver")


def _callback(receiver: Receiver, sid: str, status: str, error_code: str = "") -> None:
    params = {"MessageSid": sid, "SmsSid": sid, "MessageStatus": status, "SmsStatus": status,
              "AccountSid": "AC" + "1" * 32, "ErrorCode": error_code}
    url = f"{receiver.base}/twilio/status"
    body, headers = signed_callback(url, params, TOKEN)
    assert requests.post(url, data=body, headers=headers, timeout=30).status_code < 300


def _batch(receiver: Receiver, events: list[dict]) -> None:
    url, body, headers = signed_batch(f"{receiver.base}/twilio/events", events, TOKEN)
    assert requests.post(url, data=body, headers=headers, timeout=30).status_code < 300


def test_callback_moves_a_known_message_to_delivered_at_the_next_run(data_dir, base):
    sid = base["sent_sid"]
    status, _, updated = _message_before(data_dir, sid)
    assert status == "sent" and updated is not None
    with Receiver(data_dir / "spool", TOKEN) as receiver:
        _callback(receiver, sid, "delivered")
    result = _ingest_events(data_dir)
    assert (result.read, result.loaded, result.rejected) == (1, 1, 0)
    assert _message(data_dir, sid) == ("delivered", None, None)  # date_updated NULL until the poller re-reads
    assert _rows(data_dir, "SELECT is_delivered, delivery_latency_s FROM message_facts WHERE sid = ?",
                 [sid]) == [(True, None)]
    audit = _rows(data_dir, "SELECT status, rows_read, rows_loaded, rows_rejected, cursor_after FROM ingest_runs "
                            "WHERE source = 'receiver'")
    assert audit == [("ok", 1, 1, 0, result.cursor)] and result.cursor


def test_the_poller_is_the_reconciler_of_record(data_dir, base):
    """A pushed status is applied at once, and the list API's next read of the row wins over it."""
    sid = base["sent_sid"]
    row = base["world"].messages.set_index("sid").loc[sid]
    assert row["status"] == "delivered"  # what the API will say once the delivery is final
    with Receiver(data_dir / "spool", TOKEN) as receiver:
        _callback(receiver, sid, "undelivered", "30003")  # a push the API will contradict
    _ingest_events(data_dir)
    assert _message(data_dir, sid)[:2] == ("undelivered", 30003)
    clock = SimClock(datetime.fromtimestamp(int(row["final_at"]) + 60, UTC))
    with SandboxServer(base["world"], clock=clock) as server:
        report = run_ingest(Settings(data_dir=data_dir), sources="twilio", progress=False,
                            client_factory=sandbox_client_factory(server))
    assert report.ok, report.summary()
    status, error, updated = _message(data_dir, sid)
    assert (status, error) == ("delivered", None) and updated is not None
    assert _rows(data_dir, "SELECT is_delivered FROM message_facts WHERE sid = ?", [sid]) == [(True,)]


def _message_before(data_dir: Path, sid: str) -> tuple:
    con = duckdb.connect(str(data_dir / "ingest.duckdb"), read_only=True)
    try:
        return con.execute("SELECT status, error_code, date_updated FROM twilio_messages WHERE sid = ?",
                           [sid]).fetchone()
    finally:
        con.close()


def test_out_of_order_and_duplicate_events_leave_the_furthest_status_once(data_dir, base):
    sid = base["sent_sid"]
    t0 = datetime.fromtimestamp(int(base["world"].messages.set_index("sid").loc[sid, "date_sent"]), UTC)
    stamp = (lambda s: (t0 + timedelta(seconds=s)).isoformat().replace("+00:00", "Z"))
    delivered = message_event("EV-delivered", sid, "delivered", stamp(5))
    with Receiver(data_dir / "spool", TOKEN) as receiver:
        _batch(receiver, [delivered])
        _batch(receiver, [delivered])  # Twilio's retry of the same batch
    first = _ingest_events(data_dir)
    assert _message(data_dir, sid)[0] == "delivered"
    with Receiver(data_dir / "spool", TOKEN) as receiver:  # a later batch: the late 'sent', delivered again
        _batch(receiver, [message_event("EV-sent", sid, "sent", stamp(1)), delivered])
    # the second receiver's dedupe window was rebuilt from the spool, so write a redelivery past it by hand,
    # as a receiver with a full window would
    with open(segment_path(data_dir / "spool", 999), "wb") as seg:
        seg.write(encode_line({"k": "es:EV-delivered", "src": "event-stream", "rcv": stamp(9), "e": delivered}))
    second = _ingest_events(data_dir)
    assert _message(data_dir, sid) == ("delivered", None, None)
    events = _rows(data_dir, "SELECT event_key, status FROM twilio_events WHERE sid = ? ORDER BY event_key", [sid])
    assert events == [("es:EV-delivered", "delivered"), ("es:EV-sent", "sent")]
    assert first.loaded == 1 and second.read == second.loaded == 2  # the redelivery read, stored once
    assert "0 status(es) applied" in second.detail
    # consumed segments are compacted after the commit; the one the checkpoint points into stays
    assert [p.name for p in sorted((data_dir / "spool").glob("seg-*"))] == ["seg-000000000999.jsonl"]


def test_rerun_without_new_events_changes_nothing_and_keeps_the_checkpoint(data_dir, base):
    with Receiver(data_dir / "spool", TOKEN) as receiver:
        _callback(receiver, base["sent_sid"], "undelivered", "30007")
    first = _ingest_events(data_dir)
    assert _message(data_dir, base["sent_sid"])[:2] == ("undelivered", 30007)
    before = _rows(data_dir, "SELECT * FROM twilio_messages ORDER BY sid")
    events_before = _rows(data_dir, "SELECT * FROM twilio_events ORDER BY event_key")
    second = _ingest_events(data_dir)
    assert (second.read, second.loaded, second.rejected) == (0, 0, 0)
    assert second.cursor == first.cursor
    assert _rows(data_dir, "SELECT * FROM twilio_messages ORDER BY sid") == before
    assert _rows(data_dir, "SELECT * FROM twilio_events ORDER BY event_key") == events_before
    assert _rows(data_dir, "SELECT cursor FROM ingest_state WHERE source = 'receiver'") == [(first.cursor,)]
    # re-reading what was already committed (a run killed before its checkpoint, or --full-refresh) is idempotent
    again = _ingest_events(data_dir, full_refresh=True)
    assert again.read == again.loaded == 1 and again.detail.startswith("0 new event(s), 0 status(es) applied")
    assert _rows(data_dir, "SELECT * FROM twilio_messages ORDER BY sid") == before
    assert _rows(data_dir, "SELECT * FROM twilio_events ORDER BY event_key") == events_before


def test_event_for_an_unknown_sid_waits_for_its_row(data_dir, base):
    later = base["later"]
    with Receiver(data_dir / "spool", TOKEN) as receiver:
        _callback(receiver, later.sid, "delivered")
    first = _ingest_events(data_dir)
    assert first.loaded == 1 and "1 event(s) waiting for their row" in first.detail
    assert _message(data_dir, later.sid) is None
    assert _rows(data_dir, "SELECT status, matched_run_id FROM twilio_events WHERE sid = ?",
                 [later.sid]) == [("delivered", None)]
    # the poller brings the row, still 'sent' at that moment; the next receiver run applies the waiting event
    clock = SimClock(datetime.fromtimestamp(int(later.date_sent) + 1, UTC))
    with SandboxServer(base["world"], clock=clock) as server:
        report = run_ingest(Settings(data_dir=data_dir), sources="twilio", progress=False,
                            client_factory=sandbox_client_factory(server))
    assert report.ok, report.summary()
    assert _message(data_dir, later.sid)[0] == "sent"
    second = _ingest_events(data_dir)
    assert second.read == 0 and "1 status(es) applied" in second.detail
    assert _message(data_dir, later.sid)[0] == "delivered"
    assert _rows(data_dir, "SELECT count(*) FROM twilio_events WHERE matched_run_id IS NULL") == [(0,)]


def test_malformed_spool_records_are_rejects_with_their_reason(data_dir, base):
    spool = data_dir / "spool"
    spool.mkdir()
    good = {"k": "cb:1", "src": "callback", "rcv": "2026-10-31T12:00:00Z", "path": "/twilio/status", "tok": None,
            "p": {"MessageSid": base["sent_sid"], "MessageStatus": "delivered"}}
    no_sid = {"k": "cb:2", "src": "callback", "rcv": "2026-10-31T12:00:00Z", "path": "/twilio/status",
              "tok": None, "p": {"MessageStatus": "delivered"}}
    test_event = {"k": "es:T1", "src": "event-stream", "rcv": "2026-10-31T12:00:00Z",
                  "e": {"id": "T1", "type": "com.twilio.eventstreams.test-sink", "data": {}}}
    corrupt = encode_line(good)[:-9] + b"deadbeef\n"  # bad CRC
    segment_path(spool, 1).write_bytes(encode_line(good) + corrupt + encode_line(no_sid) + encode_line(test_event))
    result = _ingest_events(data_dir)
    assert (result.read, result.loaded, result.rejected) == (4, 1, 3)
    reasons = [r for (r,) in _rows(data_dir, "SELECT reason FROM rejects WHERE source = 'receiver' ORDER BY reason")]
    assert len(reasons) == 3
    assert any("corrupt spool line" in r for r in reasons)
    assert any("without a MessageSid" in r for r in reasons)
    assert any("test-sink" in r for r in reasons)
    assert _message(data_dir, base["sent_sid"])[0] == "delivered"


def test_all_sources_include_the_receiver_only_when_the_spool_exists():
    assert _normalise_sources("all", has_spool=True)[-1] == "receiver"  # last: after the poller's rows
    assert "receiver" not in _normalise_sources("all", has_spool=False)
    assert _normalise_sources("receiver", has_spool=False) == ["receiver"]  # asked for: skipped, with a reason


def test_a_run_stopped_inside_a_batch_keeps_the_committed_batches_and_replays_the_rest(data_dir, base, monkeypatch):
    """A crash inside a batch's transaction (here an interrupt raised where the statuses are applied, after
    the batch's events were inserted): earlier batches and their checkpoint stay, the broken batch rolls back
    whole, and the next run loads the rest, each event once."""
    from switchboard.ingest import spool_source

    spool = data_dir / "spool"
    spool.mkdir()
    records = [{"k": f"cb:{i}", "src": "callback", "rcv": f"2026-10-31T12:00:0{i}Z", "path": "/twilio/status",
                "tok": None, "p": {"MessageSid": base["sent_sid"] if i == 4 else f"SMunknown{i}",
                                   "MessageStatus": "delivered"}} for i in range(5)]
    segment_path(spool, 1).write_bytes(b"".join(encode_line(r) for r in records))
    monkeypatch.setattr(spool_source, "BATCH_RECORDS", 2)
    real_apply, calls = spool_source.apply_events, []

    def interrupted_second_batch(con, run_id):
        calls.append(run_id)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the second batch's events are inserted, not committed
        return real_apply(con, run_id)

    monkeypatch.setattr(spool_source, "apply_events", interrupted_second_batch)
    with pytest.raises(KeyboardInterrupt):
        run_ingest(Settings(data_dir=data_dir), sources="receiver", progress=False, publish=False)
    con = duckdb.connect(str(data_dir / "ingest.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM twilio_events").fetchone()[0] == 2  # the first batch only
        assert con.execute("SELECT cursor FROM ingest_state WHERE source = 'receiver'").fetchone()[0] is not None
    finally:
        con.close()
    monkeypatch.setattr(spool_source, "apply_events", real_apply)
    result = _ingest_events(data_dir)
    assert (result.read, result.loaded) == (3, 3)  # only what was not committed is read again
    assert _rows(data_dir, "SELECT count(*), count(DISTINCT event_key) FROM twilio_events") == [(5, 5)]
    assert _message(data_dir, base["sent_sid"])[0] == "delivered"
    assert _rows(data_dir, "SELECT status FROM ingest_runs WHERE source = 'receiver' ORDER BY run_id") == [
        ("interrupted",), ("ok",)]
