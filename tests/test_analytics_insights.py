"""what_changed: hand-built incidents with known numbers, and the sandbox world's ground truth."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest

from analytics import insights
from analytics.filters import Filters
from tests.test_analytics_warehouse import Hand, create_schema, empty_warehouse, refresh_facts
from ingest import warehouse


def load_world(world, con=None):
    """Raw tables straight from a sandbox World (its own country and carrier, no phone lookups)."""
    con = con or warehouse.connect(":memory:")
    create_schema(con)
    accounts = pd.DataFrame({"account_idx": range(len(world.accounts)),
                             "account_sid": [a["sid"] for a in world.accounts]})
    m = world.messages
    msgs = pd.DataFrame({
        "sid": m["sid"].astype(str), "account_idx": m["account_idx"], "ms": m["messaging_service_sid"].astype(object),
        "frm": m["from"].astype(str), "to": m["to"].astype(str), "status": m["status"].astype(str),
        "error_code": m["error_code"], "num_segments": m["num_segments"], "encoding": m["encoding"].astype(str),
        "price": m["price"], "created": m["date_created"], "sent": m["date_sent"], "final": m["final_at"],
        "country": m["country"].astype(str), "carrier": m["carrier"].astype(object)})
    con.register("_acc", accounts)
    con.register("_m", msgs)
    con.execute("""
        INSERT INTO twilio_messages (sid, account_sid, messaging_service_sid, direction, from_number, to_number,
            status, error_code, num_segments, body_encoding, price, price_unit, price_usd, date_created, date_sent,
            date_updated, to_country, to_carrier, source)
        SELECT sid, a.account_sid, ms, 'outbound-api', frm, "to", status, nullif(error_code, 0), num_segments,
               encoding, -price, 'USD', price, to_timestamp(created), to_timestamp(sent), to_timestamp(final),
               country, carrier, 'api'
        FROM _m JOIN _acc a USING (account_idx)""")
    c = world.calls
    calls = pd.DataFrame({
        "sid": c["sid"].astype(str), "account_idx": c["account_idx"], "status": c["status"].astype(str),
        "answered_by": c["answered_by"].astype(object), "duration": c["duration"], "price": c["price"],
        "created": c["date_created"], "start": c["start_time"], "end": c["end_time"],
        "to": c["to"].astype(str), "frm": c["from"].astype(str), "country": c["country"].astype(str)})
    con.register("_c", calls)
    con.execute("""
        INSERT INTO twilio_calls (sid, account_sid, direction, from_number, to_number, status, answered_by,
            duration_s, price, price_unit, price_usd, start_time, end_time, date_created, to_country, source)
        SELECT sid, a.account_sid, 'outbound-api', frm, "to", status, answered_by, duration, -price, 'USD', price,
               to_timestamp(start), to_timestamp("end"), to_timestamp(created), country, 'api'
        FROM _c JOIN _acc a USING (account_idx)""")
    log = world.send_log.drop(columns=[col for col in world.send_log.columns if col.startswith("_")])
    con.register("_s", log)
    con.execute("""
        INSERT INTO send_log (event_id, sent_at, channel, purpose, template_id, experiment_id, variant, campaign_id,
            user_id, country, locale, provider_sid, fallback_of)
        SELECT event_id, CAST(sent_at AS TIMESTAMPTZ), channel, purpose, template_id, experiment_id, variant,
               campaign_id, user_id, country, locale, provider_sid, fallback_of FROM _s""")
    conv = world.conversions.drop(columns=[col for col in world.conversions.columns if col.startswith("_")])
    con.register("_v", conv)
    con.execute("""INSERT INTO conversions (event_id, user_id, conversion_type, occurred_at)
                   SELECT event_id, user_id, conversion_type, CAST(occurred_at AS TIMESTAMPTZ) FROM _v""")
    for name in ("_acc", "_m", "_c", "_s", "_v"):
        con.unregister(name)
    refresh_facts(con)
    return con
