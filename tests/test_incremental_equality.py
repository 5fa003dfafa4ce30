"""The incremental facts build equals the full rebuild after every step of sequences of runs
(issue 15): new messages, status and price changes, conversions after midnight, fallbacks whose SMS and
call fall on different days, new and returning experiment members, deletes, rewritten send-log files,
BulkExport rows over API rows. Hand-written sequences, then hypothesis-generated ones."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from switchboard.ingest import incremental
from tests.incremental_util import D0, Writer, incremental_equals_rebuild, open_warehouse


@pytest.fixture
def wh(tmp_path: Path):
    path = tmp_path / "ingest.duckdb"
    con = open_warehouse(path)
    yield con, path, tmp_path
    con.close()


def _step(con, path, tmp) -> None:
    assert incremental_equals_rebuild(con, path, tmp) == {}


def test_a_sequence_of_runs_stays_equal_to_the_rebuild(wh) -> None:
    con, path, tmp = wh
    w = Writer(con)
    # run 1: history. Two experiment members, one non-experiment send, a fallback chain across midnight
    w.start()
    for i, (user, variant) in enumerate([("u1", "A"), ("u2", "B"), ("u3", None)]):
        sid = f"SM{i:03d}"
        w.message(sid, D0 + timedelta(minutes=10 * i), status="sent")
        w.send(f"e{i}", D0 + timedelta(minutes=10 * i), user, sid=sid,
               experiment="x1" if variant else None, variant=variant)
    w.message("SM100", D0 + timedelta(hours=2, minutes=50), status="undelivered", error=30003, price=0.04)
    w.send("e100", D0 + timedelta(hours=2, minutes=50), "u4", sid="SM100", experiment="x1", variant="A")
    w.call("CA100", D0 + timedelta(hours=3, minutes=5))  # after midnight: the next UTC day
    w.send("e101", D0 + timedelta(hours=3, minutes=5), "u4", channel="voice", sid="CA100", fallback_of="e100")
    w.finish()
    assert incremental.refresh(con).mode == "incremental"  # create_schema built the (empty) facts in full
    _step(con, path, tmp)

    # run 2: statuses move, a price arrives late, a conversion after midnight for an earlier attempt
    w.start()
    w.message("SM000", D0, status="delivered", price=0.05, updated=D0 + timedelta(minutes=2))
    w.message("SM001", D0 + timedelta(minutes=10), status="sent", price=0.05)
    w.conversion("c1", "u1", D0 + timedelta(hours=3, minutes=20))
    w.finish()
    assert incremental.refresh(con).mode == "incremental"
    _step(con, path, tmp)

    # run 3: a returning member in a new variant (switcher), a new member, a new variant in x1
    w.start()
    w.message("SM200", D0 + timedelta(days=1), status="delivered", price=0.05)
    w.send("e200", D0 + timedelta(days=1), "u1", sid="SM200", experiment="x1", variant="B")
    w.message("SM201", D0 + timedelta(days=1, minutes=1), status="delivered")
    w.send("e201", D0 + timedelta(days=1, minutes=1), "u9", sid="SM201", experiment="x1", variant="0-first")
    w.call("CA100", D0 + timedelta(hours=3, minutes=5), status="no-answer", price=0.0)  # the fallback changes
    w.finish()
    _step(con, path, tmp)

    # run 4: a full refresh deletes a message, a rewritten send-log file drops one row and changes another
    w.start()
    w.delete("twilio_messages", "sid = $s", {"s": "SM002"})
    w.delete("send_log", "source_file = $f AND event_id IN ('e0', 'e1')", {"f": "sends-1.jsonl"})
    w.send("e0", D0, "u1", sid="SM000", experiment="x1", variant="B")  # rewritten: now variant B
    w.delete("conversions", "event_id = 'c1'")
    w.finish()
    _step(con, path, tmp)

    # run 5: a BulkExport row over an API row (same sid, other source) and nothing else
    w.start()
    w.message("SM001", D0 + timedelta(minutes=10), status="delivered", price=0.06, source="bulk_export",
              updated=D0 + timedelta(minutes=12))
    w.finish()
    _step(con, path, tmp)

    # run 6: nothing new
    w.start()
    w.finish()
    assert incremental.refresh(con).mode == "unchanged"
    _step(con, path, tmp)


def test_conversions_that_move_no_attempt_still_move_the_pre_period_covariate(wh) -> None:
    """Each exposure counts its member's conversions in the 28 days before it (issue 19's CUPED covariate).
    A conversion can change that count without converting any attempt (none was sent between it and the
    previous conversion): the later exposures are rebuilt all the same, and a deleted one moves them back."""
    con, path, tmp = wh
    w = Writer(con)

    def covariates() -> list[tuple]:
        return con.execute("SELECT user_id, sent_at, pre_conversions_28d FROM _experiment_exposures "
                           "ORDER BY user_id, sent_at").fetchall()

    w.start()  # u5 exposed on day 0 and day 40; converts an hour after the first
    for i, days in enumerate((0, 40)):
        w.message(f"SM5{i}", D0 + timedelta(days=days), status="delivered")
        w.send(f"e5{i}", D0 + timedelta(days=days), "u5", sid=f"SM5{i}", experiment="x1", variant="A")
    w.message("SM60", D0 + timedelta(days=30), status="delivered")  # u6: another member, untouched
    w.send("e60", D0 + timedelta(days=30), "u6", sid="SM60", experiment="x1", variant="B")
    w.conversion("c50", "u5", D0 + timedelta(hours=1))
    w.finish()
    _step(con, path, tmp)
    assert [r[2] for r in covariates()] == [0, 0, 0]

    w.start()  # day 20: 20 days before the day-40 exposure; converts no attempt (none since the hour-1 one)
    w.conversion("c51", "u5", D0 + timedelta(days=20))
    w.conversion("c60", "u6", D0 + timedelta(days=31))  # after u6's only exposure: counts for none
    w.finish()
    report = incremental.refresh(con)
    assert report.mode == "incremental" and report.keys["written"] >= 1
    _step(con, path, tmp)
    assert [r[2] for r in covariates()] == [0, 1, 0]

    w.start()  # day 5: 35 days before the day-40 exposure, outside its 28 days
    w.conversion("c52", "u5", D0 + timedelta(days=5))
    w.finish()
    _step(con, path, tmp)
    assert [r[2] for r in covariates()] == [0, 1, 0]

    w.start()
    w.delete("conversions", "event_id = 'c51'")
    w.finish()
    _step(con, path, tmp)
    assert [r[2] for r in covariates()] == [0, 0, 0]


def test_a_changed_definition_or_window_means_a_full_build(wh) -> None:
    con, _, _ = wh
    w = Writer(con)
    w.start()
    w.message("SM1", D0, status="delivered")
    w.send("e1", D0, "u1", sid="SM1")
    w.conversion("c1", "u1", D0 + timedelta(minutes=40))
    w.finish()
    assert incremental.refresh(con, rebuild=True).mode == "full"
    assert incremental.refresh(con).mode == "unchanged"
    assert incremental.refresh(con, conversion_window_minutes=60).mode == "full"
    assert con.execute("SELECT converted FROM attempt_facts").fetchall() == [(True,)]
    con.execute("UPDATE countries SET name = 'Britain' WHERE iso2 = 'GB'")
    assert incremental.refresh(con, conversion_window_minutes=60).mode == "full"
    assert con.execute("SELECT country_name FROM message_facts").fetchall() == [("Britain",)]


# --------------------------------------------------------------------------- generated sequences

USERS = [f"u{i}" for i in range(6)]
OPS = st.one_of(
    st.tuples(st.just("send"), st.sampled_from(USERS), st.integers(0, 60), st.sampled_from([None, "A", "B", "C"]),
              st.sampled_from(["x1", "x2"]), st.booleans()),
    st.tuples(st.just("status"), st.integers(0, 40), st.sampled_from(["delivered", "undelivered", "failed", "sent"]),
              st.sampled_from([None, 0.04, 0.07])),
    st.tuples(st.just("convert"), st.sampled_from(USERS), st.integers(0, 70)),
    st.tuples(st.just("delete_message"), st.integers(0, 40)),
    st.tuples(st.just("delete_send"), st.integers(0, 40)),
    st.tuples(st.just("delete_conversion"), st.integers(0, 20)),
    st.tuples(st.just("rewrite_file"), st.integers(0, 3), st.sampled_from(["A", "B"])),
    st.tuples(st.just("bulk_export"), st.integers(0, 40)),
)


class Model:
    """Applies generated operations through the Writer; keeps ids it has created."""

    def __init__(self, w: Writer) -> None:
        self.w, self.events, self.convs = w, [], []

    def apply(self, op: tuple) -> None:
        kind, *args = op
        getattr(self, kind)(*args)

    def send(self, user: str, hours: int, variant: str | None, experiment: str, fallback: bool) -> None:
        n = len(self.events)
        at = D0 + timedelta(hours=hours, minutes=n % 60)
        e, sid = f"e{n}", f"SM{n:03d}"
        self.w.message(sid, at)
        self.w.send(e, at, user, sid=sid, experiment=experiment if variant else None, variant=variant,
                    file=f"sends-{n % 4}.jsonl")
        self.events.append(e)
        if fallback:  # the call starts an hour later: often the next UTC day
            self.w.call(f"CA{n:03d}", at + timedelta(hours=1), status="no-answer" if n % 3 else "completed")
            self.w.send(f"{e}-fb", at + timedelta(hours=1), user, channel="voice", sid=f"CA{n:03d}", fallback_of=e,
                        file=f"sends-{n % 4}.jsonl")

    def status(self, i: int, status: str, price: float | None) -> None:
        if i < len(self.events):
            at = D0 + timedelta(hours=1)
            self.w.con.execute(
                "UPDATE twilio_messages SET status = $s, price_usd = $p, date_updated = $at, ingest_run_id = $r "
                "WHERE sid = $sid", {"s": status, "p": price, "at": at, "r": self.w.run_id, "sid": f"SM{i:03d}"})

    def convert(self, user: str, hours: int) -> None:
        cid = f"c{len(self.convs)}"
        self.w.conversion(cid, user, D0 + timedelta(hours=hours, minutes=7), file=f"conversions-{hours % 2}.jsonl")
        self.convs.append(cid)

    def delete_message(self, i: int) -> None:
        self.w.delete("twilio_messages", "sid = $s", {"s": f"SM{i:03d}"})

    def delete_send(self, i: int) -> None:
        self.w.delete("send_log", "event_id = $e", {"e": f"e{i}"})

    def delete_conversion(self, i: int) -> None:
        self.w.delete("conversions", "event_id = $e", {"e": f"c{i}"})

    def rewrite_file(self, f: int, variant: str) -> None:
        """A send-log file rewritten: its rows deleted, every other one back with another variant."""
        rows = self.w.con.execute(
            "SELECT event_id, sent_at, user_id, provider_sid, experiment_id, fallback_of, channel FROM send_log "
            "WHERE source_file = $f ORDER BY event_id", {"f": f"sends-{f}.jsonl"}).fetchall()
        self.w.delete("send_log", "source_file = $f", {"f": f"sends-{f}.jsonl"})
        for k, (e, at, user, sid, x, fb, ch) in enumerate(rows):
            if k % 2 == 0:
                self.w.send(e, at, user, sid=sid, experiment=x or "x1", variant=variant if ch == "sms" else None,
                            fallback_of=fb, channel=ch, file=f"sends-{f}.jsonl")

    def bulk_export(self, i: int) -> None:
        if i < len(self.events):
            row = self.w.con.execute("SELECT date_sent FROM twilio_messages WHERE sid = $s",
                                     {"s": f"SM{i:03d}"}).fetchall()
            if row:
                self.w.message(f"SM{i:03d}", row[0][0], status="delivered", price=0.05, source="bulk_export",
                               updated=row[0][0] + timedelta(hours=2))


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(runs=st.lists(st.lists(OPS, min_size=1, max_size=6), min_size=2, max_size=5))
def test_generated_sequences_stay_equal_to_the_rebuild(tmp_path_factory, runs) -> None:
    tmp = tmp_path_factory.mktemp("gen")
    path = tmp / "ingest.duckdb"
    con = open_warehouse(path)
    try:
        model = Model(Writer(con))
        for ops in runs:
            model.w.start()
            for op in ops:
                model.apply(op)
            model.w.finish()
            assert incremental_equals_rebuild(con, path, tmp) == {}, ops
    finally:
        con.close()
