"""Responses in the warehouse (issue 18): the keyword rule and the linking rule, through the real ingest
path (API records upserted by ingest.twilio_api, facts built by the warehouse, then refresh_responses)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from switchboard.ingest import warehouse
from switchboard.ingest.responses import refresh_responses
from switchboard.ingest.twilio_api import MESSAGES, upsert_records

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
US_MEMBER = "+14155550123"
BR_MEMBER = "+5511987654321"
OURS_A, OURS_B = "+12065550100", "+12065550111"

# (what the member writes, classification, normalised keyword)
KEYWORDS = [
    ("STOP", "opt_out", "STOP"), ("stop", "opt_out", "STOP"), ("  Stop  ", "opt_out", "STOP"),
    ("STOP.", "opt_out", "STOP"), ("Stop!", "opt_out", "STOP"), ("\tstop\n", "opt_out", "STOP"),
    ("StopAll", "opt_out", "STOPALL"), ("unsubscribe", "opt_out", "UNSUBSCRIBE"), ("Cancel", "opt_out", "CANCEL"),
    ("END", "opt_out", "END"), ("quit", "opt_out", "QUIT"), ("REVOKE", "opt_out", "REVOKE"),
    ("optout", "opt_out", "OPTOUT"),
    ("START", "opt_in", "START"), ("yes", "opt_in", "YES"), ("Unstop", "opt_in", "UNSTOP"),
    ("HELP", "help", "HELP"), ("help?", "help", "HELP"), ("Info", "help", "INFO"),
    # localised (Advanced Opt-Out): Spanish, Portuguese, French, German, Italian, Indonesian
    ("Baja", "opt_out", "BAJA"), ("PARAR", "opt_out", "PARAR"), ("sair", "opt_out", "SAIR"),
    ("Arrêt", "opt_out", "ARRET"), ("ARRET", "opt_out", "ARRET"), ("Stopp", "opt_out", "STOPP"),
    ("abmelden", "opt_out", "ABMELDEN"), ("Annulla", "opt_out", "ANNULLA"), ("BERHENTI", "opt_out", "BERHENTI"),
    ("Alta", "opt_in", "ALTA"), ("Démarrer", "opt_in", "DEMARRER"), ("AYUDA", "help", "AYUDA"),
    ("¿Ayuda?", "help", "AYUDA"), ("ajuda", "help", "AJUDA"), ("Aide", "help", "AIDE"), ("Hilfe!", "help", "HILFE"),
    # Twilio matches the whole message only: these are free text
    ("Stop texting me please", "other", None), ("please stop", "other", None), ("STOP 2", "other", None),
    ("STOPPING", "other", None), ("S T O P", "other", None), ("who is this?", "other", None),
    ("ok", "other", None), ("C", "other", None), ("👍", "other", None), ("123456", "other", None),
    ("", "other", None), ("धन्यवाद", "other", None), ("Gracias", "other", None),
]


def _rfc(t: datetime) -> str:
    return format_datetime(t)


def _msg(sid: str, *, direction: str, frm: str, to: str, at: datetime, status: str | None = None,
         body: str = "Acme: hello", error: int | None = None, mg: str | None = None) -> dict:
    inbound = direction == "inbound"
    return {
        "sid": sid, "account_sid": "AC" + "0" * 32, "messaging_service_sid": mg, "direction": direction,
        "from": frm, "to": to, "status": status or ("received" if inbound else "delivered"),
        "error_code": error, "num_segments": "1", "num_media": "0", "body": body,
        "price": "-0.00790" if inbound else "-0.00830", "price_unit": "USD",
        "date_created": _rfc(at), "date_sent": _rfc(at), "date_updated": _rfc(at),
    }


def _sid(n: int) -> str:
    return f"SM{n:032x}"


@pytest.fixture()
def con():
    c = warehouse.connect(":memory:")
    warehouse.create_schema(c)
    yield c
    c.close()


def _load(con, records: list[dict], sends: list[tuple] = ()) -> None:
    """Upsert API records the way the ingest does; the send log's (event_id, sid, template, variant,
    user, at) rows; then the facts (which also run refresh_responses)."""
    loaded, rejected, _ = upsert_records(con, MESSAGES, records, run_id=1, source="api", location="test",
                                         reject_source="twilio")
    assert not rejected and loaded == len(records)
    for event_id, sid, template, variant, user, at in sends:
        con.execute(
            """INSERT INTO send_log (event_id, sent_at, channel, purpose, template_id, experiment_id, variant,
                                     campaign_id, user_id, country, provider_sid)
               VALUES (?, ?, 'sms', 'marketing', ?, CASE WHEN ? IS NULL THEN NULL ELSE 'exp_x' END, ?, 'cmp_1', ?,
                       'US', ?)""",
            [event_id, at, template, variant, variant, user, sid])
    warehouse.refresh_facts(con)
    refresh_responses(con)  # idempotent: the facts refresh may already have run it


def test_keyword_table_case_whitespace_punctuation_and_languages(con):
    records = [_msg(_sid(1), direction="outbound-api", frm=OURS_A, to=US_MEMBER, at=T0)]
    for i, (text, _cls, _kw) in enumerate(KEYWORDS):
        records.append(_msg(_sid(100 + i), direction="inbound", frm=US_MEMBER, to=OURS_A,
                            at=T0 + timedelta(minutes=1 + i), body=text))
    _load(con, records)
    got = {sid: (c, k) for sid, c, k in con.execute(
        "SELECT sid, classification, keyword FROM responses").fetchall()}
    for i, (text, cls, kw) in enumerate(KEYWORDS):
        assert got[_sid(100 + i)] == (cls, kw), text


def test_bodies_are_not_stored_except_one_word_keyword_candidates(con):
    records = [
        _msg(_sid(1), direction="outbound-api", frm=OURS_A, to=US_MEMBER, at=T0, body="Your code is 123456"),
        _msg(_sid(2), direction="inbound", frm=US_MEMBER, to=OURS_A, at=T0 + timedelta(minutes=1),
             body="my code is 123456, who is this"),
        _msg(_sid(3), direction="inbound", frm=US_MEMBER, to=OURS_A, at=T0 + timedelta(minutes=2), body="123456"),
        _msg(_sid(4), direction="inbound", frm=US_MEMBER, to=OURS_A, at=T0 + timedelta(minutes=3), body=" Stop! "),
    ]
    _load(con, records)
    words = dict(con.execute("SELECT sid, reply_word FROM twilio_messages").fetchall())
    assert words == {_sid(1): None, _sid(2): None, _sid(3): None, _sid(4): "Stop!"}


def test_inbound_country_comes_from_the_member(con):
    _load(con, [
        _msg(_sid(1), direction="outbound-api", frm=OURS_A, to=BR_MEMBER, at=T0),
        _msg(_sid(2), direction="inbound", frm=BR_MEMBER, to=OURS_A, at=T0 + timedelta(minutes=3), body="SAIR"),
    ])
    assert con.execute("SELECT to_country FROM twilio_messages WHERE sid = ?", [_sid(2)]).fetchone()[0] == "BR"
    assert con.execute("SELECT country_iso2, classification FROM responses").fetchall() == [("BR", "opt_out")]
    # inbound messages are kept, never counted as sends
    assert con.execute("SELECT count(*) FROM message_facts").fetchone()[0] == 1


def test_linking_window_several_senders_and_no_prior_message(con):
    day = timedelta(days=1)
    records = [
        # member gets A's promo, then B's alert, then A's second promo (failed: never seen), then replies
        _msg(_sid(1), direction="outbound-api", frm=OURS_A, to=US_MEMBER, at=T0),
        _msg(_sid(2), direction="outbound-api", frm=OURS_B, to=US_MEMBER, at=T0 + timedelta(hours=1)),
        _msg(_sid(3), direction="outbound-api", frm=OURS_A, to=US_MEMBER, at=T0 + timedelta(hours=2),
             status="failed", error=30034),
        # STOP to A: answers A's last message that reached the member (1), not B's later one (2)
        _msg(_sid(10), direction="inbound", frm=US_MEMBER, to=OURS_A, at=T0 + timedelta(hours=3), body="STOP"),
        # HELP to B: answers B's message (2)
        _msg(_sid(11), direction="inbound", frm=US_MEMBER, to=OURS_B, at=T0 + timedelta(hours=4), body="HELP"),
        # START to A eight days later: outside the 168 h window, no link
        _msg(_sid(12), direction="inbound", frm=US_MEMBER, to=OURS_A, at=T0 + 8 * day, body="START"),
        # a member we never texted writes to B: no prior message
        _msg(_sid(13), direction="inbound", frm=BR_MEMBER, to=OURS_B, at=T0 + timedelta(hours=5), body="oi"),
        # the same sender, exactly at the window's edge (168 h after message 2): linked
        _msg(_sid(14), direction="inbound", frm=US_MEMBER, to=OURS_B, at=T0 + timedelta(hours=1) + 7 * day,
             body="info"),
    ]
    sends = [("evt_1", _sid(1), "mkt_promo", "control", "usr_1", T0 - timedelta(seconds=1)),
             ("evt_2", _sid(2), "alert_login", None, "usr_1", T0 + timedelta(hours=1) - timedelta(seconds=1))]
    _load(con, records, sends)
    rows = {r[0]: r[1:] for r in con.execute(
        """SELECT sid, classification, linked_sid, linked_event_id, template_id, variant, user_id,
                  minutes_after_message FROM responses""").fetchall()}
    assert rows[_sid(10)] == ("opt_out", _sid(1), "evt_1", "mkt_promo", "control", "usr_1", 180.0)
    assert rows[_sid(11)][:5] == ("help", _sid(2), "evt_2", "alert_login", None)
    assert rows[_sid(12)] == ("opt_in", None, None, None, None, None, None)
    assert rows[_sid(13)] == ("other", None, None, None, None, None, None)
    assert rows[_sid(14)][:2] == ("help", _sid(2))
    # a narrower window drops the edge case and the 3-hour-old link stays
    refresh_responses(con, window_hours=24)
    narrow = dict(con.execute("SELECT sid, linked_sid FROM responses").fetchall())
    assert narrow[_sid(14)] is None and narrow[_sid(10)] == _sid(1)


def test_opted_out_members_follow_the_last_word(con):
    other = "+14155550999"
    records = [
        _msg(_sid(1), direction="outbound-api", frm=OURS_A, to=US_MEMBER, at=T0),
        _msg(_sid(2), direction="inbound", frm=US_MEMBER, to=OURS_A, at=T0 + timedelta(minutes=5), body="STOP"),
        _msg(_sid(3), direction="outbound-api", frm=OURS_B, to=US_MEMBER, at=T0),
        _msg(_sid(4), direction="inbound", frm=US_MEMBER, to=OURS_B, at=T0 + timedelta(minutes=5), body="stop"),
        _msg(_sid(5), direction="inbound", frm=US_MEMBER, to=OURS_B, at=T0 + timedelta(days=2), body="START"),
        # opted out before our data: Twilio refuses with 21610
        _msg(_sid(6), direction="outbound-api", frm=OURS_A, to=other, at=T0, status="failed", error=21610),
    ]
    _load(con, records)
    got = sorted(con.execute("SELECT member_number, our_number, evidence, keyword FROM opted_out_members").fetchall())
    assert got == [(US_MEMBER, OURS_A, "keyword", "STOP"), (other, OURS_A, "error_21610", None)]


def test_views_are_documented(con):
    _load(con, [])
    undocumented = con.execute(
        """SELECT table_name, column_name FROM duckdb_columns()
           WHERE table_name IN ('responses', 'opted_out_members') AND comment IS NULL""").fetchall()
    assert undocumented == []
    assert con.execute("SELECT count(*) FROM duckdb_views() WHERE view_name IN ('responses', 'opted_out_members') "
                       "AND comment LIKE '%keyword%'").fetchone()[0] == 2
