"""A tiny hand-built warehouse for the analytics tests, plus checks that it builds.

``Hand`` collects raw rows (messages, calls, send-log attempts, conversions) with
explicit numbers, then ``build()`` creates a real in-memory warehouse through
``ingest.warehouse`` (schema, dimensions, facts, views) so the analytics read exactly
the views they read in production.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd

from switchboard.ingest import warehouse

D0 = date(2026, 11, 2)  # a Monday


def at(day: date, hour: int = 12, minute: int = 0, second: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=UTC)


@dataclass
class Hand:
    messages: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    sends: list[dict[str, Any]] = field(default_factory=list)
    conversions: list[dict[str, Any]] = field(default_factory=list)
    _n: int = 0

    def _next(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}{self._n:032d}"

    def sms(self, *, day: date = D0, status: str = "delivered", error: int | None = None, country: str = "ID",
            carrier: str | None = "Telkomsel", price: float | None = 0.05, segments: int = 1,
            encoding: str = "GSM-7", latency_s: float | None = 10.0, sender: str = "MG1", template: str | None = "otp",
            purpose: str | None = "verification", variant: str | None = None, user: str | None = None,
            hour: int = 12, send_log: bool = True, fallback_of: str | None = None, experiment: str | None = None,
            minute: int = 0) -> tuple[str, str | None]:
        sid = self._next("SM")
        sent = at(day, hour, minute)
        updated = sent + timedelta(seconds=latency_s) if latency_s is not None else sent
        self.messages.append({
            "sid": sid, "account_sid": "AC1", "messaging_service_sid": sender, "direction": "outbound-api",
            "from_number": "+15550000000", "to_number": f"+62{self._n:09d}", "status": status, "error_code": error,
            "num_segments": segments, "num_media": 0, "body_encoding": encoding, "body_length": 10, "price": None if price is None
            else -price, "price_unit": "USD", "price_usd": price, "date_created": sent, "date_sent": sent, "date_updated": updated,
            "to_country": country, "to_carrier": carrier, "source": "api", "ingest_run_id": 1})
        event = None
        if send_log:
            event = self.send(channel="sms", sid=sid, sent=sent, template=template, purpose=purpose, variant=variant,
                              user=user, country=country, fallback_of=fallback_of, experiment=experiment)
        return sid, event

    def reply(self, sid: str, word: str | None = "STOP", *, after: timedelta = timedelta(minutes=1)) -> str:
        """The member of outbound SMS ``sid`` texts our number back ``after`` it was sent: ``word`` is the
        one-word body the ingest keeps (reply_word; None for free text). Returns the inbound SID."""
        m = next(m for m in self.messages if m["sid"] == sid)
        rid = self._next("SM")
        when = m["date_sent"] + after
        self.messages.append({**m, "sid": rid, "direction": "inbound", "from_number": m["to_number"],
                              "to_number": m["from_number"], "status": "received", "error_code": None,
                              "price": -0.0079, "price_usd": 0.0079, "date_created": when, "date_sent": when,
                              "date_updated": when, "reply_word": word})
        return rid

    def call(self, *, day: date = D0, status: str = "completed", country: str = "ID", carrier: str | None = "Telkomsel",
             duration: int = 30, answered_by: str | None = "human", price: float | None = 0.10,
             template: str | None = "otp_voice", purpose: str | None = "verification", user: str | None = None,
             hour: int = 12, minute: int = 0, second: int = 0, fallback_of: str | None = None,
             send_log: bool = True) -> tuple[str, str | None]:
        sid = self._next("CA")
        start = at(day, hour, minute, second)
        self.calls.append({
            "sid": sid, "account_sid": "AC1", "parent_call_sid": None, "direction": "outbound-api", "from_number": "+15550000000",
            "to_number": f"+62{self._n:09d}", "status": status, "answered_by": answered_by, "duration_s": duration,
            "price": None if price is None else -price, "price_unit": "USD", "price_usd": price, "start_time": start,
            "end_time": start + timedelta(seconds=duration), "date_created": start, "date_updated": start,
            "to_country": country, "to_carrier": carrier, "source": "api", "ingest_run_id": 1})
        event = None
        if send_log:
            event = self.send(channel="voice", sid=sid, sent=start, template=template, purpose=purpose, user=user,
                              country=country, fallback_of=fallback_of)
        return sid, event

    def send(self, *, channel: str, sid: str | None, sent: datetime, template: str | None = None,
             purpose: str | None = None, variant: str | None = None, user: str | None = None,
             country: str | None = None, fallback_of: str | None = None, experiment: str | None = None) -> str:
        event = self._next("EV")
        self.sends.append({
            "event_id": event, "sent_at": sent, "channel": channel, "purpose": purpose, "template_id": template,
            "experiment_id": experiment, "variant": variant, "campaign_id": None, "user_id": user or f"U{self._n}",
            "country": country, "locale": None, "provider_sid": sid, "fallback_of": fallback_of, "source_file": None,
            "ingest_run_id": 1})
        return event

    def push(self, *, day: date = D0, country: str = "ID", user: str | None = None, template: str = "otp_push",
             hour: int = 12) -> str:
        return self.send(channel="push", sid=None, sent=at(day, hour), template=template, purpose="verification",
                         user=user, country=country)

    def convert(self, user: str, when: datetime, kind: str = "verified") -> None:
        self.conversions.append({"event_id": self._next("CV"), "user_id": user, "conversion_type": kind,
                                     "occurred_at": when, "source_file": None, "ingest_run_id": 1})

    def build(self, con=None):
        con = con or warehouse.connect(":memory:")
        create_schema(con)
        for table, rows in (("twilio_messages", self.messages), ("twilio_calls", self.calls),
                            ("send_log", self.sends), ("conversions", self.conversions)):
            if not rows:
                continue
            df = pd.DataFrame(rows)
            con.register("_rows", df)
            cols = ", ".join(df.columns)
            con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _rows")
            con.unregister("_rows")
        refresh_facts(con)
        return con


create_schema = warehouse.create_schema
refresh_facts = warehouse.refresh_facts


def empty_warehouse():
    return Hand().build()


def test_hand_warehouse_builds():
    h = Hand()
    h.sms()
    h.sms(status="failed", error=30007)
    h.call()
    con = h.build()
    assert con.execute("SELECT count(*) FROM message_facts").fetchone()[0] == 2
    assert con.execute("SELECT count(*) FROM call_facts").fetchone()[0] == 1
    assert con.execute("SELECT count(*) FROM attempt_facts").fetchone()[0] == 3
    name = con.execute("SELECT error_name FROM message_facts WHERE error_code = 30007").fetchone()[0]
    assert name == "Message filtered"
