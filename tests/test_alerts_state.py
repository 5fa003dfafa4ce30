"""Alert state across runs: an incident alerts once, updates when worse (after the quiet period), resolves,
reopens; a restart (the database closed and opened again) neither re-sends nor forgets."""

from __future__ import annotations

from dataclasses import replace

import duckdb
import pytest

from switchboard.alerts import rules, run
from tests.alerts_util import end_of, traffic
from tests.test_analytics_warehouse import Hand

ID = "error_rise|ID|Indosat Ooredoo Hutchison|*|30007|*"
# per day: how many of Indosat's 2 SMS an hour fail with 30007
FAILING = {28: 1, 29: 2, 30: 2, 35: 2}


def build(con=None):
    h = Hand()
    for k in range(37):
        traffic(h, k, failing=FAILING.get(k, 0))
    return h.build(con)


def cfg(quiet_minutes: float = 60) -> rules.Config:
    c = rules.parse({"defaults": {"recent_hours": 24, "quiet_minutes": quiet_minutes}})
    return replace(c, webhooks=(rules.Webhook("http://127.0.0.1:9/hook", "json"),))


def events(con):
    return con.execute("SELECT event, notify FROM alert_events WHERE alert_id = $a ORDER BY event_at",
                       {"a": ID}).fetchall()


def outbox(con):
    return con.execute("SELECT event, channel, status FROM alert_outbox WHERE alert_id = $a ORDER BY created_at",
                       {"a": ID}).fetchall()


def alert(con):
    cur = con.execute("SELECT * FROM alerts WHERE alert_id = $a", {"a": ID})
    cols = [d[0] for d in cur.description]
    return dict(zip(cols, cur.fetchone()))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    path = tmp_path_factory.mktemp("alerts") / "ingest.duckdb"
    con = duckdb.connect(str(path))
    build(con)
    con.close()
    return path


@pytest.fixture()
def con(world, tmp_path):
    copy = tmp_path / "ingest.duckdb"
    copy.write_bytes(world.read_bytes())
    c = duckdb.connect(str(copy))
    yield c
    c.close()


def test_an_incident_alerts_once(con):
    out = run(con, cfg(), as_of=end_of(28))
    assert [(c.event, c.alert_id) for c in out.changes] == [("opened", ID)]
    again = run(con, cfg(), as_of=end_of(28))
    assert [c.event for c in again.changes] == ["updated"]
    assert events(con) == [("opened", True)]
    assert outbox(con) == [("opened", "webhook", "pending")]
    a = alert(con)
    assert (a["status"], a["impact"], a["notified_impact"]) == ("open", 24.0, 24.0)


def test_it_updates_when_worse_and_says_when_it_resolves(con):
    run(con, cfg(), as_of=end_of(28))
    worse = run(con, cfg(), as_of=end_of(29))  # every Indosat SMS fails: twice the notified 24 lost
    assert [c.event for c in worse.changes] == ["worse"]
    # 48 failed; the baseline is the 28 whole days before the window's first day (28), so still none failed
    assert alert(con)["notified_impact"] == 48.0
    same = run(con, cfg(), as_of=end_of(30))  # as bad as when last notified: nothing to say
    assert [c.event for c in same.changes] == ["updated"]
    resolved = run(con, cfg(), as_of=end_of(31))
    assert [c.event for c in resolved.changes] == ["resolved"]
    a = alert(con)
    assert a["status"] == "resolved" and a["resolved_at"] is not None
    assert events(con) == [("opened", True), ("worse", True), ("resolved", True)]
    assert [e for e, _, _ in outbox(con)] == ["opened", "worse", "resolved"]
    sentence = con.execute("SELECT sentence FROM alert_events WHERE event = 'resolved'").fetchone()[0]
    assert sentence.startswith("Resolved at 03 Dec 23:50 UTC (open since 30 Nov 23:50 UTC): no longer seen.")
    quiet = run(con, cfg(), as_of=end_of(33))
    assert quiet.changes == []  # a resolved alert stays resolved, silently


def test_the_quiet_period_holds_a_worse_notification_back_until_it_ends(con):
    c = cfg(quiet_minutes=36 * 60)
    run(con, c, as_of=end_of(28))
    held = run(con, c, as_of=end_of(29))  # 24 h after the first notification: still quiet
    assert [ch.event for ch in held.changes] == ["updated"]
    assert alert(con)["notified_impact"] == 24.0
    told = run(con, c, as_of=end_of(30))  # 48 h after: still twice as bad, now notified
    assert [ch.event for ch in told.changes] == ["worse"]
    assert events(con) == [("opened", True), ("worse", True)]


def test_a_resolved_incident_that_comes_back_reopens(con):
    for k in (28, 31):
        run(con, cfg(), as_of=end_of(k))
    back = run(con, cfg(), as_of=end_of(35))
    assert [c.event for c in back.changes] == ["reopened"]
    a = alert(con)
    assert a["status"] == "open" and a["resolved_at"] is None
    assert [e for e, _ in events(con)] == ["opened", "resolved", "reopened"]


def test_a_restart_neither_resends_nor_forgets(con, tmp_path):
    run(con, cfg(), as_of=end_of(28))
    con.execute("UPDATE alert_outbox SET status = 'sent'")  # as a delivery would
    con.close()
    again = duckdb.connect(str(tmp_path / "ingest.duckdb"))
    try:
        out = run(again, cfg(), as_of=end_of(28))
        assert [c.event for c in out.changes] == ["updated"] and out.queued == []
        assert outbox(again) == [("opened", "webhook", "sent")]
        resolved = run(again, cfg(), as_of=end_of(31))  # it remembered the open alert, so it can resolve it
        assert [c.event for c in resolved.changes] == ["resolved"]
    finally:
        again.close()


def test_a_skipped_rule_resolves_nothing(con):
    run(con, cfg(), as_of=end_of(28))
    off = replace(cfg(), rules=tuple(replace(r, enabled=r.name != "error_rise") for r in cfg().rules))
    out = run(con, off, as_of=end_of(31))
    assert out.changes == [] and alert(con)["status"] == "open"


def test_a_dry_run_writes_nothing(con):
    out = run(con, cfg(), as_of=end_of(28), dry_run=True)
    assert [c.event for c in out.changes] == ["opened"]
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert "alerts" not in tables
